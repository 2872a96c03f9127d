"""Image-to-image benchmark: train the offline Pix2Pix demos and measure them on held-out data.

    python benchmarks/translation.py                        # denoise, colorize, sketch
    python benchmarks/translation.py --tasks denoise --steps 500 --out /tmp/tr
    python benchmarks/translation.py --tasks cyclegan    # sneaker <-> ankle boot, Fashion-MNIST

For each task: train its preset (pix2pix-<task>) into OUT/<task>, then report PSNR/SSIM of the
EMA generator on the held-out split next to the task's trivial baseline (the noisy input, the
grayscale input as RGB, the sketch itself), the training time, and write figures:
OUT/<task>-strips.png (input | output | target for 8 held-out pairs, 3x nearest upscaled) and, for the photo tasks,
OUT/<task>-photo.png (a whole held-out photograph translated at its own size, 451x300, in one
pass) and OUT/<task>-photo-tiled.png (the same in half-overlapping windows of the training size).
Results go to OUT/results.json; BENCHMARKS.md quotes them.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from _common import Parser, positive_int, run_main

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


def export_unpaired(root: Path, class_a: int, class_b: int) -> Path:
    """Fashion-MNIST images of two classes as unpaired folders trainA/, trainB/, testA/, testB/."""
    from PIL import Image

    from ganforge.data import load_dataset

    for split in ("train", "test"):
        ds = load_dataset("fashion-mnist", split=split)
        for side, cls in (("A", class_a), ("B", class_b)):
            folder = root / f"{split}{side}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in torch.nonzero(ds.labels == cls).flatten().tolist():
                Image.fromarray(ds.images[i, 0].numpy()).save(folder / f"{i:05d}.png")
    return root


def cyclegan_fashion(out: Path, steps: int | None) -> dict:
    """CycleGAN sneaker <-> ankle boot on Fashion-MNIST (28x28): FID/KID of the translated test
    images against the other class's test images (fashion-mnist-cnn features), next to the
    untranslated images, and the share of translations the classifier assigns to the target."""
    import numpy as np

    from ganforge.metrics import get_extractor, to_uint8
    from ganforge.metrics.paired import evaluate_unpaired

    data = export_unpaired(out / "sneaker2boot", 7, 9)
    overrides = [f"data.name=folder:{data}", "data.resolution=28", "data.channels=1",
                 "model.g_width=16", "model.d_width=16", "translate.n_blocks=3",
                 "translate.d_layers=2", "translate.load_size=32", "train.batch_size=8",
                 f"train.steps={steps or 3000}", "train.log_every=50", "train.sample_every=1000",
                 "train.checkpoint_every=1000", "train.n_sample_grid=16"]
    name, cfg = ganforge.load_config("cyclegan-folder", overrides)
    t0 = time.perf_counter()
    api.train(cfg, out / "cyclegan", name=name, force=True, progress=False)
    seconds = time.perf_counter() - t0
    run = api.load(out / "cyclegan")
    r = evaluate_unpaired(run, extractor="fashion-mnist-cnn")
    test = pairs.load_pairs(cfg)
    ext = get_extractor("fashion-mnist-cnn")
    for direction, src, target in (("AtoB", test.test_a, 9), ("BtoA", test.test_b, 7)):
        fake = run.translate(src.float() / 127.5 - 1, direction=direction)
        r[direction]["target_class_share"] = float(np.mean(ext(to_uint8(fake)).logits.argmax(1) == target))
        r[direction]["target_class_share_untranslated"] = float(np.mean(ext(src).logits.argmax(1) == target))
    idx = torch.linspace(0, len(test.test_a) - 1, 8).round().long()
    a, b = test.test_a[idx].float() / 127.5 - 1, test.test_b[idx].float() / 127.5 - 1
    strips = strip(a, run.translate(a), b, run.translate(b, direction="BtoA"))
    strips = torch.nn.functional.interpolate(strips, scale_factor=3, mode="nearest")
    save_image(strips, out / "cyclegan-strips.png", nrow=2, normalize=True, value_range=(-1, 1))
    r.update(overrides=overrides, train_seconds=round(seconds, 1))
    return r


def main() -> int:
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--tasks", default="denoise,colorize,sketch")
    p.add_argument("--steps", type=positive_int, default=None, help="override each preset's train.steps")
    p.add_argument("--out", default="bench_out/translation")
    p.add_argument("--threads", type=positive_int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
                          f"visible, torch.set_num_threads({args.threads})",
               "torch": torch.__version__, "ganforge": ganforge.__version__,
               "command": " ".join(sys.argv), "tasks": {}}
    for task in args.tasks.split(","):
        if task == "cyclegan":
            r = results["tasks"]["cyclegan"] = cyclegan_fashion(out, args.steps)
            for d in ("AtoB", "BtoA"):
                m = r[d]
                print(f"cyclegan {d}: FID {m['fid']:.2f} (untranslated {m['baseline_fid']:.2f}), "
                      f"target class {m['target_class_share']:.3f} "
                      f"(untranslated {m['target_class_share_untranslated']:.3f})", flush=True)
            (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
            continue
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
    sys.exit(run_main(main))
