"""Tests for ganforge.data. No network: every file is built here and served from 127.0.0.1 or file://."""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.data import (DATASET_NAMES, ImageDataset, StreamingFolderDataset, ToyDataset, dataset_info,
                           fetch, load_dataset, read_idx)
from ganforge.data import cifar, download, named
from conftest import closed_port_url
from ganforge.errors import ConfigError, DataError

IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


# ---------------------------------------------------------------- helpers

def idx_bytes(array: np.ndarray) -> bytes:
    code = {np.dtype("uint8"): 0x08, np.dtype("int8"): 0x09, np.dtype(">i2"): 0x0B,
            np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}[array.dtype]
    return bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(folder: Path, marker: int, n_train: int = 6, n_test: int = 4, gz: bool = True) -> Path:
    """Four IDX files whose train images are all `marker`, so a test can tell folders apart."""
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train-images-idx3-ubyte": np.full((n_train, 28, 28), marker, np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": np.full((n_test, 28, 28), marker, np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for base, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{base}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / base).write_bytes(data)
    return folder


def md5(path: Path) -> str:
    return "md5:" + hashlib.md5(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- IDX reader

@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_roundtrip(tmp_path, gz):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    values = np.array([-7, 0, 123456], dtype=">i4")
    for name, array in [("images", images), ("values", values)]:
        data = idx_bytes(array)
        (tmp_path / name).write_bytes(gzip.compress(data) if gz else data)
    assert np.array_equal(read_idx(tmp_path / "images"), images)
    got = read_idx(tmp_path / "values")
    assert got.dtype == np.int32 and got.dtype.isnative and got.tolist() == [-7, 0, 123456]
    assert got.flags.writeable


def test_read_idx_float_dtype(tmp_path):
    array = np.array([[0.5, -1.25]], dtype=">f8")
    (tmp_path / "f").write_bytes(idx_bytes(array))
    assert read_idx(tmp_path / "f").tolist() == [[0.5, -1.25]]


@pytest.mark.parametrize("damage, match", [
    (lambda d: d[:-5], "truncated"),
    (lambda d: d + b"\x00", "trailing"),
    (lambda d: b"\x00\x00\x07\x03" + d[4:], "magic"),
    (lambda d: b"\x01" + d[1:], "magic"),
    (lambda d: b"", "magic"),
    (lambda d: d[:6], "header"),
])
def test_read_idx_corrupt(tmp_path, damage, match):
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(damage(idx_bytes(np.zeros((2, 3, 3), np.uint8))))
    with pytest.raises(DataError, match=match) as info:
        read_idx(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((50, 28, 28), np.uint8)))[:-20])
    with pytest.raises(DataError, match="x.gz"):
        read_idx(path)


# ---------------------------------------------------------------- lookup order and errors

def test_lookup_order(isolated, monkeypatch):
    tmp = isolated
    write_idx_dataset(tmp / "given", marker=1)
    write_idx_dataset(tmp / "env" / "fashion-mnist", marker=2)  # env dir with /<name> appended
    write_idx_dataset(tmp / "cache" / "fashion-mnist", marker=3, gz=False)  # unzipped files work too
    write_idx_dataset(tmp / "system", marker=4)
    monkeypatch.setenv("GANFORGE_DATA", str(tmp / "env"))

    def marker(**kw):
        return int(load_dataset("fashion-mnist", **kw).images[0, 0, 0, 0])

    assert marker(data_dir=tmp / "given") == 1  # data_dir beats env
    assert marker() == 2  # env beats cache
    (tmp / "empty").mkdir()
    with pytest.raises(DataError, match="does not hold fashion-mnist"):  # said for this dataset:
        marker(data_dir=tmp / "empty")  # not another copy instead (it had fallen through to the cache)
    monkeypatch.setenv("GANFORGE_DATA", str(tmp / "empty"))
    assert marker() == 3  # GANFORGE_DATA, a folder for every dataset, without this one: passed over
    monkeypatch.setenv("GANFORGE_DATA", str(tmp / "env"))
    with pytest.raises(DataError, match="does not exist"):  # one that does not exist is a mistake (issue 21)
        marker(data_dir=tmp / "missing")
    monkeypatch.delenv("GANFORGE_DATA")
    assert marker() == 3  # cache beats system dir
    assert fetch("fashion-mnist") == f"fashion-mnist: found at {tmp / 'cache' / 'fashion-mnist'}"
    for f in (tmp / "cache" / "fashion-mnist").iterdir():
        f.unlink()
    assert marker() == 4
    assert fetch("fashion-mnist") == (f"fashion-mnist: found at {tmp / 'system'} "
                                      "(Debian package dataset-fashion-mnist)")


def test_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.delenv("GANFORGE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert download.cache_root() == tmp_path / "ganforge"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert download.cache_root() == Path.home() / ".cache" / "ganforge"


def test_offline_error_is_one_line_with_fixes(isolated):
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist")
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("fashion-mnist not found in ")
    assert str(isolated / "system") in msg and str(isolated / "cache" / "fashion-mnist") in msg
    assert named.MIRRORS["fashion-mnist"][0] in msg and "failed (" in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "--data-dir DIR" in msg
    assert not (isolated / "cache" / "fashion-mnist").exists()  # no empty folder, no partial file


def test_download_disabled_and_mnist_has_no_apt_hint(isolated):
    with pytest.raises(DataError, match="downloading is disabled"):
        load_dataset("fashion-mnist", download=False)
    with pytest.raises(DataError) as info:
        fetch("mnist")
    assert "apt-get" not in str(info.value) and "--data-dir" in str(info.value)


# ---------------------------------------------------------------- download and verify

def test_download_verifies_and_caches(isolated, http_root, monkeypatch):
    www, url = http_root
    write_idx_dataset(www, marker=9)
    monkeypatch.setitem(named.MIRRORS, "fashion-mnist", [url])
    monkeypatch.setitem(named.CHECKSUMS, "fashion-mnist", {f"{b}.gz": md5(www / f"{b}.gz") for b in IDX_FILES})
    cache = isolated / "cache" / "fashion-mnist"
    assert fetch("fashion-mnist") == f"fashion-mnist: downloaded from {url} to {cache} and verified"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{b}.gz" for b in IDX_FILES)
    ds = load_dataset("fashion-mnist", split="test")
    assert ds.images.shape == (4, 1, 28, 28) and int(ds.images.max()) == 9 and ds.source == str(cache)
    assert fetch("fashion-mnist") == f"fashion-mnist: found at {cache}"


def test_download_bad_checksum_leaves_nothing(isolated, http_root, monkeypatch):
    www, url = http_root
    write_idx_dataset(www, marker=9)
    monkeypatch.setitem(named.MIRRORS, "fashion-mnist", [url])
    checksums = {f"{b}.gz": md5(www / f"{b}.gz") for b in IDX_FILES}
    checksums["train-images-idx3-ubyte.gz"] = "md5:" + "0" * 32
    monkeypatch.setitem(named.CHECKSUMS, "fashion-mnist", checksums)
    with pytest.raises(DataError, match="checksum") as info:
        fetch("fashion-mnist")
    assert "\n" not in str(info.value)
    cache = isolated / "cache" / "fashion-mnist"
    assert not list(cache.glob("*"))  # neither the bad file nor its temporary file


def test_download_falls_back_to_next_mirror_and_sha256(isolated, monkeypatch):
    """mnist: the first mirror is down, the second (file://) answers; sha256 checksums work too."""
    www = write_idx_dataset(isolated / "www", marker=5)
    monkeypatch.setitem(named.MIRRORS, "mnist", [closed_port_url(), www.as_uri() + "/"])
    monkeypatch.setitem(named.CHECKSUMS, "mnist", {
        f"{b}.gz": "sha256:" + hashlib.sha256((www / f"{b}.gz").read_bytes()).hexdigest() for b in IDX_FILES})
    ds = load_dataset("mnist")
    assert ds.images.shape == (6, 1, 28, 28) and ds.class_names == [str(d) for d in range(10)]
    assert (isolated / "cache" / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()


# ---------------------------------------------------------------- cifar10

def cifar_batch(n: int, first_label: int, bytes_keys: bool) -> bytes:
    data = np.zeros((n, 3072), np.uint8)
    data[:, :1024] = 255  # red plane
    data[:, 1024] = np.arange(n)  # green at pixel (0, 0): identifies the image
    batch = {"data": data, "labels": [(first_label + i) % 10 for i in range(n)], "batch_label": "x"}
    if bytes_keys:  # Python 3 pickles of the original use bytes keys
        batch = {k.encode(): v for k, v in batch.items()}
    return pickle.dumps(batch)


def make_cifar_tarball(path: Path, n: int = 3) -> Path:
    names = [f"label{i}" for i in range(10)]
    members = {f"data_batch_{i}": cifar_batch(n, i, bytes_keys=i % 2 == 0) for i in range(1, 6)}
    members["test_batch"] = cifar_batch(n + 1, 0, bytes_keys=False)
    members["batches.meta"] = pickle.dumps({"label_names": names, "num_vis": 3072})
    members["readme.html"] = b"<html></html>"
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def test_cifar10_from_tarball_in_data_dir(isolated, monkeypatch):
    given = isolated / "given"
    given.mkdir()
    archive = make_cifar_tarball(given / cifar.ARCHIVE)
    monkeypatch.setitem(named.CHECKSUMS, "cifar10", {cifar.ARCHIVE: md5(archive)})
    ds = load_dataset("cifar10", data_dir=given)
    assert ds.images.shape == (15, 3, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels[:4].tolist() == [1, 2, 3, 2]
    assert ds.class_names == [f"label{i}" for i in range(10)]
    assert torch.all(ds.images[:, 0] == 255) and ds.images[:3, 1, 0, 0].tolist() == [0, 1, 2]
    assert int(ds.images[0, 1, 0, 1]) == 0 and torch.all(ds.images[:, 2] == 0)
    test = load_dataset("cifar10", split="test", data_dir=given, channels=1, resolution=16)
    assert test.images.shape == (4, 1, 16, 16)
    assert int(test.images[0, 0, 8, 8]) == round(0.299 * 255)  # ITU-R 601 luma of pure red
    extracted = isolated / "cache" / "cifar10" / cifar.BATCH_DIR
    assert sorted(p.name for p in extracted.iterdir()) == sorted(cifar.KNOWN_FILES)  # no readme.html


def test_cifar10_download_extracts_and_removes_archive(isolated, http_root, monkeypatch):
    www, url = http_root
    archive = make_cifar_tarball(www / cifar.ARCHIVE)
    monkeypatch.setitem(named.MIRRORS, "cifar10", [url])
    monkeypatch.setitem(named.CHECKSUMS, "cifar10", {cifar.ARCHIVE: md5(archive)})
    assert "downloaded from" in fetch("cifar10")
    cache = isolated / "cache" / "cifar10"
    assert not (cache / cifar.ARCHIVE).exists() and (cache / cifar.BATCH_DIR / "test_batch").is_file()
    assert len(load_dataset("cifar10", split="test")) == 4


def test_cifar10_bad_archive_checksum(isolated, monkeypatch):
    (isolated / "given").mkdir()
    make_cifar_tarball(isolated / "given" / cifar.ARCHIVE)
    monkeypatch.setitem(named.CHECKSUMS, "cifar10", {cifar.ARCHIVE: "md5:" + "1" * 32})
    with pytest.raises(DataError, match="checksum"):
        load_dataset("cifar10", data_dir=isolated / "given")


def test_cifar10_refuses_code_in_pickles(isolated):
    batches = isolated / "given" / cifar.BATCH_DIR
    batches.mkdir(parents=True)
    for f in cifar.KNOWN_FILES:
        (batches / f).write_bytes(cifar_batch(2, 0, bytes_keys=False))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (batches / "batches.meta").write_bytes(pickle.dumps({"label_names": Evil()}))
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        load_dataset("cifar10", data_dir=isolated / "given")


# ---------------------------------------------------------------- named dataset adaptation

def test_resize_and_channels_of_named_dataset(isolated):
    write_idx_dataset(isolated / "given", marker=200)
    ds = load_dataset("fashion-mnist", data_dir=isolated / "given", resolution=12, channels=3)
    assert ds.images.shape == (6, 3, 12, 12) and ds.images.dtype == torch.uint8
    assert torch.all(ds.images == 200)  # a constant image stays constant through resizing
    assert ds.images.is_contiguous()
    pairs = ds.torch_dataset()
    image, label = pairs[3]
    assert image.shape == (3, 12, 12) and label == 3


def test_bad_arguments():
    with pytest.raises(ConfigError, match="valid: .*fashion-mnist.*toy:ring8"):
        load_dataset("imagenet")
    with pytest.raises(ConfigError, match="did you mean 'mnist'"):
        fetch("mnst")
    with pytest.raises(ConfigError, match="split"):
        load_dataset("fashion-mnist", split="val")
    with pytest.raises(ConfigError, match="channels"):
        load_dataset("toy:ring8", channels=2)
    with pytest.raises(DataError, match="needs a path"):
        load_dataset("folder:")


def test_names_and_info():
    assert DATASET_NAMES == ["fashion-mnist", "mnist", "cifar10", "folder:PATH", "toy:ring8", "toy:grid25"]
    fm = dataset_info("fashion-mnist")
    assert (fm["resolution"], fm["channels"], fm["num_classes"]) == (28, 1, 10)
    assert fm["class_names"][0] == "T-shirt/top"
    assert (dataset_info("cifar10")["resolution"], dataset_info("cifar10")["channels"]) == (32, 3)
    toy_info = dataset_info("toy:grid25")
    assert toy_info["resolution"] is None and toy_info["num_modes"] == 25
    assert fetch("toy:ring8").startswith("toy:ring8: generated")


# ---------------------------------------------------------------- folder:PATH

def save(path: Path, size=(20, 20), color=(10, 20, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else color[0]).save(path)


def test_folder_with_class_subfolders(tmp_path):
    root = tmp_path / "pets"
    save(root / "dog" / "a.png")
    save(root / "dog" / "nested" / "b.JPG")  # recursive, case-insensitive extension
    save(root / "cat" / "c.webp")
    save(root / "cat" / "d.bmp")
    save(root / "cat" / "e.jpeg")
    save(root / ".hidden" / "f.png")  # hidden folders are not classes
    (root / "notes.txt").write_text("not an image")
    ds = load_dataset(f"folder:{root}", resolution=8)
    assert isinstance(ds, ImageDataset) and ds.name == f"folder:{root}" and ds.source == str(root)
    assert ds.images.shape == (5, 3, 8, 8) and ds.class_names == ["cat", "dog"]
    assert ds.labels.tolist() == [0, 0, 0, 1, 1]
    info = dataset_info(f"folder:{root}")
    assert info == {"resolution": 20, "channels": 3, "num_classes": 2, "class_names": ["cat", "dog"]}
    assert fetch(f"folder:{root}").endswith(f"5 images in 2 classes at {root.resolve()}")


def test_folder_with_top_level_images_has_no_labels(tmp_path):
    save(tmp_path / "a.png")
    save(tmp_path / "sub" / "b.png")
    ds = load_dataset(f"folder:{tmp_path}")
    assert len(ds) == 2 and ds.labels is None and ds.class_names is None


def test_folder_unreadable_files_warn_once(tmp_path):
    for i in range(3):
        save(tmp_path / f"ok{i}.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    good = tmp_path / "truncated.png"  # valid header, body cut: fails only at decode time
    save(good, size=(64, 64))
    good.write_bytes(good.read_bytes()[:60])
    with pytest.warns(UserWarning, match=r"skipped 2 unusable image files in .*: broken.png \(cannot identify "
                                         r"image file\), truncated.png \(image file is truncated") as record:
        ds = load_dataset(f"folder:{tmp_path}")
    assert len(record) == 1 and len(ds) == 3


@pytest.mark.parametrize("make", ["empty", "missing", "only_text", "only_broken"])
def test_folder_without_images_is_data_error(tmp_path, make):
    folder = tmp_path / "imgs"
    if make != "missing":
        folder.mkdir()
    if make == "only_text":
        (folder / "a.txt").write_text("x")
    if make == "only_broken":
        (folder / "a.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="folder") as info:
        load_dataset(f"folder:{folder}")
    assert str(folder) in str(info.value)


def test_folder_resize_and_center_crop(tmp_path):
    img = Image.new("RGB", (60, 20), (255, 0, 0))  # left third red, middle green, right blue
    img.paste((0, 255, 0), (20, 0, 40, 20))
    img.paste((0, 0, 255), (40, 0, 60, 20))
    img.save(tmp_path / "wide.png")
    ds = load_dataset(f"folder:{tmp_path}", resolution=10)
    assert ds.images.shape == (1, 3, 10, 10)
    assert ds.images[0, :, :, 3:7].float().mean((1, 2)).tolist() == [0.0, 255.0, 0.0]  # only the green middle
    tall = load_dataset(f"folder:{tmp_path}")  # default: the short side of the first image
    assert tall.images.shape == (1, 3, 20, 20)


def test_folder_grayscale_and_rgb(tmp_path):
    save(tmp_path / "g1.png", mode="L", color=(100,))
    save(tmp_path / "g2.png", mode="L", color=(50,))
    gray = load_dataset(f"folder:{tmp_path}")
    assert gray.images.shape == (2, 1, 20, 20) and gray.images[:, 0, 5, 5].tolist() == [100, 50]
    as_rgb = load_dataset(f"folder:{tmp_path}", channels=3)
    assert as_rgb.images.shape == (2, 3, 20, 20) and as_rgb.images[0, :, 5, 5].tolist() == [100, 100, 100]
    save(tmp_path / "c.png", color=(255, 0, 0))
    mixed = load_dataset(f"folder:{tmp_path}")
    assert mixed.images.shape[1] == 3
    forced = load_dataset(f"folder:{tmp_path}", channels=1)
    assert forced.images.shape == (3, 1, 20, 20) and int(forced.images[0, 0, 5, 5]) == 76  # luma of red


def test_folder_streaming_when_too_large(tmp_path):
    for cls, color in [("a", (255, 0, 0)), ("b", (0, 0, 255))]:
        for i in range(3):
            save(tmp_path / cls / f"{i}.png", size=(30, 40), color=color)
    ds = load_dataset(f"folder:{tmp_path}", resolution=16, max_memory_bytes=1000)
    assert isinstance(ds, StreamingFolderDataset)
    assert len(ds) == 6 and (ds.resolution, ds.channels) == (16, 3) and ds.class_names == ["a", "b"]
    loader = torch.utils.data.DataLoader(ds.torch_dataset(), batch_size=4, shuffle=False)
    images, labels = next(iter(loader))
    assert images.shape == (4, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.tolist() == [0, 0, 0, 1]
    assert images[3, :, 8, 8].tolist() == [0, 0, 255]
    in_memory = load_dataset(f"folder:{tmp_path}", resolution=16)
    assert torch.equal(in_memory.images[3], images[3])  # both paths decode the same way


def test_streaming_unlabelled_gives_minus_one(tmp_path):
    save(tmp_path / "x.png", mode="L", color=(7,))
    ds = load_dataset(f"folder:{tmp_path}", max_memory_bytes=1)
    image, label = ds.torch_dataset()[0]
    assert image.shape == (1, 20, 20) and label == -1 and int(image[0, 0, 0]) == 7


# ---------------------------------------------------------------- toy

def test_toy_ring8():
    ds = load_dataset("toy:ring8", n_toy=8000, seed=1)
    assert isinstance(ds, ToyDataset) and ds.labels is None and ds.class_names is None
    assert ds.points.shape == (8000, 2) and ds.points.dtype == torch.float32 and ds.sigma == 0.01
    assert ds.modes.shape == (8, 2)
    assert torch.allclose(ds.modes.norm(dim=1), torch.ones(8), atol=1e-6)
    angles = torch.atan2(ds.modes[:, 1], ds.modes[:, 0]).remainder(2 * math.pi)
    assert torch.allclose(angles.sort().values, torch.arange(8) * (2 * math.pi / 8), atol=1e-5)
    check_samples_near_modes(ds)


def test_toy_grid25():
    ds = load_dataset("toy:grid25", n_toy=10000, seed=0)
    assert ds.sigma == 0.05 and ds.name == "toy:grid25" and ds.source == "generated"
    expected = {(x, y) for x in (-4, -2, 0, 2, 4) for y in (-4, -2, 0, 2, 4)}
    assert {tuple(round(v) for v in m) for m in ds.modes.tolist()} == expected
    assert torch.equal(ds.modes, ds.modes.round())
    check_samples_near_modes(ds)


def check_samples_near_modes(ds):
    distance, nearest = torch.cdist(ds.points, ds.modes).min(dim=1)
    assert distance.max() < 6 * ds.sigma  # 2-D Gaussian: P(r > 6 sigma) = exp(-18), about 1.5e-8
    assert abs(distance.pow(2).mean() / (2 * ds.sigma**2) - 1) < 0.1  # E r^2 = 2 sigma^2
    counts = torch.bincount(nearest, minlength=len(ds.modes)).float()
    n, m = len(ds), len(ds.modes)
    sd = math.sqrt(n * (1 / m) * (1 - 1 / m))
    assert torch.all((counts - n / m).abs() < 5 * sd)  # equal probability per mode


def test_toy_seed_is_reproducible():
    a = load_dataset("toy:ring8", n_toy=100, seed=3).points
    assert torch.equal(a, load_dataset("toy:ring8", n_toy=100, seed=3).points)
    assert not torch.equal(a, load_dataset("toy:ring8", n_toy=100, seed=4).points)


# ---------------------------------------------------------------- real Fashion-MNIST

REAL = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (REAL / "train-images-idx3-ubyte.gz").is_file(),
                    reason="Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path))
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    monkeypatch.setitem(named.SYSTEM_DIRS, "fashion-mnist", [REAL])
    ds = load_dataset("fashion-mnist", download=False)
    assert ds.images.shape == (60000, 1, 28, 28) and ds.images.dtype == torch.uint8
    assert ds.labels.shape == (60000,) and ds.labels.dtype == torch.int64
    assert (int(ds.labels.min()), int(ds.labels.max())) == (0, 9)
    assert torch.bincount(ds.labels).tolist() == [6000] * 10  # the train split is balanced
    assert ds.class_names == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    assert ds.source == str(REAL) and 0 < ds.images.float().mean() < 255
    assert load_dataset("fashion-mnist", split="test", download=False).images.shape == (10000, 1, 28, 28)
