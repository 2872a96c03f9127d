"""Fixes from a first-time user's walk through the README: advice, progress lines, errors, report."""
import json
import re

import pytest

from ganforge import api, cli
from ganforge.errors import ConfigError, DataError
from ganforge.report import load_run
from ganforge.report.page import build_html
from ganforge.training.monitor import Monitor, _suggest_oscillation

from conftest import random_dataset, tiny_config


def _one_line(capsys, code) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _broken(n=3):
    """Records of a run whose D loss is in the thousands: the monitor's divergence."""
    for i in range(n):
        yield {"step": (i + 1) * 50, "d_loss": 5e3, "g_loss": 1.8, "d_real": 0.75, "d_fake": 0.25,
               "g_grad_norm": 8.0, "d_grad_norm": 100.0, "nonfinite": 0.0, "time": i * 2.0}


def _divergence(cfg, lr_scale=1.0):
    monitor = Monitor(cfg)
    monitor.lr_scale = lr_scale
    events = [e for r in _broken() for e in monitor.update(r) if e["event"] == "divergence"]
    return events[0]["suggestion"]


# ----------------------------------------------------------------------------- 1. learning-rate advice


def test_divergence_advice_names_the_rate_far_out_of_line_and_spares_the_other():
    """optim.d_lr=10 after three rollbacks had been advised down to 0.625 (still ~3000x a
    preset's) and the preset's g_lr pushed 16x lower with it."""
    advice = _divergence(tiny_config(**{"optim.d_lr": 10}), lr_scale=0.125)
    assert "optim.d_lr 10 (1.25 after the rollbacks) is far above the presets' 1e-4 to 0.003: " \
           "lower it, e.g. to 0.0002" in advice
    assert "optim.g_lr" not in advice and "0.625" not in advice
    fresh = _divergence(tiny_config(**{"optim.d_lr": 10}))
    assert "optim.d_lr 10 is far above the presets'" in fresh and "optim.g_lr" not in fresh
    # rates in line with the presets are still halved, both
    ordinary = _divergence(tiny_config(**{"optim.g_lr": 2e-4, "optim.d_lr": 2e-4}))
    assert "lower optim.g_lr to 0.0001; lower optim.d_lr to 0.0001" in ordinary
    assert "far above" not in ordinary


def test_oscillation_advice_names_a_far_out_g_lr_and_spares_d_lr():
    advice = _suggest_oscillation(tiny_config(**{"optim.g_lr": 5, "optim.d_lr": 2e-4}), {})
    assert "optim.g_lr 5 is far above the presets'" in advice
    assert "optim.d_lr" not in advice
    assert "lower optim.d_lr to 0.0001; lower optim.g_lr to 0.0001" in _suggest_oscillation(
        tiny_config(**{"optim.g_lr": 2e-4, "optim.d_lr": 2e-4}), {})


# ----------------------------------------------------------------------------- 2. plain progress lines


def test_a_plain_progress_line_carries_its_own_steps_record_and_the_time_left(tmp_path, capsys):
    """Piped, the line at step 10 had no numbers and step 10's appeared on the line at step 12."""
    run = tmp_path / "run"
    api.train(tiny_config(**{"train.steps": 20, "train.log_every": 10, "train.sample_every": 20,
                             "train.checkpoint_every": 20}), run, dataset=random_dataset(), progress=True)
    lines = {int(re.match(r"ganforge: step (\d+)/20", line)[1]): line
             for line in capsys.readouterr().err.splitlines()}
    records = {r["step"]: r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
               if "d_loss" in r}
    assert sorted(lines) == list(range(2, 21, 2))
    assert "D=" not in lines[8]
    for step in (10, 12, 20):  # the record at or before each line's step
        assert f"D={records[step // 10 * 10]['d_loss']:.3f} " in lines[step], lines[step]
    assert re.search(r", \d+:\d\d elapsed, \d+:\d\d left, D=", lines[10]), lines[10]
    assert re.search(r", \d+:\d\d elapsed, D=", lines[20]) and "left" not in lines[20]


# ----------------------------------------------------------------------------- 4. sample: the run first


def test_sample_of_a_missing_run_names_the_run_not_an_existing_grid(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "samples.png").write_bytes(b"an earlier grid")
    err = _one_line(capsys, cli.main(["sample", "runs/typo"]))
    assert "runs/typo does not exist" in err and "--force" not in err
    assert (tmp_path / "samples.png").read_bytes() == b"an earlier grid"


# ----------------------------------------------------------------------------- 5. the folder presets' hint


def test_a_folder_preset_without_data_name_says_how_to_set_it(tmp_path, capsys, monkeypatch):
    """The hint had been 'pass folder:PATH', which the command line does not accept."""
    monkeypatch.chdir(tmp_path)  # the preset's default folder:images is not there
    err = _one_line(capsys, cli.main(["train", "dcgan-folder", "--out", "run", "--quiet"]))
    assert f"folder {tmp_path / 'images'} does not exist or is not a directory; set data.name=folder:PATH " \
           "to a folder of images (e.g. ganforge train dcgan-folder data.name=folder:/path/to/images)" in err
    assert not (tmp_path / "run").exists()
    (tmp_path / "empty").mkdir()  # the Python API: the same key
    with pytest.raises(DataError, match="has no .* files; set data.name=folder:PATH to a folder of images"):
        api.train(tiny_config(**{"data.name": "folder:empty"}), tmp_path / "api", progress=False)


# ----------------------------------------------------------------------------- 6, 7. report and wording


def test_report_charts_keep_a_readable_width_and_a_rollback_is_not_advice(tmp_path):
    """At 400 px the charts had shrunk to ~290 px (3 px letters); a rollback's card said 'Try:'
    over 'training continues with lower learning rates'."""
    run = tmp_path / "run"
    api.train(tiny_config(**{"train.steps": 2}), run, dataset=random_dataset(), progress=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"event": "rollback", "step": 2, "evidence": {"to_step": 0, "lr_scale": 0.5},
                            "suggestion": "training continues with lower learning rates"}) + "\n")
    html = build_html(load_run(run))
    assert ".chart { overflow-x: auto; }" in html and ".chart img { min-width: 720px; }" in html
    charts = re.findall(r'(<div class="chart">)?<img src="data:image/png;base64,[^"]*" alt="([^"]*)"', html)
    assert {alt for wrapped, alt in charts if not wrapped} == {"samples at step 2", "final samples at step 2"}
    assert "Losses" in {alt for wrapped, alt in charts if wrapped}
    rollback = html[html.index('>Rollback</span>'):]
    assert "<strong>What happens next:</strong></p><ul><li>training continues" in rollback
    assert "Try:" not in rollback[:rollback.index("</article>")]


def test_run_directory_messages_name_the_python_arguments_as_such(tmp_path, capsys):
    run = tmp_path / "run"
    api.train(tiny_config(**{"train.steps": 2}), run, dataset=random_dataset(), progress=False)
    with pytest.raises(ConfigError) as info:
        api.train(tiny_config(**{"train.steps": 2}), run, dataset=random_dataset(), progress=False)
    assert ("pass --resume (Python: resume=True) to continue it, --force (Python: force=True) to start "
            "over (deletes it), or choose another --out (Python: run_dir)") in str(info.value)
    with pytest.raises(SystemExit):
        cli.main(["sample", "--help"])
    assert "noise seed: the same seed draws the same samples (default 0)" in " ".join(
        capsys.readouterr().out.split())


def test_non_finite_advice_names_the_rate_far_out_of_line_alone():
    from ganforge.config import load_config
    from ganforge.training.monitor import non_finite_advice

    cfg = load_config("dcgan-fashion-mnist", ["optim.d_lr=10"])[1]
    advice = non_finite_advice(cfg, 0.25)
    assert "optim.d_lr 10 (2.5 after the rollbacks) is far above" in advice
    assert "optim.g_lr" not in advice  # the preset's g_lr is not to blame
    plain = non_finite_advice(load_config("dcgan-fashion-mnist", ["train.precision=bf16"])[1], 0.5)
    assert "lower optim.g_lr below the 0.0002" in plain and "train.precision=fp32" in plain
