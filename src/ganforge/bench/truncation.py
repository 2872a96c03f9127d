"""The truncation trade-off of a trained run: FID, precision and recall (and, for conditional
runs, label accuracy) of samples drawn at each truncation value.

For StyleGAN2 the value is psi (Karras et al. 2019, "A Style-Based Generator Architecture for
GANs", sec. 3.1: w pulled toward the average w); for BigGAN the threshold of the truncation
trick (Brock et al. 2019, sec. 3.1). What the value means and which values are valid is the
family's (``sample(truncation=...)``); this module only sweeps, scores and plots. Kynkaanniemi
et al. 2019 ("Improved Precision and Recall Metric", fig. 8) show the expected shape for psi:
precision rises and recall falls as psi goes to 0.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import atomic_path
from ..labels import interleaved_labels
from ..metrics import evaluate
from ..metrics.features import to_uint8

METRICS = ("fid", "precision", "recall")


def run_benchmark(run, values: Sequence[float], *, ref: str, n: int = 5000, seed: int = 0,
                  extractor=None, split: str = "test", data_dir=None,
                  log: Callable[[str], None] | None = None) -> dict:
    """Score ``n`` samples of a loaded run (``ganforge.load``) per truncation value."""
    # every class equally often, as ganforge eval draws them (None for unconditional runs)
    labels = interleaved_labels(n, len(run.class_names)) if run.class_names else None
    metrics = list(METRICS) + (["label_accuracy"] if labels is not None else [])
    rows, protocol, warned = [], None, set()
    for value in values:
        t0 = time.perf_counter()
        images = run.sample(n, seed=seed, labels=labels, truncation=value)
        result = evaluate(to_uint8(images), ref=ref, split=split, metrics=metrics, n_ref=n,
                          labels=None if labels is None else labels.numpy(), extractor=extractor,
                          data_dir=data_dir)
        protocol = protocol or result.protocol
        for warning in result.protocol["warnings"]:  # once (they are about n, the same for every value)
            if log and warning not in warned:
                log(f"warning: {warning}")
            warned.add(warning)
        rows.append({"truncation": float(value), **{k: float(v) for k, v in result.values.items()},
                     "seconds": round(time.perf_counter() - t0, 2)})
        if log:
            log(format_row(rows[-1]))
    return {"run": str(run.run_dir), "checkpoint": run.checkpoint.name, "step": run.step,
            "objective": run.config.objective, "n": n, "seed": seed, "metrics": metrics,
            "results": rows, "protocol": protocol}


def format_row(row: dict) -> str:
    keys = [k for k in ("fid", "precision", "recall", "label_accuracy") if k in row]
    return f"truncation {row['truncation']:<6g} " + "  ".join(f"{k} {row[k]:.4g}" for k in keys)


def title(result: dict) -> str:
    """The plot's title: the run, its step and n, and the reference's size when it held fewer
    images than were drawn (a 62-image folder at --n 200 had been titled n=200 alone)."""
    n_ref = (result.get("protocol") or {}).get("n_reference")
    sizes = f"n={result['n']}" + (f" vs {n_ref} reference" if n_ref is not None and n_ref < result["n"] else "")
    return f"{Path(result['run']).name} ({result['objective']}, step {result['step']}, {sizes})"


def plot(result: dict, path: Path) -> Path:
    """FID on the left axis, precision / recall (/ label accuracy) on the right, against the value."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(result["results"], key=lambda r: r["truncation"])
    x = np.array([r["truncation"] for r in rows])
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(x, [r["fid"] for r in rows], "o-", color="black", label="FID (left)")
    ax.set_xlabel("truncation")
    ax.set_ylabel(f"FID ({result['protocol']['extractor']})")
    right = ax.twinx()
    for key, color in (("precision", "tab:blue"), ("recall", "tab:orange"), ("label_accuracy", "tab:green")):
        if key in rows[0]:
            right.plot(x, [r[key] for r in rows], "s--", color=color, label=key)
    right.set_ylim(0, 1)
    lines = ax.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    # below the axes: inside them, the twin axis's lines were drawn over the legend
    fig.legend(lines, [ln.get_label() for ln in lines], loc="lower center", ncol=len(lines), fontsize=8,
               frameon=False)
    ax.set_title(title(result), fontsize=9)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
