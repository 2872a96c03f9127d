"""`ganforge report RUN1 RUN2 ...`: several runs compared on one page (ganforge.report.compare):
the table's numbers against metrics.jsonl, the best marks, protocols that do not compare, the
config keys that differ, labels of same-named runs, and each refusal in one line."""
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import torch

from conftest import random_dataset, tiny_config
from ganforge import api, cli
from ganforge.report import write_comparison
from ganforge.report.compare import flatten, run_labels
from ganforge.report.page import _duration, _fmt

PROTOCOL = {"extractor": "fashion-mnist-cnn", "reference": "fashion-mnist", "split": "train", "n": 300, "seed": 1}


class _Tables(HTMLParser):
    """Every <table>, by the id of its <section>: rows of (text, class) cells (th and td)."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self.section, self.cell, self.rows = "", None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id", "")
        elif tag == "table":
            self.rows = self.tables.setdefault(self.section, [])
        elif tag == "tr" and self.rows is not None:
            self.rows.append([])
        elif tag in ("td", "th") and self.rows is not None:
            self.cell = ["", attrs.get("class") or ""]

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append((" ".join(self.cell[0].split()), self.cell[1]))
            self.cell = None
        elif tag == "table":
            self.rows = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[0] += data


def _tables(html: str) -> dict[str, list[list[tuple[str, str]]]]:
    parser = _Tables()
    parser.feed(html)
    return parser.tables


def _fake_run(path: Path, *, fid: list[float], precision: list[float], protocol=PROTOCOL,
              seconds: float = 30.0, **overrides) -> Path:
    """A run folder written by hand: training records every 10 steps to 100 (time up to
    ``seconds``), evaluation records at 50 and 100, an end record."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(tiny_config(**{"train.steps": 100, **overrides}).to_yaml())
    lines = [{"step": s, "d_loss": 1.0, "g_loss": 2.0, "time": seconds * s / 100} for s in range(10, 110, 10)]
    lines += [{"step": s, "fid": f, "precision": p, "protocol": protocol}
              for s, f, p in zip((50, 100), fid, precision)]
    lines.append({"event": "end", "step": 100, "how": "done", "steps": 100, "checkpoint": "step_0000100"})
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _rows(html: str) -> dict[str, list[tuple[str, str]]]:
    """The Runs table: header -> column of (text, class), one per run."""
    head, *rows = _tables(html)["runs"]
    return {h[0].rstrip(" ↓↑→1"): [row[i] for row in rows] for i, h in enumerate(head)}


@pytest.fixture
def three(tmp_path):
    """a/run and b/run (the same folder name) and c/other; the best FID is b/run's, the best
    precision a/run's, c/other logged no evaluation."""
    a = _fake_run(tmp_path / "a" / "run", fid=[80.0, 61.25], precision=[0.5, 0.75], seconds=30)
    b = _fake_run(tmp_path / "b" / "run", fid=[70.0, 42.5], precision=[0.4, 0.625], seconds=95,
                  **{"loss.name": "hinge", "optim.d_lr": 0.0004})
    c = tmp_path / "c" / "other"
    c.mkdir(parents=True)
    (c / "config.yaml").write_text(tiny_config(**{"train.steps": 100}).to_yaml())
    (c / "metrics.jsonl").write_text(json.dumps({"step": 40, "d_loss": 1.0, "g_loss": 2.0, "time": 7.0}) + "\n")
    return a, b, c


def test_table_holds_each_runs_last_numbers_and_marks_the_best_of_each_metric(three, tmp_path):
    write_comparison(three, tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    cols = _rows(html)
    assert [t for t, _ in cols["Run"]] == ["a/run", "b/run", "other"]
    assert [t for t, _ in cols["Steps"]] == ["100 / 100", "100 / 100", "40 / 100"]
    assert [t for t, _ in cols["Training time"]] == [_duration(30.0), _duration(95.0), _duration(7.0)]
    ended = [t for t, _ in cols["Ended"]]
    assert ended[:2] == ["done at step 100"] * 2
    assert ended[2].startswith("without an end record (killed or crashed) at step 40")  # as the single report says
    assert [t for t, _ in cols["Warnings"]] == ["none"] * 3
    # the last value of each run's metrics.jsonl, and the step it was logged at
    assert [t for t, _ in cols["FID"]] == [f"{_fmt(61.25)} @100", f"{_fmt(42.5)} @100", "—"]
    assert [t for t, _ in cols["Precision"]] == [f"{_fmt(0.75)} @100", f"{_fmt(0.625)} @100", "—"]
    # lower FID is better: b/run's; higher precision: a/run's
    assert ["best" in c.split() for _, c in cols["FID"]] == [False, True, False]
    assert ["best" in c.split() for _, c in cols["Precision"]] == [True, False, False]
    assert "do not compare" not in html


def test_differing_protocols_are_named_and_mark_no_best(tmp_path):
    a = _fake_run(tmp_path / "a", fid=[80.0, 60.0], precision=[0.5, 0.7])
    b = _fake_run(tmp_path / "b", fid=[70.0, 40.0], precision=[0.4, 0.6], protocol={**PROTOCOL, "n": 500})
    write_comparison([a, b], tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    cols = _rows(html)
    assert not any("best" in c.split() for key in ("FID", "Precision") for _, c in cols[key])
    said = re.search(r"These evaluation numbers do not compare[^<]*", html).group()
    assert "(n: 300 in a, 500 in b)" in said, said


def test_what_differs_lists_exactly_the_keys_that_differ(three, tmp_path):
    write_comparison(three, tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    head, *rows = _tables(html)["differences"]
    assert [t for t, _ in head] == ["Config key", "a/run", "b/run", "other"]
    assert {row[0][0]: [t for t, _ in row[1:]] for row in rows} == {
        "loss.name": ["nonsaturating", "hinge", "nonsaturating"],
        "optim.d_lr": [_fmt(0.0002), _fmt(0.0004), _fmt(0.0002)]}
    same = len(flatten(tiny_config(**{"train.steps": 100}).to_dict())) - 2
    assert f"{same} other keys of config.yaml are the same in all" in html


def test_labels_are_folder_names_with_the_shortest_suffix_where_names_clash(tmp_path):
    assert run_labels([tmp_path / "x" / "a" / "run", tmp_path / "y" / "a" / "run", tmp_path / "b" / "other"]) == [
        "x/a/run", "y/a/run", "other"]
    assert run_labels([tmp_path / "one", tmp_path / "two"]) == ["one", "two"]


def test_charts_and_grids_of_real_runs_are_embedded_and_nothing_is_fetched(tmp_path):
    """Two short runs trained with different losses and an evaluation hook: the FID in the table
    is the last one each metrics.jsonl holds; every image is inline."""
    runs = []
    for loss, hook in (("nonsaturating", lambda trainer, step: {"fid": 50.0 - step}),
                       ("lsgan", lambda trainer, step: {"fid": 40.0 + step})):
        cfg = tiny_config(**{"loss.name": loss, "eval.every": 3})
        api.train(cfg, tmp_path / loss, progress=False, hooks=[hook], dataset=random_dataset(n=16))
        runs.append(tmp_path / loss)
    out = write_comparison(runs, tmp_path / "compare.html")
    html = out.read_text()
    cols = _rows(html)
    for run, (text, _) in zip(runs, cols["FID"]):
        last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
                if '"fid"' in line][-1]
        assert text == f"{_fmt(last['fid'])} @{last['step']}"
        times = [json.loads(line).get("time") for line in (run / "metrics.jsonl").read_text().splitlines()]
        threads = torch.get_num_threads()  # the cell also says what the time was spent on
        assert (f"{_duration(max(t for t in times if t is not None))}fp32, CPU, {threads} "
                f"thread{'' if threads == 1 else 's'}") in [t for t, _ in cols["Training time"]]
    assert ["best" in c.split() for _, c in cols["FID"]] == [True, False]  # 44 < 46
    assert [t for t, _ in cols["Steps"]] == ["6 / 6", "6 / 6"]
    assert "loss.name" in [row[0][0] for row in _tables(html)["differences"]]
    images = re.findall(r'<img src="([^"]*)"', html)
    assert len(images) == 2 + 2  # the FID and the losses charts, a grid per run
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(?:src|href)\s*=\s*["\']?\s*(?:https?:)?//', html, re.I)


def test_a_run_without_metrics_yet_is_shown_with_a_note_unless_all_are(three, tmp_path, capsys):
    a, b, _ = three
    young = tmp_path / "young"
    young.mkdir()
    (young / "config.yaml").write_text(tiny_config().to_yaml())
    write_comparison([a, young], tmp_path / "c.html")
    html = (tmp_path / "c.html").read_text()
    assert [t for t, _ in _rows(html)["Ended"]][1] == "no metrics yet"
    assert "young: " in html and "has no metrics" in html
    older = tmp_path / "older"
    older.mkdir()
    (older / "config.yaml").write_text(tiny_config().to_yaml())
    code, err = _cli(capsys, young, older, "--out", tmp_path / "none.html")
    assert code == 2 and "none of the runs has metrics" in err
    assert not (tmp_path / "none.html").exists()


def _cli(capsys, *args):
    capsys.readouterr()
    try:
        code = cli.main(["report", *map(str, args)])
    except SystemExit as exc:  # argparse
        code = exc.code
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    return code, err


def test_each_refusal_is_one_line_exit_2_and_writes_nothing(three, tmp_path, capsys, monkeypatch):
    a, b, c = three
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "o.html"
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / "cat.png").write_bytes(b"not a run")
    cases = [
        ((a, tmp_path / "nope", "--out", out), "is not a directory"),
        ((a, pics, "--out", out), "is not a ganforge run directory"),
        ((a, b, tmp_path / "a" / ".." / "a" / "run", "--out", out), "are the same run; give each run once"),
        (([a] * 9 + ["--out", out]), "at most 8 runs"),
    ]
    for args, said in cases:
        code, err = _cli(capsys, *args)
        assert code == 2 and said in err, err
        assert not out.exists() and not (tmp_path / "compare.html").exists()
    # an existing --out, and the default compare.html here: --force needed
    for target in (out, tmp_path / "compare.html"):
        target.write_text("mine")
        args = (a, b) + (("--out", out) if target == out else ())
        code, err = _cli(capsys, *args)
        assert code == 2 and "already exists; pass --force" in err, err
        assert target.read_text() == "mine"
        assert cli.main(["report", str(a), str(b), *map(str, args[2:]), "--force"]) == 0
        assert target.read_text().startswith("<!DOCTYPE html>")


def test_one_run_still_writes_its_own_report(three, tmp_path, monkeypatch, capsys):
    a, b, _ = three
    monkeypatch.chdir(tmp_path)
    assert cli.main(["report", str(a)]) == 0
    assert f"wrote the report of {a} to {a / 'report.html'}" in capsys.readouterr().out
    assert "training report" in (a / "report.html").read_text()
    assert not (tmp_path / "compare.html").exists()
    assert cli.main(["report", str(a), str(b)]) == 0
    assert "wrote the comparison of 2 runs to compare.html" in capsys.readouterr().out
    assert (tmp_path / "compare.html").is_file()


def test_help_describes_both_uses(capsys):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "RUN [RUN ...]" in text and "With 2 to 8 RUNs" in text and "compare.html" in text


def _toy_run(path: Path, data: str, modes: float, hq: float) -> Path:
    """A toy run written by hand: its probe's modes captured and high-quality share at 50 and 100."""
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(tiny_config(**{"train.steps": 100, "data.name": data}).to_yaml())
    lines = [{"step": s, "d_loss": 1.0, "g_loss": 2.0, "probe_classes": modes, "probe_hq": hq, "time": s / 10}
             for s in (50, 100)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def test_toy_modes_are_not_compared_across_mixtures(tmp_path):
    """8 of ring8's 8 modes against 21 of grid25's 25: the grid's 21 had been marked best."""
    ring = _toy_run(tmp_path / "ring", "toy:ring8", 8.0, 0.9)
    grid = _toy_run(tmp_path / "grid", "toy:grid25", 21.0, 0.2)
    html = write_comparison([ring, grid], tmp_path / "c.html").read_text()
    cols = _rows(html)
    assert [t for t, _ in cols["Modes captured"]] == ["8 @100", "21 @100"]
    # a share, as the single report shows it (it had been 0.9 here and 90% there)
    assert [t for t, _ in cols["High-quality share"]] == ["90.0% @100", "20.0% @100"]
    assert not any("best" in c.split() for _, c in cols["Modes captured"] + cols["High-quality share"])
    assert "no best is marked for them: the toy runs train on toy:ring8 in ring, toy:grid25 in grid" in html
    # on one mixture the best is marked
    other = _toy_run(tmp_path / "ring2", "toy:ring8", 7.0, 0.95)
    cols = _rows(write_comparison([ring, other], tmp_path / "d.html").read_text())
    assert ["best" in c.split() for _, c in cols["Modes captured"]] == [True, False]
    assert ["best" in c.split() for _, c in cols["High-quality share"]] == [False, True]


def test_an_image_runs_class_count_is_not_a_toy_runs_modes(tmp_path):
    """An image run's probe_classes counts a classifier's classes: its 10 had filled the toy
    column and been marked best against ring8's 8 modes."""
    ring = _toy_run(tmp_path / "ring", "toy:ring8", 8.0, 0.9)
    image = _fake_run(tmp_path / "image", fid=[50.0, 40.0], precision=[0.5, 0.6])
    records = [json.loads(line) for line in (image / "metrics.jsonl").read_text().splitlines()]
    for r in records:  # the monitor's probe logs it with each training record
        if "d_loss" in r:
            r["probe_classes"] = 10.0
    (image / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    cols = _rows(write_comparison([ring, image], tmp_path / "c.html").read_text())
    assert [t for t, _ in cols["Modes captured"]] == ["8 @100", "—"]
    assert not any("best" in c.split() for _, c in cols["Modes captured"])


def test_a_key_one_config_lacks_and_one_set_to_null_are_no_difference(tmp_path):
    a = _fake_run(tmp_path / "a", fid=[50.0, 40.0], precision=[0.5, 0.6])
    b = _fake_run(tmp_path / "b", fid=[50.0, 45.0], precision=[0.5, 0.6], **{"loss.name": "hinge"})
    # and an empty list or "" (shown "—" as well): a ProGAN run's progressive.resolutions: [] beside
    # runs of other families had been a row of dashes under "What differs"
    for run, extra in ((a, "\nprogressive:\n  resolutions: []\n  note: ''\n"), (b, "\nlegacy:\n  setting: null\n")):
        (run / "config.yaml").write_text((run / "config.yaml").read_text() + extra)
    rows = _tables(write_comparison([a, b], tmp_path / "c.html").read_text())["differences"]
    assert [row[0][0] for row in rows[1:]] == ["loss.name"]


def test_one_path_in_python_is_refused_as_such(tmp_path):
    run = _fake_run(tmp_path / "a", fid=[50.0, 40.0], precision=[0.5, 0.6])
    with pytest.raises(Exception, match=r"takes a list of 2 to 8 run directories, got the one path .*write_report"):
        write_comparison(str(run), tmp_path / "c.html")
    assert not (tmp_path / "c.html").exists()


def test_a_run_still_starting_says_to_compare_again(tmp_path):
    """Its single report's advice had been "run ganforge report RUN again then"."""
    from ganforge.rundir import RunLock

    done = _fake_run(tmp_path / "done", fid=[50.0, 40.0], precision=[0.5, 0.6])
    early = tmp_path / "early"
    early.mkdir()
    (early / "config.yaml").write_text(tiny_config(**{"train.log_every": 100}).to_yaml())
    lock = RunLock(early).acquire()
    try:
        html = write_comparison([done, early], tmp_path / "c.html").read_text()
    finally:
        lock.release()
    assert "still training" in html and "first record comes at step 100 (train.log_every); compare again then" in html
    assert "ganforge report" not in html.split('id="runs"')[1].split("</section>")[0]
