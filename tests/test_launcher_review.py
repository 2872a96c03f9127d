"""The --nproc launcher (a multi-process review): a signal while it checks the run before starting
torchrun says that nothing was written (a Ctrl-C had been "interrupted", a SIGTERM silent); the same
signal twice at once (GNU timeout sends it to the command, then to its process group) is one stop,
not a second Ctrl-C; more processes than CPU cores is warned about."""
from __future__ import annotations

import os
import signal
import sys
import threading
import time

import pytest

from ganforge.commands import train as train_command
from ganforge import cli


def test_a_signal_before_torchrun_starts_says_nothing_was_written(tmp_path, monkeypatch, capsys):
    def checks(args, cfg):  # the launcher's checks, interrupted
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)

    monkeypatch.setattr(train_command, "_launch_torchrun", checks)
    out = tmp_path / "run"
    assert cli.main(["train", "toy-ring8", "--nproc", "2", "--out", str(out)]) == 143
    assert capsys.readouterr().err.strip() == (f"ganforge: stopped by SIGTERM before training started; "
                                               f"nothing was written to {out}")
    assert not out.exists()


def test_the_same_signal_twice_at_once_is_one_stop(tmp_path):
    count = tmp_path / "count"
    child = ("import signal, sys, time\n"
             "n = []\n"
             "signal.signal(signal.SIGINT, lambda *a: n.append(1))\n"
             "time.sleep(0.5)\n"  # started, its handler set
             f"open({str(count)!r}, 'w').write('ready')\n"
             "end = time.monotonic() + 3\n"
             "while time.monotonic() < end: time.sleep(0.05)\n"
             f"open({str(count)!r}, 'w').write(str(len(n)))\n")

    def twice():
        while not count.exists():
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=twice, daemon=True).start()
    code = train_command._run_passing_signals_on([sys.executable, "-c", child], dict(os.environ))
    assert count.read_text() == "1"  # passed on once; the repeat was not a second Ctrl-C
    assert code == 0


def test_more_processes_than_cores_is_warned_about(monkeypatch, capsys):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(train_command, "_run_passing_signals_on", lambda cmd, env, out=None: 0)
    assert cli.main(["train", "toy-ring8", "--nproc", "4", "train.device=cpu"]) == 0
    err = capsys.readouterr().err
    assert "warning: --nproc 4 on 2 CPU cores" in err and err.count("\n") == 1
    assert cli.main(["train", "toy-ring8", "--nproc", "2", "train.device=cpu"]) == 0
    assert "warning" not in capsys.readouterr().err


def test_one_process_takes_the_same_ctrl_c_twice_at_once_as_one_stop(tmp_path, monkeypatch):
    from conftest import random_dataset, tiny_config

    from ganforge import api
    from ganforge.errors import TrainingInterrupted
    from ganforge.training.trainer import Trainer

    step = Trainer.train_step

    def twice_at_step_2(self):
        step(self)
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # as timeout sends it: the same stop

    monkeypatch.setattr(Trainer, "train_step", twice_at_step_2)
    with pytest.raises(TrainingInterrupted) as stop:  # saved and stopped, not "stopped at once"
        api.train(tiny_config(), tmp_path / "run", progress=False, dataset=random_dataset())
    assert stop.value.result.step == 2 and (tmp_path / "run" / "checkpoints" / "step_0000002").is_dir()


def test_a_rank_that_saves_no_checkpoint_names_the_intact_one_when_rank_0_is_gone(tmp_path, monkeypatch):
    # rank 1 had said only "continue with ..." when rank 0 was killed: it saves none itself
    from conftest import random_dataset, tiny_config

    from ganforge import api
    from ganforge.errors import DistributedError
    from ganforge.training import distributed
    from ganforge.training.distributed import World
    from ganforge.training.trainer import Trainer

    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset())
    trainer = Trainer.__new__(Trainer)
    trainer.world, trainer.last_checkpoint, trainer.run_dir, trainer.step = World(1, 2), None, run, 7
    monkeypatch.setattr(distributed, "is_peer_failure", lambda exc, world: True)
    monkeypatch.setattr(distributed, "stopped_at_once", lambda world: False)
    monkeypatch.setattr(distributed, "failed_ranks", lambda world: ["rank 0 (pid 1) was killed or exited"])
    with pytest.raises(DistributedError, match="the last checkpoint step_0000006 is intact; continue with"):
        trainer._tell_peers(RuntimeError("connection reset by peer"))
