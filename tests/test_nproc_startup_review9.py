"""--nproc while the ranks start (review 9): a rank killed then had ended in torchrun's 44-line
traceback (exit 1, no ganforge line), and a Ctrl-C passed on to the ranks while they imported torch
in a bare "ganforge: interrupted" (one process had the same gap). The signals are sent at fixed
points here, and torchrun's failure records are made up, so no timing window is involved."""
from __future__ import annotations

import logging
import os
import signal
import time

import pytest
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from ganforge.commands import train as train_command
from ganforge import cli, config
from ganforge.training import distributed


def _failure(rank: int, pid: int, exitcode: int, tmp_path) -> ProcessFailure:
    return ProcessFailure(local_rank=rank, pid=pid, exitcode=exitcode, error_file=str(tmp_path / "none.json"))


def _torchrun_failing(monkeypatch, tmp_path, codes: dict[int, int]) -> list[bool]:
    """torch.distributed.run.main as it ends when a rank fails: it logs the closing signal it sends
    the others, then raises ChildFailedError with ``codes`` (rank -> exit code, the first first)."""
    import torch.distributed.run

    seen = []

    def main(argv):
        logging.getLogger("torch.distributed.elastic.multiprocessing.api").warning(
            "Sending process %s closing signal %s", 4242, "SIGTERM")
        seen.append(os.path.exists(os.environ[distributed.STOPPED_AFTER_A_FAILURE]))
        failures = {rank: _failure(rank, 4240 + rank, code, tmp_path) for rank, code in codes.items()}
        raise ChildFailedError("ganforge", failures)

    monkeypatch.setattr(torch.distributed.run, "main", main)
    monkeypatch.setenv(distributed.STOPPED_AFTER_A_FAILURE, "")  # torchrun() sets it; given back after
    return seen


def test_a_rank_killed_while_the_ranks_start_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    seen = _torchrun_failing(monkeypatch, tmp_path, {1: -signal.SIGKILL, 0: distributed.STOPPED_WITH_THE_OTHERS})
    argv = ["--standalone", "--nproc_per_node=2", "-m", "ganforge", "train", "toy-ring8", "--out", str(out)]
    with pytest.raises(SystemExit) as stop:
        distributed.torchrun(argv)
    assert stop.value.code == 2
    assert seen == [True]  # the ranks could tell torchrun's stop from the user's
    assert capsys.readouterr().err.strip() == (f"ganforge: error: rank 1 (pid 4241) was killed by SIGKILL while the "
                                               f"ranks were starting; nothing was written to {out}; start again")
    assert not os.path.exists(os.environ[distributed.STOPPED_AFTER_A_FAILURE])  # removed with its folder


def test_a_crash_while_the_ranks_start_keeps_torchrun_report(tmp_path, monkeypatch):
    _torchrun_failing(monkeypatch, tmp_path, {1: 1, 0: distributed.STOPPED_WITH_THE_OTHERS})
    with pytest.raises(ChildFailedError):
        distributed.torchrun(["--standalone", "--nproc_per_node=2", "-m", "ganforge", "train", "toy-ring8"])


def test_what_a_kill_while_starting_says_of_out(tmp_path):
    kill, stopped = _failure(0, 7, -signal.SIGKILL, tmp_path), _failure(1, 8, -signal.SIGTERM, tmp_path)
    assert distributed.killed_while_starting({0: kill, 1: stopped}, None) == (
        "rank 0 (pid 7) was killed by SIGKILL while the ranks were starting; start again")
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    assert distributed.killed_while_starting({0: kill, 1: stopped}, out).endswith(
        f"; {out} keeps no checkpoint; start again")
    training = _failure(1, 8, 143, tmp_path)  # rank 1 had said "stopped by SIGTERM at step ..."
    assert distributed.killed_while_starting({0: kill, 1: training}, out) is None
    assert distributed.said_by_a_rank([2, distributed.STOPPED_WITH_THE_OTHERS])


def _signal_before_api_train(monkeypatch, sig: int) -> None:
    """The signal while ``ganforge train`` reads its config, before api.train (where a rank had
    still been importing torch, with no handler of ganforge's)."""
    load = config.load_config

    def then_signal(*args, **kwargs):
        os.kill(os.getpid(), sig)
        time.sleep(5)  # the handler raises before this ends
        return load(*args, **kwargs)

    monkeypatch.setattr(config, "load_config", then_signal)


@pytest.mark.parametrize("rank", [None, "0"])
def test_ctrl_c_before_training_in_a_rank_or_one_process_says_nothing_was_written(rank, tmp_path, monkeypatch,
                                                                                  capsys):
    if rank is not None:
        for key, value in (("WORLD_SIZE", "2"), ("RANK", rank), ("LOCAL_RANK", rank)):
            monkeypatch.setenv(key, value)
    out = tmp_path / "run"
    _signal_before_api_train(monkeypatch, signal.SIGINT)
    assert cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(out), "--quiet"]) == 130
    said = f"ganforge: stopped by SIGINT before training started; nothing was written to {out}"
    assert capsys.readouterr().err.strip() == said
    assert not out.exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


def test_a_rank_torchrun_stops_after_a_failure_says_nothing(tmp_path, monkeypatch, capsys):
    marker = tmp_path / "stopped-after-a-failure"
    marker.touch()
    for key, value in (("WORLD_SIZE", "2"), ("RANK", "0"), ("LOCAL_RANK", "0"),
                       (distributed.STOPPED_AFTER_A_FAILURE, str(marker))):
        monkeypatch.setenv(key, value)
    _signal_before_api_train(monkeypatch, signal.SIGTERM)
    out = tmp_path / "run"
    code = cli.main(["train", "toy-ring8", "--steps", "2", "--out", str(out), "--quiet"])
    assert code == distributed.STOPPED_WITH_THE_OTHERS == train_command.STOPPED_WITH_THE_OTHERS
    assert capsys.readouterr().err == ""


def test_a_resume_stopped_before_training_says_the_run_is_as_it_was(tmp_path, capsys, monkeypatch):
    """'nothing was written to RUN' alone had read, after a resume's Ctrl-C, as a lost run."""
    import signal

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = tmp_path / "run"
    assert train_command._stopped_before_training(signal.SIGINT, run, True) == 130
    assert capsys.readouterr().err.strip() == (
        f"ganforge: stopped by SIGINT before training started; nothing was written to {run}, which is as it "
        f"was; continue with: ganforge train --resume --out {run}")
    assert train_command._stopped_before_training(signal.SIGTERM, run, False) == 143
    assert capsys.readouterr().err.strip() == (
        f"ganforge: stopped by SIGTERM before training started; nothing was written to {run}")
