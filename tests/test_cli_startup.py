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
    # its modules too, in a fresh process (importing the names had bound them as attributes)
    code = "import ganforge.detect as d; print(d.model.DetectorCNN.__name__, d.detector.Recipe.__name__)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.stdout.strip() == "DetectorCNN Recipe", proc.stderr
    try:
        detect.not_a_name  # noqa: B018
    except AttributeError as exc:
        assert "not_a_name" in str(exc)
    else:
        raise AssertionError("an unknown name must raise AttributeError")


def test_provenance_reads_files_and_folders_without_torch(tmp_path):
    """`ganforge provenance` only reads image files: it had imported the datasets' package, and
    with it torch (about 3 s of 3.5 s on 2 cores), for the set of image extensions."""
    from PIL import Image

    from ganforge import provenance

    folder = tmp_path / "images"
    folder.mkdir()
    assert provenance.save(Image.new("RGB", (8, 8)), folder / "a.png", provenance.record(operation="sample"))
    code = ("import sys; from ganforge import cli; code = cli.main(['provenance', sys.argv[1], sys.argv[2]]); "
            "print(code, 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code, str(folder / "a.png"), str(folder)], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, PYTHONPATH=str(ROOT / "src")))
    assert proc.returncode == 0, proc.stderr
    assert "sample" in proc.stdout and proc.stdout.strip().splitlines()[-1] == "0 False", proc.stdout


def test_the_image_reader_keeps_its_earlier_name():
    from ganforge import imageio
    from ganforge.data import imageio as earlier

    assert earlier.read_array is imageio.read_array and earlier.EXTENSIONS is imageio.EXTENSIONS
