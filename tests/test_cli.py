"""The command line as a user meets it: fresh processes, exit codes, one-line errors."""
import json

import numpy as np
from PIL import Image

from conftest import run_cli

TINY = ["model.g_width=8", "model.d_width=8", "train.batch_size=8", "train.log_every=1",
        "train.sample_every=2", "train.checkpoint_every=2", "train.n_sample_grid=4",
        "train.device=cpu"]


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


def test_presets_lists_names_and_descriptions():
    proc = run_cli("presets")
    assert proc.returncode == 0
    line = next(l for l in proc.stdout.splitlines() if l.startswith("dcgan-fashion-mnist "))
    assert "DCGAN" in line


def test_unknown_preset():
    _one_line_error(run_cli("train", "dcgan-fashion-mnst"), "unknown preset 'dcgan-fashion-mnst'",
                    "did you mean 'dcgan-fashion-mnist'", "ganforge presets")


def test_bad_override(tmp_path):
    _one_line_error(run_cli("train", "dcgan-fashion-mnist", "optim.dlr=1", "--out", tmp_path / "r"),
                    "unknown config key 'optim.dlr'", "did you mean 'optim.d_lr'")
    _one_line_error(run_cli("train", "dcgan-fashion-mnist", "train.batch_size=big"),
                    "train.batch_size must be a whole number")
    assert not (tmp_path / "r").exists()


def test_unknown_option_is_one_line():
    _one_line_error(run_cli("train", "dcgan-fashion-mnist", "--stepz", "3"), "--stepz")


def test_missing_data(tmp_path):
    out = tmp_path / "run"
    _one_line_error(run_cli("train", "dcgan-folder", f"data.name=folder:{tmp_path / 'nope'}",
                            "--out", out), str(tmp_path / "nope"))
    assert not out.exists()


def test_missing_named_dataset_offline(tmp_path):
    """mnist is not installed here: the error says how to get it, in one line."""
    proc = run_cli("data", "fetch", "mnist", env={"GANFORGE_CACHE": str(tmp_path / "cache"),
                                                  "GANFORGE_DATA": str(tmp_path / "none"),
                                                  "https_proxy": "http://127.0.0.1:9",
                                                  "http_proxy": "http://127.0.0.1:9"})
    _one_line_error(proc, "mnist", "--data-dir")


def test_corrupt_checkpoint(tmp_path, image_folder):
    run = tmp_path / "run"
    proc = run_cli("train", "dcgan-folder", f"data.name=folder:{image_folder}", "data.resolution=16",
                   *TINY, "--steps", "2", "--out", run, "--quiet")
    assert proc.returncode == 0, proc.stderr
    (run / "checkpoints" / "step_0000002" / "state.pt").write_bytes(b"not a checkpoint")
    _one_line_error(run_cli("sample", run, "--out", tmp_path / "g.png"), "corrupt", "state.pt")
    _one_line_error(run_cli("sample", tmp_path / "no-such-run"), "does not exist")


def test_train_then_sample_end_to_end(tmp_path, image_folder):
    run = tmp_path / "run"
    proc = run_cli("train", "dcgan-folder", f"data.name=folder:{image_folder}", "data.resolution=16",
                   *TINY, "--steps", "4", "--out", run)
    assert proc.returncode == 0, proc.stderr
    assert "samples:" in proc.stdout and str(run / "checkpoints") in proc.stdout
    records = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert records.pop()["event"] == "end"  # the trainer's closing record: how the run ended
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert Image.open(run / "samples" / "step_0000004.png").size[0] > 16

    # the same --out again is refused, nothing changes
    before = (run / "metrics.jsonl").read_text()
    _one_line_error(run_cli("train", "dcgan-folder", f"data.name=folder:{image_folder}",
                            "data.resolution=16", *TINY, "--out", run), "already exists", "--resume")
    assert (run / "metrics.jsonl").read_text() == before

    # resume with more steps
    proc = run_cli("train", "--resume", "--out", run, "--steps", "6", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 6

    grid = tmp_path / "grid.png"
    proc = run_cli("sample", run, "--n", "9", "--out", grid)
    assert proc.returncode == 0, proc.stderr
    assert Image.open(grid).size == (3 * 16 + 4 * 2, 3 * 16 + 4 * 2)  # 3x3 with 2-px padding

    npz = tmp_path / "s.npz"
    proc = run_cli("sample", run, "--n", "10", "--out", npz, "--seed", "3")
    assert proc.returncode == 0, proc.stderr
    images = np.load(npz)["images"]
    assert images.shape == (10, 16, 16, 3) and images.dtype == np.uint8
    _one_line_error(run_cli("sample", run, "--n", "10", "--out", npz), "already exists", "--force")
    proc = run_cli("sample", run, "--n", "10", "--out", npz, "--seed", "3", "--force")
    assert proc.returncode == 0
    assert np.array_equal(np.load(npz)["images"], images)  # same seed, same samples
