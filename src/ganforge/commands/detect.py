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

from ..detect import sources as src
from ..errors import ConfigError, DataError
from . import MAX_SEED, add_json_argument, json_output, seed

EVAL_SEED = 1  # detect eval's default --seed (training's default is 0: other samples of a run)
# fewer images per side than this (real, generated) in a validation or evaluation set: AP and
# accuracy carry a standard error of a few points, not the 4 decimals printed (a note says so)
SMALL_SIDE = 300


def _log(message: str) -> None:
    print(message, flush=True)


def _check_sides(args) -> None:
    """Refuse a folder given as both --real and --fake: its images would be labelled real and
    generated at once, and the detector would learn nothing (or the order of the batches)."""
    real = args.real.removeprefix("folder:")
    if not Path(real).expanduser().is_dir():
        return
    for spec in args.fake:
        if src.source_key(spec) == src.source_key(real):
            raise ConfigError(f"--real {args.real} and --fake {spec} are the same folder: its images would be "
                              f"labelled both real and generated; pass real images to --real and generated "
                              f"ones to --fake")


def _small_sample_note(what: str, n_real: int, n_fake: int, fix: str, *, fewest: bool = False) -> str | None:
    """A one-line note when ``what`` (AP and accuracy) comes from fewer than SMALL_SIDE images on
    a side: accuracy's standard error is up to 0.5/sqrt(N) (N images in all), a few points.
    ``fewest``: the counts are the smallest of several rows."""
    if min(n_real, n_fake) >= SMALL_SIDE:
        return None
    se = 50 / max(1, n_real + n_fake) ** 0.5  # percentage points, at accuracy 0.5
    shown = f"{se:.0f}" if se >= 0.95 else f"{se:.1f}"
    return (f"ganforge: note: {what} from {'as few as ' if fewest else ''}{n_real} real and {n_fake} generated "
            f"images (under {SMALL_SIDE} "
            f"per side): accuracy's standard error is up to {shown} point{'' if shown == '1' else 's'} "
            f"and AP is as noisy, so the 4 "
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
    fewest = min([rows[spec]["n_fake"] for spec in short] + ([n_real] if n_real < SMALL_SIDE else []),
                 default=args.n)
    return (f"{'; '.join(held)} (fewer than --n {args.n}): add images to {'it' if len(held) == 1 else 'them'}, "
            f"or lower --n to {fewest}")


def _other_seed(seed: int) -> int:
    """A valid --seed that differs from ``seed`` (the next one)."""
    return seed + 1 if seed < MAX_SEED else seed - 1


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
    totals: dict = {}  # how many images each .npz or folder holds
    for spec in args.fake:
        if spec not in folders and spec not in drawn:
            drawn[spec] = src.fake_images(spec, n=args.n, seed=args.seed, runs=runs, totals=totals)
            images = drawn[spec][0]
            if images.shape[2] != images.shape[3]:
                raise DataError(f"--fake {spec}: images are {images.shape[2]}x{images.shape[3]}; the "
                                f"detector needs square images")
    size = src.train_size({spec: images for spec, (images, _) in drawn.items()}, folders)
    detect.check_network(recipe, size[0], size[1])  # before the folders are read
    for spec in folders:
        if spec not in drawn:
            drawn[spec] = src.fake_images(spec, n=args.n, seed=args.seed, size=size, totals=totals)
    fakes = [drawn[spec][0] for spec in args.fake]
    sources = {src.source_key(spec): drawn[spec][1] for spec in args.fake}
    # how many of a .npz or folder (which ones: src.select)
    used = {src.source_key(spec): len(drawn[spec][0]) for spec in args.fake}
    fake = torch.cat(fakes)
    # the generators behind .npz/folder sources (their provenance records), so that eval knows
    # other draws of them (a run directory, another seed) as the same generator
    records = {key: src.records_of(Path(key)) for key, kind in sources.items() if kind != "run"}
    generators = {key: src.generators_of(recs) for key, recs in records.items()}
    # the draw behind each .npz/folder source (its provenance records), so that eval knows another
    # copy of it (cp -r, augment's .npz of the same draw) by its records, not its path
    draws = {key: src.draw_of(records[key], Path(key), kind) for key, kind in sources.items() if kind != "run"}
    real, real_name, real_draw = src.real_images(args.real, n=len(fake), seed=args.seed, default_split="train",
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
                 "selection": src.INTERLEAVED, "runs": runs, "draws": {k: d for k, d in draws.items() if d}}
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
    # a .npz or folder whose every image trained it: eval would refuse it (nothing left unseen)
    spent = {spec: used[src.source_key(spec)] for spec in args.fake
             if src.source_key(spec) in totals and used[src.source_key(spec)] >= totals[src.source_key(spec)]}
    _log(f"ganforge: detector in {out}; "
         f"{_eval_command(out, real_name, real_draw, args.fake, args.seed, runs, spent)}")
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
                  runs: dict | None = None, spent: dict | None = None) -> str:
    """The follow-up ``detect eval`` command: on a named dataset's test split, or on the same folder
    (eval leaves out the real images the detector drew from it, see src.real_images) while some are left;
    with a --seed other than training's ``seed`` where eval's default would redraw a run's samples.
    ``spent``: the .npz/folder sources whose every image (the count) trained it, which eval refuses:
    left out of the command, and said."""
    import shlex

    if real_name.startswith("folder:") and real_draw["n"] >= real_draw["size"]:
        return (f"all {real_draw['size']} images of {real_name} trained it: evaluate it with held-out real "
                f"images, e.g. ganforge detect eval {shlex.quote(str(out))} --real folder:OTHER_FOLDER --fake ...")
    real = real_name if real_name.startswith("folder:") else f"{real_name.partition(':')[0]}:test"
    spent = spent or {}
    said = "; ".join(f"all {n} images of --fake {spec} were drawn by its training" for spec, n in spent.items())
    left = [spec for spec in fakes if spec not in spent]
    if not left:
        return (f"{said}: evaluate it with generated images it has not seen, e.g. ganforge detect eval "
                f"{shlex.quote(str(out))} --real {shlex.quote(real)} --fake RUN (a run directory draws new ones)")
    extra = ["--seed", str(_other_seed(seed))] if runs and seed == EVAL_SEED else []
    return "try: " + " ".join(["ganforge detect eval", shlex.quote(str(out)), "--real", shlex.quote(real),
                               "--fake", *map(shlex.quote, left), *extra]) + (f" ({said})" if said else "")


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
    generators: dict = {}  # per --fake source, the generators it comes from (src.generators_of)
    for path, det in detectors:
        size = (det.resolution, det.channels)
        sources = det.meta.get("sources", {})
        trained_real = sources.get("real_draw")
        key = (size, json.dumps(trained_real, sort_keys=True))
        if key not in real_cache:
            real_cache[key] = src.real_images(args.real, n=args.n, seed=args.seed, default_split="test", size=size,
                                           trained=trained_real)
        real, real_name, _ = real_cache[key]
        seen = set(sources.get("fake", {}))
        fake_draw = sources.get("fake_draw", {})
        trained_generators = src.trained_generators_of(sources)
        rows = {}
        for spec in args.fake:
            drawn: dict = {}  # a run's draw: its config hash and step
            copy_of = copies.get((path, spec))  # another copy of a training source (provenance)
            if copy_of:
                _log(f"ganforge: note: {spec} holds the images of {copy_of}, which trained {path} (the same "
                     f"provenance records: {src.describe_draw(fake_draw['draws'][copy_of])})")
            fake, kind = src.fake_images(spec, n=args.n, seed=args.seed, size=size,
                                      skip=fake_draw.get("first", {}).get(copy_of or src.source_key(spec), 0),
                                      skip_interleaved=fake_draw.get("selection") == src.INTERLEAVED, runs=drawn)
            if spec not in generators:  # read once per source, not once per detector
                generators[spec] = src.generators_of(drawn.values() if kind == "run"
                                                     else src.records_of(Path(spec).expanduser()))
            # seen: this very source trained it, or another draw of a generator that did (the
            # same run and step, by provenance: another seed, a .npz of the run, the run of a .npz)
            same = any(tuple(g[k] for k in src.GENERATOR_KEYS) in trained_generators for g in generators[spec])
            # without provenance records (stripped, re-saved) nothing tells another generator from
            # copies of the training images: "no" had been claimed of re-saved training samples
            seen_as = ("source" if src.source_key(spec) in seen or copy_of else "same generator" if same
                       else "no" if generators[spec] else "unknown")
            rows[spec] = {**detect.evaluate(det, real, fake),
                          "seen_in_training": None if seen_as == "unknown" else seen_as != "no",
                          "seen_as": seen_as, "kind": kind, **({"copy_of": copy_of} if copy_of else {})}
        report["detectors"].append({"detector": str(path), "augment": det.meta["recipe"]["augment"],
                                    "trained_on": sorted(seen), "real": real_name, "results": rows})
        aug = "blur+JPEG" if det.meta["recipe"]["augment"] else "no augmentation"
        print(f"detector {path} ({aug}; trained on {', '.join(sorted(seen)) or '?'}); real: {real_name}, "
              f"{len(real)} images")
        width = max(len("generated source"), *map(len, rows))
        shown = {"source": "yes", "same generator": "same generator", "no": "no", "unknown": "unknown"}
        print(f"  {'generated source':<{width}}  {'seen':<14}      n      AP     acc  real acc  gen acc  mean P(gen)")
        for spec, r in rows.items():
            print(f"  {spec:<{width}}  {shown[r['seen_as']]:<14} {r['n_fake']:>6} "
                  f"{r['ap']:>7.4f} {r['acc']:>7.4f} {r['real_acc']:>9.4f} {r['fake_acc']:>8.4f} "
                  f"{r['mean_p_fake']:>12.4f}")
        if any(r["seen_as"] in ("same generator", "unknown") for r in rows.values()):
            print("  seen: yes = this source trained the detector; same generator = other samples of a run "
                  "(config and step, by provenance) it trained on; no = another generator"
                  + ("; unknown = no provenance records to tell (copies of the images it trained on, "
                     "re-saved without them, would score as if unseen)"
                     if any(r["seen_as"] == "unknown" for r in rows.values()) else ""))
        smallest = min(rows.values(), key=lambda r: min(r["n_real"], r["n_fake"]))
        if min(smallest["n_real"], smallest["n_fake"]) < SMALL_SIDE:  # the fix only where a note needs it
            print(_small_sample_note("AP and accuracy", smallest["n_real"], smallest["n_fake"],
                                     _small_eval_fix(args, rows, len(real)), fewest=len(rows) > 1))
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
            if (run and sources.get("fake", {}).get(src.source_key(spec)) == "run"
                    and fake_draw.get("seed") == args.seed):
                raise ConfigError(f"--seed {args.seed} draws the very samples of {spec} that {det_path} trained "
                                  f"on (it trained with --seed {fake_draw['seed']}); use another --seed, e.g. "
                                  f"--seed {_other_seed(fake_draw['seed'])}")
            if run:
                continue
            if spec not in records:
                records[spec] = src.records_of(path)
            copy_of = _copy_of(spec, records[spec], sources, det_path)
            if copy_of:
                copies[(det_path, spec)] = copy_of
            for run_key, drawn in fake_draw.get("runs", {}).items():
                if any(src.same_draw(r, drawn) for r in records[spec]):
                    raise ConfigError(f"--fake {spec} holds samples of {run_key} (step {drawn['step']}) drawn with "
                                      f"seed {drawn['seed']}, as its provenance record says: the very samples "
                                      f"{det_path} trained on; draw others with another seed (ganforge sample "
                                      f"RUN --seed 1 ...) or pass the run directory")
    return copies


def _copy_of(spec: str, records: list[dict], sources: dict, det_path) -> str | None:
    """The training .npz/folder of a detector whose images ``spec`` (another path) holds, by their
    provenance records (src.draw_of alike); an error where it holds some of a training source's
    draw but not the same set (which images to leave out is then unknown)."""
    draws = sources.get("fake_draw", {}).get("draws", {})
    if not records or not draws or src.source_key(spec) in sources.get("fake", {}):
        return None
    path = Path(spec).expanduser()
    mine = src.draw_of(records, path, "npz" if path.is_file() else "folder")
    if mine is None:
        return None
    ours = {json.dumps(d, sort_keys=True) for d in mine["records"]}
    for trained, theirs in draws.items():
        if not ours & {json.dumps(d, sort_keys=True) for d in theirs["records"]}:
            continue
        if mine == theirs:
            return trained
        raise ConfigError(f"--fake {spec} holds images of the draw {det_path} trained on ({trained}: "
                          f"{src.describe_draw(theirs)}, by their provenance records) but not the same "
                          f"{theirs['images']} images, so those it trained on cannot be left out; pass "
                          f"{trained} itself, or images of another draw (another --seed)")
    return None


def cmd_score(args) -> int:
    import numpy as np
    import torch
    from PIL import Image

    from .. import detect, provenance
    from .. import imageio
    from ..imageio import EXTENSIONS
    from ..metrics.targets import load_npz_samples

    from ..data.folder import MIN_SIZE, too_small

    det = detect.load(args.detector)
    r, mode = det.resolution, "L" if det.channels == 1 else "RGB"
    rows, images = [], []  # one row and one uint8 [C, r, r] image per scored image

    def add(name: str, img, tagged: bool) -> None:
        """``img`` read as RGB: scored in the detector's mode and size, with what changed noted. A
        2x2 image had been called 92% generated, a 242x242 grid of samples 0%, and a colour photo
        read as gray without a word."""
        notes = [] if img.size == (r, r) else [f"resized from {img.size[0]}x{img.size[1]}"]
        if max(img.size) > 4 * r:
            notes[-1] += (f", {max(img.size) / r:.0f}x the {r}x{r} the detector was trained on: its score "
                          f"means little here")
        if mode == "L" and np.ptp(np.asarray(img, dtype=np.int16), axis=2).any():
            notes.append("colour read as gray")
        rows.append({"file": name, "ganforge_metadata": tagged, "note": "; ".join(notes)})
        images.append(_fit(img.convert(mode), r, det.channels))

    def small(img) -> str | None:
        return too_small(*img.size) if min(img.size) < MIN_SIZE else None

    for target in map(Path, args.targets):
        if target.is_file() and target.suffix.lower() == ".npz":  # what ganforge augment/sample write
            array = load_npz_samples(target, None)[0].permute(0, 2, 3, 1).numpy()  # [N, H, W, C]
            tagged = _tagged(provenance, target)  # one record for the file's every image
            for i, arr in enumerate(array):
                add(f"{target}[{i}]", Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).convert("RGB"),
                    tagged)
        elif target.is_file():  # given by name: unreadable is an error
            try:
                img = imageio.read(target, "RGB")
            except DataError:
                raise DataError(f"cannot read image {target} (damaged, not an image, or too large); pass "
                                f"image files, folders of images or a samples .npz") from None
            if small(img):  # as train and eval refuse it
                raise DataError(f"{target} is {small(img)}; the detector scores images of at least that size")
            add(str(target), img, _tagged(provenance, target))
        elif target.is_dir():
            found = sorted(p for p in target.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                           and not any(part.startswith(".") for part in p.relative_to(target).parts))
            if not found:
                raise DataError(f"{target} holds no images ({', '.join(sorted(EXTENSIONS))})")
            for path in found:  # one unreadable file does not stop the folder's others
                try:
                    img = imageio.read(path, "RGB")  # upright, 8-bit, transparency on white: as training
                except DataError:
                    print(f"ganforge: warning: skipping {path}: not a readable image", file=sys.stderr, flush=True)
                    continue
                if small(img):
                    print(f"ganforge: warning: skipping {path}: {small(img)}", file=sys.stderr, flush=True)
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


def _tagged(provenance, path: Path) -> bool:
    return src.record_of(provenance, path) is not None


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
