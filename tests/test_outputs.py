"""Files the user already has are not overwritten or deleted without --force: every --json
output, the recipe beside a classifier's weights, and a file where augment would write a folder.
Each refusal is one line with exit code 2, before any work, and the file is left as it was."""
from __future__ import annotations

import json

import pytest

from ganforge import cli
from ganforge.errors import ConfigError
from ganforge.synthetic import export as augment_export

JSON_COMMANDS = {
    "eval": ["eval", "RUN", "--ref", "fashion-mnist"],
    "eval-audio": ["eval-audio", "RUN", "--data", "DIR"],
    "translate-eval": ["translate-eval", "RUN"],
    "eval-sr": ["eval-sr", "RUN", "--data", "photos:test"],
    "detect eval": ["detect", "eval", "DET", "--real", "fashion-mnist", "--fake", "RUN"],
    "bench modes": ["bench", "modes", "--preset", "NO-SUCH-PRESET"],
    "bench augment": ["bench", "augment", "--preset", "NO-SUCH-PRESET"],
    "bench gan-vs-diffusion": ["bench", "gan-vs-diffusion", "--minutes", "0"],
}


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_an_existing_json_is_refused_without_force(command, tmp_path, capsys):
    mine = tmp_path / "mine.json"
    mine.write_text("precious")
    assert cli.main([*JSON_COMMANDS[command], "--json", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already exists; pass --force" in err
    assert mine.read_text() == "precious"
    picture = tmp_path / "picture.png"
    picture.write_bytes(b"not json")
    assert cli.main([*JSON_COMMANDS[command], "--json", str(picture)]) == 2
    assert "use a .json file name" in capsys.readouterr().err and picture.read_bytes() == b"not json"
    # with --force the check lets it through: the command goes on and fails on its RUN instead
    assert cli.main([*JSON_COMMANDS[command], "--json", str(mine), "--force"]) == 2
    assert "already exists" not in capsys.readouterr().err and mine.read_text() == "precious"


def test_train_classifier_keeps_an_existing_recipe_file(tmp_path, capsys):
    (tmp_path / "c.json").write_text("precious")
    assert cli.main(["train-classifier", "fashion-mnist", "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "c.json already exists; pass --force" in capsys.readouterr().err
    assert (tmp_path / "c.json").read_text() == "precious" and not (tmp_path / "c.safetensors").exists()


def test_augment_force_does_not_replace_a_file_with_a_folder(tmp_path):
    notes = tmp_path / "notes.md"
    notes.write_text("my notes")
    with pytest.raises(ConfigError, match="is a file and --format folder writes a directory") as info:
        augment_export(None, notes, per_class=2, fmt="folder", force=True)  # refused before the run is used
    assert "\n" not in str(info.value) and notes.read_text() == "my notes"


def test_json_results_are_strict_json(tmp_path):
    """json.dumps writes NaN and Infinity, which strict parsers (JavaScript, jq) reject: every
    result file goes through atomic_write_json, which writes them as null."""
    import math

    from ganforge.atomic import atomic_write_json

    path = tmp_path / "r.json"
    atomic_write_json(path, {"psnr": math.inf, "rows": [{"x": math.nan, "y": 1.5}], "t": (-math.inf, 2)})
    text = path.read_text()
    assert "Infinity" not in text and "NaN" not in text
    assert json.loads(text) == {"psnr": None, "rows": [{"x": None, "y": 1.5}], "t": [None, 2]}
