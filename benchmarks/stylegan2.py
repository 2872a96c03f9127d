"""StyleGAN2 against DCGAN on Fashion-MNIST at equal wall-clock, on the CPU.

    python benchmarks/stylegan2.py                          # every variant x 3 seeds x 10 min (about 2.5 hours)
    python benchmarks/stylegan2.py --minutes 0.2 --seeds 0 --n 500 --variants stylegan2,dcgan   # a quick look

Each variant trains for ``--minutes`` of wall-clock per seed through the public training path
(``api.build`` -> ``make_batches`` -> ``Trainer.train_step``, the same loop for both families;
the monitor and sample grids are off so that both spend the budget on training steps), saves
a checkpoint, and is scored on ``--n`` samples of its EMA generator against the Fashion-MNIST
test split with the shipped fashion-mnist-cnn extractor (``ganforge.metrics.evaluate``): FID,
KID, precision, recall, coverage, and PPL in W for StyleGAN2. Variants:

- ``stylegan2``: the stylegan2-fashion-mnist preset (32x32, lazy R1 every 16 steps);
- ``dcgan``: the dcgan-fashion-mnist preset (28x28, bf16);
- ``stylegan2-r1-every-step``: the same with reg.r_interval=1 (R1 in every D step), for the
  lazy-regularization row (speed and FID);
- ``stylegan2-no-pl-no-mixing``: the same without path-length regularization and style mixing
  (style.pl_weight=0, style.mixing_prob=0), as the reference's CIFAR-10 configuration trains.

Seeds run one after another, each seed's variants back to back. After every timed run, it
runs the truncation sweep (``--psi``) on the first seed's ``stylegan2`` run
(ganforge.bench.truncation) and writes its plot, and projects (``--project`` images,
``--project-steps`` each) held-out Fashion-MNIST test images in W and W+ (PSNR/SSIM, median)
and as many generated images back in W+ (PSNR to the generated image). Writes ``--out``/stylegan2-bench.json and prints
a table of mean ± std over seeds. Run it alone on the machine: a busy core slows every side.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_float, positive_int, run_main

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

VARIANTS = {
    "stylegan2": ("stylegan2-fashion-mnist", []),
    "dcgan": ("dcgan-fashion-mnist", []),
    "stylegan2-r1-every-step": ("stylegan2-fashion-mnist", ["reg.r_interval=1"]),
    "stylegan2-no-pl-no-mixing": ("stylegan2-fashion-mnist", ["style.pl_weight=0", "style.mixing_prob=0"]),
}
METRICS = ["fid", "kid", "precision", "recall", "coverage"]


def train_for(preset: str, overrides: list[str], seed: int, minutes: float, run_dir: Path) -> dict:
    import torch

    from ganforge import api
    from ganforge.config import load_config
    from ganforge.training.precision import resolve_device
    from ganforge.training.trainer import Trainer

    _, cfg = load_config(preset, [*overrides, f"train.seed={seed}", "train.steps=10000000",
                                  "monitor.enabled=false"])
    device = resolve_device(cfg.train.device)
    objective, dataset = api.build(cfg)
    batches = objective.make_batches(dataset, cfg, device)
    api.prepare_run_dir(run_dir, cfg, resume=False, force=True)
    trainer = Trainer(cfg, objective, batches, run_dir=run_dir, device=device, progress=False)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < minutes * 60:
        trainer.train_step()
    seconds = time.perf_counter() - t0
    trainer.save_checkpoint()
    trainer.save_samples()
    images = cfg.train.batch_size * sum(p.repeat for p in objective.phases if p.fresh_batch) * trainer.step
    return {"steps": trainer.step, "seconds": round(seconds, 1), "img_per_s": round(images / seconds, 1),
            "threads": torch.get_num_threads()}


def score(run_dir: Path, n: int, ppl: bool) -> dict:
    import ganforge
    from ganforge.metrics import evaluate
    from ganforge.metrics.targets import run_samples

    run = ganforge.load(run_dir)
    images, labels, _ = run_samples(run, n=n)
    metrics = METRICS + (["ppl_w"] if ppl else [])
    result = evaluate(images, ref="fashion-mnist", split="test", n_ref=n, metrics=metrics,
                      extractor="fashion-mnist-cnn", generator=run if ppl else None)
    return {k: float(v) for k, v in result.values.items()}


def projection(run_dir: Path, count: int, steps: int, log) -> dict:
    """Median PSNR/SSIM of held-out test images projected in W and W+, and of generated images
    (const noise) projected back in W+."""
    import torch

    import ganforge
    from ganforge.api import to_uint8_hwc
    from ganforge.data import load_dataset

    run = ganforge.load(run_dir)
    test = load_dataset("fashion-mnist", split="test")
    idx = torch.randperm(len(test), generator=torch.Generator().manual_seed(0))[:count]
    out = {"count": count, "steps": steps}
    for space in ("w", "w+"):
        rows = [run.project(test.images[i].permute(1, 2, 0).numpy(), space=space, steps=steps) for i in idx]
        out[f"test_{space}"] = {"psnr_median": statistics.median(r["psnr"] for r in rows),
                                "ssim_median": statistics.median(r["ssim"] for r in rows),
                                "perceptual": rows[0]["perceptual"], "notes": rows[0]["notes"]}
        log(f"  projection of {count} test images in {space}: {out[f'test_{space}']}")
    obj, nets = run.objective, run.ema_nets
    psnrs = []
    for seed in range(count):
        ws, _ = obj.latents(1, torch.Generator().manual_seed(seed), nets=nets)
        target = to_uint8_hwc(obj.synthesize(ws, nets=nets, noise="const"))[0]
        psnrs.append(run.project(target, space="w+", steps=steps)["psnr"])
    out["generated_w+"] = {"psnr_median": statistics.median(psnrs), "psnr_min": min(psnrs)}
    log(f"  projection of {count} generated images in w+: {out['generated_w+']}")
    return out


def main(argv=None) -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=positive_float, default=10.0, help="training wall-clock per run (default 10)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"of {', '.join(VARIANTS)}")
    p.add_argument("--n", type=positive_int, default=10000, help="samples and reference images scored (default 10000)")
    p.add_argument("--psi", default="0.3,0.5,0.7,0.85,1.0", help="truncation sweep values ('' to skip)")
    p.add_argument("--project", type=nonnegative_int, default=20,
                   help="images projected per space (default 20; 0 skips)")
    p.add_argument("--project-steps", type=positive_int, default=1000, help="steps per projection (default 1000)")
    p.add_argument("--out", default=f"runs/bench-stylegan2-{time.strftime('%Y%m%d-%H%M%S')}")
    args = p.parse_args(argv)
    from ganforge.atomic import atomic_write_json

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        p.error(f"unknown variant(s) {unknown}; choose from {', '.join(VARIANTS)}")
    out = Path(args.out)
    result = {"argv": sys.argv, "minutes": args.minutes, "n": args.n, "seeds": seeds, "runs": [],
              "machine": {"cpus": os.cpu_count(), "load_before": os.getloadavg()}}
    # Seed-major: each seed's variants train back to back, so that a run cut short still holds
    # side-by-side pairs; the truncation sweep and the projections come after every timed run.
    for seed in seeds:
        for variant in variants:
            preset, overrides = VARIANTS[variant]
            run_dir = out / f"{variant}-seed{seed}"
            print(f"[{variant} seed {seed}] training {args.minutes} min -> {run_dir}", flush=True)
            row = {"variant": variant, "preset": preset, "overrides": overrides, "seed": seed,
                   **train_for(preset, overrides, seed, args.minutes, run_dir)}
            row.update(score(run_dir, args.n, ppl=preset.startswith("stylegan2")))
            print(f"[{variant} seed {seed}] " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()
                                                          if isinstance(v, float)), flush=True)
            result["runs"].append(row)
            atomic_write_json(out / "stylegan2-bench.json", result)
    first = out / f"stylegan2-seed{seeds[0]}"
    if "stylegan2" in variants and args.psi:
        import ganforge
        from ganforge.bench import truncation

        values = [float(v) for v in args.psi.split(",")]
        sweep = truncation.run_benchmark(ganforge.load(first), values, ref="fashion-mnist",
                                         n=args.n, extractor="fashion-mnist-cnn",
                                         log=lambda m: print("  " + m, flush=True))
        truncation.plot(sweep, out / "truncation.png")
        result["truncation"] = sweep
        atomic_write_json(out / "stylegan2-bench.json", result)
    if "stylegan2" in variants and args.project > 0:
        result["projection"] = projection(first, args.project, args.project_steps,
                                          lambda m: print(m, flush=True))
        atomic_write_json(out / "stylegan2-bench.json", result)
    print(f"\n{'variant':<26}" + "".join(f"{k:>18}" for k in ["steps", "img_per_s", *METRICS]))
    for variant in variants:
        rows = [r for r in result["runs"] if r["variant"] == variant]
        cells = []
        for key in ["steps", "img_per_s", *METRICS]:
            vals = [float(r[key]) for r in rows]
            sd = statistics.stdev(vals) if len(vals) > 1 else 0.0
            cells.append(f"{statistics.mean(vals):>10.4g} ± {sd:<5.2g}")
        print(f"{variant:<26}" + "".join(f"{c:>18}" for c in cells))
    print(f"results in {out / 'stylegan2-bench.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
