"""Stopping before train.steps on purpose: eval.patience (N evaluations in a row without a better
eval.best) and a hook's trainer.request_stop(reason). The step's training is saved, the end
record says why, the run resumes as one stopped by Ctrl-C, and the CLI and the report say how to
go on."""
from __future__ import annotations

import json
from html import escape

import pytest

from ganforge import api
from ganforge.cli import main
from ganforge.errors import ConfigError
from ganforge.report import write_report
from ganforge.training.trainer import FitResult

from conftest import random_dataset, tiny_config


def _scores(values):
    """A hook returning ``values`` one by one as "score" (lower is better), and the steps it ran at."""
    steps = []

    def hook(trainer, step):
        steps.append(step)
        return {"score": values[len(steps) - 1]}

    return hook, steps


def _train(run, hook, **overrides):
    cfg = tiny_config(**{"eval.every": 2, "eval.best": "score:lower", "train.steps": 20,
                         "train.checkpoint_every": 100, "train.sample_every": 100, **overrides})
    return api.train(cfg, run, progress=False, hooks=[hook], dataset=random_dataset(n=16, resolution=16),
                     resume=(run / "checkpoints").exists())


def _end(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]


def test_patience_stops_after_that_many_evaluations_without_a_better_value(tmp_path):
    run = tmp_path / "run"
    hook, steps = _scores([5.0, 4.0, 6.0, 7.0, 9.0, 9.0])
    result = _train(run, hook, **{"eval.patience": 2})
    assert steps == [2, 4, 6, 8]  # 4.0 at step 4 was the last better one; 6 and 7 are two without
    assert result.step == 8 and result.interrupted is None
    assert result.stopped["metric"] == "score" and result.stopped["best"] == 4.0
    assert result.stopped["best_step"] == 4
    assert result.stopped["reason"] == ("no better score in 2 evaluations (eval.patience=2); the best, 4, "
                                        "was at step 4")
    end = _end(run)
    assert end["event"] == "end" and end["how"] == "stopped" and end["step"] == 8
    assert end["checkpoint"] == "step_0000008" and (run / "checkpoints" / "step_0000008").is_dir()
    assert result.checkpoint.name == "step_0000008"  # saved although checkpoint_every is 100
    assert (run / "checkpoints" / "best").read_text().strip() == "step_0000004"
    assert (run / "samples" / "step_0000008.png").is_file()  # what the stopped run draws

    # resumed as it is, the count goes on: the next evaluation without a better value stops it again
    hook, steps = _scores([8.0])
    result = _train(run, hook, **{"eval.patience": 2})
    assert steps == [10] and result.step == 10 and result.stopped["best_step"] == 4
    assert result.stopped["reason"].startswith("no better score in 3 evaluations (eval.patience=2)")  # 6, 8, 10

    # with eval.patience=0 it trains on to train.steps
    hook, steps = _scores([8.0] * 5)
    result = _train(run, hook, **{"eval.patience": 0})
    assert steps == [12, 14, 16, 18, 20] and result.step == 20 and result.stopped is None
    assert _end(run)["how"] == "done"


def test_a_better_value_starts_the_count_again(tmp_path):
    hook, steps = _scores([5.0, 6.0, 4.0, 6.0, 3.0, 7.0, 8.0, 9.0, 9.0, 9.0])
    result = _train(tmp_path / "run", hook, **{"eval.patience": 2})
    assert steps == [2, 4, 6, 8, 10, 12, 14] and result.step == 14 and result.stopped["best_step"] == 10


def test_a_hook_stops_training_with_its_reason_and_the_report_says_it(tmp_path):
    run = tmp_path / "run"

    def hook(trainer, step):
        if step == 4:
            trainer.request_stop("good enough for the demo")
        return {"score": 1.0}

    result = _train(run, hook)
    assert result.step == 4 and result.stopped == {"reason": "good enough for the demo"}
    assert _end(run)["how"] == "stopped" and (run / "checkpoints" / "step_0000004").is_dir()
    page = write_report(run).read_text()
    assert "stopped early" in page and "good enough for the demo" in page
    assert "eval.patience=0" not in page  # only a patience stop needs it to go on
    # a run given hooks= and dataset= goes on from Python: the CLI's resume refuses it
    assert escape(f"to train on: ganforge.train(cfg, {str(run)!r}, resume=True, hooks=..., dataset=...)") in page
    assert "ganforge train --resume" not in page


def test_non_finite_values_are_no_better(tmp_path):
    """A metric that turned NaN (logged as null) had never counted, so patience never stopped it."""
    nan = float("nan")
    hook, steps = _scores([5.0, nan, nan, 1.0])
    result = _train(tmp_path / "run", hook, **{"eval.patience": 2})
    assert steps == [2, 4, 6] and result.stopped["best_step"] == 2
    hook, steps = _scores([nan, nan, 1.0])  # none finite from the start
    result = _train(tmp_path / "run2", hook, **{"eval.patience": 2})
    assert steps == [2, 4] and result.stopped["best_step"] is None
    assert result.stopped["reason"] == ("no better score in 2 evaluations (eval.patience=2); none of them was "
                                        "a finite number")


@pytest.mark.parametrize("given, command", [
    (None, "ganforge train --resume --out {run} eval.patience=0"),
    ("dataset.json", "ganforge.train(cfg, '{run}', resume=True, dataset=...) with eval.patience=0 set in cfg"),
    ("hooks.json", "ganforge.train(cfg, '{run}', resume=True, hooks=...) with eval.patience=0 set in cfg"),
])
def test_the_report_says_how_to_train_on_where_the_run_can(tmp_path, given, command):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(tiny_config(**{"train.steps": 100}).to_yaml())
    if given:
        (run / given).write_text('{"name": "mine", "hooks": ["h"]}\n')
    records = [{"step": s, "d_loss": 1.0, "g_loss": 2.0, "time": s / 10} for s in (20, 40)]
    records.append({"event": "end", "step": 40, "how": "stopped", "steps": 100, "reason": "no better fid",
                    "metric": "fid", "best": 30.0, "best_step": 20, "checkpoint": "step_0000040"})
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    page = write_report(run).read_text()
    said = "stopped early <small>at step 40 of 100: no better fid; to train on: " + escape(command.format(run=run))
    assert said in page


def test_a_stop_request_needs_a_reason(tmp_path):
    def hook(trainer, step):
        trainer.request_stop("  ")
        return {}

    with pytest.raises(ConfigError, match="request_stop needs the reason as a non-empty string"):
        _train(tmp_path / "run", hook)


@pytest.mark.parametrize("overrides, message", [
    ({"eval.patience": -1}, r"eval.patience must be >= 0"),
    ({"eval.patience": 3, "eval.every": 0}, r"eval.patience=3 counts evaluations, but eval.every=0 turns them "
                                            r"off; set eval.every=N too, or eval.patience=0"),
])
def test_bad_patience_is_one_line(tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        tiny_config(**overrides)


def test_the_cli_says_it_stopped_early_and_how_to_train_on(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    stopped = {"reason": "no better fid in 3 evaluations (eval.patience=3); the best, 31.2, was at step 400",
               "metric": "fid", "best": 31.2, "best_step": 400}

    def fake_train(cfg, run_dir, **kwargs):
        for step in (400, 1000):
            (run_dir / "checkpoints" / f"step_{step:07d}").mkdir(parents=True)
            for name in ("weights.safetensors", "state.pt"):  # complete, as --checkpoint best needs
                (run_dir / "checkpoints" / f"step_{step:07d}" / name).write_bytes(b"")
        (run_dir / "checkpoints" / "best").write_text("step_0000400\n")
        (run_dir / "metrics.jsonl").write_text("")
        return FitResult(1000, run_dir, run_dir / "checkpoints" / "step_0001000", stopped=stopped)

    monkeypatch.setattr(api, "train", fake_train)
    assert main(["train", "dcgan-fashion-mnist", "--out", str(run), "--quiet", "eval.every=200",
                 "eval.patience=3"]) == 0
    out = capsys.readouterr().out
    assert (f"ganforge: stopped early at step 1000 of 5000: {stopped['reason']}. To train on: ganforge train "
            f"--resume --out {run} eval.patience=0") in out
    assert "done at step" not in out
    # the evaluation's pick is not the last step: said, and the sample command draws from it
    assert f"  best:       {run / 'checkpoints' / 'step_0000400'} (by eval.best=fid; --checkpoint best)" in out
    assert f"more samples: ganforge sample {run} --checkpoint best --n 64 --out grid.png" in out
