"""A run's config.yaml edited by hand with a key given twice (a second train: block appended) is
refused on a resume, as a YAML passed to train is: it had resumed with that whole section at the
library's defaults (batch size 64 for 16, ...) and rewritten config.yaml so."""
from ganforge import cli

from conftest import tiny_config


def test_a_resume_refuses_a_key_given_twice_in_config_yaml(tmp_path, capsys):
    cfg = tiny_config(**{"train.steps": 2, "train.batch_size": 8})
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(cfg.to_yaml())
    run = tmp_path / "run"
    assert cli.main(["train", str(yaml_file), "--out", str(run), "--quiet"]) == 0
    saved = run / "config.yaml"
    before = saved.read_text() + "train:\n  steps: 4\n"
    saved.write_text(before)
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "'train' is given twice in one mapping" in err and "cannot resume" in err, err
    assert saved.read_text() == before  # nothing rewritten
