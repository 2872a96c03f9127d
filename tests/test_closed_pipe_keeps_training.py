"""`ganforge train ... | head -1`: when the program reading ganforge's output exits, the next
progress line or warning met a broken pipe, and the run ended with exit 141 and no checkpoint
since step 0 (350 steps of a LAPGAN run lost). It now stops as on a signal: a checkpoint of the
step, an end record that says why, exit 141, and a resume goes on."""
import json
import os
import subprocess
import sys

from conftest import tiny_config


def test_a_closed_pipe_stops_training_with_a_checkpoint(tmp_path):
    # progress lines come every 10% of the steps: the pipe is met at step 120 of 600
    cfg = tiny_config(**{"train.steps": 600, "train.log_every": 10, "train.sample_every": 100000,
                         "train.checkpoint_every": 100000})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(cfg.to_yaml())
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "train", str(yaml_file), "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        first = proc.stderr.readline()  # progress lines go to stderr (not a terminal): read one,
        assert first.startswith(b"ganforge: step "), first
        proc.stderr.close()  # then go away, as `head -1` does
        rc = proc.wait(timeout=240)
    finally:
        proc.kill()
    assert rc == 141
    saved = sorted(p.name for p in (run / "checkpoints").glob("step_*"))
    assert len(saved) == 2 and saved[0] == "step_0000000", saved  # the step it stopped at, too
    end = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert end["how"] == "interrupted" and end["signal"] == "SIGPIPE", end
    assert end["checkpoint"] == saved[1]
