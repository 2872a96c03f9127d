"""The suite's way of running ``python -m ganforge`` (tests/_forkcli.py): a child forked from a
process that has imported torch gives what a fresh process gives (exit codes, streams, working
directory, environment, a crash's traceback, a timeout) with a fresh ganforge each time."""
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT

import _forkcli


def _env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    env.update(extra)
    return env


def _fresh(args, env, **kwargs):
    return subprocess.run([sys.executable, "-m", "ganforge", *args], env=env, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def zygote():
    """A zygote of these tests' own (not the one of the worker's other tests), stopped after them."""
    z, before = _forkcli.Zygote(), _forkcli._ZYGOTE_OF_THIS_PROCESS
    _forkcli._ZYGOTE_OF_THIS_PROCESS = z
    yield z
    _forkcli._ZYGOTE_OF_THIS_PROCESS = before
    z.stop()


@pytest.mark.parametrize("args", [["presets"], ["train", "no-such-preset"], ["sample"]])
def test_a_forked_command_says_and_exits_as_a_fresh_one(zygote, tmp_path, args):
    env = _env()
    forked = _forkcli.run_ganforge(args, env, cwd=tmp_path)
    assert zygote.proc is not None and not zygote.dead  # it ran in the zygote
    fresh = _fresh(args, env, cwd=tmp_path)
    assert (forked.returncode, forked.stdout, forked.stderr) == (fresh.returncode, fresh.stdout, fresh.stderr)


def test_each_command_imports_ganforge_afresh_in_its_cwd_with_its_environment(zygote, tmp_path):
    """A plugin named in one command's environment is not there for the next, and a relative
    --out lands in the command's working directory."""
    (tmp_path / "gf_fork_plugin.py").write_text(textwrap.dedent("""
        import torch
        from ganforge.data.base import DATASETS, ImageDataset

        class Source:
            def load(self, req):
                return ImageDataset(images=torch.zeros(4, 1, 8, 8, dtype=torch.uint8), labels=None,
                                    class_names=None, source="here", name="forked")
            def fetch(self, arg, *, data_dir):
                return "forked: here"
            def info(self, arg):
                return {"resolution": 8, "channels": 1, "num_classes": None, "class_names": None}

        DATASETS.register("forked")(Source())
    """))
    env = _env(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{tmp_path}")
    with_plugin = _forkcli.run_ganforge(["data", "fetch", "forked"], {**env, "GANFORGE_PLUGINS": "gf_fork_plugin"})
    assert with_plugin.returncode == 0 and "forked: here" in with_plugin.stdout, with_plugin.stderr
    without = _forkcli.run_ganforge(["data", "fetch", "forked"], env)
    assert without.returncode == 2 and "GANFORGE_PLUGINS=module" in without.stderr, without.stderr

    proc = _forkcli.run_ganforge(["train", "toy-ring8", "train.steps=1", "--out", "rel", "--quiet"], _env(),
                                 cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "rel" / "config.yaml").is_file()


def test_a_crash_a_timeout_and_a_startup_variable(zygote, tmp_path):
    (tmp_path / "gf_fork_crash.py").write_text("raise SystemExit('crashed on import')\n")
    env = _env(PYTHONPATH=f"{ROOT / 'src'}{os.pathsep}{tmp_path}", GANFORGE_PLUGINS="gf_fork_crash")
    forked = _forkcli.run_ganforge(["presets"], env)
    fresh = _fresh(["presets"], env)
    assert forked.returncode == fresh.returncode != 0 and forked.stderr == fresh.stderr

    with pytest.raises(subprocess.TimeoutExpired):
        _forkcli.run_ganforge(["train", "toy-ring8", "train.steps=100000", "--out", str(tmp_path / "t")], _env(),
                              timeout=3)
    assert _forkcli.run_ganforge(["presets"], _env()).returncode == 0  # the zygote serves on

    started = zygote.proc
    assert not zygote.can_run(_env(PYTHONHASHSEED="7"))  # read at start-up: a fresh process
    proc = _forkcli.run_ganforge(["presets"], _env(PYTHONHASHSEED="7"))
    assert proc.returncode == 0 and zygote.proc is started
