"""`ganforge sample`: a grid (.png/.jpg) or arrays (.npz) drawn from a trained run; by class,
truncated, or one row per pyramid level (LAPGAN). The parser is cli.py's.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError


SAMPLE_N = 64  # ganforge sample's --n when neither --n nor --per-class is given


def _refuse_overwrite(path: Path, force: bool) -> None:
    from ..rundir import check_output_file

    check_output_file(path, force=force)  # exists without --force, a directory, unwritable parent


def _save_points(run, points, path: Path, suffix: str, meta) -> None:
    """Samples of a point run: ``points`` float32 [N, D] in a .npz, else a scatter plot over
    the mixture's modes."""
    import io
    import json

    import numpy as np
    from PIL import Image

    from .. import provenance
    from ..report.plots import points_png

    if suffix == ".npz":
        extra = {} if meta is None else {"provenance": np.array(json.dumps(meta, sort_keys=True))}
        with open(path, "wb") as f:  # a path: numpy adds ".npz" to a name that ends ".NPZ"
            np.savez_compressed(f, points=points.numpy().astype(np.float32), **extra)
        return
    png = points_png(points, data=run.config.data.name, step=run.step)
    provenance.save(Image.open(io.BytesIO(png)).convert("RGB"), path, meta)


def cmd_sample(args) -> int:
    import json

    import numpy as np

    from .. import api, provenance
    from ..atomic import atomic_path

    out = Path(args.out)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".jpg", ".jpeg", ".npz"):
        sound = ("; sound comes from an audio run's ganforge vocode or ganforge convert"
                 if suffix in (".wav", ".flac", ".mp3", ".ogg") else "")
        raise ConfigError(f"--out {out}: use a .png/.jpg name for a grid or .npz for an array{sound}")
    if args.n is not None and args.n <= 0:
        raise ConfigError(f"--n must be positive, got {args.n}")
    if args.per_class is not None and args.per_class <= 0:
        raise ConfigError(f"--per-class must be positive, got {args.per_class}")
    if args.per_class is not None and args.class_ is not None:
        raise ConfigError("--per-class draws every class and --class one; pass one of them")
    if args.per_class is not None and args.n is not None:  # --per-class sets the count itself
        raise ConfigError(f"--n and --per-class cannot be combined (--per-class {args.per_class} draws "
                          f"{args.per_class} of every class); drop one of them")
    args.n = SAMPLE_N if args.n is None else args.n
    if args.pyramid and suffix == ".npz":
        raise ConfigError("--pyramid draws an image with one row per sample; use a .png/.jpg --out")
    # the run first: a mistyped run next to an earlier grid is the error to name, not the grid
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="sample")
    count = args.n if args.per_class is None else args.per_class * len(run.class_names or [1])
    api.check_sample_memory(run, count, f"--n {count}" if args.per_class is None else f"--per-class {args.per_class}")
    # the options the run refuses before an earlier grid: --force had been needed to learn of them
    if args.class_ is not None:
        run.sample_labels(1, args.class_)
    if args.truncation is not None or args.truncation_cutoff is not None:
        run.sample(0, truncation=args.truncation, truncation_cutoff=args.truncation_cutoff)
    _refuse_overwrite(out, args.force)
    if args.pyramid:
        return _sample_pyramid(run, args, out)
    from ..labels import grid_columns, grid_labels

    n, labels, per_row = args.n, args.class_, grid_columns(args.n)
    if args.per_class is not None:  # conditional runs: one labeled row per class
        from ..synthetic import balanced_labels, require_conditional

        labels = balanced_labels(args.per_class, len(require_conditional(run)))
        n, per_row = len(labels), args.per_class
    elif labels is None and run.class_names and suffix != ".npz":  # a grid: one class per row
        labels = grid_labels(n, len(run.class_names), per_row)  # (an array: balanced classes)
    y = run.sample_labels(n, labels)  # None for unconditional runs; a bad class fails here
    images = run.sample(n, seed=args.seed, ema=not args.no_ema, labels=y,
                        truncation=args.truncation, truncation_cutoff=args.truncation_cutoff)
    drawn = {k: v for k, v in (("truncation", args.truncation), ("truncation_cutoff", args.truncation_cutoff))
             if v is not None}  # what the grid needs to be drawn again
    meta = None if args.no_provenance else provenance.for_run(run, operation="sample", seed=args.seed,
                                                               labels=y, ema=not args.no_ema, **drawn)
    with atomic_path(out) as tmp:
        if run.point_dim is not None:  # 2-D points (toy mixtures): the array, or a scatter plot
            _save_points(run, images, tmp, suffix, meta)
        elif suffix == ".npz":
            extra = {} if y is None else {"labels": y.numpy(), "class_names": np.array(run.class_names)}
            if meta is not None:  # arrays have no metadata slot: the record rides along as JSON
                extra["provenance"] = np.array(json.dumps(meta, sort_keys=True))
            with open(tmp, "wb") as f:  # a path: numpy adds ".npz" to a.NPZ's temporary name, and
                np.savez_compressed(f, images=api.to_uint8_hwc(images), **extra)  # the rename failed
        elif args.per_class is not None or (args.class_ is None and run.class_names):  # a class per row
            from ..labels import labeled_grid

            provenance.save(labeled_grid(images, y, run.class_names, per_row), tmp, meta)
        else:
            provenance.save_grid(images, tmp, meta, nrow=per_row)
    stage = run.objective.preview_caption()  # a growing run: which stage drew them (upsampled)
    print(f"ganforge: wrote {n} samples{_of_classes(y, run.class_names)} from {run.checkpoint} (step "
          f"{run.step}{f'; {stage}' if stage else ''}) to {out}")
    return 0


def _of_classes(y, names) -> str:
    """' of class Dress' (the one class asked for: the grid has no caption), ' of 10 classes', or ''
    for an unconditional run."""
    if y is None:
        return ""
    drawn = sorted(set(y.tolist()))
    return f" of class {names[drawn[0]]}" if len(drawn) == 1 else f" of {len(drawn)} classes"


def _sample_pyramid(run, args, out: Path) -> int:
    """Each sample's levels, coarse to fine, side by side (nearest-upsampled to the last size)."""
    import torch
    import torch.nn.functional as F

    from .. import provenance
    from ..atomic import atomic_path
    from ..labels import interleaved_labels, labeled_grid
    from ..synthetic import balanced_labels, require_conditional

    run.require("levels")
    n, labels = args.n, args.class_
    if args.per_class is not None:  # a row per sample: per_class rows of each class
        labels = balanced_labels(args.per_class, len(require_conditional(run)))
        n = len(labels)
    elif labels is None and run.class_names:  # one row per sample: the classes in turn
        labels = interleaved_labels(n, len(run.class_names))
    y = run.sample_labels(n, labels)
    levels = run.sample(n, seed=args.seed, ema=not args.no_ema, labels=y, return_levels=True)
    size = levels[-1].shape[-1]
    tiles = torch.stack([F.interpolate(x, size=(size, size), mode="nearest") for x in levels], 1)
    meta = None if args.no_provenance else provenance.for_run(run, operation="sample --pyramid", seed=args.seed,
                                                               labels=y, ema=not args.no_ema)
    with atomic_path(out) as tmp:  # [n, levels, C, H, W] -> one row of levels per sample
        if y is not None and args.class_ is None:  # rows of several classes: each row named
            picture = labeled_grid(tiles.flatten(0, 1), y.repeat_interleave(len(levels)), run.class_names,
                                   len(levels))
            provenance.save(picture, tmp, meta)
        else:
            provenance.save_grid(tiles.flatten(0, 1), tmp, meta, nrow=len(levels))
    sizes = " -> ".join(f"{x.shape[-1]}" for x in levels)
    print(f"ganforge: wrote {n} pyramids{_of_classes(y, run.class_names)} ({sizes} px) from "
          f"{run.checkpoint} (step {run.step}) to {out}")
    return 0
