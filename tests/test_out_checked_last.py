"""An option the run refuses is named before an existing --out: `sample --truncation` or
`interpolate --space w` of a DCGAN run, next to an earlier grid, had said "already exists; pass
--force", and only the rerun with --force named the option that does not apply."""
import pytest

from ganforge import cli

from conftest import tiny_config


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("run")
    yaml_file = tmp / "c.yaml"
    yaml_file.write_text(tiny_config(**{"train.steps": 2}).to_yaml())
    assert cli.main(["train", str(yaml_file), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


@pytest.mark.parametrize("command, option, said", [
    (["sample"], ["--truncation", "0.5"], "cannot sample with truncation"),
    (["sample"], ["--class", "2"], "unconditional"),
    (["interpolate", "--seeds", "1,2"], ["--space", "w"], "one latent space, z"),
    (["interpolate", "--seeds", "1,2"], ["--truncation", "0.5"], "samples without truncation"),
])
def test_the_option_is_named_before_the_existing_out(run, tmp_path, capsys, command, option, said):
    out = tmp_path / ("old.gif" if command[0] == "interpolate" else "old.png")
    out.write_bytes(b"an earlier result")
    capsys.readouterr()
    assert cli.main([command[0], str(run), *command[1:], *option, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert said in err and "already exists" not in err and "\n" not in err, err
    assert out.read_bytes() == b"an earlier result"
    # without the option the existing file is still refused, and kept
    assert cli.main([command[0], str(run), *command[1:], "--out", str(out)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"an earlier result"


def test_a_missing_step_offers_best_only_where_the_run_has_one(run, tmp_path, capsys):
    """The not-found message had offered 'best' to a run that never marked one."""
    assert cli.main(["sample", str(run), "--checkpoint", "step_0000007", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "use latest or one of: step_0000000" in err and "best" not in err, err


@pytest.mark.parametrize("seeds, suggested", [("1,2,1", "1,2"), ("1,1,2", "1,2"), ("4,4", "4,5")])
def test_a_walk_that_stands_still_says_so(run, tmp_path, capsys, seeds, suggested):
    """--seeds 1,2,1 loops back from 1 to 1: a still part of the walk, said with the seeds that avoid it."""
    assert cli.main(["interpolate", str(run), "--seeds", seeds, "--frames", "6",
                     "--out", str(tmp_path / "w.gif")]) == 0
    out = capsys.readouterr().out
    assert "stands still" in out and f"--seeds {suggested}" in out, out


def test_a_walk_without_repeats_has_no_note(run, tmp_path, capsys):
    assert cli.main(["interpolate", str(run), "--seeds", "1,2,3", "--frames", "6",
                     "--out", str(tmp_path / "w.gif")]) == 0
    assert "stands still" not in capsys.readouterr().out


def test_train_classifier_says_1_epoch(tmp_path, capsys, monkeypatch):
    """'for 1 epochs'; the training itself is stopped at its start here (it takes minutes)."""
    from ganforge.metrics import classifier

    def stop(*args, **kwargs):
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(classifier, "train", stop)
    with pytest.raises(RuntimeError, match="stopped by the test"):
        cli.main(["train-classifier", "fashion-mnist", "--epochs", "1", "--out", str(tmp_path / "c.safetensors")])
    assert " for 1 epoch (" in capsys.readouterr().out
