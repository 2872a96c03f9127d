"""Review fixes of eval's cache and targets and of dataset downloads: a damaged or unwritable
eval cache, a folder of mixed sizes evaluated at the largest short side, downloaded and
extracted files readable by others, stale partial downloads, download progress, a CIFAR archive
extracted once, and a GANFORGE_DATA that does not exist."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ganforge.data import cifar, download, load_dataset, named
from ganforge.errors import DataError
from ganforge.metrics import EvalError, get_extractor
from ganforge.metrics.reference import cached_value, load_images, reference_features
from ganforge.metrics.targets import load_target
from test_data import make_cifar_tarball, md5, write_idx_dataset
from test_metrics_eval import write_fake_fashion_mnist


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A fake fashion-mnist in GANFORGE_DATA and an empty cache."""
    monkeypatch.setenv("GANFORGE_DATA", str(write_fake_fashion_mnist(tmp_path / "data" / "fashion-mnist")))
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    return tmp_path


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _damage(path: Path, how: str) -> None:
    if how == "truncated":
        os.truncate(path, path.stat().st_size // 2)
    else:  # 100 bytes overwritten inside the first array
        data = bytearray(path.read_bytes())
        data[1000:1100] = b"\xff" * 100
        path.write_bytes(bytes(data))


# ---------------------------------------------------------------- 1, 2: the eval cache

@pytest.mark.parametrize("how", ["truncated", "overwritten"])
def test_damaged_cache_file_is_recomputed_and_overwritten(env, how):
    ext = get_extractor("fashion-mnist-cnn")
    first = reference_features("fashion-mnist", ext, n=40)
    path = Path(first.info["cache"])
    _damage(path, how)
    with pytest.warns(UserWarning, match="is damaged .*; recomputing it") as caught:
        again = reference_features("fashion-mnist", ext, n=40)
    assert len(caught) == 1 and not again.info["cache_hit"]
    np.testing.assert_array_equal(again.features.features, first.features.features)
    assert reference_features("fashion-mnist", ext, n=40).info["cache_hit"]  # the file was rewritten


def test_damaged_samples_npz_is_one_line_eval_error(tmp_path):
    path = tmp_path / "samples.npz"
    np.savez(path, images=np.zeros((50, 28, 28, 1), np.uint8))
    _damage(path, "overwritten")  # still a zip, but a member's CRC is wrong
    with pytest.raises(EvalError, match="is not a readable .npz .*Bad CRC") as info:
        load_target(path, n=10)
    assert "\n" not in str(info.value)


def test_unwritable_cache_warns_once_and_keeps_the_result(env, monkeypatch):
    (env / "afile").write_text("not a folder")
    monkeypatch.setenv("GANFORGE_CACHE", str(env / "afile"))
    ext = get_extractor("fashion-mnist-cnn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = reference_features("fashion-mnist", ext, n=40)
        again = reference_features("fashion-mnist", ext, n=40)
        assert cached_value({"what": "a test"}, lambda: 1.5) == 1.5
    texts = [str(w.message) for w in caught]
    assert len(texts) == 1, texts
    assert texts[0].startswith(f"cannot cache features in {env / 'afile' / 'eval'}: ")
    assert texts[0].endswith("set GANFORGE_CACHE to a writable folder")
    assert ref.features.features.shape == (40, 128) and not again.info["cache_hit"]


# ---------------------------------------------------------------- 3: folders in eval

def _folder_of_mixed_sizes(folder: Path) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)).save(folder / "000_thumb.png")
    for i in range(1, 4):
        Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(folder / f"{i:03}.png")
    return folder


def test_eval_folder_uses_the_largest_short_side_capped(tmp_path):
    folder = _folder_of_mixed_sizes(tmp_path / "imgs")
    with pytest.warns(UserWarning, match="differ in size .*30 to 400.* evaluated at 299x299"):
        images, labels, desc = load_target(folder, n=None)
    assert tuple(images.shape) == (4, 3, 299, 299) and labels is None and desc["kind"] == "folder"
    with pytest.warns(UserWarning, match="differ in size"):  # also as --ref folder:PATH, size not given
        ref, _, _ = load_images(f"folder:{folder}", split="all", n=None, resolution=None, channels=None)
    assert tuple(ref.shape) == (4, 3, 299, 299)
    (folder / "000_thumb.png").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one size: nothing to say
        images, _, _ = load_target(folder, n=None)
    assert tuple(images.shape) == (3, 3, 299, 299)


def test_eval_grayscale_reference_folder_warns_in_eval_words(tmp_path):
    folder = _folder_of_mixed_sizes(tmp_path / "imgs")
    (folder / "000_thumb.png").unlink()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        images, _, _ = load_images(f"folder:{folder}", split="all", n=None, resolution=28, channels=1)
    texts = [str(w.message) for w in caught]
    assert tuple(images.shape) == (3, 1, 28, 28)
    assert len(texts) == 1 and "evaluated in grayscale" in texts[0], texts
    assert "data.channels" not in texts[0]  # training's option, which eval does not have


# ---------------------------------------------------------------- 4, 5: downloads

@pytest.fixture
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    return tmp_path


def test_downloaded_and_extracted_files_get_the_umask_mode(isolated, monkeypatch, umask_022):
    www = isolated / "www"
    www.mkdir()
    archive = make_cifar_tarball(www / cifar.ARCHIVE)
    monkeypatch.setitem(named.MIRRORS, "cifar10", [www.as_uri() + "/"])
    monkeypatch.setitem(named.CHECKSUMS, "cifar10", {cifar.ARCHIVE: md5(archive)})
    dest = isolated / "cache" / "x" / "file.bin"
    download.download([archive.as_uri()], dest, md5(archive))
    assert dest.stat().st_mode & 0o777 == 0o644
    load_dataset("cifar10", split="test")  # downloads and extracts into the cache
    batches = isolated / "cache" / "cifar10" / cifar.BATCH_DIR
    assert {f: (batches / f).stat().st_mode & 0o777 for f in cifar.KNOWN_FILES} == \
        {f: 0o644 for f in cifar.KNOWN_FILES}
    given = isolated / "given"
    given.mkdir()
    shutil.copyfile(archive, given / cifar.ARCHIVE)  # found, then extracted into the cache
    batches.joinpath("test_batch").unlink()
    load_dataset("cifar10", split="test", data_dir=given)
    assert (batches / "test_batch").stat().st_mode & 0o777 == 0o644


def test_stale_partial_downloads_are_removed_live_ones_kept(isolated):
    src = isolated / "src.bin"
    src.write_bytes(b"payload")
    dest = isolated / "cache" / "d" / "file.bin"
    dest.parent.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    host = download.socket.gethostname()
    stale = dest.parent / f".file.bin.{host}.{int(dead.stdout)}.part"
    live = dest.parent / f".file.bin.{host}.{os.getppid()}.part"  # the process that started pytest
    other = dest.parent / f".other.bin.{host}.{int(dead.stdout)}.part"  # another file's
    for p in (stale, live, other):
        p.write_bytes(b"half")
    download.download([src.as_uri()], dest, md5(src))
    assert dest.read_bytes() == b"payload"
    assert not stale.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in dest.parent.iterdir()) == sorted([dest.name, live.name, other.name])


def test_download_prints_progress_lines(isolated, monkeypatch, capsys):
    monkeypatch.setattr(download, "_CHUNK", 1000)
    monkeypatch.setattr(download, "_PROGRESS_MIN_BYTES", 0)
    src = isolated / "src.bin"
    src.write_bytes(os.urandom(10_000))
    download.download([src.as_uri()], isolated / "out" / "f.bin", md5(src))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) == 10, err
    assert lines[0] == f"ganforge: downloading {src.as_uri()}: 0.0 MB of 0.0 MB (10%)"
    assert lines[-1].endswith("(100%)")


# ---------------------------------------------------------------- 6, 7: lookup

def test_cifar_archive_is_verified_and_extracted_once(isolated, monkeypatch):
    given = isolated / "given"
    given.mkdir()
    archive = make_cifar_tarball(given / cifar.ARCHIVE)
    monkeypatch.setitem(named.CHECKSUMS, "cifar10", {cifar.ARCHIVE: md5(archive)})
    assert len(load_dataset("cifar10", split="test", data_dir=given)) == 4
    calls = []
    real_digest = cifar.file_digest
    monkeypatch.setattr(cifar, "file_digest", lambda *a: calls.append(a) or real_digest(*a))
    assert len(load_dataset("cifar10", split="test", data_dir=given)) == 4
    assert calls == []  # neither hashed nor extracted again
    make_cifar_tarball(archive, n=5)  # another archive in its place: verified and extracted again
    monkeypatch.setitem(named.CHECKSUMS, "cifar10", {cifar.ARCHIVE: md5(archive)})
    assert len(load_dataset("cifar10", split="test", data_dir=given)) == 6 and len(calls) == 1


def test_missing_ganforge_data_is_an_error(isolated, monkeypatch):
    write_idx_dataset(isolated / "cache" / "fashion-mnist", marker=3)  # a copy it must not fall back to
    monkeypatch.setenv("GANFORGE_DATA", str(isolated / "missing"))
    with pytest.raises(DataError, match="GANFORGE_DATA=.*missing does not exist") as info:
        load_dataset("fashion-mnist")
    assert "\n" not in str(info.value) and "unset it" in str(info.value)
    assert len(load_dataset("fashion-mnist", data_dir=isolated / "cache" / "fashion-mnist")) == 6


def test_a_long_features_pass_logs_its_progress_in_tenths():
    from ganforge.metrics import reference

    lines = []
    assert reference._progress(lines.append, reference.PROGRESS_MIN_IMAGES - 1) is None  # short: one line is enough
    progress = reference._progress(lines.append, 60_000)
    for done in range(500, 60_001, 500):
        progress(done)
    assert [l.split(" images")[0] for l in lines] == [f"  features: {6000 * k}/60000" for k in range(1, 11)]


def test_tenths_says_each_new_tenth_once_and_by_time_without_a_total(monkeypatch):
    from ganforge import progress

    lines = []
    tenths = progress.Tenths(lines.append, 95, lambda n: f"{n}/95")
    for done in range(1, 96):
        tenths(done)
    assert lines == [f"{d}/95" for d in (10, 19, 29, 38, 48, 57, 67, 76, 86, 95)]
    clock = iter([0.0, 5.0, 11.0, 12.0, 25.0])  # the start, then one reading per call
    monkeypatch.setattr(progress.time, "monotonic", lambda: next(clock))
    lines.clear()
    unknown = progress.Tenths(lines.append, None, lambda n: f"{n} so far")
    for done in (1, 2, 3, 4):
        unknown(done)
    assert lines == ["2 so far", "4 so far"]  # 10 s after the start, then 10 s after that line


def test_download_progress_is_silenced_with_the_other_progress_lines(isolated, monkeypatch, capsys):
    """`ganforge eval --quiet` (progress.silenced) had still printed a download's progress lines."""
    from ganforge import progress

    monkeypatch.setattr(download, "_CHUNK", 1000)
    monkeypatch.setattr(download, "_PROGRESS_MIN_BYTES", 0)
    src = isolated / "src.bin"
    src.write_bytes(os.urandom(10_000))
    with progress.silenced():
        download.download([src.as_uri()], isolated / "out" / "f.bin", md5(src))
    assert capsys.readouterr().err == ""
    assert (isolated / "out" / "f.bin").read_bytes() == src.read_bytes()
