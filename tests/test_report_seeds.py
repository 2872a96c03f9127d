"""The "Across seeds" section of `ganforge report RUN1 RUN2 ...` (ganforge.report.compare): runs
whose configs differ only in train.seed grouped, each metric's mean ± sample std and range against
hand computation, the best group marked, the sentence on whether the best range overlaps the
runner-up's, "steps differ", the group labels, and no section where every recipe has one run."""
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from conftest import tiny_config
from ganforge.report import write_comparison
from ganforge.report.compare import spread
from ganforge.report.page import _duration, _fmt

PROTOCOL = {"extractor": "fashion-mnist-cnn", "reference": "fashion-mnist", "split": "train", "n": 300, "seed": 1}


def _run(path: Path, *, fid: float, precision: float = 0.5, fid_step: int = 100, seconds: float = 30.0,
         extra: dict | None = None, **overrides) -> Path:
    """A run folder written by hand: training records every 10 steps to 100 (time up to
    ``seconds``), an evaluation record at 50 and its last FID at ``fid_step`` (with ``extra``
    metrics), an end record."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(tiny_config(**{"train.steps": 100, **overrides}).to_yaml())
    lines = [{"step": s, "d_loss": 1.0, "g_loss": 2.0, "time": seconds * s / 100} for s in range(10, 110, 10)]
    lines.append({"step": 50, "fid": 99.0, "precision": 0.1, "protocol": PROTOCOL})
    lines.append({"step": fid_step, "fid": fid, "precision": precision, **(extra or {}), "protocol": PROTOCOL})
    lines.sort(key=lambda r: r["step"])
    lines.append({"event": "end", "step": 100, "how": "done", "steps": 100, "checkpoint": "step_0000100"})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _recipes(tmp_path: Path, fids: dict[str, list[float]], **kw) -> list[Path]:
    """Three seeds of each loss.name in ``fids`` (its runs' last FIDs), folders LOSS-sSEED."""
    return [_run(tmp_path / f"{loss}-s{seed}", fid=fid, precision=0.5 + 0.1 * seed, **{"loss.name": loss,
                                                                                      "train.seed": seed}, **kw)
            for loss, values in fids.items() for seed, fid in enumerate(values)]


class _Seeds(HTMLParser):
    """The Across seeds table: rows of cells {"text", "small", "class", "title"} (th and td)."""

    def __init__(self):
        super().__init__()
        self.rows: list[list[dict[str, str]]] = []
        self.inside, self.cell, self.small = False, None, False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.inside = attrs.get("id") == "seeds"
        elif tag == "tr" and self.inside:
            self.rows.append([])
        elif tag in ("td", "th") and self.inside:
            self.cell = {"text": "", "small": "", "class": attrs.get("class") or "", "title": attrs.get("title") or ""}
        elif tag == "small":
            self.small = True

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append({k: " ".join(v.split()) for k, v in self.cell.items()})
            self.cell = None
        elif tag == "small":
            self.small = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell["small" if self.small else "text"] += data


def _page(runs: list[Path], tmp_path: Path) -> str:
    write_comparison(runs, tmp_path / "c.html")
    return (tmp_path / "c.html").read_text()


def _seeds(html: str) -> dict[str, list[dict[str, str]]]:
    """The Across seeds table: header -> column of cells, one per group."""
    parser = _Seeds()
    parser.feed(html)
    head, *rows = parser.rows
    return {h["text"].rstrip(" ↓↑→1"): [row[i] for row in rows] for i, h in enumerate(head)}


NS, H = "nonsaturating-s0, nonsaturating-s1, nonsaturating-s2", "hinge-s0, hinge-s1, hinge-s2"


def _section(html: str) -> str:
    return re.search(r'<section id="seeds">.*?</section>', html).group()


def test_two_recipes_of_three_seeds_and_another_config_form_three_groups_labelled_by_what_differs(tmp_path):
    runs = _recipes(tmp_path, {"nonsaturating": [61.25, 42.5, 50.0], "hinge": [40.0, 45.0, 47.0]})
    runs.append(_run(tmp_path / "fast", fid=44.0, **{"loss.name": "hinge", "optim.d_lr": 0.0004}))
    html = _page(runs, tmp_path)
    cols = _seeds(html)
    # loss.name and optim.d_lr differ between the groups; train.seed only within them
    assert [c["text"] for c in cols["Group"]] == ["loss.name=nonsaturating, optim.d_lr=0.0002",
                                                  "loss.name=hinge, optim.d_lr=0.0002",
                                                  "loss.name=hinge, optim.d_lr=0.0004"]
    assert [c["small"] for c in cols["Group"]] == [NS, H, "fast"]
    assert [c["text"] for c in cols["Seeds"]] == ["3", "3", "1"]
    assert [c["small"] for c in cols["Seeds"]] == ["seeds 0, 1, 2", "seeds 0, 1, 2", "seed 0"]
    # right after the Runs table, in the page and in the nav
    assert re.findall(r'<section id="(\w+)"', html)[:3] == ["runs", "seeds", "differences"]
    assert re.findall(r'<a href="#(\w+)">', html)[:3] == ["runs", "seeds", "differences"]


def test_mean_std_and_range_of_the_last_values_against_hand_computation(tmp_path):
    runs = _recipes(tmp_path, {"nonsaturating": [61.25, 42.5, 50.0], "hinge": [40.0, 45.0, 47.0]}, seconds=30.0)
    runs.append(_run(tmp_path / "fast", fid=44.0, seconds=12.0, **{"optim.d_lr": 0.0004}))
    cols = _seeds(_page(runs, tmp_path))
    # 61.25, 42.5, 50: mean 51.25, squared deviations 100 + 76.5625 + 1.5625 over n-1 = 2
    mean, std, low, high = spread([61.25, 42.5, 50.0])
    assert mean == 51.25 and low == 42.5 and high == 61.25
    assert std == pytest.approx(math.sqrt(178.125 / 2), rel=1e-12)
    assert std == pytest.approx(np.std([61.25, 42.5, 50.0], ddof=1), rel=1e-12)
    assert spread([7.0]) == (7.0, None, 7.0, 7.0)
    fid = cols["FID"]
    assert fid[0]["text"] == f"{_fmt(51.25)} ± {_fmt(math.sqrt(89.0625))}"
    assert fid[0]["small"] == f"{_fmt(42.5)}–{_fmt(61.25)}"
    assert fid[1]["text"] == f"{_fmt(44.0)} ± {_fmt(float(np.std([40.0, 45.0, 47.0], ddof=1)))}"
    assert fid[1]["small"] == f"{_fmt(40.0)}–{_fmt(47.0)}"
    assert (fid[2]["text"], fid[2]["small"]) == (_fmt(44.0), "")  # one run: its value alone
    assert fid[0]["title"] == (f"nonsaturating-s0: {_fmt(61.25)} at step 100; nonsaturating-s1: {_fmt(42.5)} "
                               f"at step 100; nonsaturating-s2: {_fmt(50.0)} at step 100")
    # precision 0.5, 0.6, 0.7 in both recipes
    assert cols["Precision"][0]["text"] == f"{_fmt(0.6)} ± {_fmt(0.1)}"
    assert [c["text"] for c in cols["Training time"]] == [_duration(30.0)] * 2 + [_duration(12.0)]


def test_the_best_group_mean_is_marked_by_the_metrics_direction(tmp_path):
    runs = _recipes(tmp_path, {"nonsaturating": [61.25, 42.5, 50.0], "hinge": [40.0, 45.0, 47.0]})
    cols = _seeds(_page(runs, tmp_path))
    # lower FID: hinge (mean 44 against 51.25), although nonsaturating-s1 alone (42.5) beats two hinge runs
    assert ["best" in c["class"].split() for c in cols["FID"]] == [False, True]
    # precision is the same in both (0.5, 0.6, 0.7): a tie marks both, as the Runs table does
    assert ["best" in c["class"].split() for c in cols["Precision"]] == [True, True]


def test_no_best_group_where_the_protocols_differ(tmp_path):
    runs = _recipes(tmp_path, {"nonsaturating": [61.25, 42.5, 50.0], "hinge": [40.0, 45.0, 47.0]})
    metrics = runs[-1] / "metrics.jsonl"
    metrics.write_text(metrics.read_text().replace('"n": 300', '"n": 500'))
    html = _page(runs, tmp_path)
    cols = _seeds(html)
    assert not any("best" in c["class"].split() for key in ("FID", "Precision") for c in cols[key])
    assert "range against the runner-up" not in html


def test_overlap_sentence_says_when_the_ranges_overlap_and_when_they_are_apart(tmp_path):
    overlapping = _recipes(tmp_path / "o", {"nonsaturating": [40.0, 60.0, 50.0], "hinge": [55.0, 45.0, 65.0]})
    said = _section(_page(overlapping, tmp_path / "o"))
    assert (f"FID: {NS} (best) against {H} (runner-up), the ranges overlap: "
            "not a clear winner on these seeds") in said, said
    apart = _recipes(tmp_path / "a", {"nonsaturating": [50.0, 52.0, 51.0], "hinge": [40.0, 42.0, 41.0]})
    said = _section(_page(apart, tmp_path / "a"))
    assert (f"FID: {H} (best) against {NS} (runner-up), the ranges do not "
            "overlap: every run of the best beats every run of the runner-up") in said, said
    assert f"Precision: {NS} and {H} tie on the mean" in said, said


def test_closer_to_one_compares_the_ranges_of_the_distances_to_one(tmp_path):
    # density: values 0.8-0.9 (mean 0.85, 0.15 from 1) against 1.15-1.3 (mean 1.225, 0.225 from 1): the
    # values do not overlap, their distances to 1 do (0.1-0.2 against 0.15-0.3): 1.15 beats 0.8
    runs = [_run(tmp_path / f"{loss}-s{seed}", fid=50.0, extra={"density": d},
                 **{"loss.name": loss, "train.seed": seed})
            for loss, values in {"nonsaturating": [0.8, 0.9, 0.85], "hinge": [1.15, 1.3, 1.225]}.items()
            for seed, d in enumerate(values)]
    html = _page(runs, tmp_path)
    assert ["best" in c["class"].split() for c in _seeds(html)["Density"]] == [True, False]
    assert (f"Density: {NS} (best) against {H} (runner-up), the ranges "
            "overlap") in _section(html)


def test_last_values_at_different_steps_are_averaged_and_said_so(tmp_path):
    runs = _recipes(tmp_path, {"nonsaturating": [61.25, 42.5], "hinge": [40.0, 45.0]})
    runs.append(_run(tmp_path / "late", fid=47.0, fid_step=80, **{"loss.name": "hinge", "train.seed": 2}))
    cols = _seeds(_page(runs, tmp_path))
    late = cols["FID"][1]
    assert late["text"] == f"{_fmt(44.0)} ± {_fmt(float(np.std([40.0, 45.0, 47.0], ddof=1)))}"
    assert late["small"] == f"{_fmt(40.0)}–{_fmt(47.0)}, steps differ"
    assert late["title"].startswith("steps differ: hinge-s0: 40 at step 100") and "late: 47 at step 80" in late["title"]
    assert "steps differ" not in cols["FID"][0]["small"] + cols["FID"][0]["title"]


def test_one_recipe_of_seeds_is_labelled_all_runs(tmp_path):
    runs = [_run(tmp_path / f"s{seed}", fid=50.0 + seed, **{"train.seed": seed}) for seed in range(3)]
    html = _page(runs, tmp_path)
    cols = _seeds(html)
    assert [c["text"] for c in cols["Group"]] == ["all runs"]
    assert [c["text"] for c in cols["Seeds"]] == ["3"]
    assert not any("best" in c["class"].split() for c in cols["FID"])  # one group: nothing to beat
    assert "range against the runner-up" not in html


def test_no_section_when_no_config_has_two_seeds(tmp_path):
    # the same seed, and another loss: every recipe has one run; a seed and another key: not a group
    runs = [_run(tmp_path / "a", fid=50.0), _run(tmp_path / "b", fid=40.0, **{"loss.name": "hinge"}),
            _run(tmp_path / "c", fid=45.0, **{"train.seed": 1, "optim.d_lr": 0.0004})]
    html = _page(runs, tmp_path)
    assert 'id="seeds"' not in html and "Across seeds" not in html
    assert re.findall(r'<a href="#(\w+)">', html)[:2] == ["runs", "differences"]


def test_groups_of_other_families_get_short_labels_and_a_single_run_is_no_verdict(tmp_path):
    # a review's dcgan seeds beside an lsgan and a cgan run: each label had named every key either
    # family sets, unset ones as "—" (350-1,080 characters), the sentence repeated them (1,800-4,600),
    # and a best group of one run was said to beat "every run of the runner-up"
    runs = _recipes(tmp_path, {"nonsaturating": [50.0, 52.0, 51.0]})
    runs.append(_run(tmp_path / "cond", fid=40.0, **{"objective": "conditional", "data.name": "fashion-mnist",
                                                     "model.g_width": 16, "optim.g_lr": 0.001,
                                                     "optim.d_lr": 0.001, "train.batch_size": 4}))
    runs.append(_run(tmp_path / "long", fid=60.0, **{"train.steps": 120, "train.seed": 5}))
    html = _page(runs, tmp_path)
    labels = [c["text"] for c in _seeds(html)["Group"]]
    assert "train.steps=120" in labels[2], labels  # what tells it from the seeds, among many keys
    assert labels[1].startswith("objective=conditional, ") and "—" not in labels[1], labels
    assert labels[1].endswith("more keys (What differs)") and len(labels[1].split(", ")) == 4, labels
    assert labels[0].startswith("objective=unconditional, ") and "—" not in labels[0], labels
    said = _section(html)
    assert (f"FID: cond (best) against {', '.join(f'nonsaturating-s{i}' for i in range(3))} (runner-up), a single "
            f"run on one side: no spread over seeds to judge") in said, said
    assert "every run of the best" not in said


def test_a_seed_repeated_in_a_group_is_said_not_passed_off_as_a_spread(tmp_path):
    # copies of one run, seed too, were grouped as "seeds 0, 0, 0" with a ± that read as a spread
    runs = [_run(tmp_path / f"copy{i}", fid=50.0 + i) for i in range(3)]
    html = _page(runs, tmp_path)
    seeds = _seeds(html)["Seeds"]
    assert seeds[0]["small"].startswith("seeds 0, 0, 0") and "a seed repeated" in seeds[0]["small"]
    assert "A seed repeated in a group (copy0, copy1, copy2)" in _section(html)
    distinct = [_run(tmp_path / "d" / f"s{i}", fid=50.0 + i, **{"train.seed": i}) for i in range(3)]
    html = _page(distinct, tmp_path / "d")
    assert "a seed repeated" not in html and "A seed repeated" not in html
