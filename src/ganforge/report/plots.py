"""The report's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot, so the
caller's backend and global state are left alone) and returned as PNG bytes."""
from __future__ import annotations

import io
import math
import statistics
from typing import Any, Callable

from ..errors import GanforgeError
from .run import Run, family, is_audio

# The diagnostic events: the monitor's detectors (training.monitor.KINDS, README "Is training
# working?"). Other events in metrics.jsonl (rollback, config_change on a resume with changed
# settings, a progressive run's stage) are shown and marked, but are not diagnostics.
DIAGNOSTICS = ("mode_collapse", "vanishing_gradients", "divergence", "oscillation")
# Event markers in colours no curve uses: the curves take matplotlib's tab10 (C0-C9), or tab20,
# and the metrics green #2e7d32, which cover the bright and light hues; these are dark or deep
# ones at least 20 (CIEDE2000) from every curve colour. (The old markers shared the curves' hues:
# vanishing gradients #d35400 was the orange of G loss and D(G(z)), oscillation C0's blue.)
EVENT_COLORS = {"mode_collapse": "#6b0049", "vanishing_gradients": "#8a6500",
                "divergence": "#000000", "oscillation": "#1a0dcc", "rollback": "#005a5a",
                "config_change": "#cc1177"}
OTHER_EVENT_COLOR = "#4f4f00"
LABELS = {"d_loss": "D loss", "g_loss": "G loss", "d_real": "D(x)", "d_fake": "D(G(z))",
          "d_acc_real": "D accuracy on real", "d_acc_fake": "D accuracy on fake",
          "g_grad_norm": "|grad G|", "d_grad_norm": "|grad D|",
          # the lazy-regularization phases' own steps (Trainer: f"{phase.name.lower()}_grad_norm")
          "dreg_grad_norm": "|grad D| (R1/R2 step)", "greg_grad_norm": "|grad G| (path-length step)",
          "diversity": "generated",
          "diversity_real": "real data", "diversity_features": "generated",
          "diversity_features_real": "real data", "probe_classes": "generated",
          "probe_classes_real": "real data", "probe_hq": "generated", "probe_hq_real": "real data",
          "img_per_s": "images / s"}
# Evaluation metrics (the cards and the metrics figure); others get metric_label()'s generic spelling.
METRIC_LABELS = {"fid": "FID", "kid": "KID", "kid_std": "KID std", "is": "IS", "is_std": "IS std",
                 "intra_fid": "Intra-class FID", "class_kl": "Class KL", "ppl_w": "PPL in W",
                 "ppl_z": "PPL in Z"}
ACRONYMS = {"fid", "kid", "is", "kl", "ppl", "psnr", "ssim", "lpips", "mcd", "snr", "pesq", "stoi",
            "ap", "auc", "mse", "mae", "l1", "l2", "r1", "r2"}
D_OUTPUTS = ("d_real", "d_fake", "d_acc_real", "d_acc_fake")
# The D outputs' axis where they are raw scores, not probabilities: a critic's (wasserstein), the
# logits of a logistic loss (sigmoid gives D's probability; LAPGAN logs them raw), or D's scores
RAW_SCORE, RAW_LOGIT, RAW_D_SCORE = "critic score (raw)", "D logit (raw)", "D score (raw)"
PROBABILITY_RANGE = (-0.03, 1.03)  # the D-outputs chart's fixed axis for probabilities and accuracies


def _base(key: str) -> str:
    """A per-level key's name without its level (LAPGAN logs d_loss_0, d_real_2, ...)."""
    head, _, tail = key.rpartition("_")
    return head if head and tail.isdigit() else key


def _colors(keys: list[str]) -> dict[str, Any]:
    """A color per key: matplotlib's 10-color cycle, or tab20 when there are more curves (LAPGAN's
    per-level terms repeated colors: d_loss_0 and d_fake_2 were the same blue)."""
    if len(keys) <= 10:
        return {k: f"C{i}" for i, k in enumerate(keys)}
    from matplotlib import colormaps

    tab = colormaps["tab20"]
    return {k: tab(i % 20) for i, k in enumerate(keys)}


def label(key: str) -> str:
    """A readable name for a logged key: LABELS; a per-level key (LAPGAN's d_loss_2) as its
    base's label with the level; any phase's gradient norm (g0_grad_norm: LAPGAN's level-0 G)
    as |grad NET|; anything else as the key itself."""
    if key in LABELS:
        return LABELS[key]
    base = _base(key)
    if base != key and base in LABELS:
        return f"{LABELS[base]}, level {key[len(base) + 1:]}"
    if key.endswith("_grad_norm"):
        net = key[:-len("_grad_norm")]
        return f"|grad {net[:1].upper()}{net[1:]}|" if net else key
    return key


def metric_label(key: str) -> str:
    """An evaluation metric's name as the report shows it: kid_std -> 'KID std', class_kl ->
    'Class KL', label_accuracy -> 'Label accuracy' (the raw key had been the card's label,
    uppercased by the CSS into 'KID_STD')."""
    if key in METRIC_LABELS:
        return METRIC_LABELS[key]
    words = [w.upper() if w in ACRONYMS else w for w in key.split("_") if w]
    if not words:
        return key
    return " ".join([words[0][:1].upper() + words[0][1:]] + words[1:])


def is_diagnostic(event: dict) -> bool:
    """Whether an event is one of the monitor's diagnostics (not a rollback, config change, ...)."""
    return str(event.get("event")) in DIAGNOSTICS


class Group:
    def __init__(self, id: str, title: str, keep: Callable[[str], bool], **axes: Any):
        self.id, self.title, self.keep, self.axes = id, title, keep, axes


# Curves drawn as their own figure, in this order; every other numeric key is an evaluation
# metric (fid, kid, ...) and goes to the metrics figure.
GROUPS = [
    Group("losses", "Losses", lambda k: _base(k).endswith("loss"), scale="auto"),
    Group("d-outputs", "Discriminator outputs: mean D(x), D(G(z)) and accuracy",
          lambda k: _base(k) in D_OUTPUTS, ylim=PROBABILITY_RANGE),
    Group("grad-norms", "Gradient norms", lambda k: _base(k).endswith("grad_norm"), scale="log"),
    Group("diversity", "Sample diversity: mean pairwise distance in a fixed probe batch",
          lambda k: k in ("diversity", "diversity_real")),
    Group("diversity-features", "Sample diversity in the dataset classifier's features "
          "(same probe batch)", lambda k: k in ("diversity_features", "diversity_features_real")),
    Group("probe-classes", "Classes the dataset classifier finds in the probe batch",
          lambda k: k in ("probe_classes", "probe_classes_real"), ylabel="classes"),
    Group("probe-hq", "Share of the probe points within 3 sigma of a mode centre (high quality)",
          lambda k: k in ("probe_hq", "probe_hq_real"), ylim=PROBABILITY_RANGE, ylabel="share"),
    Group("throughput", "Throughput", lambda k: k == "img_per_s"),
]


def logged_probabilities(run: Run) -> bool | None:
    """Whether the run logs d_real / d_fake as probabilities or as raw scores (a critic's, hinge,
    least squares, relativistic), as its family declares for its config
    (``Objective.logs_d_probabilities``); None where that is unknown: no config, a family or a
    loss registered by a plugin not imported in this process."""
    fam = family(run)
    if fam is None or not isinstance(run.config, dict):
        return None
    try:
        return fam.logs_d_probabilities(run.config)
    except Exception:  # a plugin family's declaration must not break the report
        return None


def raw_scores(run: Run, series: dict[str, tuple[list[int], list[float]]] | None = None) -> bool:
    """Whether D's outputs are drawn and named as raw scores: always for a loss that is not
    probabilistic (a weight-clipped WGAN's critic scores of 0.005-0.09 had been drawn on the [0, 1]
    axis as D(x)); by their values (any outside PROBABILITY_RANGE) where that is unknown or a
    family declares probabilities it does not log."""
    if logged_probabilities(run) is False:
        return True
    low, high = PROBABILITY_RANGE
    return any(not low <= v <= high for k, (_, values) in (run.series() if series is None else series).items()
               if _base(k) in ("d_real", "d_fake") for v in values if math.isfinite(v))


def raw_score_name(run: Run) -> str:
    """What D's raw outputs are called on the chart's axis (the card says it in the plural): "critic"
    is the Wasserstein loss's word, and a logistic loss's raw outputs are logits (LAPGAN's had been
    called critic scores); hinge, least squares, relativistic and a plugin's loss, or a family
    whose adversarial loss is its own (the vocoder's least squares): D's scores."""
    from ..losses import LOSSES, is_probabilistic

    loss = run.config.get("loss") if isinstance(run.config, dict) else None
    name = loss.get("name") if isinstance(loss, dict) else None
    fam = family(run)
    if fam is not None and any(u in ("loss.", "loss.name") for u in getattr(fam, "unused_settings", ())):
        return RAW_D_SCORE
    if name == "wasserstein":
        return RAW_SCORE
    pair = LOSSES[name] if isinstance(name, str) and name in LOSSES else None
    return RAW_LOGIT if pair is not None and is_probabilistic(pair) else RAW_D_SCORE


TOY_COVERAGE_TITLE = "Modes of the mixture the probe samples capture (within 3 sigma of a centre)"


def _toy(run: Run) -> bool:
    """Whether the run trains on a 2-D toy mixture (toy:ring8, toy:grid25)."""
    data = (run.config or {}).get("data")
    return isinstance(data, dict) and str(data.get("name", "")).startswith("toy:")


def rate_unit(run: Run) -> str:
    """What img_per_s counts, as the progress bar says it (``Objective.rate_unit``): an audio
    family's training clips, a toy mixture's 2-D points, else images."""
    return "clips/s" if is_audio(run) else "points/s" if _toy(run) else "img/s"


def throughput_label(run: Run) -> str:
    """The throughput chart's axis: ``rate_unit`` in words (an audio run's chart had said
    "images / s", and so had a toy run's, which samples points)."""
    return {"clips/s": "clips / s", "points/s": "points / s"}.get(rate_unit(run), LABELS["img_per_s"])


def color(kind: str) -> str:
    return EVENT_COLORS.get(kind, OTHER_EVENT_COLOR)


def _figure(width: float, height: float, layout: str | None = "constrained"):
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise GanforgeError("the report draws its plots with matplotlib, which is not installed; "
                            "pip install matplotlib") from None
    fig = Figure(figsize=(width, height), dpi=110, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _step_axis(ax) -> None:
    """Label the x axis "step", with whole-number ticks (a 20-step run's axis had read 2.5, 7.5)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("step", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def points_png(points, *, data: str, step: int) -> bytes:
    """A scatter plot of a point run's samples (float [N, 2]) as PNG bytes; for a toy mixture
    (``data``: its data.name), each mode's 3-sigma circle in red (ganforge.data.toy.scatter_png)."""
    from ..data.toy import scatter_png

    png = scatter_png(points, data=data, step=step)
    if png is None:
        raise GanforgeError("the scatter plot is drawn with matplotlib, which is not installed; "
                            "pip install matplotlib")
    return png


def _style(ax, run: Run) -> None:
    ax.set_xlim(0, max(run.last_step, 1) * 1.01)
    ax.grid(True, alpha=0.3, linewidth=0.6)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=8)


def _mark_events(ax, events: list[dict], discarded: set[int] = frozenset()) -> list:
    """Dashed vertical lines at the events; one legend handle per kind. Events of history a
    rollback discarded (``discarded``: their id()s) are dotted and faded, with their own handle,
    and drawn on top, 3 points right of their step (a rollback's line at that step hid them)."""
    from matplotlib.lines import Line2D
    from matplotlib.transforms import offset_copy

    handles = {}
    for e in events:
        kind, old = str(e["event"]), id(e) in discarded
        style = dict(linestyle=":", alpha=0.35) if old else dict(linestyle="--")
        # opaque: at alpha 0.85 on white the dark marker colours drifted toward the curves' hues
        line = ax.axvline(e["step"], color=color(kind), linewidth=1.2, zorder=1.5 if old else 1, **style)
        if old:  # a divergence sits at the step of the rollback it caused: its legend entry had named
            # a line hidden under the rollback's, so discarded history is drawn on top, 3 points right
            line.set_transform(offset_copy(line.get_transform(), ax.figure, x=3, units="points"))
        label = kind.replace("_", " ") + (" (before rollback)" if old else "")
        handles[label] = Line2D([], [], color=color(kind), linewidth=1.2, label=label, **style)
    return list(handles.values())


def _symlog_needed(values: list[float]) -> float | None:
    finite = [abs(v) for v in values if math.isfinite(v)]
    if not finite:
        return None
    typical = statistics.median(finite) or 1e-3
    return typical if max(finite) > 50 * typical else None


# A curve chart's plot box, in inches, the same in every one so that they line up one under the
# other: under constrained layout a legend wider than the figure (ncol=6 with the rollback marks)
# ran past its right edge and narrowed that chart's plot. LEFT holds the widest tick labels
# (4 x 10^10, -10^17) and a y label, RIGHT a critic's accuracy axis, GAP the "1e11" matplotlib
# writes above the plot, under the legend (it had been drawn over the legend).
WIDTH, LEFT, RIGHT, BOTTOM, PLOT_HEIGHT, GAP = 9.0, 0.85, 0.45, 0.45, 2.0, 0.22
MAX_COLUMNS = 6  # legend entries in a row, where they fit


def _curve_figure():
    """A figure and its plot for a curve chart; _legend() sizes and places them."""
    fig = _figure(WIDTH, BOTTOM + PLOT_HEIGHT + GAP, layout=None)
    return fig, fig.add_axes((LEFT / WIDTH, 0, (WIDTH - LEFT - RIGHT) / WIDTH, 1))


def _legend(fig, handles: list) -> None:
    """The legend above the plot, in as many columns as fit the figure's width; the figure grows
    by the legend's height and every plot (a twin axis too) keeps the fixed box."""
    renderer = fig.canvas.get_renderer()
    top = BOTTOM + PLOT_HEIGHT + GAP
    for ncol in range(min(len(handles), MAX_COLUMNS), 0, -1):
        legend = fig.legend(handles=handles, loc="lower left", bbox_to_anchor=(LEFT, top),
                            bbox_transform=fig.dpi_scale_trans, borderaxespad=0, ncol=ncol,
                            frameon=False, fontsize=8, handlelength=2.2)
        box = legend.get_window_extent(renderer)
        if box.width <= (WIDTH - LEFT - 0.1) * fig.dpi or ncol == 1:
            break
        legend.remove()
    height = top + box.height / fig.dpi + 0.1
    fig.set_size_inches(WIDTH, height)
    for ax in fig.axes:
        ax.set_position((LEFT / WIDTH, BOTTOM / height, (WIDTH - LEFT - RIGHT) / WIDTH,
                         PLOT_HEIGHT / height))


def _symlog(ax, linthresh: float) -> None:
    """A symlog y axis whose tick labels do not overlap: with a tiny linthresh (a minimax G loss
    near 0 beside a large D loss) 10^-5, 0 and -10^-5 had been drawn on top of each other."""
    from matplotlib.ticker import SymmetricalLogLocator

    class Spaced(SymmetricalLogLocator):
        def __call__(self):
            ticks = list(super().__call__())
            y = {t: self.axis.axes.transData.transform((0, t))[1] for t in ticks}
            kept: list[float] = []
            # 0 first, then the largest magnitudes: the decades near 0 give way
            for t in sorted(ticks, key=lambda t: (t != 0, -abs(t))):
                if all(abs(y[t] - y[k]) >= 16 for k in kept):
                    kept.append(t)
            return sorted(kept)

    ax.set_yscale("symlog", linthresh=linthresh)
    ax.yaxis.set_major_locator(Spaced(linthresh=linthresh, base=10))


def _log_axis(ax, values: list[float]) -> None:
    """A log y axis whose labels reach the curves: over two decades or less it is labelled at 1, 2
    and 5 of each decade in plain numbers (0.5, 1, 2, 5, 10, 20, 50). matplotlib's own labels
    only the powers of ten there, and a G gradient norm of 46-59 had sat above the last label,
    10^1, with nothing to read it by."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    if values and max(values) <= 100 * min(values):
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.yaxis.set_minor_formatter(NullFormatter())


def _side(key: str) -> int:
    """0 for a discriminator's curve (d_loss, d_grad_norm), 1 for a generator's, 2 for others."""
    base = _base(key)
    return 0 if base.startswith("d_") else 1 if base.startswith("g_") else 2


def curve_figures(run: Run) -> list[tuple[str, str, bytes]]:
    """(section id, title, png) for each group that has data."""
    series = run.series()
    scores_raw = raw_scores(run, series)
    out = []
    for group in GROUPS:
        keys = [k for k in series if group.keep(k)]
        if group.id == "d-outputs":
            keys.sort(key=lambda k: (D_OUTPUTS.index(_base(k)), k))
        else:  # D's curve before G's, so each keeps its colour from family to family (the
            keys.sort(key=_side)  # order of the records had made pix2pix's G loss blue, DCGAN's D loss)
        if not keys:
            continue
        fig, ax = _curve_figure()
        # A critic's scores (WGAN, hinge) are not probabilities: they get the axis, auto-scaled,
        # and the accuracies a second one in [0, 1] (one fixed [0, 1] axis drew them off the chart)
        raw = group.id == "d-outputs" and scores_raw and any(_base(k) in ("d_real", "d_fake") for k in keys)
        colors = _colors(keys) if any(_base(k) != k for k in keys) else {}
        # the accuracies' own axis only where the run logs them (LAPGAN, CycleGAN-VC do not: an
        # empty "accuracy" axis had stood beside their raw scores)
        acc_ax = ax.twinx() if raw and any(k.startswith("d_acc") for k in keys) else ax
        for key in keys:
            steps, values = series[key]
            dashed = key.startswith("d_acc") or _base(key).endswith("_real")
            name = throughput_label(run) if key == "img_per_s" else label(key)
            (acc_ax if key.startswith("d_acc") else ax).plot(
                steps, values, label=name, linewidth=1.5, linestyle=":" if dashed else "-",
                marker="o" if len(steps) < 3 else None, markersize=4,
                color=colors.get(key, f"C{D_OUTPUTS.index(key)}" if key in D_OUTPUTS else None))
        if raw:
            ax.set_ylabel(raw_score_name(run), fontsize=8)
        if acc_ax is not ax:
            acc_ax.set_ylim(*PROBABILITY_RANGE)
            acc_ax.set_ylabel("accuracy", fontsize=8)
            acc_ax.tick_params(labelsize=8)
        if group.axes.get("scale") == "log" and all(
                v > 0 for k in keys for v in series[k][1] if math.isfinite(v)):
            _log_axis(ax, [v for k in keys for v in series[k][1] if math.isfinite(v)])
        elif group.axes.get("scale") == "auto":
            linthresh = _symlog_needed([v for k in keys for v in series[k][1]])
            if linthresh:
                _symlog(ax, linthresh)
        if "ylim" in group.axes and not raw:
            ax.set_ylim(*group.axes["ylim"])
        title, ylabel = group.title, group.axes.get("ylabel")
        if group.id == "probe-classes" and _toy(run):  # the monitor counts a mixture's modes there
            title, ylabel = TOY_COVERAGE_TITLE, "modes"
        if group.id == "d-outputs" and not any(k.startswith("d_acc") for k in keys):  # LAPGAN logs none
            title = title.removesuffix(" and accuracy")
        if ylabel or group.id == "throughput":
            ax.set_ylabel(ylabel or throughput_label(run), fontsize=8)
        _style(ax, run)
        _step_axis(ax)
        twin = acc_ax.get_legend_handles_labels()[0] if acc_ax is not ax else []
        handles = ax.get_legend_handles_labels()[0] + twin + _mark_events(ax, run.events, run.discarded())
        _legend(fig, handles)
        out.append((group.id, title, _png(fig)))
    other = other_training_keys(run)
    if other:
        fig, ax = _curve_figure()
        colors = _colors(other)
        for key in other:
            steps, values = series[key]
            ax.plot(steps, values, label=label(key), linewidth=1.5, color=colors[key],
                    marker="o" if len(steps) < 3 else None, markersize=4)
        linthresh = _symlog_needed([v for k in other for v in series[k][1]])
        if linthresh:
            _symlog(ax, linthresh)
        _style(ax, run)
        _step_axis(ax)
        marks = _mark_events(ax, run.events, run.discarded())
        _legend(fig, ax.get_legend_handles_labels()[0] + marks)
        out.append(("other-terms", "Other training terms (regularizers, loss components, batch scores)",
                    _png(fig)))
    return out


def metric_keys(run: Run) -> list[str]:
    """The evaluation metrics (fid, kid, ...): what the evaluation hooks logged, in records that
    carry no training "time"; training terms (r1, l1, mel_l1, ...) are not metrics."""
    series = run.series()
    evaluated = {k for r in run.records if "time" not in r for k in r}
    return [k for k in series if k in evaluated and not any(g.keep(k) for g in GROUPS)]


def other_training_keys(run: Run) -> list[str]:
    """Training scalars no group draws (loss terms such as r1, l1, mel_l1, psnr of a batch)."""
    series = run.series()
    trained = {k for r in run.records if "time" in r for k in r}
    return [k for k in series if k in trained and not any(g.keep(k) for g in GROUPS)]


def metrics_figure(run: Run) -> bytes | None:
    """One small panel per evaluation metric (fid, kid, ...), events marked; None if none."""
    keys = metric_keys(run)
    if not keys:
        return None
    series = run.series()
    ncols = 2 if len(keys) > 1 else 1
    nrows = math.ceil(len(keys) / ncols)
    fig = _figure(9.0, 2.4 * nrows)
    for i, key in enumerate(keys):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        steps, values = series[key]
        ax.plot(steps, values, marker="o", markersize=3.5, linewidth=1.4, color="#2e7d32")
        _mark_events(ax, run.events, run.discarded())
        _style(ax, run)
        ax.set_title(metric_label(key), fontsize=9, loc="left")
        _step_axis(ax)
    return _png(fig)


def timeline_figure(run: Run) -> bytes:
    """One row per event kind (and one for the sample grids) along the training steps."""
    kinds = list(dict.fromkeys(str(e["event"]) for e in run.events))
    rows = (["samples"] if run.samples else []) + kinds
    fig = _figure(9.0, 0.55 + 0.32 * max(len(rows), 1))
    ax = fig.add_subplot()
    for y, row in enumerate(reversed(rows)):
        if row == "samples":
            ax.plot([s for s, _ in run.samples], [y] * len(run.samples), linestyle="none",
                    marker="s", markersize=6, color="#95a5a6")
        else:
            gone = run.discarded()
            for old in (False, True):  # events a rollback discarded: faded
                steps = [e["step"] for e in run.events if str(e["event"]) == row and (id(e) in gone) == old]
                ax.plot(steps, [y] * len(steps), linestyle="none", marker="v", markersize=9,
                        color=color(row), alpha=0.35 if old else 1.0)
    ax.set_yticks(range(len(rows)), [r.replace("_", " ") for r in reversed(rows)], fontsize=8)
    ax.set_ylim(-0.6, max(len(rows), 1) - 0.4)
    _style(ax, run)
    ax.grid(True, axis="x", alpha=0.3)
    ax.grid(False, axis="y")
    ax.spines["left"].set_visible(False)
    ax.tick_params(axis="y", length=0)
    _step_axis(ax)
    return _png(fig)
