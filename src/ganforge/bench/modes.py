"""Mode-collapse benchmark on the 2-D toy mixtures, following the protocol of PacGAN (Lin,
Khetan, Fanti & Oh 2018, sec. 5.1; itself from VEEGAN, Srivastava et al. 2017):

- draw 2,500 samples from the trained generator (its EMA copy when the run keeps one);
- a sample is *high quality* when it lies within 3 sigma (Euclidean) of its nearest mode centre;
- a mode is *captured* when at least one high-quality sample falls in it;
- the *reverse KL* is KL(q || p) between q, the histogram of the generated samples over the
  modes (each sample assigned to its nearest mode), and p, the true mode weights (uniform), so
  a generator that covers every mode evenly scores 0 and one stuck on a single mode of M scores
  log M. (PacGAN compares with the histogram of real samples; the true weights are what that
  histogram estimates, without its sampling noise.)

Every seed trains a full run through ``ganforge.api.train`` into ``OUT/<label>/seed_<s>`` and is
evaluated from the run directory alone (``ganforge.load``), so the benchmark measures exactly
what a user gets. A seed's numbers are written next to its run (``seed_<s>/bench_result.json``)
as soon as it finishes, so an interrupted benchmark keeps them: ``reuse_runs`` (``--reuse-runs``)
takes a finished seed whose config is the same instead of training it again.
"""
from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_path, atomic_write_json
from ..data.toy import N_SAMPLES, mode_metrics  # noqa: F401  (the protocol's numbers, here as before)
from . import mean_std, pm, train_seed

SAMPLE_SEED = 2500  # the sampling seed, fixed so configurations see the same latents
RESULT = "bench_result.json"  # in a seed's run: its numbers and the config they came from
# A toy seed run holds at least this much (two checkpoints of the MLP GAN, 100 steps: 1.5 MB);
# the disk check before training uses it, the one after the first seed that seed's real size.
SEED_BYTES_MIN = 1_000_000


@dataclass
class Variant:
    """One configuration of the benchmark: a preset plus overrides, under a label."""

    label: str
    preset: str
    overrides: list[str] = field(default_factory=list)


def parse_variant(text: str, preset: str) -> Variant:
    """'label: key=value key=value' (or just 'key=value ...', labelled by its overrides)."""
    label, sep, rest = text.partition(":")
    if not sep or "=" in label:
        label, rest = "", text
    overrides = rest.split()
    return Variant(label.strip() or (" ".join(overrides) or preset), preset, overrides)


def _slug(label: str) -> str:
    keep = [c if c.isalnum() or c in "-_+." else "_" for c in label]
    return "".join(keep).strip("_")[:80] or "config"


def seed_config(variant: Variant, data: str, seed: int, extra: list[str]):
    """The training config of one configuration and seed."""
    from ..config import load_config

    overrides = [f"data.name={data}", *extra, *variant.overrides, f"train.seed={seed}",
                 "train.device=cpu"]
    return load_config(variant.preset, overrides)[1]


def check_data(variant: Variant, data: str, extra: list[str]) -> None:
    """Refuse a configuration whose overrides train on another dataset than ``data``: its seeds
    are scored against ``data``'s modes (an override data.name=toy:ring8 had trained on the ring
    and scored it against the 25 grid modes, without a word)."""
    from ..config import load_config
    from ..errors import ConfigError

    trained = seed_config(variant, data, 0, extra).data.name
    if trained == load_config(variant.preset, [f"data.name={data}"])[1].data.name:
        return
    sets_data = [o for o in variant.overrides if o.split("=", 1)[0].strip() == "data.name"]
    where = f"--variant '{variant.label}'" if sets_data else "the override"
    raise ConfigError(f"bench modes scores every run against the modes of --data {data}, but {where} sets "
                      f"data.name={trained}; use --data {trained} instead of overriding data.name "
                      f"(one benchmark per dataset)")


def finished_result(run_dir: Path, cfg) -> dict[str, Any] | None:
    """The numbers of a seed run an earlier call finished with this very config, else None."""
    try:
        saved = json.loads((run_dir / RESULT).read_text())
    except (OSError, ValueError):
        return None
    if (not isinstance(saved, dict) or saved.get("config") != cfg.to_yaml()
            or not (run_dir / "bench_samples.pt").is_file()):
        return None
    return saved.get("result")


def _same_config(run_dir: Path, cfg) -> bool:
    """A run of this very config (finished or stopped part-way): --reuse-runs may retrain it."""
    try:
        return (run_dir / "config.yaml").read_text() == cfg.to_yaml()
    except OSError:
        return False


def run_seed(variant: Variant, data: str, seed: int, run_dir: Path, extra: list[str],
             threads: int = 0) -> dict[str, Any]:
    """Train one seed through the public path and evaluate it; returns metrics and seconds (also
    written to ``run_dir/bench_result.json``, so an interrupted benchmark keeps them)."""
    from .. import api
    from ..data import load_dataset

    if threads:
        torch.set_num_threads(threads)
    cfg = seed_config(variant, data, seed, extra)
    if run_dir.exists():
        from ..rundir import check_new_run_dir

        check_new_run_dir(run_dir, force=True)  # a ganforge run no process holds, or refused
        shutil.rmtree(run_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    # The Trainer's diagnostics print warnings; keep them next to the run, not in the table.
    with open(run_dir.with_name(f"{run_dir.name}.log"), "w") as log, contextlib.redirect_stdout(log):
        train_seed(cfg, run_dir, name=variant.label, progress=False)
    seconds = time.perf_counter() - start
    run = api.load(run_dir)
    samples = run.sample(N_SAMPLES, seed=SAMPLE_SEED)
    toy = load_dataset(data, n_toy=cfg.train.batch_size, seed=seed)
    metrics = mode_metrics(samples, toy.modes, toy.sigma)
    torch.save(samples, run_dir / "bench_samples.pt")
    result = {"seed": seed, **metrics, "seconds": round(seconds, 2)}
    atomic_write_json(run_dir / RESULT, {"config": cfg.to_yaml(), "result": result})
    return result


def _worker(args):
    """One seed in a --jobs pool process; None when a stop ended it (its checkpoint saved). Ctrl-C
    reaches every process of the terminal's group, and a worker that let its KeyboardInterrupt out
    had printed a traceback and lost its task, so that a benchmark that did not get the signal
    itself (started in the background) waited for it forever."""
    try:
        return run_seed(*args)
    except KeyboardInterrupt:
        return None


def summarize(seeds: list[dict[str, Any]]) -> dict[str, float]:
    def over_seeds(key):
        return mean_std(s[key] for s in seeds)

    modes_mean, modes_std = over_seeds("modes")
    hq_mean, hq_std = over_seeds("hq")
    rkl_mean, rkl_std = over_seeds("rkl")
    sec_mean, _ = over_seeds("seconds")
    return {"modes_mean": modes_mean, "modes_std": modes_std, "hq_mean": hq_mean,
            "hq_std": hq_std, "rkl_mean": rkl_mean, "rkl_std": rkl_std,
            "seconds_mean": sec_mean, "n_seeds": len(seeds)}


def run_benchmark(variants: list[Variant], data: str, seeds: list[int], out: Path, *,
                  extra: list[str] | None = None, jobs: int = 1, force: bool = False,
                  reuse_runs: bool = False, log=print) -> dict[str, Any]:
    """Every variant x seed; writes OUT/<label>/scatter.png and returns the JSON-ready result.
    ``reuse_runs``: take the numbers of a seed an earlier call finished with the same config, and
    retrain one it stopped part-way; ``force``: replace any other run there (ganforge runs only).
    Whatever would be refused is refused before any training."""
    from ..data import load_dataset

    extra = list(extra or [])
    for v in variants:  # each configuration trains on the data its seeds are scored against
        check_data(v, data, extra)
    tasks = [(v, data, s, out / _slug(v.label) / f"seed_{s}", extra, 1 if jobs > 1 else 0)
             for v in variants for s in seeds]
    done = _check_runs(tasks, force=force, reuse_runs=reuse_runs)
    todo = [i for i in range(len(tasks)) if i not in done]
    _check_disk(out, len(todo), SEED_BYTES_MIN, "at least", "")
    out.mkdir(parents=True, exist_ok=True)
    toy = load_dataset(data, n_toy=1, seed=0)

    def report(task, r, reused=False):
        took = "reused" if reused else f"{r['seconds']:.0f} s"
        log(f"  {task[0].label} seed {task[2]}: {r['modes']}/{len(toy.modes)} modes, "
            f"HQ {100 * r['hq']:.1f}%, rKL {r['rkl']:.3f} ({took})")

    for i in sorted(done):
        report(tasks[i], done[i], reused=True)

    def finished(i, r, first):
        results[i] = r
        report(tasks[i], r)
        if first and len(todo) > 1:  # the real size of a seed run, against the disk left
            _check_disk(out, len(todo) - 1, _folder_bytes(tasks[i][3]), "about",
                        " (the finished seed is kept: --reuse-runs continues)")

    results = dict(done)
    if jobs > 1:  # seeds in parallel processes, one thread each
        import multiprocessing as mp

        # a process per seed (maxtasksperchild=1): a worker whose training took the pool's SIGTERM
        # as its stop signal ends by itself once its seed is saved (the pool's terminate, which
        # signals each worker once, had then waited for it forever)
        with mp.get_context("spawn").Pool(jobs, maxtasksperchild=1) as pool:
            for k, (i, r) in enumerate(zip(todo, pool.imap(_worker, [tasks[i] for i in todo], chunksize=1))):
                if r is None:  # a worker's seed was stopped: so is the benchmark (the pool ends the rest)
                    raise KeyboardInterrupt(f"seed {tasks[i][2]} was stopped")
                finished(i, r, k == 0)
    else:
        for k, i in enumerate(todo):
            finished(i, run_seed(*tasks[i]), k == 0)
    flat = [results[i] for i in range(len(tasks))]
    configs = []
    for i, v in enumerate(variants):
        per_seed = flat[i * len(seeds):(i + 1) * len(seeds)]
        cfg_dir = out / _slug(v.label)
        scatter = save_scatter(cfg_dir, v.label, data, per_seed, toy.modes, toy.sigma)
        configs.append({"label": v.label, "preset": v.preset, "overrides": extra + v.overrides,
                        "seeds": per_seed, "summary": summarize(per_seed),
                        "scatter": str(scatter) if scatter else None})
    return {"data": data, "n_samples": N_SAMPLES, "num_modes": len(toy.modes),
            "sigma": toy.sigma, "protocol": "PacGAN (Lin et al. 2018): HQ within 3 sigma; "
            "mode captured by >= 1 HQ sample; reverse KL of the nearest-mode histogram vs uniform",
            # the first configuration's numbers, labelled (they had read as the benchmark's own)
            "summary": {"config": configs[0]["label"], **configs[0]["summary"]}, "configs": configs}


def _check_runs(tasks, *, force: bool, reuse_runs: bool) -> dict[int, dict[str, Any]]:
    """Before any training: {task index: result} of the seeds --reuse-runs takes as they are; every
    other existing run is a ganforge run no process holds that this call may replace (--force, or
    --reuse-runs for a run of the same config stopped part-way), else refused."""
    from ..errors import ConfigError
    from ..rundir import check_new_run_dir

    done = {}
    for i, (variant, data, seed, run_dir, extra, _) in enumerate(tasks):
        cfg = seed_config(variant, data, seed, extra) if reuse_runs else None
        result = finished_result(run_dir, cfg) if cfg is not None else None
        if result is not None:
            done[i] = result
            continue
        if (run_dir.exists() and not force and (not run_dir.is_dir() or any(run_dir.iterdir()))
                and not (cfg is not None and _same_config(run_dir, cfg))):
            if reuse_runs:
                raise ConfigError(f"--reuse-runs cannot reuse {run_dir} (another config, or not a finished "
                                  f"seed); add --force (keeping --reuse-runs) to retrain it, or choose "
                                  f"another --out")
            raise ConfigError(f"{run_dir} already exists; pass --reuse-runs to keep the finished seeds of the "
                              f"same config (continues an interrupted benchmark), --force to replace it, "
                              f"or choose another --out")
        check_new_run_dir(run_dir, force=True)  # a ganforge run no process holds, or refused
    return done


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _check_disk(out: Path, n_runs: int, per_run: int, qualifier: str, kept: str) -> None:
    """Refuse ``n_runs`` seed runs of ``per_run`` bytes each that the disk under ``out`` cannot hold
    (--seeds 1000000 had written 1.5 MB a seed until the disk was full)."""
    from ..config import _bytes
    from ..errors import ConfigError

    need = n_runs * per_run
    if need <= 0:
        return
    existing = next(p for p in (out.resolve(), *out.resolve().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    if need > free:
        raise ConfigError(f"{n_runs} seed run(s) need {qualifier} {_bytes(need)} of disk ({_bytes(per_run)} "
                          f"each), more than the {_bytes(free)} free under {existing}; pass fewer --seeds "
                          f"or --variant{kept}")


def save_scatter(cfg_dir: Path, label: str, data: str, per_seed: list[dict[str, Any]],
                 modes: torch.Tensor, sigma: float) -> Path | None:
    """One panel per seed: the 2,500 samples over the true modes (3-sigma circles)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Circle
    except ImportError:  # matplotlib missing: the numbers are still written
        return None
    n = len(per_seed)
    cols = min(n, 5)
    rows = math.ceil(n / cols)
    # each row a little taller than its square panels: room for the titles of the row below
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.85 * rows + 0.4), squeeze=False)
    span = float(modes.abs().max()) * 1.35
    for ax in axes.flat:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, per_seed):
        ax.set_visible(True)
        samples = torch.load(cfg_dir / f"seed_{r['seed']}" / "bench_samples.pt")
        ax.scatter(samples[:, 0], samples[:, 1], s=1.5, alpha=0.5, color="tab:blue", lw=0)
        for mx, my in modes.tolist():
            ax.add_patch(Circle((mx, my), 3 * sigma, fill=False, color="tab:red", lw=0.6))
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"seed {r['seed']}: {r['modes']} modes, HQ {100 * r['hq']:.0f}%", fontsize=8)
    fig.suptitle(f"{data} - {label}", fontsize=9)
    fig.tight_layout()
    path = cfg_dir / "scatter.png"
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
    return path


def format_summary(label: str, s: dict[str, float], num_modes: int) -> str:
    return (f"{label}: modes {pm(s['modes_mean'], s['modes_std'], '.1f')} / {num_modes}, "
            f"HQ {pm(100 * s['hq_mean'], 100 * s['hq_std'], '.1f')}%, "
            f"rKL {pm(s['rkl_mean'], s['rkl_std'], '.3f')} "
            f"({s['n_seeds']} seeds, {s['seconds_mean']:.0f} s/seed)")


def write_json(result: dict[str, Any], path: Path) -> None:
    atomic_write_json(path, result)
