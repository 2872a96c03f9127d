"""Data-parallel training (ganforge.training.distributed) with 2 CPU processes over gloo: the same
weights as one process, lazy R1 gradients under DDP, resume across world sizes with rank 1
writing nothing, evaluation during training shared by the ranks, and a killed rank stopping the
other with one line."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from ganforge import api, config
from ganforge.errors import ConfigError
from ganforge.objectives import family
from ganforge.objectives.unconditional import UnconditionalGAN, write_image_folder as write_images
from ganforge.training import checkpoint as ckpt
from ganforge.training import distributed
from ganforge.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
WORKER_ENV = {**os.environ, "OMP_NUM_THREADS": "1",
              "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _raw(workdir: Path, **train) -> dict:
    """A tiny unconditional MLP run (no batch statistics anywhere) on 32 8x8 grey images."""
    folder = write_images(workdir / "images", n=32, size=8, channels=1)
    return {"objective": "unconditional",
            "data": {"name": f"folder:{folder}", "resolution": 8, "channels": 1},
            "model": {"name": "mlp", "z_dim": 4, "g_width": 8, "d_width": 8},
            "train": {"steps": 5, "batch_size": 16, "log_every": 5, "sample_every": 1000,
                      "checkpoint_every": 1000, "n_sample_grid": 4, "device": "cpu", "seed": 3,
                      **train},
            "monitor": {"probe_size": 4}}


class ImageLatents(UnconditionalGAN):
    """Latents that are a fixed function of the real images of the batch: any split of a global
    batch between ranks then sees the same (image, latent) pairs as one process."""

    _real = None

    def loss(self, phase, batch):
        self._real = batch["real"]
        try:
            return super().loss(phase, batch)
        finally:
            self._real = None

    def _z(self, n, generator):
        if self._real is None:
            return super()._z(n, generator)
        return self._real.flatten(1)[:, 20:20 + self.z_dim] * 2.0


def _trainer(cfg, objective_cls=ImageLatents) -> Trainer:
    dataset = family(cfg).load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    objective = objective_cls(cfg, family(cfg).data_info(cfg, dataset))
    batches = objective.make_batches(dataset, cfg, torch.device("cpu"))
    return Trainer(cfg, objective, batches, run_dir=None, device=torch.device("cpu"), progress=False)


def _marked(rank: int, fn, marker: str, port: int, *args) -> None:
    """``fn`` of one rank, then a marker file saying it returned (after leaving the group)."""
    fn(rank, port, *args)
    Path(f"{marker}.{rank}").touch()


class RankFailed(AssertionError):
    pass


def _spawn(fn, *args, timeout: float = 600.0) -> None:
    """Two ranks of ``fn``. A rank that returned and then died of SIGABRT while its interpreter
    exited ("terminate called without an active exception": gloo's threads at teardown, seen twice
    in CI; the cause, the group's threads outliving it, is fixed in distributed.shutdown and
    tested below, and this stays as a guard that warns) has done its work, which the test then checks; a rank
    that failed before returning fails the test, and the other rank is stopped (it may wait in a
    collective). mp.spawn's own join stopped the other rank at the first exit of any kind, even
    a tolerated one of a rank that finished first."""
    import multiprocessing.connection

    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        marker = str(Path(tmp) / "done")
        ctx = mp.spawn(_marked, args=(fn, marker, port, *args), nprocs=2, join=False)
        procs = dict(enumerate(ctx.processes))
        deadline = time.monotonic() + timeout
        tolerated = []
        try:
            while procs:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RankFailed(f"ranks {sorted(procs)} still running after {timeout:g} s")
                ready = multiprocessing.connection.wait([p.sentinel for p in procs.values()], timeout=left)
                for rank, proc in list(procs.items()):
                    if proc.sentinel not in ready:
                        continue
                    proc.join()
                    del procs[rank]
                    code, done = proc.exitcode, Path(f"{marker}.{rank}").exists()
                    if code == 0:
                        continue
                    if code == -signal.SIGABRT and done:
                        tolerated.append(rank)
                        continue
                    raise RankFailed(f"rank {rank} exited with {code} before returning")
        finally:
            for proc in procs.values():
                proc.terminate()
                proc.join(20)
    for rank in tolerated:
        warnings.warn(f"rank {rank} aborted at exit after its work was done (SIGABRT)", stacklevel=2)


def _leave() -> None:
    """Every rank at the barrier, then the group destroyed: no rank tears down while another is
    still in a collective."""
    distributed.barrier(distributed.current_world())
    distributed.shutdown()


def _env(rank: int, port: int) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE="2", LOCAL_RANK=str(rank))


def _join(rank: int, port: int) -> None:
    _env(rank, port)
    distributed.init(torch.device("cpu"))


def _fit_worker(rank: int, port: int, raw: dict, out: str) -> None:
    _join(rank, port)
    trainer = _trainer(config.from_dict(raw))
    trainer.fit()
    if rank == 0:
        torch.save(trainer.weights(), out)
    else:
        torch.save(trainer.weights(), out + ".rank1")
    _leave()


def test_two_ranks_end_with_the_weights_of_one_process(tmp_path):
    raw = _raw(tmp_path)
    _spawn(_fit_worker, raw, str(tmp_path / "ddp.pt"))
    ddp = torch.load(tmp_path / "ddp.pt")
    rank1 = torch.load(str(tmp_path / "ddp.pt") + ".rank1")
    torch.set_num_threads(1)
    single = _trainer(config.from_dict(raw))
    single.fit()
    one = single.weights()
    assert set(ddp) == set(one) and any(k.startswith("ema.") for k in one)
    start = _trainer(config.from_dict(raw)).weights()
    moved = max(float((one[k] - start[k]).abs().max()) for k in one)
    assert moved > 1e-3  # 5 steps really changed the weights
    for key in one:
        assert torch.equal(ddp[key], rank1[key]), key  # every rank holds the same weights and EMA
        torch.testing.assert_close(ddp[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


def _r1_worker(rank: int, port: int, raw: dict, out: str) -> None:
    _join(rank, port)
    trainer = _trainer(config.from_dict(raw), UnconditionalGAN)
    real = torch.linspace(-1, 1, 8 * 64).reshape(8, 1, 8, 8).sin()  # the same global batch everywhere
    share = real[rank * 4:(rank + 1) * 4]
    owned = trainer.objective.optimizers["D"].nets
    for name, net in trainer.objective.nets.items():
        net.requires_grad_(name in owned)
    with trainer.dp.phase(owned, sync=True):
        out_ = trainer.objective.loss("Dreg", {"real": share, "labels": None})
        trainer.dp.backward(out_["loss"], owned, sync=True)
    grads = {n: (None if p.grad is None else p.grad.clone())
             for n, p in trainer.objective.nets["D"].named_parameters()}
    torch.save(grads, f"{out}.{rank}")
    _leave()


def test_lazy_r1_under_ddp_gives_the_gradients_of_one_process(tmp_path):
    raw = _raw(tmp_path, batch_size=8)
    raw["reg"] = {"r1": 2.0, "r_interval": 4}
    _spawn(_r1_worker, raw, str(tmp_path / "g.pt"))
    trainer = _trainer(config.from_dict(raw), UnconditionalGAN)
    assert [p.name for p in trainer.objective.phases] == ["D", "Dreg", "G"]
    real = torch.linspace(-1, 1, 8 * 64).reshape(8, 1, 8, 8).sin()
    trainer.objective.nets["G"].requires_grad_(False)
    trainer.objective.loss("Dreg", {"real": real, "labels": None})["loss"].backward()
    want = {n: p.grad for n, p in trainer.objective.nets["D"].named_parameters()}
    assert any(g is None for g in want.values())  # R1 does not reach D's last bias
    assert sum(g is not None and float(g.abs().sum()) > 0 for g in want.values()) >= 2
    for rank in (0, 1):
        got = torch.load(f"{tmp_path / 'g.pt'}.{rank}")
        for name, g in want.items():
            if g is None:
                assert got[name] is None, name  # the optimizer skips it, as in one process
            else:
                torch.testing.assert_close(got[name], g, rtol=1e-5, atol=1e-7, msg=name)


def _torchrun(*args: str, env: dict | None = None, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(REPO / "tests" / "ddp_cli.py"), *args]
    return subprocess.Popen(cmd, env={**WORKER_ENV, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def _run2(*args: str, env: dict | None = None) -> str:
    proc = _torchrun(*args, env=env)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert "RANK1 WROTE NOTHING" in out, out
    return out


def _steps(run_dir: Path) -> list[int]:
    return [int(name[5:]) for name in sorted(p.name for p in (run_dir / "checkpoints").glob("step_*"))]


def test_resume_across_world_sizes_and_rank1_writes_nothing(tmp_path, capsys):
    """1 process for 4 steps, resumed on 2 ranks to step 6 (the CLI under torchrun), resumed on
    1 process again to step 8: each continues where the other stopped."""
    raw = _raw(tmp_path, steps=4, batch_size=8, checkpoint_every=2, log_every=2, sample_every=2)
    run = tmp_path / "run"
    api.train(config.from_dict(raw), run, progress=False)
    assert _steps(run)[-1] == 4
    out = _run2("train", "--resume", "--out", str(run), "train.steps=6", "--quiet")
    assert _steps(run)[-1] == 6
    assert out.count("the checkpoint was written by a run on 1 process, this one has 2") == 1, out
    capsys.readouterr()
    result = api.train(api.resume_config(run, ["train.steps=8"]), run, resume=True, progress=False)
    assert result.step == 8 and _steps(run)[-1] == 8
    assert "the checkpoint was written by a run on 2 processes, this one has 1" in capsys.readouterr().out
    records = [yaml.safe_load(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "d_loss" in r] == [2, 4, 6, 8]  # written once, by rank 0
    weights, state = ckpt.load(ckpt.find(run))
    assert state["step"] == 8 and state["batches"] == {"epoch": 1, "pos": 4}  # 8 global batches of 8 from 32
    assert all(torch.isfinite(w).all() for w in weights.values())


def _eval_worker(rank: int, port: int, raw: dict, run: str, env: dict) -> None:
    from ddp_audit import record_writes

    os.environ.update(env)
    _join(rank, port)
    writes = record_writes(run) if rank == 1 else []
    api.train(config.from_dict(raw), Path(run), progress=False)  # the hooks api.train builds on each rank
    _leave()
    if rank == 1:
        Path(run).with_name("rank1-writes.txt").write_text("\n".join(writes))


def test_eval_during_training_is_shared_by_the_ranks(tmp_path, monkeypatch):
    """eval.every under 2 ranks: they sample and extract 200 and 50 of 250 samples, rank 0
    scores the gathered features; the metrics equal one process's evaluation of the checkpoint's
    EMA G on the same block-seeded latents and carry the keys one process logs; rank 1 writes
    nothing in the run directory."""
    from test_metrics_eval import write_fake_fashion_mnist

    from ganforge.metrics import evaluate
    from ganforge.metrics.hook import HOOK_SEED, sample_blocks

    data = write_fake_fashion_mnist(tmp_path / "fashion-mnist")
    env = {"GANFORGE_DATA": str(data), "GANFORGE_CACHE": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    raw = {"data": {"name": "fashion-mnist", "resolution": 16, "channels": 1},
           "model": {"name": "dcgan", "z_dim": 8, "g_width": 8, "d_width": 8},  # BatchNorm in G
           "train": {"steps": 2, "batch_size": 8, "log_every": 2, "sample_every": 1000, "checkpoint_every": 2,
                     "n_sample_grid": 4, "device": "cpu", "seed": 0},
           "eval": {"every": 2, "n": 250}}
    run = tmp_path / "run"
    _spawn(_eval_worker, raw, str(run), env)
    assert (tmp_path / "rank1-writes.txt").read_text() == ""
    records = [yaml.safe_load(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    shared = [r for r in records if "fid" in r]
    assert [r["step"] for r in shared] == [2]  # logged once, by rank 0

    loaded = api.load(run)
    assert loaded.step == 2
    images = sample_blocks(loaded.objective, loaded.ema_nets, 250, seed=HOOK_SEED)
    want = evaluate(images, ref="fashion-mnist", split="train", metrics=["fid", "kid"], n_ref=250,
                    extractor="fashion-mnist-cnn")
    assert want.values["fid"] > 1.0
    for key in ("fid", "kid", "kid_std"):
        assert shared[0][key] == pytest.approx(want.values[key], rel=1e-4, abs=1e-6), key

    api.train(config.from_dict(raw), tmp_path / "one", progress=False)
    one = [yaml.safe_load(line) for line in (tmp_path / "one" / "metrics.jsonl").read_text().splitlines()]
    assert [set(r) for r in one if "fid" in r] == [set(shared[0])] == [{"step", "fid", "kid", "kid_std", "protocol"}]
    assert shared[0]["protocol"]["split"] == "train" and shared[0]["protocol"]["n"] == 250


def test_a_killed_rank_stops_the_other_with_one_line(tmp_path):
    raw = _raw(tmp_path, steps=100000, batch_size=8, checkpoint_every=2, log_every=2)
    path = tmp_path / "long.yaml"
    path.write_text(yaml.safe_dump(raw))
    run_dir = tmp_path / "run"
    proc = _torchrun("train", str(path), "--out", str(run_dir), "--quiet")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    deadline = time.time() + 90

    def ready() -> bool:  # two checkpoints written, and rank 1's PID line read from the pipe
        steps = len(_steps(run_dir)) if (run_dir / "checkpoints").is_dir() else 0
        return steps >= 2 and re.search(r"RANK 1 PID (\d+)", "".join(lines)) is not None

    while time.time() < deadline and not ready():
        time.sleep(0.2)
    assert ready(), "".join(lines)
    pid = int(re.search(r"RANK 1 PID (\d+)", "".join(lines))[1])
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=90)
    reader.join(timeout=10)
    out = "".join(lines)
    assert proc.returncode != 0, out
    errors = [line for line in lines if line.startswith("ganforge: error:")]
    assert len(errors) == 1, out
    assert "rank 0 stops at step" in errors[0] and f"rank 1 (pid {pid}) was killed" in errors[0], out
    assert "continue with: ganforge train --resume" in errors[0]
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))  # no half-written checkpoint
    run = api.load(run_dir)  # the last checkpoint loads
    assert run.step >= 2 and run.step % 2 == 0


def test_a_global_batch_that_does_not_divide_is_one_line():
    with pytest.raises(ConfigError, match=r"train.batch_size=9 \(the global batch\) does not "
                                                 r"divide among 2 processes; use a multiple of 2"):
        distributed.local_batch(9, distributed.World(rank=0, size=2))
    assert distributed.local_batch(8, distributed.World(rank=1, size=2)) == 4
    assert not dist.is_initialized()


def test_pacgan_needs_each_ranks_share_to_pack():
    world = distributed.World(rank=0, size=2)
    assert distributed.local_batch(8, world, pac=4) == 4
    with pytest.raises(ConfigError, match=r"train.batch_size=12 gives each of 2 processes 6 images, "
                                          r"which model.pac=4 cannot pack; use a multiple of 8"):
        distributed.local_batch(12, world, pac=4)  # 12 is a multiple of 4, but 6 per rank is not


def _gather_worker(rank: int, port: int, out: str) -> None:
    import numpy as np

    _join(rank, port)
    world = distributed.current_world()
    results = {}
    # rank 1 with no eval block (eval.n=100 on 2 ranks): None, or an empty array of width 0
    for case, share in (("none", None), ("empty", np.zeros((0, 0), np.float32))):
        rows = np.arange(12, dtype=np.float32).reshape(3, 4) if rank == 0 else share
        results[case] = distributed.gather_rows(rows, world)
    # rank 0 empty, rank 1 with rows
    results["first_empty"] = distributed.gather_rows(None if rank == 0 else np.ones((2, 4)), world)
    try:
        distributed.same_on_all_ranks(f"step_000000{rank}", world, "the checkpoint to resume from")
        results["differ"] = "no error"
    except Exception as exc:  # noqa: BLE001 - recorded for the test
        results["differ"] = f"{type(exc).__name__}: {exc}"
    distributed.same_on_all_ranks("step_0000002", world, "the checkpoint to resume from")
    torch.save(results, f"{out}.{rank}")
    _leave()


def test_gathered_rows_with_an_empty_share_and_ranks_that_disagree(tmp_path):
    """A rank with no rows (eval.n=100 on 2 ranks leaves rank 1 without a block) sends padding only:
    rank 0 gets the other ranks' rows; ranks that would resume from different checkpoints (a stale
    copy of the run directory) all stop with one line naming each rank's."""
    import numpy as np

    _spawn(_gather_worker, str(tmp_path / "g"))
    zero, one = (torch.load(f"{tmp_path / 'g'}.{r}", weights_only=False) for r in (0, 1))
    want = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert np.array_equal(zero["none"], want) and np.array_equal(zero["empty"], want)
    assert np.array_equal(zero["first_empty"], np.ones((2, 4), np.float32))
    assert one["none"] is None and one["first_empty"] is None
    for got in (zero, one):
        assert got["differ"] == ("DistributedError: the ranks disagree on the checkpoint to resume from "
                                 "(rank 0: step_0000000, rank 1: step_0000001); the run directory must be one "
                                 "copy on a file system every node sees")


def test_world_size_without_a_rendezvous_address_is_one_line(monkeypatch):
    from ganforge.errors import DistributedError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.delenv("MASTER_PORT", raising=False)
    with pytest.raises(DistributedError, match=r"WORLD_SIZE=2 asks for 2 processes, but MASTER_ADDR and "
                                               r"MASTER_PORT are not set; launch with torchrun"):
        distributed.init(torch.device("cpu"))
    assert not dist.is_initialized()


@pytest.mark.parametrize("preset", ["dcgan-fashion-mnist", "lsgan-fashion-mnist", "acgan-fashion-mnist"])
def test_channels_last_weights_have_the_layout_of_their_gradients(preset, tmp_path):
    """DDP's gradient bucket is laid out as the weight, and warned "Grad strides do not match
    bucket view strides" on every rank when a gradient came out in the other layout: backward
    makes a contiguous gradient for a Conv2d weight of one input channel (kept contiguous now)
    and a channels_last one for a transposed convolution's [in, 1, k, k] weight."""
    from conftest import random_dataset

    cfg = config.load_config(preset, ["train.channels_last=true", "train.precision=fp32", "train.batch_size=8",
                                      "monitor.enabled=false"])[1]
    dataset = random_dataset(n=16, resolution=cfg.data.resolution, labels=True)
    dataset.class_names = [f"c{i}" for i in range(2)]
    fam = family(cfg)
    objective = fam(cfg, fam.data_info(cfg, dataset))
    trainer = Trainer(cfg, objective, objective.make_batches(dataset, cfg, torch.device("cpu")), run_dir=None,
                      device=torch.device("cpu"), progress=False)
    batch = next(trainer.batches)
    for phase in ("D", "G"):
        objective.loss(phase, batch)["loss"].backward()
    checked = 0
    for name, net in objective.nets.items():
        for key, p in net.named_parameters():
            if p.dim() == 4 and p.grad is not None:
                assert p.grad.stride() == p.stride(), (name, key, p.shape, p.grad.stride(), p.stride())
                checked += 1
    grey = [p for net in objective.nets.values() for p in net.parameters() if p.dim() == 4 and 1 in p.shape[:2]]
    assert checked >= 4 and grey


def test_a_rank_left_waiting_for_the_others_to_join_says_so():
    """A rank that failed before joining (its node lacks the run directory) leaves the others in
    init_process_group for up to 30 minutes: they say what they wait for instead of hanging mute."""
    code = ("import torch; from ganforge.training import distributed as d; d.JOIN_NOTE_S = 0.5; "
            "d.init(torch.device('cpu'))")
    env = {**WORKER_ENV, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port())}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(60, proc.kill)  # no note: readline returns "" once it is killed
    guard.start()
    try:
        line = proc.stderr.readline()
    finally:
        guard.cancel()
        proc.kill()
        proc.wait()
    assert line.startswith("ganforge: rank 0 still waits for all 2 processes to join at 127.0.0.1:"), line
    assert "gives up after 30 min" in line and "same command" in line


def _setup_failure_worker(rank: int, port: int, raw: dict, run: str, out: str) -> None:
    # api.train joins and leaves the process group itself, as under torchrun. Joined here, the
    # group was never destroyed, and CI once saw rank 1 abort as it exited ("terminate called
    # without an active exception", SIGABRT; not reproduced in 26 local runs)
    _env(rank, port)
    if rank == 1:  # this node lacks the data
        raw = {**raw, "data": {**raw["data"], "name": f"folder:{run}-missing"}}
    try:
        api.train(config.from_dict(raw), Path(run), progress=False)
        result = "trained"
    except Exception as exc:  # noqa: BLE001 - recorded for the test
        result = f"{type(exc).__name__}: {exc}"
    Path(f"{out}.{rank}").write_text(result)


def test_a_rank_that_fails_while_setting_up_stops_the_others_with_one_line(tmp_path):
    """Rank 1 cannot read its data; rank 0, waiting for it at the barrier after claiming the run
    directory, had died with gloo's 'Connection closed by peer' traceback."""
    _spawn(_setup_failure_worker, _raw(tmp_path), str(tmp_path / "run"), str(tmp_path / "out"))
    one = (tmp_path / "out.1").read_text()
    zero = (tmp_path / "out.0").read_text()
    assert one.startswith("DataError: ") and "run-missing" in one, one
    assert zero.startswith("DistributedError: rank 0 stops before training: rank 1 failed: "), zero
    assert "run-missing" in zero and zero.endswith("fix that rank's error and start again"), zero


def _threads_worker(rank: int, port: int, raw: dict, run: str, out: str) -> None:
    _env(rank, port)
    before = len(os.listdir("/proc/self/task"))
    api.train(config.from_dict(raw), Path(run), progress=False)
    Path(f"{out}.{rank}").write_text(f"{before} {len(os.listdir('/proc/self/task'))}")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads in /proc")
def test_a_finished_run_ends_the_process_groups_threads(tmp_path):
    """gloo's worker threads had outlived api.train (DDP wrappers in reference cycles kept the
    destroyed group alive) and, freeing a collective's tensors while the interpreter exited,
    aborted the process (SIGABRT) after a completed torchrun run in about 1 of 10 runs."""
    _spawn(_threads_worker, _raw(tmp_path), str(tmp_path / "run"), str(tmp_path / "out"))
    for rank in (0, 1):
        before, after = map(int, (tmp_path / f"out.{rank}").read_text().split())
        assert after == before, f"rank {rank}: {before} threads before training, {after} after"


def _abort_worker(rank: int, port: int, when: str, out: str) -> None:
    import atexit

    if rank == 1 and when == "during":
        os.abort()
    if rank == 0:
        time.sleep(2)  # rank 1 dies first: rank 0 must still finish (CI's race)
    Path(f"{out}.{rank}").write_text("done")
    if rank == 1 and when == "at-exit":
        atexit.register(os.abort)  # as gloo's threads did while the interpreter exited


def test_the_harness_tolerates_an_abort_at_exit_only_after_the_work_is_done(tmp_path):
    with pytest.warns(UserWarning, match="rank 1 aborted at exit after its work was done"):
        _spawn(_abort_worker, "at-exit", str(tmp_path / "a"))
    assert (tmp_path / "a.0").read_text() == (tmp_path / "a.1").read_text() == "done"
    with pytest.raises(RankFailed, match=f"rank 1 exited with -{int(signal.SIGABRT)} before returning"):
        _spawn(_abort_worker, "during", str(tmp_path / "b"))
