"""Inputs a CLI review found crashing with a traceback (exit code 1) or leaving things behind:
each is now one line with exit code 2, checked before any work, with nothing written."""
from __future__ import annotations

import argparse

import pytest
import torch

from ganforge import cli
from ganforge.commands import MAX_SEED, seed
from ganforge.commands.serve import check_port
from ganforge.commands.style import seed_list
from ganforge.detect.detector import Recipe
from ganforge.errors import ConfigError
from ganforge.training.precision import resolve_device


def _main(argv) -> int:
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as exc:  # argparse's usage errors
        return int(exc.code)


def _one_line(capsys, code, needle):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert needle in err, err


def test_seeds_beyond_64_bits_are_refused(capsys):
    assert seed("0") == 0 and seed(str(MAX_SEED)) == MAX_SEED
    torch.Generator().manual_seed(MAX_SEED)  # the largest accepted seed works
    for bad in ("99999999999999999999", "-1", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError):
            seed(bad)
    with pytest.raises(ConfigError, match="seeds in 0..9223372036854775807"):
        seed_list("3,99999999999999999999", "--cols")
    _one_line(capsys, _main(["sample", "RUN", "--seed", "99999999999999999999"]), "a seed is between 0 and")


@pytest.mark.parametrize("argv, needle", [
    (["translate-eval", "RUN", "--n", "0"], "--n must be positive"),
    (["eval-audio", "RUN", "--data", "D", "--threads", "0"], "--threads must be positive"),
    (["eval-audio", "RUN", "--data", "D", "--limit", "-1"], "--limit must be positive"),
    (["train", "dcgan-fashion-mnist", "train.n_sample_grid=0", "--out", "{tmp}/run"],
     "train.n_sample_grid must be > 0"),
    (["data", "make-speech", "--out", "{tmp}/sp", "--rate", "0"], "--rate must be in 4000..192000"),
])
def test_bad_numbers_are_one_line(argv, needle, tmp_path, capsys):
    _one_line(capsys, _main([a.format(tmp=tmp_path) for a in argv]), needle)
    assert list(tmp_path.iterdir()) == []  # no run, no half corpus


def test_files_of_the_wrong_kind_are_one_line(tmp_path, capsys):
    binary = tmp_path / "img.yaml"
    binary.write_bytes(bytes(range(256)))
    _one_line(capsys, _main(["train", binary, "--out", tmp_path / "run"]), "is not a text file")
    section = tmp_path / "section.yaml"
    section.write_text("objective: unconditional\ntrain: 5\n")  # an override used to drop it in silence
    _one_line(capsys, _main(["train", section, "--steps", "2", "--out", tmp_path / "run"]),
              "section.yaml: 'train' must be a mapping")
    assert not (tmp_path / "run").exists()
    notes = tmp_path / "notes.md"
    notes.write_text("mine")
    _one_line(capsys, _main(["data", "make-speech", "--out", notes]), "is a file; give a folder")
    _one_line(capsys, _main(["sample", notes, "--out", tmp_path / "x.png"]), "is a file, not a run directory")
    assert notes.read_text() == "mine"
    bad = tmp_path / "bad.npz"
    bad.write_text("garbage")
    _one_line(capsys, _main(["provenance", bad]), "is not an .npz archive")
    bad.write_bytes(b"PK\x03\x04" + bytes(300))  # a zip's signature, then nothing a zip needs
    _one_line(capsys, _main(["provenance", bad]), "is not an .npz archive")


def test_devices_ports_and_learning_rates_are_checked():
    with pytest.raises(ConfigError, match="'tpu' is not a device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU is visible"):
            resolve_device("cuda")
    if not torch.backends.mps.is_available():
        with pytest.raises(ConfigError, match="no usable Apple GPU"):
            resolve_device("mps")
    for port in (-1, 0, 99999):
        with pytest.raises(ConfigError, match="--port must be in 1..65535"):
            check_port("127.0.0.1", port)
    for lr in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ConfigError, match="--lr"):
            Recipe(lr=lr).check()


def test_counts_that_cannot_finish_are_refused_before_any_work(monkeypatch):
    from types import SimpleNamespace

    from ganforge import config
    from ganforge.api import check_sample_memory
    from ganforge.commands.style import strength_list

    assert strength_list("-3:3:7") == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    for bad in ("-3:3:1000000000", "nan,inf", "1e308", "-3:3:0"):
        with pytest.raises(ConfigError, match="--strength takes"):
            strength_list(bad)
    run = SimpleNamespace(config=SimpleNamespace(data=SimpleNamespace(channels=1, resolution=28)), point_dim=None)
    monkeypatch.setattr(config, "available_memory", lambda: 100_000_000)  # 100 MB left
    check_sample_memory(run, 10_000, "--n 10000")  # 63 MB: fine
    with pytest.raises(ConfigError, match="--n 100000 needs about 627.2 MB"):
        check_sample_memory(run, 100_000, "--n 100000")

    def unread():
        raise AssertionError("memory read for a small count")

    monkeypatch.setattr(config, "available_memory", unread)  # a served request's count: not checked
    check_sample_memory(run, 64, "n=64")


def test_an_incomplete_newer_checkpoint_is_named_when_it_is_skipped(tmp_path):
    from ganforge.training import checkpoint as ckpt

    root = tmp_path / "checkpoints"
    for name, files in (("step_0000000", (ckpt.WEIGHTS, ckpt.STATE)), ("step_0000010", (ckpt.WEIGHTS,))):
        (root / name).mkdir(parents=True)
        for f in files:
            (root / name / f).write_bytes(b"")
    (root / "latest").write_text("step_0000010")
    with pytest.warns(UserWarning, match=r"step_0000010 in .* lacks .* skipped; using step_0000000"):
        assert ckpt.find(tmp_path).name == "step_0000000"


def test_resume_and_force_together_are_refused(tmp_path, capsys):
    _one_line(capsys, _main(["train", "--resume", "--force", "--out", tmp_path / "run"]), "pass one of them")
    assert not (tmp_path / "run").exists()


def test_upscale_of_a_folder_into_an_image_name_and_a_negative_eval_tile_are_refused(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    _one_line(capsys, _main(["upscale", "RUN", tmp_path / "in", "--out", tmp_path / "u9.png"]),
              "--out must be a folder")
    assert not (tmp_path / "u9.png").exists()
    _one_line(capsys, _main(["eval-sr", "RUN", "--data", "photos:test", "--tile", "-1"]), "--tile must be >= 0")


def test_eval_names_a_reference_folder_that_is_not_there(tmp_path, capsys):
    _one_line(capsys, _main(["eval", "RUN", "--ref", f"folder:{tmp_path / 'nope'}"]), "is not a folder")
