"""Several runs on one page (``ganforge report RUN1 RUN2 ...``): a table of where each got (steps,
training time, how it ended, warnings, its last evaluation numbers with the best marked), the
config keys that differ, each metric against step and against training seconds, the losses, and
the last sample grids side by side; where runs are seeds of one config, each metric's mean ± std
per group of seeds. Self-contained, as the single report (page.py)."""
from __future__ import annotations

import datetime
import functools
import math
import statistics
from html import escape
from pathlib import Path
from typing import Any, Sequence

from ..atomic import atomic_write_text, probe_writable
from ..errors import CheckpointError, ConfigError, shell_arg
from . import plots
from .page import (CSS, THUMB_WIDTH, _chart, _diagnostics, _duration, _ending, _fmt, _img, _legend, unset,
                   _players, _stopped, _thumbnail)
from .run import Run, _live, _read_config, environment_parts, given_dataset, load_run, measured_with

MAX_RUNS = 8  # lines a chart tells apart (tab10 colours), columns a table holds
DEFAULT_OUT = "compare.html"
# A toy mixture's modes are judged by the monitor's probe on every log record (README: toy runs
# have no eval.every): the numbers its mode benchmark compares recipes by.
TOY_METRICS = {"probe_classes": "Modes captured", "probe_hq": "High-quality share"}
# metrics the single report shows otherwise than as a number (the share as "13%", not 0.1296)
SHOWN_AS = {"probe_hq": lambda v: f"{100 * v:.1f}%"}


def _shown(key: str, value: float) -> str:
    return SHOWN_AS.get(key, _fmt)(value)
ARROWS = {"lower": "↓", "higher": "↑", "1": "→1"}
DIRECTION_TEXT = {"lower": "lower is better", "higher": "higher is better", "1": "closer to 1 is better"}
CONFIG_HIDDEN = ("description",)  # a preset's prose, rewritten by every override
SEED_KEY = "train.seed"  # the one key runs of one recipe differ in (the "Across seeds" section)

COMPARE_CSS = """
main { max-width: 1320px; }  /* a column per metric, or per run: wider than one run's page */
.scroll { overflow-x: auto; }
table.runs { table-layout: auto; }
table.runs th { text-align: left; font-size: 13px; color: var(--muted); font-weight: 600;
                padding: 4px 10px 4px 0; border-bottom: 2px solid var(--line); vertical-align: bottom; }
table.runs td { padding: 4px 10px 4px 0; overflow-wrap: normal; min-width: 70px; }
table.runs td.what { min-width: 150px; }
table.runs td.ended { min-width: 120px; }
table.runs td:first-child { width: auto; color: var(--fg); white-space: nowrap; }
table.runs td.num { white-space: nowrap; font-variant-numeric: tabular-nums; }
table.seeds td:first-child { white-space: normal; min-width: 180px; max-width: 360px; }
td.best { font-weight: 700; color: #2e7d32; }
.swatch { display: inline-block; width: 11px; height: 11px; border-radius: 3px; margin-right: 6px;
          vertical-align: -1px; background: var(--run); }
.side { display: flex; flex-wrap: wrap; gap: 18px; }
.side figure { margin: 0; width: 280px; }
.side img { width: 280px; height: auto; border: 1px solid var(--line); border-radius: 4px; }
.side figcaption { text-align: left; }
"""


# ----------------------------------------------------------------------------- runs


def run_labels(run_dirs: Sequence[Path]) -> list[str]:
    """Each run's folder name; where names clash, the shortest path suffix no other run shares
    (a/run and b/run)."""
    parts = [Path(p).resolve().parts for p in run_dirs]

    def suffix(p: tuple[str, ...], k: int) -> str:
        return str(Path(*p[-k:])) if k < len(p) else str(Path(*p))

    out = []
    for i, p in enumerate(parts):
        k = 1
        while k < len(p) and any(suffix(q, k) == suffix(p, k) for j, q in enumerate(parts) if j != i):
            k += 1
        out.append(suffix(p, k))
    return out


def _is_run_folder(path: Path) -> bool:
    """A folder with any of a run's files: one without metrics yet is compared with a note."""
    return path.is_dir() and any((path / name).exists()
                                 for name in ("config.yaml", "metrics.jsonl", "checkpoints", "samples"))


def _load(path: Path) -> Run:
    """The run at ``path``; one that has no records yet comes back empty, its note saying why."""
    try:
        return load_run(path)
    except CheckpointError as exc:
        if not _is_run_folder(path):
            raise
        live, _ = _live(path)
        # its single report's advice ("run ganforge report RUN again then") made the comparison's
        note = str(exc).replace(f"run ganforge report {shell_arg(path)} again then", "compare again then")
        return Run(path, _read_config(path / "config.yaml"), [], [], notes=[note], live=live,
                   given=given_dataset(path))


def _check_runs(run_dirs: Sequence[Path]) -> None:
    if len(run_dirs) < 2:
        raise ConfigError(f"a comparison needs 2 to {MAX_RUNS} runs, got {len(run_dirs)}; for one run "
                          f"write its report (ganforge report RUN)")
    if len(run_dirs) > MAX_RUNS:
        raise ConfigError(f"a comparison holds at most {MAX_RUNS} runs (its charts tell {MAX_RUNS} lines "
                          f"apart), got {len(run_dirs)}; pass at most {MAX_RUNS} RUNs")
    seen: dict[Path, Path] = {}
    for path in run_dirs:
        key = path.resolve()
        if key in seen:
            raise ConfigError(f"{seen[key]} and {path} are the same run; give each run once")
        seen[key] = path
    for path in run_dirs:
        if not _is_run_folder(path):
            load_run(path)  # the single report's error: not a directory, not a run's folder
            raise CheckpointError(f"{path} is not a ganforge run directory; pass the --out of a "
                                  f"training run (ganforge train PRESET --out DIR)")


# ----------------------------------------------------------------------------- numbers


def _toy(run: Run) -> bool:
    return plots._toy(run)


def metric_keys(runs: Sequence[Run]) -> list[str]:
    """The evaluation metrics any run logged (plots.metric_keys), in first-seen order; a toy
    run's modes captured and high-quality share (the monitor's probe) among them."""
    keys: dict[str, None] = {}
    for run in runs:
        if not run.records:
            continue
        keys.update(dict.fromkeys(plots.metric_keys(run)))
        if _toy(run):
            keys.update(dict.fromkeys(k for k in TOY_METRICS if k in run.series()))
    return list(keys)


def logs(run: Run, key: str) -> bool:
    """Whether the run logged ``key`` as the comparison means it: the probe's mode count and
    high-quality share only of a toy run (an image run's probe_classes counts a classifier's
    classes, not a mixture's modes)."""
    return bool(run.records) and (key not in TOY_METRICS or _toy(run)) and key in run.series()


def toy_mixtures(runs: Sequence[Run], labels: Sequence[str]) -> str:
    """"" where the toy runs train on one mixture; else which mixture each trains on: their mode
    counts and shares do not compare (8 of ring8's 8 modes against 21 of grid25's 25)."""
    names = {i: str(((r.config or {}).get("data") or {}).get("name")) for i, r in enumerate(runs) if _toy(r)}
    if len(set(names.values())) < 2:
        return ""
    return ", ".join(f"{name} in {labels[i]}" for i, name in names.items())


def metric_name(key: str) -> str:
    return TOY_METRICS.get(key) or plots.metric_label(key)


def direction(key: str, runs: Sequence[Run]) -> str:
    """"lower", "higher", "1" (closer to 1) or "" (unknown): the metric's declared direction
    (metrics.evaluation.better), or a hook's metric as eval.best declares it (fid:lower,
    my_accuracy:higher)."""
    if key in TOY_METRICS:
        return "higher"
    from ..config import best_metric
    from ..metrics.evaluation import better

    if found := better(key):
        return found
    for run in runs:
        best = str(((run.config or {}).get("eval") or {}).get("best") or "")
        name, way = best_metric(best)
        if name == key and way in ARROWS:
            return way
    return ""


def last_value(run: Run, key: str) -> tuple[int, float] | None:
    """(step, value) of the run's last finite value of ``key``."""
    steps, values = run.series().get(key, ([], []))
    for step, value in zip(reversed(steps), reversed(values)):
        if math.isfinite(value):
            return step, value
    return None


def best_runs(values: dict[int, float], way: str) -> set[int]:
    """The indices holding the best of ``values`` (all of them on a tie); none for an unknown
    direction or fewer than two values."""
    if len(values) < 2 or way not in ARROWS:
        return set()
    scores = {i: score(v, way) for i, v in values.items()}
    top = min(scores.values())
    return {i for i, s in scores.items() if s == top}


def score(value: float, way: str) -> float:
    """``value`` as a number where lower is better, for a metric of direction ``way``."""
    return value if way == "lower" else -value if way == "higher" else abs(value - 1)


def last_protocol(run: Run) -> dict[str, Any] | None:
    protocols = run.protocols() if run.records else []
    return protocols[-1][0] if protocols else None


def protocol_differences(runs: Sequence[Run], labels: Sequence[str], evaluated: Sequence[int]) -> str:
    """"" where the runs that logged evaluation numbers measured them alike; else what differs,
    as a phrase ("n: 300 in a, 500 in b")."""
    protocols = {i: last_protocol(runs[i]) for i in evaluated}
    if len(protocols) < 2 or len({repr(sorted((p or {}).items())) for p in protocols.values()}) < 2:
        return ""
    keys = list(dict.fromkeys(k for p in protocols.values() for k in (p or {})))
    parts = []
    for key in keys:
        seen = {i: (p or {}).get(key) for i, p in protocols.items()}
        if len({repr(v) for v in seen.values()}) > 1:
            parts.append(f"{key}: " + ", ".join(f"{_fmt(v) if v is not None else 'none logged'} in {labels[i]}"
                                                for i, v in seen.items()))
    return "; ".join(parts)


def comparability(runs: Sequence[Run], labels: Sequence[str]) -> tuple[list[int], str, str]:
    """(the runs that logged evaluation numbers, how they measured them differently
    (protocol_differences), which mixtures the toy runs train on where they differ (toy_mixtures))."""
    keys = metric_keys(runs)
    evaluated = [i for i, r in enumerate(runs) if r.records and any(k in plots.metric_keys(r) for k in keys)]
    return evaluated, protocol_differences(runs, labels, evaluated), toy_mixtures(runs, labels)


def unmarked_metrics(keys: Sequence[str], differs: str, mixtures: str) -> set[str]:
    """The metrics that get no best mark because their numbers do not compare: evaluation metrics
    measured differently, a toy run's modes and shares on different mixtures."""
    return {key for key in keys if (mixtures if key in TOY_METRICS else differs)}


def training_time(run: Run) -> float | None:
    """Seconds of the run's last training record's "time": the trainer's clock over its loop
    (sampling, evaluation and checkpoints within it), summed over resumes."""
    times = [r["time"] for r in run.records if isinstance(r.get("time"), (int, float))]
    return max(times) if times else None


def _seconds_at(run: Run, steps: list[int]) -> list[float]:
    """The training seconds at each step: the "time" of the training records, linear between them
    (an evaluation record carries none)."""
    import numpy as np

    timed = [(r["step"], r["time"]) for r in run.records if isinstance(r.get("time"), (int, float))]
    if not timed:
        return []
    xs, ts = zip(*timed)
    return [float(t) for t in np.interp(steps, xs, ts)]


def flatten(config: dict[str, Any]) -> dict[str, Any]:
    """config.yaml as dotted keys (data.resolution), as the single report's config section lists
    them; description left out."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key in CONFIG_HIDDEN:
            continue
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in flatten(value).items()})
        else:
            out[key] = value
    return out


def config_differences(runs: Sequence[Run]) -> tuple[list[tuple[str, list[Any]]], int]:
    """([(dotted key, value per run)] of the keys whose values differ, the count of keys the
    same in all), over the runs whose config.yaml could be read (a key one run lacks is None,
    as one it sets to null)."""
    flat = [flatten(r.config) for r in runs if r.config is not None]
    keys = list(dict.fromkeys(k for f in flat for k in f))
    # a key one config lacks (another family's section, an older version) and a key set to null,
    # to an empty list or to "" all mean "not set": shown "—" alike, they are no difference (a
    # ProGAN run's progressive.resolutions: [] beside runs of other families had been a row of
    # dashes under "What differs")
    differ = [(k, [None if unset(f.get(k)) else f.get(k) for f in flat]) for k in keys]
    changed = [(k, vs) for k, vs in differ if any(v != vs[0] for v in vs[1:])]
    return changed, len(keys) - len(changed)


def seed_groups(runs: Sequence[Run]) -> list[list[int]]:
    """The indices of the runs whose configs are the same but for train.seed (flattened: description
    left out; a key one lacks and a key not set alike), a list per recipe in first-seen order;
    a run whose config.yaml could not be read is in none."""
    recipes: list[tuple[dict[str, Any], list[int]]] = []
    for i, run in enumerate(runs):
        if run.config is None:
            continue
        recipe = {k: v for k, v in flatten(run.config).items() if k != SEED_KEY and not unset(v)}
        found = next((members for other, members in recipes if other == recipe), None)
        if found is None:
            recipes.append((recipe, [i]))
        else:
            found.append(i)
    return [members for _, members in recipes]


# the keys a group's label names first: what tells presets of other families apart at a glance
LABEL_FIRST = ("objective", "model.name", "loss.name", "data.name")
LABEL_KEYS = 4  # a label names at most this many keys; "What differs" lists them all


def group_labels(runs: Sequence[Run], groups: Sequence[Sequence[int]]) -> list[str]:
    """What tells each group of seeds from the others: its values of the config keys that differ
    between groups ("loss.name=hinge, optim.d_lr=0.0004"), the keys it leaves unset left out
    (another family's section), at most LABEL_KEYS of them; "all runs" for a single group. Groups of
    other presets had been labelled by every key of both families, 350-1,000 characters each."""
    if len(groups) < 2:
        return ["all runs"] * len(groups)
    changed, _ = config_differences([runs[members[0]] for members in groups])
    changed = sorted(((k, vs) for k, vs in changed if k != SEED_KEY),
                     key=lambda kv: LABEL_FIRST.index(kv[0]) if kv[0] in LABEL_FIRST else len(LABEL_FIRST))
    labels = []
    for j in range(len(groups)):
        keys = [i for i, (_, vs) in enumerate(changed) if vs[j] is not None]
        if not keys:  # it differs only by leaving keys unset that others set
            keys = list(range(len(changed)))
        # the keys whose value fewest other groups share tell this group apart (a dcgan run of
        # 120 steps beside dcgan seeds of 100: train.steps), the family's keys first among equals
        shared = {i: sum(vs[k] == changed[i][1][j] for k in range(len(groups)) if k != j)
                  for i, (_, vs) in enumerate(changed)}
        named = sorted(sorted(keys, key=lambda i: shared[i])[:LABEL_KEYS])  # in LABEL_FIRST, then config order
        more = len(keys) - len(named)
        labels.append(", ".join(f"{changed[i][0]}={_fmt(changed[i][1][j])}" for i in named)
                      + (f" and {more} more keys (What differs)" if more > 0 else ""))
    return labels


def spread(values: Sequence[float]) -> tuple[float, float | None, float, float]:
    """(mean, sample standard deviation (n-1; None for one value), min, max) of ``values``."""
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std, min(values), max(values)


# ----------------------------------------------------------------------------- charts


def run_color(i: int) -> str:
    """Run i's colour, the same in every chart and swatch: matplotlib's C0, C1, ..."""
    from matplotlib.colors import to_hex

    return to_hex(f"C{i}")


def _panels(titles: Sequence[str]):
    fig = plots._figure(9.0, 2.7)
    return fig, [fig.add_subplot(1, len(titles), i + 1) for i in range(len(titles))]


def _run_legend(fig, shown: Sequence[int], labels: Sequence[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=run_color(i), linewidth=1.6, label=labels[i]) for i in shown]
    fig.legend(handles=handles, loc="outside upper left", ncols=min(len(handles), 4), frameon=False,
               fontsize=8)


def _plot(ax, xs, ys, i: int) -> None:
    ax.plot(xs, ys, color=run_color(i), linewidth=1.5, marker="o" if len(xs) < 3 else None, markersize=4)


def metric_figure(runs: Sequence[Run], labels: Sequence[str], key: str) -> bytes | None:
    """The metric against step and against training seconds, a line per run that logged it."""
    drawn = [i for i, r in enumerate(runs) if logs(r, key)]
    if not drawn:
        return None
    fig, (by_step, by_time) = _panels(("step", "time"))
    longest = max((runs[i] for i in drawn), key=lambda r: r.last_step)
    end = 0.0
    for i in drawn:
        steps, values = runs[i].series()[key]
        _plot(by_step, steps, values, i)
        if seconds := _seconds_at(runs[i], steps):
            _plot(by_time, seconds, values, i)
            end = max(end, training_time(runs[i]) or 0.0, *seconds)
    for ax, title in ((by_step, "against step"), (by_time, "against training time")):
        plots._style(ax, longest)
        ax.set_title(f"{metric_name(key)} {title}", fontsize=9, loc="left")
    plots._step_axis(by_step)
    by_time.set_xlim(0, max(end, 1e-3) * 1.01)
    by_time.set_xlabel("training seconds", fontsize=8)
    _run_legend(fig, drawn, labels)
    return plots._png(fig)


def loss_figure(runs: Sequence[Run], labels: Sequence[str], only: Sequence[int] | None = None) -> bytes | None:
    """D loss and G loss against step, a line per run that logged them (of ``only``'s runs)."""
    keys = ("d_loss", "g_loss")
    drawn = [i for i, r in enumerate(runs) if r.records and any(k in r.series() for k in keys)
             and (only is None or i in only)]
    if not drawn:
        return None
    fig, axes = _panels(keys)
    longest = max((runs[i] for i in drawn), key=lambda r: r.last_step)
    for ax, key in zip(axes, keys):
        values_all = []
        for i in drawn:
            if key in (series := runs[i].series()):
                _plot(ax, *series[key], i)
                values_all += series[key][1]
        if linthresh := plots._symlog_needed(values_all):
            plots._symlog(ax, linthresh)
        plots._style(ax, longest)
        plots._step_axis(ax)
        ax.set_title(plots.label(key), fontsize=9, loc="left")
    _run_legend(fig, drawn, labels)
    return plots._png(fig)


# ----------------------------------------------------------------------------- sections


def _swatch(i: int, label: str) -> str:
    return f'<span class="swatch" style="--run: {run_color(i)}"></span>{escape(label)}'


def _what(run: Run) -> str:
    cfg = run.config or {}
    objective = str(cfg.get("objective") or "—")
    data = run.given or str((cfg.get("data") or {}).get("name") or "—")
    return f'{escape(objective)}<br><small class="muted">on {escape(data)}</small>'


def _how_ended(run: Run) -> str:
    """As the single report's summary says it: still training, its end record, or stopped."""
    if not run.records:
        return '<span class="muted">no metrics yet</span>'
    planned = ((run.config or {}).get("train") or {}).get("steps")
    if run.live:
        return "still training"
    if run.end is not None:
        return _ending(run)
    if isinstance(planned, int) and run.last_step < planned:
        return _stopped(run)
    return "—"


def _table(runs: Sequence[Run], labels: Sequence[str]) -> str:
    keys = metric_keys(runs)
    evaluated, differs, mixtures = comparability(runs, labels)
    head = ["Run", "Family and data", "Steps", "Training time", "Ended", "Warnings"]
    heads = "".join(f"<th>{h}</th>" for h in head)
    lasts: dict[str, dict[int, tuple[int, float]]] = {}
    for key in keys:
        lasts[key] = {i: v for i, r in enumerate(runs) if logs(r, key) and (v := last_value(r, key))}
        way = direction(key, runs)
        arrow = f" {ARROWS[way]}" if way else ""
        tip = f' title="{DIRECTION_TEXT[way]}"' if way else ""
        heads += f"<th{tip}>{escape(metric_name(key))}{arrow}</th>"
    unmarked = unmarked_metrics(keys, differs, mixtures)
    best = {key: set() if key in unmarked else best_runs({i: v for i, (_, v) in lasts[key].items()},
                                                         direction(key, runs)) for key in keys}
    rows = []
    for i, run in enumerate(runs):
        planned = ((run.config or {}).get("train") or {}).get("steps")
        of = f" / {planned:,}" if isinstance(planned, int) else ""
        steps = f"{run.last_step:,}{of}" if run.records else f"— {of}".strip()
        seconds = training_time(run)
        n = len(_diagnostics(run))
        time = _duration(seconds) if seconds is not None else "—"
        if run.environment:  # what the time was spent on: precision, CPU threads or GPU
            time += f'<br><small class="muted">{escape(", ".join(environment_parts(run.environment)[:2]))}</small>'
        cells = [_swatch(i, labels[i]), _what(run), steps, time, _how_ended(run),
                 ('<span class="ok">none</span>' if not n else f'<span class="bad">{n}</span>')
                 if run.records else "—"]
        klass = {1: " class=what", 2: " class=num", 3: " class=num", 4: " class=ended"}
        row = "".join(f"<td{klass.get(c, '')}>{v}</td>" for c, v in enumerate(cells))
        for key in keys:
            if i not in lasts[key]:
                row += '<td class="num muted">—</td>'
                continue
            step, value = lasts[key][i]
            mark = " best" if i in best[key] else ""
            row += (f'<td class="num{mark}" title="at step {step:,}">{_shown(key, value)} '
                    f'<small class="muted">@{step:,}</small></td>')
        rows.append(f"<tr>{row}</tr>")
    notes = []
    if keys:
        marked = ("" if unmarked == set(keys) else " The best value of each metric with a known direction "
                  "(↓ lower, ↑ higher, →1 closer to 1 is better) is in bold green.")
        notes.append(f"Metrics: the last value each run logged (@ its step).{marked}")
    if differs:
        notes.append(f"These evaluation numbers do not compare, so no best is marked: the runs "
                     f"measured them differently ({escape(differs)}).")
    elif evaluated and (p := last_protocol(runs[evaluated[0]])):
        notes.append(f"All measured with {escape(measured_with(p))}.")
    if any(_toy(r) for r in runs):
        notes.append("A toy run's modes captured and high-quality share come from the monitor's probe "
                     "(2,500 points, within 3 sigma of a mode centre) at each log record.")
    if mixtures:
        notes.append(f"Modes captured and high-quality share do not compare across mixtures, so no best is "
                     f"marked for them: the toy runs train on {escape(mixtures)}.")
    notes.append("Training time: the trainer's clock at the run's last log record in metrics.jsonl "
                 "(sampling, evaluation and checkpoint saves within the loop included; summed over "
                 "resumes), with the precision and the CPU threads or GPU of its latest checkpoint. "
                 "Warnings: the monitor's diagnostic events.")
    problems = [f"{escape(labels[i])}: {escape(note)}" for i, r in enumerate(runs) for note in r.notes]
    out = (f'<section id="runs"><h2>Runs</h2><div class="scroll"><table class="runs"><thead><tr>'
           f'{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
           + "".join(f'<p class="muted">{n}</p>' for n in notes))
    if problems:
        out += '<p class="notes">' + "<br>".join(problems) + "</p>"
    return out + "</section>"


def _seed_cell(key: str, found: dict[int, tuple[int, float]], size: int, labels: Sequence[str],
               best: bool) -> str:
    """A group's cell for metric ``key``: the mean ± sample std of its runs' last values (``found``:
    run -> (step, value)), their range below; "steps differ" where they are at different steps."""
    if not found:
        return '<td class="num muted">—</td>'
    mean, std, low, high = spread([v for _, v in found.values()])
    fmt = functools.partial(_shown, key)  # a percentage where the single report shows one
    small = [f"{fmt(low)}–{fmt(high)}"] if std is not None else []
    if len(found) < size:
        small.append(f"{len(found)} of {size} runs")
    tip = "; ".join(f"{labels[i]}: {fmt(v)} at step {step:,}" for i, (step, v) in found.items())
    if len({step for step, _ in found.values()}) > 1:  # still averaged: the user sees it said
        small.append("steps differ")
        tip = f"steps differ: {tip}"
    value = fmt(mean) if std is None else f"{fmt(mean)} ± {fmt(std)}"
    below = f'<br><small class="muted">{", ".join(small)}</small>' if small else ""
    return f'<td class="num{" best" if best else ""}" title="{escape(tip)}">{value}{below}</td>'


def _overlap_sentence(runs: Sequence[Run], names: Sequence[str], lasts, best: dict[str, set[int]]) -> str:
    """For each metric with a best group: whether its runs' range overlaps the runner-up's (by the
    metric's direction: for "closer to 1", the distances to 1)."""
    parts = []
    for key, marked in best.items():
        if not marked:
            continue
        way = direction(key, runs)
        values = {j: [v for _, v in found.values()] for j, found in enumerate(lasts[key]) if found}
        ranked = sorted(values, key=lambda j: score(statistics.fmean(values[j]), way))  # as best_runs ranks
        scores = {j: [score(v, way) for v in vs] for j, vs in values.items()}
        name = metric_name(key)
        if len(marked) > 1:
            parts.append(f"{name}: {' and '.join(names[j] for j in ranked if j in marked)} tie on the mean")
            continue
        top, runner = ranked[0], ranked[1]
        apart = max(scores[top]) < min(scores[runner])
        head = f"{name}: {names[top]} (best) against {names[runner]} (runner-up), "
        if min(len(values[top]), len(values[runner])) < 2:  # one run has no range to overlap
            parts.append(head + "a single run on one side: no spread over seeds to judge")
            continue
        parts.append(head + (
            "the ranges do not overlap: every run of the best beats every run of the runner-up" if apart
            else "the ranges overlap: not a clear winner on these seeds"))
    return f"The best group's range against the runner-up's: {'; '.join(parts)}." if parts else ""


def _across_seeds(runs: Sequence[Run], labels: Sequence[str]) -> str:
    """A row per group of seeds (seed_groups): each metric's mean ± std over the group's runs with
    the best group marked as in the Runs table; "" where no group holds 2 or more runs."""
    groups = seed_groups(runs)
    if not any(len(members) > 1 for members in groups):
        return ""
    names = group_labels(runs, groups)
    keys = metric_keys(runs)
    _, differs, mixtures = comparability(runs, labels)
    unmarked = unmarked_metrics(keys, differs, mixtures)
    # key -> per group, run -> (step, value) of its last value
    lasts = {key: [{i: v for i in members if logs(runs[i], key) and (v := last_value(runs[i], key))}
                   for members in groups] for key in keys}
    best = {key: set() if key in unmarked else best_runs(
        {j: statistics.fmean(v for _, v in found.values()) for j, found in enumerate(lasts[key]) if found},
        direction(key, runs)) for key in keys}
    heads = "<th>Group</th><th>Seeds</th><th>Training time</th>"
    for key in keys:
        way = direction(key, runs)
        tip = f' title="{DIRECTION_TEXT[way]}"' if way else ""
        heads += f'<th{tip}>{escape(metric_name(key))}{f" {ARROWS[way]}" if way else ""}</th>'
    rows, copies = [], []
    for j, members in enumerate(groups):
        seeds = [_fmt(((runs[i].config or {}).get("train") or {}).get("seed")) for i in members]
        times = [t for i in members if (t := training_time(runs[i])) is not None]
        time = _duration(statistics.fmean(times)) if times else "—"
        if times and len(times) < len(members):
            time += f'<br><small class="muted">{len(times)} of {len(members)} runs</small>'
        # copies of one run (its seed too): their ± is not a spread over seeds, and "± 0" had read as one
        repeated = len(set(seeds)) < len(seeds)
        if repeated:
            copies.append(j)
        row = (f'<td>{escape(names[j])}<br><small class="muted">{escape(", ".join(labels[i] for i in members))}'
               f'</small></td><td class="num">{len(members)}<br><small class="muted">'
               f'{"seed" if len(members) == 1 else "seeds"} {escape(", ".join(seeds))}'
               f'{"<br>a seed repeated" if repeated else ""}</small></td><td class="num">{time}</td>')
        row += "".join(_seed_cell(key, lasts[key][j], len(members), labels, j in best[key]) for key in keys)
        rows.append(f"<tr>{row}</tr>")
    notes = [f"Runs whose config.yaml is the same but for {SEED_KEY} (description left out) form a group, "
             f"labelled by the config keys that differ between groups. Metrics: the mean ± sample standard "
             f"deviation (n−1) of the last value each run logged, as in the Runs table, with the min–max "
             f"range below (one run: its value; hover for each run's); \"steps differ\": the runs' last "
             f"values are at different steps, averaged all the same. Training time: the mean."]
    if any(best.values()):
        notes.append("The best group mean of each metric is in bold green, as in the Runs table.")
    # the sentence names a group by its runs: the labels are for the table, and had made it 1,800-4,600
    # characters long for groups of other presets
    by_runs = [", ".join(labels[i] for i in members) for members in groups]
    if sentence := _overlap_sentence(runs, by_runs, lasts, best):
        notes.append(escape(sentence))
    if copies:
        runs_of = "; ".join(", ".join(labels[i] for i in groups[j]) for j in copies)
        notes.append(f"A seed repeated in a group ({escape(runs_of)}): runs of one config and one {SEED_KEY} "
                     f"are copies, which differ only by threads and timing, so that group's ± understates the "
                     f"spread over seeds; give each run its own seed ({SEED_KEY}=1, 2, ...).")
    unread = [labels[i] for i, r in enumerate(runs) if r.config is None]
    if unread:
        notes.append(f"config.yaml is missing or unreadable in {escape(', '.join(unread))}: left out here.")
    return (f'<section id="seeds"><h2>Across seeds</h2><div class="scroll"><table class="runs seeds"><thead>'
            f'<tr>{heads}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
            + "".join(f'<p class="muted">{n}</p>' for n in notes) + "</section>")


def _differences(runs: Sequence[Run], labels: Sequence[str]) -> str:
    read = [i for i, r in enumerate(runs) if r.config is not None]
    changed, same = config_differences(runs)
    unread = [labels[i] for i in range(len(runs)) if i not in read]
    out = '<section id="differences"><h2>What differs</h2>'
    if unread:
        out += (f'<p class="notes">config.yaml is missing or unreadable in {escape(", ".join(unread))}: '
                f'left out here.</p>')
    if len(read) >= 2 and changed:
        heads = "".join(f"<th>{_swatch(i, labels[i])}</th>" for i in read)
        rows = "".join(f"<tr><td>{escape(key)}</td>" + "".join(f"<td>{escape(_fmt(v))}</td>" for v in values)
                       + "</tr>" for key, values in changed)
        out += (f'<div class="scroll"><table class="runs"><thead><tr><th>Config key</th>{heads}</tr>'
                f'</thead><tbody>{rows}</tbody></table></div>')
    elif len(read) >= 2:
        out += '<p>The configs are the same.</p>'
    out += (f'<p class="muted">{same} other key{"" if same == 1 else "s"} of config.yaml '
            f'{"is" if same == 1 else "are"} the same in all (description left out); '
            f'— is a key a run\'s config.yaml does not hold.</p>')
    return out + "</section>"


def _charts(runs: Sequence[Run], labels: Sequence[str]) -> str:
    out = ['<section id="charts"><h2>Charts</h2><p class="muted">One line per run, its colour as '
           'in the tables. Training time: as in the Runs table, at each step (linear between log '
           'records).</p>']
    for key in metric_keys(runs):
        if png := metric_figure(runs, labels, key):
            out.append(f'<h3>{escape(metric_name(key))}</h3>{_chart(png, f"{metric_name(key)} of each run")}')
    if not metric_keys(runs):
        out.append('<p class="muted">No run logged evaluation metrics (eval.every).</p>')
    families: dict[str, list[int]] = {}
    for i, run in enumerate(runs):
        families.setdefault(str((run.config or {}).get("objective") or "—"), []).append(i)
    if len(families) == 1:
        if png := loss_figure(runs, labels):
            out.append(f'<h3>Losses</h3>{_chart(png, "D and G losses of each run")}')
        return "".join(out) + "</section>"
    # one chart per family: their losses are other sums on other scales (pix2pix's G loss holds
    # 100 x L1), and on one axis the largest had flattened the others to a line
    charts = [(family, png) for family, only in families.items() if (png := loss_figure(runs, labels, only))]
    if charts:
        out.append('<h3>Losses</h3><p class="muted">One chart per family: their losses are not on one '
                   'scale.</p>')
    for family, png in charts:
        out.append(f'<h4>{escape(family)}</h4>{_chart(png, f"D and G losses of the {family} runs")}')
    return "".join(out) + "</section>"


def _final_grids(runs: Sequence[Run], labels: Sequence[str]) -> str:
    figures = []
    for i, run in enumerate(runs):
        last = next(((step, path, thumb) for step, path in reversed(run.samples)
                     if (thumb := _thumbnail(path)) is not None), None)
        if last is None:
            body = '<p class="muted">No sample grids in samples/.</p>'
        else:
            step, path, (png, _) = last
            body = (_img(png, f"{labels[i]}: samples at step {step}", "pixelated")
                    + f'<figcaption>step {step:,} ({escape(path.name)})</figcaption>'
                    + _legend(run) + _players(run, step))
        figures.append(f'<figure><figcaption>{_swatch(i, labels[i])}</figcaption>{body}</figure>')
    return (f'<section id="samples"><h2>Last samples</h2><p class="muted">Each run\'s last grid in '
            f'samples/, as its own report\'s final samples (grids wider than {THUMB_WIDTH} px '
            f'shrunk).</p><div class="side">{"".join(figures)}</div></section>')


def build_comparison(runs: Sequence[Run], labels: Sequence[str] | None = None) -> str:
    from ..version import __version__

    labels = list(labels or run_labels([r.run_dir for r in runs]))
    seeds = _across_seeds(runs, labels)
    sections = [_table(runs, labels), seeds, _differences(runs, labels), _charts(runs, labels),
                _final_grids(runs, labels)]
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("runs", "Runs"), *((("seeds", "Across seeds"),) if seeds else ()), ("differences", "What differs"),
        ("charts", "Charts"), ("samples", "Last samples")))
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    names = ", ".join(labels)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>ganforge comparison: {escape(names)}</title><style>{CSS}{COMPARE_CSS}</style></head>'
            f'<body><header><h1>{len(runs)} runs <span>compared</span></h1>'
            f'<p>{escape(names)}</p><nav>{nav}</nav></header>'
            f'<main>{"".join(sections)}</main>'
            f'<footer>ganforge {escape(__version__)} · from '
            f'{escape(", ".join(str(r.run_dir / "metrics.jsonl") for r in runs))} · {generated}</footer>'
            f'</body></html>\n')


def write_comparison(run_dirs: Sequence[str | Path], out: str | Path | None = None, *,
                     force: bool = False) -> Path:
    """Write one page comparing 2 to 8 runs to ``out`` (default compare.html in the current
    directory; an existing file needs force=True). Returns the path written."""
    if isinstance(run_dirs, (str, bytes, Path)):  # had been read letter by letter: "got 12 runs"
        raise ConfigError(f"write_comparison takes a list of 2 to {MAX_RUNS} run directories, got the one "
                          f"path {str(run_dirs)!r}; for one run use ganforge.report.write_report")
    run_dirs = [Path(p) for p in run_dirs]
    _check_runs(run_dirs)
    out = Path(out) if out is not None else Path(DEFAULT_OUT)
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: the report is a web page; use a .html name")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose another "
                          f"--out")
    probe_writable(out, fix="choose another --out")
    runs = [_load(p) for p in run_dirs]
    if not any(r.records for r in runs):
        raise CheckpointError(f"none of the runs has metrics to compare yet; {runs[0].notes[0]}")
    atomic_write_text(out, build_comparison(runs, run_labels(run_dirs)))
    return out
