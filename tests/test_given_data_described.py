"""A run trained on images passed from Python (train's dataset=) is described as that data, not
as the config's data.name (the preset's Fashion-MNIST): the monitor's probe measures it in pixels
only (Fashion-MNIST's classifier had "found" its classes in random noise), and the report and the
model card name the data it trained on (RUN/dataset.json); a run without dataset.json is
described as before."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
from conftest import random_dataset, tiny_config
from safetensors.torch import load_file

from ganforge import api, cli
from ganforge.report import run as report_run
from ganforge.training.probe import DiversityProbe


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(a run trained on random images given from Python, the same without the monitor)."""
    root = tmp_path_factory.mktemp("given")
    api.train(tiny_config(), root / "run", dataset=random_dataset(), progress=False)
    api.train(tiny_config(**{"monitor.enabled": "false"}), root / "plain", dataset=random_dataset(),
              progress=False)
    return root / "run", root / "plain"


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_probe_of_given_data_is_pixels_only_and_training_is_unchanged(runs):
    run, plain = runs
    probed = [r for r in _records(run) if "diversity" in r]
    assert [r["step"] for r in probed] == [2, 4, 6]
    for r in probed:  # fashion-mnist-cnn had counted 1-3 "classes" in random noise
        assert not {k for k in r if k.startswith(("probe_classes", "diversity_features"))}, r
        assert r["diversity_real"] > 0
    # the probe draws nothing training draws: the same weights as without the monitor
    weights, same = (load_file(p / "checkpoints/step_0000006/weights.safetensors") for p in (run, plain))
    assert weights.keys() == same.keys()
    assert all(torch.equal(weights[k], same[k]) for k in weights)


def test_probe_uses_the_named_datasets_classifier_only_and_keeps_the_random_stream():
    cfg = tiny_config()  # data.name fashion-mnist, whose classifier ganforge ships
    images = torch.rand(8, 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    given = DiversityProbe(cfg, torch.device("cpu"), warn=print, given_data=True)
    assert given.extractor() is None
    assert set(given.stats(images)) == {"diversity"}

    named = DiversityProbe(cfg, torch.device("cpu"), warn=print)
    before = torch.get_rng_state()
    assert named.extractor() is not None  # building it had drawn its layer init from torch's generator
    assert torch.equal(torch.get_rng_state(), before)
    assert set(named.stats(images)) == {"diversity", "diversity_features", "classes"}


def test_model_card_names_the_given_data(runs, tmp_path):
    run, _ = runs
    assert cli.main(["export", str(run), "--format", "folder", "--out", str(tmp_path / "m")]) == 0
    card = (tmp_path / "m" / "README.md").read_text()
    assert "\n- dataset: random, passed from Python (64 images)\n" in card
    assert "fashion-mnist` (split" not in card and "--ref fashion-mnist" not in card
    assert "--ref folder:PATH" in card
    # a model folder exported again from the first keeps saying so (config.json holds the record)
    assert json.loads((tmp_path / "m" / "config.json").read_text())["dataset"] == {"name": "random", "images": 64}
    assert cli.main(["export", str(tmp_path / "m"), "--format", "folder", "--out", str(tmp_path / "m2")]) == 0
    assert "\n- dataset: random, passed from Python (64 images)\n" in (tmp_path / "m2" / "README.md").read_text()

    # a run without dataset.json: its data.name, as before
    other = tmp_path / "named"
    shutil.copytree(run, other)
    (other / "dataset.json").unlink()
    assert cli.main(["export", str(other), "--format", "folder", "--out", str(tmp_path / "n")]) == 0
    card = (tmp_path / "n" / "README.md").read_text()
    assert "\n- dataset: `fashion-mnist` (split `train`)\n" in card and "passed from Python" not in card
    assert "dataset" not in json.loads((tmp_path / "n" / "config.json").read_text())


def test_model_card_config_says_the_preset_data_name_was_not_read(runs, tmp_path):
    """The card's Training config block shows the run's config, whose data.name and description
    are the preset's (Fashion-MNIST): the card says the run trained on the given data there too, as
    the report's header does; a run without dataset.json keeps its config as it is."""
    from ganforge.serve.export import model_card

    run, _ = runs
    block = _card_config(model_card(api.load(run), {"name": "m", "source": "run"}))
    assert "`data.name` below is the preset's, not read: the run trained on random, passed from Python " \
           "(64 images)." in block
    assert _yaml(block)["description"] == "trained on random, passed from Python (64 images)"
    loaded = api.load(run)
    loaded.config.description = "DCGAN on Fashion-MNIST"
    block = _card_config(model_card(loaded, {"name": "m", "source": "run"}))
    assert _yaml(block)["description"] == "DCGAN on Fashion-MNIST; trained instead on random, passed from Python " \
                                          "(64 images)"
    assert loaded.config.description == "DCGAN on Fashion-MNIST"  # the loaded run's own config is untouched
    named = tmp_path / "named"
    shutil.copytree(run, named)
    (named / "dataset.json").unlink()
    loaded = api.load(named)
    loaded.config.description = "DCGAN on Fashion-MNIST"
    block = _card_config(model_card(loaded, {"name": "m", "source": "run"}))
    assert _yaml(block)["description"] == "DCGAN on Fashion-MNIST" and "passed from Python" not in block


def _card_config(card: str) -> str:
    return card.split("## Training config", 1)[1]


def _yaml(block: str) -> dict:
    import yaml

    return yaml.safe_load(block.split("```yaml\n", 1)[1].split("```", 1)[0])


def test_report_names_the_given_data(runs, tmp_path):
    run, _ = runs
    out = tmp_path / "r.html"
    assert cli.main(["report", str(run), "--out", str(out)]) == 0
    html = out.read_text()
    assert '<div class="label">Data</div><div class="value">random, passed from Python (64 images)</div>' in html
    assert ("It trained on random, passed from Python (64 images) (RUN/dataset.json says so), not on "
            "data.name fashion-mnist, which config.yaml keeps.") in html
    # the header's preset description names its own dataset: the data used follows it
    header = html.split("</header>")[0]
    assert "<p>trained on random, passed from Python (64 images)</p>" in header, header[-300:]
    described = (run.parent / "described")
    shutil.copytree(run, described)
    saved = described / "config.yaml"
    assert "description: ''\n" in saved.read_text()
    saved.write_text(saved.read_text().replace("description: ''\n", "description: DCGAN on Fashion-MNIST\n", 1))
    assert cli.main(["report", str(described), "--out", str(tmp_path / "d.html")]) == 0
    header = (tmp_path / "d.html").read_text().split("</header>")[0]
    assert "<p>DCGAN on Fashion-MNIST; trained instead on random, passed from Python (64 images)</p>" in header
    # eval.every is refused with dataset=: the advice names hooks=
    assert "train with hooks= (your own scoring) and eval.every" in html
    assert "set eval.every and eval.metrics" not in html

    other = tmp_path / "named"  # a run without dataset.json: as before
    shutil.copytree(run, other)
    (other / "dataset.json").unlink()
    assert cli.main(["report", str(other), "--out", str(tmp_path / "n.html")]) == 0
    html = (tmp_path / "n.html").read_text()
    assert "passed from Python" not in html and "set eval.every and eval.metrics" in html


@pytest.mark.parametrize("text, words", [
    ('{"name": "mine"}\n', "mine, passed from Python"),
    ('{"name": "mine", "images": 1200}\n', "mine, passed from Python (1,200 images)"),
    ("{not json", "a dataset, passed from Python"),  # damaged: still Python, as a resume says
])
def test_given_dataset_words(tmp_path, text, words):
    assert report_run.GIVEN_DATASET == api.GIVEN_DATASET
    assert report_run.given_dataset(tmp_path) is None
    (tmp_path / "dataset.json").write_text(text)
    assert report_run.given_dataset(tmp_path) == words
