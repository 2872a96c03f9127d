"""Ctrl-C in a Python script that calls ganforge.train: the run saves a checkpoint and the script
stops, as any Python code stops on Ctrl-C, with a message that says how to resume. train had
returned normally, so a sweep's loop went on to train its next run, and nothing was said."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from conftest import ROOT

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from conftest import random_dataset, tiny_config
from ganforge import api
for lr in (1e-4, 2e-4):
    cfg = tiny_config(**{{"train.steps": 100000, "train.checkpoint_every": 1000}})
    cfg.optim.g_lr = lr
    print("START", lr, flush=True)
    api.train(cfg, f"{{sys.argv[1]}}/lr{{lr}}", progress=False, dataset=random_dataset())
print("REACHED THE END", flush=True)
"""


def test_ctrl_c_stops_a_sweep_after_saving_and_says_how_to_resume(tmp_path):
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT.format(tests=str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run = tmp_path / "lr0.0001"
    try:
        deadline = time.monotonic() + 120
        while not (run / "metrics.jsonl").is_file() or not (run / "metrics.jsonl").read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()  # had the sweep gone on, its next run would train on after the test
        proc.wait()
    assert "REACHED THE END" not in out and "START 0.0002" not in out, out  # the sweep stopped
    assert proc.returncode != 0, out
    last = err.strip().splitlines()[-1]
    assert last.startswith("ganforge.errors.TrainingInterrupted: stopped by SIGINT at step "), err
    saved = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert f"checkpoint saved to {run / 'checkpoints' / saved[-1]}." in last, last
    assert f"Continue with: ganforge.train(cfg, {str(run)!r}, resume=True, dataset=...)" in last, last
    assert saved[-1] != "step_0000000"  # the checkpoint of the step it stopped at
