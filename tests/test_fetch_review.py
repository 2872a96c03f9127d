"""Review fixes: train-classifier checks its --out before reading data or training; `data fetch`
reads the files it finds as training would; a download with a wrong checksum tries the other
mirrors and says where to put the file by hand. No network: files are served from 127.0.0.1."""
from __future__ import annotations

import gzip
import hashlib
import pickle
import struct

import numpy as np
import pytest

from ganforge import cli
from ganforge.data import cifar, fetch, named
from ganforge.errors import DataError

IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(folder, n: int = 5):
    folder.mkdir(parents=True, exist_ok=True)
    for base in IDX_FILES:
        array = np.zeros((n, 28, 28), np.uint8) if "images" in base else (np.arange(n) % 10).astype(np.uint8)
        (folder / f"{base}.gz").write_bytes(gzip.compress(_idx(array)))
    return folder


def write_cifar_batches(folder, n: int = 3):
    folder.mkdir(parents=True, exist_ok=True)
    for name in cifar.SPLIT_FILES["train"] + cifar.SPLIT_FILES["test"]:
        batch = {"data": np.zeros((n, 3072), np.uint8), "labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / cifar.META).write_bytes(pickle.dumps({"label_names": [f"c{i}" for i in range(10)]}))
    return folder


# ----------------------------------------------------------------------------- 1. train-classifier --out

@pytest.fixture
def no_training(monkeypatch):
    """Fail the test if train-classifier gets as far as reading the dataset."""
    import ganforge.data

    def refuse(*args, **kwargs):
        raise AssertionError("train-classifier read the dataset before checking --out")
    monkeypatch.setattr(ganforge.data, "load_dataset", refuse)


def _refused(capsys, *args) -> str:
    assert cli.main(["train-classifier", "mnist", "--epochs", "1", *map(str, args)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_train_classifier_refuses_an_out_under_a_file_before_training(tmp_path, capsys, no_training):
    (tmp_path / "afile").write_text("mine")
    err = _refused(capsys, "--out", tmp_path / "afile" / "x.safetensors")
    assert "afile is a file" in err and "--out" in err
    assert (tmp_path / "afile").read_text() == "mine"


def test_train_classifier_refuses_a_directory_even_with_force(tmp_path, capsys, no_training):
    (tmp_path / "d.safetensors").mkdir()
    err = _refused(capsys, "--out", tmp_path / "d.safetensors", "--force")
    assert "is a directory" in err
    (tmp_path / "e.json").mkdir()  # where the recipe beside e.safetensors goes
    err = _refused(capsys, "--out", tmp_path / "e.safetensors", "--force")
    assert "e.json is a directory" in err and "--out" in err
    assert not (tmp_path / "e.safetensors").exists()


# ----------------------------------------------------------------------------- 2. data fetch reads what it finds

def test_fetch_refuses_a_truncated_idx_file(isolated):
    given = write_idx_dataset(isolated / "trunc")
    images = given / "train-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:-30])
    with pytest.raises(DataError) as info:
        fetch("fashion-mnist", data_dir=given)
    msg = str(info.value)
    assert str(images) in msg and "delete it" in msg and "\n" not in msg


def test_fetch_refuses_a_junk_or_mismatched_idx_file(isolated):
    given = write_idx_dataset(isolated / "junk")
    assert fetch("mnist", data_dir=given) == f"mnist: found at {given}"
    labels = given / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx(np.zeros(4, np.uint8))))  # 4 labels for 5 images
    with pytest.raises(DataError, match="do not hold matching images"):
        fetch("mnist", data_dir=given)
    labels.write_bytes(b"<html>not found</html>")
    with pytest.raises(DataError, match="not an IDX file") as info:
        fetch("mnist", data_dir=given)
    assert str(labels) in str(info.value)


def test_fetch_refuses_a_junk_cifar_batch(isolated):
    given = write_cifar_batches(isolated / "batches")
    assert fetch("cifar10", data_dir=given) == f"cifar10: found at {given}"
    (given / "test_batch").write_bytes(b"junk")
    with pytest.raises(DataError, match="cannot read CIFAR-10 batch") as info:
        fetch("cifar10", data_dir=given)
    assert str(given / "test_batch") in str(info.value) and "\n" not in str(info.value)


# ----------------------------------------------------------------------------- 3. wrong checksums, the fix named

def _mnist_mirrors(www, monkeypatch, url: str, good: list[str]) -> None:
    """Mirrors www/<m>/ for m in ("a", "b"): those in `good` serve the real files, the others wrong bytes."""
    source = write_idx_dataset(www / "source")
    sums = {}
    for base in IDX_FILES:
        data = (source / f"{base}.gz").read_bytes()
        sums[f"{base}.gz"] = "md5:" + hashlib.md5(data).hexdigest()
        for mirror in ("a", "b"):
            (www / mirror).mkdir(exist_ok=True)
            (www / mirror / f"{base}.gz").write_bytes(data if mirror in good else b"wrong bytes")
    monkeypatch.setitem(named.MIRRORS, "mnist", [f"{url}a/", f"{url}b/"])
    monkeypatch.setitem(named.CHECKSUMS, "mnist", sums)


def test_a_wrong_file_from_one_mirror_falls_back_to_the_next(isolated, http_root, monkeypatch):
    www, url = http_root
    _mnist_mirrors(www, monkeypatch, url, good=["b"])
    cache = isolated / "cache" / "mnist"
    assert fetch("mnist") == f"mnist: downloaded from {url}b/ to {cache} and verified"
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{b}.gz" for b in IDX_FILES)


def test_wrong_files_from_every_mirror_name_the_folder_and_files(isolated, http_root, monkeypatch):
    www, url = http_root
    _mnist_mirrors(www, monkeypatch, url, good=[])
    with pytest.raises(DataError) as info:
        fetch("mnist")
    msg = str(info.value)
    cache = isolated / "cache" / "mnist"
    assert "\n" not in msg and "checksum" in msg and f"{url}a/" in msg and f"{url}b/" in msg
    assert f"into {cache}" in msg and "--data-dir DIR" in msg and "t10k-labels-idx1-ubyte.gz" in msg
    assert not cache.exists()  # no empty folder, no wrong or partial file


def test_not_found_message_names_the_files(isolated):
    with pytest.raises(DataError) as info:
        fetch("mnist")
    names = [f"{b}.gz" for b in IDX_FILES]
    assert f"download {', '.join(names[:3])} and {names[3]} from " in str(info.value)
