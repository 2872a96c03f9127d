"""``ganforge translate RUN INPUT --out OUT`` (inference with any run that can translate) and
``ganforge translate-eval RUN`` (the family's held-out evaluation next to the trivial baseline:
PSNR / SSIM of paired runs, FID / KID of unpaired ones)."""
from __future__ import annotations

import inspect
from pathlib import Path

from ..errors import ConfigError, DataError
from . import (add_device_argument, add_json_argument, add_provenance_argument, add_run_arguments,
               add_skip_existing_argument, check_distinct_outputs, check_images_open, check_out_folder,
               file_stamps, interrupted, json_output, outputs_to_write, outside)


def _inputs(path: Path) -> list[Path]:
    """The input file, or a folder's images, subfolders included (as upscale and training read)."""
    from ..data.folder import _image_files
    from ..imageio import EXTENSIONS

    if path.is_file():
        return [path]
    if path.is_dir():
        files = _image_files(path)
        if not files:
            raise DataError(f"{path} holds no images ({', '.join(sorted(EXTENSIONS))})")
        return files
    raise DataError(f"input {path} does not exist; pass an image file or a folder of images")


def translate_files(run, pairs: list[tuple[Path, Path]], *, direction: str, ema: bool,
                    tile: int | None = None, provenance: bool = True) -> None:
    """Translate each (input, output) pair's input (any size) and write its PNG output, with
    ganforge.provenance's record unless ``provenance`` is False."""
    import torch

    from .. import provenance as prov
    from ..atomic import atomic_path
    from ..imageio import read_array

    # runs that keep no EMA weights translate with their own (a model folder's config.json says)
    used_ema = ema and run.ema_weights
    record = prov.for_run(run, operation="translate", direction=direction, ema=used_ema) if provenance else None
    channels = run.objective.input_channels(direction)
    for path, dst in pairs:
        arr = read_array(path, "L" if channels == 1 else "RGB")  # upright, 8-bit, on white
        x = torch.from_numpy(arr.copy()).reshape(arr.shape[0], arr.shape[1], channels)
        x = x.permute(2, 0, 1).unsqueeze(0).float() / 127.5 - 1
        y = run.translate(x, direction=direction, ema=ema, tile=tile)[0]  # [C', H, W]
        y = ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
        with atomic_path(dst) as tmp:
            prov.save(y, tmp, None if record is None else {**record, "input": path.name})


def cmd_translate(args) -> int:
    from .. import api
    from ..objectives.pix2pix import check_tile
    from ..signals import sigterm_interrupts

    # the run's capability before --out and INPUT (read as images): a voice-conversion run given a
    # .wav had been told to delete its unreadable "image"; from the config alone, no weights read
    api.check_capability(args.run_dir, "translate")
    src, out = Path(args.input), Path(args.out)
    files = _inputs(src)
    single = src.is_file()
    if single and out.suffix.lower() not in (".png",):
        raise ConfigError(f"--out {out}: for one input image give a .png file name")
    if not single:
        check_out_folder(src, out)
        files = outside(files, out)
    targets = [out] if single else [out / p.relative_to(src).with_suffix(".png") for p in files]
    check_distinct_outputs(zip(files, targets))
    pairs = outputs_to_write(zip(files, targets), force=args.force, skip_existing=args.skip_existing)
    if not pairs:
        print(f"ganforge: nothing left to translate into {out}")
        return 0
    check_images_open(p for p, _ in pairs)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="translate")
    run.require("translate")
    check_tile(args.tile or None, run.objective.stride)  # before the first output is written
    direction = args.direction or run.objective.default_direction  # said below, and in the provenance
    before = file_stamps(dst for _, dst in pairs)  # the old outputs --force replaces
    try:
        with sigterm_interrupts():  # SIGTERM as Ctrl-C: the image being written leaves no temporary
            translate_files(run, pairs, direction=direction, ema=not args.no_ema,
                            tile=args.tile or None, provenance=not args.no_provenance)
    except KeyboardInterrupt as exc:
        return interrupted(exc, out, folder=not single, total=len(targets),
                           pending=[dst for _, dst in pairs], before=before)
    print(f"ganforge: translated {len(pairs)} image(s) {direction} with {run.checkpoint} "
          f"(step {run.step}) -> {out}")
    return 0


def cmd_translate_eval(args) -> int:
    from .. import api
    from ..metrics.paired import format_translation
    from ..atomic import atomic_write_json
    from ..data.folder import folder_fix

    if args.n is not None and args.n <= 0:
        raise ConfigError(f"--n must be positive, got {args.n} (leave it out for every held-out pair)")
    out = json_output(args.json, args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, require="translate")
    options = {"extractor": args.extractor, "inception_weights": args.inception_weights}
    options = {k: v for k, v in options.items() if v is not None}  # the family's defaults otherwise
    if options and "extractor" not in inspect.signature(run.objective.translate_eval).parameters:
        flags = " and ".join(f"--{k.replace('_', '-')}" for k in options)
        raise ConfigError(f"{flags}: the features of FID/KID, which only unpaired runs use; {args.run_dir} "
                          f"(objective={run.config.objective}) is scored by PSNR/SSIM against its "
                          f"held-out targets: drop {flags}")
    if args.data is not None:
        if not args.data.startswith("folder:"):
            raise ConfigError(f"--data {args.data}: give the held-out folder as folder:PATH")
        run.config.data.name = args.data
    try:
        # a folder that cannot be read: this command's --data, not training's data.name=
        with folder_fix("pass --data folder:PATH with the folder of images the run was trained on"):
            result = run.translate_eval(ema=not args.no_ema, limit=args.n, **options)
    except DataError as exc:  # a model folder names its data folder without its path
        name = run.config.data.name
        folder = Path(name.removeprefix("folder:"))
        if args.data is not None or not name.startswith("folder:") or folder.is_absolute() or folder.exists():
            raise
        raise DataError(f"data.name={name}: a model folder names its data folder without its path, and "
                        f"there is no folder {folder} here; pass --data folder:PATH of the run's data") from exc
    print(format_translation(result))
    if out is not None:
        atomic_write_json(out, result)
        print(f"ganforge: wrote {out}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("translate", help="translate images with an image-to-image run",
                              description="Translate an image or a folder of images of any size "
                                          "(padded to the network's stride and cropped back) "
                                          "with the run's generator in eval mode.")
    add_run_arguments(s, out={"required": True, "help": "a .png file (one input) or a folder"},
                      force="overwrite existing outputs")
    s.add_argument("input", metavar="INPUT", help="an image file or a folder of images")
    s.add_argument("--direction", choices=["AtoB", "BtoA"],
                   help="AtoB or BtoA; default: a paired run's own (translate.direction, the one way it "
                        "translates), an unpaired run's AtoB")
    s.add_argument("--tile", type=int, default=0,
                   help="translate in half-overlapping windows of this size, blended (e.g. the "
                        "training crop, data.resolution); 0 (default): the whole image at once")
    add_skip_existing_argument(s)
    add_provenance_argument(s)
    add_device_argument(s)
    s.set_defaults(func=cmd_translate)

    s = subparsers.add_parser("translate-eval", help="held-out evaluation of a translation run: "
                                                     "PSNR/SSIM (paired) or FID/KID (unpaired), "
                                                     "with the trivial baseline",
                              description="Evaluate a translation run on its held-out split next to the "
                                          "trivial baseline: PSNR (dB) and SSIM for paired runs, FID and "
                                          "KID for unpaired ones, with EMA or raw weights (--no-ema). PSNR "
                                          "is capped at 100 dB (an exact match's is infinite): where the "
                                          "model or the baseline reaches the cap on a pair (the grayscale "
                                          "input of a colorizer on a gray image), a warning names the pairs "
                                          "and psnr_uncapped gives the mean without them, since the cap "
                                          "can reverse a comparison of means.")
    add_run_arguments(s)
    s.add_argument("--n", type=int, default=None, help="evaluate at most N held-out pairs")
    s.add_argument("--extractor",
                   help="unpaired runs: features for FID/KID (inception, the default; fashion-mnist-cnn)")
    s.add_argument("--inception-weights", help="unpaired runs: path of the FID Inception weights (offline)")
    s.add_argument("--data", metavar="folder:PATH",
                   help="the folder of the run's data, whose held-out split is evaluated (default: the "
                        "run's data.name; a model folder names its folder without its path)")
    add_json_argument(s, "also write the numbers to this JSON file")
    s.set_defaults(func=cmd_translate_eval)
