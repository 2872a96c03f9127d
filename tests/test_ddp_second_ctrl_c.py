"""A second Ctrl-C under torchrun: a rank that meets, in a collective, the exit of a rank that
stopped at once stops as it did ("stopped at once by a second Ctrl-C", exit 130), instead of an
error saying that rank was killed or exited. Each rank gets the signal, but which one handles it
first is a race (seen in fresh-clone CI runs of test_launcher_signals.py): here rank 1 alone gets
the two Ctrl-Cs, so that the race is decided."""
from __future__ import annotations

import contextlib
import io
import os
import signal
import time
from pathlib import Path

import yaml

from ganforge import cli
from ganforge.signals import REPEAT_SECONDS
from ganforge.training.trainer import Trainer
from test_ddp import _env, _raw, _spawn

STOP_AT = 4  # the step at which rank 1 gets its two Ctrl-Cs (after the checkpoint of step 2)


def _cli_worker(rank: int, port: int, config_path: str, run: str, said: str) -> None:
    _env(rank, port)
    if rank == 1:
        stopping = Trainer._stopping

        def two_ctrl_cs(self):
            if self.step == STOP_AT:
                os.kill(os.getpid(), signal.SIGINT)  # the first: save and stop at this step
                time.sleep(REPEAT_SECONDS + 0.1)  # (one repeated at once is the same stop)
                os.kill(os.getpid(), signal.SIGINT)  # the second: stop at once
            return stopping(self)

        Trainer._stopping = two_ctrl_cs
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["train", config_path, "--out", run, "--quiet"])
    Path(f"{said}.{rank}").write_text(f"{code}\n{err.getvalue()}")


def test_a_rank_that_meets_a_second_ctrl_c_exit_stops_as_that_rank_did(tmp_path):
    raw = _raw(tmp_path, steps=100000, batch_size=8, checkpoint_every=2, log_every=2)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    run, said = tmp_path / "run", tmp_path / "said"
    _spawn(_cli_worker, str(path), str(run), str(said), timeout=180)
    code0, err0 = (said.with_name("said.0")).read_text().split("\n", 1)
    code1, err1 = (said.with_name("said.1")).read_text().split("\n", 1)
    assert code1 == "130" and err1 == "", err1  # rank 1 says nothing: rank 0 speaks for the run
    assert code0 == "130", err0
    assert "was killed or exited" not in err0, err0
    lines = err0.strip().splitlines()
    assert len(lines) == 1, err0
    assert lines[0].startswith("ganforge: stopped at once by a second Ctrl-C; the run keeps "), err0
    assert f"Continue with: ganforge train --resume --out {run}" in lines[0], err0
