"""ganforge detect: AP against hand computation, the Blur+JPEG augmentation, a detector that
separates an obviously fake generator (noise) from real images, and each bad input's one-line
error."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import run_cli
from ganforge import detect


def test_average_precision_by_hand():
    # ranked: F(0.9) R(0.8) F(0.7) R(0.6): precision at each recall step 1/1, then 2/3
    # AP = 0.5 * 1 + 0.5 * 2/3 = 0.8333...
    assert detect.average_precision([0.8, 0.9, 0.6, 0.7], [0, 1, 0, 1]) == pytest.approx(5 / 6, abs=1e-12)
    # perfect ranking: 1; worst ranking of 2 positives among 4: (1/2)(1/3) + (1/2)(2/4) = 5/12
    assert detect.average_precision([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1]) == pytest.approx(1.0, abs=1e-12)
    assert detect.average_precision([0.9, 0.8, 0.2, 0.1], [0, 0, 1, 1]) == pytest.approx(5 / 12, abs=1e-12)
    # ties form one threshold: all four at 0.5 -> precision 2/4 at recall 1
    assert detect.average_precision([0.5] * 4, [1, 0, 1, 0]) == pytest.approx(0.5, abs=1e-12)
    # a tie across classes at the top: {F, R} at 0.9, then F at 0.3: P=1/2 at R=1/2, P=2/3 at R=1
    assert detect.average_precision([0.9, 0.9, 0.3], [1, 0, 1]) == pytest.approx(0.25 + 1 / 3, abs=1e-12)
    with pytest.raises(ValueError):
        detect.average_precision([0.1, 0.2], [0, 0])


def test_accuracy_at_threshold():
    acc = detect.accuracy([0.9, 0.4, 0.6, 0.2], [1, 1, 0, 0])
    assert acc == {"acc": 0.5, "real_acc": 0.5, "fake_acc": 0.5}


def test_blur_jpeg_changes_images_only_where_drawn():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    same = detect.blur_jpeg(x, g, p_blur=0.0, p_jpeg=0.0, flip=False)
    assert torch.equal(same, x)
    out = detect.blur_jpeg(x, g, p_blur=1.0, p_jpeg=0.0, flip=False)
    # blurring white noise lowers its variance (sigma ~ U[0, 3]: most images lose most of it)
    assert out.float().var(dim=(1, 2, 3)).median() < 0.5 * x.float().var(dim=(1, 2, 3)).median()
    flipped = detect.blur_jpeg(x, g, p_blur=0.0, p_jpeg=0.0, flip=True)
    n_flipped = sum(torch.equal(f, o.flip(-1)) for f, o in zip(flipped, x))
    assert 10 <= n_flipped <= 30 and out.dtype == torch.uint8 and out.shape == x.shape


def _real_folder(root, n=48, size=16):
    """Smooth blob images: real-looking in that they are low-frequency, unlike noise."""
    root.mkdir()
    yy, xx = np.mgrid[:size, :size]
    rng = np.random.default_rng(0)
    for i in range(n):
        cy, cx, r = rng.uniform(4, size - 4, 2).tolist() + [rng.uniform(2, 6)]
        img = 255 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        Image.fromarray(img.astype(np.uint8)).save(root / f"{i}.png")
    return root


def test_detector_separates_noise_from_real(tmp_path):
    real = _real_folder(tmp_path / "real", n=72)
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "noise.npz", images=rng.integers(0, 256, (64, 16, 16, 1), dtype=np.uint8))
    proc = run_cli("detect", "train", "--real", real, "--fake", tmp_path / "noise.npz", "--out", tmp_path / "det",
                   "--n", 48, "--steps", 80, "--width", 8, "--depth", 2, "--batch-size", 16)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads((tmp_path / "det" / "detector.json").read_text())
    assert meta["resolution"] == 16 and meta["channels"] == 1 and meta["recipe"]["augment"] is True
    np.savez(tmp_path / "noise2.npz", images=rng.integers(0, 256, (40, 16, 16, 1), dtype=np.uint8))
    seen = tmp_path / "det" / ".." / "noise.npz"  # the training source, spelt another way
    proc = run_cli("detect", "eval", tmp_path / "det", "--real", real, "--fake", tmp_path / "noise2.npz", seen,
                   "--json", tmp_path / "eval.json")
    assert proc.returncode == 0, proc.stderr
    # the images the detector trained on are left out: the seen .npz's first 48 and the 48 real
    # ones it drew; what is scored is held out (an evaluation on them would measure memory)
    assert "leaving out the first 48 images" in proc.stdout and "leaving out the 48 images" in proc.stdout
    rows = json.loads((tmp_path / "eval.json").read_text())["detectors"][0]["results"]
    row = rows[str(tmp_path / "noise2.npz")]
    assert row["ap"] > 0.95 and row["acc"] > 0.8 and row["seen_in_training"] is None  # no provenance: unknown
    assert rows[str(seen)]["seen_in_training"] is True and rows[str(seen)]["n_fake"] == 16
    # the table's AP is the hand-checked AP of the detector's own probabilities
    det = detect.load(tmp_path / "det")
    fake = torch.from_numpy(np.load(tmp_path / "noise2.npz")["images"]).permute(0, 3, 1, 2)
    from ganforge.data import load_dataset

    real_all = load_dataset(f"folder:{real}").images
    trained = set(torch.randperm(72, generator=torch.Generator().manual_seed(0))[:48].tolist())
    real_images = real_all[[i for i in range(72) if i not in trained]]  # the 24 held out (--n 2000 takes all)
    assert row["n_real"] == 24
    p_real, p_fake = det.probabilities(real_images), det.probabilities(fake)
    labels = np.r_[np.zeros(len(p_real)), np.ones(len(p_fake))]
    assert row["ap"] == pytest.approx(detect.average_precision(np.r_[p_real, p_fake], labels), abs=1e-9)
    assert row["fake_acc"] == pytest.approx(np.mean(p_fake > 0.5), abs=1e-9)
    # score: one file, the same probability as the library gives
    Image.fromarray(fake[0, 0].numpy()).save(tmp_path / "fake.png")
    proc = run_cli("detect", "score", tmp_path / "det", tmp_path / "fake.png", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["p_generated"] == pytest.approx(float(p_fake[0]), abs=1e-5)


def test_bad_inputs_get_one_line_errors(tmp_path):
    real = _real_folder(tmp_path / "real", n=8)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "n16.npz", images=rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8))
    np.savez(tmp_path / "n8.npz", images=rng.integers(0, 256, (8, 8, 8, 1), dtype=np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    cases = [
        (["train", "--real", real, "--fake", tmp_path / "notes.txt", "--out", tmp_path / "d"], "not a ganforge run"),
        (["train", "--real", real, "--fake", tmp_path / "n16.npz", tmp_path / "n8.npz", "--out", tmp_path / "d"],
         "detector works at 16x16"),
        (["train", "--real", "fashion-mnist:valid", "--fake", tmp_path / "n16.npz", "--out", tmp_path / "d"],
         "unknown split"),
        (["eval", tmp_path / "nodet", "--real", real, "--fake", tmp_path / "n16.npz"], "not a detector folder"),
        (["score", tmp_path / "nodet", tmp_path / "notes.txt"], "not a detector folder"),
    ]
    for args, message in cases:
        proc = run_cli("detect", *args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "d").exists()  # nothing written by a refused command


def test_real_of_another_size_is_resized_with_a_note(tmp_path):
    real = _real_folder(tmp_path / "real", n=16, size=24)  # 24 px real, 16 px generated
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "n16.npz", images=rng.integers(0, 256, (16, 16, 16, 1), dtype=np.uint8))
    proc = run_cli("detect", "train", "--real", real, "--fake", tmp_path / "n16.npz", "--out", tmp_path / "d",
                   "--n", 16, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4)
    assert proc.returncode == 0, proc.stderr
    assert "resizing" in proc.stdout and "24x24x1 to the detector's 16x16x1" in proc.stdout
    proc = run_cli("detect", "train", "--real", real, "--fake", tmp_path / "n16.npz", "--out", tmp_path / "d",
                   "--steps", 2)
    assert proc.returncode == 2 and "already holds a detector" in proc.stderr


def test_eval_never_scores_the_images_a_detector_trained_on(tmp_path):
    """A folder or .npz used in training, whole, leaves nothing held out: refused, not scored
    (scoring them measured memorisation: AP 0.72 on seen images against 0.53 on unseen ones)."""
    real = _real_folder(tmp_path / "real", n=16)
    rng = np.random.default_rng(2)
    np.savez(tmp_path / "noise.npz", images=rng.integers(0, 256, (16, 16, 16, 1), dtype=np.uint8))
    np.savez(tmp_path / "other.npz", images=rng.integers(0, 256, (16, 16, 16, 1), dtype=np.uint8))
    proc = run_cli("detect", "train", "--real", real, "--fake", tmp_path / "noise.npz", "--out", tmp_path / "det",
                   "--n", 16, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4)
    assert proc.returncode == 0, proc.stderr
    for args, message in (
            (["--real", real, "--fake", tmp_path / "other.npz"],
             "all 16 images were drawn by the detector's training"),
            (["--real", _real_folder(tmp_path / "real2", n=8), "--fake", tmp_path / "noise.npz"],
             "all 16 images were drawn by the detector's training")):
        proc = run_cli("detect", "eval", tmp_path / "det", *args)
        assert proc.returncode == 2 and message in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_printed_eval_command_works_for_a_real_folder(tmp_path):
    """train printed 'detect eval ... --real folder:test', which fails: for a folder it must name
    the same folder (eval leaves out the real images the detector drew from it)."""
    import shlex

    real = _real_folder(tmp_path / "real", n=24)
    rng = np.random.default_rng(3)
    np.savez(tmp_path / "noise.npz", images=rng.integers(0, 256, (16, 16, 16, 1), dtype=np.uint8))
    proc = run_cli("detect", "train", "--real", real, "--fake", tmp_path / "noise.npz", "--out", tmp_path / "det",
                   "--n", 8, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4)
    assert proc.returncode == 0, proc.stderr
    command = proc.stdout.split("try: ", 1)[1].strip()
    assert f"--real folder:{real}" in command and "folder:test" not in command
    argv = shlex.split(command)
    assert argv[:3] == ["ganforge", "detect", "eval"]
    proc = run_cli(*argv[1:])
    assert proc.returncode == 0, proc.stderr
    assert "leaving out the 8 images the detector trained on (16 left)" in proc.stdout
    assert "leaving out the first 8 images" in proc.stdout


def test_out_holding_other_files_is_refused_even_with_force(tmp_path):
    """detect train wrote detector.json and weights into any existing folder (a dataset's, say)."""
    real = _real_folder(tmp_path / "real", n=8)
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "n16.npz", images=rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8))
    before = sorted(p.name for p in real.iterdir())
    for force in ([], ["--force"]):
        proc = run_cli("detect", "train", "--real", real, "--fake", tmp_path / "n16.npz", "--out", real,
                       "--n", 4, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4, *force)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "holds files that are not a detector's (0.png, 1.png, 2.png, ...)" in proc.stderr
    assert sorted(p.name for p in real.iterdir()) == before  # nothing written into it
    (tmp_path / "empty").mkdir()  # an empty folder is fine, and --force replaces a detector
    args = ["detect", "train", "--real", real, "--fake", tmp_path / "n16.npz", "--out", tmp_path / "empty",
            "--n", 4, "--steps", 2, "--width", 2, "--depth", 1, "--batch-size", 4]
    assert run_cli(*args).returncode == 0
    assert run_cli(*args, "--force").returncode == 0
    assert sorted(p.name for p in (tmp_path / "empty").iterdir()) == ["detector.json", "weights.safetensors"]
