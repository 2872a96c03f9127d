"""Shared fixtures: tiny configs and datasets so the suite runs on 2 CPU cores in minutes."""
from __future__ import annotations

import atexit
import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]

# `make test` runs the suite in one pytest-xdist worker per CPU. Each worker (and every CLI it
# starts) then uses one torch thread: two workers with two threads each on 2 cores make OpenMP
# threads wait for each other, which costs far more than the second thread gains.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)

# The suite's caches (reference features, weights, fetched datasets) go to a folder of each
# worker's own, removed at its exit, never to the user's GANFORGE_CACHE or ~/.cache/ganforge:
# tests had left the features of their temporary folders there, one file per run
_CACHE = tempfile.mkdtemp(prefix="ganforge-test-cache-")
os.environ["GANFORGE_CACHE"] = _CACHE
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: small convolutions are slower on two contended threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def tiny_config(**overrides):
    """A DCGAN at 16x16 with 8 channels: a step takes milliseconds on CPU."""
    from ganforge.config import apply_overrides, from_dict

    raw = {
        "data": {"name": "fashion-mnist", "resolution": 16, "channels": 1},
        "model": {"name": "dcgan", "z_dim": 8, "g_width": 8, "d_width": 8},
        "train": {"steps": 6, "batch_size": 8, "log_every": 2, "sample_every": 3,
                  "checkpoint_every": 3, "n_sample_grid": 4, "device": "cpu", "seed": 0},
    }
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


def random_dataset(n: int = 64, channels: int = 1, resolution: int = 16, labels: bool = False):
    from ganforge.data import ImageDataset

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, resolution, resolution), generator=g,
                           dtype=torch.uint8)
    lab = torch.arange(n) % 2 if labels else None
    return ImageDataset(images=images, labels=lab, class_names=["a", "b"] if labels else None,
                        source="random", name="random")


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """24 small RGB PNGs in two class subfolders."""
    root = tmp_path / "images"
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(12):
            arr = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            Image.fromarray(arr).save(root / cls / f"{i}.png")
    return root


def run_cli(*args, env=None, timeout=300, cwd=None, input=None):
    """Run `python -m ganforge ...` in a process of its own, with a fresh ganforge (forked from a
    process that has imported torch: _forkcli.py says why and when not); returns CompletedProcess."""
    from _forkcli import run_ganforge

    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return run_ganforge([str(a) for a in args], full_env, cwd=cwd, input=input, timeout=timeout)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_root(tmp_path):
    """(folder, base URL) of an HTTP server on 127.0.0.1 serving that folder."""
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


# ----------------------------------------------------------------------------- family runs


def family_run(folder: Path, objective: str, *overrides: str) -> Path:
    """``folder``/run: a run of a family's example config (a tiny folder of its data written under
    ``folder``) with ``overrides``, trained."""
    from ganforge import api
    from ganforge.config import apply_overrides, from_dict
    from ganforge.objectives import OBJECTIVES

    raw = apply_overrides(OBJECTIVES[objective].example_config(folder), list(overrides))
    api.train(from_dict(raw), folder / "run", progress=False)
    return folder / "run"


# ----------------------------------------------------------------------------- StyleGAN2 runs


@pytest.fixture(scope="module")
def style_run(tmp_path_factory):
    """A StyleGAN2 run of the family's example config (a few steps on a tiny folder), per module."""
    from ganforge import api
    from ganforge.config import from_dict
    from ganforge.objectives.stylegan2 import StyleGAN2

    root = tmp_path_factory.mktemp("style")
    api.train(from_dict(StyleGAN2.example_config(root / "data")), root / "run", progress=False)
    return root / "run"


@pytest.fixture(scope="module")
def cond_style_run(tmp_path_factory):
    """A conditional StyleGAN2 run of the family's example config (classes a and b), per module:
    the same network shapes as style_run, so a latent of one has the other's shape."""
    from ganforge import api
    from ganforge.config import from_dict
    from ganforge.objectives.stylegan2 import StyleGAN2Conditional

    root = tmp_path_factory.mktemp("cond-style")
    api.train(from_dict(StyleGAN2Conditional.example_config(root / "data")), root / "run", progress=False)
    return root / "run"


def cli_result(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of ``ganforge ARGS`` run in this process (argparse's exit too)."""
    from ganforge import cli

    try:
        code = cli.main([str(a) for a in args])
    except SystemExit as exc:  # argparse
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


def brightness_logits(x):
    """A two-class stand-in for a dataset classifier: brighter than the batch's median or not."""
    import torch

    d = (x.flatten(1).mean(1) - x.flatten(1).mean(1).median()) * 100
    return torch.stack([-d, d], 1)


@pytest.fixture
def brightness_classifier(monkeypatch):
    """The example run's folder dataset has no classifier: edit uses brightness_logits instead."""
    from ganforge.objectives.stylegan2 import StyleGAN2

    monkeypatch.setattr(StyleGAN2, "dataset_classifier", lambda self: (brightness_logits, ["dark", "bright"]))


# ----------------------------------------------------------------------------- offline datasets


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (a port bound, then closed)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No real cache, no system dirs, no env, and any download goes to a closed local port."""
    from ganforge.data import download, named

    monkeypatch.setenv("GANFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("GANFORGE_DATA", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setitem(named.SYSTEM_DIRS, "fashion-mnist", [tmp_path / "system"])
    url = closed_port_url()
    for name in ("fashion-mnist", "mnist", "cifar10"):
        monkeypatch.setitem(named.MIRRORS, name, [url])
    monkeypatch.setattr(download, "DOWNLOAD_TIMEOUT", 2.0)
    return tmp_path
