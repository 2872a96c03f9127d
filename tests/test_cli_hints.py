"""Commands the CLI tells a user to paste work as printed, and a command of actions given none
lists its own actions."""
import shlex

import pytest

from conftest import run_cli
from test_cli import TINY


def _hint(text: str, label: str) -> list[str]:
    """The command after ``label`` in ``text`` (to the end of its line), split as a shell would."""
    line = next(l for l in text.splitlines() if label in l)
    return shlex.split(line.split(label, 1)[1].strip())


def test_printed_commands_work_for_a_run_folder_with_spaces(tmp_path, image_folder):
    run = tmp_path / "my runs" / "it's here"
    proc = run_cli("train", "dcgan-folder", f"data.name=folder:{image_folder}", "data.resolution=16",
                   *TINY, "--steps", "2", "--out", run)
    assert proc.returncode == 0, proc.stderr
    argv = _hint(proc.stdout, "more samples:")
    assert argv[:3] == ["ganforge", "sample", str(run)]
    out = tmp_path / "grid.png"
    argv[argv.index("--out") + 1] = str(out)
    proc = run_cli(*argv[1:])
    assert proc.returncode == 0, proc.stderr
    assert out.is_file()

    # a finished run told to train on: the resume command it prints is the one to paste
    proc = run_cli("train", "--resume", "--out", run)
    assert proc.returncode == 0, proc.stderr
    argv = _hint(proc.stdout + proc.stderr, "raise it:")
    assert argv[:5] == ["ganforge", "train", "--resume", "--out", str(run)]


@pytest.mark.parametrize("command,action", [("data", "ACTION"), ("detect", "ACTION"), ("bench", "BENCHMARK")])
def test_command_without_action_lists_its_actions(command, action):
    from ganforge import cli

    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main([command])
    assert code == 2
    assert buf.getvalue().startswith(f"usage: ganforge {command} [-h] {action} ...")


def test_a_commands_module_without_register_is_a_helper_not_a_crash(monkeypatch, tmp_path):
    """CONTRIBUTING: modules of ganforge/commands/ with a register function add subcommands;
    one without (or a _private one) had crashed every ganforge command with an AttributeError."""
    import sys
    import types

    from ganforge import cli, commands

    helper = types.ModuleType("ganforge.commands.zz_helper")  # no register
    monkeypatch.setitem(sys.modules, "ganforge.commands.zz_helper", helper)
    real = cli.pkgutil.iter_modules

    def with_helper(path):
        yield from real(path)
        if list(path) == list(commands.__path__):
            yield types.SimpleNamespace(name="zz_helper")
            yield types.SimpleNamespace(name="_private")  # never imported
    monkeypatch.setattr(cli.pkgutil, "iter_modules", with_helper)
    parser = cli.build_parser()
    assert parser.parse_args(["presets"]).command == "presets"
