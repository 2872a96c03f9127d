"""Review of stopping ``upscale`` and ``translate`` part way through a folder: SIGTERM leaves as
Ctrl-C does (no hidden half-written temporary, exit 143), either signal says how many images were
written and how to finish, ``--skip-existing`` finishes the folder without redoing it; and
``translate-eval`` of a paired run refuses the FID/KID options it would ignore."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT

from ganforge import api, cli, provenance
from ganforge.config import apply_overrides, from_dict
from ganforge.signals import Terminated


def tiny(raw, **overrides):
    raw["train"] = {"steps": 1, "batch_size": 2, "log_every": 1, "sample_every": 1, "checkpoint_every": 1,
                    "n_sample_grid": 2, "device": "cpu", "seed": 0, "ema_decay": 0.0}
    return from_dict(apply_overrides(raw, [f"{k}={v}" for k, v in overrides.items()]))


def noise(folder, n, size=8):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{"upscale": a x2 SRResNet, "translate": a denoiser}, one training step each."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("stop")
    photos = f"folder:{noise(root / 'photos', 8, size=16)}"
    sr = tiny({"objective": "superres", "data": {"name": photos, "channels": 3}, "model": {"d_width": 4},
               "sr": {"scale": 2, "arch": "srresnet", "width": 4, "blocks": 1, "crop": 16}})
    dn = tiny({"objective": "pix2pix", "data": {"name": photos, "resolution": 16, "channels": 3},
               "model": {"g_width": 4, "d_width": 4}, "translate": {"d_layers": 1}},
              **{"translate.task": "denoise", "translate.holdout": 0.25})
    api.train(sr, root / "sr", progress=False)
    api.train(dn, root / "dn", progress=False)
    return {"upscale": root / "sr", "translate": root / "dn"}


def pngs(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".png") and not p.name.startswith("."))


def cli_main(capsys, *argv):
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# ----------------------------------------------------------------------------- 1: SIGTERM


@pytest.mark.parametrize("command", ["upscale", "translate"])
def test_sigterm_mid_folder_leaves_as_ctrl_c_does_and_says_how_to_finish(runs, command, tmp_path, capsys):
    src, out, n = noise(tmp_path / "in", 100), tmp_path / "out", 100
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", command, str(runs[command]), str(src),
                             "--out", str(out)], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out.is_dir() and pngs(out)) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)  # the first image is written, the rest are not
    _, err = proc.communicate(timeout=60)
    done = len(pngs(out))
    assert proc.returncode == 143, err
    assert 0 < done < n, "the whole folder was written before SIGTERM came: give it more images"
    assert err == (f"ganforge: interrupted (SIGTERM); {done} of {n} image(s) written to {out}: rerun "
                   f"the same command with --skip-existing to write the other {n - done}\n")
    assert sorted(p.name for p in out.iterdir()) == pngs(out)  # no hidden temporary left behind

    # 2: the rerun finishes the folder, redoing none of the images written
    before = {name: (out / name).stat().st_mtime_ns for name in pngs(out)}
    code, said, err = cli_main(capsys, command, runs[command], src, "--out", out, "--skip-existing")
    assert code == 0, err
    assert f"ganforge: skipping {done} of {n} image(s) whose output already exists (--skip-existing)" in said
    assert len(pngs(out)) == n and all((out / name).stat().st_mtime_ns == t for name, t in before.items())


# ----------------------------------------------------------------------------- 2: Ctrl-C, --skip-existing


def stop_at_third_image(monkeypatch, exc):
    """provenance.save raises ``exc`` once it has written the third image's temporary file."""
    save, calls = provenance.save, []

    def stopping(array, path, *args, **kwargs):
        embedded = save(array, path, *args, **kwargs)
        calls.append(path)
        if len(calls) == 3:
            assert path.exists() and path.name.startswith(".")  # the temporary, half way
            raise exc
        return embedded

    monkeypatch.setattr(provenance, "save", stopping)


@pytest.mark.parametrize("command", ["upscale", "translate"])
def test_ctrl_c_says_what_was_written_and_skip_existing_finishes(runs, command, tmp_path, capsys, monkeypatch):
    src, out, run = noise(tmp_path / "in", 5), tmp_path / "out", runs[command]
    handler = signal.getsignal(signal.SIGTERM)
    stop_at_third_image(monkeypatch, KeyboardInterrupt())
    code, _, err = cli_main(capsys, command, run, src, "--out", out)
    assert code == 130
    assert err == (f"ganforge: interrupted; 2 of 5 image(s) written to {out}: rerun the same command "
                   f"with --skip-existing to write the other 3\n")
    assert sorted(p.name for p in out.iterdir()) == ["000.png", "001.png"]
    assert signal.getsignal(signal.SIGTERM) is handler  # SIGTERM's own handler again after it
    monkeypatch.undo()

    code, _, err = cli_main(capsys, command, run, src, "--out", out)  # the rerun says what to pass
    assert code == 2 and err.count("\n") == 1
    assert "000.png already exists (2 of the 5 outputs do); pass --skip-existing to write only the others" in err
    code, _, err = cli_main(capsys, command, run, src, "--out", out, "--skip-existing", "--force")
    assert code == 2 and "pass one of the two" in err and err.count("\n") == 1
    code, said, err = cli_main(capsys, command, run, src, "--out", out, "--skip-existing")
    assert code == 0, err
    assert "skipping 2 of 5 image(s) whose output already exists" in said and pngs(out) == pngs(src)
    code, said, _ = cli_main(capsys, command, run, src, "--out", out, "--skip-existing")
    assert code == 0 and f"nothing left to {command} into {out}" in said

    # an interrupted --force: the images it had not redone yet are the old ones, and it says so
    stop_at_third_image(monkeypatch, Terminated())
    code, _, err = cli_main(capsys, command, run, src, "--out", out, "--force")
    assert code == 143
    assert err == (f"ganforge: interrupted (SIGTERM); 2 of 5 image(s) written to {out}; the other 3 are "
                   f"older outputs: rerun with --force to redo them all\n")
    (out / "004.png").unlink()  # one of them missing as well
    monkeypatch.undo()
    stop_at_third_image(monkeypatch, Terminated())
    code, _, err = cli_main(capsys, command, run, src, "--out", out, "--force")
    assert code == 143 and err.endswith("; 2 of the other 3 are older outputs: rerun with --force to redo them "
                                        "all, or with --skip-existing in place of --force to write only the "
                                        "1 missing\n")


# ----------------------------------------------------------------------------- 3: translate-eval


def test_translate_eval_of_a_paired_run_refuses_the_fid_options(runs, capsys, monkeypatch):
    from ganforge.metrics import paired

    def never(*args, **kwargs):
        raise AssertionError("evaluated, the option ignored")

    monkeypatch.setattr(paired, "evaluate_translation", never)
    code, _, err = cli_main(capsys, "translate-eval", runs["translate"], "--extractor", "fashion-mnist-cnn")
    assert code == 2 and err.count("\n") == 1
    assert "--extractor: the features of FID/KID, which only unpaired runs use" in err
    assert "(objective=pix2pix) is scored by PSNR/SSIM" in err and err.endswith("drop --extractor\n")
    code, _, err = cli_main(capsys, "translate-eval", runs["translate"], "--inception-weights", "w.pth")
    assert code == 2 and err.endswith("drop --inception-weights\n")
