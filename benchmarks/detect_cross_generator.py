"""Real or generated, across generators: Wang et al. (2020)'s question on our data.

    python benchmarks/detect_cross_generator.py --out runs/detect-bench            # about 2 h on a 2-core Intel Xeon
    python benchmarks/detect_cross_generator.py --out runs/detect-bench --gan-steps 300 --det-steps 100  # smoke

1. Trains (or reuses, when OUT/<name> already holds a run) one run per generator preset with
   ``ganforge train`` (``--gan-steps`` each): dcgan-fashion-mnist (the training generator),
   wgan-gp-fashion-mnist, cgan-fashion-mnist (conditional), and any ``--run NAME=PATH`` given
   (e.g. a StyleGAN2 run where that family exists).
2. Writes diffusion samples when ``--diffusion PATH`` names a baseline saved by ``ganforge bench
   gan-vs-diffusion`` (OUT/diffusion.npz, DDIM-50).
3. Trains two detectors on DCGAN samples against Fashion-MNIST train images, with and without
   the blur+JPEG augmentation (``ganforge detect train``).
4. Evaluates both on Fashion-MNIST test images against every generator, seen (DCGAN, new samples)
   and unseen (``ganforge detect eval``): AP, accuracy, accuracy on real and on generated images.

Everything runs through the command line, one process after another; the JSON of step 4 is
OUT/cross.json and the table is printed. The paper's finding to check: AP stays high on unseen
generators while accuracy at the 0.5 threshold drops (miscalibration), and augmentation helps.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from _common import Parser, positive_int, run_main

ROOT = Path(__file__).resolve().parents[1]
PRESETS = {"dcgan": "dcgan-fashion-mnist", "wgan-gp": "wgan-gp-fashion-mnist", "cgan": "cgan-fashion-mnist"}


def ganforge(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    cmd = [sys.executable, "-m", "ganforge", *map(str, args)]
    print("$", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, env=env, check=True)


def diffusion_samples(model_dir: Path, out: Path, n: int) -> None:
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from ganforge.api import to_uint8_hwc
    from ganforge.bench import diffusion

    model = diffusion.load(model_dir)
    images = diffusion.sample(model, n, sampler="ddim", steps=50, seed=1)
    np.savez_compressed(out, images=to_uint8_hwc(images))


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--gan-steps", type=positive_int, default=3000)
    p.add_argument("--det-steps", type=positive_int, default=10000)
    p.add_argument("--n", type=positive_int, default=5000, help="generated images to train the detector on")
    p.add_argument("--eval-n", type=positive_int, default=2000)
    p.add_argument("--run", action="append", default=[], metavar="NAME=PATH", help="an extra generator run")
    p.add_argument("--diffusion", help="a diffusion-seedK folder written by ganforge bench gan-vs-diffusion")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sources = {}
    for name, preset in PRESETS.items():
        run = out / name
        if not (run / "checkpoints").is_dir():
            ganforge("train", preset, "--out", run, "--steps", args.gan_steps, "--quiet")
        sources[name] = run
    for spec in args.run:
        name, _, path = spec.partition("=")
        sources[name] = Path(path)
    if args.diffusion:
        npz = out / "diffusion.npz"
        if not npz.is_file():
            diffusion_samples(Path(args.diffusion), npz, args.eval_n)
        sources["diffusion"] = npz
    detectors = []
    for label, extra in (("det-aug", []), ("det-noaug", ["--no-augment"])):
        det = out / label
        if not (det / "detector.json").is_file():
            ganforge("detect", "train", "--real", "fashion-mnist", "--fake", sources["dcgan"], "--out", det,
                     "--n", args.n, "--steps", args.det_steps, *extra)
        detectors.append(det)
    ganforge("detect", "eval", *detectors, "--real", "fashion-mnist:test", "--fake", *sources.values(),
             "--n", args.eval_n, "--json", out / "cross.json")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main))
