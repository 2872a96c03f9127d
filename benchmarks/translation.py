"""Image-to-image benchmark: train the offline Pix2Pix demos and measure them on held-out data.

    python benchmarks/translation.py                        # denoise, colorize, sketch
    python benchmarks/translation.py --tasks denoise --steps 500 --out /tmp/tr

For each task: train its preset (pix2pix-<task>) into OUT/<task>, then report PSNR/SSIM of the
EMA generator on the held-out split next to the task's trivial baseline (the noisy input, the
grayscale input as RGB, the sketch itself), the training time, and write figures:
OUT/<task>-strips.png (input | output | target for 8 held-out pairs, 3x nearest upscaled) and, for the photo tasks,
OUT/<task>-photo.png (a whole held-out photograph translated at its own size, 451x300, in one
pass) and OUT/<task>-photo-tiled.png (the same in half-overlapping windows of the training size).
Results go to OUT/results.json; BENCHMARKS.md quotes them.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from torchvision.utils import save_image  # noqa: E402

import ganforge  # noqa: E402
from ganforge import api  # noqa: E402
from ganforge.data import pairs  # noqa: E402
from ganforge.metrics.paired import evaluate_translation  # noqa: E402
from ganforge.objectives.pix2pix import strip  # noqa: E402


def photo_figure(run, task: str, out: Path) -> dict:
    """A whole held-out photograph (chelsea.png, 451x300) through the run: input | output | target."""
    from ganforge.data import photos

    clean = torch.from_numpy(photos.load_photos("test")[0].copy()).permute(2, 0, 1).unsqueeze(0)
    cfg = run.config.translate
    a = pairs.make_pairs(clean, task, seed=run.config.train.seed + 1, noise=cfg.noise,
                         noise_level=cfg.noise_level)
    x = a.float() / 127.5 - 1
    target = clean.float() / 127.5 - 1
    y = run.translate(x)
    tile = run.config.data.resolution
    y_tiled = run.translate(x, tile=tile)
    save_image(strip(x, y, target), out, normalize=True, value_range=(-1, 1))
    save_image(strip(x, y_tiled, target), out.with_name(out.stem + "-tiled.png"), normalize=True,
               value_range=(-1, 1))
    from ganforge.metrics.paired import compare

    return {"model": compare(y, target), f"model_tile{tile}": compare(y_tiled, target),
            "baseline": compare(x.expand_as(target), target), "size": list(clean.shape[-2:])}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="denoise,colorize,sketch")
    p.add_argument("--steps", type=int, default=None, help="override each preset's train.steps")
    p.add_argument("--out", default="bench_out/translation")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
                          f"visible, torch.set_num_threads({args.threads})",
               "torch": torch.__version__, "ganforge": ganforge.__version__,
               "command": " ".join(sys.argv), "tasks": {}}
    for task in args.tasks.split(","):
        overrides = [f"train.steps={args.steps}"] if args.steps else []
        name, cfg = ganforge.load_config(f"pix2pix-{task}", overrides)
        run_dir = out / task
        t0 = time.perf_counter()
        api.train(cfg, run_dir, name=name, force=True, progress=False)
        seconds = time.perf_counter() - t0
        run = api.load(run_dir)
        r = evaluate_translation(run)
        a, b = pairs.load_test_pairs(cfg)
        idx = torch.linspace(0, len(a) - 1, 8).round().long()
        x = a[idx].float() / 127.5 - 1
        strips = strip(x, run.translate(x), b[idx].float() / 127.5 - 1)
        strips = torch.nn.functional.interpolate(strips, scale_factor=3, mode="nearest")  # visible
        save_image(strips, out / f"{task}-strips.png", nrow=2, normalize=True, value_range=(-1, 1))
        if cfg.data.name == "photos":
            r["photo"] = photo_figure(run, task, out / f"{task}-photo.png")
        r.update(preset=name, steps=cfg.train.steps, train_seconds=round(seconds, 1))
        results["tasks"][task] = r
        print(f"{task}: {seconds:.0f} s, PSNR {r['model']['psnr']:.2f} dB vs baseline "
              f"{r['baseline']['psnr']:.2f} dB ({r['gain_db']:+.2f}), SSIM {r['model']['ssim']:.4f} "
              f"vs {r['baseline']['ssim']:.4f}", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
