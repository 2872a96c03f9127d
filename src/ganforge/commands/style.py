"""Commands on runs of style-based generators (StyleGAN2):

    ganforge mix RUN --rows 1,2,3 --cols 10,11,12 --layers 0-3 --out mix.png
    ganforge interpolate RUN --seeds 1,7,3 --frames 60 --space w --out walk.gif

A run without the capability gets the one-line capability error (exit code 2).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from . import add_run_arguments


def seed_list(text: str, flag: str) -> list[int]:
    try:
        seeds = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integer seeds, got '{text}'") from None
    if not seeds or min(seeds) < 0:
        raise ConfigError(f"{flag} takes comma-separated non-negative integer seeds, got '{text}'")
    return seeds


def _check_out(out: Path, suffixes: tuple[str, ...], force: bool) -> None:
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"--out {out}: use a {' or '.join(suffixes)} file name")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose another --out")


def _frames_uint8(images):
    """float [N, C, H, W] in [-1, 1] -> a list of PIL images."""
    from PIL import Image

    from ..api import to_uint8_hwc

    arr = to_uint8_hwc(images)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]


def cmd_mix(args) -> int:
    from torchvision.utils import save_image

    from .. import api
    from ..atomic import atomic_path

    rows, cols = seed_list(args.rows, "--rows"), seed_list(args.cols, "--cols")
    out = Path(args.out)
    _check_out(out, (".png", ".jpg", ".jpeg"), args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    run.require("mix")
    grid = run.mix(rows, cols, args.layers, ema=not args.no_ema, truncation=args.truncation,
                   labels=args.class_)
    with atomic_path(out) as tmp:
        save_image(grid, tmp, nrow=1 + len(cols), normalize=True, value_range=(-1, 1), padding=1)
    layers = run.objective.parse_layers(args.layers)
    print(f"ganforge: wrote a {len(rows)}x{len(cols)} style-mixing grid to {out}: rows {rows} keep "
          f"their styles except layers {args.layers} ({len(layers)} of {run.objective.nets['G'].num_ws}), "
          f"taken from columns {cols}")
    return 0


def cmd_interpolate(args) -> int:
    from torchvision.utils import save_image

    from .. import api
    from ..atomic import atomic_path

    seeds = seed_list(args.seeds, "--seeds")
    if args.frames < 2 or args.fps <= 0:
        raise ConfigError(f"--frames must be >= 2 and --fps > 0, got {args.frames} and {args.fps}")
    out = Path(args.out)
    _check_out(out, (".gif", ".png"), args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    run.require("interpolate")
    frames = run.interpolate(seeds, args.frames, space=args.space, ema=not args.no_ema,
                             truncation=args.truncation, labels=args.class_)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".gif":
            pics = _frames_uint8(frames)
            pics[0].save(tmp, format="GIF", save_all=True, append_images=pics[1:], loop=0,
                         duration=round(1000 / args.fps))
        else:
            save_image(frames, tmp, nrow=min(args.frames, 10), normalize=True, value_range=(-1, 1))
    print(f"ganforge: wrote {args.frames} frames through seeds {seeds} ({args.space} space, "
          f"{'linear' if args.space == 'w' else 'slerp'}, looping) to {out}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("mix", help="style-mixing grid of a style-based run (StyleGAN2)",
                              description="Rows keep their seed's styles except --layers, which come "
                                          "from the column's seed: 0-3 coarse (pose, shape), middle, "
                                          "fine (colour, texture).")
    add_run_arguments(s, out={"default": "mix.png", "help": "grid .png/.jpg (default mix.png)"},
                      force="overwrite --out if it exists")
    s.add_argument("--rows", required=True, help="comma-separated seeds of the rows, e.g. 1,2,3")
    s.add_argument("--cols", required=True, help="comma-separated seeds of the columns, e.g. 10,11,12")
    s.add_argument("--layers", default="0-3", help="layers taken from the columns: 0-3, 4-7, 8-9,... (default 0-3)")
    s.add_argument("--truncation", type=float, metavar="PSI", help="truncation psi in [0, 1]")
    s.add_argument("--class", dest="class_", metavar="K", help="conditional runs: the class (index or name)")
    s.set_defaults(func=cmd_mix)

    s = subparsers.add_parser("interpolate", help="latent walk through seeds as a GIF (StyleGAN2)",
                              description="A looping walk from seed to seed: linear in W (--space w) "
                                          "or spherical in Z (--space z).")
    add_run_arguments(s, out={"default": "walk.gif", "help": ".gif animation or .png strip (default walk.gif)"},
                      force="overwrite --out if it exists")
    s.add_argument("--seeds", required=True, help="comma-separated seeds, at least 2, e.g. 1,7,3")
    s.add_argument("--frames", type=int, default=60, help="frames in the loop (default 60)")
    s.add_argument("--space", choices=["w", "z"], default="w", help="w (linear, default) or z (slerp)")
    s.add_argument("--fps", type=float, default=20.0, help="GIF frames per second (default 20)")
    s.add_argument("--truncation", type=float, metavar="PSI", help="truncation psi in [0, 1]")
    s.add_argument("--class", dest="class_", metavar="K", help="conditional runs: the class (index or name)")
    s.set_defaults(func=cmd_interpolate)
