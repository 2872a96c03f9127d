"""`--device` on the commands that run a trained generator: sample and translate had none (always
the CPU, with no way to use a GPU), while upscale, vocode and convert took it."""
import pytest

from ganforge import cli


@pytest.mark.parametrize("argv", [["sample", "r"], ["translate", "r", "in.png", "--out", "o.png"],
                                  ["upscale", "r", "in.png", "--out", "o.png"]])
def test_device_defaults_to_the_cpu(argv):
    assert cli.parse_args(argv).device == "cpu"
    assert cli.parse_args([*argv, "--device", "auto"]).device == "auto"


def test_a_device_this_machine_lacks_is_one_line(tmp_path, capsys):
    from conftest import random_dataset, tiny_config

    from ganforge import api

    run = tmp_path / "run"
    api.train(tiny_config(**{"train.steps": 1}), run, progress=False, dataset=random_dataset())
    assert cli.main(["sample", str(run), "--device", "tpu", "--out", str(tmp_path / "g.png")]) == 2
    assert "--device 'tpu' (device= in Python) is not a device" in capsys.readouterr().err
    assert not (tmp_path / "g.png").exists()
    assert cli.main(["sample", str(run), "--device", "cpu", "--out", str(tmp_path / "g.png")]) == 0
