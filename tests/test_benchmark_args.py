"""The benchmark scripts refuse a nonsense size (--steps 0, --threads 0, --minutes -1) as one line
with exit 2 before any work starts or anything is written, and end ganforge's own errors as one
line instead of a traceback, as the ganforge command does."""
from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def bench(monkeypatch):
    """A benchmark script imported as ``python benchmarks/NAME.py`` would find its siblings."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module


def _one_line_error(capsys, option: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err  # no usage block, no traceback
    assert "error:" in err and option in err, err
    return err


# Each argv fails fast in the script as it was, past the bad size (an unknown preset or extractor,
# an empty list), so a script that let the size through fails this test instead of training.
@pytest.mark.parametrize("script, argv, option", [
    ("step_speed", ["no-such-preset", "--steps", "0"], "--steps"),
    ("step_speed", ["no-such-preset", "--warmup", "-1"], "--warmup"),
    ("throughput", ["--threads", "0"], "--threads"),
    ("ddp_scaling", ["--steps", "-1", "--procs", ""], "--steps"),
    ("throughput_gpu", ["--device", "cpu", "--resolutions", "", "--repeats", "0"], "--repeats"),
    ("stylegan2", ["--minutes", "-1", "--variants", "nope"], "--minutes"),
    ("eval_floor", ["--n", "0", "--extractor", "no-such-extractor"], "--n"),
])
def test_bad_size_is_one_line_exit_2(bench, capsys, script, argv, option):
    with pytest.raises(SystemExit) as exc:
        bench(script).main(argv)
    assert exc.value.code == 2
    _one_line_error(capsys, option)


def test_optional_overrides_are_not_reported_required(bench, capsys):
    with pytest.raises(SystemExit) as exc:
        bench("step_speed").main([])
    assert exc.value.code == 2
    err = _one_line_error(capsys, "preset")
    assert "overrides" not in err


def test_run_main_turns_ganforge_errors_and_ctrl_c_into_one_line(bench, capsys):
    from ganforge.errors import ConfigError

    run_main = bench("_common").run_main

    def bad_preset():
        raise ConfigError("unknown preset 'x'; run 'ganforge presets' to list them")

    def ctrl_c():
        raise KeyboardInterrupt

    assert run_main(bad_preset) == 2
    assert capsys.readouterr().err.endswith(": error: unknown preset 'x'; run 'ganforge presets' to list them\n")
    assert run_main(ctrl_c) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")
    assert run_main(lambda: None) == 0


def _run(tmp_path, *args):
    """The script as a user runs it, from another working directory."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *map(str, args)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("script, argv, option", [
    ("translation.py", ["--steps", "-1"], "--steps"),
    ("biggan.py", ["--minutes", "-1"], "--minutes"),
    ("vocoders.py", ["--minutes", "-1"], "--minutes"),
])
def test_script_refuses_bad_size_before_writing(tmp_path, script, argv, option):
    out = tmp_path / "out"
    proc = _run(tmp_path, BENCH / script, *argv, "--out", out)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(f"{script}: error: argument {option}:"), proc.stderr
    assert not out.exists()


def test_script_ganforge_error_is_one_line(tmp_path):
    proc = _run(tmp_path, BENCH / "step_speed.py", "no-such-preset")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("step_speed.py: error: unknown preset 'no-such-preset'"), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
