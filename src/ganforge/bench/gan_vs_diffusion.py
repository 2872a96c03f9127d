"""GAN or diffusion, measured: ``ganforge bench gan-vs-diffusion``.

The claims put to the test (as commonly stated: GANs give "faster generation, harder training,
sharp outputs"; diffusion models "slower generation, more stable, better diversity"):

* faster generation: images/s of the GAN (one generator pass) against the diffusion baseline
  with DDPM's 1000 steps and DDIM's 50 and 10 (ganforge.bench.diffusion);
* better diversity: recall, coverage and classes covered of each;
* more stable: the spread (standard deviation) of FID over the seeds of each; decided only where the
  two spreads differ by more than their own standard errors (about std / sqrt(2 (k - 1)) over k
  seeds), "not resolved" otherwise, as the diversity claims are within the spread over seeds.

Protocol, per seed, one after the other (never in parallel: two trainings on the same cores
ruin both): the GAN preset trains through ``ganforge train`` in its own process, stopped by
SIGTERM (a clean stop with a checkpoint) once ``minutes`` have passed since the process
started; the diffusion baseline trains in this process for the same wall-clock, counted from
the start of its training call (data loading included; the GAN also pays Python's start-up,
a few seconds). Then ``n`` samples of each (the GAN's EMA generator; diffusion with DDIM-50
unless ``quality_samplers`` says otherwise) are scored against the test split (``folder:PATH``,
which has one set of images, against that folder: the images both models trained on, a warning
says so) with ``extractor`` (default as ``ganforge eval``): FID, KID, precision, recall, coverage,
classes covered (not for a folder: no ganforge classifier knows its classes). The evaluation's
warnings (small-sample bias, ...) and the extractor are kept in the result and printed under
the table. Generation speed is timed
on ``speed_n`` images per sampler after a one-image warm-up, batch size ``speed_batch``, in this
process with the threads torch chose.

Each seed's result is saved when the seed finishes (OUT/seed<N>.json with the settings that
measured it, and its sample grids OUT/seed<N>-grids.pt), so that an interrupted benchmark loses
at most the seed it was in: ``--resume`` reuses the finished seeds of the same settings.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import ConfigError, GanforgeError
from . import mean_std, pm
from .diffusion import DiffusionConfig

METRICS = ["fid", "kid", "precision", "recall", "coverage", "classes_covered"]
RUN_NAME = re.compile(r"(gan|diffusion)-seed(-?[0-9]+)")  # the runs of one seed (older calls took negative seeds)
SEED_FILE = re.compile(r"seed(-?[0-9]+)(\.json|-grids\.pt)")  # a finished seed's results (save_seed)
DIFFUSION_FILES = {"config.json", "diffusion_pytorch_model.safetensors", "baseline.json"}  # diffusion.save


@dataclass
class Settings:
    data: str = "fashion-mnist"
    minutes: float = 10.0  # training wall-clock of each model and seed
    steps: int | None = None  # instead of minutes: a fixed number of steps each (tests, smoke runs)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    gan_preset: str = "dcgan-fashion-mnist"
    gan_overrides: list[str] = field(default_factory=list)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    n: int = 5000  # samples scored per model and seed
    quality_samplers: list[str] = field(default_factory=lambda: ["ddim50"])
    speed_samplers: list[str] = field(default_factory=lambda: ["ddpm1000", "ddim50", "ddim10"])
    speed_n: int = 64  # images timed per sampler
    speed_batch: int = 64
    extractor: str | None = None  # None: as ganforge eval chooses (ganforge.metrics.default_extractor)
    inception_weights: str | None = None  # a local Inception file, as ganforge eval --inception-weights
    data_dir: str | None = None  # where to look for the dataset first (--data-dir), as ganforge train


# Settings the command line spells otherwise (--resume names the one that differs); the rest
# are --name-with-dashes
FLAGS = {"gan_preset": "--preset", "gan_overrides": "the GAN's key=value overrides",
         "diffusion.widths": "--diffusion-widths", "diffusion.batch_size": "--diffusion-batch"}


def parse_sampler(name: str) -> tuple[str, int]:
    """'ddim50' -> ('ddim', 50), 'ddpm1000' -> ('ddpm', 1000)."""
    kind, digits = name[:4], name[4:]
    if kind not in ("ddpm", "ddim") or not digits.isdigit() or int(digits) <= 0:
        raise ConfigError(f"sampler '{name}': write ddpm<steps> or ddim<steps>, e.g. ddpm1000, ddim50")
    return kind, int(digits)


def check_out(out: Path, *, force: bool, resume: bool = False, s: Settings | None = None) -> None:
    """Before any work: ``out`` is new or empty, or holds nothing but what an interrupted or
    failed benchmark left: its runs (gan-seed<N>, a ganforge run no process holds;
    diffusion-seed<N>, a baseline diffusion.save wrote) and the results of the seeds it finished
    (seed<N>.json and seed<N>-grids.pt; figure.png where it stopped before its table). ``force``
    then starts over (replace_unfinished deletes all of them); ``resume`` keeps the finished
    seeds of this call's settings ``s`` and refuses results measured with other settings.
    Anything else (a finished benchmark's table and figure, the user's own files) is refused,
    with --force or --resume too: nothing the user made is deleted."""
    from ..rundir import check_new_run_dir

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; choose another --out")
    entries = sorted(out.iterdir()) if out.is_dir() else []
    if not entries:
        return
    if resume and (out / "table.md").exists():
        raise ConfigError(f"{out} holds a finished benchmark (results in {out / 'table.md'}); --resume has "
                          f"nothing to continue there; choose another --out")
    runs = [p for p in entries if p.is_dir() and not p.is_symlink() and RUN_NAME.fullmatch(p.name)]
    saved = [p for p in entries if _is_seed_file(p) or _is_unfinished_figure(p)]
    if len(runs) + len(saved) < len(entries):
        other = next(p.name for p in entries if p not in runs and p not in saved)
        raise ConfigError(f"{out} already exists and is not empty; choose another --out (it holds {other}; "
                          f"--force and --resume take only the runs and seed files of an interrupted benchmark)")
    if not force and not resume:
        raise ConfigError(f"{out} holds the unfinished runs of an interrupted benchmark; pass --force to "
                          f"start over, or --resume to keep the seeds it finished, or choose another --out")
    for run in runs:
        if run.name.startswith("gan-"):
            check_new_run_dir(run, force=True)  # a ganforge run no process holds, or refused
        elif not {p.name for p in run.iterdir()} <= DIFFUSION_FILES:
            what = "--force" if force else "--resume"
            raise ConfigError(f"{what} refused: {run} is not a diffusion baseline of this benchmark, so "
                              f"nothing was deleted; choose another --out")
    if resume and s is not None:
        for seed in s.seeds:
            _check_same_settings(out / f"seed{seed}.json", s)


def _is_unfinished_figure(path: Path) -> bool:
    """OUT/figure.png of a call stopped after drawing it and before its table (table.md, written
    last): the benchmark's own (its provenance says so), drawn again from the seeds' grids."""
    from .. import provenance

    if path.name != "figure.png" or path.is_symlink() or not path.is_file():
        return False
    if (path.parent / "table.md").exists():
        return False
    try:
        meta = provenance.read(path)
    except (OSError, ValueError):  # not an image
        return False
    return isinstance(meta, dict) and meta.get("operation") == "bench gan-vs-diffusion"


def _is_seed_file(path: Path) -> bool:
    """A finished seed's result (seed<N>.json, as save_seed writes it) or its sample grids."""
    match = SEED_FILE.fullmatch(path.name)
    if match is None or path.is_symlink() or not path.is_file():
        return False
    if match[2] == "-grids.pt":
        return True
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(saved, dict) and {"seed", "settings", "gan", "diffusion"} <= saved.keys()


def _check_same_settings(path: Path, s: Settings) -> None:
    """--resume reuses a seed's saved result only if it was measured with this call's settings
    (the seed list aside: a seed's numbers do not depend on the others)."""
    if not path.is_file():
        return
    old, new = json.loads(path.read_text())["settings"], _plain(asdict(s))
    for key in ("seeds", "data_dir"):  # where the data is read from does not change it
        old.pop(key, None)
        new.pop(key, None)
    key = _first_difference(old, new)
    if key is not None:
        flag = FLAGS.get(key, key if "." in key else f"--{key.replace('_', '-')}")
        was, now = _value(old, key), _value(new, key)
        raise ConfigError(f"--resume refused: {path} was measured with {flag} {json.dumps(was)}, this call "
                          f"has {json.dumps(now)}; rerun with the same settings, or choose another --out, or "
                          f"pass --force to start over (deletes the finished seeds)")


def _value(settings: Any, key: str) -> Any:
    for part in key.split("."):
        settings = settings.get(part) if isinstance(settings, dict) else None
    return settings


def _first_difference(old: dict, new: dict, prefix: str = "") -> str | None:
    """The first key (dotted into nested dicts) whose value differs between two settings dicts."""
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = _first_difference(a, b, f"{prefix}{key}.")
            if inner is not None:
                return inner
        elif a != b:
            return f"{prefix}{key}"
    return None


def _plain(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples as lists), to compare with a saved one."""
    return json.loads(json.dumps(obj))


def finished_seeds(out: Path, s: Settings) -> list[int]:
    """The seeds of ``s`` whose result and grids an earlier call saved in ``out``."""
    return [seed for seed in s.seeds
            if (out / f"seed{seed}.json").is_file() and (out / f"seed{seed}-grids.pt").is_file()]


def replace_unfinished(out: Path, seeds: list[int] | None = None) -> None:
    """Delete what an interrupted benchmark left in ``out`` (check_out accepted it): with
    ``seeds`` (--resume) only the runs of those seeds, which are trained again; without (--force,
    starting over) every run, whatever its seed, and every finished seed's files. A GAN run is
    emptied as ``ganforge train --force`` does, under its lock and config.yaml last, so that a
    kill meanwhile leaves a folder the next --force accepts."""
    from ..rundir import LOCK_NAME, claim_run_dir

    for path in sorted(out.iterdir()):
        match = RUN_NAME.fullmatch(path.name)
        if match and (seeds is None or int(match[2]) in seeds):
            if path.name.startswith("gan-"):
                claim_run_dir(path, force=True)[0].release()  # refused if a process took it meanwhile
                (path / LOCK_NAME).unlink(missing_ok=True)
                path.rmdir()
            else:
                shutil.rmtree(path)
        elif seeds is None and (_is_seed_file(path) or _is_unfinished_figure(path)):
            path.unlink()


def save_seed(result: dict[str, Any], s: Settings, out: Path) -> dict[str, Any]:
    """Write a finished seed's result as soon as it is known, so that an interrupt later keeps
    it: its sample grids (for the figure) to OUT/seed<N>-grids.pt, then the result with the
    settings that measured it to OUT/seed<N>.json (last: it marks the seed finished). Returns
    the result as load_seed will read it back, so that a resumed benchmark ends as an
    uninterrupted one."""
    from ..atomic import atomic_path, atomic_write_json

    seed = result["seed"]
    with atomic_path(out / f"seed{seed}-grids.pt") as tmp:
        torch.save({name: g.clone() for name, g in result.pop("grids").items()}, tmp)  # clone: not the whole samples
    atomic_write_json(out / f"seed{seed}.json", {**result, "settings": asdict(s)})
    return load_seed(out, seed)


def load_seed(out: Path, seed: int) -> dict[str, Any]:
    """A finished seed's result, as save_seed wrote it (without its settings and grids)."""
    saved = json.loads((out / f"seed{seed}.json").read_text())
    del saved["settings"]
    for model in ("gan", "diffusion"):  # a NaN measured was written as null; summarize wants it back
        for key in ("metrics", "images_per_s"):
            saved[model][key] = _nan_for_null(saved[model][key])
    return saved


def _nan_for_null(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _nan_for_null(v) for k, v in value.items()}
    return math.nan if value is None else value


def train_gan(s: Settings, seed: int, run_dir: Path, log: Callable[[str], None]) -> dict:
    """``ganforge train`` in its own process, stopped by SIGTERM when the budget is spent.

    A Ctrl-C reaches the child too (the same process group): it saves a checkpoint and stops,
    and this raises KeyboardInterrupt, as does a child that another signal stopped (a half-trained
    run must not be scored as a result). Any other failure of the child raises a GanforgeError
    with the child's own error line."""
    overrides = [f"data.name={s.data}", f"train.seed={seed}", *s.gan_overrides]
    if s.data_dir is not None:
        overrides.append(f"data.data_dir={s.data_dir}")  # as ganforge train --data-dir passes it
    steps = s.steps if s.steps is not None else 10**9  # the clock ends it, not the step count
    cmd = [sys.executable, "-m", "ganforge", "train", s.gan_preset, "--out", str(run_dir), "--quiet",
           f"train.steps={steps}", *overrides]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[2]),
                                                                     os.environ.get("PYTHONPATH")]))}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    budget_spent, interrupted = False, None
    try:
        out, _ = proc.communicate(timeout=None if s.steps is not None else s.minutes * 60)
    except subprocess.TimeoutExpired:
        budget_spent = True
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate()
    except KeyboardInterrupt as stop:  # Ctrl-C, or SIGTERM (signals.Terminated) to this process
        # SIGTERM too, for a Ctrl-C that only this process got; after a SIGINT the child takes it
        # as the same stop, not as a second Ctrl-C (which stops without a checkpoint)
        interrupted = stop
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate()
    seconds = time.perf_counter() - t0
    code = proc.returncode
    if interrupted is not None or code in (130, 143) and not (budget_spent and code == 143):
        raise type(interrupted or KeyboardInterrupt())(f"GAN training of seed {seed} stopped by a signal "
                                                        f"(exit {code})")
    if code not in (0, 143):  # 143 here: our own SIGTERM at the end of the budget
        exit_ = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
        rerun = (f"rerun with --force to start over in {run_dir.parent}, or with --resume to keep the seeds "
                 f"it finished" if any(run_dir.parent.iterdir())
                 else "rerun the same command")  # a failed start leaves none
        raise GanforgeError(f"GAN training of seed {seed} failed ({exit_}): {last_error(out)}; fix that, then {rerun}")
    log(f"  GAN {s.gan_preset} seed {seed}: {seconds:.0f} s")
    return {"seconds": round(seconds, 2), "returncode": code}


def last_error(output: str) -> str:
    """The child's own error line: its last "ganforge: error: ..." (without that prefix, which
    the CLI adds again), else its last line (a traceback's exception)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line.removeprefix("ganforge: error: ") for line in lines if line.startswith("ganforge: error: ")]
    return (errors or lines or ["no output"])[-1]


def _timed(fn, n: int, batch: int) -> float:
    """images/s of ``fn(k)`` producing k images, over n images after a one-image warm-up call."""
    fn(1)
    t0 = time.perf_counter()
    done = 0
    while done < n:
        k = min(batch, n - done)
        fn(k)
        done += k
    return n / (time.perf_counter() - t0)


def reference(data: str) -> str:
    """What samples of models trained on ``data`` are scored against, as ``ganforge eval --ref``
    takes it: a named dataset (its test split), or ``folder:PATH`` itself (one set of images)."""
    return data if data.startswith("folder:") else data.partition(":")[0]


def metrics_for(ref: str) -> list[str]:
    """METRICS, less classes_covered for a folder (no ganforge classifier knows its classes)."""
    return [m for m in METRICS if m != "classes_covered" or not ref.startswith("folder:")]


def _score(images_float: torch.Tensor, s: Settings) -> tuple[dict, dict]:
    """(metric values, {"extractor": name, "warnings": [...]}) of float images [N, C, H, W]."""
    from ..inference import to_uint8_hwc
    from ..metrics import evaluate

    uint8 = torch.from_numpy(to_uint8_hwc(images_float)).permute(0, 3, 1, 2)
    ref = reference(s.data)
    result = evaluate(uint8, ref=ref, split="test", metrics=metrics_for(ref), extractor=s.extractor,
                      inception_weights=s.inception_weights, data_dir=s.data_dir)
    return result.values, {"extractor": result.protocol["extractor"], "warnings": result.protocol["warnings"]}


def run_seed(s: Settings, seed: int, out: Path, log: Callable[[str], None]) -> dict[str, Any]:
    from .. import api
    from ..data import load_dataset
    from . import diffusion

    result: dict[str, Any] = {"seed": seed}
    gan_dir = out / f"gan-seed{seed}"
    result["gan"] = {"train": train_gan(s, seed, gan_dir, log)}
    run = api.load(gan_dir)
    result["gan"]["train"]["steps"] = run.step
    # what comes after each training is said as it starts: drawing, scoring and timing had left
    # minutes without a line (a DDPM sampler on CPU), which read as a hang
    started = time.perf_counter()
    log(f"  GAN seed {seed}: drawing and scoring {s.n} samples, then timing generation")
    gan_samples = run.sample(s.n, seed=seed + 1000)
    result["gan"]["metrics"], scored = _score(gan_samples, s)
    protocols = [scored]
    result["gan"]["images_per_s"] = _timed(lambda k: run.sample(k, seed=seed), s.speed_n * 4, s.speed_batch)
    log(f"  GAN seed {seed}: scored and timed in {time.perf_counter() - started:.0f} s")

    cfg = DiffusionConfig(**{**asdict(s.diffusion), "seed": seed})
    images = load_dataset(s.data, resolution=cfg.resolution, channels=cfg.channels, data_dir=s.data_dir).images
    seconds = None if s.steps is not None else s.minutes * 60
    model, stats = diffusion.train(images, cfg, seconds=seconds, steps=s.steps, log=log)
    log(f"  diffusion seed {seed}: {stats['steps']} steps in {stats['seconds']:.0f} s, loss {stats['final_loss']}")
    diffusion.save(model, out / f"diffusion-seed{seed}", cfg, stats)
    result["diffusion"] = {"train": stats, "metrics": {}, "images_per_s": {}}
    grids = {"GAN": gan_samples[:64]}
    for name in s.quality_samplers:
        kind, k = parse_sampler(name)
        started = time.perf_counter()
        log(f"  diffusion seed {seed}: drawing {s.n} samples with {name} ({k} network passes each) "
            f"and scoring them")
        samples = diffusion.sample(model, s.n, sampler=kind, steps=k, seed=seed + 1000)
        result["diffusion"]["metrics"][name], scored = _score(samples, s)
        log(f"  diffusion seed {seed}: {name} drawn and scored in {time.perf_counter() - started:.0f} s")
        protocols.append(scored)
        grids[f"diffusion {name}"] = samples[:64]
    for name in s.speed_samplers:
        kind, k = parse_sampler(name)
        timed: list[torch.Tensor] = []  # the timed images also make the grid: DDPM-1000 runs once

        def draw(b: int, kind: str = kind, k: int = k, timed: list = timed) -> None:
            timed.append(diffusion.sample(model, b, sampler=kind, steps=k, seed=seed))

        log(f"  diffusion seed {seed}: timing {name} on {s.speed_n} images")
        result["diffusion"]["images_per_s"][name] = _timed(draw, s.speed_n, s.speed_batch)
        if f"diffusion {name}" not in grids:
            grids[f"diffusion {name}"] = torch.cat(timed[1:])[:16]  # [0] is the one-image warm-up
    result["grids"] = grids
    result["protocol"] = {"extractor": protocols[0]["extractor"],
                          "warnings": list(dict.fromkeys(w for p in protocols for w in p["warnings"]))}
    return result


def summarize(seeds: list[dict], s: Settings) -> dict[str, Any]:
    """Mean and spread over seeds of every number, and one row per claim with its verdict."""
    rows: dict[str, dict[str, Any]] = {"GAN": {}}
    scored = [key for key in METRICS if key in seeds[0]["gan"]["metrics"]]  # a folder: no classes_covered
    for key in scored:
        rows["GAN"][key] = mean_std([r["gan"]["metrics"][key] for r in seeds])
    rows["GAN"]["images_per_s"] = mean_std([r["gan"]["images_per_s"] for r in seeds])
    rows["GAN"]["train_steps"] = mean_std([r["gan"]["train"]["steps"] for r in seeds])
    for name in s.quality_samplers:
        rows[f"diffusion {name}"] = {key: mean_std([r["diffusion"]["metrics"][name][key] for r in seeds])
                                     for key in scored}
    for name in s.speed_samplers:
        rows.setdefault(f"diffusion {name}", {})["images_per_s"] = mean_std(
            [r["diffusion"]["images_per_s"][name] for r in seeds])
    diff_steps = mean_std([r["diffusion"]["train"]["steps"] for r in seeds])
    for name in s.quality_samplers + s.speed_samplers:
        rows[f"diffusion {name}"]["train_steps"] = diff_steps
    claims = []
    gan_speed = rows["GAN"]["images_per_s"][0]
    for name in s.speed_samplers:
        d = rows[f"diffusion {name}"]["images_per_s"][0]
        claims.append({"claim": f"GAN: faster generation (vs diffusion {name})",
                       "measured": f"{gan_speed:.1f} vs {d:.2f} images/s ({gan_speed / d:.0f}x)",
                       "verdict": "holds" if gan_speed > d else "does not hold"})
    if s.quality_samplers:
        q = rows[f"diffusion {s.quality_samplers[0]}"]
        for key in [k for k in ("recall", "coverage", "classes_covered") if k in scored]:
            (gm, gs), (dm, ds) = rows["GAN"][key], q[key]
            # "holds" only when the means differ by more than the two spreads together
            verdict = ("holds" if dm > gm + gs + ds else "does not hold" if dm < gm - gs - ds
                       else "not resolved (within the spread over seeds)")
            if len(seeds) < 2:
                verdict = f"{'higher' if dm > gm else 'not higher'} on one seed (no spread: not resolved)"
            claims.append({"claim": f"diffusion: better diversity ({key})",
                           "measured": f"{pm(dm, ds, '.3f')} vs GAN {pm(gm, gs, '.3f')}", "verdict": verdict})
        g_std, d_std = rows["GAN"]["fid"][1], q["fid"][1]
        claims.append({"claim": "diffusion: more stable (spread of FID over seeds)",
                       "measured": f"std {d_std:.2f} vs GAN {g_std:.2f} over {len(seeds)} seeds"
                       if len(seeds) > 1 else "one seed: no spread",
                       "verdict": stability_verdict(g_std, d_std, len(seeds))})
    return {"rows": rows, "claims": claims}


def stability_verdict(g_std: float, d_std: float, n_seeds: int) -> str:
    """"holds" only when diffusion's FID spread is below the GAN's by more than the two spreads'
    own uncertainty, as the diversity claims ask the means to differ by more than the spreads: a
    standard deviation over k seeds has a standard error of about std / sqrt(2 (k - 1)) (normal
    data), 71% of itself at 2 seeds, so 7.42 against 7.03 says nothing."""
    if n_seeds < 2:
        return "not measured (one seed)"
    margin = (g_std + d_std) / (2 * (n_seeds - 1)) ** 0.5
    if d_std < g_std - margin:
        return "holds"
    if d_std > g_std + margin:
        return "does not hold"
    return f"not resolved (the spreads differ by less than their uncertainty at {n_seeds} seeds)"


def markdown(summary: dict, s: Settings) -> str:
    """The measured table and the claims, as Markdown (for docs/gan-or-diffusion.md)."""
    budget = f"{s.steps} steps" if s.steps is not None else f"{s.minutes:g} min"
    scored = f" with {summary['extractor']} features" if summary.get("extractor") else ""
    lines = [f"Training budget {budget} each, seeds {s.seeds}, {s.n} samples scored per model and "
             f"seed{scored} against {reference(s.data)} "
             f"({'mean ± std over seeds' if len(s.seeds) > 1 else 'one seed: no spread'}).", "",
             "| model | train steps | FID | KID | precision | recall | coverage | classes | images/s |",
             "|---|---|---|---|---|---|---|---|---|"]
    def cell_of(row, key, fmt):
        if key not in row:
            return "-"
        return pm(*row[key], fmt)

    for name, row in summary["rows"].items():
        cell = functools.partial(cell_of, row)
        lines.append(f"| {name} | {cell('train_steps', '.0f')} | {cell('fid', '.2f')} | {cell('kid', '.4f')} | "
                     f"{cell('precision', '.3f')} | {cell('recall', '.3f')} | {cell('coverage', '.3f')} | "
                     f"{cell('classes_covered', '.1f')} | {cell('images_per_s', '.2f')} |")
    if summary.get("warnings"):  # what the sample sizes (or a folder reference) make unreliable
        lines += ["", "Warnings of the evaluation:", ""] + [f"- {w}" for w in summary["warnings"]]
    lines += ["", "| claim | measured | verdict |", "|---|---|---|"]
    lines += [f"| {c['claim']} | {c['measured']} | {c['verdict']} |" for c in summary["claims"]]
    return "\n".join(lines) + "\n"


def figure(grids: dict[str, torch.Tensor], path: Path, meta: dict | None, caption: str = "") -> None:
    """Sample grids side by side, each titled, with ``caption`` (budget, seed) under them."""
    import math

    from PIL import Image, ImageDraw

    from .. import provenance

    tiles = [(name, provenance.grid_image(g, nrow=max(1, int(math.sqrt(len(g)))))) for name, g in grids.items()]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    slots = [max(t.width, int(probe.textlength(name)) + 4) for name, t in tiles]  # titles never overlap
    width = max(sum(slots) + 10 * (len(tiles) + 1), int(probe.textlength(caption)) + 20)
    height = max(t.height for _, t in tiles) + 30
    canvas = Image.new("RGB", (width, height + (20 if caption else 0)), "white")
    draw, x = ImageDraw.Draw(canvas), 10
    for (name, tile), slot in zip(tiles, slots):
        draw.text((x, 8), name, fill="black")
        canvas.paste(tile.convert("RGB"), (x, 25))
        x += slot + 10
    if caption:
        draw.text((10, height + 2), caption, fill="black")
    provenance.save(canvas, path, meta)


def run_benchmark(s: Settings, out: Path, log: Callable[[str], None] = print, *,
                  force: bool = False, resume: bool = False) -> dict[str, Any]:
    """Every seed in turn, each saved as it finishes (save_seed), then the summary; writes
    OUT/figure.png (grids of the first seed). Call check_out first: it refuses what is not the
    benchmark's own. ``force``: first delete what an interrupted benchmark left in ``out`` (start
    over); ``resume``: keep the seeds it finished (with these settings: check_out compared them)
    and train the others again. A stop signal (Ctrl-C) raises KeyboardInterrupt."""
    from .. import provenance

    done = finished_seeds(out, s) if resume and out.is_dir() else []
    if (force or resume) and out.is_dir():
        replace_unfinished(out, None if force else [seed for seed in s.seeds if seed not in done])
    out.mkdir(parents=True, exist_ok=True)
    per_seed = []
    for seed in s.seeds:
        if seed in done:
            log(f"seed {seed}: reused from {out / f'seed{seed}.json'} (finished earlier)")
            per_seed.append(load_seed(out, seed))
            continue
        log(f"seed {seed}:")
        per_seed.append(save_seed(run_seed(s, seed, out, log), s, out))
    grids = torch.load(out / f"seed{s.seeds[0]}-grids.pt", weights_only=True)
    summary = summarize(per_seed, s)
    warnings = list(dict.fromkeys(w for r in per_seed for w in r["protocol"]["warnings"]))
    ref = reference(s.data)
    if ref.startswith("folder:"):
        warnings.append(f"{ref} is the folder both models trained on (a folder has no held-out split): "
                        f"these numbers measure the fit to its training images, not to unseen ones")
    meta = provenance.record(operation="bench gan-vs-diffusion", seed=s.seeds[0], gan_preset=s.gan_preset)
    # which of the seeds it shows, and at what budget: it had said neither
    budget = f"{s.steps} steps" if s.steps is not None else f"{s.minutes:g} min"
    figure(grids, out / "figure.png", meta, caption=f"seed {s.seeds[0]} (of {', '.join(map(str, s.seeds))}), "
                                                    f"{budget} of training each on {s.data}")
    return {"settings": asdict(s), "reference": ref, "extractor": per_seed[0]["protocol"]["extractor"],
            "warnings": warnings, "per_seed": per_seed, **summary, "figure": str(out / "figure.png")}
