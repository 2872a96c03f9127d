"""A --force killed while it deletes a run, a --resume of a run with no checkpoint yet, and the
lines of a full disk and of a folder that cannot be resumed."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from ganforge import cli, rundir
from ganforge.errors import CheckpointError, ConfigError


def _trained_run(tmp_path: Path, capsys) -> Path:
    """A toy run with everything a run directory holds: config.yaml, checkpoints/,
    metrics.jsonl, samples/ (and tensorboard/ where it is installed), and the lock file."""
    run = tmp_path / "run"
    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(run), "--quiet",
                     "train.sample_every=1", "train.log_every=1"]) == 0
    capsys.readouterr()
    assert {"config.yaml", "checkpoints", "metrics.jsonl", "samples", rundir.LOCK_NAME} <= {
        p.name for p in run.iterdir()}
    return run


class _Killed:
    """Makes the ``at``-th deletion (rmtree or unlink, counted from 0) raise KeyboardInterrupt,
    as a Ctrl-C or a kill -9 at that moment would stop the deletion there."""

    def __init__(self, monkeypatch, at: int | None):
        self.at, self.count = at, 0
        rmtree, unlink = shutil.rmtree, Path.unlink

        def counted(real):
            def delete(*args, **kwargs):
                if self.count == self.at:
                    raise KeyboardInterrupt
                self.count += 1
                return real(*args, **kwargs)
            return delete

        monkeypatch.setattr(rundir.shutil, "rmtree", counted(rmtree))
        monkeypatch.setattr(Path, "unlink", counted(unlink))


def _force(run: Path) -> None:
    rundir.claim_run_dir(run, force=True)[0].release()


def _undo_failed_start(run: Path) -> None:
    with rundir.RunLock(run) as lock:
        rundir.undo_failed_start(run, lock, False)


@pytest.mark.parametrize("delete", [_force, _undo_failed_start])
def test_a_deletion_killed_at_any_moment_leaves_what_the_next_force_accepts(tmp_path, monkeypatch,
                                                                            capsys, delete):
    """Killed when config.yaml had gone first, the folder (the lock file, metrics.jsonl,
    samples/, ...) had been refused by --force as "not a ganforge run" and by --resume."""
    run = _trained_run(tmp_path, capsys)
    with monkeypatch.context() as m:
        deletions = _Killed(m, None)
        delete(shutil.copytree(run, tmp_path / "count", symlinks=True))
    assert deletions.count >= 4
    for at in range(deletions.count):
        copy = shutil.copytree(run, tmp_path / f"killed-{at}", symlinks=True)
        with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
            _Killed(m, at)
            delete(copy)
        # config.yaml went last: what is left is still a run, or nothing but the lock file
        assert rundir.is_run_dir(copy) or [p.name for p in copy.iterdir()] == [rundir.LOCK_NAME], at
        rundir.check_new_run_dir(copy, force=True)  # accepted: no error
        rundir.claim_run_dir(copy, force=True)[0].release()  # and the next --force empties it
        assert [p.name for p in copy.iterdir()] == [rundir.LOCK_NAME], at


def test_what_a_killed_force_left_is_deleted_by_the_next_force(tmp_path, capsys):
    """The reviewer's folder, from a --force killed as config.yaml disappeared (it went first)."""
    run = _trained_run(tmp_path, capsys)
    for name in ("checkpoints", "config.yaml"):
        shutil.rmtree(run / name) if (run / name).is_dir() else (run / name).unlink()

    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ganforge: error: {run} is what is left of a ganforge run whose deletion was interrupted (it has no "
        f"config.yaml, so it cannot be resumed); pass --force (Python: force=True) to finish deleting "
        f"it, or choose another --out (Python: run_dir)")
    assert cli.main(["train", "--resume", "--out", str(run), "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ganforge: error: cannot resume: {run} is what is left of a ganforge run whose deletion was "
        f"interrupted (its config.yaml is gone); start a new run there with --force (Python: "
        f"force=True), or choose another --out (Python: run_dir)")

    holder = rundir.RunLock(run).acquire()  # a live process still deleting it is waited for
    with pytest.raises(rundir.RunBusy, match="is in use by process"):
        rundir.check_new_run_dir(run, force=True)
    holder.release()

    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(run), "--force", "--quiet"]) == 0
    assert sorted(p.name for p in (run / "checkpoints").glob("step_*"))[-1] == "step_0000002"

    # only ganforge's own lock file makes a folder without config.yaml one --force may delete
    (run / "config.yaml").unlink()
    (run / rundir.LOCK_NAME).unlink()
    with pytest.raises(ConfigError, match="is not a ganforge run"):
        rundir.check_new_run_dir(run, force=True)


def test_a_resume_before_the_first_checkpoint_saves_its_overrides(tmp_path, capsys):
    """A run killed while it wrote its first checkpoint: config.yaml and a temporary folder. Its
    resume trained with optim.g_lr=5e-4 but left config.yaml as it was, and the next resume
    quietly went back to the old rate ("a changed config: optim.g_lr 0.0005 -> 0.001")."""
    run = _trained_run(tmp_path, capsys)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints" / ".tmp-step_0000000-99999").mkdir(parents=True)
    (run / "metrics.jsonl").unlink()  # nothing trained yet (with its records, the resume is refused)
    before = yaml.safe_load((run / "config.yaml").read_text())
    assert before["optim"]["g_lr"] != 5e-4

    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "2", "optim.g_lr=5e-4",
                     "--quiet"]) == 0
    capsys.readouterr()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["optim"]["g_lr"], saved["train"]["steps"]) == (5e-4, 2)

    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "3", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "optim.g_lr" not in out and "train.steps 2 -> 3" in out, out


def _full_disk(monkeypatch, free: int = 1000):
    monkeypatch.setattr(rundir.shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=10**9, used=10**9 - free, free=free))


def test_a_full_disk_is_refused_before_the_run_is_announced(tmp_path, monkeypatch, capsys):
    """The refusal came after "ganforge: resuming ..." and told a resume to choose another --out,
    which cannot continue the run."""
    run = _trained_run(tmp_path, capsys)
    _full_disk(monkeypatch)
    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "4", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"ganforge: error: not enough free space in {run}: a checkpoint needs about "), err
    assert err.rstrip().endswith(" more)") and "; free some space (the run needs " in err, err
    assert "another --out" not in err

    new = tmp_path / "new"
    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(new), "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and not new.exists()
    assert err.rstrip().endswith("are free; free some space or choose another --out"), err


def test_force_counts_what_it_deletes_as_free(tmp_path, monkeypatch, capsys):
    """The check now comes before --force deletes the old run: the space that run holds is room."""
    run = _trained_run(tmp_path, capsys)  # its two checkpoints hold about 1.4 MB
    _full_disk(monkeypatch, free=2**20)  # where a checkpoint needs about 2 MB
    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(tmp_path / "new"), "--quiet"]) == 2
    assert "not enough free space" in capsys.readouterr().err
    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(run), "--force", "--quiet"]) == 0


def test_a_resume_of_no_run_points_to_a_new_run(tmp_path):
    """The line said "Start a new run without --resume (Python: resume=True)"."""
    with pytest.raises(CheckpointError) as exc:
        rundir.lock_existing_run(tmp_path)
    assert str(exc.value).endswith("Start a new run without --resume (Python: resume=False)")
