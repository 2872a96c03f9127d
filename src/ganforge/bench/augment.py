"""Does synthetic data help? A scarce-data benchmark for conditional GANs.

For every size n (real images per class) and seed s:

1. draw a class-stratified subset of n images per class from the training split (seeded by s);
2. train a conditional GAN on that subset only, through ``ganforge.api.train`` (train.seed = s);
3. generate ``synthetic`` images per class from its EMA generator (class-balanced labels);
4. train the same small classifier, with the same number of steps and seed, three ways:
   ``real`` (the subset alone), ``real+syn`` (every batch ``real_fraction`` real, the rest
   synthetic) and ``syn`` (synthetic only: the Classification Accuracy Score, CAS, of Ravuri &
   Vinyals 2019);
5. test each classifier on the real test split (a dataset with one split, such as ``folder:PATH``:
   on its images that no run of the benchmark trained on).

The classifier is ganforge.metrics.classifier.SmallCNN (narrower widths by default), trained for
a fixed number of AdamW steps with random flips and shifts, so the three arms differ only in
their data. It works at 28x28 with the real data's channels: real images of another size, and
synthetic images of a GAN trained at another size or channel count (the GAN itself trains on its
subset resized to its config's data.resolution/data.channels), are resized to that, with a note.
Everything that determines a number is recorded in the result's ``settings`` and ``notes``.
"""
from __future__ import annotations

import contextlib
import math
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from . import mean_std, pm, train_seed

ARMS = ("real", "real+syn", "syn")
CLF_RESOLUTION = 28  # SmallCNN's input size (28 -> 14 -> 7 -> 3 pixels)


@dataclass
class Settings:
    data: str = "fashion-mnist"
    sizes: list[int] = field(default_factory=lambda: [10, 50, 100])  # real images per class
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    preset: str = "acgan-fashion-mnist"  # the conditional GAN trained on each subset
    gan_overrides: list[str] = field(default_factory=list)
    synthetic: int = 500  # synthetic images per class
    real_fraction: float = 0.5  # share of real images in every real+syn batch
    clf_steps: int = 300
    clf_batch: int = 64
    clf_lr: float = 2e-3
    clf_widths: tuple[int, int, int] = (16, 32, 64)
    clf_max_shift: int = 2
    test_n: int = 0  # test images (0: the whole test split), classes in turn (pick_test_images)
    reuse_gans: bool = False  # keep a GAN run of an earlier call when its config is the same


def stratified_subset(labels: torch.Tensor, per_class: int, seed: int,
                      class_names: list[str] | None = None) -> torch.Tensor:
    """Indices of ``per_class`` images of every class, drawn without replacement (seeded);
    ``class_names`` name a class too small in the error (an index alone says little of a folder)."""
    g = torch.Generator().manual_seed(10_007 * seed + per_class)
    idx = []
    for k in torch.unique(labels).tolist():
        members = torch.nonzero(labels == k).flatten()
        if len(members) < per_class:
            from ..errors import ConfigError

            name = f"'{class_names[k]}' (index {k})" if class_names and 0 <= k < len(class_names) else str(k)
            raise ConfigError(f"class {name} has {len(members)} images, fewer than {per_class}; "
                              f"choose smaller --sizes")
        idx.append(members[torch.randperm(len(members), generator=g)[:per_class]])
    return torch.cat(idx)


def pick_test_images(labels: torch.Tensor, n: int) -> torch.Tensor | None:
    """Indices of the ``n`` test images of --test-n: each class's first, then each class's second,
    ... (in file order); None for all of them (n = 0, or n at least their number). The first n had
    held only the first classes of a class-sorted test set (the held-out images of a folder)."""
    from ..metrics.targets import class_interleaved

    if not n or n >= len(labels):
        return None
    return torch.from_numpy(class_interleaved(labels.numpy(), n))


def train_classifier(x_real: torch.Tensor | None, y_real: torch.Tensor | None,
                     x_syn: torch.Tensor | None, y_syn: torch.Tensor | None, *, num_classes: int,
                     s: Settings, seed: int):
    """A SmallCNN trained for ``s.clf_steps`` steps on uint8 images; batches mix real and
    synthetic images by ``s.real_fraction`` when both are given."""
    from ..metrics.classifier import SmallCNN, augment

    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    channels = (x_real if x_real is not None else x_syn).shape[1]
    model = SmallCNN(in_channels=channels, num_classes=num_classes, widths=s.clf_widths,
                     embed_dim=2 * s.clf_widths[-1])
    opt = torch.optim.AdamW(model.parameters(), lr=s.clf_lr, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.clf_lr, total_steps=s.clf_steps)
    both = x_real is not None and x_syn is not None
    n_real = max(1, round(s.clf_batch * s.real_fraction)) if both else (s.clf_batch if x_real is not None else 0)
    model.train()
    for _ in range(s.clf_steps):
        xs, ys = [], []
        for x, y, n in ((x_real, y_real, n_real), (x_syn, y_syn, s.clf_batch - n_real)):
            if x is not None and n > 0:
                i = torch.randint(0, len(x), (n,), generator=gen)
                xs.append(x[i])
                ys.append(y[i])
        xb = augment(torch.cat(xs), gen, s.clf_max_shift)
        loss = F.cross_entropy(model(xb), torch.cat(ys))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def gan_config(s: Settings, size: int, seed: int, num_classes: int):
    """The GAN config of one (size, seed): the preset, the overrides, the seed, and a batch no
    larger than the subset."""
    from ..config import load_config

    _, cfg = load_config(s.preset, [f"data.name={s.data}", *s.gan_overrides, f"train.seed={seed}",
                                    "train.device=cpu"])
    cfg.train.batch_size = min(cfg.train.batch_size, size * num_classes)
    return cfg


def is_reusable(s: Settings, cfg, run_dir: Path) -> bool:
    """--reuse-gans: a finished GAN run of an earlier call with the very same config."""
    saved = run_dir / "config.yaml"
    return (s.reuse_gans and saved.is_file() and saved.read_text() == cfg.to_yaml()
            and (run_dir / "checkpoints" / f"step_{cfg.train.steps:07d}").is_dir())


def check_out(out: Path, *, force: bool, reuse_gans: bool) -> None:
    """Refuse, before any work, an existing non-empty ``--out`` that this call may not write into:
    without --force only --reuse-gans may use one (its runs are then checked by check_runs)."""
    from ..errors import ConfigError

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a directory; choose another --out")
    if force or reuse_gans or not out.is_dir() or not any(out.iterdir()):
        return
    raise ConfigError(f"{out} already exists; pass --force to retrain its GAN runs and overwrite its "
                      f"results, --reuse-gans to keep the GAN runs whose config is the same, or "
                      f"choose another --out")


def check_runs(s: Settings, out: Path, num_classes: int, *, force: bool) -> None:
    """Before any training: every GAN run this call would replace is a ganforge run no process
    holds, and (without ``force``) there is none: a run --reuse-gans cannot reuse is refused."""
    from ..errors import ConfigError
    from ..rundir import check_new_run_dir

    for size in s.sizes:
        for seed in s.seeds:
            run_dir = out / f"n{size}" / f"seed_{seed}"
            if not run_dir.exists() or is_reusable(s, gan_config(s, size, seed, num_classes), run_dir):
                continue
            if not force and (not run_dir.is_dir() or any(run_dir.iterdir())):
                raise ConfigError(f"--reuse-gans cannot reuse {run_dir} (another config, or no final "
                                  f"checkpoint); add --force (keeping --reuse-gans) to retrain only the runs "
                                  f"it cannot reuse, or choose another --out")
            check_new_run_dir(run_dir, force=True)  # a ganforge run no process holds, or refused


def run_one(size: int, seed: int, s: Settings, out: Path, train_set, test_set,
            log: Callable[[str], None]) -> dict[str, Any]:
    from .. import api
    from ..data import ImageDataset
    from ..data.base import adapt_images
    from ..metrics.classifier import accuracy

    k = len(train_set.class_names)
    idx = stratified_subset(train_set.labels, size, seed)
    subset = ImageDataset(images=train_set.images[idx], labels=train_set.labels[idx],
                          class_names=list(train_set.class_names), source=train_set.source,
                          name=train_set.name)
    cfg = gan_config(s, size, seed, k)
    batch = cfg.train.batch_size
    # The GAN trains on the subset at its config's size and channels, as ganforge train would load it.
    gan_subset = ImageDataset(images=adapt_images(subset.images, cfg.data.resolution, cfg.data.channels),
                              labels=subset.labels, class_names=list(subset.class_names),
                              source=subset.source, name=subset.name)
    run_dir = out / f"n{size}" / f"seed_{seed}"
    reused = is_reusable(s, cfg, run_dir)
    t0 = time.perf_counter()
    if not reused:
        if run_dir.exists():  # a ganforge run no process holds (check_runs), or refused
            from ..rundir import check_new_run_dir

            check_new_run_dir(run_dir, force=True)
            shutil.rmtree(run_dir)
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(run_dir.with_name(f"seed_{seed}.log"), "w") as f, contextlib.redirect_stdout(f):
            train_seed(cfg, run_dir, name=f"n{size}-s{seed}", progress=False, dataset=gan_subset)
    gan_seconds = time.perf_counter() - t0
    run = api.load(run_dir)
    from ..synthetic import balanced_labels

    y_syn = balanced_labels(s.synthetic, k)
    x_syn = ((run.sample(len(y_syn), seed=1000 + seed, labels=y_syn).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    # The classifiers see every image at CLF_RESOLUTION with the real data's channels (test_set is
    # already there): a real or synthetic image of another size is resized (bilinear, antialiased),
    # 3 -> 1 channels by luma, 1 -> 3 by repetition (adapt_images, a no-op where nothing differs).
    c = test_set.images.shape[1]
    x_real, y_real = adapt_images(subset.images, CLF_RESOLUTION, c), subset.labels
    x_syn = adapt_images(x_syn, CLF_RESOLUTION, c)
    x_test, y_test = test_set.images, test_set.labels
    pick = pick_test_images(y_test, s.test_n)
    if pick is not None:
        x_test, y_test = x_test[pick], y_test[pick]
    result: dict[str, Any] = {"size": size, "seed": seed, "gan_seconds": round(gan_seconds, 1),
                              "gan_steps": cfg.train.steps, "gan_batch": batch, "gan_reused": reused}
    arms = {"real": (x_real, y_real, None, None), "real+syn": (x_real, y_real, x_syn, y_syn),
            "syn": (None, None, x_syn, y_syn)}
    for arm, (xr, yr, xs, ys) in arms.items():
        t0 = time.perf_counter()
        model = train_classifier(xr, yr, xs, ys, num_classes=k, s=s, seed=seed)
        result[arm] = accuracy(model, x_test, y_test)
        result[f"{arm}_seconds"] = round(time.perf_counter() - t0, 1)
    log(f"  n={size}/class seed {seed}: real {100 * result['real']:.2f}%, real+syn "
        f"{100 * result['real+syn']:.2f}%, syn (CAS) {100 * result['syn']:.2f}% "
        f"(GAN {'reused' if reused else f'{gan_seconds:.0f} s'})")
    return result


def summarize(rows: list[dict[str, Any]], sizes: list[int]) -> list[dict[str, Any]]:
    out = []
    for size in sizes:
        rs = [r for r in rows if r["size"] == size]
        entry: dict[str, Any] = {"size": size, "n_seeds": len(rs)}
        for arm in ARMS:
            entry[f"{arm}_mean"], entry[f"{arm}_std"] = mean_std(r[arm] for r in rs)
        # the gain of each seed (real+syn minus real, one classifier pair per seed), and its spread
        entry["gain_mean"], entry["gain_std"] = mean_std(r["real+syn"] - r["real"] for r in rs)
        out.append(entry)
    return out


def format_summary(summary: list[dict[str, Any]], n_test: int | None = None) -> str:
    """The table of accuracies (%) per size, mean ± std over seeds, and the gain of adding
    synthetic data in percentage points; its first line says over how many seeds and test images."""
    seeds = sorted({e["n_seeds"] for e in summary})
    over = "/".join(map(str, seeds))
    spread = ("one seed (no spread)" if seeds == [1] else
              f"mean ± sample std over {over} seeds")
    tested = f" on {n_test} real test images" if n_test else ""
    lines = [f"test accuracy (%){tested}, {spread}; gain = real + synthetic minus real only, in percentage "
             f"points (pp)",
             f"{'real/class':>10}  {'real only':>15}  {'real + synthetic':>16}  {'synthetic only (CAS)':>20}  "
             f"{'gain (pp)':>14}"]
    for e in summary:
        cells = [pm(100 * e[f"{a}_mean"], 100 * e[f"{a}_std"], ".2f") for a in ARMS]
        gain_std = e.get("gain_std", math.nan)
        gain = f"{100 * e['gain_mean']:+.2f}" + ("" if math.isnan(gain_std) else f" ± {100 * gain_std:.2f}")
        lines.append(f"{e['size']:>10}  {cells[0]:>15}  {cells[1]:>16}  {cells[2]:>20}  {gain:>14}")
    return "\n".join(lines)


def held_out(train_set, test_set, s: Settings):
    """The test set: the test split, or, for a dataset with a single split (``folder:PATH``, where
    the "test" split is the training images again), its images that no subset of this benchmark
    (any size, any seed) was drawn from; None when it has a separate test split."""
    if len(test_set) != len(train_set) or not torch.equal(test_set.images, train_set.images):
        return None
    keep = torch.ones(len(train_set), dtype=torch.bool)
    for size in s.sizes:
        for seed in s.seeds:
            keep[stratified_subset(train_set.labels, size, seed)] = False
    return torch.nonzero(keep).flatten()


def _load_splits(name: str, data_dir: str | None):
    """(train, test) of ``name``, each warning of loading them said once: a dataset with a single
    split (folder:PATH) is read twice, and its "skipped N unusable image files" had been said twice."""
    from ..data import load_dataset

    seen: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            train_set = load_dataset(name, split="train", data_dir=data_dir)
            test_set = load_dataset(name, split="test", data_dir=data_dir)
    finally:  # said in order, once each, through the filters (and the CLI's one-line format)
        said = set()
        for w in seen:
            if (str(w.message), w.category) not in said:
                said.add((str(w.message), w.category))
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return train_set, test_set


def run_benchmark(s: Settings, out: Path, *, data_dir: str | None = None, force: bool = False,
                  log: Callable[[str], None] = print, header: str | None = None) -> dict[str, Any]:
    """``force``: replace the GAN runs of an earlier call in ``out`` (ganforge runs only); without
    it an existing run is refused before any training unless --reuse-gans keeps it. ``header``:
    logged once the data passed its checks (a refused --sizes had been a second line under it)."""
    from ..config import load_config
    from ..data import ImageDataset
    from ..data.base import adapt_images
    from ..errors import ConfigError

    train_set, test_set = _load_splits(s.data, data_dir)
    if train_set.labels is None or not train_set.class_names:
        raise ConfigError(f"bench augment needs a labeled dataset; {s.data} has no labels")
    for size in s.sizes:  # a class too small for a size fails now, not after the first GANs
        stratified_subset(train_set.labels, size, 0, list(train_set.class_names))
    notes = []
    idx = held_out(train_set, test_set, s)
    if idx is not None:
        if not len(idx):
            raise ConfigError(f"{s.data} has a single split and every image is drawn for training by "
                              f"--sizes {','.join(map(str, s.sizes))}; choose smaller --sizes so that "
                              f"images are left to test on")
        test_set = ImageDataset(images=train_set.images[idx], labels=train_set.labels[idx],
                                class_names=list(train_set.class_names), source=train_set.source,
                                name=train_set.name)
        notes.append(f"{s.data} has no separate test split: testing on its {len(idx)} images that no "
                     f"GAN or classifier trains on (the {len(train_set) - len(idx)} drawn for "
                     f"--sizes x --seeds are left out)")
    if header:
        log(header)
    if 0 < s.test_n < len(test_set):
        notes.append(f"--test-n {s.test_n}: testing on {s.test_n} of the {len(test_set)} test images, the first "
                     f"of each class in turn (file order)")
    channels, height, width = train_set.images.shape[1:]
    if (height, width) != (CLF_RESOLUTION, CLF_RESOLUTION):
        notes.append(f"the classifiers work at {CLF_RESOLUTION}x{CLF_RESOLUTION}: the real images "
                     f"({height}x{width}x{channels}) are resized to that (bilinear, antialiased)")
        test_set = ImageDataset(images=adapt_images(test_set.images, CLF_RESOLUTION, channels),
                                labels=test_set.labels, class_names=list(test_set.class_names),
                                source=test_set.source, name=test_set.name)
    _, cfg = load_config(s.preset, [f"data.name={s.data}", *s.gan_overrides])
    gan = (cfg.data.resolution, cfg.data.channels)
    if gan != (CLF_RESOLUTION, channels):
        notes.append(f"the GAN trains and generates at {gan[0]}x{gan[0]}x{gan[1]} (its data.resolution and "
                     f"data.channels; its real subset is resized to that): synthetic images are resized "
                     f"to the classifiers' {CLF_RESOLUTION}x{CLF_RESOLUTION}x{channels} (bilinear, "
                     f"antialiased; channels by luma or repetition)")
    for note in notes:
        log(f"ganforge: note: {note}")
    check_runs(s, out, len(train_set.class_names), force=force)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    t0 = time.perf_counter()
    for size in s.sizes:
        for seed in s.seeds:
            rows.append(run_one(size, seed, s, out, train_set, test_set, log))
    settings = asdict(s)
    settings["clf_widths"] = list(s.clf_widths)
    return {"settings": settings, "class_names": list(train_set.class_names),
            "n_test": min(len(test_set), s.test_n or len(test_set)),  # what was used, not what was asked
            "test_set": "held-out images of the single split" if idx is not None else "test split",
            "notes": notes, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "seconds": round(time.perf_counter() - t0, 1), "rows": rows,
            "summary": summarize(rows, s.sizes)}
