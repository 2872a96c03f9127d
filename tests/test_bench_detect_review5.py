"""Review 5 of detect and bench: a source from the very generator a detector trained on (another
seed, a .npz of the run, the run of a .npz) is "same generator", not unseen; after detect train
--seed 1 the printed eval command works and the refusal names training's seed; small validation
and evaluation sets get a note; bench augment's table says over how many seeds and test images,
with the gain in percentage points and its spread; gan-vs-diffusion takes --data-dir; negative
--seeds are refused before anything is created."""
from __future__ import annotations

import json
import math
import shlex
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import tiny_config
from test_bench_review import fake_seed_result
from ganforge import api
from ganforge.cli import main

SMALL = ["--steps", 1, "--width", 2, "--depth", 1, "--batch-size", 4]


def _cli(capsys, *argv):
    capsys.readouterr()
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def _real_folder(root, n=40):
    root.mkdir()
    images = torch.randint(0, 256, (n, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    for i, img in enumerate(images):
        Image.fromarray(img.numpy()).save(root / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("gen")
    api.train(tiny_config(), root / "run", progress=False)
    return root / "run"


# 1. provenance: other draws of a generator the detector trained on are "same generator"
def test_eval_counts_other_draws_of_a_trained_generator_as_seen(tmp_path, capsys, run):
    real = _real_folder(tmp_path / "real")
    for seed in (5, 6):
        code, _, err = _cli(capsys, "sample", run, "--n", 8, "--seed", seed, "--out", tmp_path / f"s{seed}.npz")
        assert code == 0, err
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "other.npz", images=rng.integers(0, 256, (16, 16, 16, 1), dtype=np.uint8))
    # trained on the run: its .npz drawn with another seed is the same generator
    code, _, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det_run",
                        "--n", 8, *SMALL)
    assert code == 0, err
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det_run", "--real", real, "--fake", run,
                          tmp_path / "s5.npz", tmp_path / "other.npz", "--n", 8, "--json", tmp_path / "a.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "a.json").read_text())["detectors"][0]["results"]
    # other.npz has no provenance record: nothing tells another generator from re-saved training images
    assert [rows[str(p)]["seen_as"] for p in (run, tmp_path / "s5.npz", tmp_path / "other.npz")] == [
        "source", "same generator", "unknown"]
    assert [rows[str(p)]["seen_in_training"] for p in (run, tmp_path / "s5.npz", tmp_path / "other.npz")] == [
        True, True, None]
    line = next(row for row in out.splitlines() if row.strip().startswith(str(tmp_path / "s5.npz")))
    assert "same generator" in line
    # the reverse: trained on a .npz of the run, the run itself (and another seed's .npz) is the same generator
    code, _, err = _cli(capsys, "detect", "train", "--real", real, "--fake", tmp_path / "s5.npz", "--out",
                        tmp_path / "det_npz", "--n", 8, *SMALL)
    assert code == 0, err
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det_npz", "--real", real, "--fake", run,
                          tmp_path / "s6.npz", tmp_path / "other.npz", "--n", 8, "--json", tmp_path / "b.json")
    assert code == 0, err
    rows = json.loads((tmp_path / "b.json").read_text())["detectors"][0]["results"]
    assert [rows[str(p)]["seen_as"] for p in (run, tmp_path / "s6.npz", tmp_path / "other.npz")] == [
        "same generator", "same generator", "unknown"]
    assert rows[str(run)]["seen_in_training"] is True and rows[str(tmp_path / "other.npz")]["seen_in_training"] is None


# 2. detect train --seed 1: the printed eval command runs; the refusal names training's seed
def test_eval_command_after_training_with_seed_1_works(tmp_path, capsys, run):
    real = _real_folder(tmp_path / "real")
    code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det",
                          "--n", 8, "--seed", 1, *SMALL)
    assert code == 0, err
    argv = shlex.split(out.split("try: ", 1)[1].splitlines()[0])
    assert argv[:3] == ["ganforge", "detect", "eval"] and argv[argv.index("--seed") + 1] != "1"
    code, out, err = _cli(capsys, *argv[1:], "--n", 8)
    assert code == 0, err
    code, _, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake", run, "--n", 8)
    assert code == 2 and err.count("\n") == 1 and "the very samples" in err
    assert "training's 0" not in err and "trained with --seed 1" in err and "--seed 2" in err
    # training with the default seed 0: eval's default 1 differs, no --seed is added
    code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det0",
                          "--n", 8, *SMALL)
    assert code == 0, err
    assert "--seed" not in out.split("try: ", 1)[1]


# 4. small validation and evaluation sets: a one-line note each
def test_small_validation_and_evaluation_sets_get_a_note(tmp_path, capsys, run):
    real = _real_folder(tmp_path / "real")
    code, out, err = _cli(capsys, "detect", "train", "--real", real, "--fake", run, "--out", tmp_path / "det",
                          "--n", 20, *SMALL)
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("ganforge: note: held-out validation")]
    assert len(notes) == 1 and "from 2 real and 2 generated images (under 300 per side)" in notes[0]
    assert "use --n 3000 or more" in notes[0]
    code, out, err = _cli(capsys, "detect", "eval", tmp_path / "det", "--real", real, "--fake", run, "--n", 10)
    assert code == 0, err
    notes = [line for line in out.splitlines() if line.startswith("ganforge: note: AP and accuracy")]
    assert len(notes) == 1 and "from 10 real and 10 generated images (under 300 per side)" in notes[0]
    assert "standard error is up to 11 points" in notes[0]  # 0.5 / sqrt(20)


# 4. bench augment's table: seeds, test images, gain in points with its spread (JSON keys kept)
def test_augment_summary_names_seeds_test_images_and_gain_spread():
    from ganforge.bench import augment

    rows = [{"size": 10, "seed": 0, "real": 0.73, "real+syn": 0.656, "syn": 0.162},
            {"size": 10, "seed": 1, "real": 0.73, "real+syn": 0.688, "syn": 0.148}]
    summary = augment.summarize(rows, [10])
    assert summary[0]["gain_mean"] == pytest.approx(-0.058)
    assert summary[0]["gain_std"] == pytest.approx(np.std([-0.074, -0.042], ddof=1))
    table = augment.format_summary(summary, n_test=500)
    assert "500 real test images" in table and "over 2 seeds" in table and "percentage points" in table
    assert "gain (pp)" in table and "-5.80 ± 2.26" in table
    one = augment.format_summary(augment.summarize(rows[:1], [10]), n_test=500)
    assert "±" not in one and "one seed" in one and math.isnan(augment.summarize(rows[:1], [10])[0]["gain_std"])


# 3. gan-vs-diffusion --data-dir: to the GAN's training process, the diffusion data and the scoring
def test_gan_vs_diffusion_passes_data_dir_on(tmp_path, capsys, monkeypatch):
    pytest.importorskip("diffusers")
    from ganforge.bench import gan_vs_diffusion as gvd
    from ganforge.commands import bench as cmd

    seen, real_run_seed = {}, gvd.run_seed

    def fake_seed(s, seed, out, log):
        seen["data_dir"] = s.data_dir
        return fake_seed_result(seed)

    monkeypatch.setattr(gvd, "run_seed", fake_seed)
    monkeypatch.setattr(cmd, "_check_scoring", lambda s: None)
    data = tmp_path / "data"
    data.mkdir()
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", "--steps", 1, "--seeds", "0", "--n", 20,
                        "--quality-samplers", "ddim3", "--speed-samplers", "ddim3", "--data-dir", data,
                        "--out", tmp_path / "out")
    assert code == 0, err
    assert seen["data_dir"] == str(data)

    commands = []

    class Child:  # ganforge train, as gan-vs-diffusion starts it
        returncode = 0

        def __init__(self, command, **kwargs):
            commands.append(command)

        def communicate(self, timeout=None):
            return "", None

    monkeypatch.setattr(gvd, "subprocess", SimpleNamespace(Popen=Child, PIPE=-1, STDOUT=-2))
    gvd.train_gan(gvd.Settings(steps=1, data_dir=str(data)), 0, tmp_path / "gan", log=lambda m: None)
    assert f"data.data_dir={data}" in commands[0]
    loaded, scored = [], []
    import ganforge.data as data_module
    import ganforge.metrics as metrics_module

    def fake_load(name, **kwargs):
        loaded.append(kwargs.get("data_dir"))
        raise RuntimeError("stop")

    def fake_evaluate(images, **kwargs):
        scored.append(kwargs.get("data_dir"))
        return SimpleNamespace(values={}, protocol={"extractor": "x", "warnings": []})

    monkeypatch.setattr(data_module, "load_dataset", fake_load)
    monkeypatch.setattr(metrics_module, "evaluate", fake_evaluate)
    gvd._score(torch.zeros(2, 1, 28, 28), gvd.Settings(data_dir=str(data)))
    assert scored == [str(data)]
    monkeypatch.setattr(gvd, "train_gan", lambda *a, **k: {"seconds": 0})
    monkeypatch.setattr(api, "load", lambda *a, **k: SimpleNamespace(step=1, sample=lambda n, seed: torch.zeros(
        n, 1, 28, 28)))
    with pytest.raises(RuntimeError, match="stop"):
        real_run_seed(gvd.Settings(steps=1, n=2, speed_n=1, speed_batch=1, data_dir=str(data)), 0, tmp_path / "o",
                     log=lambda m: None)
    assert loaded == [str(data)]


# 5. negative --seeds: one line naming --seeds, exit 2, before the banner and before --out exists
@pytest.mark.parametrize("argv", [
    ["bench", "augment", "--seeds=-1", "--sizes", "2"],
    ["bench", "augment", "--seeds", "0,-3"],
    ["bench", "gan-vs-diffusion", "--seeds=-1", "--steps", "1"],
])
def test_negative_seeds_are_refused_before_anything_is_created(tmp_path, capsys, argv):
    if "gan-vs-diffusion" in argv:
        pytest.importorskip("diffusers")
    out = tmp_path / "out"
    code, stdout, err = _cli(capsys, *argv, "--out", out)
    assert code == 2 and err.count("\n") == 1 and "--seeds" in err and "0 or more" in err, err
    assert stdout == "" and not out.exists()


def test_bench_modes_refuses_a_negative_first_seed(tmp_path, capsys):
    code, stdout, err = _cli(capsys, "bench", "modes", "--seeds", 2, "--seed0", -1, "--out", tmp_path / "out")
    assert code == 2 and err.count("\n") == 1 and "--seed0" in err, err
    assert stdout == "" and not (tmp_path / "out").exists()
