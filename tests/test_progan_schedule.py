"""Progressive growing: a train.steps that ends before the schedule does is warned about, the
progan-folder preset's own steps complete its schedule, and a bad network size names the config
key that sets it (progressive.*, biggan.*, lapgan.* rather than a model.* that does not exist)."""
from __future__ import annotations

import json
import re
import warnings

import pytest
import torch

from ganforge.commands import train as train_command
from ganforge import api, cli
from ganforge.config import apply_overrides, from_dict, load_config
from ganforge.errors import ConfigError
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.progan import ProgressiveGAN, plan, position

SCHEDULE = ["data.resolution=16", "train.batch_size=4", "progressive.batch_sizes=[4,2,3]",
            "progressive.fade_images=[5,9]", "progressive.stable_images=[3,7,4]",
            "progressive.lr_mult=[1]", "train.n_critic=2", "train.accumulate=2"]


def _warnings(cfg) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ProgressiveGAN.check_run(cfg, 1, new=True)
    return [str(w.message) for w in caught]


def _short(cfg) -> list[str]:
    return [w for w in _warnings(cfg) if "before" in w and "fully faded in" in w]


def test_the_warning_names_the_step_at_which_training_reaches_the_last_stage_at_alpha_1(tmp_path):
    """Uneven stage batches, train.n_critic=2 and train.accumulate=2: the step the warning names is
    the one at which the objective's own image count puts the last stage at alpha 1."""
    raw = apply_overrides(ProgressiveGAN.example_config(tmp_path), SCHEDULE)
    objective, _ = api.build(from_dict(raw))
    objective.bind(device=torch.device("cpu"), rng=torch.Generator().manual_seed(0))
    step, before = 0, None
    while (objective.stage, objective.alpha) != (2, 1.0):  # as Trainer.train_step calls it
        before = (objective.stage, objective.alpha, objective.current.resolution)
        for _ in range(2):
            objective.after_step("D")
        objective.after_step("G")
        step += 1
    stage, alpha, resolution = before
    assert stage == 2 and alpha < 1  # the step before ends in the last fade

    short = _short(from_dict(apply_overrides(raw, [f"train.steps={step - 1}"])))
    assert len(short) == 1 and "\n" not in short[0]
    assert short[0].startswith(f"train.steps={step - 1} ends at stage 3/3, 16x16 (fade-in alpha "
                               f"{int(alpha * 100) / 100:.2f}), before 16x16 is fully faded in: "
                               f"that takes {step:,} steps (")
    assert _short(from_dict(apply_overrides(raw, [f"train.steps={step}"]))) == []


def test_progan_folder_trains_to_128_and_gives_it_its_stable_images():
    """The preset's 120,000 steps ended in the 64x64 stage: 128x128 never faded in."""
    _, cfg = load_config("progan-folder", [])
    stages = plan(cfg.progressive, cfg.data.resolution, cfg.train.batch_size)
    assert stages[-1].resolution == 128 and _short(cfg) == []
    images = 0
    for _ in range(cfg.train.steps):
        images += stages[position(images, stages)[0]].batch  # n_critic 1, accumulate 1
    fade_end = sum(s.fade + s.stable for s in stages[:-1]) + stages[-1].fade
    assert images - fade_end >= stages[-1].stable  # the last stage's full stable phase
    assert images - fade_end - stages[-1].stable < stages[-1].batch  # and not a step more

    _, old = load_config("progan-folder", ["train.steps=120000"])
    assert _short(old) == ["train.steps=120000 ends at stage 5/6, 64x64 (stable), before 128x128 is fully "
                           "faded in: that takes 159,375 steps (196,875 with its 600,000 stable images); "
                           "raise train.steps to 196875 or shorten progressive.fade_images / stable_images"]


def test_the_256_recipe_in_the_preset_description_completes_its_schedule():
    _, cfg = load_config("progan-folder", [])
    recipe = re.search(r"for 256 add (data\.resolution=256 [^;)]*)", cfg.description).group(1).split()
    assert any(o.startswith("train.steps=") for o in recipe)
    _, big = load_config("progan-folder", recipe)
    assert big.data.resolution == 256 and _short(big) == []
    steps = [o for o in recipe if o.startswith("train.steps=")]
    _, without = load_config("progan-folder", [o for o in recipe if o not in steps])
    assert "that takes 271,875 steps (346,875 with its 600,000 stable images)" in _short(without)[0]


def test_progan_fashion_mnist_completes_its_fade_so_nothing_is_said():
    """Its 6,000 steps end as 32x32 is fully faded in (BENCHMARKS.md measured these steps)."""
    _, cfg = load_config("progan-fashion-mnist", [])
    assert _short(cfg) == []
    _, one_less = load_config("progan-fashion-mnist", ["train.steps=5999"])
    assert len(_short(one_less)) == 1


def test_a_short_run_says_so_once_on_one_line_and_trains(tmp_path, capsys):
    raw = ProgressiveGAN.example_config(tmp_path / "data")  # 8x8 fully faded in at step 4
    (tmp_path / "p.yaml").write_text(json.dumps(raw))
    rc = cli.main(["train", str(tmp_path / "p.yaml"), "--steps", "3", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    line = ("ganforge: warning: train.steps=3 ends at stage 2/2, 8x8 (fade-in alpha 0.75), before 8x8 is "
            "fully faded in: that takes 4 steps (6 with its 6 stable images); raise train.steps to 6 or shorten "
            "progressive.fade_images / stable_images\n")
    assert rc == 0 and err.count(line) == 1, err
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3


@pytest.mark.parametrize("objective, override, key", [
    ("progressive", "progressive.max_width=0", "progressive.max_width"),
    ("biggan", "biggan.shared_dim=0", "biggan.shared_dim"),
    ("lapgan", "lapgan.base_width=0", "lapgan.base_width"),
])
def test_a_bad_network_size_names_the_config_key_that_sets_it(tmp_path, capsys, objective, override, key):
    raw = OBJECTIVES[objective].example_config(tmp_path / "data")
    with pytest.raises(ConfigError, match=f"; fix {re.escape(key)}$"):
        api.build(from_dict(apply_overrides(raw, [override])))
    (tmp_path / "c.yaml").write_text(json.dumps(raw))
    out = tmp_path / "run"
    rc = cli.main(["train", str(tmp_path / "c.yaml"), override, "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.endswith(f"; fix {key}\n") and err.count("\n") == 1, err
    from_dict(apply_overrides(raw, [f"{key}=8"]))  # a key that exists
    assert not out.exists() or not any(out.iterdir())


def test_under_nproc_the_warning_is_said_once_by_the_launcher(tmp_path, capsys, monkeypatch):
    """`--nproc 2` had printed the short-schedule warning twice: by the launcher, which checks the
    config, and by rank 0, which checks it again. The launcher tells its ranks it said it."""
    from ganforge.training.distributed import CHECKED_BY_LAUNCHER

    raw = ProgressiveGAN.example_config(tmp_path / "data")
    (tmp_path / "p.yaml").write_text(json.dumps(raw))
    launched = {}

    def fake_torchrun(cmd, env, out=None):
        launched["env"] = env
        return 0

    monkeypatch.setattr(train_command, "_run_passing_signals_on", fake_torchrun)
    rc = cli.main(["train", str(tmp_path / "p.yaml"), "--steps", "3", "--nproc", "2", "--out", str(tmp_path / "l")])
    err = capsys.readouterr().err
    assert rc == 0 and err.count("fully faded in") == 1, err
    assert launched["env"][CHECKED_BY_LAUNCHER] == "1"

    monkeypatch.setenv(CHECKED_BY_LAUNCHER, "1")  # a rank the launcher started: trains, says nothing of it
    rc = cli.main(["train", str(tmp_path / "p.yaml"), "--steps", "3", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 0 and "fully faded in" not in err, err
    assert json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 3
