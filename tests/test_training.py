import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

import ganforge
from ganforge import api
from ganforge.training.batches import InMemoryBatches
from ganforge.errors import CheckpointError, ConfigError, TrainingInterrupted
from ganforge.training import checkpoint as ckpt

from conftest import ROOT, random_dataset, tiny_config


def _train(cfg, run_dir, **kw):
    return api.train(cfg, run_dir, progress=False, dataset=random_dataset(), **kw)


def test_run_directory_contents(tmp_path):
    run = tmp_path / "run"
    result = _train(tiny_config(), run)
    assert result.step == 6 and result.interrupted is None
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 6
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["how"] == "done"  # how the run ended
    records = records[:-1]
    assert [r["step"] for r in records] == [2, 4, 6]
    for r in records:
        assert {"d_loss", "g_loss", "d_real", "d_fake", "img_per_s", "time"} <= set(r)
        assert 0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1 and r["img_per_s"] > 0
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step_0000003.png",
                                                                   "step_0000006.png"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_0000006"
    # keep_checkpoints=2 keeps both; state.pt loads with weights_only=True
    state = torch.load(run / "checkpoints" / "step_0000006" / "state.pt", weights_only=True)
    assert state["step"] == 6 and state["config"]["train"]["steps"] == 6
    assert set(state["optimizers"]) == {"G", "D"}


def test_logged_losses_match_hand_computation(tmp_path):
    """The logged D loss is -log D(x) - log(1 - D(G(z))) averaged over the interval's steps."""
    cfg = tiny_config(**{"train.steps": 1, "train.log_every": 1, "train.ema_decay": 0.0})
    run = tmp_path / "run"
    objective, dataset = api.build(cfg, random_dataset())
    batches = objective.make_batches(dataset, cfg, torch.device("cpu"))
    trainer = api.Trainer(cfg, objective, batches, run_dir=run, device=torch.device("cpu"),
                          progress=False)
    # Recompute the first D step by hand from the same RNG state and weights.
    G, D = objective.nets["G"], objective.nets["D"]
    rng_state = trainer.noise_rng.get_state()
    real = InMemoryBatches(dataset.images, None, 8, 0, torch.device("cpu")).__next__()["real"]
    z = torch.randn(8, 8, generator=torch.Generator().set_state(rng_state))
    with torch.no_grad():
        d_real, d_fake = D(real), D(G(z))
    expected = (-torch.log(torch.sigmoid(d_real)).mean()
                - torch.log(1 - torch.sigmoid(d_fake)).mean()).item()
    trainer.fit()
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert record["d_loss"] == pytest.approx(expected, rel=1e-5)
    assert record["d_real"] == pytest.approx(torch.sigmoid(d_real).mean().item(), rel=1e-5)


def _all_state(run_dir):
    weights, state = ckpt.load(ckpt.find(run_dir))
    return weights, state


@pytest.mark.parametrize("model", ["dcgan", "mlp"])
def test_resume_is_bit_identical(tmp_path, model):
    """N steps + resume + N steps == 2N steps in one go (CPU)."""
    over = {"model.name": model, "train.checkpoint_every": 100}
    one = tmp_path / "one"
    _train(tiny_config(**over), one)
    two = tmp_path / "two"
    _train(tiny_config(**{**over, "train.steps": 3}), two)
    cfg = api.resume_config(two, ["train.steps=6"])
    _train(cfg, two, resume=True)
    w1, s1 = _all_state(one)
    w2, s2 = _all_state(two)
    assert s1["step"] == s2["step"] == 6
    assert set(w1) == set(w2) and any(k.startswith("ema.G.") for k in w1)
    for key in w1:
        assert torch.equal(w1[key], w2[key]), key
    for name in ("G", "D"):
        for pid, st in s1["optimizers"][name]["state"].items():
            for k, v in st.items():
                assert torch.equal(v, s2["optimizers"][name]["state"][pid][k])
    assert torch.equal(s1["rng"]["noise"], s2["rng"]["noise"])
    assert s1["batches"] == s2["batches"]


def test_existing_run_dir_is_never_overwritten(tmp_path):
    run = tmp_path / "run"
    _train(tiny_config(), run)
    before = (run / "metrics.jsonl").read_text()
    with pytest.raises(ConfigError, match="already exists; pass --resume"):
        _train(tiny_config(), run)
    assert (run / "metrics.jsonl").read_text() == before
    _train(tiny_config(**{"train.steps": 2}), run, force=True)
    assert ckpt.find(run).name == "step_0000002"


def test_checkpoint_survives_partial_write(tmp_path):
    run = tmp_path / "run"
    _train(tiny_config(), run)
    root = run / "checkpoints"
    # A process killed mid-write leaves a temp dir and possibly a stale pointer.
    (root / ".tmp-step_0000009-999").mkdir()
    (root / ".tmp-step_0000009-999" / "weights.safetensors").write_bytes(b"partial")
    (root / "latest").write_text("step_0000009\n")
    assert ckpt.find(run).name == "step_0000006"
    g = ganforge.load(run)
    assert g.step == 6


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    run = tmp_path / "run"
    _train(tiny_config(), run)
    (ckpt.find(run) / "weights.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(CheckpointError, match="corrupt or unreadable"):
        ganforge.load(run)


def test_load_and_sample(tmp_path):
    run = tmp_path / "run"
    _train(tiny_config(), run)
    g = ganforge.load(run)
    a = g.sample(5, seed=1)
    assert a.shape == (5, 1, 16, 16) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, g.sample(5, seed=1))
    assert not torch.equal(a, g.sample(5, seed=2))
    assert not torch.equal(a, g.sample(5, seed=1, ema=False))
    assert g.sample_uint8(3).shape == (3, 16, 16, 1)
    assert g.config.model.name == "dcgan"


def _wait_for(predicate, timeout=120.0):
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _spawn_training(tmp_path, run, steps):
    script = tmp_path / "train.py"
    script.write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT / 'tests')!r})\n"
        "from conftest import random_dataset, tiny_config\n"
        "import ganforge\n"
        "from ganforge import api\n"
        f"cfg = tiny_config(**{{'train.steps': {steps}, 'train.checkpoint_every': 1,"
        " 'model.g_width': 32, 'model.d_width': 32})\n"
        "try:\n"
        "    r = api.train(cfg, sys.argv[1], progress=False, dataset=random_dataset(),"
        " resume=len(sys.argv) > 2)\n"
        "except ganforge.TrainingInterrupted as stop:\n"
        "    r = stop.result\n"
        "print('STOPPED', r.interrupted, r.step, flush=True)\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    args = [sys.executable, str(script), str(run)]
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True), script, env


def test_killed_process_leaves_loadable_checkpoint(tmp_path):
    run = tmp_path / "run"
    proc, _, _ = _spawn_training(tmp_path, run, steps=100_000)
    try:
        assert _wait_for(lambda: len(list((run / "checkpoints").glob("step_*"))) >= 2)
        time.sleep(0.3)  # land somewhere in the middle of further checkpoint writes
        proc.kill()  # SIGKILL: no handler runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    g = ganforge.load(run)
    killed_at = g.step
    assert killed_at >= 1
    # resume continues from that checkpoint
    cfg = api.resume_config(run, [f"train.steps={killed_at + 2}"])
    result = api.train(cfg, run, progress=False, dataset=random_dataset(), resume=True)
    assert result.step == killed_at + 2


def test_sigterm_saves_checkpoint_and_exits(tmp_path):
    run = tmp_path / "run"
    proc, _, _ = _spawn_training(tmp_path, run, steps=100_000)
    try:
        assert _wait_for(lambda: (run / "metrics.jsonl").exists())
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "STOPPED SIGTERM" in out, err
    stopped_at = int(out.split()[-1])
    assert ganforge.load(run).step == stopped_at


def test_tensorboard_events_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    _train(tiny_config(), run)
    acc = EventAccumulator(str(run / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("d_loss")] == [2, 4, 6]
    assert "samples" in acc.Tags()["images"]


def test_in_memory_datasets_use_in_memory_batches(tmp_path, image_folder):
    from ganforge.data import load_dataset
    from ganforge.training.batches import InMemoryBatches, StreamingBatches

    cfg = tiny_config(**{"data.name": f"folder:{image_folder}", "data.channels": 3})
    small = load_dataset(cfg.data.name, resolution=16, channels=3)
    assert isinstance(api.build(cfg, small)[0].make_batches(small, cfg, torch.device("cpu")), InMemoryBatches)
    big = load_dataset(cfg.data.name, resolution=16, channels=3, max_memory_bytes=100)
    streaming = api.build(cfg, big)[0].make_batches(big, cfg, torch.device("cpu"))
    assert isinstance(streaming, StreamingBatches)
    batch = next(streaming)
    assert batch["real"].shape == (8, 3, 16, 16) and batch["labels"].shape == (8,)


def test_best_checkpoint_follows_eval_metric(tmp_path):
    values = iter([5.0, 3.0, 4.0])  # fid at steps 2, 4, 6: best at step 4

    def hook(trainer, step):
        return {"fid": next(values)}

    run = tmp_path / "run"
    cfg = tiny_config(**{"eval.every": 2, "train.keep_checkpoints": 1})
    api.train(cfg, run, progress=False, dataset=random_dataset(), hooks=[hook])
    assert (run / "checkpoints" / "best").read_text().strip() == "step_0000004"
    assert ckpt.find(run, "best").name == "step_0000004"  # kept despite keep_checkpoints=1
    assert ckpt.find(run).name == "step_0000006"
    assert ganforge.load(run, checkpoint="best").step == 4
    fids = [json.loads(l)["fid"] for l in (run / "metrics.jsonl").read_text().splitlines()
            if "fid" in l]
    assert fids == [5.0, 3.0, 4.0]


def test_linear_lr_decay(tmp_path):
    cfg = tiny_config(**{"train.steps": 8, "optim.lr_decay": "linear", "optim.lr_decay_start": 0.5})
    objective, dataset = api.build(cfg, random_dataset())
    trainer = api.Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")),
                          run_dir=None, device=torch.device("cpu"), progress=False)
    lrs = []
    for _ in range(8):
        trainer.train_step()
        lrs.append(trainer.optimizers["D"].param_groups[0]["lr"])
    # lr used at step s (0-based) is 2e-4 * (1 - (s - 4) / 4) after step 4
    assert lrs == pytest.approx([2e-4] * 5 + [1.5e-4, 1e-4, 0.5e-4])


def _bn_buffers(net):
    return {k: v.clone() for k, v in net.state_dict().items() if "running_" in k}


def test_ema_batchnorm_statistics_come_from_the_ema_generator(tmp_path):
    """The checkpointed EMA G's BatchNorm statistics are the plain averages of its own batch
    statistics over train.ema_bn_samples samples (recomputed here by hand), not the live G's."""
    from torch import nn

    run = tmp_path / "run"
    _train(tiny_config(**{"train.ema_bn_samples": 300}), run)
    g = ganforge.load(run)
    ema_g, live_g = g.ema_nets["G"], g.objective.nets["G"]
    saved = _bn_buffers(ema_g)
    assert saved and any(not torch.allclose(v, _bn_buffers(live_g)[k]) for k, v in saved.items())
    # By hand: the same 300 latents (fixed stream, batches of 256 + 44), each BN's batch mean and
    # (unbiased) variance averaged over the batches, as BatchNorm's
    # cumulative average does.
    gen = torch.Generator().manual_seed(g.config.train.seed + 7919)
    zs = [torch.randn(k, g.config.model.z_dim, generator=gen) for k in (256, 44)]
    bns = [m for m in ema_g.modules() if isinstance(m, nn.BatchNorm2d)]
    sums = {id(m): [0, 0] for m in bns}

    def record(m, inputs, _out):
        x = inputs[0].float()
        sums[id(m)][0] += x.mean((0, 2, 3))
        sums[id(m)][1] += x.var((0, 2, 3), unbiased=True)

    hooks = [m.register_forward_hook(record) for m in bns]
    ema_g.train()
    with torch.no_grad():
        for z in zs:
            ema_g(z)
    for h in hooks:
        h.remove()
    for i, m in enumerate(bns):
        mean, var = (s / len(zs) for s in sums[id(m)])  # momentum None: average over batches
        prefix = [k for k, mod in ema_g.named_modules() if mod is m][0]
        assert torch.allclose(saved[f"{prefix}.running_mean"], mean, atol=1e-5), i
        assert torch.allclose(saved[f"{prefix}.running_var"], var, atol=1e-5), i
    # Off: the EMA keeps the live G's statistics, as before.
    _train(tiny_config(**{"train.ema_bn_samples": 0}), tmp_path / "off")
    off = ganforge.load(tmp_path / "off")
    live = _bn_buffers(off.objective.nets["G"])
    assert all(torch.equal(v, live[k]) for k, v in _bn_buffers(off.ema_nets["G"]).items())
    with pytest.raises(ConfigError, match="train.ema_bn_samples must be >= 0"):
        _train(tiny_config(**{"train.ema_bn_samples": -1}), tmp_path / "bad")


@pytest.mark.parametrize("native, expect", [(True, "bf16"), (False, "fp32")])
def test_precision_auto_follows_native_bf16(tmp_path, monkeypatch, capsys, native, expect):
    """train.precision=auto runs bf16 only where bf16 kernels are native; the choice is printed
    and the trainer's autocast follows it."""
    from ganforge.training import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: native)
    cfg = tiny_config(**{"train.steps": 1, "train.precision": "auto"})
    objective, dataset = api.build(cfg, random_dataset())
    trainer = api.Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")),
                          run_dir=tmp_path / "run", device=torch.device("cpu"), progress=False)
    assert trainer.precision == expect
    assert f"train.precision=auto -> {expect}" in capsys.readouterr().out
    with trainer.autocast():
        y = torch.nn.functional.linear(torch.randn(2, 3), torch.randn(4, 3))
    assert y.dtype == (torch.bfloat16 if native else torch.float32)


def test_emulated_bf16_is_kept_with_a_warning(monkeypatch):
    from ganforge.training import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    chosen, note = precision.resolve_precision("bf16", torch.device("cpu"))
    assert chosen == "bf16" and "use train.precision=auto or fp32" in note
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    assert precision.resolve_precision("bf16", torch.device("cpu")) == ("bf16", None)
    assert precision.resolve_precision("fp32", torch.device("cpu")) == ("fp32", None)


def test_native_bf16_reads_the_cpu_features(monkeypatch):
    from ganforge.training.precision import native_bf16

    for avx512_bf16, amx in [(False, False), (True, False), (False, True)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v, raising=False)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v, raising=False)
        assert native_bf16(torch.device("cpu")) == (avx512_bf16 or amx)
    assert native_bf16(torch.device("meta")) is False
    asked = []  # a GPU that only emulates bf16 (before Ampere) does not count
    monkeypatch.setattr(torch.cuda, "is_bf16_supported",
                        lambda including_emulation=True: asked.append(including_emulation) or including_emulation)
    assert native_bf16(torch.device("cuda")) is False and asked == [False]


def test_a_stop_signal_logs_the_interrupted_interval(tmp_path, monkeypatch):
    """Ctrl-C or SIGTERM at step 5 of a 4-step log interval: the statistics of step 5 and its
    time were dropped (the resumed run's step-8 record averaged steps 6-8 only)."""
    from ganforge.training.trainer import Trainer

    step = Trainer.train_step

    def stop_after_5(self):
        step(self)
        if self.step == 5:
            self._stop_signal = "SIGINT"

    monkeypatch.setattr(Trainer, "train_step", stop_after_5)
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as stop:
        _train(tiny_config(**{"train.steps": 8, "train.log_every": 4}), run)
    result = stop.value.result
    assert result.interrupted == "SIGINT" and result.step == 5
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "end" and records[-1]["how"] == "interrupted"  # how the run ended
    records = records[:-1]
    assert [r["step"] for r in records] == [4, 5] and records[1]["time"] > records[0]["time"]
    state = torch.load(run / "checkpoints" / "step_0000005" / "state.pt", weights_only=True)
    assert state["elapsed"] == pytest.approx(records[1]["time"], abs=1e-3)


def test_a_stop_signal_does_not_judge_the_partial_interval(tmp_path, monkeypatch):
    """The interrupted interval is logged, not judged: judging it rolled a Ctrl-C'd run back
    (using up a rollback) or ended it in a divergence error."""
    from ganforge.training.monitor import Monitor
    from ganforge.training.trainer import Trainer

    step = Trainer.train_step

    def stop_after_5(self):
        step(self)
        if self.step == 5:
            self._stop_signal = "SIGINT"

    judged = []
    update = Monitor.update
    monkeypatch.setattr(Trainer, "train_step", stop_after_5)
    monkeypatch.setattr(Monitor, "update", lambda self, r: judged.append(r["step"]) or update(self, r))
    run = tmp_path / "run"
    with pytest.raises(TrainingInterrupted) as stop:
        _train(tiny_config(**{"train.steps": 8, "train.log_every": 4}), run)
    result = stop.value.result
    assert result.interrupted == "SIGINT" and result.step == 5 and judged == [4]


def test_resume_keeps_the_events_its_checkpoint_carries(tmp_path):
    """A rollback's events are logged with the step it rolled back from, after the checkpoint it
    went back to; a resume from a later checkpoint (which carries the halved rates) kept cutting
    them by step number. The cut is now where the checkpoint was written."""
    from ganforge.training.logger import MetricsLogger

    log = MetricsLogger(tmp_path, enabled=True)
    for s in (2, 4):
        log.write({"step": s, "d_loss": 1.0, "time": s})
    log.write({"event": "divergence", "step": 6, "message": "x"})
    log.write({"event": "rollback", "step": 6, "evidence": {"to_step": 4}})
    log.write({"step": 5, "d_loss": 1.0, "time": 5})
    size = log.size()  # the checkpoint at step 5
    log.write({"step": 6, "d_loss": 1.0, "time": 6})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "d_lo')
    assert log.truncate_to(size, 5) == 2
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r.get("event"), r["step"]) for r in lines] == [
        (None, 2), (None, 4), ("divergence", 6), ("rollback", 6), (None, 5)]
    # an older checkpoint without the size: training records after its step go, events stay
    log.write({"step": 6, "d_loss": 1.0, "time": 6})
    assert log.truncate_to(None, 4) == 2 and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 4


def test_a_resume_with_another_eval_best_starts_a_new_best(tmp_path):
    """Resumed with eval.best changed from precision to fid, the old (precision) score had kept
    'best' on the precision-best checkpoint for good: no fid ever beat it."""
    values = {2: (300.0, 0.9), 4: (350.0, 0.5), 6: (320.0, 0.4), 8: (250.0, 0.3)}

    def hook(trainer, step):
        fid, precision = values[step]
        return {"fid": fid, "precision": precision}

    run = tmp_path / "run"
    cfg = tiny_config(**{"eval.every": 2, "eval.best": "precision", "train.steps": 4})
    api.train(cfg, run, progress=False, dataset=random_dataset(), hooks=[hook])
    assert ckpt.find(run, "best").name == "step_0000002"
    resumed = api.resume_config(run, ["train.steps=8", "eval.best=fid"])
    api.train(resumed, run, resume=True, progress=False, dataset=random_dataset(), hooks=[hook])
    assert ckpt.find(run, "best").name == "step_0000008"  # fid 250, the lowest after the change


def test_the_best_checkpoint_holds_what_was_scored_without_ema(tmp_path):
    """Without EMA the grid is drawn by the live G in train mode, which moves its BatchNorm
    statistics; drawn after the evaluation, the step's regular checkpoint then overwrote 'best'
    with statistics other than those scored (a logged FID of 415.34 evaluated as 416.07)."""
    scored = {}

    def hook(trainer, step):
        scored[step] = {k: v.clone() for k, v in trainer.objective.nets["G"].state_dict().items()
                        if "running" in k}
        return {"fid": 100.0 - step}

    run = tmp_path / "run"
    cfg = tiny_config(**{"eval.every": 2, "train.sample_every": 2, "train.checkpoint_every": 2,
                         "train.steps": 4, "train.ema_decay": 0.0})
    api.train(cfg, run, progress=False, dataset=random_dataset(), hooks=[hook])
    weights, _ = ckpt.load(ckpt.find(run, "best"))
    assert scored[4] and all(torch.equal(weights[f"G.{k}"], v) for k, v in scored[4].items())


def test_a_truncated_state_file_is_named_in_whole_words(tmp_path):
    """torch's damaged-zip message had been cut at 120 characters, mid-word ("... If yo")."""
    run = tmp_path / "run"
    _train(tiny_config(), run)
    state = ckpt.find(run) / "state.pt"
    state.write_bytes(state.read_bytes()[:-500])
    with pytest.raises(CheckpointError) as info:
        ganforge.load(run)
    reason = str(info.value).split("corrupt or unreadable (", 1)[1].split("); delete", 1)[0]
    assert reason and len(reason) <= 120, reason
    assert "If yo" not in reason and ". " not in reason, reason  # one sentence, no fragment of a second
