"""``ganforge train ... --nproc N``: a ganforge error met inside the ranks (data is read there) is
one line and exit 2, as in one process, without torchrun's traceback and report; a rank's crash
keeps them; a stop signal before torchrun started the ranks is said."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from conftest import ROOT
from ganforge import cli, rundir
from ganforge.training.distributed import TORCHRUN_CODE, child_pids, said_by_a_rank

TORCHRUN_NOISE = ("Traceback", "ChildFailedError", "FAILED", "Root Cause", "failed (exitcode", "closing signal")


def _nproc_train(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-m", "ganforge", "train", *map(str, args), "--nproc", "2"],
                          env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("data", ["missing", "three images"])
def test_a_data_error_inside_the_ranks_is_one_line_and_exit_2(tmp_path, data):
    """The ranks read the data, so the launcher cannot check it: it had been the right line, then
    torchrun's log line, traceback and "FAILED / Root Cause" report, exit 1."""
    folder = tmp_path / "images"
    if data == "three images":  # fewer than a batch
        folder.mkdir()
        for i in range(3):
            Image.new("RGB", (64, 64), (i * 60, 0, 0)).save(folder / f"{i}.png")
    out = tmp_path / "run"
    proc = _nproc_train("dcgan-folder", f"data.name=folder:{folder}", "--steps", 20, "--out", out)
    said = (proc.stdout + proc.stderr).strip()
    assert proc.returncode == 2, said
    assert len(said.splitlines()) == 1 and said.startswith("ganforge: error: "), said
    assert str(folder) in said, said
    assert not out.exists()


def test_nproc_resume_of_a_run_in_use_is_refused_before_torchrun(tmp_path, capsys, monkeypatch):
    """Each rank had said "in use" (two identical lines) under torchrun's report, exit 1."""
    run = tmp_path / "run"
    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(run), "--quiet"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail("torchrun was started"))
    with rundir.RunLock(run):  # another ganforge train holds it
        code = cli.main(["train", "--resume", "--out", str(run), "--steps", "4", "--nproc", "2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert err.startswith(f"ganforge: error: run directory {run} is in use by process {os.getpid()}"), err
    assert (run / "checkpoints" / "step_0000002").is_dir()


def test_which_failed_ranks_were_said_in_one_line():
    """2: a ganforge error said by the rank; < 0: a signal (torchrun stopping the others, or a
    kill the surviving rank names); 1: a crash, whose torchrun report stays."""
    assert said_by_a_rank([2, -15]) and said_by_a_rank([-9, 2]) and said_by_a_rank([2, 2])
    assert not said_by_a_rank([1, 2]) and not said_by_a_rank([1, -15]) and not said_by_a_rank([-9, -15])


def _launch(out: Path, steps: int) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "ganforge", "train", "toy-ring8", "--steps", str(steps),
                             "--out", str(out), "--nproc", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _torchrun_of(launcher: subprocess.Popen, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for pid in child_pids(launcher.pid):
            try:
                if TORCHRUN_CODE in Path(f"/proc/{pid}/cmdline").read_text():
                    return pid
            except OSError:
                pass
        assert launcher.poll() is None, launcher.communicate()[0]
        time.sleep(0.02)
    raise AssertionError("torchrun did not start")


def _kill_all(launcher: subprocess.Popen, pids: list[int]) -> None:
    """What a failed test left running, by id."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    launcher.kill()
    launcher.wait(10)


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds torchrun's ranks in Linux's /proc")
def test_ctrl_c_before_torchrun_started_the_ranks_is_said(tmp_path):
    """It had exited 130 and said nothing, where one process says what happened."""
    out = tmp_path / "run"
    launcher = _launch(out, 5)
    torchrun = _torchrun_of(launcher)
    try:
        time.sleep(0.3)  # past its interpreter's start, while it imports torch
        assert not child_pids(torchrun), "torchrun started its ranks before the test could stop it"
        os.kill(launcher.pid, signal.SIGINT)
        output = launcher.communicate(timeout=30)[0]
    finally:
        _kill_all(launcher, [torchrun])
    assert launcher.returncode == 130, output
    assert output.strip() == f"ganforge: stopped by SIGINT before training started; nothing was written to {out}"
    assert not out.exists()
