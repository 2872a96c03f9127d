"""Awkward paths (a user review): names near and over the 255-byte limit, paths that are not
valid UTF-8, dangling and looping symbolic links, a read-only run folder for the report. Each
works, or is refused in one line with exit code 2 that names the problem and the fix."""
from __future__ import annotations

import errno
import os
import pathlib
import sys
from pathlib import Path

import pytest

from conftest import random_dataset, tiny_config
from ganforge import api, cli
from ganforge.atomic import atomic_path, atomic_write_bytes, atomic_write_text, replace_folder
from ganforge.errors import StorageError
from ganforge.training.logger import MetricsLogger
from test_robustness import _one_line


def _cfg(**overrides):
    return tiny_config(**{"monitor.enabled": False, **overrides})


def _train(run_dir, **overrides):
    return api.train(_cfg(**overrides), run_dir, progress=False, dataset=random_dataset())


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("awkward") / "run"
    _train(path, **{"train.steps": 2})
    return path


def _non_utf8(parent: Path, name: bytes) -> Path:
    """A path whose last name is the bytes ``name`` (not UTF-8), or a skip where the file system
    refuses such names (macOS)."""
    path = Path(os.fsdecode(os.path.join(os.fsencode(parent), name)))
    try:
        path.mkdir()
        path.rmdir()
    except (OSError, UnicodeError):
        pytest.skip("this file system takes only UTF-8 names")
    return path


# ----------------------------------------------------------------------------- 255-byte names


def test_a_legal_name_of_255_bytes_is_written(tmp_path, run, capsys):
    """Its temporary name '.NAME.tmpPID.png' had passed 255 bytes: "File name too long"."""
    name = "b" * 251 + ".png"
    assert len(name) == 255
    assert cli.main(["sample", str(run), "--n", "4", "--out", str(tmp_path / name)]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / name).stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    text = "é" * 127  # 254 bytes in UTF-8: the shortened temporary name must cut at a character
    atomic_write_text(tmp_path / text, "x")
    assert (tmp_path / text).read_text() == "x"


def test_a_long_folder_replaces_an_old_one_and_killed_writes_are_cleaned(tmp_path):
    name = "e" * 255
    for content in (b"old", b"new"):
        with atomic_path(tmp_path / name) as tmp:
            tmp.mkdir()
            (tmp / "f").write_bytes(content)
    assert (tmp_path / name / "f").read_bytes() == b"new"
    staged = tmp_path / "staged"
    staged.mkdir()
    replace_folder(staged, tmp_path / name)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    # a killed write's temporary file of a long name is found (and removed) by the next write
    with atomic_path(tmp_path / ("d" * 250)) as tmp:
        tmp.write_bytes(b"first")
        leftover = tmp.with_name(tmp.name.replace(f".tmp{os.getpid()}", ".tmp999999999"))
    leftover.write_bytes(b"half")
    os.utime(leftover, (0, 0))
    atomic_write_bytes(tmp_path / ("d" * 250), b"whole")
    assert not leftover.exists()


def test_names_over_the_limit_are_one_line(tmp_path, run, capsys, monkeypatch):
    long = "c" * 300
    _one_line(capsys, cli.main(["sample", str(run), "--n", "4", "--out", str(tmp_path / f"{long}.png")]),
              "file name too long", "255 at most per name", "choose a shorter name")
    _one_line(capsys, cli.main(["train", "dcgan-fashion-mnist", "--out", str(tmp_path / long), "--quiet"]),
              "file name too long", "choose a shorter name")
    _one_line(capsys, cli.main(["provenance", str(tmp_path / f"{long}.png")]), "file name too long")
    with pytest.raises(StorageError, match="file name too long .*choose a shorter name"):
        atomic_write_text(tmp_path / long, "x")  # before any work: its temporary name fits
    assert list(tmp_path.iterdir()) == []

    def broken(args):  # another OSError is not taken for a long name
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(cli, "cmd_sample", broken)
    with pytest.raises(OSError, match="Input/output error"):
        cli.main(["sample", "whatever"])


# ----------------------------------------------------------------------------- not UTF-8


def test_a_run_folder_that_is_not_utf8_trains_loads_and_reports(tmp_path, capsys):
    """TensorBoard's writer could not encode the path (a traceback at the first record, the
    training lost); its checkpoint was then called corrupt, with the advice to delete it."""
    pytest.importorskip("torch.utils.tensorboard")
    run = _non_utf8(tmp_path, b"run\xe9bad")
    _train(run)  # log_every 2: records are written
    said = capsys.readouterr()
    assert (said.out + said.err).count("no TensorBoard events") == 1, said
    assert (run / "checkpoints" / "step_0000006").is_dir()
    assert cli.main(["sample", str(run), "--n", "4", "--out", str(tmp_path / "s.png")]) == 0, \
        capsys.readouterr().err
    assert (tmp_path / "s.png").is_file()
    assert api.load(run) is not None
    assert cli.main(["report", str(run)]) == 0, capsys.readouterr().err
    (run / "report.html").read_bytes().decode("utf-8")  # valid UTF-8


def test_tensorboard_that_cannot_encode_its_folder_is_turned_off_once(tmp_path):
    pytest.importorskip("torch.utils.tensorboard")
    run = _non_utf8(tmp_path, b"r\xe9")
    run.mkdir()
    warnings = []
    logger = MetricsLogger(run, warn=warnings.append)
    logger.write({"step": 1, "d_loss": 1.0})
    logger.purge_from(2)  # a resume: no second try, no second warning
    logger.write({"step": 2, "d_loss": 0.5})
    logger.add_image("samples", __import__("torch").zeros(3, 4, 4), 2)
    logger.close()
    assert len(warnings) == 1 and "not valid UTF-8" in warnings[0], warnings
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2


def test_text_naming_a_path_that_is_not_utf8_is_written(tmp_path):
    path = tmp_path / "card.md"
    atomic_write_text(path, f"data: {os.fsdecode(b'bad' + bytes([0xE9]) + b'data')}\n")
    assert path.read_text(encoding="utf-8") == "data: bad\\udce9data\n"


# ----------------------------------------------------------------------------- symbolic links


def test_a_dangling_link_or_a_loop_is_named(tmp_path, run, capsys):
    """mkdir at such a link fails with "File exists", which had been all the message said."""
    dangling, loop_a, loop_b = tmp_path / "dangling", tmp_path / "loopA", tmp_path / "loopB"
    dangling.symlink_to(tmp_path / "missing" / "x")
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    code = cli.main(["train", "dcgan-fashion-mnist", "--out", str(dangling), "--quiet"])
    err = _one_line(capsys, code, "symbolic link to", str(tmp_path / "missing" / "x"), "remove the link")
    assert "File exists" not in err
    code = cli.main(["train", "dcgan-fashion-mnist", "--out", str(loop_a), "--quiet"])
    _one_line(capsys, code, "symbolic link in a loop", "remove the link")
    code = cli.main(["sample", str(run), "--n", "4", "--out", str(loop_a / "x.png")])
    _one_line(capsys, code, "loopA is a symbolic link in a loop")
    code = cli.main(["sample", str(run), "--n", "4", "--out", str(dangling / "x.png")])
    _one_line(capsys, code, "dangling is a symbolic link to")
    with pytest.raises(StorageError, match="dangling is a symbolic link to .*remove the link"):
        atomic_write_text(dangling / "r.html", "x")
    with pytest.raises(StorageError, match="dangling is a symbolic link to"):  # a folder onto it
        with atomic_path(dangling) as tmp:
            tmp.mkdir()
    assert dangling.is_symlink() and loop_a.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dangling", "loopA", "loopB"]


# ----------------------------------------------------------------------------- report


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX errno")
def test_a_read_only_run_folder_names_reports_out_option(run, monkeypatch, capsys):
    touch = pathlib.Path.touch

    def read_only(self, *args, **kwargs):
        if self.parent == run:
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return touch(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "touch", read_only)
    _one_line(capsys, cli.main(["report", str(run)]), "Read-only file system", "pass --out FILE")
    assert not (run / "report.html").exists()


def test_an_over_long_folder_in_out_leaves_no_parent_behind(tmp_path):
    """sub/<300 bytes>/x.png was refused in one line, but after sub/ had been made."""
    import pytest as _pytest

    from ganforge.atomic import atomic_path
    from ganforge.errors import StorageError

    dest = tmp_path / "sub" / ("c" * 300) / "x.png"
    with _pytest.raises(StorageError, match="file name too long"):
        with atomic_path(dest) as tmp:
            tmp.write_bytes(b"x")
    assert not (tmp_path / "sub").exists()
