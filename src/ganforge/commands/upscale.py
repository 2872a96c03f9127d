"""`ganforge upscale` and `ganforge eval-sr`: inference and evaluation of runs that can upscale.

    ganforge upscale RUN INPUT --out OUT [--tile 256] [--overlap N] [--interp ALPHA]
    ganforge eval-sr RUN --data DIR|photos:test [--scale 4] [--json OUT]
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError, warn
from . import (IMAGE_SUFFIXES, add_device_argument, add_json_argument, add_provenance_argument, add_run_arguments,
               add_skip_existing_argument, check_distinct_outputs, check_images_open, check_out_folder,
               file_stamps, interrupted, json_output, outputs_to_write, outside)


def _outputs(inp: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs: a file to a file, a folder to a folder."""
    from ..data.superres import image_files

    if inp.is_dir():
        check_out_folder(inp, out)
        files = image_files(inp, what="images to upscale", option="INPUT")
        return [(p, out / p.relative_to(inp).with_suffix(".png")) for p in outside(files, out)]
    if not inp.is_file():
        raise ConfigError(f"INPUT {inp} does not exist; pass an image file or a folder of images")
    if out.suffix.lower() not in IMAGE_SUFFIXES:
        raise ConfigError(f"--out {out}: give an image file name such as {out}.png")
    return [(inp, out)]


def _gray(image) -> bool:
    """Whether a uint8 [h, w, 3] image is grayscale: its three channels equal everywhere."""
    return bool((image[..., 0] == image[..., 1]).all() and (image[..., 1] == image[..., 2]).all())


PROGRESS_TILES = 16  # an image of this many tiles or more gets progress lines (a 1500 px photo: 36)


def _tile_progress(src: Path):
    """``on_tile(done, total)`` printing a line per tenth of a large image's tiles (or every 10 s):
    a 1500x1500 photo had taken 71 s without a word."""
    from ..progress import Tenths

    lines = []

    def on_tile(done: int, total: int) -> None:
        if total < PROGRESS_TILES:
            return
        if not lines:
            lines.append(Tenths(lambda line: print(line, flush=True), total,
                                lambda n: f"  {src.name}: {n}/{total} tiles"))
        lines[0](done)

    return on_tile


WRITE_NOTE_PIXELS = 50_000_000  # outputs this large get a line before their file is written


def _say_size(src: Path, dst: Path, width: int, height: int) -> None:
    """Before a large upscale: a warning when the result will be more than Pillow opens (its
    decompression-bomb limit, which ganforge's readers keep), and a line that the file is being
    written, which for hundreds of megapixels takes minutes (a 6000x6000 photo had gone silent)."""
    from PIL import Image

    pixels = width * height
    limit = Image.MAX_IMAGE_PIXELS and 2 * Image.MAX_IMAGE_PIXELS  # Pillow refuses past twice the warning size
    if limit and pixels > limit:
        warn(f"{src.name} upscales to {width}x{height} ({pixels / 1e6:.0f} megapixels), over the "
             f"{limit / 1e6:.0f} megapixels Pillow opens: it will be written, but Pillow-based tools (ganforge's "
             f"own readers too) will refuse to read {dst.name}; upscale a crop or a smaller copy instead")
    if pixels >= WRITE_NOTE_PIXELS:
        print(f"  {src.name}: {width}x{height} ({pixels / 1e6:.0f} megapixels); writing {dst.name} after the "
              f"tiles takes a while at this size", flush=True)


def cmd_upscale(args) -> int:
    from .. import api, provenance
    from ..atomic import atomic_path
    from ..data.superres import read_image
    from ..signals import sigterm_interrupts

    # the run's capability before the options and INPUT (read as images): a vocoder run given a
    # .wav had been told to delete its unreadable "image"; from the config alone, no weights read
    api.check_capability(args.run_dir, "upscale")
    if args.tile < 0:
        raise ConfigError(f"--tile must be >= 0 (0: whole image), got {args.tile}")
    if args.overlap is not None and args.overlap < 0:
        raise ConfigError(f"--overlap must be >= 0, got {args.overlap}")
    all_pairs = _outputs(Path(args.input), Path(args.out))
    check_distinct_outputs(all_pairs)
    pairs = outputs_to_write(all_pairs, force=args.force, skip_existing=args.skip_existing)
    if not pairs:
        print(f"ganforge: nothing left to upscale into {args.out}")
        return 0
    check_images_open(src for src, _ in pairs)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="upscale")
    run.require("upscale")
    record = None if args.no_provenance else provenance.for_run(
        run, operation="upscale", scale=run.objective.scale, interp=args.interp, ema=not args.no_ema)
    before = file_stamps(dst for _, dst in pairs)  # the old outputs --force replaces
    try:
        with sigterm_interrupts():  # SIGTERM as Ctrl-C: the image being written leaves no temporary
            for src, dst in pairs:
                lr = read_image(src)
                _say_size(src, dst, lr.shape[1] * run.objective.scale, lr.shape[0] * run.objective.scale)
                sr = run.upscale(lr, tile=args.tile, overlap=args.overlap,
                                 interp=args.interp, ema=not args.no_ema, on_tile=_tile_progress(src))
                if _gray(lr):  # a grayscale input had come back RGB, its channels up to a level apart
                    sr = sr.mean(axis=2).round().astype(sr.dtype)
                with atomic_path(dst) as tmp:
                    embedded = provenance.save(sr, tmp, None if record is None else {**record, "input": src.name})
                note = "" if embedded or record is None else f" (no provenance: {dst.suffix} carries no metadata)"
                print(f"ganforge: {src} -> {dst} ({sr.shape[1]}x{sr.shape[0]}){note}", flush=True)
    except KeyboardInterrupt as exc:
        return interrupted(exc, args.out, folder=Path(args.input).is_dir(), total=len(all_pairs),
                           pending=[dst for _, dst in pairs], before=before)
    return 0


def cmd_eval_sr(args) -> int:
    from .. import api
    from ..data.superres import load_images
    from ..atomic import atomic_write_json
    from ..metrics.paired import PSNR_MAX
    from ..metrics.superres import BASELINE, LPIPS, UNCAPPED, evaluate_sr

    if args.tile < 0:
        raise ConfigError(f"--tile must be >= 0 (0: whole image), got {args.tile}")
    out = json_output(args.json, args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="upscale")
    run.require("upscale")
    scale = run.objective.scale
    if args.scale is not None and args.scale != scale:
        raise ConfigError(f"--scale {args.scale} does not match the run's sr.scale={scale}; "
                          f"drop --scale or pass --scale {scale}")
    if args.data == "photos":  # never the training photographs by accident
        args.data = "photos:test"
    images, names = load_images(args.data, option="--data PATH")
    where = Path(args.run_dir).resolve()  # "." has no name
    label = where.name or str(where)
    if label == BASELINE:  # a run named "bicubic" had replaced the baseline's row
        label = f"{where.parent.name}/{label}"
    label += f" (interp {args.interp:g})" if args.interp is not None else ""
    methods = {label: lambda lr: run.upscale(lr, tile=args.tile, interp=args.interp,
                                             ema=not args.no_ema)}
    lpips = LPIPS()
    warnings: list[str] = []
    table = evaluate_sr(images, scale, methods, lpips=lpips, names=names, warnings=warnings)
    ema = not args.no_ema and run.ema_weights  # what was used: a run without EMA copies uses its own
    cols = ["psnr_y", "ssim_y"] + (["lpips"] if lpips.available else []) + \
        ([UNCAPPED] if UNCAPPED in table[BASELINE] else [])
    heads = {"psnr_y": "psnr_y (dB)", UNCAPPED: f"{UNCAPPED} (dB)"}  # the JSON's keys, with their unit
    widths = {c: max(10, len(heads.get(c, c)) + 2) for c in cols}
    width = max(map(len, table)) + 2
    print(f"x{scale} super-resolution on {len(images)} image(s) of {args.data}; Y channel, "
          f"{scale}-pixel border cropped; {'EMA weights' if ema else 'raw weights (no EMA)'}")
    print(f"{'method':<{width}}" + "".join(f"{heads.get(c, c):>{widths[c]}}" for c in cols))
    for name, row in table.items():
        print(f"{name:<{width}}" + "".join(f"{'-':>{widths[c]}}" if row[c] is None else f"{row[c]:>{widths[c]}.4f}"
                                           for c in cols))
    if not lpips.available:
        print(f"lpips: not computed ({lpips.reason})")
    for w in warnings:
        print(f"warning: {w}")
    if out is not None:
        payload = {"run": str(args.run_dir), "model": label, "checkpoint": str(run.checkpoint), "step": run.step,
                   "ema": ema, "data": args.data, "images": names, "scale": scale, "interp": args.interp,
                   "protocol": f"Y of BT.601, border = scale, PIL bicubic degradation, uint8; psnr_y in dB, "
                               f"capped at {PSNR_MAX:g} ({UNCAPPED}: the mean without the images where "
                               f"some method reaches the cap)",
                   "psnr_max": PSNR_MAX, "warnings": warnings,
                   "results": table, "lpips": lpips.available or lpips.reason}
        atomic_write_json(out, payload)
        print(f"ganforge: wrote {out}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("upscale", help="super-resolve images with a trained SR run",
                              description="Upscale an image (or a folder of images) of any size "
                                          "with a super-resolution run, tile by tile.")
    add_run_arguments(s, out={"required": True, "help": "output image (or folder when INPUT is one)"},
                      force="overwrite existing outputs")
    s.add_argument("input", metavar="INPUT", help="an image file or a folder of images")
    s.add_argument("--tile", type=int, default=256,
                   help="LR tile size (default 256); memory stays bounded for any image size (0: whole image)")
    s.add_argument("--overlap", type=int, default=None,
                   help="LR pixels of context around each tile (default: the receptive radius, "
                        "at most 32)")
    s.add_argument("--interp", type=float, default=None, metavar="ALPHA",
                   help="ESRGAN network interpolation: (1-ALPHA) PSNR run + ALPHA this GAN run")
    add_device_argument(s)
    add_skip_existing_argument(s)
    add_provenance_argument(s)
    s.set_defaults(func=cmd_upscale)

    s = subparsers.add_parser("eval-sr", help="PSNR/SSIM (Y channel) of an SR run against bicubic",
                              description="Degrade each HR image (bicubic), upscale it with the run "
                                          "and with bicubic, and report Y-channel PSNR (dB) and SSIM "
                                          "with a border of scale pixels cropped, and whether EMA or "
                                          "raw weights (--no-ema) were used. PSNR is capped at 100 dB "
                                          "(an exact match's is infinite): where a method reaches the "
                                          "cap on an image (bicubic on a flat one), a warning names the "
                                          "images and psnr_y_uncapped gives each method's mean without "
                                          "them, since the cap can reverse a ranking of means.")
    add_run_arguments(s)
    s.add_argument("--data", required=True,
                   help="folder of HR images, or photos:test (the held-out offline photographs)")
    s.add_argument("--scale", type=int, default=None, help="must equal the run's sr.scale")
    s.add_argument("--interp", type=float, default=None, metavar="ALPHA",
                   help="evaluate the PSNR/GAN interpolation with this ALPHA")
    s.add_argument("--tile", type=int, default=256, help="LR tile size (default 256; 0: whole image)")
    add_device_argument(s)
    add_json_argument(s, "also write the results and the protocol to this JSON file")
    s.set_defaults(func=cmd_eval_sr)
