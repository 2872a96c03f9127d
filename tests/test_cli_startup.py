"""The command line starts without torch: building the parser of every command, as `ganforge
--help`, `ganforge presets` and every usage error do, imports no heavy module (the detect
commands' sources, imported at the top of their module, had pulled torch in through the
ganforge.detect package: 4-5 s for `ganforge --help` on 2 cores, against 0.3 s)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_building_every_commands_parser_imports_no_torch():
    code = ("import sys; from ganforge.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'matplotlib', 'PIL') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]", proc.stdout


def test_the_detect_package_still_offers_its_names():
    from ganforge import detect
    from ganforge.detect import Recipe, detector

    assert detect.Recipe is Recipe is detector.Recipe
    assert detect.train is detector.train and callable(detect.blur_jpeg) and callable(detect.average_precision)
    assert set(detect.__all__) <= set(dir(detect))
    try:
        detect.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_provenance_of_a_file_imports_no_torch(tmp_path):
    """`ganforge provenance FILE` reads PNG text chunks: the ganforge.data package (for its image
    extensions) had imported every dataset source, and torch with them (3 s of its 3.2 s)."""
    from PIL import Image

    from ganforge import provenance

    image = tmp_path / "x.png"
    provenance.save(Image.new("L", (4, 4)), image, provenance.record(operation="sample", seed=3))
    code = ("import sys; from ganforge import cli; "
            f"assert cli.main(['provenance', {str(tmp_path)!r}]) == 0; print('torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == "False" and any("seed" in line and "3" in line for line in lines), proc.stdout


def test_the_data_package_lists_and_loads_its_sources_when_first_asked():
    code = ("import sys, ganforge.data as d, ganforge.data.imageio; before = 'torch' in sys.modules; "
            "import ganforge.data.folder; print(before, d.DATASET_NAMES == d.dataset_names()[:6], d.DATASET_NAMES)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr
    # ganforge.data.folder imported first (as ganforge.api does) does not change the listed order
    assert proc.stdout.strip() == ("False True ['fashion-mnist', 'mnist', 'cifar10', 'folder:PATH', 'toy:ring8', "
                                   "'toy:grid25']"), proc.stdout
