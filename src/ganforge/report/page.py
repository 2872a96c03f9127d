"""The report page: one self-contained HTML file (CSS inline, figures and sample grids embedded
as base64 PNG), so it can be mailed, archived or opened offline."""
from __future__ import annotations

import base64
import datetime
import io
import re
import statistics
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from ..atomic import atomic_write_text, probe_writable
from ..errors import ConfigError
from ..rundir import resume_command
from . import plots
from .run import (Run, describe_protocol, environment_parts, family, latest_checkpoint, load_run, measured_with,
                  protocol_caveat)

MAX_TIMELINE = 12  # sample grids shown in the timeline (evenly spaced, always the last)
THUMB_WIDTH = 300  # px; larger grids are shrunk for the timeline (the final grid is not)
KIND_TEXT = {"mode_collapse": "Mode collapse", "vanishing_gradients": "Vanishing gradients",
             "divergence": "Divergence", "oscillation": "Oscillation", "rollback": "Rollback",
             "config_change": "Config change"}
# Math in a card label (D(x), D(G(z))): kept out of the labels' CSS uppercasing, which had turned
# "Last D(x) · D(G(z))" into "LAST D(X) · D(G(Z))".
MATH = re.compile(r"\b[A-Za-z]\((?:[^()]|\([^()]*\))*\)")

CSS = """
:root { --fg: #1d2430; --muted: #5b6675; --line: #e3e7ee; --bg: #f6f7f9; --card: #fff;
        --accent: #1f6fb2; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans",
       sans-serif; color: var(--fg); background: var(--bg); }
header { background: #1d2430; color: #fff; padding: 22px 32px 0; }
header h1 { margin: 0; font-size: 24px; font-weight: 600; }
header h1 span { color: #9fb3c8; font-weight: 400; }
header p { margin: 4px 0 14px; color: #c9d3de; }
nav { display: flex; gap: 4px; flex-wrap: wrap; }
nav a { color: #c9d3de; text-decoration: none; padding: 8px 12px; border-radius: 6px 6px 0 0;
        font-size: 14px; }
nav a:hover { background: #2d3748; color: #fff; }
main { max-width: 1080px; margin: 0 auto; padding: 8px 24px 40px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
          padding: 18px 22px; margin: 18px 0; }
h2 { margin: 0 0 12px; font-size: 19px; }
h3 { margin: 18px 0 4px; font-size: 15px; color: var(--muted); font-weight: 600; }
img { max-width: 100%; display: block; }
/* a chart's text is drawn for ~1000 px: on a phone it scrolls sideways instead of shrinking to
   unreadable (3 px letters at 400 px wide) */
.chart { overflow-x: auto; }
.chart img { min-width: 720px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase;
               letter-spacing: .04em; }
.card .label .math { text-transform: none; }  /* D(G(z)) keeps its case */
.card .value { font-size: 20px; font-weight: 600; }
.card .value small { font-size: 13px; color: var(--muted); font-weight: 400; }
.ok { color: #2e7d32; }
.bad { color: #c62828; }
.event { border-left: 5px solid var(--kind); border-radius: 6px; background: #fafbfc;
         padding: 10px 14px; margin: 12px 0; }
.badge { display: inline-block; background: var(--kind); color: #fff; border-radius: 12px;
         padding: 1px 10px; font-size: 13px; font-weight: 600; }
.event .step { color: var(--muted); margin-left: 8px; font-size: 14px; }
.event p { margin: 6px 0; }
.event ul { margin: 4px 0 6px; padding-left: 22px; }
/* advice such as augment.diffaugment=color,translation,cutout has no space to break at: on a
   phone it ran past its card and the screen */
.event p, .event li, .event code { overflow-wrap: anywhere; }
.evidence { font-size: 13px; color: var(--muted); }
.evidence code { color: var(--fg); }
.strip { display: flex; gap: 14px; overflow-x: auto; padding-bottom: 8px; }
.strip figure { margin: 0; flex: 0 0 auto; text-align: center; }
.strip img { height: 170px; width: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { font-size: 13px; color: var(--muted); margin-top: 4px; }
figcaption .badge { font-size: 11px; padding: 0 7px; margin: 2px 2px 0; }
/* the players wrap: in a scroller the 4th of a vocoder's preview was cut off at 1200 px */
.players { display: flex; flex-wrap: wrap; gap: 6px 18px; }
.players figure { margin: 0; }
.pixelated { image-rendering: pixelated; }
.final img { border: 1px solid var(--line); border-radius: 4px; }
.config { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr));
          gap: 4px 24px; align-items: start; }
table { border-collapse: collapse; width: 100%; font-size: 14px; table-layout: fixed; }
caption { text-align: left; font-weight: 600; padding: 8px 0 2px; }
td { padding: 2px 8px 2px 0; border-bottom: 1px solid var(--line); vertical-align: top;
     overflow-wrap: anywhere; }
td:first-child { color: var(--muted); width: 45%; }
td.changed { font-weight: 600; }
details.unused { margin-top: 14px; color: var(--muted); }
details.unused summary { cursor: pointer; }
.muted { color: var(--muted); }
.notes { background: #fff8e1; border: 1px solid #f3d98b; border-radius: 8px; padding: 8px 14px; }
footer { text-align: center; color: var(--muted); font-size: 13px; padding: 10px; }
"""


def _b64(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _img(data: bytes, alt: str, cls: str = "", width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    klass = f' class="{cls}"' if cls else ""
    return f'<img src="{_b64(data)}" alt="{escape(alt)}"{size}{klass}>'


def _chart(data: bytes, alt: str) -> str:
    """A matplotlib figure, kept readable on a narrow screen (see .chart in CSS)."""
    return f'<div class="chart">{_img(data, alt)}</div>'


# An event's suggestion is advice, except a rollback's: what training does next on its own
SUGGESTION_HEADING = {"rollback": "What happens next:"}


def unset(value: Any) -> bool:
    """A config value the pages show as not set, "—": null, "" or an empty list."""
    return value is None or value == "" or value == []


def _fmt(value: Any) -> str:
    if unset(value):
        return "—"
    if isinstance(value, float):
        return f"{value + 0.0:.4g}"  # + 0.0: a logged -0.0 had read "-0"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value)
    return str(value)


def _label_html(label: str) -> str:
    """A card label, escaped, with its math in <span class="math"> (not uppercased)."""
    out, at = [], 0
    for m in MATH.finditer(label):
        out += [escape(label[at:m.start()]), f'<span class="math">{escape(m.group())}</span>']
        at = m.end()
    return "".join(out) + escape(label[at:])


def _kind_text(kind: str) -> str:
    return KIND_TEXT.get(kind, kind.replace("_", " ").capitalize())


def _diagnostics(run: Run) -> list[dict]:
    """The monitor's diagnostic events (README: mode collapse, vanishing gradients, divergence,
    oscillation); a resume's config_change had been counted as one."""
    return [e for e in run.events if plots.is_diagnostic(e)]


def _other_events(run: Run) -> list[dict]:
    """Events that are no diagnostic: rollbacks, config changes on resume, progressive stages."""
    return [e for e in run.events if not plots.is_diagnostic(e)]


def _badge(kind: str) -> str:
    text = _kind_text(kind)
    return f'<span class="badge" style="--kind: {plots.color(kind)}">{escape(text)}</span>'


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"


# ----------------------------------------------------------------------------- sections


def _summary(run: Run) -> str:
    train_records = [r for r in run.records
                     if any(plots._base(k) in ("d_loss", "g_loss") for k in r)] or run.records
    lt = train_records[-1]
    planned = ((run.config or {}).get("train") or {}).get("steps")
    cards = [("Steps", f"{run.last_step:,}" + (f" <small>of {planned:,}</small>"
                                                if isinstance(planned, int) else ""))]
    if run.given is not None:  # config.yaml's data.name is not what it trained on
        cards.append(("Data", escape(run.given)))
    if run.live:  # an end record here is an earlier session's: this one goes on
        of = f" of {planned:,}" if isinstance(planned, int) else ""
        cards.append(("Status", f"still training <small>at step {run.last_step:,}{of}; report "
                                f"again for newer records</small>"))
    elif run.end is not None:
        cards.append(("Ended", _ending(run)))
    elif isinstance(planned, int) and run.last_step < planned:
        cards.append(("Stopped", _stopped(run)))
    times = [r["time"] for r in run.records if isinstance(r.get("time"), (int, float))]
    if times:
        cards.append(("Training time", _duration(max(times))))
    speeds = [r["img_per_s"] for r in run.records if isinstance(r.get("img_per_s"), (int, float))]
    if speeds:
        speed = statistics.median(speeds)  # a slow audio run logs under 1 (0 had been shown)
        unit = plots.rate_unit(run)  # an audio run's items are training clips, a toy run's points
        cards.append(("Throughput", f"{speed:,.0f} <small>{unit}</small>" if speed >= 10 else
                      f"{speed:.2g} <small>{unit}</small>"))
    # raw scores (a critic's, hinge, least squares, logits) named as such, as on the chart's axis:
    # a weight-clipped WGAN's "Last D(x) · D(G(z)) 0.0707 · 0.0154" had read as probabilities
    scores = "Last D(x) · D(G(z))"
    if plots.raw_scores(run):
        scores = f"Last {plots.raw_score_name(run).replace(' (raw)', 's (raw)')} D(x) · D(G(z))"
    for label, keys in (("Last losses D · G", ("d_loss", "g_loss")), (scores, ("d_real", "d_fake"))):
        if value := _last_pair(lt, keys):
            cards.append((label, value))
    series = run.series()
    for key in plots.metric_keys(run):
        steps, values = series[key]
        cards.append((plots.metric_label(key), f"{_fmt(values[-1])} <small>at step {steps[-1]:,}</small>"))
    if plots._toy(run):  # a toy run's quality numbers are the probe's (it has no eval.every)
        cards += _toy_cards(series)
    if stage := _stage(run):
        cards.append(("Stage reached", stage))
    if run.environment:  # a resume elsewhere says so in its own note; this is the latest checkpoint's
        cards.append(("Trained with", environment_html(run.environment)))
    n = len(_diagnostics(run))  # a config change or a rollback is no diagnostic
    cards.append(("Diagnostics", '<span class="ok">none</span>' if not n else
                  f"{n} <small>event{'s' if n > 1 else ''}</small>"))
    other = _other_events(run)
    if other:
        kinds = list(dict.fromkeys(_kind_text(str(e["event"])).lower() for e in other))
        cards.append(("Other events", f"{len(other)} <small>{escape(', '.join(kinds))}</small>"))
    html = "".join(f'<div class="card"><div class="label">{_label_html(label)}</div>'
                   f'<div class="value">{value}</div></div>' for label, value in cards)
    out = f'<section id="summary"><h2>Summary</h2><div class="cards">{html}</div>'
    if run.notes:
        out += '<p class="notes">' + "<br>".join(escape(n) for n in run.notes) + "</p>"
    return out + "</section>"


def _toy_cards(series: dict) -> list[tuple[str, str]]:
    """The probe's last modes captured and high-quality share, beside real data's (the toy mode
    benchmark's two numbers; their charts are in the curves)."""
    cards = []
    for key, label, text in (("probe_classes", "Modes captured", lambda v: f"{v:g}"),
                             ("probe_hq", "High-quality share", lambda v: f"{v:.0%}")):
        if key not in series:
            continue
        steps, values = series[key]
        real = series.get(f"{key}_real", ([], []))[1]
        of = f" (real data {text(real[-1])})" if real else ""
        cards.append((label, f"{text(values[-1])} <small>at step {steps[-1]:,}{of}</small>"))
    return cards


def environment_html(env: dict) -> str:
    """Where the latest checkpoint was trained, short: "fp32 <small>CPU, 2 threads; torch 2.14.1</small>"."""
    precision, where, version = (escape(part) for part in environment_parts(env))
    return f"{precision} <small>{where}; {version}</small>"


def _last_pair(record: dict, keys: tuple[str, str]) -> str | None:
    """Two values of a record as "a · b" (HTML), or one line per level where it logs them per
    level (LAPGAN's d_loss_0, g_loss_0, d_loss_1, ...: its summary had shown no losses at all)."""
    def pair(names) -> str:
        return " · ".join(f"{record[k]:.3g}" if isinstance(record[k], (int, float)) else "NaN"
                          for k in names)

    if all(k in record for k in keys):
        return pair(keys)
    levels = sorted({int(k[len(keys[0]) + 1:]) for k in record
                     if plots._base(k) == keys[0] and k != keys[0]})
    lines = []
    for level in levels:
        names = [f"{k}_{level}" for k in keys]
        if all(n in record for n in names):
            lines.append(f"{pair(names)} <small>level {level}</small>")
    return "<br>".join(lines) or None


def _stage(run: Run) -> str | None:
    """A progressive run's last stage (HTML): "2/4 8x8, fading in", from its last stage event
    (one not discarded by a rollback); stage 1 before any. None for other runs."""
    prog, data = ((run.config or {}).get(k) for k in ("progressive", "data"))
    if not isinstance(prog, dict):
        return None
    gone = run.discarded()
    stages = [e for e in run.events if e.get("event") == "stage" and id(e) not in gone]
    resolutions = prog.get("resolutions") or []
    if not resolutions:  # the default schedule: 4x4 doubling to data.resolution
        try:
            from ..models.progan import stage_resolutions

            resolutions = stage_resolutions((data or {}).get("resolution"))
        except Exception:  # the report must not fail on a config it cannot use
            resolutions = []
    evidence = (stages[-1].get("evidence") or {}) if stages else {}
    index, r = evidence.get("stage", 0), evidence.get("resolution", resolutions[0] if resolutions else None)
    if not isinstance(index, int) or not isinstance(r, int):
        return None
    of = f"/{len(resolutions)}" if resolutions else ""
    state = "fading in" if evidence.get("phase") == "fade_in" else "stable"
    return f"{index + 1}{of} <small>{r}x{r}, {state}</small>"


def _ending(run: Run) -> str:
    """How training ended, from the trainer's end record (HTML)."""
    e = run.end or {}
    how, step, ckpt = str(e.get("how")), e.get("step"), e.get("checkpoint")
    at = f"at step {step:,}" if isinstance(step, int) else ""
    if how == "done":
        return f"done <small>{at}</small>"
    if how == "interrupted":
        resume = f"; resume with {resume_command(run.run_dir)}"
        return (f"stopped by {escape(str(e.get('signal') or 'a signal'))} "
                f"<small>{at}{escape(resume)}</small>")
    if how == "stopped":  # eval.patience or a hook's request_stop, before train.steps
        total = e.get("steps")
        of = f" of {total:,}" if isinstance(total, int) and isinstance(step, int) else ""
        # eval.patience would stop it again at the next evaluation
        go_on = f"; to train on: {resume_command(run.run_dir, 'eval.patience=0' if e.get('metric') else '')}"
        return (f"stopped early <small>{at}{of}: {escape(str(e.get('reason') or 'by a hook'))}"
                f"{escape(go_on)}</small>")
    if how == "diverged":
        n = e.get("rollbacks")
        after = f" after {n} rollback{'' if n == 1 else 's'}" if isinstance(n, int) else ""
        good = f"; last good checkpoint {ckpt}" if ckpt else "; no checkpoint to roll back to"
        rates = e.get("resume_with")  # the error's command (a run of an older version has none)
        if ckpt and isinstance(rates, str) and rates:
            good += f"; continue from it with lower learning rates: {resume_command(run.run_dir, rates)}"
        return f'<span class="bad">diverged</span> <small>{at}{after}{escape(good)}</small>'
    return escape(how)


def _stopped(run: Run) -> str:
    """A run short of its steps that wrote no end record (HTML): killed (SIGKILL, out of memory,
    power loss) or crashed. It had shown only "Steps 80 of 300", though a resume starts from the
    last checkpoint and redoes the steps logged after it."""
    ckpt = latest_checkpoint(run.run_dir)
    saved = int(ckpt[5:]) if ckpt else 0
    kept = ("; no checkpoint, so a resume starts from step 0" if ckpt is None else
            f"; last checkpoint {ckpt}" + (" (the steps after it are redone)" if saved < run.last_step else ""))
    resume = f"; resume with {resume_command(run.run_dir)}"
    return (f'<span class="bad">without an end record</span> <small>(killed or crashed) at step '
            f'{run.last_step:,}{escape(kept + resume)}</small>')


def _events(run: Run) -> str:
    out = ['<section id="events"><h2>Diagnostics</h2>']
    diagnostics, other = _diagnostics(run), _other_events(run)
    if not diagnostics:
        out.append('<p class="ok">No diagnostic events: no mode collapse, vanishing gradients, '
                   'divergence or oscillation was detected.</p>')
    out += [_event(e) for e in diagnostics]
    if other:
        out.append('<h3 id="other-events">Other events</h3><p class="muted">What the run did or was '
                   'told (rollbacks, config changes on resume, ...): not diagnostics.</p>')
        out += [_event(e) for e in other]
    return "".join(out) + "</section>"


def _event(e: dict) -> str:
    kind = str(e["event"])
    out = [f'<article class="event" style="--kind: {plots.color(kind)}">'
           f'{_badge(kind)}<span class="step">step {e["step"]:,}</span>']
    if e.get("message"):
        out.append(f'<p>{escape(str(e["message"]))}</p>')
    if e.get("suggestion"):
        tips = [t.strip() for t in str(e["suggestion"]).split(";") if t.strip()]
        heading = SUGGESTION_HEADING.get(kind, "Try:")
        out.append(f"<p><strong>{heading}</strong></p><ul>" +
                   "".join(f"<li>{escape(t)}</li>" for t in tips) + "</ul>")
    evidence = dict(e.get("evidence") or {})
    evidence.update({k: v for k, v in e.items()
                     if k not in ("event", "step", "message", "suggestion", "evidence")})
    if evidence:
        out.append('<p class="evidence">Evidence: ' + ", ".join(
            f"{escape(k)} <code>{escape(_fmt(v))}</code>" for k, v in evidence.items())
            + "</p>")
    out.append("</article>")
    return "".join(out)


def _curves(run: Run) -> str:
    out = ['<section id="curves"><h2>Training curves</h2>',
           '<p class="muted">Averages per log interval. Dashed vertical lines mark the events: '
           'diagnostics, and rollbacks or config changes (see each legend).</p>',
           '<h3 id="timeline">Timeline: sample grids and events</h3>',
           _chart(plots.timeline_figure(run), "timeline of sample grids and events")]
    for fig_id, title, png in plots.curve_figures(run):
        out.append(f'<h3 id="{fig_id}">{escape(title)}</h3>{_chart(png, title)}')
    return "".join(out) + "</section>"


def _evaluation_advice(run: Run) -> str:
    """For a run that logged no evaluation: the command its family is measured with after
    training (``Objective.evaluated_by``), else eval.every."""
    command = getattr(family(run), "evaluated_by", None)
    if command is None and run.sounds:  # an audio run whose family is unknown here
        from ..objectives._audio import AudioFamily

        command = AudioFamily.evaluated_by
    if command is not None:
        return f"runs of this kind are measured after training, not with eval.every: <code>{escape(command)}</code>"
    if run.given is not None:  # training refuses eval.every's FID/KID hook with dataset=
        return ("the built-in FID/KID score against data.name's dataset, not data passed from Python: "
                "train with hooks= (your own scoring) and eval.every")
    data = str(((run.config or {}).get("data") or {}).get("name") or "")
    if data.startswith("toy:"):  # training refuses eval.every on points: FID and KID score images
        return (f"{escape(data)} is 2-D points, which FID and KID cannot score; measure the modes a "
                f"recipe captures with <code>ganforge bench modes --data {escape(data)}</code>")
    return "set eval.every and eval.metrics to track FID and others during training"


def _metrics(run: Run) -> str:
    png = plots.metrics_figure(run)
    advice = _evaluation_advice(run)
    body = (_chart(png, "evaluation metrics over training") if png else
            f'<p class="muted">No evaluation metrics were logged; {advice}.</p>')
    protocols = run.protocols() if png else []
    again = '<code>ganforge eval RUN</code> measures the test split with other noise.'
    if len(protocols) == 1:
        body += f'<p class="muted">{escape(describe_protocol(protocols[0][0]))} {again}</p>'
    elif protocols:  # a resume changed eval.n, eval.extractor, ...: each stretch named
        items = "".join(f"<li>{_steps(first, last)}: {escape(measured_with(p))}</li>"
                        for p, first, last in protocols)
        body += (f'<p class="muted">Measured during training with settings that changed, so each '
                 f'line breaks where they change:</p><ul class="muted">{items}</ul><p class="muted">'
                 f'{escape(protocol_caveat([p for p, _, _ in protocols]))} {again}</p>')
    return f'<section id="metrics"><h2>Metrics over time</h2>{body}</section>'


def _steps(first: int, last: int) -> str:
    return f"step {first:,}" if first == last else f"steps {first:,}–{last:,}"


def _thumbnail(path: Path) -> tuple[bytes, int] | None:
    """(png bytes no wider than THUMB_WIDTH, natural width), or None if unreadable."""
    try:
        with Image.open(path) as im:
            im.load()
            width = im.width
            if im.width > THUMB_WIDTH:
                im = im.resize((THUMB_WIDTH, round(im.height * THUMB_WIDTH / im.width)),
                               Image.LANCZOS)
                buf = io.BytesIO()
                im.save(buf, format="PNG", optimize=True)
                return buf.getvalue(), width
    except (OSError, ValueError):
        return None
    return path.read_bytes(), width


def _pick(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    idx = sorted({round(i * (len(items) - 1) / (n - 1)) for i in range(n)})
    return [items[i] for i in idx]


def _samples(run: Run) -> tuple[str, str]:
    readable = [(step, path, thumb) for step, path in run.samples
                if (thumb := _thumbnail(path)) is not None]
    if len(readable) < len(run.samples):
        run.notes.append(f"{len(run.samples) - len(readable)} unreadable sample grid(s) skipped")
    if not readable:
        empty = '<p class="muted">No sample grids in samples/.</p>'
        return (f'<section id="samples"><h2>Samples over time</h2>{empty}</section>',
                f'<section id="final"><h2>Final samples</h2>{empty}</section>')
    shown = _pick(readable, MAX_TIMELINE)
    figures, previous = [], -1
    for step, _path, (png, _) in shown:
        badges = "".join(_badge(str(e["event"])) for e in run.events if previous < e["step"] <= step)
        figures.append(f'<figure>{_img(png, f"samples at step {step}", "pixelated")}'
                       f'<figcaption>step {step:,}<br>{badges}</figcaption></figure>')
        previous = step
    ema = (((run.config or {}).get("train") or {}).get("ema_decay", 0.999) or 0) > 0
    note = (f'<p class="muted">{len(shown)} of {len(readable)} grids, evenly spaced; badges mark '
            f'events since the previous grid.</p>' if len(shown) < len(readable) else
            f'<p class="muted">The same inputs at every grid (a fixed latent batch, or fixed held-out '
            f'inputs), through the {"EMA " if ema else ""}generator; badges mark events since the '
            f'previous grid.</p>')
    legend = _legend(run)
    timeline = (f'<section id="samples"><h2>Samples over time</h2>{note}{legend}'
                f'<div class="strip">{"".join(figures)}</div></section>')
    step, path, (_, width) = readable[-1]
    shown_width = min(width * 2, 720) if width < 360 else None
    final = (f'<section id="final" class="final"><h2>Final samples</h2>'
             f'<p class="muted">Step {step:,} ({escape(path.name)}).</p>{legend}'
             f'{_img(path.read_bytes(), f"final samples at step {step}", "pixelated", shown_width)}'
             f'{_players(run, step)}</section>')
    return timeline, final


def _legend(run: Run) -> str:
    """What each tile of the run's sample grids shows, panel by panel, from its family's
    ``preview_legend`` (a CycleGAN strip's four panels had no names); "" for a family whose tile
    is one sample, or one this ganforge does not know."""
    legend = getattr(family(run), "preview_legend", None)
    return f'<p class="legend">In each tile, {escape(legend)}.</p>' if isinstance(legend, str) and legend else ""


MAX_SOUNDS = 8  # audio players under the final samples


def _players(run: Run, step: int) -> str:
    """An audio player per WAV of the final preview (audio families), embedded as data URIs and
    named by the grid tile whose output it plays (they had read "0", "1", ...)."""
    sounds = run.sounds.get(step, [])
    if not sounds:
        return ""
    from ..labels import grid_columns  # the trainer tiles the preview so

    columns = grid_columns(len(sounds))  # a WAV per tile, in the tiles' order (load_run sorts)
    rows = -(-len(sounds) // columns)
    items = []
    for i, (name, path) in enumerate(sounds[:MAX_SOUNDS]):
        try:
            data = base64.b64encode(path.read_bytes()).decode("ascii")
        except OSError:
            run.notes.append(f"unreadable sample sound {path.name} skipped")
            continue
        label = _tile_name(i, rows, columns) + _sound_name(name)
        items.append(f'<figure><figcaption>{escape(label)}</figcaption>'
                     f'<audio controls preload="none" src="data:audio/wav;base64,{data}"></audio></figure>')
    if not items:
        return ""
    return (f'<p class="muted">The preview\'s sounds at step {step:,}: each tile of the grid above '
            f'is an input\'s mel-spectrogram on top and the output\'s below; each player plays a '
            f'tile\'s output.</p><div class="players">{"".join(items)}</div>')


POSITIONS = {2: ("top", "bottom"), 3: ("top", "middle", "bottom")}
SIDES = {2: ("left", "right"), 3: ("left", "middle", "right")}


def _tile_name(i: int, rows: int, columns: int) -> str:
    """Where tile i of a grid filled row by row lies, in words: "Top left tile", "Bottom tile",
    "Row 4, column 2 tile"."""
    r, c = divmod(i, columns)
    row = "" if rows == 1 else POSITIONS[rows][r] if rows in POSITIONS else f"row {r + 1}"
    column = "" if columns == 1 else SIDES[columns][c] if columns in SIDES else f"column {c + 1}"
    parts = [p for p in (row, column) if p]
    where = (", " if any(ch.isdigit() for ch in row + column) else " ").join(parts) or "the"
    return f"{where[:1].upper()}{where[1:]} tile"


def _sound_name(name: str) -> str:
    """What a preview WAV's name says beyond its tile: a voice conversion's direction (AtoB_0:
    ", A → B"); a vocoder's plain number says nothing more."""
    head = re.sub(r"_?\d+$", "", name)
    if not head:
        return ""
    return ", " + {"AtoB": "A → B", "BtoA": "B → A"}.get(head, head.replace("_", " "))


def _defaults() -> dict[str, Any]:
    """The default of every config key: the common sections' and the families' own (a vocoder's
    vocoder.d_width=4 had not been marked as changed from 32)."""
    try:
        import dataclasses

        from .. import objectives  # noqa: F401  (registers the families' sections)
        from ..config import SECTIONS, Config

        return {**{name: dataclasses.asdict(entry.cls()) for name, entry in SECTIONS.items()},
                **Config().to_dict()}
    except Exception:  # the report must not fail on a config module it cannot use
        return {}


# What config.yaml holds for an audio run and the audio families never read: their networks and
# losses are sized by their own sections (vocoder, vc, audio), they refuse reg.* and augment.*
# (objectives._audio), and a clip has no image size.
def _unused(run: Run) -> tuple[str, ...]:
    """The config keys ("data.channels") and sections ("model.") the run's family does not read
    (``Objective.unused_settings``), and eval.* for a family measured after training
    (``Objective.evaluated_by``; it refuses eval.every): config.yaml holds them at their defaults
    all the same, and an audio run's table had listed model: dcgan, z_dim 100 as if used."""
    fam = family(run)
    if fam is None:  # a family this ganforge does not know: every setting shown as it is
        return ()
    return (("eval.",) if fam.evaluated_by else ()) + tuple(fam.unused_settings)


def _config_row(key: str, value: Any, default: Any) -> str:
    changed = default != value
    title = f' title="default: {escape(_fmt(default))}"' if changed else ""
    return (f'<tr><td>{escape(key)}</td><td{" class=changed" if changed else ""}'
            f'{title}>{escape(_fmt(value))}</td></tr>')


def _config(run: Run) -> str:
    if run.config is None:
        return ('<section id="config"><h2>Configuration</h2><p class="muted">config.yaml is '
                'missing.</p></section>')
    defaults, unused = _defaults(), _unused(run)
    top = [(k, v) for k, v in run.config.items() if not isinstance(v, dict)]
    tables, spare, spare_changed, patterns = [], [], False, []
    for section, values in run.config.items():
        if not isinstance(values, dict):
            continue
        rows, off = [], []
        for key, value in values.items():
            default = (defaults.get(section) or {}).get(key, value)
            name = f"{section}.{key}"
            hit = next((u for u in unused if name == u or (u.endswith(".") and name.startswith(u))), None)
            if hit is None:
                rows.append(_config_row(key, value, default))
                continue
            off.append(_config_row(key, value, default))
            spare_changed |= default != value
            pattern = hit + "*" if hit.endswith(".") else hit
            patterns += [pattern] if pattern not in patterns else []
        for target, kept in ((tables, rows), (spare, off)):
            if kept:
                target.append(f'<table><caption>{escape(section)}</caption>{"".join(kept)}</table>')
    head = "".join(f'<p><span class="muted">{escape(k)}:</span> {escape(_fmt(v))}</p>'
                   for k, v in top if k != "description")
    if run.given is not None:  # the preset's dataset, which it never read
        data = run.config.get("data")
        named = f" {escape(str(data['name']))}" if isinstance(data, dict) and data.get("name") else ""
        head += (f'<p class="muted">It trained on {escape(run.given)} (RUN/dataset.json says so), not on '
                 f'data.name{named}, which config.yaml keeps.</p>')
    out = (f'<section id="config"><h2>Configuration</h2>{head}<p class="muted">Values in bold '
           f'differ from the defaults (hover for the default).</p>'
           f'<div class="config">{"".join(tables)}</div>')
    if spare:  # config.yaml holds every common section; these the family never reads
        objective = escape(str(run.config.get("objective", "")))
        held = "too; bold: set all the same" if spare_changed else "at their defaults"
        out += (f'<details class="unused"{" open" if spare_changed else ""}><summary>Not used by '
                f'objective={objective}: {escape(", ".join(patterns))} (config.yaml holds them '
                f'{held})</summary><div class="config">{"".join(spare)}</div></details>')
    return out + "</section>"


def build_html(run: Run) -> str:
    from ..version import __version__

    timeline, final = _samples(run)  # first: it may add notes for the summary
    description = str((run.config or {}).get("description") or "").strip()
    if run.given is not None:  # a preset's words name its own dataset, not the one used
        description = f"{description}; trained instead on {run.given}" if description else f"trained on {run.given}"
    sections = [_summary(run), _events(run), _curves(run), _metrics(run), timeline, final,
                _config(run)]
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in (
        ("summary", "Summary"), ("events", f"Diagnostics ({len(_diagnostics(run))})"),
        ("curves", "Curves"), ("metrics", "Metrics"), ("samples", "Samples"),
        ("final", "Final samples"), ("config", "Config")))
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>ganforge report: {escape(run.name)}</title><style>{CSS}</style></head>'
            f'<body><header><h1>{escape(run.name)} <span>training report</span></h1>'
            f'<p>{escape(description) or "&nbsp;"}</p><nav>{nav}</nav></header>'
            f'<main>{"".join(sections)}</main>'
            f'<footer>ganforge {escape(__version__)} · {len(run.records)} records and '
            f'{len(run.events)} event{"" if len(run.events) == 1 else "s"} from '
            f'{escape(str(run.run_dir / "metrics.jsonl"))} · '
            f'{generated}</footer></body></html>\n')


def write_report(run_dir: str | Path, out: str | Path | None = None, *,
                 force: bool = False) -> Path:
    """Write the report of `run_dir` to `out` (default RUN_DIR/report.html, which is simply
    regenerated; any other existing file needs force=True). Returns the path written."""
    run_dir = Path(run_dir)
    default = run_dir / "report.html"
    out = Path(out) if out is not None else default
    if out.suffix.lower() not in (".html", ".htm"):
        raise ConfigError(f"--out {out}: the report is a web page; use a .html name")
    if out.exists() and not force and out.resolve() != default.resolve():
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose another "
                          f"--out")
    # before the work, naming the option: a read-only run folder had been told "choose another
    # path" of a path the user never gave
    probe_writable(out, fix="pass --out FILE (Python: out=) to write the report elsewhere"
                   if out == default else "choose another --out")
    html = build_html(load_run(run_dir))
    atomic_write_text(out, html)
    return out
