"""Newcomer mistakes a review met, each one line naming the fix: an override the shell split at
spaces around '=', an override with no value, and eval given one image (a sample grid)."""
from __future__ import annotations

import pytest
from PIL import Image

from ganforge.commands import train as train_command
from ganforge import cli, config
from ganforge.errors import ConfigError


@pytest.mark.parametrize("pieces", [["optim.d_lr", "=", "1e-4"], ["optim.d_lr=", "1e-4"], ["optim.d_lr", "=1e-4"]])
def test_an_override_split_at_spaces_is_shown_whole_with_the_fix(pieces):
    """It had said "override 'optim.d_lr' is not key=value", or blamed '1e-4'."""
    with pytest.raises(ConfigError) as err:
        config.load_config("dcgan-fashion-mnist", ["train.steps=5", *pieces])
    assert str(err.value).startswith(f"override '{' '.join(pieces)}' has spaces around '='")
    assert "write it as one argument: optim.d_lr=1e-4" in str(err.value)


def test_an_override_with_no_value_says_so():
    """It had said "optim.d_lr must be float, got None (NoneType)"."""
    with pytest.raises(ConfigError, match=r"^override 'optim.d_lr=' gives optim.d_lr no value; "
                                          r"write optim.d_lr=VALUE \(float\)$"):
        config.load_config("dcgan-fashion-mnist", ["optim.d_lr="])
    assert config.load_config("dcgan-fashion-mnist", ["description="])[1].description == ""  # text may be empty


def test_eval_of_one_image_names_what_to_pass(tmp_path, capsys):
    Image.new("L", (8, 8)).save(tmp_path / "grid.png")
    assert cli.main(["eval", str(tmp_path / "grid.png"), "--ref", "fashion-mnist"]) == 2
    err = capsys.readouterr().err.strip()
    assert "(one image, e.g. a sample grid, is not a set of samples to score)" in err
    assert err.endswith("write samples with: ganforge sample RUN --n 10000 --out samples.npz") and "\n" not in err


def test_progress_lines_say_when_their_numbers_are_from_an_earlier_record():
    """Lines every tenth of the steps repeat the last record's numbers between records
    (train.log_every): unmarked, identical numbers on three lines had read as a stalled run."""
    import io

    from ganforge.training.display import LineProgress

    out = io.StringIO()
    bar = LineProgress(100, 0, file=out)
    bar.update(10)
    bar.set_postfix_str("D=0.700")  # the record of step 20, set before the bar moves to it
    bar.update(10)
    bar.update(10)
    lines = out.getvalue().splitlines()
    assert lines[1].endswith(", D=0.700") and lines[2].endswith(", D=0.700 (logged at step 20)"), lines


def test_report_of_a_folder_that_is_no_run_does_not_advise_training_into_it(tmp_path, capsys):
    """'ganforge report pics' had advised 'ganforge train PRESET --out pics', which train refuses
    for a folder that is not a run."""
    (tmp_path / "pics").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "pics" / "a.png")
    assert cli.main(["report", str(tmp_path / "pics")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ganforge: error: {tmp_path / 'pics'} is not a ganforge run directory (no config.yaml); "
                   f"pass the --out of a training run (ganforge train PRESET --out DIR)"), err


def test_the_end_of_training_points_to_the_report_and_counts_this_calls_warnings(tmp_path, capsys):
    """"done at step N" had been all a run with three rollbacks and a vanishing-gradients warning
    ended with: the last lines name the report, and the warnings of this call's steps."""
    import json

    run = tmp_path / "run"
    assert cli.main(["train", "toy-ring8", "--steps", "20", "--out", str(run), "--quiet"]) == 0
    assert f"  report:     ganforge report {run}\n" in capsys.readouterr().out  # no warnings: no count
    records = [{"event": "vanishing_gradients", "step": 10}, {"event": "rollback", "step": 30},
               {"event": "config_change", "step": 30}, {"event": "vanishing_gradients", "step": 40},
               {"event": "end", "step": 40}]
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    since = train_command._warnings_since
    assert since(metrics, 20) == "2 warnings: rollback, vanishing_gradients"  # after step 20 only
    assert since(metrics, 40) == "" and since(tmp_path / "none.jsonl", 0) == ""
