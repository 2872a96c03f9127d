"""What a crash or a damaged run folder leaves, found by a review of "nothing lost on a crash": a
checkpoint folder half-removed by a kill, a `latest` pointer that is not text, metrics.jsonl gone,
a config.yaml with a NUL byte."""
from __future__ import annotations

import pytest

import ganforge
from conftest import random_dataset, tiny_config
from ganforge import api
from ganforge.errors import CheckpointError, ConfigError
from ganforge.report import write_report
from ganforge.runfiles import saved_config
from ganforge.training import checkpoint as ckpt


def _train(run, steps, **kw):
    cfg = tiny_config(**{"train.steps": steps, "train.keep_checkpoints": 2})
    return api.train(cfg, run, progress=False, dataset=random_dataset(n=32, resolution=16), **kw)


def test_a_half_removed_checkpoint_is_removed_and_never_offered(tmp_path):
    run = tmp_path / "run"
    _train(run, 6)
    (run / "checkpoints" / "step_0000003" / ckpt.STATE).unlink()  # what a kill inside rmtree leaves
    with pytest.raises(CheckpointError) as exc:
        ganforge.load(run, checkpoint="step_0000003")
    # it had been refused and offered in one breath: "not found ...; use latest or one of: step_0000003, ..."
    assert "step_0000003 lacks" in str(exc.value) and "one of: step_0000006" in str(exc.value)
    assert "step_0000003," not in str(exc.value)
    _train(run, 12, resume=True)
    names = sorted(p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(("step_", ".")))
    assert names == ["step_0000009", "step_0000012"], names  # keep_checkpoints, and nothing half-removed


def test_pruning_renames_before_it_deletes(tmp_path, monkeypatch):
    # a kill inside shutil.rmtree leaves a part of the folder: under its own name that had been a
    # checkpoint folder for good; under a temporary name, the next start removes it
    run = tmp_path / "run"
    _train(run, 6)
    seen = []
    monkeypatch.setattr(ckpt.shutil, "rmtree", lambda path, **kw: seen.append(path.name))
    ckpt._prune(run / "checkpoints", 1, "step_0000006", ())
    assert seen and all(name.startswith(".tmp-removing-step_") for name in seen), seen
    monkeypatch.undo()
    assert ckpt.clean_leftovers(run / "checkpoints") == sorted(set(seen))


def test_a_latest_pointer_that_is_not_text_falls_back_to_the_newest(tmp_path):
    run = tmp_path / "run"
    _train(run, 6)
    (run / "checkpoints" / "latest").write_bytes(b"\xff\xfe")  # had been a UnicodeDecodeError traceback
    assert ckpt.find(run).name == "step_0000006"
    assert ganforge.load(run).step == 6


def test_a_missing_metrics_file_is_said_on_resume_and_by_the_report(tmp_path, capsys):
    run = tmp_path / "run"
    _train(run, 6)
    (run / "metrics.jsonl").unlink()
    with pytest.raises(CheckpointError) as exc:
        write_report(run)
    # it had said the run "stopped before its first log interval", with checkpoints to step 6
    assert str(exc.value).startswith(f"{run}/metrics.jsonl is missing, though the run has checkpoints up to "
                                     f"step_0000006: its training history is gone"), exc.value
    capsys.readouterr()
    _train(run, 8, resume=True)
    out = capsys.readouterr()
    said = out.out + out.err
    assert (f"ganforge: warning: {run / 'metrics.jsonl'} is missing: the run's history up to step 6 is lost"
            in said), said
    capsys.readouterr()
    _train(run, 10, resume=True)  # the new file is there now: nothing more to say
    out = capsys.readouterr()
    assert "is missing" not in out.out + out.err


def test_a_nul_byte_in_config_yaml_names_its_line(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("train:\n  steps: 5\n  seed: 1\x002\n")
    with pytest.raises(ConfigError) as exc:
        ganforge.load_config(str(path))
    assert "is not valid YAML at line 3, column 10 (a character YAML does not allow, U+0000)" in str(exc.value)
    run = tmp_path / "run"
    _train(run, 3)
    (run / "config.yaml").write_text((run / "config.yaml").read_text() + "x: \x00\n")
    with pytest.raises(CheckpointError) as exc:
        saved_config(run)  # what a resume reads
    assert "is not valid YAML (a character YAML does not allow, U+0000 at line" in str(exc.value), exc.value
