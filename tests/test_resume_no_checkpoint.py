"""A resume of a run that trained but whose checkpoints are all gone (deleted to save space) is
refused: it had started again from step 0 without a word and appended the new training's
records to the old ones in metrics.jsonl (steps 10..40 then 10..60). A run killed before its first
checkpoint, with no training records, still starts from step 0 on a resume."""
import shutil

from ganforge import cli

from conftest import tiny_config


def _trained_run(tmp_path):
    cfg = tiny_config(**{"train.steps": 4, "train.batch_size": 8, "train.log_every": 2})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(cfg.to_yaml())
    run = tmp_path / "run"
    assert cli.main(["train", str(yaml_file), "--out", str(run), "--quiet"]) == 0
    return run


def test_a_resume_without_any_checkpoint_left_is_refused_and_changes_nothing(tmp_path, capsys):
    run = _trained_run(tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "checkpoints").mkdir()
    metrics = (run / "metrics.jsonl").read_text()
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--quiet", "train.steps=8"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "holds no checkpoint" in err and "training to step 4" in err, err
    assert "--force" in err and str(run / "config.yaml") in err, err
    assert (run / "metrics.jsonl").read_text() == metrics
    assert not any((run / "checkpoints").iterdir())


def test_the_advised_command_trains_again_from_step_0(tmp_path, capsys):
    run = _trained_run(tmp_path)
    shutil.rmtree(run / "checkpoints")
    assert cli.main(["train", str(run / "config.yaml"), "--out", str(run), "--force", "--quiet"]) == 0
    steps = [line for line in (run / "metrics.jsonl").read_text().splitlines() if '"event"' not in line]
    assert len(steps) == 2  # steps 2 and 4, once


def test_a_run_killed_before_its_first_checkpoint_still_resumes_from_step_0(tmp_path, capsys):
    run = _trained_run(tmp_path)
    shutil.rmtree(run / "checkpoints")
    (run / "metrics.jsonl").unlink()
    assert cli.main(["train", "--resume", "--out", str(run), "--quiet"]) == 0
    assert (run / "checkpoints" / "step_0000004").is_dir()


def test_a_resume_changing_two_weight_shapes_names_both(tmp_path, capsys):
    """Only the first key that changes a weight's shape was named: the user dropped it, resumed
    again, and only then learned of the second."""
    run = _trained_run(tmp_path)
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--quiet", "train.steps=8",
                     "model.z_dim=16", "model.g_width=16", "optim.g_lr=1e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.g_width=16, model.z_dim=16" in err, err
    assert "optim.g_lr" not in err and "drop them" in err, err
