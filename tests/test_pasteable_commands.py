"""Commands ganforge prints for the user to paste work when pasted: a run named "-run" had been
printed as `ganforge train --resume --out -run` (read as an option), an exported folder named
"it's model" as `ganforge.load('it's model')` and, in its model card, `ganforge serve it's model`;
and `data fetch --data-dir ""` (an unset variable) had crashed with an IndexError."""
import shlex
import subprocess
import sys

from ganforge import cli
from ganforge.errors import shell_arg

from conftest import tiny_config


def test_a_name_that_starts_with_a_dash_is_not_an_option():
    assert shell_arg("-run") == "./-run"
    assert shell_arg("-r it's") == shlex.quote("./-r it's")
    assert shell_arg("runs/-x") == "runs/-x" and shell_arg("/tmp/-x") == "/tmp/-x"
    assert shell_arg("plain") == "plain"


def test_the_printed_commands_of_a_dash_run_and_an_odd_export_paste(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(tiny_config(**{"train.steps": 2}).to_yaml())
    assert cli.main(["train", "c.yaml", "--out", "./-run", "--quiet"]) == 0
    out = capsys.readouterr().out
    report = next(line.split("report:", 1)[1].strip() for line in out.splitlines() if "report:" in line)
    assert report == "ganforge report ./-run", out
    assert cli.main(shlex.split(report)[1:]) == 0  # as bash would split it
    capsys.readouterr()
    name = "it's model"
    assert cli.main(["export", "./-run", "--format", "folder", "--out", name]) == 0
    said = capsys.readouterr().out
    load = said.split("load it with ", 1)[1].split(" or ", 1)[0]
    code = f"import ganforge; {load}"
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, (code, done.stderr)
    card = (tmp_path / name / "README.md").read_text()
    assert f"ganforge serve {shlex.quote(name)}" in card
    assert "ganforge.load(\"it's model\")" in card


def test_an_empty_data_dir_is_none(tmp_path, monkeypatch):
    """As train's --data-dir "" (data.data_dir=): the usual places, not an IndexError."""
    import pytest

    from ganforge.data import named
    from ganforge.errors import DataError

    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    with pytest.raises(DataError) as info:
        named.obtain("mnist", data_dir="", download_ok=False, has=lambda d: False,
                     fetch_into=lambda d: "", manual="the files")
    assert "downloading is disabled" in str(info.value) and "--data-dir  does not" not in str(info.value)
