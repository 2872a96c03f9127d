"""Review fixes of `data fetch` and the named-dataset lookup: DIR/NAME is searched before DIR and
MNIST's and Fashion-MNIST's official files are told apart by content; a cache folder that cannot
be written, and a download cut off mid-transfer, are one-line errors (the next mirror is tried);
a --data-dir without the dataset is refused (GANFORGE_DATA, set for every dataset, is passed
over); forms training reads directly (photos, audio:PATH) are answered, and --data-dir is
checked for every name. No network: files are served from 127.0.0.1."""
from __future__ import annotations

import errno
import gzip
import hashlib
import http.server
import pathlib
import struct
import threading

import numpy as np
import pytest

from ganforge import cli
from ganforge.data import download, fetch, load_dataset, named
from ganforge.errors import DataError

IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def _idx(array: np.ndarray) -> bytes:
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_dataset(folder, pixel: int, n: int = 6, name=lambda base: f"{base}.gz"):
    """Four IDX files whose images are all `pixel`, so a test can tell folders apart."""
    folder.mkdir(parents=True, exist_ok=True)
    for base in IDX_FILES:
        array = np.full((n, 28, 28), pixel, np.uint8) if "images" in base else (np.arange(n) % 10).astype(np.uint8)
        data = _idx(array)
        (folder / name(base)).write_bytes(gzip.compress(data) if name(base).endswith(".gz") else data)
    return folder


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["data", "fetch", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


# ----------------------------------------------------------------------------- 1. DIR/NAME first; content check

def test_the_dataset_subfolder_is_searched_before_the_folder(isolated, monkeypatch):
    data = write_idx_dataset(isolated / "data", pixel=73)  # Fashion-MNIST's files at the top
    write_idx_dataset(data / "mnist", pixel=33)
    assert fetch("mnist", data_dir=data) == f"mnist: found at {data / 'mnist'}"
    assert int(load_dataset("mnist", data_dir=data).images[0, 0, 0, 0]) == 33
    monkeypatch.setenv("GANFORGE_DATA", str(data))
    assert fetch("mnist") == f"mnist: found at {data / 'mnist'}"
    assert fetch("fashion-mnist") == f"fashion-mnist: found at {data}"  # no data/fashion-mnist: the top


def test_the_other_datasets_official_training_images_are_refused(isolated, monkeypatch):
    fashion_like = write_idx_dataset(isolated / "mnist", pixel=73)  # mean 73/255 = 0.286: Fashion-MNIST's
    assert fetch("mnist", data_dir=fashion_like) == f"mnist: found at {fashion_like}"  # stand-ins: not judged
    monkeypatch.setattr(named, "OFFICIAL_TRAIN_COUNT", 6, raising=False)  # as if the 60,000 official ones
    for load in (lambda: fetch("mnist", data_dir=fashion_like), lambda: load_dataset("mnist", data_dir=fashion_like)):
        with pytest.raises(DataError) as info:
            load()
        msg = str(info.value)
        assert "\n" not in msg and f"{fashion_like} holds fashion-mnist, not mnist" in msg
        assert "0.2863" in msg and "--data-dir" in msg
    assert fetch("fashion-mnist", data_dir=fashion_like) == f"fashion-mnist: found at {fashion_like}"
    mnist_like = write_idx_dataset(isolated / "fm", pixel=33)  # 0.129: MNIST's
    assert fetch("mnist", data_dir=mnist_like) == f"mnist: found at {mnist_like}"
    with pytest.raises(DataError, match="holds mnist, not fashion-mnist"):
        fetch("fashion-mnist", data_dir=mnist_like)


def test_a_shared_data_folder_holding_the_other_dataset_is_passed_over(isolated, monkeypatch):
    """GANFORGE_DATA, set for every dataset, with MNIST's official files at its top: asked for
    Fashion-MNIST it had stopped every Fashion-MNIST preset (telling the user to change a
    --data-dir never passed); it is passed over, as a folder without the files is."""
    shared = write_idx_dataset(isolated / "shared", pixel=33)  # MNIST-like (0.129)
    system = write_idx_dataset(isolated / "system", pixel=73)  # the Debian copy of Fashion-MNIST
    monkeypatch.setattr(named, "OFFICIAL_TRAIN_COUNT", 6, raising=False)
    monkeypatch.setenv("GANFORGE_DATA", str(shared))
    assert fetch("fashion-mnist").startswith(f"fashion-mnist: found at {system}")
    assert fetch("mnist") == f"mnist: found at {shared}"  # the one it holds is still found there
    with pytest.raises(DataError, match="holds mnist, not fashion-mnist"):  # said for this dataset: refused
        fetch("fashion-mnist", data_dir=shared)


# ----------------------------------------------------------------------------- 2. a cache that cannot be written

def test_a_cache_under_a_file_is_one_line(isolated, monkeypatch, capsys):
    (isolated / "afile").write_text("mine")
    monkeypatch.setenv("GANFORGE_CACHE", str(isolated / "afile" / "cache"))
    code, out, err = _cli(capsys, "mnist")
    assert code == 2 and out == "" and len(err.splitlines()) == 1, err
    assert f"{isolated / 'afile' / 'cache' / 'mnist'}" in err and "GANFORGE_CACHE" in err and "--data-dir" in err
    assert (isolated / "afile").read_text() == "mine"


def test_a_read_only_cache_is_one_line_and_the_cleanup_does_not_hide_it(isolated, monkeypatch):
    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")
    monkeypatch.setattr(download, "open", read_only, raising=False)  # the temporary file cannot be created
    monkeypatch.setattr(pathlib.Path, "unlink", read_only)  # nor anything removed
    with pytest.raises(DataError) as info:
        fetch("mnist")
    msg = str(info.value)
    assert f"{isolated / 'cache' / 'mnist'} (Read-only file system)" in msg and "GANFORGE_CACHE" in msg


# ----------------------------------------------------------------------------- 3. a transfer cut off

class _CutOff(http.server.BaseHTTPRequestHandler):
    """/short/F: half of F under the full Content-Length; /chunk/F: chunked, cut in the second
    chunk; the connection then closes. F is read from the server's `root`."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        mode, _, name = self.path.strip("/").partition("/")
        data = (self.server.root / name).read_bytes()
        self.send_response(200)
        self.close_connection = True
        if mode == "chunk":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            half = data[: len(data) // 2]
            self.wfile.write(b"%x\r\n" % len(half) + half + b"\r\n" + b"%x\r\n" % 100_000 + data[len(half):][:10])
        else:
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])


@pytest.fixture
def mirrors(isolated, http_root, monkeypatch):
    """(good mirror URL, cutting server URL): mnist's four files served whole and cut off."""
    www, good = http_root
    write_idx_dataset(www, pixel=33, n=50)
    sums = {f"{b}.gz": "md5:" + hashlib.md5((www / f"{b}.gz").read_bytes()).hexdigest() for b in IDX_FILES}
    monkeypatch.setitem(named.CHECKSUMS, "mnist", sums)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _CutOff)
    server.root = www
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield good, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_chunked_transfer_cut_off_tries_the_next_mirror(isolated, mirrors, monkeypatch):
    good, cutting = mirrors
    monkeypatch.setitem(named.MIRRORS, "mnist", [f"{cutting}chunk/", good])
    cache = isolated / "cache" / "mnist"
    assert fetch("mnist") == f"mnist: downloaded from {good} to {cache} and verified"
    monkeypatch.setitem(named.MIRRORS, "mnist", [f"{cutting}chunk/"])
    monkeypatch.setenv("GANFORGE_CACHE", str(isolated / "cache2"))
    with pytest.raises(DataError) as info:
        fetch("mnist")
    msg = str(info.value)
    assert "\n" not in msg and "transfer cut off after" in msg and "bytes; try again" in msg
    assert not (isolated / "cache2").exists()  # no empty folder left behind


def test_try_again_is_said_once_when_several_mirrors_are_cut_off(isolated, mirrors, monkeypatch):
    good, cutting = mirrors
    monkeypatch.setitem(named.MIRRORS, "mnist", [f"{cutting}chunk/", f"{cutting}short/"])
    with pytest.raises(DataError) as info:
        fetch("mnist")
    msg = str(info.value)
    assert msg.count("transfer cut off after") == 2 and msg.count("try again") == 1, msg


def test_a_connection_closed_early_is_a_cut_off_transfer_not_a_checksum(isolated, mirrors, monkeypatch):
    good, cutting = mirrors
    monkeypatch.setitem(named.MIRRORS, "mnist", [f"{cutting}short/"])
    size = (isolated / "www" / "train-images-idx3-ubyte.gz").stat().st_size
    with pytest.raises(DataError) as info:
        fetch("mnist")
    msg = str(info.value)
    assert f"train-images-idx3-ubyte.gz: transfer cut off after {size // 2} of {size} bytes; try again" in msg
    assert "checksum" not in msg and "\n" not in msg
    assert not (isolated / "cache").exists()


def test_a_failed_download_keeps_a_cache_folder_it_did_not_create(isolated, monkeypatch):
    (isolated / "cache" / "mnist").mkdir(parents=True)
    with pytest.raises(DataError, match="failed"):
        fetch("mnist")
    assert (isolated / "cache" / "mnist").is_dir()


# ----------------------------------------------------------------------------- 4. a data dir without the dataset

def test_a_data_dir_without_the_dataset_is_refused(isolated, monkeypatch):
    write_idx_dataset(isolated / "system", pixel=1)  # the Debian copy it had used instead
    (isolated / "empty").mkdir()
    with pytest.raises(DataError) as info:
        fetch("fashion-mnist", data_dir=isolated / "empty")
    msg = str(info.value)
    assert msg.startswith(f"--data-dir {isolated / 'empty'} does not hold fashion-mnist") and "\n" not in msg
    assert "train-images-idx3-ubyte" in msg and "t10k-labels-idx1-ubyte" in msg
    monkeypatch.setenv("GANFORGE_DATA", str(isolated / "empty"))  # set for every dataset: passed over
    assert fetch("fashion-mnist").endswith("(Debian package dataset-fashion-mnist)")


@pytest.mark.parametrize("gz", [True, False])
def test_dotted_file_names_are_found(isolated, gz):
    kaggle = write_idx_dataset(isolated / "kag", pixel=9,
                               name=lambda base: base.replace("-idx", ".idx") + (".gz" if gz else ""))
    assert (kaggle / ("train-images.idx3-ubyte" + (".gz" if gz else ""))).is_file()
    assert fetch("mnist", data_dir=kaggle) == f"mnist: found at {kaggle}"
    assert int(load_dataset("mnist", data_dir=kaggle).images[0, 0, 0, 0]) == 9


# ----------------------------------------------------------------------------- 5. forms read by training

def test_audio_and_photos_are_answered_not_unknown(isolated, capsys):
    from ganforge.data.audio import write_wav

    (isolated / "voice").mkdir()
    tone = (0.3 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 220)).astype(np.float32)
    write_wav(isolated / "voice" / "a.wav", tone, 8000)
    code, out, err = _cli(capsys, f"audio:{isolated / 'voice'}")
    assert (code, err) == (0, "") and out == f"audio:{isolated / 'voice'}: 1 audio file in {isolated / 'voice'} " \
        "(1.0 s, 8000 Hz, mono; each decodes and has sound), read directly by training; nothing to fetch"
    # it had only counted the files: a folder of silent, empty or non-audio files passed here and
    # was refused by training, one file at a time; now every file gets training's checks at once
    write_wav(isolated / "voice" / "b.wav", np.zeros(800, np.float32), 8000)
    (isolated / "voice" / "c.wav").write_bytes(b"")
    (isolated / "voice" / "d.wav").write_text("not audio")
    code, out, err = _cli(capsys, f"audio:{isolated / 'voice'}")
    assert code == 2 and len(err.splitlines()) == 1 and out == ""
    assert (f"3 of 4 audio files in {isolated / 'voice'} cannot be trained on: b.wav (silent (peak below "
            f"0.0001)), c.wav (empty (0 bytes)), d.wav (not audio that soundfile can decode); remove or "
            f"replace them") in err
    code, out, err = _cli(capsys, f"audio:{isolated / 'none'}")
    assert code == 2 and len(err.splitlines()) == 1 and f"audio folder {isolated / 'none'} does not exist" in err
    (isolated / "silent").mkdir()
    code, out, err = _cli(capsys, f"audio:{isolated / 'silent'}")
    assert code == 2 and "holds no WAV" in err
    pytest.importorskip("skimage")
    for name in ("photos", "photos:test"):
        code, out, err = _cli(capsys, name)
        assert (code, err) == (0, "") and out.startswith(f"{name}: scikit-image's sample images (")
        assert out.endswith("read directly by training; nothing to fetch")
    code, out, err = _cli(capsys, "photos:nope")
    assert code == 2 and "unknown photo split 'nope'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", ["folder:IMGS", "toy:ring8", "photos", "audio:IMGS"])
def test_a_data_dir_that_does_not_exist_is_refused_for_every_name(isolated, capsys, name):
    from PIL import Image

    (isolated / "imgs").mkdir()
    Image.new("RGB", (8, 8)).save(isolated / "imgs" / "a.png")
    name = name.replace("IMGS", str(isolated / "imgs"))
    code, out, err = _cli(capsys, name, "--data-dir", isolated / "nonexist")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert f"--data-dir {isolated / 'nonexist'} does not exist or is not a directory" in err
