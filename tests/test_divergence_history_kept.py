"""A diverged run resumed with the advice's lower learning rates keeps its history: the resume
had dropped every line past the last good checkpoint, the divergence events, the rollbacks and
the end record included, and the report then said "No diagnostic events". And after a rollback
the progress line had shown the diverged record's numbers as "logged at step 1"."""
import json

from ganforge import cli

DIVERGING = ["toy-grid25", "train.steps=60", "train.log_every=50", "optim.g_lr=1.0", "optim.d_lr=1.0"]


def _events(run):
    return [json.loads(line).get("event") for line in (run / "metrics.jsonl").read_text().splitlines()
            if '"event"' in line]


def test_a_resume_with_changed_rates_keeps_the_divergence(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", *DIVERGING, "--out", str(run), "--quiet"]) == 2
    before = _events(run)
    assert before.count("divergence") == 4 and before.count("rollback") == 3 and before[-1] == "end"
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "optim.g_lr=0.0002", "optim.d_lr=0.0002",
                     "--quiet"]) == 0
    assert "the events logged after it, such as a divergence, are kept" in capsys.readouterr().out
    after = _events(run)
    assert after[:len(before)] == before and "config_change" in after[len(before):], after
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
               if '"event"' not in line]
    assert [r["step"] for r in records] == [50, 60]  # the diverged step-50 records went, the new ones came


def test_a_rollback_shows_no_stale_numbers(tmp_path, capsys):
    """Progress lines go to stderr (not a terminal); the first record is at step 50, where each
    attempt diverges and rolls back: no line may show a record's numbers."""
    assert cli.main(["train", *DIVERGING, "--out", str(tmp_path / "run")]) == 2
    captured = capsys.readouterr()
    assert captured.out.count("rolled back") == 3, captured.out
    lines = [line for line in captured.err.splitlines() if line.startswith("ganforge: step ")]
    assert len(lines) > 5 and not any("D=" in line or "logged at step" in line for line in lines), lines
