"""A run's config hash in provenance is of its config as its checkpoint saved it: a newer ganforge
reads each setting added since with its default, and the resolved dict it hashed had changed, so
the same run's images got another hash under the new version (an older ganforge's records then no
longer matched: detect's draw identities, edit --latent's run check)."""
from __future__ import annotations

import json

import torch
from conftest import random_dataset, tiny_config
from PIL import Image

from ganforge import api, cli, provenance
from ganforge.detect import sources
from ganforge.training import checkpoint as ckpt


def _as_an_older_version_saved_it(run) -> dict:
    """The run's checkpoint rewritten as a version without monitor.coverage_ratio would have:
    its saved config lacks the key (today's code reads the default)."""
    path = ckpt.find(run, "latest")
    state = torch.load(path / ckpt.STATE, weights_only=True)
    del state["config"]["monitor"]["coverage_ratio"]
    torch.save(state, path / ckpt.STATE)
    return state["config"]


def test_an_older_runs_images_keep_the_hash_its_version_gave(tmp_path):
    run = tmp_path / "run"
    api.train(tiny_config(), run, dataset=random_dataset(), progress=False)
    today = provenance.config_hash(api.load(run).config)
    assert provenance.run_config_hash(api.load(run)) == today  # a run of this version: as before
    saved = _as_an_older_version_saved_it(run)
    older = provenance.config_hash(saved)  # what that version recorded in its images
    loaded = api.load(run)
    assert provenance.config_hash(loaded.config) == today != older  # the resolved config is today's
    assert provenance.run_config_hash(loaded) == older
    assert cli.main(["sample", str(run), "--n", "4", "--seed", "0", "--out", str(tmp_path / "s.png")]) == 0
    record = json.loads(Image.open(tmp_path / "s.png").text["ganforge"])
    assert record["config_hash"] == older and record["objective"] == "unconditional"
    assert provenance.records_for(loaded)(operation="serve")["config_hash"] == older
    assert sources.run_draw(loaded, 0)["config_hash"] == older


def test_a_model_folder_gives_the_hash_of_the_run_it_came_from(tmp_path):
    """A model folder's config.json holds the config cut for sharing (paths) and read by this
    version: its own hash had differed from the run's, so a detector trained on the run's images
    scored the folder's (the same generator) as unseen, and edit --latent refused the folder of the
    run a latent was projected on. It records the run's hash now, and its images carry it."""
    run = tmp_path / "run"
    api.train(tiny_config(**{"data.data_dir": str(tmp_path)}), run, dataset=random_dataset(), progress=False)
    older = provenance.config_hash(_as_an_older_version_saved_it(run))
    folder = tmp_path / "model"
    assert cli.main(["export", str(run), "--format", "folder", "--out", str(folder)]) == 0
    loaded = api.load(folder)
    assert provenance.config_hash(loaded.saved_config) != older  # cut for sharing, read by this version
    assert provenance.run_config_hash(loaded) == older
    assert cli.main(["sample", str(folder), "--n", "4", "--out", str(tmp_path / "f.png")]) == 0
    assert json.loads(Image.open(tmp_path / "f.png").text["ganforge"])["config_hash"] == older
    again = tmp_path / "model2"  # a folder exported from the folder keeps it
    assert cli.main(["export", str(folder), "--format", "folder", "--out", str(again)]) == 0
    assert provenance.run_config_hash(api.load(again)) == older
    # a folder exported before the hash was recorded: its own config's, as before
    meta = json.loads((folder / "config.json").read_text())
    del meta["config_hash"]
    (folder / "config.json").write_text(json.dumps(meta))
    assert provenance.run_config_hash(api.load(folder)) == provenance.config_hash(meta["config"])
