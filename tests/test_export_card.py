"""A model folder's card and config.json: the evaluation they show is the one logged at the
exported checkpoint's step (it had been the run's last, whatever --checkpoint chose), they
publish no path of the exporting machine (the checkpoint's, data.name's folder, data.data_dir),
and a run with no checkpoint yet is pointed at a command that continues it."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge import api, cli
from ganforge.config import from_dict
from ganforge.errors import CheckpointError
from ganforge.objectives import OBJECTIVES
from ganforge.rundir import RunLock
from ganforge.serve import export


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny conditional run on a folder: of labeled images given by its absolute path, with a
    data.data_dir (checkpoints at steps 0, 2 and 4)."""
    root = tmp_path_factory.mktemp("card")
    raw = OBJECTIVES["conditional"].example_config(root / "data")
    (root / "datasets").mkdir()
    raw["data"]["data_dir"] = str(root / "datasets")
    assert raw["data"]["name"] == f"folder:{root / 'data' / 'labeled'}"
    api.train(from_dict(raw), root / "run", progress=False)
    return root / "run"


def _copy(run: Path, tmp_path: Path, evaluations: list[dict]) -> Path:
    """The run copied, with ``evaluations`` appended to its metrics.jsonl."""
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with open(copy / "metrics.jsonl", "a") as f:
        f.writelines(json.dumps(e) + "\n" for e in evaluations)
    return copy


def _exported(run: Path, out: Path, checkpoint: str = "latest") -> tuple[str, dict]:
    folder = export.export_folder(ganforge.load(run, checkpoint=checkpoint), out)
    return (folder / "README.md").read_text(), json.loads((folder / "config.json").read_text())


def test_the_card_shows_the_evaluation_of_the_exported_checkpoint(run, tmp_path):
    protocol = {"extractor": "fashion-mnist-cnn", "reference": f"folder:{tmp_path / 'labeled'}",
                "split": "train", "n": 300, "seed": 0}
    copy = _copy(run, tmp_path, [{"step": 2, "fid": 20.5, "protocol": protocol}, {"step": 4, "fid": 40.5}])
    card, config = _exported(copy, tmp_path / "m2", "step_0000002")
    assert "| fid | 20.5 |" in card and "40.5" not in card
    assert config["evaluation"]["step"] == 2 and config["evaluation"]["fid"] == 20.5
    assert config["evaluation"]["protocol"]["reference"] == "folder:labeled"  # no path of this machine
    card, config = _exported(copy, tmp_path / "m4")
    assert "| fid | 40.5 |" in card and config["evaluation"] == {"step": 4, "fid": 40.5}

    # none at the exported step: said, and no other step's numbers shown
    copy = _copy(run, tmp_path / "later", [{"step": 4, "fid": 40.5}])
    card, config = _exported(copy, tmp_path / "none", "step_0000002")
    assert "No evaluation was logged at step 2" in card and "in its metrics.jsonl" in card
    assert "| fid |" not in card and config["evaluation"] == {}

    # a resume from step 2 logged on from step 3: step 4's evaluation was of weights it discarded
    copy = _copy(run, tmp_path / "resumed", [{"step": 4, "fid": 40.5}, {"step": 3, "d_loss": 1.0, "time": 9.0}])
    card, config = _exported(copy, tmp_path / "discarded", "step_0000004")
    assert "40.5" not in card and config["evaluation"] == {}


def test_the_model_folder_publishes_no_path_of_this_machine_and_loads_as_the_run(run, tmp_path):
    root = str(run.parent)  # where the run, its data and its data_dir lie
    card, config = _exported(run, tmp_path / "model")
    for text in (card, json.dumps(config)):
        assert root not in text and str(Path(root).resolve()) not in text
    assert f"exported from `{run.name}/checkpoints/step_0000004` at step 4" in card
    assert config["source"] == f"{run.name}/checkpoints/step_0000004"
    assert config["config"]["data"]["name"] == "folder:labeled" and config["config"]["data"]["data_dir"] is None
    assert "dataset: `folder:labeled`" in card
    loaded, original = ganforge.load(tmp_path / "model"), ganforge.load(run)
    assert loaded.class_names == original.class_names == ["a", "b"]
    assert torch.equal(loaded.sample(6, seed=4, labels=[0, 1, 0, 1, 1, 0]),
                       original.sample(6, seed=4, labels=[0, 1, 0, 1, 1, 0]))


def test_a_run_stopped_before_its_first_checkpoint_is_told_to_resume(run, tmp_path, capsys):
    """Killed before its first checkpoint, a run holds config.yaml alone: 'train first (ganforge
    train PRESET --out RUN)' named a command that refuses an existing run; its --resume works."""
    killed = tmp_path / "killed"
    killed.mkdir()
    shutil.copy(run / "config.yaml", killed / "config.yaml")
    with pytest.raises(CheckpointError) as err:
        ganforge.load(killed)
    assert str(err.value) == (f"no checkpoint in {killed / 'checkpoints'}; it stopped before its first "
                              f"checkpoint; continue it: ganforge train --resume --out {killed}")
    assert cli.main(["export", str(killed), "--format", "folder", "--out", str(tmp_path / "m")]) == 2
    assert f"{err.value}\n" in capsys.readouterr().err
    with RunLock(killed):  # still training: a resume would be refused while it holds the run
        with pytest.raises(CheckpointError, match="it is still training and has not saved its first checkpoint"):
            ganforge.load(killed)
    assert cli.main(["train", "--resume", "--out", str(killed), "--quiet"]) == 0
    assert ganforge.load(killed).step == 4

    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)  # no config.yaml: not a run that was started
    with pytest.raises(CheckpointError, match=r"; train first \(ganforge train PRESET --out "):
        ganforge.load(empty)


def test_a_translation_model_on_a_folder_is_evaluated_where_its_folder_lies(tmp_path, monkeypatch, capsys):
    """Its card names the folder without its path, and says translate-eval reads it from where it runs."""
    raw = OBJECTIVES["pix2pix"].example_config(tmp_path / "data")
    api.train(from_dict(raw), tmp_path / "run", progress=False)
    card, config = _exported(tmp_path / "run", tmp_path / "share" / "model")
    assert str(tmp_path) not in card + json.dumps(config)
    assert "`ganforge translate-eval model`" in card
    assert "it reads the folder `photos` in the directory it runs in" in card
    (tmp_path / "share" / "photos").symlink_to(tmp_path / "data" / "photos")
    monkeypatch.chdir(tmp_path / "share")
    assert cli.main(["translate-eval", "model"]) == 0, capsys.readouterr().err
    assert "PSNR" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)  # elsewhere: the one-line fix, and --data taking the folder
    assert cli.main(["translate-eval", "share/model"]) == 2
    err = capsys.readouterr().err
    assert "there is no folder photos here; pass --data folder:PATH" in err and err.count("\n") == 1
    assert cli.main(["translate-eval", "share/model", "--data", f"folder:{tmp_path / 'data' / 'photos'}"]) == 0


def test_the_card_says_edit_needs_classify_for_data_without_a_classifier(style_run, tmp_path):
    """A StyleGAN2 run on a folder: the card listed `edit` as something the model does, and
    `ganforge edit` of it always refuses (a folder has no classifier to label the images); the
    card now says it works from Python with classify=. Fashion-MNIST's runs keep the plain line."""
    card, _ = _exported(style_run, tmp_path / "m")
    data = ganforge.load(style_run).config.data.name
    assert data.startswith("folder:")
    line = next(x for x in card.splitlines() if x.startswith("- `edit`:"))
    assert line.endswith("has no built-in classifier, so only from Python with `classify=` (a function of images "
                         "giving class logits)"), line
    assert export._card_qualifier("edit", from_dict({**OBJECTIVES["stylegan2"].example_config(tmp_path / "d"),
                                                      "data": {"name": "fashion-mnist", "resolution": 8,
                                                               "channels": 1}})) == ""
