"""``ganforge eval`` (metrics of a run, a samples.npz or an image folder against a dataset) and
``ganforge train-classifier`` (the offline extractor's fixed training recipe)."""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from . import DATA_DIR_HELP, REF_DATA_DIR_HELP, add_json_argument, json_output, seed

DEFAULT_N = 10_000
# Datasets with a classifier recipe; the same tuple as ganforge.metrics.features (a test checks),
# repeated here because importing ganforge.metrics loads torch and `ganforge --help` must stay fast.
CLASSIFIER_DATASETS = ("fashion-mnist", "mnist")
# For a run directory or model folder; the flags default to None so that an npz or folder can refuse them.
DEFAULT_CHECKPOINT, DEFAULT_SEED = "latest", 0
# --split defaults to None so that a folder reference (no splits) can refuse it when given.
DEFAULT_SPLIT = "test"


def cmd_eval(args) -> int:
    from .. import progress

    # --quiet: no progress lines at all; reading a folder had still said "read 100 of 1000 images"
    with progress.silenced(args.quiet):
        return _eval(args)


def _eval(args) -> int:
    from .. import api
    from ..errors import ConfigError, shell_arg
    from ..metrics import evaluation as ev
    from ..metrics.targets import is_run_dir, load_target, run_samples
    from ..atomic import atomic_write_json
    from ..runfiles import damaged_model_folder, is_model_folder

    if args.n <= 0:
        raise ConfigError(f"--n must be positive, got {args.n}")
    metrics = ev.parse_metrics(args.metrics)  # unknown names fail before any slow work
    ev.check_reference(args.ref)
    if args.split is not None and args.ref.startswith("folder:"):  # had been ignored: folder:B/all, exit 0
        raise ConfigError(f"--split applies to a reference dataset with splits; {args.ref} is a folder, "
                          f"scored whole (drop --split, or pass the images to compare with as their own "
                          f"folder: --ref folder:PATH)")
    split = DEFAULT_SPLIT if args.split is None else args.split
    out = json_output(args.json, args.force)
    log = (lambda msg: print(f"ganforge: {msg}", flush=True)) if not args.quiet else None
    path = Path(args.target).expanduser()
    # samples drawn here, not read from files (a damaged model folder: load names what it lacks)
    drawn = is_run_dir(path) or is_model_folder(path) or damaged_model_folder(path) is not None
    if args.truncation is not None and not drawn:
        raise ConfigError(f"--truncation applies to samples drawn from a run directory or model folder; "
                          f"{path} is neither (drop --truncation, or sample with it: ganforge sample RUN "
                          f"--truncation T)")
    _check_run_options(args, path, drawn)
    if drawn:
        run = api.load(path, checkpoint=DEFAULT_CHECKPOINT if args.checkpoint is None else args.checkpoint)
        if run.point_dim is not None:  # before sampling: 2-D points have no image features to compare
            data = run.config.data.name
            raise ConfigError(f"{path} is a run on {run.point_dim}-D points ({data}), and eval scores "
                              f"images against an image dataset; measure a toy mixture's modes with "
                              f"ganforge bench modes --data {data} (trains and scores its preset over "
                              f"seeds), or look at this run: ganforge sample {shell_arg(path)} --n 1000 --out p.png")
        images, labels, target = run_samples(run, n=args.n, seed=DEFAULT_SEED if args.seed is None else args.seed,
                                             truncation=args.truncation)
    else:
        images, labels, target = load_target(path, n=args.n)
    if log:
        # a folder has no splits: it is scored whole (the table's reference/split, README: `all`)
        shown = "all" if args.ref.startswith("folder:") else split
        log(f"evaluating {len(images)} images from {target['target']} against {args.ref}/{shown}")
    t0 = time.perf_counter()
    # an npz or folder holding fewer than --n: the small-sample advice names more samples, not --n
    more = None if drawn or len(images) >= args.n else (
        f"add images to {path}" if path.is_dir() else f"write more samples to {path}")
    result = ev.evaluate(images, ref=args.ref, split=split, labels=labels, metrics=metrics,
                         n_ref=args.n, extractor=args.extractor, inception_weights=args.inception_weights,
                         data_dir=args.data_dir, log=log, class_names=target.get("class_names"),
                         generator=run if drawn else None,  # PPL: a style-based run only (_missing says why not)
                         more_samples=more)
    result.protocol = {"target": target, **result.protocol, "seconds": round(time.perf_counter() - t0, 2)}
    if len(images) < args.n:  # an npz or folder holds fewer than asked: say so first, not only in the header
        result.protocol["warnings"].insert(0, _fewer_than_n(args, path, len(images),
                                                            result.protocol["n_reference"]))
    shared = None if drawn else _shared_images(path, args.ref)
    if shared is not None:  # the numbers stand, but they compare images with themselves
        result.protocol["warnings"].insert(0, shared)
    ppl = [k for k in result.values if k.startswith("ppl_")]
    if args.truncation is not None and ppl:  # path_pairs draws untruncated latent paths
        result.protocol["warnings"].append(
            f"{' and '.join(ppl)} measure the untruncated generator: --truncation applies to the other "
            f"metrics' samples only")
    if drawn and _same_folder(args.ref, run.config.data.name):
        result.protocol["warnings"].append(
            f"{args.ref} is the folder this run trained on (a folder has no held-out split): these numbers "
            f"measure the fit to its training images, not to unseen ones")
    print(format_table(result))
    if out is not None:
        atomic_write_json(out, result.to_dict())
        print(f"ganforge: wrote {out}")
    return 0


def _fewer_than_n(args, path: Path, n_images: int, n_ref: int) -> str:
    """The warning when an npz or folder target holds fewer than --n images, with the advice that
    fits the side that is short: more samples from a run for an npz, more images for a folder
    (sampling cannot enlarge a folder of photos), and for a reference that holds fewer too, its own."""
    more = (f"add images to {path}" if path.is_dir() else
            f"write more samples (ganforge sample RUN --n {args.n} --out samples.npz)")
    against = f"{n_ref} reference images"
    if n_ref < args.n:  # a larger target alone would still be scored against these n_ref images
        against += f", all that --ref {args.ref} holds"
        folder = args.ref.removeprefix("folder:") if args.ref.startswith("folder:") else None
        same = folder is not None and Path(folder).expanduser().resolve() == path.resolve()
        more += ("" if same else f" and to {folder}" if folder and path.is_dir() else
                 f" and add images to {folder}" if folder else " and use a larger reference")
    return (f"{path} holds {n_images} images, fewer than --n {args.n}: only {n_images} are scored "
            f"(against {against}); pass --n {n_images}, or {more}")


def _shared_images(path: Path, ref: str) -> str | None:
    """The warning when an image folder TARGET is the --ref folder, or shares image files with it
    (byte for byte: a copy, a subfolder): its images scored against themselves had given fid 0 and
    kid below 0 without a word. Only files of equal size are hashed, so unrelated folders cost a
    listing."""
    if not (ref.startswith("folder:") and path.is_dir()):
        return None
    folder = Path(ref.removeprefix("folder:")).expanduser()
    fix = "pass a --ref folder that does not hold the images scored"
    if folder.resolve() == path.resolve():
        return (f"{path} is the --ref folder itself ({ref}): its images are scored against themselves "
                f"(fid 0 by construction), so these numbers do not measure closeness to other real "
                f"images; {fix}")
    ours, theirs = _image_sizes(path), _image_sizes(folder)
    sizes = set(ours.values()) & set(theirs.values())
    if not sizes:
        return None
    known = {_sha256(p) for p, size in theirs.items() if size in sizes} - {None}
    shared = sum(1 for p, size in ours.items() if size in sizes and _sha256(p) in known)
    if not shared:
        return None
    return (f"{shared} of the {len(ours)} image files in {path} are also in --ref {ref} (identical "
            f"bytes): they are scored against themselves, which makes the two sets look closer than they "
            f"are; {fix}")


def _image_sizes(folder: Path) -> dict[Path, int]:
    """{visible image file under ``folder``: its size in bytes}."""
    from ..imageio import EXTENSIONS

    out, seen = {}, set()
    for root, dirs, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:  # a link back up the tree: each real folder once
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            p = Path(root, name)
            if not name.startswith(".") and p.suffix.lower() in EXTENSIONS:
                try:
                    out[p] = p.stat().st_size
                except OSError:  # a broken link: the reader skipped it too
                    pass
    return out


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _check_run_options(args, path: Path, drawn: bool) -> None:
    """--checkpoint and --seed choose how a run's samples are drawn: for an npz or an image folder
    they had been ignored without a word (exit 0, the same numbers)."""
    from ..errors import ConfigError

    given = [flag for flag, value in (("--checkpoint", args.checkpoint), ("--seed", args.seed)) if value is not None]
    if given and not drawn:
        flags = " and ".join(given)
        raise ConfigError(f"{flags} appl{'y' if len(given) > 1 else 'ies'} to samples drawn from a run "
                          f"directory or model folder; {path} is neither (drop {flags}, or evaluate the run "
                          f"that wrote the samples: ganforge eval RUN {flags.replace(' and ', ' ... ')} ...)")


def _same_folder(ref: str, trained: str) -> bool:
    """Whether two data names are one folder however spelt (folder:imgs, folder:./imgs, an
    absolute path; a relative one is taken from here)."""
    if not (ref.startswith("folder:") and trained.startswith("folder:")):
        return False
    a, b = (Path(x.removeprefix("folder:")).expanduser() for x in (ref, trained))
    return a.resolve() == b.resolve()


def format_table(result) -> str:
    from ..metrics.evaluation import better

    p = result.protocol
    sha = (p.get("extractor_sha256") or "")[:12]
    lines = []
    target = p.get("target") or {}
    if target.get("kind") == "run":
        lines.append(f"samples of {target['target']} ({target['checkpoint']}, step {target['step']}): "
                     f"{'EMA' if target['ema'] else 'raw (no EMA)'} generator, seed {target['seed']}"
                     + (f", truncation {target['truncation']}" if "truncation" in target else "")
                     + (f"; {target['stage']}" if "stage" in target else ""))
    lines.append(f"{p['n_generated']} generated vs {p['n_reference']} {p['reference']}/{p['split']} images; "
                 f"extractor {p['extractor']} ({sha}), {p['resize_mode']}")
    if p.get("classifier") and p["classifier"] != p["extractor"]:
        lines.append(f"class metrics by {p['classifier']} ({(p.get('classifier_sha256') or '')[:12]})")
    width = max([len("metric"), *map(len, result.values)])  # "fid" alone had shifted its value under the header
    lines.append(f"{'metric':<{width}}  {'value':>12}  better")
    hint = {"lower": "lower", "higher": "higher", "1": "near 1"}
    for key, value in result.values.items():
        text = f"{value:12d}" if isinstance(value, int) else f"{value:12.5g}"
        lines.append(f"{key:<{width}}  {text}  {hint.get(better(key), '')}".rstrip())
    if p['extractor'] != "inception":
        lines.append(f"note: {p['extractor']} numbers compare only with other {p['extractor']} numbers at the "
                     f"same n, not with published ones (those use the inception extractor)")
    lines += [f"warning: {w}" for w in p.get("warnings", [])]
    return "\n".join(lines)


def cmd_train_classifier(args) -> int:
    import torch

    from ..data import load_dataset
    from ..errors import ConfigError
    from ..metrics import classifier
    from ..metrics.features import classifier_weights, packaged_weights_dir, user_weights_dir
    from ..rundir import check_output_file

    if args.epochs is not None and args.epochs <= 0:
        raise ConfigError(f"--epochs must be positive, got {args.epochs}")
    out = Path(args.out) if args.out else user_weights_dir() / f"{args.dataset}-cnn.safetensors"
    if out.suffix != ".safetensors":
        raise ConfigError(f"--out {out}: use a .safetensors file name")
    # before the data is read and minutes of training: a directory, a parent that is a file or read-only
    check_output_file(out, force=args.force)
    recipe_file = out.with_suffix(".json")  # the recipe, written beside the weights
    if recipe_file.is_dir():
        raise ConfigError(f"{recipe_file} is a directory, and the recipe of --out {out} is written there; "
                          f"move it or choose another --out")
    if recipe_file.exists() and not args.force:
        raise ConfigError(f"{recipe_file} already exists; pass --force to overwrite it or choose another --out")
    recipe = classifier.Recipe()
    if args.epochs is not None:
        from dataclasses import replace

        recipe = replace(recipe, epochs=args.epochs)
    train = load_dataset(args.dataset, split="train", data_dir=args.data_dir)
    test = load_dataset(args.dataset, split="test", data_dir=args.data_dir)
    epochs = f"{recipe.epochs} epoch{'' if recipe.epochs == 1 else 's'}"
    print(f"ganforge: training {args.dataset}-cnn on {len(train)} images for {epochs} "
          f"({torch.get_num_threads()} threads)", flush=True)
    t0 = time.perf_counter()
    model = classifier.train(train.images, train.labels, num_classes=len(train.class_names), recipe=recipe,
                             log=lambda msg: print(f"  {msg}", flush=True))
    seconds = time.perf_counter() - t0
    acc = classifier.accuracy(model, test.images, test.labels)
    meta = classifier.save(model, out, dataset=args.dataset, class_names=list(train.class_names),
                           recipe=recipe, test_accuracy=acc, train_seconds=seconds)
    print(f"ganforge: test accuracy {acc:.2%} after {seconds:.0f} s; wrote {out} "
          f"({out.stat().st_size / 1024:.0f} KiB, sha256 {meta['sha256'][:12]}) and {out.with_suffix('.json')}")
    active = classifier_weights(args.dataset)
    if active is not None and active.resolve() != out.resolve():
        where = "shipped with ganforge" if active.parent == packaged_weights_dir() else "found first"
        print(f"ganforge: note: --extractor {args.dataset}-cnn uses {active} ({where}), not this file")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser(
        "eval", help="score samples against a dataset (FID, KID, precision/recall, ...)",
        description="Metrics of a run directory (samples from its EMA generator), a samples.npz or "
                    "an image folder against a reference dataset. Default: every metric that applies.")
    s.add_argument("target", metavar="TARGET", help="run directory, samples.npz or image folder")
    s.add_argument("--ref", required=True, help="reference dataset: fashion-mnist, mnist, cifar10, folder:PATH")
    s.add_argument("--split", choices=["test", "train"],
                   help=f"reference split of a named dataset (default {DEFAULT_SPLIT}; a folder: has none)")
    s.add_argument("--metrics", help="comma-separated: fid,kid,is,precision,recall,density,coverage,"
                                     "classes_covered,class_kl,memorization,label_accuracy,intra_fid,"
                                     "ppl_w,ppl_z (style-based runs)")
    s.add_argument("--n", type=int, default=DEFAULT_N,
                   help=f"generated images to score and reference images to compare with (default {DEFAULT_N})")
    s.add_argument("--extractor", help="inception, fashion-mnist-cnn, mnist-cnn (default: inception when its "
                                       "weights are available offline, else the dataset's CNN)")
    s.add_argument("--inception-weights", metavar="PATH", help="local weights-inception-2015-12-05-6726825d.pth")
    s.add_argument("--checkpoint", help=f"for a run directory: latest, best or step_XXXXXXX (default "
                                        f"{DEFAULT_CHECKPOINT})")
    s.add_argument("--seed", type=seed, help=f"noise seed for samples drawn from a run (default {DEFAULT_SEED})")
    s.add_argument("--truncation", type=float, metavar="T",
                   help="for a run with truncation (BigGAN threshold, StyleGAN2 psi): score its samples "
                        "drawn at T (default: untruncated)")
    s.add_argument("--data-dir", help=REF_DATA_DIR_HELP)
    add_json_argument(s, "also write every value and the protocol here")
    s.add_argument("--quiet", action="store_true",
                   help="no progress lines: only the table, with its protocol and warnings")
    s.set_defaults(func=cmd_eval)

    s = subparsers.add_parser(
        "train-classifier", help="train the offline feature extractor of a dataset",
        description="Train ganforge's small CNN (the fashion-mnist-cnn / mnist-cnn extractor) with its "
                    "fixed recipe; writes weights (.safetensors) and a .json with recipe, test accuracy "
                    "and sha256.")
    s.add_argument("dataset", choices=list(CLASSIFIER_DATASETS))
    s.add_argument("--out", help="weights file (default ~/.cache/ganforge/weights/<dataset>-cnn.safetensors)")
    s.add_argument("--epochs", type=int, help="override the recipe's epochs")
    s.add_argument("--data-dir", help=DATA_DIR_HELP)
    s.add_argument("--force", action="store_true", help="overwrite --out")
    s.set_defaults(func=cmd_train_classifier)
