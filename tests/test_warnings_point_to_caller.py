"""ganforge's warnings name the user's line, not one of ganforge's: a notebook showed
".../ganforge/data/folder.py:355: UserWarning: skipped 1 unusable file ..." (and, for the
hand-counted stack levels, a line of objectives/base.py or config.py). They are GanforgeWarning, so
that a script can filter them, and the CLI still prints them as one line each."""
import warnings

import ganforge
from ganforge import api, cli

from conftest import tiny_config


def _folder_with_a_broken_file(image_folder):
    (image_folder / "cats" / "broken.png").write_bytes(b"not a png")
    return image_folder


def test_a_data_warning_names_the_callers_line_and_is_a_ganforge_warning(image_folder, tmp_path):
    root = _folder_with_a_broken_file(image_folder)
    cfg = tiny_config(**{"data.name": f"folder:{root}", "data.channels": 3, "train.steps": 1,
                         "train.sample_every": 1, "train.checkpoint_every": 1})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.train(cfg, tmp_path / "run", progress=False)  # the line a user should be shown
    ours = [w for w in caught if "skipped 1 unusable" in str(w.message)]
    assert ours, [str(w.message) for w in caught]
    assert ours[0].category is ganforge.GanforgeWarning and issubclass(ours[0].category, UserWarning)
    assert ours[0].filename == __file__, (ours[0].filename, ours[0].lineno)


def test_the_cli_still_prints_it_as_one_line(image_folder, tmp_path, capsys):
    root = _folder_with_a_broken_file(image_folder)
    cfg = tiny_config(**{"data.channels": 3, "train.steps": 1, "train.sample_every": 1,
                         "train.checkpoint_every": 1})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(cfg.to_yaml())
    assert cli.main(["train", str(yaml_file), f"data.name=folder:{root}", "--out", str(tmp_path / "run"),
                     "--quiet"]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "skipped 1 unusable" in line]
    assert len(lines) == 1 and lines[0].startswith("ganforge: warning: skipped"), err
    assert "GanforgeWarning" not in err and "warn(" not in err, err
