"""Review fixes of detect, provenance, augment and bench: each bad input refused in one line
before any work, an interrupted bench modes resumable, and folders/.npz files walked where a
user points at them."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import detect
from ganforge.cli import main
from ganforge.errors import ConfigError

TINY = ["model.g_width=8", "model.d_width=8", "model.g_depth=1", "model.d_depth=1", "model.z_dim=2",
        "train.batch_size=16", "train.log_every=5", "model.pac=1"]


def _images(n, size=16, seed=0):
    return torch.randint(0, 256, (n, 1, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))


def _detector(tmp_path):
    det = detect.train(_images(8), _images(8, seed=1), detect.Recipe(steps=2, batch_size=4, width=2, depth=1))
    detect.save(det, tmp_path / "det")
    return det


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# 1. --depth past a 1x1 feature map, and a network too large for the memory left
def test_detector_depth_and_memory_are_checked_before_training(monkeypatch):
    real, fake = _images(8), _images(8, seed=1)
    # 16 -> 8 -> 4 -> 2 -> 1: four stride-2 stages; a fifth had only added channels (depth 10: OOM-killed)
    with pytest.raises(ConfigError, match=r"--depth 5 is too deep for 16x16 images.*use --depth 4 or less"):
        detect.train(real, fake, detect.Recipe(steps=1, batch_size=4, width=2, depth=5))
    detect.train(real, fake, detect.Recipe(steps=1, batch_size=4, width=2, depth=4))
    monkeypatch.setattr("ganforge.config.available_memory", lambda: 10**6)
    # width 64, depth 4: 64..1024 channels, about 6.4 M parameters x 16 bytes, over 1 MB
    with pytest.raises(ConfigError, match=r"needs about .* more than the 1.0 MB available; lower --width"):
        detect.train(real, fake, detect.Recipe(steps=1, batch_size=4, width=64, depth=4))


# 2. bench modes: finished seeds survive Ctrl-C; --reuse-runs continues; disk checked
def _modes_argv(out, *extra):
    return ["bench", "modes", "--data", "toy:ring8", "--seeds", "2", "--steps", "4", "--out", out,
            "--variant", "v: loss.name=hinge", *extra, *TINY]


def test_interrupted_bench_modes_keeps_finished_seeds_and_reuse_runs_continues(tmp_path, monkeypatch, capsys):
    from ganforge.bench import modes

    out = tmp_path / "out"
    real_run_seed, trained = modes.run_seed, []

    def interrupted_at_seed_1(variant, data, seed, run_dir, extra, threads=0):
        if seed == 1:
            raise KeyboardInterrupt  # Ctrl-C during the second seed
        trained.append(seed)
        return real_run_seed(variant, data, seed, run_dir, extra, threads)

    monkeypatch.setattr(modes, "run_seed", interrupted_at_seed_1)
    code, _, err = _cli(capsys, *_modes_argv(out))
    assert code == 130 and "1 finished seed run(s)" in err and "--reuse-runs to continue" in err
    first = json.loads((out / "v" / "seed_0" / modes.RESULT).read_text())["result"]

    def counting(variant, data, seed, run_dir, extra, threads=0):
        trained.append(seed)
        return real_run_seed(variant, data, seed, run_dir, extra, threads)

    monkeypatch.setattr(modes, "run_seed", counting)
    code, out_text, err = _cli(capsys, *_modes_argv(out, "--reuse-runs"))
    assert code == 0, err
    assert trained == [0, 1]  # seed 0 trained once (the first call), seed 1 once (the rerun)
    assert "v seed 0:" in out_text and "(reused)" in out_text
    result = json.loads((out / "modes.json").read_text())
    assert result["configs"][0]["seeds"][0] == first and result["configs"][0]["seeds"][1]["seed"] == 1
    # other settings: a finished seed of another config is not reused, nor silently replaced
    (out / "modes.json").unlink()
    argv = _modes_argv(out, "--reuse-runs")
    argv[argv.index("--steps") + 1] = "5"
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and "cannot reuse" in err and "add --force (keeping --reuse-runs)" in err
    assert err.count("\n") == 1 and trained == [0, 1]


def test_bench_modes_refuses_seeds_the_disk_cannot_hold(tmp_path, monkeypatch, capsys):
    import shutil

    from ganforge.bench import modes

    def no_training(*args):
        raise AssertionError("trained a seed")

    monkeypatch.setattr(modes, "run_seed", no_training)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(modes.shutil, "disk_usage", lambda p: usage._replace(free=10**8))  # 100 MB free
    argv = _modes_argv(tmp_path / "out")
    argv[argv.index("--seeds") + 1] = "1000"
    code, _, err = _cli(capsys, *argv)
    assert code == 2 and "1000 seed run(s) need at least 1.0 GB of disk" in err and "100.0 MB free" in err
    assert not (tmp_path / "out").exists()


# 3. detect score: a samples .npz, and a folder with one unreadable file
def test_detect_score_reads_npz_and_skips_an_unreadable_file_of_a_folder(tmp_path, capsys):
    det = _detector(tmp_path)
    images = _images(3, seed=2)
    np.savez(tmp_path / "x.npz", images=images.permute(0, 2, 3, 1).numpy(), labels=np.array([0, 1, 2]))
    code, out, err = _cli(capsys, "detect", "score", tmp_path / "det", tmp_path / "x.npz", "--json")
    assert code == 0, err
    rows = json.loads(out)
    assert [r["file"] for r in rows] == [f"{tmp_path / 'x.npz'}[{i}]" for i in range(3)]
    assert [r["p_generated"] for r in rows] == pytest.approx(det.probabilities(images).tolist(), abs=1e-6)
    folder = tmp_path / "folder"
    folder.mkdir()
    Image.fromarray(images[0, 0].numpy()).save(folder / "a.png")
    (folder / "b.png").write_text("not an image")
    code, out, err = _cli(capsys, "detect", "score", tmp_path / "det", folder, "--json")
    assert code == 0, err
    assert [r["file"] for r in json.loads(out)] == [str(folder / "a.png")]
    assert f"skipping {folder / 'b.png'}" in err
    code, _, err = _cli(capsys, "detect", "score", tmp_path / "det", folder / "b.png")
    assert code == 2 and "cannot read image" in err and "delete" not in err and err.count("\n") == 1


# 4. --inception-weights on the bench subcommands that score with Inception
def test_bench_truncation_and_gan_vs_diffusion_take_inception_weights(tmp_path, capsys):
    pytest.importorskip("diffusers")
    missing = tmp_path / "nowhere.pth"
    code, _, err = _cli(capsys, "bench", "truncation", tmp_path / "run", "--json", tmp_path / "t.json",
                        "--inception-weights", missing)
    assert code == 2 and f"--inception-weights {missing} not found" in err
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", "--data", "mnist", "--steps", "1", "--out",
                        tmp_path / "gvd", "--inception-weights", missing)
    assert code == 2 and f"--inception-weights {missing} not found" in err
    assert not (tmp_path / "gvd").exists()


# 5. detect train: a real side far smaller than the generated one
def test_detect_train_refuses_far_fewer_real_images_and_warns_when_n_is_cut(tmp_path, capsys):
    real = tmp_path / "real"
    real.mkdir()
    for i, img in enumerate(_images(2, seed=3)):
        Image.fromarray(img[0].numpy()).save(real / f"{i}.png")
    np.savez(tmp_path / "fake.npz", images=_images(20, seed=4).permute(0, 2, 3, 1).numpy())
    base = ["detect", "train", "--real", f"folder:{real}", "--out", tmp_path / "d", "--steps", 1, "--width", 2,
            "--depth", 1, "--batch-size", 4]
    code, out, err = _cli(capsys, *base, "--fake", tmp_path / "fake.npz", "--n", 20)
    assert code == 2 and "gives 2 real images for 20 generated" in err and "lower --n to 2" in err
    assert "has 2 images, fewer than the 20 asked for" in out
    assert not (tmp_path / "d").exists()
    np.savez(tmp_path / "few.npz", images=_images(3, seed=5).permute(0, 2, 3, 1).numpy())
    code, out, err = _cli(capsys, *base, "--fake", tmp_path / "few.npz", "--n", 50)
    assert code == 0, err
    assert "has 3 images, fewer than --n 50; using 3" in out


# 6. provenance of a folder
def test_provenance_walks_a_folder(tmp_path, capsys):
    from ganforge import provenance

    folder = tmp_path / "synth"
    (folder / "0_a").mkdir(parents=True)
    image = np.zeros((8, 8, 1), np.uint8)
    provenance.save(image, folder / "0_a" / "0_000001.png", provenance.record(operation="augment"))
    provenance.save(image, folder / "0_a" / "0_000000.png", provenance.record(operation="augment"))
    (folder / "0_a" / "broken.png").write_text("x")
    code, out, err = _cli(capsys, "provenance", folder, "--json")
    assert code == 0, err
    records = json.loads(out)
    assert list(records) == [str(folder / "0_a" / f"0_00000{i}.png") for i in (0, 1)]
    assert all(r["operation"] == "augment" for r in records.values())
    assert "skipping" in err and "broken.png" in err


# 7. gan-vs-diffusion: --steps and --minutes together
def test_gan_vs_diffusion_refuses_steps_with_minutes(tmp_path, capsys):
    pytest.importorskip("diffusers")
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", "--steps", 2, "--minutes", 1, "--speed-samplers", "",
                        "--out", tmp_path / "gvd")
    assert code == 2 and "--steps and --minutes" in err and "pass one of them" in err


# 8. bench augment: what to add after --reuse-gans is refused
def test_bench_augment_reuse_gans_refusals_say_to_add_force(tmp_path, capsys):
    from ganforge.bench import augment

    out = tmp_path / "out"
    run = out / "n10" / "seed_0"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("another config")
    s = augment.Settings(sizes=[10], seeds=[0], reuse_gans=True)
    with pytest.raises(ConfigError, match=r"add --force \(keeping --reuse-gans\)"):
        augment.check_runs(s, out, 10, force=False)
    (out / "augment.json").write_text("{}")
    code, _, err = _cli(capsys, "bench", "augment", "--sizes", 10, "--seeds", 0, "--out", out, "--reuse-gans")
    assert code == 2 and "augment.json already exists; pass --force (keeping --reuse-gans)" in err
    assert json.loads((out / "augment.json").read_text()) == {}


# 9. bench truncation --values given twice
def test_bench_truncation_refuses_a_value_given_twice(tmp_path, capsys):
    code, _, err = _cli(capsys, "bench", "truncation", tmp_path / "run", "--values", "1,0.5,1",
                        "--json", tmp_path / "t.json")
    assert code == 2 and "--values lists 1 twice" in err
