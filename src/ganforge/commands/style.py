"""Commands on runs of style-based generators (StyleGAN2; interpolate also for DCGAN-style and
conditional runs, in z):

    ganforge mix RUN --rows 1,2,3 --cols 10,11,12 --layers 0-3 --out mix.png
    ganforge interpolate RUN --seeds 1,7,3 --frames 60 --space w --out walk.gif
    ganforge project RUN target.png --space w|w+ --steps 1000 --out proj/
    ganforge edit RUN --seed 5 --attribute Shirt --strength -3:3:7 --out edit.png [--latent proj/latent.npy]

A run without the capability gets the one-line capability error (exit code 2).
"""
from __future__ import annotations

import json
import os
import re
import signal
import sys
from pathlib import Path

from ..errors import ConfigError
from . import MAX_SEED, add_provenance_argument, add_run_arguments, seed


def seed_list(text: str, flag: str) -> list[int]:
    items = str(text).split(",")
    if any(not v.strip() for v in items) and str(text).strip():  # '1,,2' had been read as 1,2
        raise ConfigError(f"{flag} has an empty item in '{text}'; write the seeds with one comma between "
                          f"each, e.g. 1,2,3")
    try:
        seeds = [int(v) for v in items if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integer seeds, got '{text}'") from None
    if not seeds or min(seeds) < 0 or max(seeds) > MAX_SEED:
        raise ConfigError(f"{flag} takes comma-separated integer seeds in 0..{MAX_SEED}, got '{text}'")
    return seeds


def _check_out(out: Path, suffixes: tuple[str, ...], force: bool) -> None:
    if out.suffix.lower() not in suffixes:
        raise ConfigError(f"--out {out}: use a {' or '.join(suffixes)} file name")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a directory; give a file name, e.g. {out / ('out' + suffixes[0])}")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose another --out")


def _without_repeats(seeds: list[int]) -> list[int]:
    """``seeds`` without a seed equal to the one before it (or, for the last, to the first)."""
    kept = [s for i, s in enumerate(seeds) if i == 0 or s != seeds[i - 1]]
    while len(kept) > 1 and kept[-1] == kept[0]:
        kept.pop()
    if len(kept) < 2:  # one seed repeated: a walk needs another
        kept.append((kept[0] + 1) % (MAX_SEED + 1))
    return kept


def _frames_uint8(images):
    """float [N, C, H, W] in [-1, 1] -> a list of PIL images."""
    from PIL import Image

    from ..inference import to_uint8_hwc

    arr = to_uint8_hwc(images)
    return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arr]


def _record(args, run, operation: str, **extra):
    """The provenance record of a style command's image (None with --no-provenance)."""
    from .. import provenance

    return None if args.no_provenance else provenance.for_run(run, operation=operation, ema=not args.no_ema,
                                                              **{k: v for k, v in extra.items() if v is not None})


def _seeds_text(seeds: list[int], most: int = 10) -> str:
    """'1,2,3', or for a long list '0,1,2,...,79 (80 seeds)' (the message had printed every seed)."""
    if len(seeds) <= most:
        return ",".join(map(str, seeds))
    return f"{','.join(map(str, seeds[:3]))},...,{seeds[-1]} ({len(seeds)} seeds)"


def _class_text(run, label, asked) -> str:
    """', class Shirt' for a conditional run's image (and that it is the default without --class:
    a run with classes had silently shown class 0), '' for an unconditional run."""
    classes = run.class_names
    if label is None or not classes:
        return ""
    default = "" if asked is not None else " (the default; choose another with --class)"
    return f", class {classes[int(label[0])]}{default}"


def _check_class(run, asked) -> None:
    """--class on an unconditional run whose family has a conditional variant: name that variant
    (the library's message suggested a conditional DCGAN preset to a StyleGAN2 run)."""
    from ..objectives.base import OBJECTIVES

    variant = f"{run.config.objective}_conditional"
    if asked is not None and run.class_names is None and variant in OBJECTIVES:
        raise ConfigError(f"run {run.run_dir} is unconditional (objective={run.config.objective}); it cannot "
                          f"generate a requested class: drop --class, or train a conditional run with "
                          f"objective={variant}")


def _layers_text(layers: list[int]) -> str:
    """[4, 5, 6, 7, 9] -> '4-7,9': the layers taken, as parsed ('4-' had been echoed as typed)."""
    runs: list[list[int]] = []
    for i in layers:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(f"{lo}-{hi}" if hi > lo else str(lo) for lo, hi in runs)


def cmd_mix(args) -> int:
    from .. import api, provenance
    from ..atomic import atomic_path

    rows, cols = seed_list(args.rows, "--rows"), seed_list(args.cols, "--cols")
    out = Path(args.out)
    _check_out(out, (".png", ".jpg", ".jpeg"), force=True)
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    run.require("mix")
    _check_class(run, args.class_)
    grid = run.mix(rows, cols, args.layers, ema=not args.no_ema, truncation=args.truncation,
                   labels=args.class_)
    _check_out(out, (".png", ".jpg", ".jpeg"), args.force)  # after the options are checked (a quick grid)
    label = run.sample_labels(1, args.class_)
    layers = run.objective.parse_layers(args.layers)
    meta = _record(args, run, "mix", rows=rows, cols=cols, layers=_layers_text(layers), truncation=args.truncation,
                   labels=label)  # the layers as parsed: an open range ('4-') names them
    with atomic_path(out) as tmp:
        provenance.save_grid(grid, tmp, meta, nrow=1 + len(cols), padding=1)
    print(f"ganforge: wrote a {len(rows)}x{len(cols)} style-mixing grid to {out}: rows {_seeds_text(rows)} "
          f"keep their styles except layers {_layers_text(layers)} ({len(layers)} of "
          f"{run.objective.nets['G'].num_ws}), "
          f"taken from columns {_seeds_text(cols)}{_class_text(run, label, args.class_)}")
    return 0


def cmd_interpolate(args) -> int:
    from .. import api, provenance
    from ..atomic import atomic_path

    seeds = seed_list(args.seeds, "--seeds")
    fps_given, args.fps = args.fps is not None, 20.0 if args.fps is None else args.fps
    if len(seeds) < 2:
        raise ConfigError(f"--seeds needs at least 2 seeds to walk between, got '{args.seeds}'; add another, "
                          f"e.g. --seeds {seeds[0]},{(seeds[0] + 1) % (MAX_SEED + 1)}")
    if not (len(seeds) <= args.frames <= 10_000 and 0.002 <= args.fps <= 50):  # NaN fails too
        raise ConfigError(f"--frames must be in {len(seeds)}..10000 (a frame per seed at least) and --fps in "
                          f"0.002..50 (browsers play GIF frames shorter than 20 ms at 100 ms), got "
                          f"{args.frames} and {args.fps}")
    # GIF frame times are whole centiseconds: the nearest one, said when it is not the rate asked for
    duration = max(20, 10 * round(100 / args.fps))
    still = sorted({a for a, b in zip(seeds, seeds[1:] + seeds[:1]) if a == b})
    if still:  # 1,2,1 loops back from 1 to 1: that part of the walk is a still frame
        print(f"ganforge: note: the walk stands still from seed {still[0]} to itself (equal seeds follow each "
              f"other{', counting the loop from the last seed back to the first' if seeds[-1] == seeds[0] else ''}"
              f"); drop the repeat, e.g. --seeds {','.join(map(str, _without_repeats(seeds)))}")
    out = Path(args.out)
    _check_out(out, (".gif", ".png"), force=True)
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    run.require("interpolate")
    _check_class(run, args.class_)
    frames = run.interpolate(seeds, args.frames, space=args.space, ema=not args.no_ema,
                             truncation=args.truncation, labels=args.class_)
    _check_out(out, (".gif", ".png"), args.force)  # after the options are checked (--force had been needed
    # to learn that --space w or --truncation does not apply to the run)
    space = args.space or ("w" if "mix" in run.capabilities else "z")  # the family's default
    label = run.sample_labels(1, args.class_)
    meta = _record(args, run, "interpolate", seeds=seeds, frames=args.frames, space=space,
                   truncation=args.truncation, labels=label)
    gif = out.suffix.lower() == ".gif"
    if fps_given and not gif:  # a grid has no frame rate: the option had been ignored without a word
        print(f"ganforge: note: --fps sets a GIF's frame rate; {out} is a PNG grid of the frames (10 a row), "
              f"so --fps {args.fps:g} is not used")
    with atomic_path(out) as tmp:
        if gif:
            provenance.save_gif(_frames_uint8(frames), tmp, meta, duration=duration)
        else:
            provenance.save_grid(frames, tmp, meta, nrow=min(args.frames, 10))
    rate = f", {1000 / duration:g} fps" + ("" if abs(1000 / duration - args.fps) < 1e-9 else
                                           f" (GIF frame times are whole centiseconds; asked {args.fps:g})")
    print(f"ganforge: wrote {args.frames} frames through seeds {seeds} ({space} space, "
          f"{'linear' if space == 'w' else 'slerp'}, looping{rate if gif else ''}"
          f"{_class_text(run, label, args.class_)}) to {out}")
    return 0


def _read_image(path: Path):
    """uint8 [H, W] (grayscale) or [H, W, 2|3|4] (LA, RGB, RGBA), the file's own mode kept (the run
    composites transparency on white and converts it, and says so); a one-line DataError when the
    file is missing or unreadable."""
    import numpy as np
    from PIL import Image

    from ..imageio import normalize, upright
    from ..errors import DataError

    if path.is_dir():
        raise DataError(f"{path} is a folder; pass one image file (png, jpg, ...)")
    if not path.is_file():
        raise DataError(f"image {path} does not exist; pass an image file (png, jpg, ...)")
    try:
        with Image.open(path) as img:
            if img.mode in ("L", "LA", "RGB", "RGBA"):
                return np.asarray(upright(img)).copy()  # as a viewer shows it
            # other modes as the data loader reads them: 16/32-bit samples scaled to 8 bits (PIL's
            # convert("RGB") had clipped a 16-bit PNG to two levels), palettes and CMYK to colour
            gray = img.mode in ("1", "La", "I", "F") or img.mode.startswith("I;16")
            return np.asarray(normalize(img, "L" if gray else "RGB")).copy()
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read image {path} ({type(exc).__name__}); pass a png or jpg file") from None


def cmd_project(args) -> int:
    import numpy as np
    import torch

    from .. import api, provenance
    from ..atomic import atomic_path, atomic_write_json

    if args.steps < 1:  # the library's "steps must be ..." had not named the option
        raise ConfigError(f"--steps must be an integer >= 1 (optimization steps), got {args.steps}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; project writes a folder (latent.npy, reconstruction.png), "
                          f"so give a folder name")
    if out.exists() and any(out.iterdir()) and not args.force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite its files or choose another --out")
    image = _read_image(Path(args.target))
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    run.require("project")
    from ..objectives._stylegan2_project import ProjectionInterrupted

    for note in run.objective.projection_target(image)[1]:  # before the steps: a wrong image can be stopped
        print(f"ganforge: note: {note}", flush=True)
    signum = None
    try:
        result = run.project(image, space=args.space, steps=args.steps, seed=args.seed, ema=not args.no_ema,
                             log=lambda step, loss: print(f"  step {step:5d}  loss {loss:.5f}", flush=True)
                             if not args.quiet else None)
    except ProjectionInterrupted as exc:  # Ctrl-C or SIGTERM: keep the latent so far, then exit 130 or 143
        result, signum = exc.result, exc.signum
    done = result["steps"]
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "latent.npy") as tmp:
        np.save(tmp, result["ws"].numpy())
    meta = _record(args, run, "project", target=Path(args.target).name, space=args.space, steps=done)
    extra = {} if meta is None else {"provenance": np.array(json.dumps(meta, sort_keys=True))}
    with atomic_path(out / "noise.npz") as tmp, open(tmp, "wb") as f:  # a file object: no '.npz' appended
        # arr_0, arr_1, ...: the layers in order; the record, as a samples .npz carries it (ganforge
        # provenance on the folder had called this file unlabelled and exited 1)
        np.savez(f, *[n.numpy() for n in result["noise"]], **extra)
    with atomic_path(out / "reconstruction.png") as tmp:
        provenance.save_grid(result["image"], tmp, meta, nrow=1, padding=0)
    with atomic_path(out / "progress.png") as tmp:  # target | snapshots during the optimization
        provenance.save_grid(torch.cat([result["target"], result["progress"]]), tmp, meta,
                             nrow=len(result["progress"]) + 1, padding=1)
    summary = {k: result[k] for k in ("psnr", "ssim", "space", "steps", "perceptual", "notes", "loss")}
    # run as given (relative to where project ran), and what edit --latent checks it against
    summary.update(target=str(args.target), run=str(args.run_dir), run_path=str(Path(args.run_dir).resolve()),
                   config_hash=provenance.run_config_hash(run), checkpoint=run.checkpoint.name, step=run.step,
                   latent_shape=list(result["ws"].shape), noise_file="noise.npz", interrupted=done < args.steps,
                   ema=not args.no_ema)  # the generator edit --latent must use for strength 0 to reproduce it
    atomic_write_json(out / "result.json", summary)
    ssim_text = f"{summary['ssim']:.4f}" if summary["ssim"] is not None else "n/a (image under 11 px)"
    if done < args.steps:  # stopped by a signal (one after the last step left the result complete)
        how = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        print(f"ganforge: {how} after {done} of {args.steps} steps; wrote the latent so far to "
              f"{out / 'latent.npy'} (PSNR {summary['psnr']:.2f} dB, SSIM {ssim_text}), with noise.npz, "
              f"reconstruction.png, progress.png and result.json", file=sys.stderr)
        return 128 + signum  # as a shell reports a command the signal stopped
    print(f"ganforge: projected {args.target} into {args.space.upper()} in {args.steps} steps "
          f"({result['perceptual']}): PSNR {summary['psnr']:.2f} dB, SSIM {ssim_text}")
    print(f"  {out / 'latent.npy'} (ws {list(result['ws'].shape)}), noise.npz (the noise maps, which edit "
          f"--latent reads with it), reconstruction.png, progress.png, result.json")
    return 0


def strength_list(text: str) -> list[float]:
    """'-3:3:7' (from:to:count, evenly spaced) or '-2,0,2' -> strengths: finite, at most 100."""
    import math

    try:
        if ":" in text:
            lo, hi, k = text.split(":")
            k = int(k)
            if not 1 <= k <= 100:
                raise ValueError
            values = [float(lo) + (float(hi) - float(lo)) * i / max(k - 1, 1) for i in range(k)]
        else:
            items = text.split(",")
            if any(not v.strip() for v in items) and text.strip():  # '1,,2', as --rows and --seeds refuse it
                raise ConfigError(f"--strength has an empty item in '{text}'; write the strengths with one comma "
                                  f"between each, e.g. -2,0,2")
            values = [float(v) for v in items if v.strip()]
        if 0 < len(values) <= 100 and all(math.isfinite(v) and abs(v) <= 1e3 for v in values):
            return values
    except ValueError:
        pass
    raise ConfigError(f"--strength takes FROM:TO:COUNT (e.g. -3:3:7, COUNT <= 100) or up to 100 comma-separated "
                      f"numbers within +-1000, got '{text}'")


def cmd_edit(args) -> int:
    import numpy as np

    from .. import api, provenance
    from ..atomic import atomic_path

    strengths = strength_list(args.strength)
    if args.latent is not None and args.seed is not None:  # the latent is the image: a seed would pick nothing
        raise ConfigError("--seed picks a generated image to edit and --latent gives the image itself; pass one "
                          "of them, not both")
    if args.latent is not None and args.class_ is not None:  # the class picks a generated image too
        raise ConfigError("--class picks the class of a generated image to edit and --latent gives the image "
                          "itself; pass one of them, not both")
    image_seed = 0 if args.seed is None else args.seed
    if args.n_train < 10:
        raise ConfigError(f"--n-train must be at least 10, got {args.n_train}")
    out = Path(args.out)
    _check_out(out, (".png", ".jpg", ".jpeg"), args.force)
    latent = noise = noise_path = None
    if args.latent is not None:
        try:
            latent = np.load(args.latent, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read --latent {args.latent} ({type(exc).__name__}); pass the "
                              f"latent.npy that ganforge project wrote") from None
        noise_path = Path(args.latent).with_name("noise.npz")
        noise = _read_noise(noise_path) if noise_path.is_file() else None
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    run.require("edit")
    _check_class(run, args.class_)
    if latent is not None:
        _check_projection_run(Path(args.latent), run, args.run_dir, ema=not args.no_ema)
    # a conditional run's image is of one class (it had always been class 0, unsaid), as in mix
    label = None if latent is not None else run.sample_labels(1, args.class_)
    result = run.edit(args.attribute, strengths, seed=None if latent is not None else image_seed, latent=latent,
                      noise=noise, n_train=args.n_train, ema=not args.no_ema,
                      labels=None if label is None else label[:1])
    meta = _record(args, run, "edit", attribute=result["attribute"], strengths=strengths,
                   seed=None if latent is not None else image_seed, n_train=args.n_train, labels=label,
                   direction_seed=result["direction_seed"],
                   latent=None if latent is None else str(args.latent),
                   noise=None if noise is None else str(noise_path))
    with atomic_path(out) as tmp:
        provenance.save_grid(result["images"], tmp, meta, nrow=len(strengths), padding=1)
    source = f"latent {args.latent}" if latent is not None else f"seed {image_seed}"
    held, pos = result.get("n_heldout"), result.get("n_heldout_positive")
    few = ""
    if held is not None and held < FEW_HELDOUT:
        few = f" on only {held} held-out images"
    elif pos is not None and min(pos, held - pos) < FEW_HELDOUT:
        # balanced accuracy is half the recall on one side: 4 held-out images of a rare class had
        # given 61%, over the warning's 60%, for a direction that moved nothing
        side = "classified as it" if pos < held - pos else "not classified as it"
        few = f", half of it on only {min(pos, held - pos)} held-out images {side}"
    print(f"ganforge: direction of '{result['attribute']}' in W from {result['n_train']} generated images "
          f"({result['positive_share']:.1%} classified as it; held-out balanced accuracy of the linear "
          f"classifier {result['val_balanced_accuracy']:.1%}{few})".replace("nan%", "not measured"))
    for s_, p in zip(result["strengths"], result["probability"]):
        print(f"  strength {s_:+.2f}  P({result['attribute']}) = {p:.3f}")
    acc = result["val_balanced_accuracy"]
    if acc == acc and acc < EDIT_MIN_ACCURACY:  # NaN: not measured
        print(f"ganforge: warning: the direction separates '{result['attribute']}' from the rest no better "
              f"than {acc:.0%} on held-out images (chance is 50%): these edits are not meaningful; train the "
              f"run longer, raise --n-train or pick another attribute")
    elif len(result["probability"]) > 1 and max(result["probability"]) - min(result["probability"]) < EDIT_MIN_CHANGE:
        low, high = min(result["probability"]), max(result["probability"])
        print(f"ganforge: warning: P({result['attribute']}) stays within {low:.3f}-{high:.3f} at every strength: "
              f"these edits do not change what the classifier sees; try larger strengths, raise --n-train, "
              f"train the run longer or pick another attribute")
    edits = f"{len(strengths)} edit{'' if len(strengths) == 1 else 's'}"
    print(f"ganforge: wrote {edits} of {source}{_class_text(run, label, args.class_)} to {out}")
    if latent is not None and noise is None:
        print(f"ganforge: note: no {noise_path} next to the latent (ganforge project writes it), so the fixed "
              f"default noise was used: the fine detail differs from the projection's reconstruction")
    return 0


def _check_projection_run(latent: Path, run, run_dir, *, ema: bool = True) -> None:
    """Refuse a latent that ganforge project fitted on another run, by the result.json it wrote
    beside it (only the shape had been checked, so another run's latent of the same shape was
    edited into an unrelated image); warn when only the checkpoint, or the generator (EMA or
    not, ``ema``), differs. No result.json: no
    check. Its "run" is as typed, relative to where project ran: "run_path" (resolved) and
    "config_hash" decide where recorded, else the typed path must end the edited run's path."""
    from .. import provenance

    path = latent.with_name("result.json")
    if not path.is_file():
        return
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        print(f"ganforge: warning: cannot read {path} ({type(exc).__name__}), so it is not checked that "
              f"--latent was projected on {run_dir}")
        return
    if not isinstance(record, dict) or not isinstance(record.get("run"), str):
        return
    here = Path(run_dir).resolve()
    if isinstance(record.get("run_path"), str):
        same = Path(record["run_path"]).resolve() == here or record.get("config_hash") == provenance.run_config_hash(
            run)  # the same run moved or copied elsewhere
    else:  # written before run_path: compare the typed path's named parts with the end of this run's path
        typed = Path(os.path.normpath(record["run"]))  # 'a/../b' -> 'b'; leading '..' kept
        tail = [p for p in typed.parts if p not in (typed.anchor, ".", "..")]
        if not tail:  # '.' or '..': where project ran is not known
            return
        same = (typed.is_absolute() and typed.resolve() == here) or list(here.parts[-len(tail):]) == tail
    if not same:
        raise ConfigError(f"--latent {latent} was projected on run {record.get('run_path') or record['run']} (its "
                          f"{path.name}), not on "
                          f"{run_dir}: its w means another image here; project the image on {run_dir} "
                          f"(ganforge project {run_dir} TARGET) or edit the run it was projected on")
    step = record.get("step")
    if record.get("checkpoint") != run.checkpoint.name and (step is None or step != run.step):
        at = f" (step {step})" if step is not None else ""
        print(f"ganforge: warning: --latent was projected on checkpoint {record.get('checkpoint')}{at} of this "
              f"run and this edit uses {run.checkpoint.name} (step {run.step}): strength 0 is not exactly the "
              f"projection's reconstruction; pass --checkpoint {record.get('checkpoint')} or project again")
    if isinstance(record.get("ema"), bool) and record["ema"] != ema:  # the two generators' images differ
        def name(e: bool) -> str:
            return "the EMA generator" if e else "the training generator (--no-ema)"

        print(f"ganforge: warning: --latent was projected with {name(record['ema'])} and this edit uses "
              f"{name(ema)}: strength 0 is not exactly the projection's reconstruction; "
              f"{'drop --no-ema' if record['ema'] else 'pass --no-ema'} or project again")


def _read_noise(path: Path) -> list:
    """The noise maps project wrote (noise.npz: arr_0, arr_1, ... in layer order)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return [z[f"arr_{i}"] for i in range(sum(k.startswith("arr_") for k in z.files))]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"cannot read {path} ({type(exc).__name__}), the noise maps of the projection next to "
                          f"--latent; project again, or move it away to edit with the default noise") from None


EDIT_MIN_ACCURACY = 0.6  # held-out balanced accuracy below which a direction is no better than chance
FEW_HELDOUT = 30  # held-out images (in all, or on one side) under which edit says how few its accuracy rests on
EDIT_MIN_CHANGE = 0.05  # the classifier's probability moving less than this over the strengths: no edit seen


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("mix", help="style-mixing grid of a style-based run (StyleGAN2)",
                              description="Rows keep their seed's styles except --layers, which come "
                                          "from the column's seed: 0-3 coarse (pose, shape), middle, "
                                          "fine (colour, texture).")
    add_run_arguments(s, out={"default": "mix.png", "help": "grid .png/.jpg (default mix.png)"},
                      force="overwrite --out if it exists")
    s.add_argument("--rows", required=True, help="comma-separated seeds of the rows, e.g. 1,2,3")
    s.add_argument("--cols", required=True, help="comma-separated seeds of the columns, e.g. 10,11,12")
    s.add_argument("--layers", default="0-3",
                   help="layers taken from the columns: a layer, a range or a comma-separated list of them, "
                        "e.g. 0-3, 4-7 or 1,5-6; an open range runs to the last layer (4-) or from layer 0 "
                        "(-3) (default 0-3)")
    s.add_argument("--truncation", type=float, metavar="PSI", help="truncation psi in [0, 1]")
    s.add_argument("--class", dest="class_", metavar="K", help="conditional runs: the class (index or name)")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_mix)

    s = subparsers.add_parser("interpolate", help="latent walk through seeds as a GIF",
                              description="A looping walk from seed to seed: linear in W (--space w, "
                                          "style-based runs) or spherical in Z (--space z, the only "
                                          "space of DCGAN-style, conditional and BigGAN runs).")
    add_run_arguments(s, out={"default": "walk.gif",
                              "help": ".gif animation or .png grid of the frames, 10 frames a row (default walk.gif)"},
                      force="overwrite --out if it exists")
    s.add_argument("--seeds", required=True, help="comma-separated seeds, at least 2, e.g. 1,7,3")
    s.add_argument("--frames", type=int, default=60, help="frames in the loop (default 60)")
    s.add_argument("--space", choices=["w", "z"],
                   help="w (linear; default of style-based runs) or z (slerp; default of the others)")
    s.add_argument("--fps", type=float, help="GIF frames per second (default 20); not used for a .png grid")
    s.add_argument("--truncation", type=float, metavar="T",
                   help="runs that support it: StyleGAN2 psi in [0, 1], BigGAN threshold > 0")
    s.add_argument("--class", dest="class_", metavar="K", help="conditional runs: the class (index or name)")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_interpolate)

    s = subparsers.add_parser("project", help="find the latent of a real image (StyleGAN2 inversion)",
                              description="Optimize w (or one w per layer, w+) and the noise maps from "
                                          "w_avg so that the run's generator reproduces TARGET; writes "
                                          "latent.npy, noise.npz, reconstruction.png, progress.png and "
                                          "result.json "
                                          "(PSNR/SSIM to the target).")
    add_run_arguments(s, out={"default": "proj", "help": "output folder (default proj/)"},
                      force="overwrite the files in --out")
    s.add_argument("target", metavar="TARGET", help="an image file (resized to the run's resolution, with a note)")
    s.add_argument("--space", choices=["w", "w+"], default="w",
                   help="w (one w for all layers; the default) or w+ (one per layer)")
    s.add_argument("--steps", type=int, default=1000, help="optimization steps (default 1000)")
    s.add_argument("--seed", type=seed, default=0,
                   help="seed of the start (the w_avg estimate and the initial noise maps): another seed gives "
                        "another result (default 0)")
    s.add_argument("--quiet", action="store_true", help="no per-100-step loss lines")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_project)

    s = subparsers.add_parser("edit", help="move an image along an attribute direction (InterFaceGAN, StyleGAN2)",
                              description="Find the direction of an attribute (a class of the dataset's "
                                          "classifier) in W with a linear classifier on generated images' "
                                          "w (the same images for every edit of a run, so every image "
                                          "moves along the same direction), and move the image of --seed "
                                          "(or --latent) along it.")
    add_run_arguments(s, out={"default": "edit.png", "help": "a row of edits .png (default edit.png)"},
                      force="overwrite --out if it exists")
    s.add_argument("--attribute", required=True, help="a class of the dataset classifier, by name or index (Shirt)")
    s.add_argument("--strength", default="-3:3:7",
                   help="FROM:TO:COUNT or comma-separated, in standard deviations of w along the direction "
                        "(default -3:3:7)")
    s.add_argument("--seed", type=seed, help="the generated image to edit (default 0; not with --latent)")
    s.add_argument("--latent", help="edit a projected image instead: the latent.npy of ganforge project "
                                    "(with the noise.npz next to it)")
    s.add_argument("--n-train", type=int, default=2000, help="generated images the direction is fitted on (2000)")
    s.add_argument("--class", dest="class_", metavar="K",
                   help="conditional runs: the class (index or name) of the --seed image (default the first)")
    # `--strength -3:3:7` (the documented form): let argparse read a value starting with a minus
    # and a digit as a value, not as an option (it already does for plain negative numbers).
    s._negative_number_matcher = re.compile(r"^-\.?\d")
    add_provenance_argument(s)
    s.set_defaults(func=cmd_edit)
