"""--steps reads a whole number as train.steps does (2e3), and --steps with a train.steps= override
of another value is refused: the shorthand had won whatever the order, with no word of the other."""
import pytest

from ganforge import cli
from ganforge.commands import whole_number


def test_whole_number_reads_exponent_form_and_refuses_fractions():
    assert whole_number("2000") == 2000 and whole_number("2e3") == 2000 and whole_number("1E4") == 10000
    for bad in ("2.5", "abc", "nan", "inf", ""):
        with pytest.raises(Exception, match="a whole number is expected"):
            whole_number(bad)


def test_steps_and_train_steps_that_disagree_are_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train", "dcgan-fashion-mnist", "--steps", "2e3", "train.steps=3", "--out", str(out)]) == 2
    assert "--steps 2000 and train.steps=3 disagree; pass one of them" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(SystemExit) as stop:  # argparse's refusal
        cli.main(["train", "dcgan-fashion-mnist", "--steps", "abc", "--out", str(out)])
    assert stop.value.code == 2
    assert "a whole number is expected, got 'abc'" in capsys.readouterr().err
