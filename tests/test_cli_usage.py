"""Usage errors point to the help of the command that was given: an unknown option had sent the
user to `ganforge --help`, which does not list a command's options, with no hint of the one
meant; `ganforge serve` alone had named an optional list as required."""
import pytest

from ganforge import cli


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.parse_args(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    return err


@pytest.mark.parametrize("argv, help_of", [
    (["sample", "r", "--nn", "3"], "ganforge sample --help"),
    (["bench", "modes", "--bogus", "1"], "ganforge bench modes --help"),
    (["data", "fetch", "fashion-mnist", "--zzz"], "ganforge data fetch --help"),
])
def test_an_unknown_option_points_to_its_commands_help(argv, help_of, capsys):
    assert f"(see '{help_of}')" in usage_error(argv, capsys)


def test_an_unknown_option_names_the_close_one(capsys):
    assert "unrecognized arguments: --nn 3; did you mean --n?" in usage_error(["sample", "r", "--nn", "3"], capsys)
    assert "did you mean" not in usage_error(["sample", "r", "--zzzzzz"], capsys)


def test_an_option_of_other_commands_names_them_not_a_far_one(capsys):
    """`eval --per-class` had been answered "did you mean --metrics?"."""
    err = usage_error(["eval", "r", "--ref", "fashion-mnist", "--per-class", "10"], capsys)
    assert "unrecognized arguments: --per-class 10; --per-class is an option of ganforge sample, augment" in err
    assert "did you mean" not in err
    assert "--token is an option of ganforge serve" in usage_error(["report", "r", "--token", "t"], capsys)


def test_serve_needs_one_model_and_says_only_that(capsys):
    err = usage_error(["serve"], capsys)
    assert "required: RUN (" in err and "RUN_OR_FOLDER" not in err
    assert cli.parse_args(["serve", "a"]).more == []
