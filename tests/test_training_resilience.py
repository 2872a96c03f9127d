"""What a training run keeps and says when it is cut short: a kill or a second Ctrl-C inside a
checkpoint write, a full disk in any file the run writes (TensorBoard's included), a signal at a
step just saved, a resume's leftovers and redone steps, a stretched learning-rate schedule, and
progress written to a log file."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import sys
import threading

import pytest
import torch

from conftest import random_dataset, tiny_config
from ganforge.commands import train as train_command
from ganforge import api, cli, provenance
from ganforge.training import checkpoint as ckpt
from ganforge.errors import TrainingInterrupted

FULL = OSError(errno.ENOSPC, "No space left on device")
TOY = ["train.batch_size=32", "train.log_every=10", "train.sample_every=20", "train.checkpoint_every=20"]


def _train(cfg, run_dir, **kw):
    kw.setdefault("progress", False)
    return api.train(cfg, run_dir, dataset=random_dataset(), **kw)


def _toy(run, *extra, steps=40):
    return cli.main(["train", "toy-ring8", "--steps", str(steps), "--out", str(run), "--quiet", *TOY, *extra])


def _one_line(capsys, code, *needles, absent=()):
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err and "Exception in" not in err, err
    for needle in needles:
        assert needle in err, err
    for needle in absent:
        assert needle not in err, err
    return err


def _save(root, step):
    return ckpt.save(root, step, {"G.w": torch.full((2,), float(step))}, {"step": step}, keep=0)


class _Cut(BaseException):
    """A kill at that point (SIGKILL, or the KeyboardInterrupt of a second Ctrl-C)."""


def _cut_after(monkeypatch, predicate):
    """os.replace that stops the process (raises _Cut) right after the rename ``predicate`` picks."""
    real = os.replace

    def replace(src, dst, *a, **k):
        real(src, dst, *a, **k)
        if predicate(str(src), str(dst)):
            raise _Cut

    monkeypatch.setattr(os, "replace", replace)


# ----------------------------------------------------------------------------- 1. latest


def _kill_saving_step_6(tmp_path, monkeypatch, predicate):
    """Checkpoints/step_3 saved, then the save of step 6 killed at the rename ``predicate`` picks."""
    root = tmp_path / "run" / "checkpoints"
    _save(root, 3)
    _cut_after(monkeypatch, predicate)
    with pytest.raises(_Cut):
        _save(root, 6)
    monkeypatch.undo()
    return root


def test_a_kill_after_the_new_folder_is_in_place_keeps_it_as_latest(tmp_path, monkeypatch, capsys):
    root = _kill_saving_step_6(tmp_path, monkeypatch, lambda src, dst: dst.endswith("step_0000006"))
    assert ckpt.find(tmp_path / "run").name == "step_0000006"  # it was ignored for step_0000003
    train_command._say_what_survived(tmp_path / "run")  # the second Ctrl-C's message names what is kept
    err = capsys.readouterr().err
    assert "keeps " + str(root / "step_0000006") in err, err


def test_a_kill_before_the_new_folder_is_in_place_keeps_the_previous(tmp_path, monkeypatch):
    root = _kill_saving_step_6(tmp_path, monkeypatch, lambda src, dst: dst.endswith("latest"))
    assert (root / "latest").read_text() == "step_0000006\n" and not (root / "step_0000006").exists()
    assert ckpt.find(tmp_path / "run").name == "step_0000003"
    assert ckpt.clean_leftovers(root) == [".tmp-step_0000006-%d" % os.getpid()]


def test_an_older_latest_after_a_rollback_is_kept(tmp_path):
    """A rollback to step 3 abandons step 6; the next save (step 4) points latest back: step 4
    is what the run keeps, not the newer abandoned step 6."""
    root = tmp_path / "run" / "checkpoints"
    for step in (3, 6, 4):
        _save(root, step)
    assert ckpt.find(tmp_path / "run").name == "step_0000004"
    (root / "latest").write_text("step_0000005\n")  # a save of step 5 cut short
    assert ckpt.find(tmp_path / "run").name == "step_0000004"


# ----------------------------------------------------------------------------- 2. TensorBoard


def _tensorboard_full(monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.compat.tensorflow_stub.io import gfile

    def full(self, filename, *a, **k):
        raise FULL

    monkeypatch.setattr(gfile.LocalFileSystem, "_write", full)


def test_a_full_disk_in_tensorboard_is_one_line(tmp_path, monkeypatch, capsys):
    _tensorboard_full(monkeypatch)
    printed = []
    monkeypatch.setattr(threading, "excepthook", lambda args: printed.append(args.exc_value))
    run = tmp_path / "run"
    code = _toy(run)
    _one_line(capsys, code, f"cannot write {run / 'tensorboard'} at step 10 (No space left on device)",
              "the last checkpoint step_0000000 is intact", f"ganforge train --resume --out {run}")
    assert printed == []  # no "Exception in thread" from the writer's thread


def test_a_close_on_the_way_out_does_not_replace_the_error(tmp_path, monkeypatch, capsys):
    pytest.importorskip("tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    def full(*a, **k):
        raise FULL

    monkeypatch.setattr(SummaryWriter, "flush", full)  # as the writer's thread re-raises it
    monkeypatch.setattr(provenance, "save", full)  # the sample grid fails first
    run = tmp_path / "run"
    _one_line(capsys, _toy(run), f"cannot write {run / 'samples' / 'step_0000020.png'}",
              absent=("tensorboard",))


# ----------------------------------------------------------------------------- 3. sample grid


def test_a_full_disk_while_writing_a_sample_grid_names_the_checkpoint_and_resume(tmp_path, monkeypatch, capsys):
    def full(*a, **k):
        raise FULL

    monkeypatch.setattr(provenance, "save", full)
    run = tmp_path / "run"
    _one_line(capsys, _toy(run),
              f"cannot write {run / 'samples' / 'step_0000020.png'}: No space left on device (at step 20)",
              "the last checkpoint step_0000000 is intact; free some space and continue with: "
              f"ganforge train --resume --out {run}",
              absent=("choose another path", "left as it was"))
    assert not list((run / "samples").iterdir())  # no temporary file left


# ----------------------------------------------------------------------------- 4. same step again


def test_a_signal_right_after_a_checkpoint_does_not_write_it_again(tmp_path, monkeypatch):
    saves = []
    real = ckpt.save

    def save(root, step, *a, **k):
        saves.append(step)
        out = real(root, step, *a, **k)
        if saves == [0, 3]:
            os.kill(os.getpid(), signal.SIGINT)  # arrives right after the periodic save
        return out

    monkeypatch.setattr(ckpt, "save", save)
    with pytest.raises(TrainingInterrupted) as stop:
        _train(tiny_config(**{"train.log_every": 1}), tmp_path / "run")
    result = stop.value.result
    assert result.interrupted == "SIGINT" and result.step == 3
    assert saves == [0, 3] and result.checkpoint.name == "step_0000003"
    weights, state = ckpt.load(result.checkpoint)
    assert state["step"] == 3
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if json.loads(line).get("event") != "end"]  # the closing record says how the run ended
    assert steps == [1, 2, 3]


def test_a_kill_inside_the_swap_of_a_step_saved_again_loses_nothing(tmp_path, monkeypatch):
    root = tmp_path / "run" / "checkpoints"
    _save(root, 3)
    _save(root, 6)
    _cut_after(monkeypatch, lambda src, dst: "/.old-step_0000006" in dst)
    with pytest.raises(_Cut):  # step 6 written again (a rollback reached it again)
        ckpt.save(root, 6, {"G.w": torch.full((2,), 60.0)}, {"step": 6}, keep=0)
    monkeypatch.undo()
    assert not (root / "step_0000006").exists()
    ckpt.clean_leftovers(root)  # the next start, under the run's lock
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000003", "step_0000006"]
    weights, _ = ckpt.load(ckpt.find(tmp_path / "run"))
    assert weights["G.w"].tolist() == [60.0, 60.0]  # the new copy: it was complete


def test_a_moved_aside_step_without_its_new_copy_is_put_back(tmp_path):
    root = tmp_path / "run" / "checkpoints"
    _save(root, 3)
    _save(root, 6)
    os.replace(root / "step_0000006", root / ".old-step_0000006-4242")
    (root / ".tmp-step_0000006-4242").mkdir()  # cut short: no state.pt
    ckpt.clean_leftovers(root)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000003", "step_0000006"]
    assert ckpt.find(tmp_path / "run").name == "step_0000006"


def test_a_resume_puts_a_moved_aside_step_back_before_it_picks_one(tmp_path):
    """A kill inside the swap of a step saved again leaves it moved aside: the resume cleans up
    first (it holds the lock), so it continues from that step, not the one before."""
    run = tmp_path / "run"
    _train(tiny_config(), run)
    os.replace(run / "checkpoints" / "step_0000006", run / "checkpoints" / ".old-step_0000006-4242")
    result = _train(tiny_config(**{"train.steps": 9}), run, resume=True)
    assert result.start == 6 and result.step == 9


# ----------------------------------------------------------------------------- 5. leftovers


def test_a_resume_removes_the_runs_temporary_files_only(tmp_path):
    run = tmp_path / "run"
    _train(tiny_config(), run)
    ours = [run / "samples" / ".step_0000009.png.tmp99999.png", run / ".metrics.jsonl.tmp99999.jsonl",
            run / ".config.yaml.tmp99999.yaml"]
    others = [run / "samples" / "notes.tmp", run / ".report.html.tmp99999.html",
              run / "samples" / ".grid.png.tmp99999.png"]  # another command's, or the user's
    for path in ours + others:
        path.write_bytes(b"partial")
    _train(api.resume_config(run, ["train.steps=9"]), run, resume=True)
    assert [p for p in ours if p.exists()] == [] and all(p.exists() for p in others)


# ----------------------------------------------------------------------------- 6. TensorBoard on resume


def test_tensorboard_drops_the_steps_a_resume_redoes(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    _train(tiny_config(**{"train.log_every": 1}), run)
    root = run / "checkpoints"
    shutil.rmtree(root / "step_0000006")  # as if killed before the last checkpoint was written
    (root / "latest").write_text("step_0000003\n")
    _train(api.resume_config(run, []), run, resume=True)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("d_loss")] == [1, 2, 3, 4, 5, 6]


# ----------------------------------------------------------------------------- 7. schedule


def test_a_longer_resume_with_lr_decay_says_the_schedule_is_stretched(tmp_path, capsys):
    run = tmp_path / "run"
    _train(tiny_config(**{"train.steps": 3, "optim.lr_decay": "linear"}), run)
    capsys.readouterr()
    _train(api.resume_config(run, ["train.steps=6"]), run, resume=True)
    out = capsys.readouterr().out
    assert out.count("learning-rate schedule is stretched") == 1, out
    assert "(3 -> 6)" in out and "differs from a run trained 6 steps from the start" in out


def test_a_shorter_resume_with_lr_decay_says_the_schedule_is_compressed(tmp_path, capsys):
    """Ending a 20000-step run at 250 had said the schedule is "stretched"."""
    run = tmp_path / "run"
    _train(tiny_config(**{"train.steps": 6, "optim.lr_decay": "linear"}), run)
    shutil.rmtree(run / "checkpoints" / "step_0000006")  # as if stopped after step 3
    (run / "checkpoints" / "latest").write_text("step_0000003\n")
    capsys.readouterr()
    _train(api.resume_config(run, ["train.steps=5"]), run, resume=True)
    out = capsys.readouterr().out
    assert "(6 -> 5): the learning-rate schedule is compressed to the new length from step 3 on" in out, out


def test_no_schedule_note_without_lr_decay_or_for_the_same_length(tmp_path, capsys):
    run = tmp_path / "run"
    _train(tiny_config(**{"train.steps": 3}), run)
    _train(api.resume_config(run, ["train.steps=6"]), run, resume=True)  # no schedule to stretch
    other = tmp_path / "other"
    _train(tiny_config(**{"optim.lr_decay": "linear"}), other)
    shutil.rmtree(other / "checkpoints" / "step_0000006")  # as if killed before step 6 was saved
    (other / "checkpoints" / "latest").write_text("step_0000003\n")
    _train(api.resume_config(other, []), other, resume=True)  # the same train.steps
    assert "stretched" not in capsys.readouterr().out


# ----------------------------------------------------------------------------- 8. progress


def test_progress_in_a_log_file_is_plain_lines(tmp_path, capsys):
    _train(tiny_config(**{"train.steps": 40, "train.log_every": 10, "train.sample_every": 40,
                          "train.checkpoint_every": 40}), tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 10, err
    assert lines[0].startswith("ganforge: step 4/40 (10%), ") and "steps/s" in lines[0]
    assert lines[-1].startswith("ganforge: step 40/40 (100%), ") and "D=" in lines[-1] and "G=" in lines[-1]


def test_progress_on_a_terminal_is_the_bar(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)  # a terminal 80 columns wide
    monkeypatch.setattr(sys.stderr, "fileno", lambda: 2, raising=False)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd=None: os.terminal_size((80, 24)))
    _train(tiny_config(), tmp_path / "run", progress=True)
    err = capsys.readouterr().err
    assert "\r" in err and "ganforge: step" not in err


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
@pytest.mark.parametrize("columns", [80, 200])
def test_the_bar_keeps_whole_numbers_that_fit_a_narrow_terminal(columns):
    """At 80 columns tqdm had cut the numbers where the width ran out ("D(x)=0.688 D(G(z"), and
    images per second never showed; now the bar keeps D, G and img/s whole, and everything on a
    wide terminal."""
    import fcntl
    import struct
    import termios
    from tqdm import tqdm

    from ganforge.training import display

    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    with os.fdopen(side, "w") as fp:
        bar = tqdm(total=1000, initial=123, unit="step", desc="run", file=fp, dynamic_ncols=True)
        record = {"d_loss": 0.706, "g_loss": 1.767, "d_real": 0.688, "d_fake": 0.312, "img_per_s": 44.0}
        text = display.fit_postfix(display.postfix_parts(record, raw=True), bar)
        meter = bar.format_meter(**{**bar.format_dict, "postfix": text, "ncols": None})
        bar.close()
    os.close(main)
    if columns == 80:
        assert text == "D=0.706 G=1.767 img/s=44", text
        assert len(meter) - 10 + 5 <= columns, meter  # with 5 columns of bar, nothing cut
    else:
        assert text == display.postfix(record, raw=True) and "D(G(z))=0.312 (raw scores)" in text, text
