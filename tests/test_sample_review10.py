"""ganforge sample as a user of several runs: an upper-case .NPZ name is written (numpy had added
'.npz' to the temporary name, so the rename failed with a traceback and left a hidden file), a run
without EMA records "ema": false, and --per-class 0 names the mistake made."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import random_dataset, tiny_config
from ganforge import api, cli, provenance


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample10")
    api.train(tiny_config(**{"train.steps": 2}), root / "plain", progress=False,
              dataset=random_dataset(n=32, resolution=16))
    api.train(tiny_config(**{"train.steps": 2, "train.ema_decay": 0}), root / "noema", progress=False,
              dataset=random_dataset(n=32, resolution=16))
    api.train(tiny_config(**{"train.steps": 2, "objective": "conditional"}), root / "cond", progress=False,
              dataset=random_dataset(n=32, resolution=16, labels=True))
    return root


@pytest.mark.parametrize("name", ["a.NPZ", "b.Npz"])
def test_an_upper_case_npz_name_is_written_and_leaves_nothing_else(runs, tmp_path, name):
    assert cli.main(["sample", str(runs / "plain"), "--n", "4", "--out", str(tmp_path / name)]) == 0
    assert [p.name for p in tmp_path.iterdir()] == [name]
    with np.load(tmp_path / name) as data:
        assert data["images"].shape == (4, 16, 16, 1) and data["images"].dtype == np.uint8


def test_a_run_without_ema_records_the_live_generator(runs, tmp_path, capsys):
    for run, ema in (("noema", False), ("plain", True)):
        out = tmp_path / f"{run}.png"
        assert cli.main(["sample", str(runs / run), "--n", "4", "--out", str(out)]) == 0
        assert provenance.read(out)["ema"] is ema, run
        with np.load(_npz(runs / run, tmp_path)) as data:
            assert json.loads(str(data["provenance"]))["ema"] is ema, run


def _npz(run, folder):
    out = folder / f"{run.name}.npz"
    assert cli.main(["sample", str(run), "--n", "2", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("args, said", [
    (["--per-class", "0"], "--per-class must be positive, got 0"),
    (["--per-class", "2", "--class", "1"], "--per-class draws every class and --class one; pass one of them"),
])
def test_per_class_errors_name_the_mistake_made(runs, tmp_path, capsys, args, said):
    code = cli.main(["sample", str(runs / "cond"), "--out", str(tmp_path / "pc.png"), *args])
    assert code == 2 and capsys.readouterr().err.strip() == f"ganforge: error: {said}"
