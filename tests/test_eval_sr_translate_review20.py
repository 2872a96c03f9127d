"""Review 20 of eval-sr and translate-eval: PSNR capped at 100 dB on an exact image (named in a
warning, with the mean without such images), the weights eval-sr used, the "--n only lowers n"
note without --n, and translate-eval's own hint for an unreadable --data folder."""
from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge import api, cli
from ganforge.config import apply_overrides, from_dict
from ganforge.errors import DataError
from ganforge.metrics import Extractor
from ganforge.metrics.paired import PSNR_MAX, evaluate_translation, evaluate_unpaired, format_translation


def cli_main(capsys, *argv) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def textured(size=(48, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC))


FLAT = np.full((48, 48, 3), 128, np.uint8)  # bicubic reproduces it exactly: 100 dB


# ----------------------------------------------------------------------------- 1: the PSNR cap


def test_evaluate_sr_names_the_capped_image_and_gives_the_mean_without_it():
    from ganforge.metrics.superres import bicubic_image, evaluate_sr, lr_image, psnr_y

    hr = [textured(), FLAT]

    def model(lr):  # a little better than bicubic on the textured image, 1 level off on the flat one
        up = bicubic_image(lr, 4).astype(np.int16)
        if (lr == lr[0, 0]).all():
            return (up + 1).astype(np.uint8)
        return np.clip((up + hr[0][:up.shape[0], :up.shape[1]]) / 2, 0, 255).round().astype(np.uint8)

    warnings: list[str] = []
    table = evaluate_sr(hr, 4, {"model": model}, names=["tex.png", "flat.png"], warnings=warnings)
    # the headline mean keeps the capped 100 dB (the convention) and bicubic "wins" by it
    assert table["bicubic"]["psnr_y"] > table["model"]["psnr_y"]
    # without the flat image the model is ahead, as it is on every real difference
    assert table["model"]["psnr_y_uncapped"] > table["bicubic"]["psnr_y_uncapped"]
    lr = lr_image(hr[0], 4)
    for name, fn in (("bicubic", lambda x: bicubic_image(x, 4)), ("model", model)):
        # the uncapped mean is the textured image's PSNR alone
        assert table[name]["psnr_y_uncapped"] == pytest.approx(psnr_y(fn(lr), hr[0], 4), abs=1e-12)
    assert table["bicubic"]["psnr_y"] == pytest.approx((table["bicubic"]["psnr_y_uncapped"] + PSNR_MAX) / 2)
    assert len(warnings) == 1 and "\n" not in warnings[0]
    assert "capped at 100 dB" in warnings[0] and "1 of 2 images" in warnings[0]
    assert "(flat.png)" in warnings[0] and "tex.png" not in warnings[0]
    assert "psnr_y_uncapped is the mean PSNR over the other 1 image" in warnings[0]
    # no image at the cap: no extra key, no warning
    quiet: list[str] = []
    assert "psnr_y_uncapped" not in evaluate_sr([hr[0]], 4, {"model": model}, warnings=quiet)["model"]
    assert quiet == []


def fake_run(translate):
    return SimpleNamespace(run_dir=Path("runs/fake"), checkpoint=Path("step_1"), step=1, ema_weights=True,
                           config=SimpleNamespace(data=SimpleNamespace(name="folder:x")),
                           translate=translate)


def test_translate_eval_of_a_grayscale_held_out_image_says_the_baseline_hit_the_cap():
    torch.manual_seed(0)
    b = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    b[1] = 90  # a gray target: its grayscale input replicated to RGB is exact
    a = (b.float() * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    a = a.round().clamp(0, 255).to(torch.uint8)
    targets = b.float() / 127.5 - 1

    def translate(x, ema=True):  # the target, with a little error: better than the baseline
        i = translate.i
        translate.i += len(x)
        return (targets[i:i + len(x)] + 0.02).clamp(-1, 1)

    translate.i = 0
    r = evaluate_translation(fake_run(translate), a, b, baseline_is="the grayscale input replicated to RGB")
    assert r["baseline"]["psnr"] > r["model"]["psnr"] and r["gain_db"] < 0  # the cap reverses it
    assert r["baseline"]["psnr_uncapped"] < r["model"]["psnr_uncapped"] and r["gain_db_uncapped"] > 0
    assert r["gain_db_uncapped"] == pytest.approx(r["model"]["psnr_uncapped"] - r["baseline"]["psnr_uncapped"])
    assert len(r["warnings"]) == 1 and "1 of 3 held-out pairs" in r["warnings"][0]
    assert "(held-out pair 1)" in r["warnings"][0]
    json.dumps(r)
    text = format_translation({"task": "colorize", **r})  # as pix2pix's translate_eval returns it
    lines = text.splitlines()
    assert lines[1].endswith("psnr_uncapped (dB)")
    assert lines[3].split()[-1] == f"{r['baseline']['psnr_uncapped']:.2f}"
    assert f"({r['gain_db_uncapped']:+.2f} dB without the pairs that reach the cap)" in text
    assert lines[-1].startswith("warning: PSNR is capped at 100 dB")


# ----------------------------------------------------------------------------- 1 and 2: eval-sr


@pytest.fixture(scope="module")
def sr_run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("sr20")
    hr = root / "hr"
    hr.mkdir()
    for i in range(2):
        Image.fromarray(textured((44 + 4 * i, 40), seed=i)).save(hr / f"{i}.png")
    raw = {"objective": "superres", "data": {"name": f"folder:{hr}", "channels": 3},
           "sr": {"scale": 2, "arch": "srresnet", "width": 8, "blocks": 1, "crop": 16},
           "model": {"d_width": 4},
           "train": {"steps": 2, "batch_size": 2, "log_every": 1, "sample_every": 2, "checkpoint_every": 2,
                     "n_sample_grid": 2, "device": "cpu", "seed": 0, "ema_decay": 0.9}}
    api.train(from_dict(apply_overrides(raw, [])), root / "sr", progress=False)
    evaluation = root / "eval"
    evaluation.mkdir()
    Image.fromarray(textured((40, 40), seed=5)).save(evaluation / "tex.png")
    Image.fromarray(FLAT).save(evaluation / "flat.png")
    return root


def test_eval_sr_warns_of_the_capped_image_and_records_the_weights(sr_run, capsys):
    out_json = sr_run / "a.json"
    code, out, err = cli_main(capsys, "eval-sr", sr_run / "sr", "--data", sr_run / "eval", "--json", out_json)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("; EMA weights")
    assert lines[1].split()[:4] == ["method", "psnr_y", "(dB)", "ssim_y"]
    assert "psnr_y_uncapped (dB)" in lines[1]
    warning = [line for line in lines if line.startswith("warning: PSNR is capped at 100 dB")]
    assert len(warning) == 1 and "1 of 2 images" in warning[0] and "(flat.png)" in warning[0]
    payload = json.loads(out_json.read_text())
    assert payload["ema"] is True and payload["psnr_max"] == PSNR_MAX
    assert payload["warnings"] == [warning[0].removeprefix("warning: ")]
    rows = payload["results"]
    assert set(rows) == {"bicubic", "sr"}
    for row in rows.values():  # the headline mean keeps the 100 dB of one image, the other mean not
        assert {"psnr_y", "ssim_y", "psnr_y_uncapped"} <= set(row)
    assert rows["bicubic"]["psnr_y"] == pytest.approx((rows["bicubic"]["psnr_y_uncapped"] + 100) / 2)
    assert math.isfinite(rows["sr"]["psnr_y_uncapped"])

    raw_json = sr_run / "b.json"
    code, out, err = cli_main(capsys, "eval-sr", sr_run / "sr", "--data", sr_run / "eval", "--no-ema",
                              "--json", raw_json)
    assert code == 0, err
    assert out.splitlines()[0].endswith("; raw weights (no EMA)")
    assert json.loads(raw_json.read_text())["ema"] is False


def test_eval_sr_help_documents_the_cap(capsys):
    with pytest.raises(SystemExit):
        cli.main(["eval-sr", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"capped at {PSNR_MAX:g} dB" in text and "psnr_y_uncapped" in text
    with pytest.raises(SystemExit):
        cli.main(["translate-eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"capped at {PSNR_MAX:g} dB" in text and "psnr_uncapped" in text


# ----------------------------------------------------------------------------- 3: --n not given


class MeanColour(Extractor):
    name = "mean-colour"

    def _forward(self, images):
        x = images.float().expand(-1, 3, -1, -1).flatten(2)
        return torch.cat([x.mean(2), x.std(2)], 1), None


def test_the_n_note_is_only_given_when_n_was():
    torch.manual_seed(0)
    data = SimpleNamespace(test_a=torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8),
                           test_b=torch.randint(0, 256, (3, 3, 8, 8), dtype=torch.uint8), source="unused")
    run = fake_run(lambda x, direction, ema: -x)
    note = "--n only lowers n"
    without = evaluate_unpaired(run, data, extractor=MeanColour())["warnings"]
    assert without and not any(note in w for w in without)  # small sets are warned of, n is not
    given = evaluate_unpaired(run, data, extractor=MeanColour(), limit=50)["warnings"]
    assert any(w.startswith(f"{note}: every held-out image was used (3 A, 3 B)") for w in given)


# ----------------------------------------------------------------------------- 4: the folder's hint


@pytest.fixture(scope="module")
def colorize_run(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("col20")
    photos = root / "photos"
    photos.mkdir()
    for i in range(6):
        Image.fromarray(textured((16, 16), seed=i)).save(photos / f"{i}.png")
    raw = {"objective": "pix2pix", "data": {"name": f"folder:{photos}", "resolution": 16, "channels": 3},
           "model": {"g_width": 4, "d_width": 4}, "translate": {"task": "colorize", "d_layers": 1},
           "train": {"steps": 1, "batch_size": 2, "log_every": 1, "sample_every": 1, "checkpoint_every": 1,
                     "n_sample_grid": 2, "device": "cpu", "seed": 0}}
    api.train(from_dict(apply_overrides(raw, [])), root / "run", progress=False)
    return root


def test_translate_eval_of_an_unreadable_folder_names_its_own_option(colorize_run, capsys):
    bad = colorize_run / "nonimg"
    bad.mkdir()
    (bad / "fake.png").write_text("not an image")
    code, out, err = cli_main(capsys, "translate-eval", colorize_run / "run", "--data", f"folder:{bad}")
    assert code == 2 and err.count("\n") == 1, err
    assert "none readable (e.g. fake.png" in err and "pass --data folder:PATH" in err, err
    assert "data.name" not in err and "ganforge train" not in err, err
    # training keeps its own advice
    from ganforge.data import load_dataset

    with pytest.raises(DataError, match=r"set data.name=folder:PATH to a folder of images \(e.g. ganforge train"):
        load_dataset(f"folder:{bad}")
