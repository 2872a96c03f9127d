"""``ganforge augment``: a labeled synthetic dataset that reads back through ``folder:DIR`` with the
run's class indices, the .npz format, its errors; and the pieces of ``bench augment``."""
import json

import numpy as np
import pytest
import torch

from conftest import random_dataset, run_cli, tiny_config

from ganforge import api
from ganforge.data import load_dataset

CLASSES = ["T-shirt/top", "bag", "boot"]  # a '/' in a name, as in Fashion-MNIST


@pytest.fixture(scope="module")
def cond_run(tmp_path_factory):
    ds = random_dataset(n=48, labels=True)
    ds.labels = torch.arange(48) % 3
    ds.class_names = list(CLASSES)
    run_dir = tmp_path_factory.mktemp("aug") / "run"
    cfg = tiny_config(objective="conditional", **{"cond.d_cond": "acgan"})
    api.train(cfg, run_dir, progress=False, dataset=ds)
    return run_dir


def test_folder_round_trip_keeps_labels_and_pixels(cond_run, tmp_path):
    out = tmp_path / "syn"
    proc = run_cli("augment", cond_run, "--per-class", "4", "--out", out, "--seed", "5")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0_T-shirt-top", "1_bag", "2_boot"]
    ds = load_dataset(f"folder:{out}")
    assert ds.class_names == CLASSES  # the run's own names (classes.json), not the folders' 0_T-shirt-top
    assert ds.images.shape == (12, 1, 16, 16)
    assert sorted(ds.labels.tolist()) == [0] * 4 + [1] * 4 + [2] * 4
    # Each image read back under label k is the image the run generates for class k (PNG is lossless).
    run = api.load(cond_run)
    labels = torch.arange(3).repeat_interleave(4)
    want = torch.from_numpy(run.sample_uint8(12, seed=5, labels=labels)).permute(0, 3, 1, 2)
    for k in range(3):
        got_k = ds.images[ds.labels == k]
        want_k = want[labels == k]
        assert torch.equal(got_k, want_k), k
    meta = json.loads((out / "classes.json").read_text())
    assert meta["class_names"] == CLASSES and meta["per_class"] == 4 and meta["seed"] == 5


def test_npz_format(cond_run, tmp_path):
    out = tmp_path / "syn.npz"
    proc = run_cli("augment", cond_run, "--per-class", "2", "--out", out, "--format", "npz")
    assert proc.returncode == 0, proc.stderr
    with np.load(out) as d:
        assert d["images"].shape == (6, 16, 16, 1) and d["images"].dtype == np.uint8
        assert d["labels"].tolist() == [0, 0, 1, 1, 2, 2]
        assert d["class_names"].tolist() == CLASSES


def test_errors(cond_run, tmp_path):
    out = tmp_path / "syn"
    assert run_cli("augment", cond_run, "--per-class", "1", "--out", out).returncode == 0
    proc = run_cli("augment", cond_run, "--per-class", "1", "--out", out)
    assert proc.returncode == 2 and "already exists; pass --force" in proc.stderr
    assert run_cli("augment", cond_run, "--per-class", "1", "--out", out, "--force").returncode == 0
    proc = run_cli("augment", cond_run, "--per-class", "0", "--out", tmp_path / "b")
    assert proc.returncode == 2 and "--per-class must be positive" in proc.stderr
    proc = run_cli("augment", cond_run, "--per-class", "1", "--out", tmp_path / "d", "--format", "npz")
    assert proc.returncode == 2 and ".npz name" in proc.stderr
    api.train(tiny_config(), tmp_path / "u", progress=False, dataset=random_dataset(n=32))
    proc = run_cli("augment", tmp_path / "u", "--per-class", "1", "--out", tmp_path / "e")
    assert proc.returncode == 2 and "is unconditional" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_stratified_subset():
    from ganforge.bench.augment import stratified_subset

    labels = torch.arange(300) % 3
    idx = stratified_subset(labels, 7, seed=0)
    assert len(idx) == 21 and len(set(idx.tolist())) == 21
    assert torch.bincount(labels[idx]).tolist() == [7, 7, 7]
    assert torch.equal(idx, stratified_subset(labels, 7, seed=0))
    assert not torch.equal(idx, stratified_subset(labels, 7, seed=1))


def test_classifier_batches_mix_real_and_synthetic():
    """real_fraction decides the batch mix: with an unlearnable synthetic set (random labels)
    a classifier trained on synthetic data only is near chance on a separable real task, while
    real-only training solves it."""
    from ganforge.bench.augment import Settings, train_classifier
    from ganforge.metrics.classifier import accuracy

    g = torch.Generator().manual_seed(0)
    # Two classes: dark or bright 28x28 images.
    y = torch.arange(200) % 2
    x = (y[:, None, None, None] * 160 + torch.randint(0, 60, (200, 1, 28, 28), generator=g)).to(torch.uint8)
    y_noise = torch.randint(0, 2, (200,), generator=g)
    s = Settings(clf_steps=60, clf_batch=32, clf_widths=(4, 8, 8))
    real = train_classifier(x[:100], y[:100], None, None, num_classes=2, s=s, seed=0)
    syn = train_classifier(None, None, x[:100], y_noise[:100], num_classes=2, s=s, seed=0)
    assert accuracy(real, x[100:], y[100:]) >= 0.95
    assert 0.2 <= accuracy(syn, x[100:], y[100:]) <= 0.8


def test_bench_augment_rejects_bad_settings():
    proc = run_cli("bench", "augment", "--preset", "dcgan-fashion-mnist")
    assert proc.returncode == 2 and "objective=unconditional" in proc.stderr
    proc = run_cli("bench", "augment", "--sizes", "10,x")
    assert proc.returncode == 2 and "--sizes takes comma-separated integers" in proc.stderr
    proc = run_cli("bench", "augment", "--real-fraction", "1.5")
    said = "--real-fraction must be a fraction between 0 and 1, both excluded, got 1.5"
    assert proc.returncode == 2 and said in proc.stderr


def test_bench_augment_refuses_bad_data_in_one_line(tmp_path):
    """The start line ("ganforge: bench augment on ...") had come first, the refusal second."""
    for args, said in ((["--data", "toy:ring8"], "bench augment needs a labeled dataset; toy:ring8 has no labels"),
                       (["--data", "toy:ring8", "train.steps=5"], "has no labels")):
        proc = run_cli("bench", "augment", "--sizes", "10", *args, "--out", tmp_path / "a")
        assert proc.returncode == 2 and said in proc.stderr and proc.stdout == "", (proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and not (tmp_path / "a").exists(), proc.stderr


def test_bench_summaries_give_no_spread_for_one_seed():
    """One seed has no spread: the tables printed '10.01 ± 0.00', as if measured exactly."""
    import math

    from ganforge.bench import augment as bench_augment, mean_std, pm

    assert mean_std([0.5])[0] == 0.5 and math.isnan(mean_std([0.5])[1])
    assert mean_std([1.0, 3.0]) == (2.0, math.sqrt(2.0))
    assert pm(2.0, math.nan, ".1f") == "2.0" and pm(2.0, 0.25, ".2f") == "2.00 ± 0.25"
    rows = [{"size": 10, "seed": 0, "real": 0.5, "real+syn": 0.6, "syn": 0.4}]
    table = bench_augment.format_summary(bench_augment.summarize(rows, [10]))
    assert "50.00" in table and "±" not in table
    rows.append({"size": 10, "seed": 1, "real": 0.7, "real+syn": 0.6, "syn": 0.4})
    assert "60.00 ± 14.14" in bench_augment.format_summary(bench_augment.summarize(rows, [10]))


BENCH_TINY = ["--sizes", "2", "--seeds", "0", "--gan-steps", "2", "--synthetic", "2", "--clf-steps", "2",
              "model.g_width=4", "model.d_width=4", "model.z_dim=4", "train.batch_size=4",
              "train.sample_every=2", "train.n_sample_grid=4", "monitor.enabled=false"]


def _labeled_folder(root, per_class=6, size=12, channels=3):
    """Three class folders of images (by default RGB 12x12, unlike the preset's 28x28x1)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(["a", "b", "c"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 60, (size, size, 3)) + 90 * k
            pixels = pixels[..., 0] if channels == 1 else pixels
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_bench_augment_on_a_folder_of_another_size(tmp_path):
    """A GAN at 28x28x1 on 12x12 RGB real images crashed after training (its samples were fed
    unresized to the classifier), and a folder was tested on every image, including the ones
    the GANs and classifiers trained on."""
    data = _labeled_folder(tmp_path / "data")
    out = tmp_path / "ba"
    proc = run_cli("bench", "augment", "--data", f"folder:{data}", *BENCH_TINY, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "synthetic images are resized" in proc.stdout and "28x28x1" in proc.stdout
    assert "testing on its 12 images that no GAN or classifier trains on" in proc.stdout
    result = json.loads((out / "augment.json").read_text())
    assert result["n_test"] == 12 and len(result["notes"]) == 3  # 18 images, 3 x 2 drawn for training
    assert "real images (12x12x3) are resized" in proc.stdout
    assert all(0 <= result["rows"][0][arm] <= 1 for arm in ("real", "real+syn", "syn"))


def test_bench_augment_refuses_an_existing_out_before_deleting_anything(tmp_path):
    """Run again on the same --out without --force, bench augment deleted and retrained its GAN
    runs and overwrote augment.json."""
    data = _labeled_folder(tmp_path / "data", size=28, channels=1)
    out = tmp_path / "ba"
    base = ["bench", "augment", "--data", f"folder:{data}", *BENCH_TINY, "--out", out]
    assert run_cli(*base).returncode == 0
    ckpt = out / "n2" / "seed_0" / "checkpoints" / "step_0000002"
    stamp, results = ckpt.stat().st_mtime_ns, (out / "augment.json").read_text()
    for extra, message in (
            ([], "already exists; pass --force to retrain its GAN runs and overwrite its results, "
                 "--reuse-gans to keep"),
            (["--reuse-gans", "--gan-steps", "3", "--json", tmp_path / "r2.json"], "--reuse-gans cannot reuse"),
            (["--reuse-gans"], "augment.json already exists; pass --force")):
        proc = run_cli(*base, *extra)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert ckpt.stat().st_mtime_ns == stamp and (out / "augment.json").read_text() == results
    proc = run_cli(*base, "--reuse-gans", "--json", tmp_path / "r.json")  # same config: kept
    assert proc.returncode == 0, proc.stderr
    assert ckpt.stat().st_mtime_ns == stamp and json.loads((tmp_path / "r.json").read_text())["rows"][0]["gan_reused"]
    proc = run_cli(*base, "--force")
    assert proc.returncode == 0, proc.stderr
    assert ckpt.stat().st_mtime_ns != stamp and (out / "augment.json").read_text() != results


@pytest.mark.parametrize("args, message", [
    (["--sizes", "2,2"], "--sizes lists 2 twice"),
    (["--seeds", "0,1,0"], "--seeds lists 0 twice"),
])
def test_bench_augment_refuses_duplicate_sizes_and_seeds(tmp_path, args, message):
    """--sizes 5,5 trained size 5 twice (the second deleted the first) and reported a spread of 0."""
    data = _labeled_folder(tmp_path / "data", size=28, channels=1)
    proc = run_cli("bench", "augment", "--data", f"folder:{data}", *BENCH_TINY, *args, "--out", tmp_path / "x")
    assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "x").exists()
