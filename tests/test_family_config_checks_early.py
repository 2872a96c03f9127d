"""Config-only refusals of StyleGAN2 and LAPGAN come before the data is read (a 48 px StyleGAN2
run had decoded the whole folder and warned about its image sizes, then been refused for its
resolution), with the same one line from check_run and from a loaded run's constructor; and
lapgan.levels=1 is refused for what LAPGAN needs, not for a coarsest-size rule it meets."""
from __future__ import annotations

import json

import pytest

from ganforge import cli
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import ConfigError
from ganforge.objectives.base import Objective, check_training
from ganforge.objectives.lapgan import LAPGAN, level_sizes
from ganforge.objectives.stylegan2 import StyleGAN2

CASES = [
    (StyleGAN2, ["data.resolution=48"],
     "objective=stylegan2 needs data.resolution a power of two >= 8 (8, 16, 32, 64, ...), got 48; use 32 or 64"),
    (LAPGAN, ["data.resolution=40", "lapgan.levels=4"],
     "lapgan.levels=4 does not fit data.resolution=40: every level halves it, the coarsest must be an even "
     "size >= 4; use lapgan.levels in [2, 3]"),
    (LAPGAN, ["data.resolution=32", "lapgan.levels=1"],
     "lapgan.levels=1 does not fit: LAPGAN needs at least 2 levels (a GAN on the coarsest image, then one "
     "residual level per doubling); use lapgan.levels in [2, 3, 4]"),
]


@pytest.mark.parametrize("cls, overrides, message", CASES)
def test_resolution_refusals_come_before_the_data_is_read(tmp_path, image_folder, monkeypatch, capsys,
                                                          cls, overrides, message):
    """image_folder's 20x24 images are smaller than the resolution: reading them warns."""
    reads = []
    original = Objective.load_data.__func__

    def recording(klass, cfg, *args, **kwargs):
        reads.append(cfg.data.name)
        return original(klass, cfg, *args, **kwargs)

    monkeypatch.setattr(Objective, "load_data", classmethod(recording))
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(cls.example_config(tmp_path / "data")))
    out = tmp_path / "run"
    rc = cli.main(["train", str(path), f"data.name=folder:{image_folder}", *overrides, "--steps", "2",
                   "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == f"ganforge: error: {message}\n"  # one line, no data warning before it
    assert "smaller than" not in err and reads == []
    assert not out.exists()


@pytest.mark.parametrize("cls, overrides, message", CASES)
def test_check_run_and_the_constructor_say_the_same_line(tmp_path, cls, overrides, message):
    cfg = from_dict(apply_overrides(cls.example_config(tmp_path / "data"), overrides))
    with pytest.raises(ConfigError) as early:
        check_training(cfg, 1, new=True)
    with pytest.raises(ConfigError) as built:  # a loaded run is built without check_run
        cls(cfg, {})
    assert str(early.value) == str(built.value) == message


def test_too_few_levels_name_what_lapgan_needs():
    for resolution, levels, fix in [(32, 1, "use lapgan.levels in [2, 3, 4]"),
                                    (64, 0, "use lapgan.levels in [2, 3, 4, 5]"),
                                    (6, 1, "use lapgan.levels=2 or 3 with data.resolution=32 (or 16, 64)")]:
        with pytest.raises(ConfigError) as info:
            level_sizes(resolution, levels)
        text = str(info.value)
        assert text.startswith(f"lapgan.levels={levels} does not fit: LAPGAN needs at least 2 levels")
        assert text.endswith(fix) and "\n" not in text
        assert "coarsest must be" not in text  # one level's coarsest is the image itself: that rule holds
    assert level_sizes(32, 2) == [16, 32] and level_sizes(16, 3) == [4, 8, 16]
    # the coarsest-size rule is what it says: even (level 1's D needs twice it divisible by 4), >= 4
    for resolution, levels in [(40, 4), (32, 5)]:  # coarsest 5 (odd), 2 (< 4)
        with pytest.raises(ConfigError, match="the coarsest must be an even size >= 4"):
            level_sizes(resolution, levels)
    assert level_sizes(24, 3) == [6, 12, 24]
