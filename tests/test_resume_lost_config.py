"""A run whose config.yaml was deleted by hand while its checkpoints are there is not called
"half-deleted" with --force as the fix (which deletes the trained checkpoints): the refusal names
the checkpoint and how to restore config.yaml from it, and that command works."""
import shlex
import subprocess
import sys

from ganforge import cli

from conftest import tiny_config


def test_a_lost_config_yaml_is_restored_from_the_checkpoint_not_forced_away(tmp_path, capsys):
    yaml_file = tmp_path / "c.yaml"
    yaml_file.write_text(tiny_config(**{"train.steps": 2}).to_yaml())
    run = tmp_path / "run"
    assert cli.main(["train", str(yaml_file), "--out", str(run), "--quiet"]) == 0
    (run / "config.yaml").unlink()
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "4", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--force would delete it" in err and "deletion was interrupted" not in err, err
    assert (run / "checkpoints" / "step_0000002").is_dir()
    command = err.split("from that checkpoint: ", 1)[1]
    argv = shlex.split(command)
    assert argv[:2] == ["python", "-c"]
    subprocess.run([sys.executable, "-c", argv[2]], check=True)
    assert cli.main(["train", "--resume", "--out", str(run), "--steps", "4", "--quiet"]) == 0
