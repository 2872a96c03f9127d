"""A model folder that lost one of its two files is named as a damaged model folder by every
command that reads one (it had been read as a run directory: "no checkpoint ...; train first")."""
from __future__ import annotations

import shutil

import pytest

import ganforge
from conftest import run_cli
from ganforge.errors import CheckpointError
from test_export import train_family


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A run and its model folder, made once for the module (each test damages a copy)."""
    root = tmp_path_factory.mktemp("damage")
    run = train_family("unconditional", root)
    assert run_cli("export", str(run), "--format", "folder", "--out", str(root / "model")).returncode == 0
    return run, root / "model"


@pytest.mark.parametrize("lost", ["model.safetensors", "config.json"])
def test_a_model_folder_missing_a_file_says_so_and_how_to_rebuild_it(tmp_path, exported, lost):
    run, whole = exported
    model = tmp_path / "model"
    shutil.copytree(whole, model)
    (model / lost).unlink()
    fix = f"model folder {model} lacks {lost}; export it again"
    with pytest.raises(CheckpointError, match=fix):
        ganforge.load(model)
    for args in (["sample", str(model), "--n", "2", "--out", str(tmp_path / "x.png")],
                 ["eval", str(model), "--ref", "fashion-mnist", "--n", "10"]):
        proc = run_cli(*args)
        assert proc.returncode == 2 and proc.stderr.strip().startswith(f"ganforge: error: {fix}"), proc.stderr
    assert not (tmp_path / "x.png").exists()
    ganforge.load(whole)  # the intact copy loads
    assert ganforge.load(run).run_dir == run  # and a run directory is no model folder
