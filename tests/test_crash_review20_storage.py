"""Crash review 20: a run folder (or its tensorboard/) removed while training, and a full disk
while writing a file that was not there before."""
from __future__ import annotations

import errno
import pathlib
import shutil
import time

import pytest

from ganforge import cli, provenance
from ganforge.atomic import atomic_write_bytes
from ganforge.errors import StorageError
from ganforge.training import checkpoint as ckpt
from ganforge.training.logger import MetricsLogger

TOY = ["train.batch_size=32", "train.sample_every=20", "train.checkpoint_every=20"]


def _toy(run, *extra, steps=60):
    return cli.main(["train", "toy-ring8", "--steps", str(steps), "--out", str(run), "--quiet", *TOY, *extra])


def _one_line(capsys, code) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _remove_after_save(monkeypatch, path, at_step=20):
    """``path`` is removed right after the checkpoint of ``at_step`` is written, as ``rm -rf`` does."""
    real = ckpt.save

    def save(root, step, *a, **k):
        out = real(root, step, *a, **k)
        if step == at_step:
            shutil.rmtree(path)
        return out
    monkeypatch.setattr(ckpt, "save", save)


# ----------------------------------------------------------------------------- 1. folders removed


def test_tensorboard_folder_removed_while_logging_is_made_again_with_one_warning(tmp_path, capsys):
    """The writer's thread could not append to its event file: an OSError naming tensorboard/,
    exit 1 with a traceback."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    log = MetricsLogger(tmp_path)  # warnings go to stderr
    log.write({"step": 1, "d_loss": 0.5})
    shutil.rmtree(log.tb_dir)
    step, err = 1, ""
    while not err and step < 300:  # the thread fails on its next event; a later call sees it
        step += 1
        log.write({"step": step, "d_loss": 0.25})
        err += capsys.readouterr().err
        time.sleep(0.01)
    log.write({"step": step + 1, "d_loss": 0.25})
    log.close()
    err += capsys.readouterr().err
    assert err == (f"ganforge: {log.tb_dir} was removed while training; made it again (the "
                   f"TensorBoard events it held are gone)\n")
    events = list(log.tb_dir.iterdir())
    assert len(events) == 1, events
    acc = EventAccumulator(str(log.tb_dir))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("d_loss")]
    assert steps[-2:] == [step, step + 1]  # the call that met the error was made again, and later ones
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == step + 1


def test_run_folder_removed_while_training_is_one_line_exit_2(tmp_path, monkeypatch, capsys):
    """metrics.jsonl could not be opened: FileNotFoundError, a traceback, exit 1."""
    run = tmp_path / "run"
    _remove_after_save(monkeypatch, run)
    err = _one_line(capsys, _toy(run, "train.log_every=10"))
    assert err.endswith(f"the run folder {run} was removed while training (at step 30); no checkpoint is "
                        f"left to resume from: start the training again (ganforge train ... --out {run})"), err
    assert not run.exists()  # nothing made again in its place


def test_run_folder_removed_before_a_sample_grid_is_not_made_again(tmp_path, monkeypatch, capsys):
    """The grid's write made the run folder again (atomic_path makes the parents), holding only
    samples/; TensorBoard's missing folder was then a traceback (or, made again too, the run
    trained on into that new folder)."""
    run = tmp_path / "run"
    _remove_after_save(monkeypatch, run)
    err = _one_line(capsys, _toy(run, "train.log_every=50"))
    assert f"the run folder {run} was removed while training (at step 40)" in err, err
    assert not run.exists()


def test_a_folder_of_the_run_removed_under_a_write_names_the_checkpoint_to_resume(tmp_path, monkeypatch, capsys):
    """samples/ removed between atomic_path making it and the grid's write: a traceback, exit 1."""
    run = tmp_path / "run"

    def gone(image, path, *a, **k):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", str(path))
    monkeypatch.setattr(provenance, "save", gone)
    err = _one_line(capsys, _toy(run, "train.log_every=10"))
    assert err.endswith(f"cannot write {run / 'samples' / 'step_0000020.png'} at step 20: its folder was "
                        "removed while training; the last checkpoint step_0000000 is intact; continue "
                        f"with: ganforge train --resume --out {run}"), err


# ----------------------------------------------------------------------------- 4. full disk, new file


def test_a_full_disk_while_writing_a_new_file_says_nothing_was_written(tmp_path, monkeypatch):
    """It said "(new.bin was left as it was)" of a file that never existed."""
    (tmp_path / "old.bin").write_bytes(b"old")
    real = pathlib.Path.write_bytes

    def full(self, data):
        real(self, data[:1])  # part of it, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pathlib.Path, "write_bytes", full)
    with pytest.raises(StorageError) as new:
        atomic_write_bytes(tmp_path / "new.bin", b"new data")
    with pytest.raises(StorageError) as old:
        atomic_write_bytes(tmp_path / "old.bin", b"new data")
    fix = "No space left on device; free some space or choose another path"
    assert str(new.value) == f"cannot write {tmp_path / 'new.bin'}: {fix} (nothing was written)"
    assert str(old.value) == f"cannot write {tmp_path / 'old.bin'}: {fix} (old.bin was left as it was)"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.bin"]
    assert (tmp_path / "old.bin").read_bytes() == b"old"
