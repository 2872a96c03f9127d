"""What a growing (progressive) run's samples are: `ganforge sample` and `ganforge eval` name the
stage that drew them (a run stopped at 4x4 of 4 -> 32 had been sampled and scored with no word that
its images were 4x4, upsampled); a family that does not grow says nothing more."""
import pytest

from conftest import family_run

from ganforge import api, cli
from ganforge.metrics.targets import run_samples


@pytest.fixture(scope="module")
def grown(tmp_path_factory):
    return family_run(tmp_path_factory.mktemp("stage"), "progressive", "train.steps=2")


def test_sample_and_eval_name_the_stage(grown, tmp_path, capsys):
    assert cli.main(["sample", str(grown), "--n", "4", "--out", str(tmp_path / "g.png")]) == 0
    assert "(step 2; stage 2/2: 8x8" in capsys.readouterr().out
    _, _, target = run_samples(api.load(grown), n=4)
    assert target["stage"].startswith("stage 2/2: 8x8")


def test_a_family_that_does_not_grow_has_no_stage(tmp_path):
    from conftest import random_dataset, tiny_config

    run = tmp_path / "run"
    api.train(tiny_config(**{"train.steps": 1}), run, progress=False, dataset=random_dataset())
    assert "stage" not in run_samples(api.load(run), n=4)[2]
