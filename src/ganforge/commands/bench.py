"""``ganforge bench``: quality benchmarks.

    ganforge bench modes --data toy:grid25 --seeds 10 [--preset P] [--json OUT.json] [--out DIR]
                         [--variant 'label: key=value ...'] [--jobs N] [key=value ...]

``modes`` follows the PacGAN protocol (ganforge.bench.modes): every seed trains through
ganforge.api.train, then 2,500 samples are scored for modes captured, high-quality fraction and
reverse KL. It prints mean ± std over seeds per configuration, writes the JSON result and a
scatter plot of the samples over the true modes per configuration.

    ganforge bench augment [--sizes 10,50,100] [--seeds 0,1,2] [--preset P] [--gan-steps N]
                           [--synthetic N] [--real-fraction F] [--clf-steps N] [key=value ...]

``augment`` (ganforge.bench.augment): a conditional GAN per scarce real subset and seed, and a
small classifier trained on real, real + synthetic and synthetic-only data, tested on real data.

    ganforge bench truncation RUN [--values V,V,... | --psi ...] [--n 5000] [--json OUT.json]

``truncation`` (ganforge.bench.truncation): FID, precision, recall (label accuracy for conditional
runs) of a run with the "truncation" capability at each value (default: the family's sweep), a
JSON and a plot.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import ConfigError
from ..rundir import check_output_file
from . import DATA_DIR_HELP, REF_DATA_DIR_HELP, add_json_argument, json_output, seed


def cmd_modes(args) -> int:
    from .. import api
    from ..bench import modes as bench
    from ..config import TRAIN_SEED_MAX, load_config

    from ..data import dataset_names
    from ..registry import closest

    toys = [name for name in dataset_names() if name.startswith("toy:")]
    if not args.data.startswith("toy:"):
        raise ConfigError(f"bench modes needs a toy dataset with known modes (toy:ring8, "
                          f"toy:grid25), got '{args.data}'")
    if args.data not in toys:  # it had been told of an unknown preset 'toy-ring9', which it never gave
        raise ConfigError(f"unknown toy dataset '{args.data}'{closest(args.data, toys)}; --data takes "
                          f"{', '.join(toys)}")
    if args.seeds <= 0 or args.jobs <= 0:
        raise ConfigError("--seeds and --jobs must be positive")
    if not 0 <= args.seed0 <= TRAIN_SEED_MAX - args.seeds + 1:  # train.seed's range, checked before any work
        raise ConfigError(f"--seed0 {args.seed0} with --seeds {args.seeds} gives seeds outside 0..{TRAIN_SEED_MAX} "
                          f"(train.seed's range); give --seed0 0 or more")
    preset = args.preset or f"toy-{args.data.split(':', 1)[1]}"
    variants = [bench.parse_variant(v, preset) for v in args.variant] or [
        bench.Variant(preset, preset, [])]
    extra = list(args.overrides)
    if args.steps is not None:
        extra.append(f"train.steps={args.steps}")
    labels = [bench._slug(v.label) for v in variants]
    if len(set(labels)) < len(labels):  # one folder per label: a second would delete the first's runs
        dup = next(v.label for v, slug in zip(variants, labels) if labels.count(slug) > 1)
        raise ConfigError(f"two --variant configurations are labelled '{dup}' (one folder each); give "
                          f"each its own label ('LABEL: key=value ...')")
    json_path = json_output(args.json, args.force)
    for v in variants:  # fail on a bad preset or override now, not after an hour of training
        _, cfg = load_config(v.preset, [f"data.name={args.data}", *extra, *v.overrides])
        bench.check_data(v, args.data, extra)  # trained on --data, as it is scored
        api.build(cfg)
    out = Path(args.out) if args.out else Path("runs") / (
        f"bench-modes-{args.data.replace(':', '-')}-{time.strftime('%Y%m%d-%H%M%S')}")
    if not args.reuse_runs:  # --reuse-runs: its runs are checked one by one (bench.run_benchmark)
        _check_out(out, args.force, "replace its runs and overwrite its results (--reuse-runs: keep "
                                    "its finished seeds)")
    if not json_path:
        json_path = out / "modes.json"
        _check_reused_json(json_path, args.force, "--reuse-runs" if args.reuse_runs else None)
        check_output_file(json_path, force=args.force, flag="--json")
    seeds = list(range(args.seed0, args.seed0 + args.seeds))
    print(f"ganforge: bench modes on {args.data}, {len(variants)} configuration(s) x "
          f"{len(seeds)} seeds -> {out}", flush=True)
    from ..signals import Terminated, sigterm_interrupts

    try:
        with sigterm_interrupts():  # SIGTERM had left --jobs workers training on as orphans
            result = bench.run_benchmark(variants, args.data, seeds, out, extra=extra, jobs=args.jobs,
                                         force=args.force, reuse_runs=args.reuse_runs,
                                         log=lambda s: print(s, flush=True))
    except KeyboardInterrupt as exc:
        kept = len(list(out.glob(f"*/seed_*/{bench.RESULT}")))
        how = " (SIGTERM)" if isinstance(exc, Terminated) else ""
        print(f"ganforge: interrupted{how}; the {kept} finished seed run(s) in {out} are kept: rerun the same "
              f"command with --reuse-runs to continue", file=sys.stderr, flush=True)
        return 143 if isinstance(exc, Terminated) else 130
    for c in result["configs"]:
        print(bench.format_summary(c["label"], c["summary"], result["num_modes"]))
        if c["scatter"]:
            print(f"  scatter: {c['scatter']}")
    bench.write_json(result, json_path)
    print(f"ganforge: results in {json_path}")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("bench", help="quality benchmarks (mode collapse on toy data, "
                                            "synthetic-data augmentation, truncation curves, GAN "
                                            "against diffusion)")
    sub = s.add_subparsers(dest="bench_command", metavar="BENCHMARK", parser_class=parser_class)
    m = sub.add_parser("modes", help="PacGAN mode-collapse benchmark on toy:ring8 / toy:grid25",
                       description="Train each configuration for several seeds and report modes "
                                   "captured, high-quality samples and reverse KL (PacGAN "
                                   "protocol, 2,500 samples).")
    m.add_argument("overrides", nargs="*", metavar="key=value", help="applied to every configuration")
    m.add_argument("--data", default="toy:grid25", help="toy:grid25 (default) or toy:ring8")
    m.add_argument("--seeds", type=int, default=10, help="number of seeds (default 10)")
    m.add_argument("--seed0", type=int, default=0, help="first seed (default 0)")
    m.add_argument("--preset", help="preset or YAML file (default toy-<dataset>, e.g. toy-grid25)")
    m.add_argument("--variant", action="append", default=[], metavar="'LABEL: key=value ...'",
                   help="a configuration on top of the preset; repeat for a matrix")
    m.add_argument("--steps", type=int, help="shorthand for train.steps=N")
    m.add_argument("--jobs", type=int, default=1, help="seeds trained in parallel processes")
    add_json_argument(m, "write the results here (default OUT/modes.json)", force=False)
    m.add_argument("--out", help="directory for runs and plots (default runs/bench-modes-...)")
    m.add_argument("--reuse-runs", action="store_true",
                   help="keep the seeds already finished in --out with the same config (continues an "
                        "interrupted benchmark, or adds seeds); a seed stopped part-way is retrained, "
                        "any other run there needs --force")
    m.add_argument("--force", action="store_true",
                   help="replace the runs of an existing --out and overwrite its results (or --json); "
                        "with --reuse-runs, only the runs it cannot reuse")
    m.set_defaults(func=cmd_modes)
    register_augment(sub, parser_class)
    register_gan_vs_diffusion(sub, parser_class)
    register_truncation(sub, parser_class)


def _int_list(text: str, flag: str, *, unique: bool = False) -> list[int]:
    """Comma-separated integers (positive; --seeds: train.seed's 0..TRAIN_SEED_MAX, refused here
    rather than by the first run's config after the banner); ``unique``: each at most once (a
    size or seed given twice would retrain into the first one's folder)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated integers, got '{text}'") from None
    from ..config import TRAIN_SEED_MAX

    if values and flag == "--seeds" and not all(0 <= v <= TRAIN_SEED_MAX for v in values):
        bad = next(v for v in values if not 0 <= v <= TRAIN_SEED_MAX)
        raise ConfigError(f"--seeds takes seeds from 0 to {TRAIN_SEED_MAX} (train.seed's range), got {bad} "
                          f"('{text}'); give seeds of {'0 or more' if bad < 0 else f'at most {TRAIN_SEED_MAX}'}")
    if not values or min(values) <= 0 and flag != "--seeds":
        raise ConfigError(f"{flag} takes positive integers, got '{text}'")
    if unique and len(set(values)) < len(values):
        dup = next(v for v in values if values.count(v) > 1)
        raise ConfigError(f"{flag} lists {dup} twice ('{text}'); give each value once")
    return values


def _check_out(out: Path, force: bool, what: str) -> None:
    """An existing, non-empty --out needs --force (``what`` it then does), before any work."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; choose another --out")
    if not force and out.is_dir() and any(out.iterdir()):
        raise ConfigError(f"{out} already exists; pass --force to {what}, or choose another --out")


def _check_reused_json(path: Path, force: bool, reuse_flag: str | None) -> None:
    """With --reuse-gans/--reuse-runs, an earlier call's results file needs --force too: say that
    --force then keeps the reusable runs (dropping the reuse flag had retrained them all)."""
    if reuse_flag and not force and path.exists():
        raise ConfigError(f"{path} already exists; pass --force (keeping {reuse_flag}) to overwrite it (the "
                          f"runs {reuse_flag} can reuse are kept), or pass --json with another file")


def cmd_augment(args) -> int:
    from ..api import capabilities
    from ..bench import augment as bench
    from ..config import load_config
    from ..atomic import atomic_write_json

    json_path = json_output(args.json, args.force)  # before any work

    s = bench.Settings(data=args.data, sizes=_int_list(args.sizes, "--sizes", unique=True),
                       seeds=_int_list(args.seeds, "--seeds", unique=True), preset=args.preset,
                       gan_overrides=list(args.overrides), synthetic=args.synthetic,
                       real_fraction=args.real_fraction, clf_steps=args.clf_steps,
                       test_n=args.test_n, reuse_gans=args.reuse_gans)
    if args.gan_steps is not None:
        s.gan_overrides.append(f"train.steps={args.gan_steps}")
    for flag, value, ok, rule in (("--synthetic", s.synthetic, s.synthetic > 0, "a positive number"),
                                  ("--clf-steps", s.clf_steps, s.clf_steps > 0, "a positive number"),
                                  ("--real-fraction", s.real_fraction, 0 < s.real_fraction < 1,
                                   "a fraction between 0 and 1, both excluded"),
                                  ("--test-n", s.test_n, s.test_n >= 0, "0 (the whole test split) or more")):
        if not ok:  # the one option at fault, with its value (one line had listed all four rules)
            raise ConfigError(f"{flag} must be {rule}, got {value:g}")
    _, cfg = load_config(s.preset, [f"data.name={s.data}", *s.gan_overrides])  # fail fast
    if "sample_labels" not in capabilities(cfg):
        raise ConfigError(f"bench augment trains a class-conditional GAN; preset '{s.preset}' has "
                          f"objective={cfg.objective} (use cgan-, projgan- or acgan-fashion-mnist)")
    out = Path(args.out) if args.out else Path("runs") / f"bench-augment-{time.strftime('%Y%m%d-%H%M%S')}"
    bench.check_out(out, force=args.force, reuse_gans=s.reuse_gans)
    if not json_path:  # the default results file: overwritten only with --force (--reuse-gans too)
        json_path = out / "augment.json"
        _check_reused_json(json_path, args.force, "--reuse-gans" if s.reuse_gans else None)
        check_output_file(json_path, force=args.force, flag="--json")
    header = (f"ganforge: bench augment on {s.data}: sizes {s.sizes} per class x seeds {s.seeds}, "
              f"GAN {' '.join([s.preset, *s.gan_overrides])} -> {out}")
    try:
        result = bench.run_benchmark(s, out, data_dir=args.data_dir, force=args.force,
                                     log=lambda m: print(m, flush=True), header=header)
    except KeyboardInterrupt:  # a GAN stopped part-way has no final checkpoint: --reuse-gans alone refuses it
        print(f"ganforge: interrupted; the finished GAN runs in {out} are kept: rerun the same command with "
              f"--reuse-gans --force to continue (it keeps them and retrains only the runs it cannot reuse)",
              file=sys.stderr, flush=True)
        return 130
    result["argv"] = list(sys.argv)  # the command line as typed (settings has every value)
    print(bench.format_summary(result["summary"], n_test=result["n_test"]))
    atomic_write_json(json_path, result)
    print(f"ganforge: results in {json_path}")
    return 0


def register_augment(sub, parser_class) -> None:
    a = sub.add_parser("augment", help="does synthetic data from a conditional GAN help a classifier?",
                       description="For each size (real images per class) and seed: train a "
                                   "conditional GAN on that scarce subset only, then a fixed small "
                                   "classifier on real, real+synthetic and synthetic-only data, "
                                   "tested on the real test split (mean ± std over seeds); a dataset "
                                   "with a single split (folder:PATH) is tested on its images that "
                                   "no run trained on. An existing --out needs --force (retrains its "
                                   "GAN runs) or --reuse-gans.")
    a.add_argument("overrides", nargs="*", metavar="key=value", help="applied to the GAN's config")
    a.add_argument("--data", default="fashion-mnist", help="a labeled dataset (default fashion-mnist)")
    a.add_argument("--sizes", default="10,50,100", help="real images per class, each once (default 10,50,100)")
    a.add_argument("--seeds", default="0,1,2", help="seeds, each once (default 0,1,2)")
    a.add_argument("--preset", default="acgan-fashion-mnist", help="the conditional GAN's preset")
    a.add_argument("--gan-steps", type=int, help="shorthand for train.steps=N of the GAN")
    a.add_argument("--synthetic", type=int, default=500, help="synthetic images per class (500)")
    a.add_argument("--real-fraction", type=float, default=0.5,
                   help="share of real images in each real+synthetic batch (0.5)")
    a.add_argument("--clf-steps", type=int, default=300, help="classifier training steps (300)")
    a.add_argument("--test-n", type=int, default=0,
                   help="test images, the first of each class in turn (default 0: all)")
    a.add_argument("--reuse-gans", action="store_true",
                   help="keep the GAN runs already in --out whose config is the same (to vary "
                        "only the classifier settings); any other run there needs --force")
    a.add_argument("--data-dir", help=DATA_DIR_HELP)
    add_json_argument(a, "write the results here (default OUT/augment.json)", force=False)
    a.add_argument("--out", help="directory for the GAN runs (default runs/bench-augment-...)")
    a.add_argument("--force", action="store_true",
                   help="retrain the GAN runs of an existing --out and overwrite its results (or --json); "
                        "with --reuse-gans, retrain only the runs it cannot reuse")
    a.set_defaults(func=cmd_augment)


def cmd_gan_vs_diffusion(args) -> int:
    from ..api import load_config  # through api: every family's config sections (cond, ...) registered
    from ..atomic import atomic_path, atomic_write_json, atomic_write_text
    from ..bench import gan_vs_diffusion as bench
    from ..bench.diffusion import DiffusionConfig, require_diffusers

    if args.resume and args.force:
        raise ConfigError("--resume keeps the seeds an interrupted call finished, --force starts over; "
                          "pass one of them")
    if args.resume and not args.out:
        raise ConfigError("--resume continues the benchmark in --out; pass the --out of the interrupted call")
    json_path = json_output(args.json, args.force)  # before any work
    if args.figure:
        check_output_file(Path(args.figure), force=args.force, flag="--figure")

    if args.steps is not None and args.minutes is not None:
        raise ConfigError("--steps and --minutes are two budgets for the same training; pass one of them")
    minutes = None if args.steps is not None else 10.0 if args.minutes is None else args.minutes
    require_diffusers()
    if (minutes is not None and minutes <= 0) or (args.steps is not None and args.steps <= 0):
        raise ConfigError("--minutes and --steps must be positive")
    if args.n < 10 or args.speed_n <= 0:
        raise ConfigError("--n must be at least 10 (the k-NN metrics need them) and --speed-n positive")
    s = bench.Settings(data=args.data, minutes=minutes, steps=args.steps,  # minutes: None with --steps
                       seeds=_int_list(args.seeds, "--seeds", unique=True), gan_preset=args.preset,
                       gan_overrides=list(args.overrides), n=args.n, speed_n=args.speed_n,
                       speed_batch=args.speed_batch,
                       quality_samplers=[v for v in args.quality_samplers.split(",") if v],
                       speed_samplers=[v for v in args.speed_samplers.split(",") if v],
                       diffusion=DiffusionConfig(widths=tuple(_int_list(args.diffusion_widths,
                                                                        "--diffusion-widths")),
                                                 batch_size=args.diffusion_batch),
                       extractor=args.extractor, inception_weights=args.inception_weights,
                       data_dir=args.data_dir)
    for name in s.quality_samplers + s.speed_samplers:
        bench.parse_sampler(name)
    if not s.speed_samplers:
        raise ConfigError("--speed-samplers needs at least one sampler, e.g. ddpm1000,ddim50,ddim10")
    _, cfg = load_config(s.gan_preset, [f"data.name={s.data}", *s.gan_overrides])  # fail fast
    if (cfg.data.resolution, cfg.data.channels) != (s.diffusion.resolution, s.diffusion.channels):
        raise ConfigError(f"preset {s.gan_preset} trains at {cfg.data.resolution}x{cfg.data.resolution}x"
                          f"{cfg.data.channels}; the diffusion baseline at 28x28x1 (Fashion-MNIST-sized "
                          f"data); pick a 28x28 grayscale preset")
    s.diffusion.check()
    _check_scoring(s)
    out = Path(args.out) if args.out else Path("runs") / f"bench-gan-vs-diffusion-{time.strftime('%Y%m%d-%H%M%S')}"
    # new or empty, or (--force, --resume) only what an interrupted call left, of the same settings with --resume
    bench.check_out(out, force=args.force, resume=args.resume, s=s)
    budget = f"{s.steps} steps" if s.steps is not None else f"{s.minutes:g} min"
    print(f"ganforge: bench gan-vs-diffusion on {s.data}: {s.gan_preset} vs diffusion baseline, {budget} "
          f"each, seeds {s.seeds} -> {out}", flush=True)
    from ..signals import Terminated, sigterm_interrupts

    try:
        with sigterm_interrupts():  # a SIGTERM to this process alone had left the GAN child training on
            result = bench.run_benchmark(s, out, log=lambda m: print(m, flush=True), force=args.force,
                                         resume=args.resume)
    except KeyboardInterrupt as exc:  # each finished seed was saved as it finished
        how = " (SIGTERM)" if isinstance(exc, Terminated) else ""
        print(f"ganforge: interrupted{how}; {_kept_after_interrupt(out, bench.finished_seeds(out, s), s.seeds)}",
              file=sys.stderr, flush=True)
        return 143 if isinstance(exc, Terminated) else 130
    result["argv"] = list(sys.argv)
    table = bench.markdown(result, s)
    print(table)
    atomic_write_text(out / "table.md", table)
    path = json_path or out / "gan-vs-diffusion.json"
    atomic_write_json(path, result)
    if args.figure:
        import shutil

        with atomic_path(Path(args.figure)) as tmp:
            shutil.copyfile(out / "figure.png", tmp)
    print(f"ganforge: results in {path}, table in {out / 'table.md'}, figure {args.figure or out / 'figure.png'}")
    return 0


def _kept_after_interrupt(out: Path, done: list[int], seeds: list[int]) -> str:
    """What an interrupted gan-vs-diffusion keeps in ``out``, and the command that goes on."""
    if not done:
        return (f"{out} keeps only unfinished runs, no finished seed: rerun the same command with --resume "
                f"to train the seeds again (their unfinished runs replaced), or with another --out")
    return (f"{out} keeps {len(done)} of {len(seeds)} seeds finished ({', '.join(map(str, done))}): rerun the same "
            f"command with --resume to keep them and run the rest, or with --force to start over")


def _check_scoring(s) -> None:
    """The samples of --data can be scored, before anything is trained or written: a reference
    ganforge eval takes (a named dataset, folder:PATH of an existing folder) and an extractor
    that loads (Inception weights present or downloadable, the dataset's classifier trained)."""
    from ..bench.gan_vs_diffusion import reference
    from ..metrics import evaluation as ev
    from ..metrics.features import get_extractor

    ref = reference(s.data)
    folder = Path(ref.removeprefix("folder:")).expanduser()
    if ref.startswith("folder:") and not folder.is_dir():
        raise ConfigError(f"--data {s.data}: {folder} is not a folder; pass folder:PATH of a folder of images")
    if ref.startswith("folder:"):
        from ..imageio import EXTENSIONS

        # the GAN's training subprocess had failed on it 13 s later, leaving an empty --out
        if not any(p.suffix.lower() in EXTENSIONS and p.is_file() for p in folder.rglob("*")
                   if not any(part.startswith(".") for part in p.relative_to(folder).parts)):
            raise ConfigError(f"--data {s.data}: {folder} holds no images ({'/'.join(sorted(EXTENSIONS))}); "
                              f"pass folder:PATH of a folder of images")
    try:
        ev.check_reference(ref)
    except ConfigError as exc:
        raise ConfigError(f"--data {s.data} cannot be scored: {exc}") from None
    get_extractor(s.extractor or ev.default_extractor(ref, s.inception_weights),
                  inception_weights=s.inception_weights)


def register_gan_vs_diffusion(sub, parser_class) -> None:
    g = sub.add_parser("gan-vs-diffusion", help="a GAN preset against a small diffusion baseline at "
                                                "equal wall-clock",
                       description="Train the GAN preset and a diffusers DDPM baseline for the same "
                                   "wall-clock per seed, then report FID/KID/precision/recall/coverage/"
                                   "classes against the test split (folder:PATH: against the folder, "
                                   "without classes), training steps and images/s (GAN, DDPM-1000, "
                                   "DDIM-50, DDIM-10), the evaluation's warnings, and check the usual "
                                   "claims. Needs diffusers.")
    g.add_argument("overrides", nargs="*", metavar="key=value", help="applied to the GAN's config")
    g.add_argument("--data", default="fashion-mnist",
                   help="a 28x28 grayscale dataset, scored against its test split, or folder:PATH, scored "
                        "against the folder itself (default fashion-mnist)")
    g.add_argument("--minutes", type=float, help="training wall-clock per model and seed (default 10)")
    g.add_argument("--steps", type=int, help="instead of --minutes (not with it): this many steps each "
                                             "(smoke tests)")
    g.add_argument("--seeds", default="0,1,2", help="seeds (default 0,1,2: the FID spread needs several)")
    g.add_argument("--preset", default="dcgan-fashion-mnist", help="the GAN preset (default dcgan-fashion-mnist)")
    g.add_argument("--n", type=int, default=5000, help="samples scored per model and seed (5000)")
    g.add_argument("--quality-samplers", default="ddim50",
                   help="diffusion samplers scored (default ddim50; ddpm1000 is slow on CPU)")
    g.add_argument("--speed-samplers", default="ddpm1000,ddim50,ddim10", help="diffusion samplers timed")
    g.add_argument("--speed-n", type=int, default=64, help="images timed per diffusion sampler (64)")
    g.add_argument("--speed-batch", type=int, default=64, help="batch size when timing (64)")
    g.add_argument("--diffusion-widths", default="32,64,96", help="UNet widths per level (32,64,96)")
    g.add_argument("--diffusion-batch", type=int, default=64, help="diffusion training batch (64)")
    g.add_argument("--extractor", help="feature extractor (default as ganforge eval)")
    g.add_argument("--inception-weights", metavar="PATH", help="local weights-inception-2015-12-05-6726825d.pth")
    g.add_argument("--data-dir", help=f"{DATA_DIR_HELP} (GAN and diffusion training, scoring)")
    add_json_argument(g, "results JSON (default OUT/gan-vs-diffusion.json)", force=False)
    g.add_argument("--resume", action="store_true",
                   help="continue an interrupted call: same settings and --out; the seeds it finished "
                        "(OUT/seed<N>.json) are kept, the rest trained (refused if a setting differs)")
    g.add_argument("--force", action="store_true",
                   help="overwrite --json and --figure, and start over in an --out an interrupted call "
                        "left: delete its runs and finished seeds (nothing else there: a finished "
                        "benchmark is kept)")
    g.add_argument("--figure", help="also copy the side-by-side sample figure here (e.g. docs/...png)")
    g.add_argument("--out", help="folder for runs, table and figure (default runs/bench-gan-vs-diffusion-...)")
    g.set_defaults(func=cmd_gan_vs_diffusion)


def _float_list(text: str, flag: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag} takes comma-separated numbers, got '{text}'") from None
    if not values:
        raise ConfigError(f"{flag} takes comma-separated numbers, got '{text}'")
    if len(set(values)) < len(values):  # as --sizes and --seeds: a value scored twice is a typo
        dup = next(v for v in values if values.count(v) > 1)
        raise ConfigError(f"{flag} lists {dup:g} twice ('{text}'); give each value once")
    return values


def cmd_truncation(args) -> int:
    from .. import api
    from ..atomic import atomic_write_json
    from ..bench import truncation as bench

    values = None if args.values is None else _float_list(args.values, "--values")
    if args.n <= 0:
        raise ConfigError(f"--n must be positive, got {args.n}")
    run_dir = Path(args.run_dir)
    json_path = Path(args.json) if args.json else run_dir / "truncation.json"
    plot_path = Path(args.plot) if args.plot else json_path.with_suffix(".png")
    # the output paths, checked before any scoring (a bad one had failed after it, or the plot had
    # overwritten the results: --json out/x.png)
    if json_path.resolve() == plot_path.resolve():
        raise ConfigError(f"--json and --plot are the same file ({json_path}); give the results a .json name "
                          f"and the plot a .png/.pdf/.svg one")
    if plot_path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"--plot {plot_path}: give a .png, .pdf or .svg file name")
    for path in (json_path, plot_path):
        if path.is_dir():
            raise ConfigError(f"{path} is a folder; give a file name")
    if json_path.suffix.lower() != ".json":  # as every other --json
        raise ConfigError(f"--json {json_path}: use a .json file name")
    # exists without --force, under a file, unwritable (read-only, /proc): the shared check
    check_output_file(json_path, force=args.force, flag="--json")
    check_output_file(plot_path, force=args.force, flag="--plot")
    extractor = args.extractor
    if args.inception_weights is not None:  # loaded once, now: a wrong path fails before any sampling
        from ..metrics.features import get_extractor

        extractor = get_extractor(extractor or "inception", inception_weights=args.inception_weights)
    run = api.load(run_dir, checkpoint=args.checkpoint)
    run.require("truncation")
    if values is None:  # the family's sweep, up to its value of (near) no truncation
        values = list(run.objective.truncation_sweep)
    for v in values:  # a value out of the family's range fails now, not after scoring
        run.sample(1, truncation=v)
    ref = args.ref or run.config.data.name
    split = "all" if ref.startswith("folder:") else args.split  # a folder has no splits: scored whole, as eval
    print(f"ganforge: bench truncation of {run_dir} ({run.config.objective}, step {run.step}): "
          f"{len(values)} values x {args.n} samples against {ref}/{split}", flush=True)
    result = bench.run_benchmark(run, values, ref=ref, n=args.n, seed=args.seed, extractor=extractor,
                                 split=args.split, data_dir=args.data_dir, log=lambda m: print(m, flush=True))
    result["argv"] = list(sys.argv)
    atomic_write_json(json_path, result)
    bench.plot(result, plot_path)
    print(f"ganforge: results in {json_path}, plot in {plot_path}")
    return 0


def register_truncation(sub, parser_class) -> None:
    from . import add_run_arguments

    t = sub.add_parser("truncation", help="FID / precision / recall against the truncation value of a run",
                       description="Sample a run at each truncation value (StyleGAN2 psi, BigGAN "
                                   "threshold) and score FID, precision, recall (and label accuracy "
                                   "for conditional runs); writes a JSON and a plot.")
    add_run_arguments(t, ema=False, force="overwrite the JSON and the plot")
    t.add_argument("--values", "--psi", dest="values", default=None,
                   help="comma-separated truncation values (default: StyleGAN2 psi 0.3,0.5,0.7,0.85,1.0, where "
                        "1 is none; BigGAN threshold 0.5,1,1.5,2,3, where 3 redraws 0.3%% of z's values, "
                        "nearly none, and 1 redraws 32%%; --psi is an alias)")
    t.add_argument("--n", type=int, default=5000, help="samples per value and reference images (default 5000)")
    t.add_argument("--seed", type=seed, default=0, help="noise seed (the same latents at every value)")
    t.add_argument("--ref", help="reference dataset (default: the run's data.name)")
    t.add_argument("--split", default="test", choices=["test", "train"], help="reference split (default test)")
    t.add_argument("--extractor", help="feature extractor (default as ganforge eval)")
    t.add_argument("--inception-weights", metavar="PATH", help="local weights-inception-2015-12-05-6726825d.pth")
    t.add_argument("--data-dir", help=REF_DATA_DIR_HELP)
    t.add_argument("--json", metavar="OUT.json", help="results (default RUN/truncation.json)")
    t.add_argument("--plot", help="plot (default: the JSON's name with .png)")
    t.set_defaults(func=cmd_truncation)
