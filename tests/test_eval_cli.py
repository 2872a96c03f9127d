"""``ganforge eval`` and ``ganforge train-classifier`` as a user meets them: fresh processes,
exit codes, tables, JSON, one-line errors. Tiny sizes; a fake Fashion-MNIST written here."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from test_metrics_eval import write_fake_fashion_mnist

_MAIN = "import sys; from ganforge import cli; sys.exit(cli.main(sys.argv[1:]))"


@pytest.fixture
def cli_env(tmp_path):
    data = write_fake_fashion_mnist(tmp_path / "data" / "fashion-mnist")
    env = dict(os.environ, GANFORGE_DATA=str(data), GANFORGE_CACHE=str(tmp_path / "cache"),
               TORCH_HOME=str(tmp_path / "torch"), https_proxy="http://127.0.0.1:9",
               http_proxy="http://127.0.0.1:9", no_proxy="")
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


def gf(env, *args):
    return subprocess.run([sys.executable, "-c", _MAIN, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


@pytest.fixture
def gf_inproc(cli_env, monkeypatch, capsys):
    """The same command line, run in this process (no torch import per call: fast)."""
    from ganforge import cli

    for key in ("GANFORGE_DATA", "GANFORGE_CACHE", "TORCH_HOME", "https_proxy", "http_proxy", "no_proxy"):
        monkeypatch.setenv(key, cli_env[key])

    def run(*args):
        capsys.readouterr()
        code = cli.main([str(a) for a in args])
        out = capsys.readouterr()
        return _Result(code, out.out, out.err)

    return run


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_eval_samples_npz_writes_table_and_json(tmp_path, cli_env, gf_inproc):
    from ganforge.data import load_dataset

    train = load_dataset("fashion-mnist", split="train", data_dir=cli_env["GANFORGE_DATA"])
    images = train.images[:40].permute(0, 2, 3, 1).numpy()  # NHWC, as ganforge sample writes them
    npz = tmp_path / "samples.npz"
    np.savez(npz, images=images, labels=train.labels[:40].numpy())
    out = tmp_path / "out" / "eval.json"
    proc = gf(cli_env, "eval", npz, "--ref", "fashion-mnist", "--n", 40, "--extractor", "fashion-mnist-cnn",
              "--json", out)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    assert "40 generated vs 40 fashion-mnist/test images; extractor fashion-mnist-cnn" in table
    for name in ("fid", "kid", "precision", "recall", "density", "coverage", "classes_covered",
                 "class_kl", "memorization", "label_accuracy", "intra_fid"):
        assert any(line.split()[0] == name for line in table.splitlines() if line.strip()), name
    report = json.loads(out.read_text())
    m, p = report["metrics"], report["protocol"]
    assert m["memorization"] == 1.0 and 0 <= m["label_accuracy"] <= 1 and m["fid"] >= 0
    assert set(m) >= {"fid", "kid", "is", "precision", "recall", "density", "coverage", "classes_covered",
                      "class_kl", "memorization", "label_accuracy", "intra_fid"}
    assert p["n_generated"] == 40 and p["n_reference"] == 40 and p["split"] == "test"
    assert p["extractor"] == "fashion-mnist-cnn" and len(p["extractor_sha256"]) == 64
    assert p["resize_mode"] and p["target"] == {"target": str(npz), "kind": "npz"}
    # Second run: reference features come from the cache, numbers identical.
    again = gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", 40, "--extractor", "fashion-mnist-cnn",
                      "--metrics", "fid,kid", "--quiet")
    assert again.returncode == 0 and "computing" not in again.stdout
    fid_line = next(line for line in again.stdout.splitlines() if line.startswith("fid "))
    assert float(fid_line.split()[1]) == pytest.approx(m["fid"], rel=1e-4)
    # The same --json again is refused and the file is left as it was; --force overwrites it.
    before = out.read_bytes()
    one_line_error(gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", 40, "--extractor", "fashion-mnist-cnn",
                             "--metrics", "fid", "--json", out), "already exists", "--force")
    assert out.read_bytes() == before
    forced = gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", 40, "--extractor", "fashion-mnist-cnn",
                       "--metrics", "fid", "--json", out, "--force", "--quiet")
    assert forced.returncode == 0 and set(json.loads(out.read_text())["metrics"]) == {"fid"}


def test_eval_image_folder_against_a_folder(tmp_path, gf_inproc):
    rng = np.random.default_rng(0)
    for name, n in (("gen", 12), ("ref", 16)):
        (tmp_path / name).mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)).save(tmp_path / name / f"{i}.png")
    out = tmp_path / "folder.json"
    proc = gf_inproc("eval", tmp_path / "gen", "--ref", f"folder:{tmp_path / 'ref'}", "--n", 16,
              "--extractor", "fashion-mnist-cnn", "--json", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["protocol"]["n_generated"] == 12 and report["protocol"]["n_reference"] == 16
    assert report["protocol"]["target"]["kind"] == "folder"
    assert report["protocol"]["classifier"] is None  # a folder has no classifier: no class metrics
    assert "classes_covered" not in report["metrics"] and "fid" in report["metrics"]
    assert report["protocol"]["split"] == "all" and "/all images" in proc.stdout  # a folder has no test split


def test_eval_run_directory(tmp_path, gf_inproc):
    from conftest import random_dataset, tiny_config
    from ganforge import api

    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset(n=64, resolution=16))
    proc = gf_inproc("eval", run, "--ref", "fashion-mnist", "--n", 20, "--metrics", "fid,coverage",
              "--extractor", "fashion-mnist-cnn", "--json", tmp_path / "run.json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "run.json").read_text())
    assert set(report["metrics"]) == {"fid", "coverage"}
    target = report["protocol"]["target"]
    assert target["kind"] == "run" and target["step"] == 6 and target["ema"] is True
    assert report["protocol"]["generated_shape"] == [1, 16, 16]
    assert report["protocol"]["reference_resolution"] == 16  # compared at the generator's resolution
    one_line_error(gf_inproc("eval", run, "--ref", "fashion-mnist", "--checkpoint", "best"),
                   "no 'best' checkpoint")
    # the table says which generator made the samples, and what the numbers compare with
    lines = proc.stdout.splitlines()
    assert f"samples of {run} (step_0000006, step 6): EMA generator, seed 0" in lines
    assert any(line.startswith("note: fashion-mnist-cnn numbers compare only with") for line in lines)
    assert any(line.startswith("warning: fid from 20 samples") for line in lines)


def test_eval_model_folder_draws_the_same_samples_as_its_run(tmp_path, gf_inproc):
    """An exported model folder is evaluated like the run it came from (it had been taken for a
    folder of images: 'has no .png ... files')."""
    from conftest import random_dataset, tiny_config
    from ganforge import api
    from ganforge.serve.export import export_folder

    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset(n=64, resolution=16))
    folder = export_folder(api.load(run), tmp_path / "model")
    scores = []
    for target in (run, folder):
        proc = gf_inproc("eval", target, "--ref", "fashion-mnist", "--n", 20, "--metrics", "fid",
                         "--extractor", "fashion-mnist-cnn", "--json", tmp_path / f"{target.name}.json")
        assert proc.returncode == 0, proc.stderr
        report = json.loads((tmp_path / f"{target.name}.json").read_text())
        assert report["protocol"]["target"]["kind"] == "run" and report["protocol"]["target"]["step"] == 6
        scores.append(report["metrics"]["fid"])
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)


def test_eval_refuses_a_generator_that_outputs_nan(tmp_path, gf_inproc):
    """NaN samples became black images (uint8 casts NaN to 0) and were scored: precision 1."""
    from safetensors.torch import load_file, save_file

    from conftest import random_dataset, tiny_config
    from ganforge import api

    run = tmp_path / "run"
    api.train(tiny_config(), run, progress=False, dataset=random_dataset(n=64, resolution=16))
    weights = next(run.glob("checkpoints/step_*/weights.safetensors"))
    tensors = {k: (v.fill_(float("nan")) if v.is_floating_point() and (k.startswith(("G.", "ema.G.")))
                   else v) for k, v in load_file(weights).items()}
    save_file(tensors, weights)
    one_line_error(gf_inproc("eval", run, "--ref", "fashion-mnist", "--n", 20, "--metrics", "fid",
                             "--extractor", "fashion-mnist-cnn"),
                   "generates non-finite values", "20 of 20 samples", "--checkpoint")


def test_eval_user_errors_are_one_line(tmp_path, cli_env, gf_inproc):
    npz = tmp_path / "s.npz"
    np.savez(npz, images=np.zeros((8, 28, 28, 1), np.uint8))
    one_line_error(gf_inproc("eval", npz, "--ref", "fashion-mnist", "--metrics", "fid,kdi"),
                   "unknown metric 'kdi'", "did you mean 'kid'")
    one_line_error(gf_inproc("eval", tmp_path / "missing.npz", "--ref", "fashion-mnist"), "does not exist")
    bad = tmp_path / "bad.npz"
    np.savez(bad, images=np.zeros((8, 28, 28, 1), np.float32))
    one_line_error(gf_inproc("eval", bad, "--ref", "fashion-mnist"), "must be uint8")
    np.savez(bad, pictures=np.zeros((8, 28, 28, 1), np.uint8))
    one_line_error(gf_inproc("eval", bad, "--ref", "fashion-mnist"), "has no 'images' array")
    one_line_error(gf_inproc("eval", npz, "--ref", "fashion-mnist", "--extractor", "fashion-mnist-cnn",
                             "--metrics", "label_accuracy"), "the samples have no labels")
    one_line_error(gf_inproc("eval", npz, "--ref", "fashion-mnist", "--n", "0"), "--n must be positive")
    one_line_error(gf_inproc("eval", npz, "--ref", "fashion-mnist", "--json", tmp_path / "x.txt"), ".json")
    # In a fresh process, as a user meets it: offline, no Inception weights anywhere.
    proc = gf(cli_env, "eval", npz, "--ref", "fashion-mnist", "--extractor", "inception")
    one_line_error(proc, "weights-inception-2015-12-05-6726825d.pth", "--inception-weights PATH")


def test_train_classifier_tiny(tmp_path, gf_inproc):
    out = tmp_path / "w" / "fm.safetensors"
    proc = gf_inproc("train-classifier", "fashion-mnist", "--out", out, "--epochs", 1)
    assert proc.returncode == 0, proc.stderr
    meta = json.loads(out.with_suffix(".json").read_text())
    from ganforge.metrics.classifier import load, sha256_file

    assert meta["sha256"] == sha256_file(out) and meta["recipe"]["epochs"] == 1
    assert 0 <= meta["test_accuracy"] <= 1 and meta["dataset"] == "fashion-mnist"
    model, _ = load(out)
    assert sum(p.numel() for p in model.parameters()) < 250_000
    assert "shipped with ganforge" in proc.stdout  # the packaged weights stay the default
    one_line_error(gf_inproc("train-classifier", "fashion-mnist", "--out", out), "already exists", "--force")


def test_help_stays_light():
    """Registering the commands must not import torch (ganforge --help stays fast)."""
    code = ("import argparse, sys; from ganforge.commands import eval as e; p = argparse.ArgumentParser(); "
            "e.register(p.add_subparsers(), argparse.ArgumentParser); print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.stdout.strip() == "False", proc.stderr
    from ganforge.commands.eval import CLASSIFIER_DATASETS
    from ganforge.metrics import features

    assert CLASSIFIER_DATASETS == features.CLASSIFIER_DATASETS


def test_eval_scores_a_run_at_a_truncation(tmp_path, gf_inproc):
    import torch

    import ganforge
    from conftest import random_dataset, tiny_config
    from ganforge import api
    from ganforge.config import from_dict
    from ganforge.metrics.targets import run_samples
    from ganforge.metrics import to_uint8
    from ganforge.objectives.biggan import BigGAN

    run = tmp_path / "big"
    api.train(from_dict(BigGAN.example_config(tmp_path)), run, progress=False)
    loaded = ganforge.load(run)
    images, labels, target = run_samples(loaded, n=8, seed=1, truncation=0.3)
    direct = to_uint8(loaded.sample(8, seed=1, labels=torch.as_tensor(labels), truncation=0.3))
    assert torch.equal(images, direct) and target["truncation"] == 0.3
    assert not torch.equal(images, run_samples(loaded, n=8, seed=1)[0])

    scores = {}
    for name, extra in (("full", []), ("t03", ["--truncation", 0.3])):
        proc = gf_inproc("eval", run, "--ref", "fashion-mnist", "--n", 20, "--metrics", "fid",
                         "--extractor", "fashion-mnist-cnn", "--json", tmp_path / f"{name}.json", *extra)
        assert proc.returncode == 0, proc.stderr
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())
    assert scores["t03"]["protocol"]["target"]["truncation"] == 0.3
    assert "truncation" not in scores["full"]["protocol"]["target"]
    assert scores["t03"]["metrics"]["fid"] != scores["full"]["metrics"]["fid"]

    # a run without truncation, a samples file, a bad threshold: one line, exit 2, nothing written
    plain = tmp_path / "plain"
    api.train(tiny_config(), plain, progress=False, dataset=random_dataset(n=64, resolution=16))
    npz = tmp_path / "s.npz"
    np.savez(npz, images=np.zeros((8, 28, 28, 1), np.uint8))
    for target, value, needle in ((plain, 0.5, "cannot"), (npz, 0.5, "applies to samples drawn from a run"),
                                  (run, -1, "truncation must be a threshold > 0")):
        one_line_error(gf_inproc("eval", target, "--ref", "fashion-mnist", "--n", 20, "--metrics", "fid",
                                 "--extractor", "fashion-mnist-cnn", "--truncation", value,
                                 "--json", tmp_path / "bad.json"), needle)
        assert not (tmp_path / "bad.json").exists()


def test_the_table_lines_values_up_under_their_header_with_short_names():
    """`--metrics fid` alone had printed its value two columns left of "value"."""
    from types import SimpleNamespace

    from ganforge.commands.eval import format_table

    protocol = {"n_generated": 300, "n_reference": 300, "reference": "fashion-mnist", "split": "test",
                "extractor": "fashion-mnist-cnn", "resize_mode": "none"}
    for values in ({"fid": 204.48}, {"fid": 204.48, "kid_std": 0.5}):
        lines = format_table(SimpleNamespace(protocol=protocol, values=values)).splitlines()
        header = next(line for line in lines if line.startswith("metric"))
        row = next(line for line in lines if line.startswith("fid "))
        assert row.index("204.48") + len("204.48") == header.index("value") + len("value"), (header, row)


def test_the_knn_warning_gives_a_share_that_reads_as_over_one_percent():
    """3 of 250 had been printed "holds 1% of its set (over 1%)"."""
    from ganforge.metrics.evaluation import small_sample_warnings

    said = " ".join(small_sample_warnings({"precision": 0.5, "recall": 0.5}, n_fake=250, n_ref=250, dim=64))
    assert "each k-nearest-neighbour ball holds 1.2% of its set (over 1%)" in said, said


def test_the_report_shows_a_negative_zero_as_zero():
    from ganforge.report.page import _fmt

    assert (_fmt(-0.0), _fmt(0.0), _fmt(-0.5)) == ("0", "0", "-0.5")
