"""``ganforge bench`` after review: gan-vs-diffusion with a conditional preset, a Ctrl-C or a
failed GAN child (no traceback; what is kept and how to rerun), bench augment's Ctrl-C advice,
and what bench truncation says it scores a folder against."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from conftest import run_cli

from ganforge import cli

GVD_TINY = ["--steps", 1, "--seeds", "0", "--n", 20, "--quality-samplers", "ddim3", "--speed-samplers", "ddim3"]


def fake_seed_result(seed: int) -> dict:
    """What gan_vs_diffusion.run_seed returns, without training: the benchmark's bookkeeping alone."""
    from ganforge.bench import gan_vs_diffusion as gvd

    metrics = {k: 0.5 for k in gvd.METRICS}
    return {"seed": seed, "gan": {"train": {"steps": 1}, "metrics": dict(metrics), "images_per_s": 100.0},
            "diffusion": {"train": {"steps": 1}, "metrics": {"ddim3": dict(metrics)},
                          "images_per_s": {"ddim3": 1.0}},
            "grids": {"GAN": torch.zeros(4, 1, 8, 8)}, "protocol": {"extractor": "x", "warnings": []}}


def _cli(capsys, *args):
    """(exit code, stdout, stderr) of the command line run in this process."""
    capsys.readouterr()
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


# ----------------------------------------------------------------------------- 1. conditional presets


def test_gan_vs_diffusion_loads_presets_with_family_sections(tmp_path):
    """A fresh process refused every preset with a family section (cgan's cond, StyleGAN2's style,
    BigGAN's): "unknown config key 'cond': no family has registered its sections yet". A 28x28x1
    preset now loads and the command goes on to its next check (the diffusion widths); a 32x32
    one gets the resolution refusal that dcgan-cifar10 gets in test_diffusion.py."""
    pytest.importorskip("diffusers")
    proc = run_cli("bench", "gan-vs-diffusion", "--preset", "cgan-fashion-mnist", "--diffusion-widths", "30,60",
                   "--out", tmp_path / "x")
    assert proc.returncode == 2 and "multiples of norm_groups" in proc.stderr, proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------- 2. gan-vs-diffusion stops


def _fake_child(monkeypatch, gvd, code: int, output: str, first: BaseException | None = None) -> dict:
    """``ganforge train`` replaced by a child that leaves a run with a checkpoint in its --out and
    ends with ``code`` and ``output`` (after raising ``first`` from its first communicate)."""
    seen: dict = {"signals": []}

    class Child:
        def __init__(self, cmd, **kwargs):
            run_dir = Path(cmd[cmd.index("--out") + 1])
            (run_dir / "checkpoints" / "step_0000001").mkdir(parents=True)
            (run_dir / "config.yaml").write_text("objective: gan\n")
            self.returncode, self.first = None, first

        def communicate(self, timeout=None):
            if self.first is not None:
                exc, self.first = self.first, None
                raise exc
            self.returncode = code
            return output, None

        def send_signal(self, sig):
            seen["signals"].append(sig)

    monkeypatch.setattr(gvd, "subprocess", SimpleNamespace(Popen=Child, PIPE=-1, STDOUT=-2,
                                                           TimeoutExpired=subprocess.TimeoutExpired))
    return seen


@pytest.fixture
def gvd(monkeypatch):
    pytest.importorskip("diffusers")
    from ganforge.bench import gan_vs_diffusion
    from ganforge.commands import bench as cmd

    monkeypatch.setattr(cmd, "_check_scoring", lambda s: None)  # no extractor needed: nothing is scored
    return gan_vs_diffusion


def test_interrupted_gan_vs_diffusion_says_what_is_kept_and_force_replaces_it(gvd, tmp_path, capsys, monkeypatch):
    """A Ctrl-C (the GAN child exits 130) ended in a RuntimeError traceback advising `ganforge train
    --resume`, and the same command was then refused even with --force."""
    out = tmp_path / "gi"
    _fake_child(monkeypatch, gvd, 130, "ganforge: stopped by SIGINT at step 1; checkpoint saved to "
                                       f"{out}/gan-seed0/checkpoints/step_0000001. Continue with: ganforge "
                                       f"train --resume --out {out}/gan-seed0\n")
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", out)
    assert code == 130 and err.count("\n") == 1 and "Traceback" not in err, err
    # --resume is what goes on (README), as with finished seeds; --force had been the only advice
    assert f"{out} keeps only unfinished runs" in err and "rerun the same command with --resume" in err
    assert (out / "gan-seed0" / "config.yaml").is_file()  # kept until --force replaces it

    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", out)
    assert code == 2 and "holds the unfinished runs of an interrupted benchmark; pass --force" in err, err

    def fake_seed(s, seed, out_dir, log):  # the rerun: no training, the benchmark's own bookkeeping
        assert not (out_dir / "gan-seed0").exists()  # the interrupted run was replaced first
        return fake_seed_result(seed)

    monkeypatch.setattr(gvd, "run_seed", fake_seed)
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", out, "--force")
    assert code == 0, err
    assert (out / "gan-vs-diffusion.json").is_file() and (out / "table.md").is_file()
    # a finished benchmark, or a folder with anything else, is never replaced, --force included
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "gan-seed0").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    for folder in (out, tmp_path / "mine"):
        before = sorted(p.name for p in folder.iterdir())
        code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", folder, "--force")
        assert code == 2 and "already exists and is not empty; choose another --out" in err, err
        assert sorted(p.name for p in folder.iterdir()) == before


def test_ctrl_c_in_the_benchmark_stops_the_gan_child_with_a_checkpoint(gvd, tmp_path, capsys, monkeypatch):
    """A Ctrl-C this process got while the GAN child trains: the child is told to stop (SIGTERM:
    after the group's SIGINT not a second Ctrl-C, which stops without a checkpoint) and waited for."""
    seen = _fake_child(monkeypatch, gvd, 143, "ganforge: stopped by SIGTERM at step 1\n", first=KeyboardInterrupt())
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", tmp_path / "g")
    assert code == 130 and err.count("\n") == 1 and "--resume" in err, err
    assert seen["signals"] == [signal.SIGTERM]


def test_failed_gan_child_is_one_error_line_with_its_own_error(gvd, tmp_path, capsys, monkeypatch):
    """train.device=cuda without a GPU: a RuntimeError traceback with the child's line in a list."""
    _fake_child(monkeypatch, gvd, 2, "ganforge: error: train.device=cuda but no CUDA GPU is available; use "
                                     "train.device=cpu\n")
    code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", tmp_path / "g", "train.device=cuda")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert ("ganforge: error: GAN training of seed 0 failed (exit 2): train.device=cuda but no CUDA GPU is "
            "available; use train.device=cpu; fix that, then rerun with --force") in err


def test_the_budgets_own_sigterm_is_not_an_interruption(gvd, tmp_path, monkeypatch):
    """With --minutes the benchmark SIGTERMs the child itself: exit 143 then ends the GAN's training
    normally; a Ctrl-C meanwhile (exit 130) still stops the benchmark."""
    s = gvd.Settings(minutes=0.01)
    for code in (143, 130):
        seen = _fake_child(monkeypatch, gvd, code, "", first=subprocess.TimeoutExpired("train", 1))
        run_dir = tmp_path / f"exit{code}" / "gan-seed0"
        if code == 143:
            assert gvd.train_gan(s, 0, run_dir, log=lambda m: None)["returncode"] == 143
        else:
            with pytest.raises(KeyboardInterrupt):
                gvd.train_gan(s, 0, run_dir, log=lambda m: None)
        assert seen["signals"] == [signal.SIGTERM]


# ----------------------------------------------------------------------------- 3. bench augment Ctrl-C


def _labeled_folder(root: Path, per_class: int = 6) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, name in enumerate(["a", "b", "c"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray((rng.integers(0, 60, (28, 28)) + 90 * k).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


def test_interrupted_bench_augment_says_how_to_continue_and_that_works(tmp_path, capsys, monkeypatch):
    """A Ctrl-C printed only "ganforge: interrupted"; the advice it now gives continues the benchmark,
    keeping the finished GAN run and retraining the one stopped part-way."""
    from ganforge.bench import augment

    real_train = augment.train_seed

    def stopped_at_seed_1(cfg, run_dir, **kwargs):
        if cfg.train.seed == 1:  # stopped part-way: a checkpoint short of train.steps, then the Ctrl-C
            cfg.train.steps = 1
            real_train(cfg, run_dir, **kwargs)
            raise KeyboardInterrupt
        return real_train(cfg, run_dir, **kwargs)

    monkeypatch.setattr(augment, "train_seed", stopped_at_seed_1)
    data, out = _labeled_folder(tmp_path / "data"), tmp_path / "ba"
    base = ["bench", "augment", "--data", f"folder:{data}", "--sizes", "2", "--seeds", "0,1", "--gan-steps", "2",
            "--synthetic", "2", "--clf-steps", "2", "--out", out, "model.g_width=4", "model.d_width=4",
            "model.z_dim=4", "train.batch_size=4", "train.sample_every=2", "train.n_sample_grid=4",
            "monitor.enabled=false"]
    code, _, err = _cli(capsys, *base)
    assert code == 130 and err.count("\n") == 1, err
    assert f"the finished GAN runs in {out} are kept" in err and "--reuse-gans --force" in err
    monkeypatch.setattr(augment, "train_seed", real_train)
    code, _, err = _cli(capsys, *base, "--reuse-gans", "--force")
    assert code == 0, err
    rows = json.loads((out / "augment.json").read_text())["rows"]
    assert [(r["seed"], r["gan_reused"]) for r in rows] == [(0, True), (1, False)]


# ----------------------------------------------------------------------------- 4. bench truncation


def test_bench_truncation_against_a_folder_says_all_not_test(tmp_path, capsys, monkeypatch):
    """`--ref folder:X` printed "against folder:X/test"; a folder has no test split and is scored
    whole (as `ganforge eval` says: folder:X/all)."""
    from ganforge import api
    from ganforge.bench import truncation

    run = SimpleNamespace(require=lambda capability: None, sample=lambda n, truncation: None, step=3,
                          config=SimpleNamespace(data=SimpleNamespace(name="fashion-mnist"), objective="stylegan2"))
    monkeypatch.setattr(api, "load", lambda run_dir, checkpoint=None: run)
    asked = {}

    def fake_benchmark(run, values, **kwargs):
        asked.update(kwargs)
        return {"results": []}

    monkeypatch.setattr(truncation, "run_benchmark", fake_benchmark)
    monkeypatch.setattr(truncation, "plot", lambda result, path: path)
    folder = tmp_path / "real"
    folder.mkdir()
    for ref, said in ((f"folder:{folder}", f"against folder:{folder}/all"),
                      ("fashion-mnist", "against fashion-mnist/test")):
        code, stdout, err = _cli(capsys, "bench", "truncation", tmp_path / "run", "--values", "0.5", "--n", 10,
                                 "--ref", ref, "--json", tmp_path / "t.json", "--force")
        assert code == 0 and said in stdout, stdout + err
        assert asked["ref"] == ref


def test_sigterm_to_the_benchmark_alone_stops_the_gan_child_and_exits_143(gvd, tmp_path, capsys, monkeypatch):
    """timeout or a scheduler SIGTERMs the benchmark process only: it had died at once and left
    its GAN child training on (the budget's clock was the benchmark's). Now SIGTERM goes Ctrl-C's
    way: the child is told to stop and waited for, and the benchmark exits 143 with its one line."""
    from ganforge.signals import Terminated

    seen = _fake_child(monkeypatch, gvd, 143, "ganforge: stopped by SIGTERM at step 1\n", first=Terminated())
    with pytest.raises(Terminated):  # the stop keeps its kind through train_gan
        gvd.train_gan(gvd.Settings(steps=5), 0, tmp_path / "t" / "gan-seed0", log=lambda m: None)
    assert seen["signals"] == [signal.SIGTERM]

    def sigterm_meanwhile(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM was not taken as a stop")

    def guard(signum, frame):  # without the fix, a SIGTERM here would have killed pytest itself
        raise RuntimeError("the benchmark installed no SIGTERM handler")

    monkeypatch.setattr(gvd, "run_benchmark", sigterm_meanwhile)
    previous = signal.signal(signal.SIGTERM, guard)
    try:
        code, _, err = _cli(capsys, "bench", "gan-vs-diffusion", *GVD_TINY, "--out", tmp_path / "g")
        assert signal.getsignal(signal.SIGTERM) is guard  # put back afterwards
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143 and err.startswith("ganforge: interrupted (SIGTERM); ") and err.count("\n") == 1, err


def test_sigterm_to_bench_modes_keeps_finished_seeds_and_exits_143(tmp_path, capsys, monkeypatch):
    """bench modes under a SIGTERM (timeout, a scheduler) had died at once, its --jobs workers
    left training as orphans; now it stops as on Ctrl-C (the pool's workers ended), in one line."""
    from ganforge.bench import modes

    def sigterm_meanwhile(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM was not taken as a stop")

    def guard(signum, frame):
        raise RuntimeError("bench modes installed no SIGTERM handler")

    monkeypatch.setattr(modes, "run_benchmark", sigterm_meanwhile)
    previous = signal.signal(signal.SIGTERM, guard)
    try:
        code, _, err = _cli(capsys, "bench", "modes", "--data", "toy:ring8", "--seeds", "1", "--steps", "4",
                            "--out", tmp_path / "m")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert code == 143 and err.count("\n") == 1, err
    assert err.startswith("ganforge: interrupted (SIGTERM); the 0 finished seed run(s) in "), err


def test_a_stopped_seed_in_a_jobs_pool_is_a_result_the_benchmark_stops_on(monkeypatch):
    """A --jobs worker whose seed a Ctrl-C stopped had let its KeyboardInterrupt out: a traceback
    per worker, and the task's result lost, so a benchmark that did not get the signal itself
    (started in the background, where SIGINT is ignored) waited for it forever. The worker returns
    None, and the benchmark stops on it. (By hand: Ctrl-C to the group with the benchmark ignoring
    SIGINT or not, and SIGTERM to it alone, each ended in one line with both seeds' checkpoints
    saved and no process left.)"""
    from ganforge.bench import modes

    def stopped(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(modes, "run_seed", stopped)
    assert modes._worker(("v", "toy:ring8", 0, None, [], 1)) is None
