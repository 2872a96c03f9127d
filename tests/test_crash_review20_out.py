"""Crash-safety review 20: refusals of an output path give advice that works, and come before the
start line. export/augment --out that --force would refuse; a new train on a run another process
holds; a refused start (the lock taken by another, a parent that is a file) says no "training ..."."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import random_dataset, tiny_config
from ganforge import api, cli, rundir, synthetic
from ganforge.errors import ConfigError, StorageError
from ganforge.serve import export


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _one_line(capsys, code, *needles):
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "training" not in captured.out, captured.out  # no start line before the refusal
    for needle in needles:
        assert needle in err, err
    return err


# ----------------------------------------------------------------------------- export / augment --out


def _user_things(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("x")
    afile = tmp_path / "afile"
    afile.write_text("hi")
    return notes, afile


def test_export_folder_says_force_will_not_replace_what_is_not_a_model_folder(tmp_path):
    notes, afile = _user_things(tmp_path)
    for out, why in ((notes, "it holds todo.txt"), (afile, "it is a file")):
        before = _files(tmp_path)
        with pytest.raises(ConfigError) as info:  # refused before the run is used
            export.export_folder(None, out)
        message = str(info.value)
        assert "pass --force" not in message and "\n" not in message, message
        assert message.startswith(f"{out} already exists and is not a model folder ({why}"), message
        assert "--force would not replace it; choose another --out" in message
        assert _files(tmp_path) == before
        with pytest.raises(ConfigError, match="^--force replaces only a model folder; "):
            export.export_folder(None, out, force=True)  # and --force, as that line says, refuses it
    model = tmp_path / "model"  # a ganforge model folder: --force replaces it, so it is advised
    model.mkdir()
    (model / "config.json").write_text('{"ganforge_model": 1}')
    with pytest.raises(ConfigError, match="already exists; pass --force to replace it"):
        export.export_folder(None, model)


def test_augment_says_force_will_not_replace_what_is_not_its_export(tmp_path):
    notes, afile = _user_things(tmp_path)
    for out, needle in ((notes, "is not a dataset written by ganforge augment (no classes.json)"),
                        (afile, "is a file; --format folder writes a directory")):
        before = _files(tmp_path)
        with pytest.raises(ConfigError) as info:
            synthetic.export(None, out, per_class=1, fmt="folder")
        message = str(info.value)
        assert "pass --force" not in message and "\n" not in message, message
        assert needle in message and "--force would not replace it; choose another --out" in message
        assert _files(tmp_path) == before
        with pytest.raises(ConfigError, match="^--force refused: "):
            synthetic.export(None, out, per_class=1, fmt="folder", force=True)
        assert _files(tmp_path) == before


# ----------------------------------------------------------------------------- train --out


def _held(path: Path, *, run: bool) -> rundir.RunLock:
    """``path`` locked as another trainer holds it (an open file description of its own: flock
    conflicts between two of one process as between two processes); ``run``: a run it trains,
    else a directory it has just claimed (the lock file alone)."""
    path.mkdir()
    if run:
        (path / "config.yaml").write_text("objective: unconditional\n")
        (path / "metrics.jsonl").write_text("")
    return rundir.RunLock(path).acquire()


def test_new_run_on_a_held_run_names_the_holder_not_resume_or_force(tmp_path, capsys):
    run = tmp_path / "two"
    lock = _held(run, run=True)
    try:
        with pytest.raises(rundir.RunBusy, match=f"^run directory {run} is in use by process {os.getpid()}"):
            rundir.check_new_run_dir(run, force=False)
        with pytest.raises(rundir.RunBusy, match=f"^--force .* refused: run directory {run} is in use"):
            rundir.check_new_run_dir(run, force=True)
        code = cli.main(["train", "dcgan-fashion-mnist", "--out", str(run), "--steps", "20", "--quiet"])
        err = _one_line(capsys, code, f"run directory {run} is in use by process {os.getpid()}")
        assert "already exists" not in err and "--resume" not in err
        (run / "config.yaml").unlink()  # a run whose deletion another --force is finishing
        with pytest.raises(rundir.RunBusy, match="is in use by process"):
            rundir.check_new_run_dir(run, force=False)
    finally:
        lock.release()
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_NAME, "metrics.jsonl"]


def test_a_start_refused_by_the_lock_calls_no_on_start(tmp_path, monkeypatch):
    """Three starts on one new --out: each found it free, one locked it, the others were refused
    after their start line. Made deterministic: the lock is taken by "another process" between
    the first check and the claim (while the data is read and the disk checked)."""
    run = tmp_path / "race"
    taken = []
    free_space = rundir.check_free_space

    def another_start_wins(*args, **kwargs):
        taken.append(_held(run, run=False))
        return free_space(*args, **kwargs)

    monkeypatch.setattr(rundir, "check_free_space", another_start_wins)
    said = []
    cfg = tiny_config(**{"monitor.enabled": False, "train.steps": 2})
    try:
        with pytest.raises(rundir.RunBusy, match=f"in use by process {os.getpid()}"):
            api.train(cfg, run, progress=False, dataset=random_dataset(), on_start=said.append)
        assert said == []  # no "training ..." before the refusal
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_NAME]  # the winner's, untouched
    finally:
        for lock in taken:
            lock.release()
    monkeypatch.undo()
    said_data = []  # a start that is not refused still says it, with the locked run directory
    api.train(cfg, tmp_path / "free", progress=False, dataset=random_dataset(),
              on_start=lambda run_dir, data=None: said_data.append((run_dir, rundir.is_locked(run_dir))))
    assert said_data == [(tmp_path / "free", True)]


def test_out_under_a_file_is_refused_before_the_start_line(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("hi")
    with pytest.raises(StorageError, match=f"^cannot write run directory {afile / 'sub'}: {afile} is a "
                                           f"file, not a directory; choose another --out"):
        rundir.check_new_run_dir(afile / "sub", force=False)
    code = cli.main(["train", "dcgan-fashion-mnist", "--out", str(afile / "sub"), "--steps", "20", "--quiet"])
    _one_line(capsys, code, f"{afile} is a file, not a directory")
    said = []
    with pytest.raises(StorageError, match="is a file, not a directory"):
        api.train(tiny_config(**{"monitor.enabled": False}), afile / "a" / "b", progress=False,
                  dataset=random_dataset(), on_start=said.append)
    assert said == [] and afile.read_text() == "hi"
