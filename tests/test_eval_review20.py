"""Review 20 of ``ganforge eval``: a target folder that is (or copies) the --ref folder is warned
about, --quiet silences the folder reader's progress lines, too few images in a folder or npz
gets advice that can add some, and --split is refused for a folder reference. Tiny sizes."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from test_eval_cli import cli_env, gf_inproc, one_line_error  # noqa: F401 (fixtures)

FLAGS = ("--extractor", "fashion-mnist-cnn", "--metrics", "fid")


def _folder(path, n, seed):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(path / f"{i:03d}.png")
    return path


def _warnings(stdout):
    return [line for line in stdout.splitlines() if line.startswith("warning: ")]


def test_a_target_folder_that_is_or_copies_the_ref_folder_is_warned_about(tmp_path, gf_inproc):  # noqa: F811
    gen = _folder(tmp_path / "gen", 12, 0)
    # the same folder spelt another way: fid 0 had been reported without a word
    same = gf_inproc("eval", gen, "--ref", f"folder:{tmp_path}/./gen/", "--n", 12, *FLAGS, "--quiet")
    assert same.returncode == 0, same.stderr  # a warning: the numbers stand
    (line,) = [w for w in _warnings(same.stdout) if "scored against themselves" in w]
    assert line.startswith(f"warning: {gen} is the --ref folder itself (folder:{tmp_path}/./gen/)"), line
    # a copy: identical files under another name
    shutil.copytree(gen, tmp_path / "copy")
    (tmp_path / "copy" / "extra").mkdir()  # a subfolder of the reference: its files count too
    _folder(tmp_path / "copy" / "extra" / "more", 6, 5)
    copy = gf_inproc("eval", gen, "--ref", f"folder:{tmp_path / 'copy'}", "--n", 12, *FLAGS, "--quiet")
    assert copy.returncode == 0, copy.stderr
    assert [w for w in _warnings(copy.stdout) if "scored against themselves" in w] == [
        f"warning: 12 of the 12 image files in {gen} are also in --ref folder:{tmp_path / 'copy'} (identical "
        f"bytes): they are scored against themselves, which makes the two sets look closer than they are; "
        f"pass a --ref folder that does not hold the images scored"]
    # other images: no such warning
    _folder(tmp_path / "other", 12, 1)
    other = gf_inproc("eval", gen, "--ref", f"folder:{tmp_path / 'other'}", "--n", 12, *FLAGS, "--quiet")
    assert other.returncode == 0 and "themselves" not in other.stdout, other.stdout


def test_quiet_silences_the_folder_readers_progress_lines(tmp_path, gf_inproc, monkeypatch):  # noqa: F811
    from ganforge.data import folder as folder_mod

    monkeypatch.setattr(folder_mod, "PROGRESS_FILES", 1)  # 12 files are enough to be followed
    gen, ref = _folder(tmp_path / "gen", 12, 0), _folder(tmp_path / "ref", 12, 1)
    loud = gf_inproc("eval", gen, "--ref", f"folder:{ref}", "--n", 12, *FLAGS)
    assert loud.returncode == 0 and f"ganforge: reading 12 images from {gen}" in loud.stderr, loud.stderr
    quiet = gf_inproc("eval", gen, "--ref", f"folder:{ref}", "--n", 12, *FLAGS, "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "reading" not in quiet.stderr and "read " not in quiet.stderr, quiet.stderr
    assert not quiet.stdout.startswith("ganforge:") and "fid " in quiet.stdout
    from ganforge import progress
    assert progress.shown()  # on again after the command


def test_too_few_images_in_a_folder_or_npz_names_more_images_not_n(tmp_path, gf_inproc):  # noqa: F811
    few, ref = _folder(tmp_path / "few", 5, 0), _folder(tmp_path / "ref", 12, 1)
    proc = gf_inproc("eval", few, "--ref", f"folder:{ref}", "--extractor", "fashion-mnist-cnn", "--quiet")
    one_line_error(proc, f"need at least 6 generated images, got 5; add images to {few} (6 or more)")
    assert "--n" not in proc.stderr, proc.stderr
    npz = tmp_path / "s.npz"
    np.savez(npz, images=np.random.default_rng(2).integers(0, 256, (5, 20, 20, 3), dtype=np.uint8))
    proc = gf_inproc("eval", npz, "--ref", f"folder:{ref}", "--extractor", "fashion-mnist-cnn", "--quiet")
    one_line_error(proc, f"got 5; write more samples to {npz} (6 or more)")
    # the Python API without more_samples keeps its advice; evaluate_features gets it too
    from ganforge.metrics.errors import EvalError
    from ganforge.metrics.evaluation import evaluate_features
    from ganforge.metrics.features import Features

    fake = Features(np.zeros((5, 4), np.float32), None)
    with pytest.raises(EvalError, match=r"got 5; add images to x \(6 or more\)$"):
        evaluate_features(fake, shape=(3, 20, 20), ref=f"folder:{ref}", extractor="fashion-mnist-cnn",
                          more_samples="add images to x")


def test_fewer_than_n_advice_fits_the_short_side(tmp_path, gf_inproc):  # noqa: F811
    gen, ref = _folder(tmp_path / "gen", 12, 0), _folder(tmp_path / "ref", 8, 1)
    proc = gf_inproc("eval", gen, "--ref", f"folder:{ref}", "--n", 20, *FLAGS, "--quiet")
    assert proc.returncode == 0, proc.stderr
    (line,) = [w for w in _warnings(proc.stdout) if "fewer than --n" in w]
    assert line == (f"warning: {gen} holds 12 images, fewer than --n 20: only 12 are scored (against 8 "
                    f"reference images, all that --ref folder:{ref} holds); pass --n 12, or add images to "
                    f"{gen} and to {ref}"), line
    assert "ganforge sample" not in line  # sampling a run cannot enlarge a folder of photos
    npz = tmp_path / "s.npz"
    np.savez(npz, images=np.random.default_rng(2).integers(0, 256, (10, 20, 20, 3), dtype=np.uint8))
    proc = gf_inproc("eval", npz, "--ref", f"folder:{ref}", "--n", 20, *FLAGS, "--quiet")
    (line,) = [w for w in _warnings(proc.stdout) if "fewer than --n" in w]
    assert line.endswith(f"pass --n 10, or write more samples (ganforge sample RUN --n 20 --out samples.npz) "
                         f"and add images to {ref}"), line


def test_split_is_refused_for_a_folder_reference_when_given(tmp_path, gf_inproc):  # noqa: F811
    gen, ref = _folder(tmp_path / "gen", 12, 0), _folder(tmp_path / "ref", 12, 1)
    for split in ("train", "test"):
        proc = gf_inproc("eval", gen, "--ref", f"folder:{ref}", *FLAGS, "--split", split, "--quiet")
        one_line_error(proc, f"--split applies to a reference dataset with splits; folder:{ref} is a folder",
                       "drop --split")
    proc = gf_inproc("eval", gen, "--ref", f"folder:{ref}", "--n", 12, *FLAGS, "--quiet")
    assert proc.returncode == 0 and f"folder:{ref}/all images" in proc.stdout, proc.stderr
    # a named dataset keeps its splits, test by default
    npz = tmp_path / "s.npz"
    np.savez(npz, images=np.random.default_rng(2).integers(0, 256, (8, 28, 28, 1), dtype=np.uint8))
    for args, split in (((), "test"), (("--split", "train"), "train")):
        proc = gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", 8, *FLAGS, *args, "--quiet")
        assert proc.returncode == 0 and f"fashion-mnist/{split} images" in proc.stdout, proc.stderr
