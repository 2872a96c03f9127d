"""``ganforge detect``: is an image real or generated? (ganforge.detect, after Wang et al. 2020)

    ganforge detect train --real fashion-mnist --fake RUN [RUN ...] --out det/ [--no-augment]
    ganforge detect eval det/ [det2/ ...] --real fashion-mnist:test --fake SOURCE [SOURCE ...]
    ganforge detect score det/ FILE_OR_FOLDER

A generated-image SOURCE is a run directory (``--n`` samples of its EMA generator; ``--seed``
differs between train (0) and eval (1), so eval sees new samples), a samples .npz or a folder of
images. The real side is a dataset name with an optional split (``fashion-mnist:test``),
``folder:PATH`` or a folder. Everything is brought to the detector's size: folders and real
datasets are resized (a note names each one, from what size to what), runs and .npz files of
another size are an error. detect train's size is that of its runs and .npz files, whatever
their order among --fake (they must agree); with folders only, the largest of theirs.

Of a .npz or folder, the first ``--n`` images are used; where they carry labels (one subfolder
per class, an .npz with ``labels``: what ``ganforge augment`` writes, sorted by class) the first of
each class in turn, so that every class is seen. The detector records what it drew (those images
of each .npz/folder, the seeded draw of the real source), and eval leaves those images out: a
score on training images measures memory. A .npz or folder is known by its provenance records
(DRAW_ID: what wrote its images, from which config, step and seed), not its path: another copy
of a training source (``cp -r``, augment's folder and .npz of one draw) has the same images left
out, and one that holds only some of them is refused.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError, DataError
from . import MAX_SEED, add_json_argument, json_output, seed

SPLITS = ("train", "test")
EVAL_SEED = 1  # detect eval's default --seed (training's default is 0: other samples of a run)
# fake_draw["selection"] of a detector that drew labelled .npz/folder images classes in turn (older
# detectors, without it, drew the first --n in file order; eval leaves out whichever they drew)
INTERLEAVED = "class_interleaved"
# what identifies the samples a run drew for training (fake_draw["runs"]) in a provenance record
DRAW_KEYS = ("config_hash", "step", "seed")
# what a provenance record says of one image, not of the draw that made it (augment's PNGs carry
# their class and index, its .npz one record for all) or what does not change the pixels: the rest
# of a record (operation, config hash, checkpoint, step, seed, ema, truncation, ...) is the draw
PER_IMAGE_KEYS = ("index", "class", "generated_by", "version")
# what identifies a generator (a run's state): other draws of it are "the same generator"
GENERATOR_KEYS = ("config_hash", "step")
# fewer images per side than this (real, generated) in a validation or evaluation set: AP and
# accuracy carry a standard error of a few points, not the 4 decimals printed (a note says so)
SMALL_SIDE = 300


def _log(message: str) -> None:
    print(message, flush=True)


def _real_images(spec: str, *, n: int, seed: int, default_split: str, size=None, trained: dict | None = None):
    """(uint8 [<=n, C, H, W] real images from ``spec`` at ``size`` (resolution, channels) or
    native, the source's name, how they were drawn). ``trained``: the draw a detector trained on;
    when it came from this same source, its images are left out (an evaluation on them would
    measure memory, not detection)."""
    import torch

    from ..data import StreamingFolderDataset, load_dataset
    from ..data.base import adapt_images

    path = Path(spec).expanduser()
    if spec.startswith("folder:") or (path.is_dir() and ":" not in spec):
        name, split = (spec if spec.startswith("folder:") else f"folder:{path}"), "train"
    else:
        name, _, split = spec.partition(":")
        split = split or default_split
        if split not in SPLITS:
            raise ConfigError(f"--real {spec}: unknown split '{split}'; use {name}:train or {name}:test")
    from ..data.folder import folder_fix

    with folder_fix("pass a folder of images to --real"):  # not training's data.name advice
        ds = load_dataset(name, split=split)
    if isinstance(ds, StreamingFolderDataset) or not hasattr(ds, "images") or ds.images.dim() != 4:
        raise DataError(f"--real {spec}: not an image dataset that fits in memory; pass a named image "
                        f"dataset (fashion-mnist:test) or a folder of at most a few 100k images")
    images = ds.images
    source = f"folder:{_key(name.removeprefix('folder:'))}" if name.startswith("folder:") else f"{name}:{split}"
    pool = torch.arange(len(images))
    if trained and trained.get("source") == source and trained.get("size") == len(images):
        used = _draw(len(images), trained["seed"], trained["n"])
        keep = torch.ones(len(images), dtype=torch.bool)
        keep[used] = False
        pool = pool[keep]
        if not len(pool):
            raise DataError(f"--real {spec}: all {len(images)} images were used to train the detector; pass "
                            f"held-out real images (another folder, or a dataset's test split)")
        _log(f"ganforge: note: {spec}: leaving out the {len(used)} images the detector trained on "
             f"({len(pool)} left)")
    draw = {"source": source, "size": len(images), "seed": seed, "n": min(n, len(pool))}
    if len(pool) < n:
        _log(f"ganforge: warning: --real {spec} has {len(pool)} images{' left' if trained else ''}, fewer than "
             f"the {n} asked for; using {len(pool)}")
    images = images[pool[_draw(len(pool), seed, n)]]
    if size is not None and tuple(images.shape[1:]) != (size[1], size[0], size[0]):  # (C, H, W)
        _log(f"ganforge: note: resizing {spec} from {images.shape[2]}x{images.shape[3]}x{images.shape[1]} to the "
             f"detector's {size[0]}x{size[0]}x{size[1]} (resampling leaves traces a detector may learn)")
        images = adapt_images(images, size[0], size[1])
    return images, f"{name}:{split}" if not name.startswith("folder:") else name, draw


def _draw(total: int, seed: int, n: int):
    """Indices of the ``n`` images drawn from ``total`` with ``seed`` (a seeded permutation)."""
    import torch

    return torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:n]


def _fake_images(spec: str, *, n: int, seed: int, size=None, skip: int = 0, skip_interleaved: bool = True,
                 runs: dict | None = None):
    """(uint8 [<=n, C, H, W] generated images from a run, a .npz or a folder (see module doc), its
    kind); of a .npz or folder, not the ``skip`` a detector trained on (its selection of ``skip``
    images; ``skip_interleaved`` False: the first ``skip``, as older detectors drew them).
    ``runs``: where given, what identifies a run's draw (``_run_draw``) is added to it.
    A folder is read at ``size`` (resolution, channels), with a note when that resizes it."""
    from ..detect.detector import check_size
    from ..metrics.targets import is_run_dir, load_npz_samples

    path = Path(spec).expanduser()
    if is_run_dir(path):
        from .. import api
        from ..metrics.targets import run_samples

        run = api.load(path)
        if run.point_dim is not None:  # before sampling: [N, 2] points are no images
            raise DataError(f"--fake {spec} samples {run.point_dim}-D points ({run.config.data.name}); a "
                            f"detector needs a run that generates images")
        images, _, _ = run_samples(run, n=n, seed=seed)
        kind = "run"
        if runs is not None:
            runs[_key(spec)] = _run_draw(run, seed)
    elif path.is_file() and path.suffix.lower() == ".npz":
        images, labels = load_npz_samples(path, None)
        images = _select(images, labels, n, skip, skip_interleaved, spec)
        kind = "npz"
    elif path.is_dir():
        ds = _folder(path, "--fake", spec, resolution=size[0] if size else None, channels=size[1] if size else None)
        if size is not None:
            _resize_note(path, f"--fake {spec}", size)
        labels = ds.labels if getattr(ds, "class_names", None) else None  # one subfolder per class
        return _select(ds.images, labels, n, skip, skip_interleaved, spec), "folder"
    else:
        raise DataError(f"--fake {spec}: not a ganforge run directory, a samples .npz or a folder of "
                        f"images; pass one of those (e.g. the --out of ganforge train)")
    if size is not None:
        check_size(images, size[0], size[1], what=f"--fake {spec}: images")
    return images, kind


def _image_files(path: Path) -> list[Path]:
    """A folder's visible image files (recursive), sorted."""
    from ..data.imageio import EXTENSIONS

    return sorted(p for p in path.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(path).parts))


def _folder_shapes(path: Path) -> tuple[set, int]:
    """(the (width, height) of a folder's images, 1 if all are grayscale else 3), from their headers."""
    from PIL import Image

    sizes, gray = set(), True
    for file in _image_files(path):
        try:
            with Image.open(file) as img:
                sizes.add(img.size)
                gray = gray and img.mode in ("1", "L", "LA", "I", "I;16", "F")
        except (OSError, ValueError):  # the loader skips it with its own warning
            continue
    return sizes, 1 if gray else 3


def _resize_note(path: Path, what: str, size) -> None:
    """A note when the folder's images (``what``: the flag and folder) are read at another ``size``
    (resolution, channels) than their own: resampling leaves traces a detector may learn."""
    sizes, channels = _folder_shapes(path)
    r, c = size
    if not sizes or (sizes == {(r, r)} and channels == c):
        return
    shown = sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh))
    native = (f"{shown[0][0]}x{shown[0][1]}x{channels}" if len(shown) == 1 else
              f"sizes {shown[0][0]}x{shown[0][1]} to {shown[-1][0]}x{shown[-1][1]} (x{channels})")
    _log(f"ganforge: note: resizing {what} from {native} to {r}x{r}x{c} (resampling leaves traces a detector "
         f"may learn)")


def _folder(path: Path, flag: str, spec: str, **size):
    """A folder of images held in memory, for ``flag`` (--fake); the loader's training hint
    (set data.name=...) replaced by what to pass here."""
    from ..data import StreamingFolderDataset, load_dataset

    try:
        ds = load_dataset(f"folder:{path}", **size)
    except DataError as exc:
        raise _folder_error(exc, flag, spec) from None
    if isinstance(ds, StreamingFolderDataset):
        raise DataError(f"{flag} {spec}: folder too large to hold in memory; pass a samples .npz")
    return ds


def _folder_error(exc: DataError, flag: str, spec: str) -> DataError:
    """The folder loader's error with its training hint (set data.name=...) replaced by what to
    pass to ``flag``."""
    from ..data.folder import TRAIN_FIX

    text = str(exc)
    if not text.endswith(TRAIN_FIX):
        return exc
    return DataError(f"{flag} {spec}: {text[:-len(TRAIN_FIX)]}pass a folder of images to {flag}")


def _train_size(fixed: dict, folders: list[str]) -> tuple[int, int]:
    """detect train's (resolution, channels), whatever the order of --fake: that of its runs and
    .npz files (``fixed``: spec -> uint8 [N, C, H, W] images; they must agree, they are not
    resized), else the largest of its folders' (each at the size training would read it)."""
    from ..data import dataset_info
    from ..detect.detector import check_size

    if fixed:  # the first run or .npz sets it; one of another size is refused (in either order)
        first = next(iter(fixed.values()))
        size = (first.shape[2], first.shape[1])
        for spec, images in fixed.items():
            check_size(images, size[0], size[1], what=f"--fake {spec}: images")
        return size
    infos = []
    for spec in folders:
        try:
            infos.append(dataset_info(f"folder:{Path(spec).expanduser()}"))
        except DataError as exc:
            raise _folder_error(exc, "--fake", spec) from None
    return max(i["resolution"] for i in infos), max(i["channels"] for i in infos)


def _check_sides(args) -> None:
    """Refuse a folder given as both --real and --fake: its images would be labelled real and
    generated at once, and the detector would learn nothing (or the order of the batches)."""
    real = args.real.removeprefix("folder:")
    if not Path(real).expanduser().is_dir():
        return
    for spec in args.fake:
        if _key(spec) == _key(real):
            raise ConfigError(f"--real {args.real} and --fake {spec} are the same folder: its images would be "
                              f"labelled both real and generated; pass real images to --real and generated "
                              f"ones to --fake")


def _run_draw(run, seed: int) -> dict:
    """What identifies the samples a run draws with ``seed``: its config hash, checkpoint and step,
    as a provenance record (ganforge sample's .npz) carries them."""
    from .. import provenance

    return {"config_hash": provenance.config_hash(run.config), "checkpoint": run.checkpoint.name,
            "step": run.step, "seed": seed}


def _select(images, labels, n: int, skip: int, skip_interleaved: bool, spec: str):
    """``n`` of ``images`` (of a .npz or folder; ``labels`` [N] or None), not the ``skip`` a
    detector trained on: the first ones, or with labels the first of each class in turn
    (class_interleaved), which the first n of a class-sorted source were not (only its first
    classes)."""
    import numpy as np
    import torch

    from ..metrics.targets import class_interleaved

    labels = None if labels is None else np.asarray(labels, np.int64)
    keep = np.ones(len(images), dtype=bool)
    if skip:
        if skip >= len(images):
            raise DataError(f"--fake {spec}: all {len(images)} images were used to train the detector; pass "
                            f"generated images it has not seen (a run directory draws new ones)")
        if labels is not None and skip_interleaved:
            keep[class_interleaved(labels, skip)] = False
            _log(f"ganforge: note: {spec}: leaving out the {skip} images the detector trained on (the first "
                 f"of each class in turn)")
        else:
            keep[:skip] = False
            _log(f"ganforge: note: {spec}: leaving out the first {skip} images (the detector trained on them)")
    rest = np.flatnonzero(keep)
    if len(rest) < n:
        _log(f"ganforge: warning: --fake {spec} has {len(rest)} images{' left' if skip else ''}, fewer than "
             f"--n {n}; using {len(rest)}")
    pick = rest[:n] if labels is None else rest[class_interleaved(labels[rest], n)]
    return images[torch.from_numpy(pick)]


def _generators(records) -> list[dict]:
    """The generators (config hash and step, GENERATOR_KEYS) that provenance records or run
    draws name, each once; records without them (--no-provenance, a folder of photos) name none."""
    found: dict = {}
    for r in records:
        if all(r.get(k) is not None for k in GENERATOR_KEYS):
            g = {k: r[k] for k in GENERATOR_KEYS}
            found[json.dumps(g, sort_keys=True)] = g
    return list(found.values())


def _trained_generators(sources: dict) -> set:
    """(config hash, step) of every generator a detector trained on: its runs, and the ones the
    provenance records of its .npz/folder sources name (older detectors: their runs only)."""
    runs = list(sources.get("fake_draw", {}).get("runs", {}).values())
    named = [g for gens in sources.get("generators", {}).values() for g in gens]
    return {tuple(g[k] for k in GENERATOR_KEYS) for g in _generators(runs + named)}


def _small_sample_note(what: str, n_real: int, n_fake: int, fix: str, *, fewest: bool = False) -> str | None:
    """A one-line note when ``what`` (AP and accuracy) comes from fewer than SMALL_SIDE images on
    a side: accuracy's standard error is up to 0.5/sqrt(N) (N images in all), a few points.
    ``fewest``: the counts are the smallest of several rows."""
    if min(n_real, n_fake) >= SMALL_SIDE:
        return None
    se = 50 / max(1, n_real + n_fake) ** 0.5  # percentage points, at accuracy 0.5
    return (f"ganforge: note: {what} from {'as few as ' if fewest else ''}{n_real} real and {n_fake} generated "
            f"images (under {SMALL_SIDE} "
            f"per side): accuracy's standard error is up to {se:.0f} points and AP is as noisy, so the 4 "
            f"decimals overstate their precision; {fix} and compare only at equal n")


def _small_eval_fix(args, rows: dict, n_real: int) -> str:
    """What gives eval SMALL_SIDE images a side: a larger --n while --n is what limits them; else
    more images in the sources that hold fewer (a .npz or folder, the real images), or a lower --n
    (to compare at equal n)."""
    short = [spec for spec, r in rows.items() if r["n_fake"] < min(args.n, SMALL_SIDE)]
    if args.n < SMALL_SIDE:
        return f"use --n {SMALL_SIDE} or more (and as many real images)"
    held = [f"--fake {spec} holds {rows[spec]['n_fake']}" for spec in short]
    if n_real < SMALL_SIDE:
        held.append(f"--real {args.real} gives {n_real}")
    fewest = min([rows[spec]["n_fake"] for spec in short] + ([n_real] if n_real < SMALL_SIDE else []))
    return (f"{'; '.join(held)} (fewer than --n {args.n}): add images to {'it' if len(held) == 1 else 'them'}, "
            f"or lower --n to {fewest}")


def _other_seed(seed: int) -> int:
    """A valid --seed that differs from ``seed`` (the next one)."""
    return seed + 1 if seed < MAX_SEED else seed - 1


def _key(spec: str) -> str:
    """A source's identity whichever way its path is spelt (seen in training or not)."""
    return str(Path(spec).expanduser().resolve())


def cmd_train(args) -> int:
    from .. import detect

    out = Path(args.out)
    _check_out(out, args.force)
    if args.n < 2:
        raise ConfigError(f"--n must be at least 2, got {args.n}")
    recipe = detect.Recipe(steps=args.steps, batch_size=args.batch_size, lr=args.lr, width=args.width,
                           depth=args.depth, augment=not args.no_augment, seed=args.seed)
    recipe.check()
    _check_sides(args)
    import torch

    from ..metrics.targets import is_run_dir

    runs: dict = {}  # each run's draw, as the provenance records of its samples name it
    # runs and .npz files first: their size is the detector's (folders are resized to it), so that
    # the order of --fake does not decide which sources are resized or refused
    folders = [spec for spec in args.fake if Path(spec).expanduser().is_dir()
               and not is_run_dir(Path(spec).expanduser())]
    drawn: dict = {}  # spec -> (uint8 [<=n, C, H, W] images, kind)
    for spec in args.fake:
        if spec not in folders and spec not in drawn:
            drawn[spec] = _fake_images(spec, n=args.n, seed=args.seed, runs=runs)
            images = drawn[spec][0]
            if images.shape[2] != images.shape[3]:
                raise DataError(f"--fake {spec}: images are {images.shape[2]}x{images.shape[3]}; the "
                                f"detector needs square images")
    size = _train_size({spec: images for spec, (images, _) in drawn.items()}, folders)
    detect.check_network(recipe, size[0], size[1])  # before the folders are read
    for spec in folders:
        if spec not in drawn:
            drawn[spec] = _fake_images(spec, n=args.n, seed=args.seed, size=size)
    fakes = [drawn[spec][0] for spec in args.fake]
    sources = {_key(spec): drawn[spec][1] for spec in args.fake}
    used = {_key(spec): len(drawn[spec][0]) for spec in args.fake}  # how many of a .npz or folder (which: _select)
    fake = torch.cat(fakes)
    # the generators behind .npz/folder sources (their provenance records), so that eval knows
    # other draws of them (a run directory, another seed) as the same generator
    records = {key: _records(Path(key)) for key, kind in sources.items() if kind != "run"}
    generators = {key: _generators(recs) for key, recs in records.items()}
    # the draw behind each .npz/folder source (its provenance records), so that eval knows another
    # copy of it (cp -r, augment's .npz of the same draw) by its records, not its path
    draws = {key: _draw_of(records[key], Path(key), kind) for key, kind in sources.items() if kind != "run"}
    real, real_name, real_draw = _real_images(args.real, n=len(fake), seed=args.seed, default_split="train",
                                              size=size)
    _check_balance(args, len(real), len(fake))
    val_real, val_fake = (round(len(x) * recipe.val_fraction) for x in (real, fake))  # as detect.train splits
    _log(f"ganforge: training a detector on {len(real) - val_real} real ({real_name}) and {len(fake) - val_fake} "
         f"generated images (holding out {val_real} + {val_fake} for validation) at "
         f"{size[0]}x{size[0]}x{size[1]}, {recipe.steps} steps, augmentation "
         f"{'blur+JPEG' if recipe.augment else 'off'} -> {out}")
    # what was drawn, so that an evaluation can leave these very images out (and know a run's
    # samples written to a .npz or folder by their provenance record: "runs")
    fake_draw = {"seed": args.seed, "first": {k: used[k] for k, kind in sources.items() if kind != "run"},
                 "selection": INTERLEAVED, "runs": runs, "draws": {k: d for k, d in draws.items() if d}}
    det = detect.train(real, fake, recipe, sources={"real": real_name, "fake": sources, "real_draw": real_draw,
                                                    "fake_draw": fake_draw,
                                                    "generators": {k: g for k, g in generators.items() if g}},
                       log=_log)
    detect.save(det, out)
    v = det.meta.get("validation")
    if v:
        _log(f"ganforge: held-out validation: AP {v['ap']:.4f}, accuracy {v['acc']:.4f} (real "
             f"{v['real_acc']:.4f}, generated {v['fake_acc']:.4f}); {det.meta['train_seconds']} s")
        per_source = -(-SMALL_SIDE // (len(args.fake) * recipe.val_fraction))  # validation: a share of each side
        note = _small_sample_note("held-out validation", v["n_real"], v["n_fake"],
                                  f"validation holds {recipe.val_fraction:.0%} of each side: use --n "
                                  f"{per_source:.0f} or more (and as many real images)")
        if note:
            _log(note)
    _log(f"ganforge: detector in {out}; {_eval_command(out, real_name, real_draw, args.fake, args.seed, runs)}")
    return 0


def _check_balance(args, n_real: int, n_fake: int) -> None:
    """Refuse a training set with fewer than half as many real images as generated ones (the real
    side is drawn to match the generated total, so only a small --real can unbalance it): a
    detector trained on 2 real and 50 generated images learns the ratio, not the difference."""
    if 2 * n_real >= n_fake:
        return
    per_source = n_real // len(args.fake)
    fix = f"lower --n to {per_source} (generated images per --fake source) or " if per_source >= 2 else ""
    raise ConfigError(f"--real {args.real} gives {n_real} real images for {n_fake} generated; a detector needs "
                      f"at least half as many real as generated: {fix}give more real images")


def _check_out(out: Path, force: bool) -> None:
    """--out is a new or empty folder, or (with --force) a detector folder holding nothing else:
    a detector is never written into a folder of other files (a dataset, a run), --force included;
    and it can be written (not under a file, nor in /proc): checked before training, not after."""
    from ..detect.detector import META, WEIGHTS
    from ..rundir import check_output_dir

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder name")
    check_output_dir(out, flag="--out")
    if not out.is_dir():
        return
    entries = sorted(p.name for p in out.iterdir())
    other = [name for name in entries if name not in (META, WEIGHTS)]
    if other:
        shown = ", ".join(other[:3]) + (", ..." if len(other) > 3 else "")
        raise ConfigError(f"--out {out} already exists and holds files that are not a detector's ({shown}); "
                          f"choose a new or empty folder (--force replaces only a detector)")
    if META in entries and not force:
        raise ConfigError(f"{out} already holds a detector; pass --force to overwrite it or choose another --out")


def _eval_command(out: Path, real_name: str, real_draw: dict, fakes: list[str], seed: int = 0,
                  runs: dict | None = None) -> str:
    """The follow-up ``detect eval`` command: on a named dataset's test split, or on the same folder
    (eval leaves out the real images the detector drew from it, see _real_images) while some are left;
    with a --seed other than training's ``seed`` where eval's default would redraw a run's samples."""
    import shlex

    if real_name.startswith("folder:") and real_draw["n"] >= real_draw["size"]:
        return (f"all {real_draw['size']} images of {real_name} trained it: evaluate it with held-out real "
                f"images, e.g. ganforge detect eval {shlex.quote(str(out))} --real folder:OTHER_FOLDER --fake ...")
    real = real_name if real_name.startswith("folder:") else f"{real_name.partition(':')[0]}:test"
    extra = ["--seed", str(_other_seed(seed))] if runs and seed == EVAL_SEED else []
    return "try: " + " ".join(["ganforge detect eval", shlex.quote(str(out)), "--real", shlex.quote(real),
                               "--fake", *map(shlex.quote, fakes), *extra])


def cmd_eval(args) -> int:
    from .. import detect
    from ..atomic import atomic_write_json

    if args.n < 1:
        raise ConfigError(f"--n must be positive, got {args.n}")
    out = json_output(args.json, args.force)
    detectors = [(d, detect.load(d)) for d in args.detectors]
    copies = _check_eval_sources(args, detectors)  # every refusal before the first table
    report = {"real": args.real, "n": args.n, "seed": args.seed, "detectors": []}
    real_cache: dict = {}
    generators: dict = {}  # per --fake source, the generators it comes from (_generators)
    for path, det in detectors:
        size = (det.resolution, det.channels)
        sources = det.meta.get("sources", {})
        trained_real = sources.get("real_draw")
        key = (size, json.dumps(trained_real, sort_keys=True))
        if key not in real_cache:
            real_cache[key] = _real_images(args.real, n=args.n, seed=args.seed, default_split="test", size=size,
                                           trained=trained_real)
        real, real_name, _ = real_cache[key]
        seen = set(sources.get("fake", {}))
        fake_draw = sources.get("fake_draw", {})
        trained_generators = _trained_generators(sources)
        rows = {}
        for spec in args.fake:
            drawn: dict = {}  # a run's draw: its config hash and step
            copy_of = copies.get((path, spec))  # another copy of a training source (provenance)
            if copy_of:
                _log(f"ganforge: note: {spec} holds the images of {copy_of}, which trained {path} (the same "
                     f"provenance records: {_describe_draw(fake_draw['draws'][copy_of])})")
            fake, kind = _fake_images(spec, n=args.n, seed=args.seed, size=size,
                                      skip=fake_draw.get("first", {}).get(copy_of or _key(spec), 0),
                                      skip_interleaved=fake_draw.get("selection") == INTERLEAVED, runs=drawn)
            if spec not in generators:  # read once per source, not once per detector
                generators[spec] = _generators(drawn.values() if kind == "run" else _records(Path(spec).expanduser()))
            # seen: this very source trained it, or another draw of a generator that did (the
            # same run and step, by provenance: another seed, a .npz of the run, the run of a .npz)
            same = any(tuple(g[k] for k in GENERATOR_KEYS) in trained_generators for g in generators[spec])
            seen_as = "source" if _key(spec) in seen or copy_of else "same generator" if same else "no"
            rows[spec] = {**detect.evaluate(det, real, fake), "seen_in_training": seen_as != "no",
                          "seen_as": seen_as, "kind": kind, **({"copy_of": copy_of} if copy_of else {})}
        report["detectors"].append({"detector": str(path), "augment": det.meta["recipe"]["augment"],
                                    "trained_on": sorted(seen), "real": real_name, "results": rows})
        aug = "blur+JPEG" if det.meta["recipe"]["augment"] else "no augmentation"
        print(f"detector {path} ({aug}; trained on {', '.join(sorted(seen)) or '?'}); real: {real_name}, "
              f"{len(real)} images")
        width = max(len("generated source"), *map(len, rows))
        shown = {"source": "yes", "same generator": "same generator", "no": "no"}
        print(f"  {'generated source':<{width}}  {'seen':<14}      n      AP     acc  real acc  gen acc  mean P(gen)")
        for spec, r in rows.items():
            print(f"  {spec:<{width}}  {shown[r['seen_as']]:<14} {r['n_fake']:>6} "
                  f"{r['ap']:>7.4f} {r['acc']:>7.4f} {r['real_acc']:>9.4f} {r['fake_acc']:>8.4f} "
                  f"{r['mean_p_fake']:>12.4f}")
        if any(r["seen_as"] == "same generator" for r in rows.values()):
            print("  seen: yes = this source trained the detector; same generator = other samples of a run "
                  "(config and step, by provenance) it trained on; no = another generator")
        smallest = min(rows.values(), key=lambda r: min(r["n_real"], r["n_fake"]))
        note = _small_sample_note("AP and accuracy", smallest["n_real"], smallest["n_fake"],
                                  _small_eval_fix(args, rows, len(real)), fewest=len(rows) > 1)
        if note:
            print(note)
    print("AP ranks real against generated at every threshold; accuracy uses P(gen) > 0.5. High AP "
          "with low accuracy means the detector separates but its threshold is miscalibrated "
          "(Wang et al. 2020).")
    if out is not None:
        atomic_write_json(out, report)
        print(f"ganforge: wrote {out}")
    return 0


def _check_eval_sources(args, detectors) -> dict:
    """Refuse, before anything is scored: a run or .npz (one size) for detectors of different sizes
    (one of them could not score it), a run whose --seed redraws a detector's training samples,
    a .npz or folder whose provenance records say it holds those samples (ganforge sample RUN
    --seed 0 writes what detect train drew; matched by config hash, step and seed, not by path),
    and one that holds some of the images of a training .npz/folder's draw but not all of them.
    Returns the copies: (detector path, spec) -> the training source whose images ``spec`` holds
    (same provenance records and count, another path: eval leaves out the same images)."""
    from ..metrics.targets import is_run_dir

    sizes = {(det.resolution, det.channels): path for path, det in detectors}
    records: dict = {}  # per --fake source, read once
    copies: dict = {}
    for spec in args.fake:
        path = Path(spec).expanduser()
        run, npz = is_run_dir(path), path.is_file() and path.suffix.lower() == ".npz"
        if len(sizes) > 1 and (run or npz):
            shown = ", ".join(f"{p} {r}x{r}x{c}" for (r, c), p in sizes.items())
            raise ConfigError(f"--fake {spec} holds images of one size, but the detectors work at different "
                              f"sizes ({shown}); evaluate detectors of different sizes in separate commands")
        for det_path, det in detectors:
            sources = det.meta.get("sources", {})
            fake_draw = sources.get("fake_draw", {})
            if run and sources.get("fake", {}).get(_key(spec)) == "run" and fake_draw.get("seed") == args.seed:
                raise ConfigError(f"--seed {args.seed} draws the very samples of {spec} that {det_path} trained "
                                  f"on (it trained with --seed {fake_draw['seed']}); use another --seed, e.g. "
                                  f"--seed {_other_seed(fake_draw['seed'])}")
            if run:
                continue
            if spec not in records:
                records[spec] = _records(path)
            copy_of = _copy_of(spec, records[spec], sources, det_path)
            if copy_of:
                copies[(det_path, spec)] = copy_of
            for run_key, drawn in fake_draw.get("runs", {}).items():
                if any(_same_draw(r, drawn) for r in records[spec]):
                    raise ConfigError(f"--fake {spec} holds samples of {run_key} (step {drawn['step']}) drawn with "
                                      f"seed {drawn['seed']}, as its provenance record says: the very samples "
                                      f"{det_path} trained on; draw others with another seed (ganforge sample "
                                      f"RUN --seed 1 ...) or pass the run directory")
    return copies


def _copy_of(spec: str, records: list[dict], sources: dict, det_path) -> str | None:
    """The training .npz/folder of a detector whose images ``spec`` (another path) holds, by their
    provenance records (_draw_of alike); an error where it holds some of a training source's
    draw but not the same set (which images to leave out is then unknown)."""
    draws = sources.get("fake_draw", {}).get("draws", {})
    if not records or not draws or _key(spec) in sources.get("fake", {}):
        return None
    path = Path(spec).expanduser()
    mine = _draw_of(records, path, "npz" if path.is_file() else "folder")
    if mine is None:
        return None
    ours = {json.dumps(d, sort_keys=True) for d in mine["records"]}
    for trained, theirs in draws.items():
        if not ours & {json.dumps(d, sort_keys=True) for d in theirs["records"]}:
            continue
        if mine == theirs:
            return trained
        raise ConfigError(f"--fake {spec} holds images of the draw {det_path} trained on ({trained}: "
                          f"{_describe_draw(theirs)}, by their provenance records) but not the same "
                          f"{theirs['images']} images, so those it trained on cannot be left out; pass "
                          f"{trained} itself, or images of another draw (another --seed)")
    return None


def _same_draw(record: dict, drawn: dict) -> bool:
    """Whether a provenance record is of the samples detect train drew (``drawn``): ganforge
    sample's images of the same run state and seed, from the EMA nets and untruncated, as detect
    draws them (an augment output or a truncated grid of seed 0 holds other images)."""
    return (record.get("operation") == "sample" and record.get("ema", True) is not False
            and record.get("truncation") is None and all(record.get(k) == drawn[k] for k in DRAW_KEYS))


def _draw_of(records: list[dict], path: Path, kind: str) -> dict | None:
    """What identifies the images of a .npz or folder (``kind``) by their provenance ``records``
    (None where none has one): the draws they name (each record less PER_IMAGE_KEYS, once, sorted),
    how many images it holds and whether each carries a record (a .npz's one record covers all).
    Two sources alike in all three hold the same images in the same order (a copy)."""
    import numpy as np

    if not records:
        return None
    draws = {json.dumps({k: v for k, v in r.items() if k not in PER_IMAGE_KEYS}, sort_keys=True) for r in records}
    if kind == "npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                count = len(data["images"])
        except (OSError, ValueError, KeyError):
            return None
    else:
        count = len(_image_files(path))
    return {"records": [json.loads(d) for d in sorted(draws)], "images": count,
            "complete": kind == "npz" or len(records) >= count}


def _describe_draw(draw: dict) -> str:
    """A draw's provenance in words: "augment of config HASH, step 30, seed 0"."""
    r = draw["records"][0]
    return f"{r.get('operation', '?')} of config {r.get('config_hash', '?')}, step {r.get('step', '?')}, " \
           f"seed {r.get('seed', '?')}"


def _records(path: Path) -> list[dict]:
    """The provenance records of a samples .npz or of a folder's images (those that carry one)."""
    from .. import provenance

    if path.is_dir():
        files = _image_files(path)
    else:
        files = [path] if path.is_file() else []
    return [r for r in (_record(provenance, f) for f in files) if r]


def cmd_score(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .. import detect, provenance
    from ..data import imageio
    from ..data.imageio import EXTENSIONS
    from ..metrics.targets import load_npz_samples

    det = detect.load(args.detector)
    r, mode = det.resolution, "L" if det.channels == 1 else "RGB"
    rows, images = [], []  # one row and one uint8 [C, r, r] image per scored image

    def add(name: str, img, tagged: bool) -> None:
        rows.append({"file": name, "ganforge_metadata": tagged,
                     "note": "" if img.size == (r, r) else f"resized from {img.size[0]}x{img.size[1]}"})
        images.append(_fit(img, r, det.channels))

    for target in map(Path, args.targets):
        if target.is_file() and target.suffix.lower() == ".npz":  # what ganforge augment/sample write
            array = load_npz_samples(target, None)[0].permute(0, 2, 3, 1).numpy()  # [N, H, W, C]
            tagged = _tagged(provenance, target)  # one record for the file's every image
            for i, arr in enumerate(array):
                add(f"{target}[{i}]", Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).convert(mode),
                    tagged)
        elif target.is_file():  # given by name: unreadable is an error
            try:
                img = imageio.read(target, mode)
            except DataError:
                raise DataError(f"cannot read image {target} (damaged, not an image, or too large); pass "
                                f"image files, folders of images or a samples .npz") from None
            add(str(target), img, _tagged(provenance, target))
        elif target.is_dir():
            found = sorted(p for p in target.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(target).parts))
            if not found:
                raise DataError(f"{target} holds no images ({', '.join(sorted(EXTENSIONS))})")
            for path in found:  # one unreadable file does not stop the folder's others
                try:
                    img = imageio.read(path, mode)  # upright, 8-bit, transparency on white: as training
                except DataError:
                    print(f"ganforge: warning: skipping {path}: not a readable image", file=sys.stderr, flush=True)
                    continue
                add(str(path), img, _tagged(provenance, path))
        else:
            raise DataError(f"{target} does not exist; pass an image file, a folder of images or a samples .npz")
    if not images:
        raise DataError(f"none of {', '.join(args.targets)} holds a readable image; pass image files, folders "
                        f"of images or a samples .npz")
    p = det.probabilities(torch.stack(images))
    results = [{"file": row["file"], "p_generated": float(pi), "ganforge_metadata": row["ganforge_metadata"],
                "note": row["note"]} for row, pi in zip(rows, np.asarray(p))]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print("P(generated)  metadata  file")
    for row in results:
        print(f"{row['p_generated']:>12.4f}  {'ganforge' if row['ganforge_metadata'] else '-':<8}  "
              f"{row['file']}{'  (' + row['note'] + ')' if row['note'] else ''}")
    return 0


def _fit(img, r: int, channels: int):
    """A PIL image -> uint8 [C, r, r] at the detector's size (a bicubic centre fit)."""
    import numpy as np
    import torch
    from PIL import Image, ImageOps

    arr = np.asarray(ImageOps.fit(img, (r, r), method=Image.Resampling.BICUBIC)).reshape(r, r, channels)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def _record(provenance, path: Path) -> dict | None:
    """The provenance record of an image or .npz, None where it has none or cannot be read."""
    try:
        return provenance.read(path)
    except (OSError, ValueError):
        return None


def _tagged(provenance, path: Path) -> bool:
    return _record(provenance, path) is not None


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("detect", help="real or generated? train, evaluate and apply a detector",
                              description="A small CNN real-vs-generated classifier with blur and JPEG "
                                          "augmentation (after Wang et al. 2020).")
    sub = s.add_subparsers(dest="detect_command", metavar="ACTION", parser_class=parser_class)

    t = sub.add_parser("train", help="train a detector on real images and generated ones")
    t.add_argument("--real", required=True, help="dataset[:split] (default split train), folder:PATH or a folder")
    t.add_argument("--fake", required=True, nargs="+", metavar="SOURCE",
                   help="run directories, samples .npz files or image folders; runs and .npz files of one "
                        "size, the detector's (folders are resized to it, or with folders only to the "
                        "largest of theirs, with a note), whatever their order")
    t.add_argument("--out", required=True, help="the detector folder to write")
    t.add_argument("--n", type=int, default=5000, help="generated images per source (default 5000); "
                                                         "as many real images as generated in total (at "
                                                         "least half as many, or it is refused)")
    t.add_argument("--steps", type=int, default=10000, help="training steps (default 10000)")
    t.add_argument("--batch-size", type=int, default=64, help="half real, half generated (default 64)")
    t.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    t.add_argument("--width", type=int, default=16, help="channels of the first layer (default 16)")
    t.add_argument("--depth", type=int, default=3, help="stride-2 stages (default 3)")
    t.add_argument("--no-augment", action="store_true", help="train without blur/JPEG/flip augmentation")
    t.add_argument("--seed", type=seed, default=0, help="sampling and training seed (default 0)")
    t.add_argument("--force", action="store_true",
                   help="overwrite a detector already in --out (a folder of other files is always refused)")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("eval", help="AP and accuracy per generated source, seen or not in training")
    e.add_argument("detectors", nargs="+", metavar="DETECTOR", help="detector folders")
    e.add_argument("--real", required=True, help="dataset[:split] (default split test), folder:PATH or a folder")
    e.add_argument("--fake", required=True, nargs="+", metavar="SOURCE",
                   help="run directories, samples .npz files or image folders")
    e.add_argument("--n", type=int, default=2000, help="images per source and real images (default 2000)")
    e.add_argument("--seed", type=seed, default=EVAL_SEED,
                   help=f"sampling seed (default {EVAL_SEED}: not training's samples)")
    add_json_argument(e, "also write the table to this JSON file")
    e.set_defaults(func=cmd_eval)

    c = sub.add_parser("score", help="P(generated) for each image of a file, folder or samples .npz")
    c.add_argument("detector", metavar="DETECTOR", help="a detector folder")
    c.add_argument("targets", nargs="+", metavar="FILE_OR_FOLDER",
                   help="image files, folders (recursive; an unreadable file is skipped with a warning) "
                        "or samples .npz files (each image scored, named FILE[i])")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=cmd_score)
