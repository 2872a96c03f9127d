"""Issue 21: nothing lost, one line every time. --force, one process per run directory, full and
read-only disks, validation before anything is written, resume config changes."""
from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, random_dataset, tiny_config
from ganforge import api, cli, rundir
from ganforge.errors import CheckpointError, ConfigError, StorageError
from ganforge.training import checkpoint as ckpt


def _cfg(**overrides):
    """tiny_config without the monitor (its probe classifier costs seconds and is not tested here)."""
    return tiny_config(**{"monitor.enabled": False, **overrides})


def _train(cfg, run_dir, **kw):
    return api.train(cfg, run_dir, progress=False, dataset=random_dataset(), **kw)


def _one_line(capsys, code, *needles):
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def _child(code: str, *args) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src") + os.pathsep + str(ROOT / "tests")}
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


HOLD = ("import sys, time\nfrom pathlib import Path\nfrom ganforge.rundir import RunLock\n"
        "p = Path(sys.argv[1]); p.mkdir(parents=True, exist_ok=True)\nRunLock(p).acquire()\n"
        "print('locked', flush=True)\ntime.sleep(60)\n")


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of a directory; yields (process, directory)."""
    procs = []

    def start(path: Path):
        proc = _child(HOLD, path)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    for proc in procs:
        proc.kill()
        proc.wait(timeout=30)


# ----------------------------------------------------------------------------- 1. --force


def test_force_never_deletes_a_folder_that_is_not_a_run(tmp_path, capsys):
    docs = tmp_path / "important_docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("mine")
    (docs / "config.yaml").write_text("not ganforge's\n")  # config.yaml alone is not a run
    with pytest.raises(ConfigError, match="not a ganforge run .*nothing was deleted"):
        _train(_cfg(), docs, force=True)
    code = cli.main(["train", "dcgan-fashion-mnist", "--out", str(docs), "--force", "--quiet"])
    _one_line(capsys, code, "--force (Python: force=True) refused", "notes.txt")
    assert sorted(p.name for p in docs.iterdir()) == ["config.yaml", "notes.txt"]
    assert (docs / "notes.txt").read_text() == "mine"


def test_force_replaces_a_run_and_only_a_run(tmp_path):
    run = tmp_path / "run"
    _train(_cfg(), run)
    assert rundir.is_run_dir(run) and ckpt.find(run).name == "step_0000006"
    _train(_cfg(**{"train.steps": 2}), run, force=True)
    assert ckpt.find(run).name == "step_0000002"
    assert not (run / "checkpoints" / "step_0000006").exists()
    assert [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()
            if '"event": "end"' not in x] == [2]  # the closing end record aside


def test_force_refused_while_a_live_process_holds_the_run(tmp_path, holder):
    run = tmp_path / "run"
    _train(_cfg(), run)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    proc = holder(run)
    with pytest.raises(rundir.RunBusy, match=f"in use by process {proc.pid}"):
        _train(_cfg(), run, force=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


# ----------------------------------------------------------------------------- 2. one process


def test_second_trainer_on_a_run_is_refused_naming_the_pid(tmp_path):
    """Two real trainers: the second --resume gets one line with the first one's PID."""
    run = tmp_path / "run"
    code = ("import sys\nfrom conftest import random_dataset, tiny_config\nfrom ganforge import api\n"
            "cfg = tiny_config(**{'monitor.enabled': False, 'train.steps': 100000, 'train.checkpoint_every': 5})\n"
            "api.train(cfg, sys.argv[1], progress=False, dataset=random_dataset())\n")
    first = _child(code, run)
    try:
        deadline = time.time() + 120
        while not any((run / "checkpoints").glob("step_*")) and time.time() < deadline:
            assert first.poll() is None, first.communicate()
            time.sleep(0.2)
        assert rundir.holder_pid(run) == first.pid and rundir.is_locked(run)
        from conftest import run_cli

        second = run_cli("train", "--resume", "--out", run, "--quiet", timeout=120)
        assert second.returncode == 2, second.stderr
        assert second.stderr.strip().splitlines() == [
            f"ganforge: error: run directory {run} is in use by process {first.pid} (a ganforge "
            f"train still running); wait for it to end or stop it, or choose another --out (Python: run_dir)"]
        assert first.poll() is None  # the first one trains on, untouched
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
    # killed with SIGKILL: the lock file stays, but the kernel released the lock
    assert (run / rundir.LOCK_NAME).is_file() and not rundir.is_locked(run)
    step = int(ckpt.find(run).name[len("step_"):])
    result = _train(api.resume_config(run, [f"train.steps={step + 1}"]), run, resume=True)
    assert result.step == step + 1


def test_stale_lock_of_a_killed_process_never_blocks_a_resume(tmp_path):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 3}), run)
    proc = _child("import os, signal, sys\nfrom pathlib import Path\nfrom ganforge.rundir import RunLock\n"
                  "RunLock(Path(sys.argv[1])).acquire()\nos.kill(os.getpid(), signal.SIGKILL)\n", run)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert rundir.holder_pid(run) == proc.pid  # its PID is still written there
    result = _train(api.resume_config(run, ["train.steps=6"]), run, resume=True)
    assert result.step == 6 and rundir.holder_pid(run) == os.getpid()
    assert not rundir.is_locked(run)  # released when train returned


def test_two_fresh_starts_cannot_share_a_directory(tmp_path, holder):
    """The loser of the race on a new --out gets the winner's PID, and writes nothing."""
    run = tmp_path / "new"
    proc = holder(run)  # the winner has created and locked the directory, nothing else yet
    with pytest.raises(rundir.RunBusy, match=f"in use by process {proc.pid}"):
        _train(_cfg(), run)
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_NAME]


# ----------------------------------------------------------------------------- 3. full disk


def _fail_nth_save(monkeypatch, n: int, exc: Exception):
    calls = {"n": 0}
    real = ckpt.save_tensors

    def save_tensors(tensors, filename, metadata=None):
        calls["n"] += 1
        if calls["n"] >= n:
            Path(filename).write_bytes(b"partial")  # a half-written file, as on a full disk
            raise exc
        return real(tensors, filename, metadata)

    monkeypatch.setattr(ckpt, "save_tensors", save_tensors)


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 OSError(errno.EROFS, "Read-only file system"),
                                 RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")],
                         ids=["ENOSPC", "EROFS", "torch-short-write"])
def test_checkpoint_write_failure_is_one_line_and_keeps_the_previous(tmp_path, monkeypatch, capsys, exc):
    run = tmp_path / "run"
    _fail_nth_save(monkeypatch, 3, exc)  # step 0 and step 3 are written, step 6 fails
    with pytest.raises(StorageError) as info:
        _train(_cfg(), run)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert "cannot write checkpoint step_0000006" in message and "enforce fail" not in message
    assert "the previous checkpoint step_0000003 is intact" in message
    assert f"ganforge train --resume --out {run}" in message
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")] == []
    weights, state = ckpt.load(ckpt.find(run))
    assert ckpt.find(run).name == "step_0000003" and state["step"] == 3
    monkeypatch.undo()
    result = _train(api.resume_config(run, []), run, resume=True)
    assert result.step == 6 and not rundir.is_locked(run)


def test_leftover_temporary_folders_are_removed_on_the_next_start(tmp_path):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 3}), run)
    root = run / "checkpoints"
    for name in (".tmp-step_0000009-424242", ".old-step_0000003-424242"):
        (root / name).mkdir()
        (root / name / "weights.safetensors").write_bytes(b"partial")
    (root / ".latest.tmp424242").write_text("step_0000009\n")
    _train(api.resume_config(run, ["train.steps=4"]), run, resume=True)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step_0000003", "step_0000004"]


def _mount_tmpfs(path: Path, size: str, *options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    opts = ",".join((f"size={size}", *options))
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)],
                              capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mounted = []

    def mount(name: str, size: str, *options: str) -> Path:
        path = tmp_path / name
        if not _mount_tmpfs(path, size, *options):
            pytest.skip("cannot mount a tmpfs here (needs root and mount permission); the "
                        "monkeypatched ENOSPC tests cover the same code")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=30)


def test_disk_fills_up_during_training_on_a_real_tmpfs(tmpfs, capsys):
    disk = tmpfs("disk", "1600k")
    run = disk / "run"
    cfg = _cfg(**{"train.steps": 10_000, "train.checkpoint_every": 1, "train.keep_checkpoints": 10_000,
                         "train.sample_every": 10_000, "train.log_every": 10_000})
    with pytest.raises(StorageError) as info:
        _train(cfg, run)
    message = str(info.value)
    assert len(message.splitlines()) == 1, message
    assert "No space left on device" in message or "the disk is probably full" in message, message
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert leftovers == []
    last = ckpt.find(run)
    assert f"the previous checkpoint {last.name} is intact" in message
    weights, state = ckpt.load(last)
    assert state["step"] == int(last.name.split("_")[1]) > 0


def test_not_enough_space_or_permission_is_checked_before_training(tmp_path, monkeypatch, tmpfs):
    run = tmp_path / "run"
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(StorageError, match=rf"not enough free space in {run}: a checkpoint needs "
                                           rf"about [0-9.]+ MB, 1.0 KB are free"):
        _train(_cfg(), run)
    assert not run.exists()  # the failed start left nothing behind
    monkeypatch.undo()
    readonly = tmpfs("ro", "1m", "ro")
    with pytest.raises(StorageError, match="Read-only file system; choose a writable --out"):
        _train(_cfg(), readonly / "run")


# ----------------------------------------------------------------------------- 4, 5. validation


@pytest.mark.parametrize("override, needle", [
    ("optim.g_lr=.nan", "optim.g_lr must be a finite number, got nan"),
    ("optim.d_lr=.inf", "optim.d_lr must be a finite number, got inf"),
    ("optim.d_lr=50", "optim.d_lr=50 is far above any learning rate"),
    ("reg.r1=.nan", "reg.r1 must be a finite number"),
    ("data.resolution=100000", "needs at least"),
    ("data.name=folder:", "folder: needs a path"),
    ("foo.bar=1", "unknown config section 'foo' in 'foo.bar'; valid sections: data, model"),
])
def test_bad_values_are_one_line_and_create_nothing(tmp_path, capsys, override, needle):
    out = tmp_path / "run"
    code = cli.main(["train", "dcgan-fashion-mnist", override, "--out", str(out), "--quiet",
                     "train.device=cpu"])
    _one_line(capsys, code, needle)
    assert not out.exists()


def test_memory_estimate_is_the_float32_batch(monkeypatch):
    from ganforge import config as config_mod

    monkeypatch.setattr(config_mod, "available_memory", lambda: 10**9)
    tiny_config(**{"data.resolution": 256, "train.batch_size": 950})  # 950*65536*4 = 0.249 GB: fits
    with pytest.raises(ConfigError, match=r"needs at least 1.0 GB for one float32 batch, more than "
                                          r"the 1.0 GB"):
        tiny_config(**{"data.resolution": 256, "train.batch_size": 3815})  # 1.0001 GB


def test_a_failed_start_leaves_nothing_and_the_retry_works(tmp_path, monkeypatch):
    run = tmp_path / "run"

    def broken(*a, **k):
        raise ConfigError("simulated failure after the run directory was created")

    monkeypatch.setattr(api.Trainer, "fit", lambda self: broken())
    with pytest.raises(ConfigError, match="simulated"):
        _train(_cfg(), run)
    monkeypatch.undo()
    monkeypatch.setattr(api, "Trainer", broken)  # fails after config.yaml is written
    with pytest.raises(ConfigError, match="simulated"):
        _train(_cfg(), run)
    assert not run.exists()
    monkeypatch.undo()
    assert _train(_cfg(), run).step == 6


# ----------------------------------------------------------------------------- resume changes


def test_resume_refuses_a_shape_changing_override_naming_the_key(tmp_path, capsys):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    before = (run / "config.yaml").read_text()
    for override, key in [("model.g_width=16", "model.g_width=16 (the run has 8)"),
                          ("data.resolution=32", "data.resolution=32 (the run has 16)"),
                          ("model.d_spectral_norm=true", "model.d_spectral_norm=True (the run has False)")]:
        # next to an allowed change, the message names the key that changes a shape
        with pytest.raises(ConfigError, match=re.escape(f"with {key}: it changes the shape")):
            _train(api.resume_config(run, [override, "loss.name=hinge"]), run, resume=True)
    with pytest.raises(ConfigError, match="optim.name=rmsprop .*another optimizer's state"):
        _train(api.resume_config(run, ["optim.name=rmsprop"]), run, resume=True)
    assert (run / "config.yaml").read_text() == before
    code = cli.main(["train", "--resume", "--out", str(run), "model.z_dim=9", "--quiet"])
    _one_line(capsys, code, "model.z_dim=9 (the run has 8)")


def test_resume_allows_other_changes_with_a_notice_and_an_event(tmp_path, capsys):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    capsys.readouterr()
    cfg = api.resume_config(run, ["loss.name=hinge", "train.batch_size=16", "optim.g_lr=1e-4",
                                  "train.steps=4"])
    assert _train(cfg, run, resume=True).step == 4
    out = capsys.readouterr().out
    assert ("ganforge: resuming at step 2 with a changed config: loss.name nonsaturating -> hinge, "
            "optim.g_lr 0.0002 -> 0.0001, train.batch_size 8 -> 16, train.steps 2 -> 4\n") in out
    events = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()
              if '"event"' in x and '"event": "end"' not in x]  # the closing end record aside
    assert events == [{"event": "config_change", "step": 2, "message": events[0]["message"],
                       "evidence": {"loss.name": ["nonsaturating", "hinge"], "optim.g_lr": [0.0002, 0.0001],
                                    "train.batch_size": [8, 16], "train.steps": [2, 4]}}]
    saved = api.resume_config(run, [])
    assert (saved.loss.name, saved.train.batch_size, saved.optim.g_lr) == ("hinge", 16, 1e-4)
    _, state = ckpt.load(ckpt.find(run))
    assert state["config"]["loss"]["name"] == "hinge"


def test_a_run_trained_on_another_kind_of_device_resumes_with_a_fresh_noise_stream(tmp_path, capsys):
    """A GPU-trained run resumed on a CPU: the noise generator's saved state is a CUDA one (16
    bytes, Philox seed and offset) that a CPU generator cannot take; resume says so and goes on."""
    import torch

    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    state_file = ckpt.find(run) / "state.pt"
    state = torch.load(state_file, weights_only=False)
    state["rng"]["noise"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, state_file)
    capsys.readouterr()
    assert _train(api.resume_config(run, ["train.steps=4"]), run, resume=True).step == 4
    out = "".join(capsys.readouterr())
    assert "noise generator was saved on another kind of device; resuming on cpu" in out


def test_a_resume_that_changes_settings_says_so_in_the_description(tmp_path):
    from ganforge import api

    run = tmp_path / "run"
    cfg = _cfg(**{"train.steps": 2})
    cfg.description = "toy with train.steps=2; the preset's description: a toy"
    _train(cfg, run)
    assert api.resume_config(run, ["train.steps=2"]).description == cfg.description  # no change
    assert api.resume_config(run, ["train.steps=4"]).description == cfg.description + "; resumed with train.steps=4"
    assert api.resume_config(run, ["train.steps=4", "description=mine"]).description == "mine"


def test_the_start_line_comes_after_the_checks_that_can_refuse_the_run(tmp_path, capsys):
    """A refused run had first printed 'ganforge: training ... -> DIR', as if it had started."""
    missing = "folder:" + str(tmp_path / "none")
    (tmp_path / "cfg.yaml").write_text(_cfg(**{"train.steps": 2, "data.name": missing}).to_yaml())
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x.txt").write_text("mine")
    for out in ("taken", "new"):  # an --out in use; a data folder that does not exist
        assert cli.main(["train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / out), "--quiet"]) == 2
        captured = capsys.readouterr()
        assert "ganforge: training" not in captured.out and captured.err.count("\n") == 1, captured
    (tmp_path / "ok.yaml").write_text(_cfg(**{"train.steps": 2}).to_yaml())
    assert cli.main(["train", str(tmp_path / "ok.yaml"), "--out", str(tmp_path / "run"), "--quiet"]) == 0
    assert f"ganforge: training ok for 2 steps -> {tmp_path / 'run'}" in capsys.readouterr().out


def test_a_second_ctrl_c_names_the_checkpoint_kept_and_how_to_continue(tmp_path, capsys, monkeypatch):
    """A second Ctrl-C stops at once; it had printed only 'ganforge: interrupted'."""
    from ganforge import api

    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    capsys.readouterr()

    def stopped_at_once(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(api, "train", stopped_at_once)
    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "5", "--quiet"]) == 130
    err = capsys.readouterr().err
    assert f"the run keeps {run / 'checkpoints' / 'step_0000002'}" in err
    assert f"Continue with: ganforge train --resume --out {run}" in err and "interrupted" not in err
    (tmp_path / "cfg.yaml").write_text(_cfg(**{"train.steps": 2}).to_yaml())
    assert cli.main(["train", str(tmp_path / "cfg.yaml"), "--out", str(tmp_path / "new"), "--quiet"]) == 130
    assert f"{tmp_path / 'new'} keeps no checkpoint, so start again" in capsys.readouterr().err


def test_resume_to_fewer_steps_than_done_is_refused_and_changes_nothing(tmp_path, capsys):
    """--resume --steps 1 of a run at step 2 had rewritten config.yaml (steps: 1) and logged a
    config change, though nothing trained ("Steps 2 of 1" in the report)."""
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    before = {p.name: p.read_bytes() for p in (run / "config.yaml", run / "metrics.jsonl")}
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot resume" in err and "train.steps=1" in err
    assert "already at step 2, so nothing would train" in err and "--steps 1002" in err
    assert {p.name: p.read_bytes() for p in (run / "config.yaml", run / "metrics.jsonl")} == before


def test_resume_with_no_step_left_names_the_checkpoint_and_how_to_continue(tmp_path, capsys):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    (run / api.GIVEN_DATASET).unlink()  # as a run of data.name's dataset: the CLI's messages are tested here
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "is already at step 2 of train.steps=2: nothing to train" in out
    assert f"ganforge train --resume --out {run} train.steps=4" in out
    assert f"checkpoint: {run / 'checkpoints' / 'step_0000002'}" in out  # it used to say None


def test_resume_of_a_config_with_a_yaml_tag_runs_nothing(tmp_path, capsys):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    marker = tmp_path / "pwned"
    with open(run / "config.yaml", "a") as f:
        f.write(f"x: !!python/object/apply:os.system ['touch {marker}']\n")
    code = cli.main(["train", "--resume", "--out", str(run), "--quiet"])
    _one_line(capsys, code, "is not a plain ganforge config", "python/object/apply")
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="not a plain ganforge config"):
        api.resume_config(run, [])


# ----------------------------------------------------------------------------- --checkpoint


def test_checkpoint_accepts_only_names_inside_the_run(tmp_path, capsys):
    one, other = tmp_path / "one", tmp_path / "other"
    _train(_cfg(), one)
    _train(_cfg(**{"train.seed": 1}), other)
    for bad in ("../../other/checkpoints/step_0000006", str(other / "checkpoints" / "step_0000006"),
                "step_6/../step_0000003", "latest/..", ""):
        with pytest.raises(CheckpointError, match="is not latest, best or a step_XXXXXXX name"):
            ckpt.find(one, bad)
    code = cli.main(["sample", str(one), "--checkpoint", "../other/checkpoints/step_0000006",
                     "--out", str(tmp_path / "g.png")])
    _one_line(capsys, code, "its checkpoints: step_0000003, step_0000006")
    assert not (tmp_path / "g.png").exists()
    (one / "checkpoints" / "latest").write_text("../../other/checkpoints/step_0000006\n")  # tampered
    assert ckpt.find(one) == one / "checkpoints" / "step_0000006"
    assert ckpt.find(one, "step_0000003") == one / "checkpoints" / "step_0000003"


# ----------------------------------------------------------------------------- 4, 6, 7. messages


def test_translate_on_a_dcgan_run_is_refused_before_loading(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    image = tmp_path / "x.png"
    from PIL import Image

    Image.new("L", (16, 16)).save(image)
    monkeypatch.setattr(ckpt, "load", lambda *a, **k: pytest.fail("weights read before the check"))
    for argv in (["translate", str(run), str(image), "--out", str(tmp_path / "o.png")],
                 ["upscale", str(run), str(image), "--out", str(tmp_path / "o.png")]):
        code = cli.main(argv)
        preset = "pix2pix-colorize" if argv[0] == "translate" else "srresnet-x4"  # one that can: the fix
        _one_line(capsys, code, "(objective=unconditional) cannot", "train a preset that can", preset,
                  "this run can: ", "draw images from noise")


def test_sample_out_under_a_file_or_a_directory(tmp_path, capsys):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    (tmp_path / "afile.txt").write_text("x")
    code = cli.main(["sample", str(run), "--out", str(tmp_path / "afile.txt" / "x.png")])
    _one_line(capsys, code, "afile.txt is a file, not a directory")
    (tmp_path / "dir.png").mkdir()
    code = cli.main(["sample", str(run), "--out", str(tmp_path / "dir.png"), "--force"])
    _one_line(capsys, code, "is a directory")
    assert (tmp_path / "afile.txt").read_text() == "x" and (tmp_path / "dir.png").is_dir()


def test_writes_to_a_read_only_place_are_one_line(tmp_path, tmpfs, capsys):
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    readonly = tmpfs("ro", "1m", "ro")
    code = cli.main(["sample", str(run), "--out", str(readonly / "x.png")])
    _one_line(capsys, code, "is not writable")
    code = cli.main(["train", "dcgan-fashion-mnist", "--out", str(readonly / "run"), "--quiet"])
    _one_line(capsys, code, "Read-only file system")
    from ganforge.atomic import atomic_write_text

    with pytest.raises(StorageError, match="Read-only file system"):
        atomic_write_text(readonly / "x.txt", "x")


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_place_where_no_file_can_be_made_is_one_line(tmp_path, capsys):
    """/proc is a directory that takes no new files: each writer said so with a traceback."""
    run = tmp_path / "run"
    _train(_cfg(**{"train.steps": 2}), run)
    for argv in (["sample", run, "--out", "/proc/x.png"], ["sample", run, "--out", "/proc/x.npz"],
                 ["interpolate", run, "--seeds", "1,2", "--frames", "2", "--out", "/proc/w.gif"],
                 ["export", run, "--format", "onnx", "--out", "/proc/g.onnx"],
                 ["export", run, "--format", "folder", "--out", "/proc/model"],
                 ["report", run, "--out", "/proc/r.html"]):
        code = cli.main([str(a) for a in argv])
        _one_line(capsys, code, f"cannot write {argv[-1]}")


def test_eval_names_an_unknown_reference_and_a_non_zip_npz(tmp_path, capsys):
    code = cli.main(["eval", str(tmp_path), "--ref", "imagenet"])
    _one_line(capsys, code, "unknown reference dataset 'imagenet'; use one of fashion-mnist, mnist, cifar10")
    bad = tmp_path / "s.npz"
    bad.write_text("not a zip")
    code = cli.main(["eval", str(bad), "--ref", "fashion-mnist"])
    err = _one_line(capsys, code, "is not an .npz archive (not a zip file)")
    assert "pickled" not in err


def test_unknown_top_level_section_in_a_yaml_lists_the_sections(tmp_path):
    from ganforge.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("foo:\n  bar: 1\n")
    with pytest.raises(ConfigError, match="unknown config key 'foo'; valid sections: data, model, "
                                          "loss, optim"):
        load_config(str(path))


def test_data_dir_that_does_not_exist_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["train", "dcgan-fashion-mnist", "--data-dir", str(tmp_path / "nope"), "--out",
                     str(out), "--quiet"])
    _one_line(capsys, code, f"{tmp_path / 'nope'} does not exist or is not a directory")
    assert not out.exists()
    code = cli.main(["data", "fetch", "fashion-mnist", "--data-dir", str(tmp_path / "nope")])
    _one_line(capsys, code, "does not exist")


def _images(folder: Path, n: int, size: int):
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")


def test_corrupt_and_tiny_images_are_listed_in_one_line(tmp_path, capsys):
    folder = tmp_path / "imgs"
    _images(folder, 10, 16)
    for i in range(7):
        (folder / f"bad{i}.png").write_bytes(b"garbage")
    from PIL import Image

    Image.new("RGB", (1, 1)).save(folder / "tiny.png")
    code = cli.main(["data", "fetch", f"folder:{folder}"])
    assert code == 0
    from ganforge.data import load_dataset

    with pytest.warns(UserWarning) as record:
        ds = load_dataset(f"folder:{folder}", resolution=8)
    assert len(ds) == 10 and len(record) == 1
    message = str(record[0].message)
    assert message == (f"skipped 8 unusable image files in {folder}: bad0.png (cannot identify image file), "
                       f"bad1.png (cannot identify image file), bad2.png (cannot identify image file), "
                       f"bad3.png (cannot identify image file), bad4.png (cannot identify image file) and 3 more")
    # the CLI prints it as one line
    capsys.readouterr()
    code = cli.main(["train", "dcgan-folder", f"data.name=folder:{folder}", "train.batch_size=16",
                     "data.resolution=8", "--out", str(tmp_path / "run"), "--quiet", "train.device=cpu"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2, err
    assert err[0] == f"ganforge: warning: {message}"
    assert err[1].endswith("has 10 images, fewer than one batch (train.batch_size=16); add images or lower "
                           "train.batch_size")
    assert not (tmp_path / "run").exists()


def test_a_folder_of_tiny_images_is_refused(tmp_path):
    from ganforge.data import load_dataset
    from ganforge.errors import DataError

    _images(tmp_path / "ones", 12, 1)
    with pytest.raises(DataError, match=r"12 image files, none of at least 8x8 pixels \(e.g. 00.png: 1x1"):
        load_dataset(f"folder:{tmp_path / 'ones'}")


def test_augment_force_replaces_only_its_own_export(tmp_path):
    from ganforge.synthetic import export

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "notes.txt").write_text("mine")

    class Run:  # export checks --force before it samples anything
        run_dir, class_names = tmp_path, ["a"]

    with pytest.raises(ConfigError, match="not a dataset written by ganforge augment"):
        export(Run(), docs, per_class=1, force=True)
    assert (docs / "notes.txt").read_text() == "mine"


def test_what_counts_as_a_run(tmp_path):
    for marker in ("metrics.jsonl", "checkpoints", rundir.LOCK_NAME):
        path = tmp_path / marker.strip(".")
        path.mkdir()
        assert not rundir.is_run_dir(path)
        (path / marker).mkdir() if marker == "checkpoints" else (path / marker).write_text("")
        assert not rundir.is_run_dir(path)  # no config.yaml
        (path / "config.yaml").write_text("x: 1\n")
        assert rundir.is_run_dir(path)
        (path / marker).rmdir() if marker == "checkpoints" else (path / marker).unlink()
        assert not rundir.is_run_dir(path)  # config.yaml alone is not a run


def test_an_output_file_never_replaces_a_directory(tmp_path):
    from ganforge.atomic import atomic_write_text

    target = tmp_path / "report.html"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(StorageError, match="it is a directory; give a file name"):
        atomic_write_text(target, "<html>")
    assert (target / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left


def test_resume_after_a_kill_logs_each_step_and_event_once(tmp_path, capsys):
    """A process killed after logging steps past its last checkpoint (and mid-line) left those
    records in metrics.jsonl; the resume logged the same steps again and the report listed the
    events twice. The resume now drops what it redoes, and says so."""
    run = tmp_path / "run"
    cfg = _cfg(**{"train.steps": 6, "train.log_every": 1, "train.checkpoint_every": 3})
    _train(cfg, run)
    ckpt_dir = run / "checkpoints"
    import shutil

    shutil.rmtree(ckpt_dir / "step_0000006")  # as if killed before the last checkpoint was written
    (ckpt_dir / "latest").write_text("step_0000003\n")
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"event": "mode_collapse", "step": 5, "message": "x"}\n{"step": 7, "d_lo')
    capsys.readouterr()
    _train(cfg, run, resume=True)  # with its dataset= (a CLI resume is refused: tests/test_given_dataset.py)
    assert "resuming from step_0000003: dropped 5 lines of metrics.jsonl logged after it" in capsys.readouterr().out
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "time" in r]
    assert [r["how"] for r in lines if r.get("event") == "end"] == ["done"]  # the first run's end dropped
    assert steps == [1, 2, 3, 4, 5, 6] and not [r for r in lines if r.get("event") == "mode_collapse"]


def test_resume_next_to_a_config_and_no_run_yet_starts_it_then_continues_it(tmp_path, capsys):
    """A restart-safe launch (a PyTorchJob's command) passes --resume on the first start too."""
    path = tmp_path / "tiny.yaml"
    path.write_text(_cfg(**{"train.steps": 2}).to_yaml())
    run = tmp_path / "run"
    assert cli.main(["train", str(path), "--out", str(run), "--resume", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"no run in {run} yet: starting one from {path}" in out
    assert ckpt.load(ckpt.find(run))[1]["step"] == 2
    assert cli.main(["train", str(path), "--out", str(run), "--resume", "--quiet", "train.steps=4"]) == 0
    out = capsys.readouterr().out
    assert "no run in" not in out and f"resuming {run} from step 2 up to step 4" in out
    assert ckpt.load(ckpt.find(run))[1]["step"] == 4
    code = cli.main(["train", "--resume", "--out", str(tmp_path / "nothing"), "--quiet"])  # no config: refused
    _one_line(capsys, code, "cannot resume")
    (tmp_path / "volume" / "lost+found").mkdir(parents=True)  # a folder that is not a run, not empty
    code = cli.main(["train", str(path), "--out", str(tmp_path / "volume"), "--resume", "--quiet"])
    err = _one_line(capsys, code, "cannot resume")
    assert "starting one" not in err and not (tmp_path / "volume" / "config.yaml").exists()


@pytest.mark.parametrize("local_rank", [0, 1])
def test_under_torchrun_a_config_error_of_a_later_rank_waits_for_the_first(monkeypatch, capsys, local_rank):
    """Every rank meets the same config error; a node's later ranks wait before saying it, so that
    torchrun, stopping them once the first rank has said it, shows it once."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", str(local_rank))
    monkeypatch.setenv("LOCAL_RANK", str(local_rank))
    slept = []
    monkeypatch.setattr(cli.time, "sleep", slept.append)
    code = cli.main(["train", "dcgan-fashion-mnist", "train.batch_size=0"])
    _one_line(capsys, code, "train.batch_size")
    assert slept == ([cli.QUIET_RANK_DELAY_S] if local_rank else [])


@pytest.mark.parametrize("launch, override", [("torchrun", "train.batch_size=0"), ("--nproc", "train.batch_size=0"),
                                              ("--nproc", "train.batch_size=15")])  # 15 does not divide by 2
def test_a_config_error_under_torchrun_is_said_once(tmp_path, launch, override):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    train = ["-m", "ganforge", "train", "dcgan-fashion-mnist", override, "--out", str(tmp_path / "r")]
    cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *train]
           if launch == "torchrun" else [sys.executable, *train, "--nproc", "2"])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and out.count("ganforge: error:") == 1, out
    assert "train.batch_size" in out
    if launch == "--nproc":  # checked before torchrun starts: one line, exit code 2
        assert proc.returncode == 2 and len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "r").exists()


def test_nproc_refuses_an_existing_out_before_torchrun_and_waits_for_it_on_ctrl_c(tmp_path, capsys, monkeypatch):
    """--nproc: an existing --out is one line and exit 2 before torchrun starts (it had been a line
    per rank under torchrun's traceback, exit 1); a Ctrl-C that reaches the launcher as well as
    the ranks leaves them to stop and save, and the launcher waits for them silently."""
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    _one_line(capsys, cli.main(["train", "dcgan-fashion-mnist", "--out", str(tmp_path / "r"), "--nproc", "2"]),
              "is a folder but not a ganforge run")
    assert (tmp_path / "r" / "notes.txt").read_text() == "mine"

    class Torchrun:
        waits = 0

        def __init__(self, cmd, env):
            self.cmd = cmd

        def wait(self):
            Torchrun.waits += 1
            if Torchrun.waits == 1:
                raise KeyboardInterrupt
            return 130

    monkeypatch.setattr(subprocess, "Popen", Torchrun)  # cli imports subprocess when it launches
    assert cli.main(["train", "dcgan-fashion-mnist", "--out", str(tmp_path / "new"), "--nproc", "2"]) == 130
    assert Torchrun.waits == 2 and "interrupted" not in capsys.readouterr().err
