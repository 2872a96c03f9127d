"""Super-resolution x4 on held-out photographs: the PSNR stage (srresnet-x4) against bicubic,
the GAN stage next to it, and a side-by-side crop (bicubic | SRResNet | GAN | ground truth).

Both stages train on the offline photographs of ganforge.data.photos ("train" split) and are
evaluated on its "test" split (photographs never seen in training) with eval-sr's protocol:
HR cropped to a multiple of 4, LR by PIL-compatible bicubic downsampling rounded to uint8,
PSNR and SSIM on the Y channel with a 4-pixel border cropped. Goal (issue 8): the PSNR stage
beats bicubic by >= 1.0 dB.

The GAN stage defaults to srgan-x4 with sr.perceptual_weight=0, because VGG19's ImageNet
weights cannot be downloaded on an offline machine; with them in the torch hub cache, pass
--gan-overrides "" to train the preset as it is.

    python benchmarks/superres.py --psnr-steps 800 --gan-steps 400 --json sr.json \
        --figure docs/superres-x4.png
    python benchmarks/superres.py --psnr-run runs/bench-srresnet-x4 --gan-run runs/bench-srgan-x4
"""
from __future__ import annotations

import json
import os
import platform
import shlex
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_int, run_main

import numpy as np
import torch
from PIL import Image, ImageDraw

from ganforge import api
from ganforge.config import load_config
from ganforge.data import photos
from ganforge.metrics.superres import bicubic_image, evaluate_sr, lr_image, mod_crop
from ganforge.objectives.superres import interpolated_generator, upscale_array

GAN_OVERRIDES = "sr.perceptual_weight=0 sr.pixel_weight=1 sr.adv_weight=0.01"


def ema_generator(run) -> torch.nn.Module:
    """A loaded run's EMA generator (its raw one when it keeps no EMA)."""
    return run.ema_nets.get("G", run.objective.nets["G"])


def train(preset: str, run_dir: Path, overrides: list[str]) -> float:
    _, cfg = load_config(preset, overrides)
    start = time.perf_counter()
    api.train(cfg, run_dir, name=preset, force=True, progress=False)
    return time.perf_counter() - start


def figure(hr: np.ndarray, methods: dict, box: tuple[int, int, int], out: Path, zoom: int = 2):
    """Crop (top, left, size) of HR and of each method's output, side by side, labeled."""
    top, left, size = box
    hr = mod_crop(hr, 4)
    lr = lr_image(hr, 4)
    panels = [("bicubic", bicubic_image(lr, 4))] + [(n, f(lr)) for n, f in methods.items()]
    panels.append(("ground truth", hr))
    tiles = []
    for name, img in panels:
        crop = Image.fromarray(img[top:top + size, left:left + size])
        crop = crop.resize((size * zoom, size * zoom), Image.NEAREST)
        canvas = Image.new("RGB", (crop.width, crop.height + 18), "white")
        canvas.paste(crop, (0, 18))
        ImageDraw.Draw(canvas).text((4, 3), name, fill="black")
        tiles.append(canvas)
    gap = 4
    sheet = Image.new("RGB", (sum(t.width for t in tiles) + gap * (len(tiles) - 1), tiles[0].height),
                      "white")
    x = 0
    for t in tiles:
        sheet.paste(t, (x, 0))
        x += t.width + gap
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)


def main() -> None:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--psnr-run", default="runs/bench-srresnet-x4")
    p.add_argument("--gan-run", default="runs/bench-srgan-x4")
    p.add_argument("--psnr-steps", type=nonnegative_int, default=0, help="train the PSNR stage (0: reuse)")
    p.add_argument("--gan-steps", type=nonnegative_int, default=0, help="train the GAN stage (0: reuse)")
    p.add_argument("--gan-preset", default="srgan-x4")
    p.add_argument("--gan-overrides", default=GAN_OVERRIDES)
    p.add_argument("--interp", type=float, nargs="*", default=[0.5],
                   help="also evaluate these network interpolations")
    p.add_argument("--threads", type=positive_int, default=1)
    p.add_argument("--json")
    p.add_argument("--figure", help="PNG of the side-by-side crop")
    p.add_argument("--box", type=int, nargs=3, default=[60, 120, 112], metavar=("TOP", "LEFT", "SIZE"),
                   help="crop of the first test photograph for --figure")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    psnr_dir, gan_dir = Path(args.psnr_run), Path(args.gan_run)
    seconds = {}
    if args.psnr_steps:
        seconds["psnr_stage"] = train("srresnet-x4", psnr_dir, [f"train.steps={args.psnr_steps}"])
    if args.gan_steps:
        overrides = shlex.split(args.gan_overrides) + [f"train.steps={args.gan_steps}",
                                                       f"sr.init_from={psnr_dir}"]
        seconds["gan_stage"] = train(args.gan_preset, gan_dir, overrides)

    psnr, gan = api.load(psnr_dir), api.load(gan_dir)
    nets = {"SRResNet (PSNR stage)": ema_generator(psnr), "GAN stage": ema_generator(gan)}
    for alpha in args.interp:
        nets[f"interp {alpha:g}"] = interpolated_generator(gan, alpha)
    methods = {name: (lambda lr, G=G: upscale_array(G.eval(), lr, 4, tile=0))
               for name, G in nets.items()}
    test = photos.load_photos("test")
    start = time.perf_counter()
    table = evaluate_sr(test, 4, methods)
    seconds["evaluation"] = time.perf_counter() - start
    print(f"x4 on {len(test)} held-out photographs ({', '.join(photos.TEST_PHOTOS)}), "
          f"Y channel, border 4")
    print(f"{'method':<24}{'PSNR-Y':>9}{'SSIM-Y':>9}{'dPSNR':>8}")
    for name, row in table.items():
        gain = row["psnr_y"] - table["bicubic"]["psnr_y"]
        print(f"{name:<24}{row['psnr_y']:>9.3f}{row['ssim_y']:>9.4f}{gain:>+8.3f}")
    print("seconds:", {k: round(v, 1) for k, v in seconds.items()})
    if args.figure:
        keep = {k: methods[k] for k in ("SRResNet (PSNR stage)", "GAN stage")}
        figure(test[0], keep, tuple(args.box), Path(args.figure))
        print(f"wrote {args.figure}")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": {"cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(), "threads": args.threads,
                        "torch": torch.__version__},
            "psnr_run": str(psnr_dir), "psnr_step": psnr.step,
            "gan_run": str(gan_dir), "gan_step": gan.step, "gan_preset": args.gan_preset,
            "gan_overrides": args.gan_overrides, "test_photos": list(photos.TEST_PHOTOS),
            "results": table, "seconds": seconds}, indent=2))


if __name__ == "__main__":
    raise SystemExit(run_main(main))
