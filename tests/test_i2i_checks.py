"""Image-to-image runs (super-resolution, translation): ESRGAN network interpolation blends with
the weights the GAN stage started from, saved in its own run; the advice given to runs that
cannot evaluate during training (report, --checkpoint best, eval.every refusals) is runnable."""
from __future__ import annotations

import shlex
import shutil

import numpy as np
import pytest
import torch

from test_superres import sr_config


def _psnr_g(run_dir, checkpoint="latest"):
    from ganforge import api

    run = api.load(run_dir, checkpoint=checkpoint)
    return {k: v.clone() for k, v in run.ema_nets.get("G", run.objective.nets["G"]).state_dict().items()}


def _gan_config(tmp_path, psnr_run, **overrides):
    return sr_config(tmp_path, **{"sr.adv_weight": 0.005, "sr.init_from": str(psnr_run),
                                  "train.steps": 2, **overrides})


def _equal(a, b) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def psnr_run(tmp_path_factory):
    """A fresh x2 PSNR-stage run of 2 steps per test that moves it (module: data once)."""
    from ganforge import api

    root = tmp_path_factory.mktemp("i2i")
    api.train(sr_config(root, **{"train.steps": 2}), root / "psnr", progress=False)
    return root


def _copy_psnr(root, tmp_path):
    shutil.copytree(root / "psnr", tmp_path / "psnr")
    return tmp_path / "psnr"


def test_interp_blends_with_the_start_weights_saved_in_the_gan_run(psnr_run, tmp_path):
    from ganforge import api
    from ganforge.objectives import superres

    psnr = _copy_psnr(psnr_run, tmp_path)
    start = _psnr_g(psnr)
    gan_run = tmp_path / "gan"
    api.train(_gan_config(psnr_run, psnr), gan_run, progress=False)
    saved = gan_run / "checkpoints" / "sr_start_G.safetensors"
    assert saved.is_file()
    before = saved.read_bytes()

    # the PSNR run trains on: --interp 0 is still the network the GAN stage started from
    api.train(sr_config(psnr_run, **{"train.steps": 4}), psnr, resume=True, progress=False)
    assert not _equal(_psnr_g(psnr), start)
    gan = api.load(gan_run)
    assert gan.objective.start == {"run": str(psnr.resolve()), "checkpoint": "step_0000002", "step": 2}
    assert _equal(superres.interpolated_generator(gan, 0.0).state_dict(), start)
    gan_g = gan.ema_nets["G"].state_dict()
    mixed = superres.interpolated_generator(gan, 0.25).state_dict()
    torch.testing.assert_close(mixed["head.0.weight"], 0.75 * start["head.0.weight"] + 0.25 * gan_g["head.0.weight"])

    # a resumed GAN run keeps the file and the record of its first start
    api.train(_gan_config(psnr_run, psnr, **{"train.steps": 4}), gan_run, resume=True, progress=False)
    assert saved.read_bytes() == before
    gan = api.load(gan_run)
    assert gan.step == 4 and gan.objective.start["checkpoint"] == "step_0000002"
    assert _equal(superres.interpolated_generator(gan, 0.0).state_dict(), start)

    # the PSNR run gone (or replaced): the GAN run is self-contained
    shutil.rmtree(psnr)
    image = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    G0 = superres.interpolated_generator(gan, 0.0)
    np.testing.assert_array_equal(api.load(gan_run).upscale(image, interp=0.0, tile=0),
                                  superres.upscale_image(G0, image, 2, tile=0))
    # ... and it resumes: the checkpoint holds G, the record and the start weights
    api.train(_gan_config(psnr_run, psnr, **{"train.steps": 6}), gan_run, resume=True, progress=False)
    gan = api.load(gan_run)
    assert gan.step == 6 and gan.objective.start["checkpoint"] == "step_0000002"
    assert saved.read_bytes() == before


def test_interp_of_a_run_without_saved_start_weights_warns_it_uses_the_latest(psnr_run, tmp_path, monkeypatch):
    from ganforge import api
    from ganforge.objectives import superres

    psnr = _copy_psnr(psnr_run, tmp_path)
    gan_run = tmp_path / "gan"
    with monkeypatch.context() as m:  # a run trained before the start weights were kept
        m.setattr(superres.SuperResolution, "extra_state", lambda self: {})
        api.train(_gan_config(psnr_run, psnr), gan_run, progress=False)
    assert not (gan_run / "checkpoints" / "sr_start_G.safetensors").exists()
    api.train(sr_config(psnr_run, **{"train.steps": 4}), psnr, resume=True, progress=False)
    # resumed with this version: it must not record the PSNR run's newer weights as its start
    api.train(_gan_config(psnr_run, psnr, **{"train.steps": 4}), gan_run, resume=True, progress=False)
    assert not (gan_run / "checkpoints" / "sr_start_G.safetensors").exists()
    gan = api.load(gan_run)
    with pytest.warns(UserWarning, match=r"^--interp: this run does not record the weights it started from .*"
                                         r"latest checkpoint of \S+psnr \(step_0000004\), which may have trained on"):
        G0 = superres.interpolated_generator(gan, 0.0)
    assert gan.objective.start is None
    assert _equal(G0.state_dict(), _psnr_g(psnr))


def test_model_folder_carries_the_start_weights_and_an_older_one_uses_the_recorded_checkpoint(psnr_run, tmp_path):
    """A model folder carries the start weights (Objective.inference_files): --interp on it needs
    no PSNR run. One exported before it did blends with the PSNR checkpoint the record names,
    never a newer one, or refuses in one line."""
    import json

    from ganforge import api
    from ganforge.errors import CheckpointError
    from ganforge.objectives import superres
    from ganforge.serve.export import export_folder

    psnr = _copy_psnr(psnr_run, tmp_path)
    start = _psnr_g(psnr)
    gan_run = tmp_path / "gan"
    api.train(_gan_config(psnr_run, psnr), gan_run, progress=False)
    folder = export_folder(api.load(gan_run), tmp_path / "model")
    assert (folder / "sr_start_G.safetensors").is_file()
    older = export_folder(api.load(gan_run), tmp_path / "older")  # as exported before the files
    (older / "sr_start_G.safetensors").unlink()
    meta = json.loads((older / "config.json").read_text())
    del meta["files"]
    meta["config"]["sr"]["init_from"] = str(psnr)  # an older export also kept the absolute path
    (older / "config.json").write_text(json.dumps(meta))

    api.train(sr_config(psnr_run, **{"train.steps": 4}), psnr, resume=True, progress=False)
    for model in (folder, older):
        assert _equal(superres.interpolated_generator(api.load(model), 0.0).state_dict(), start)
    for name in ("step_0000000", "step_0000002"):  # pruned, as keep_checkpoints would
        shutil.rmtree(psnr / "checkpoints" / name, ignore_errors=True)
    with pytest.raises(CheckpointError, match=r"^--interp blends with the weights this run started from "
                                              r"\(step_0000002 of \S+, step 2\).*use the GAN run directory") as err:
        superres.interpolated_generator(api.load(older), 0.0)
    assert "\n" not in str(err.value)
    shutil.rmtree(psnr)
    assert _equal(superres.interpolated_generator(api.load(folder), 0.0).state_dict(), start)


# ----------------------------------------------------------------------------- advice


def test_report_points_runs_evaluated_after_training_to_their_command(tmp_path):
    from ganforge.report.page import _metrics
    from ganforge.report.run import Run

    def advice(objective):
        return _metrics(Run(tmp_path, {"objective": objective}, [], []))

    sr = advice("superres")
    assert "ganforge eval-sr RUN --data photos:test" in sr and "set eval.every" not in sr
    for objective in ("pix2pix", "cyclegan"):
        page = advice(objective)
        assert "ganforge translate-eval RUN" in page and "set eval.every" not in page
    assert "set eval.every and eval.metrics" in advice("unconditional")


def _write_config(run_dir, every):
    (run_dir / "checkpoints" / "step_0000004").mkdir(parents=True)
    (run_dir / "config.yaml").write_text(f"objective: pix2pix\neval:\n  every: {every}\n")


def test_missing_best_checkpoint_names_eval_every_only_for_a_run_that_set_it(tmp_path):
    from ganforge.errors import CheckpointError
    from ganforge.training import checkpoint as ckpt

    _write_config(tmp_path / "a", 0)
    with pytest.raises(CheckpointError) as err:
        ckpt.find(tmp_path / "a", "best")
    assert "eval.every" not in str(err.value)
    assert "use --checkpoint latest or a step_XXXXXXX name" in str(err.value)
    _write_config(tmp_path / "b", 5)
    with pytest.raises(CheckpointError, match=r"no 'best' checkpoint yet \(one is marked by the evaluations every "
                                              r"eval.every=5 steps\); use --checkpoint latest"):
        ckpt.find(tmp_path / "b", "best")


def _hint(message: str, command: str) -> list[str]:
    start = message.index(f"ganforge {command}")
    words = shlex.split(message[start:].replace("(or", "\n").splitlines()[0])
    return [w.replace("RUN", "somerun") for w in words[1:]]


def test_eval_every_refusals_name_commands_that_parse(tmp_path):
    from ganforge import api
    from ganforge.cli import build_parser
    from ganforge.errors import ConfigError
    from ganforge.objectives import OBJECTIVES
    from ganforge.config import from_dict

    with pytest.raises(ConfigError) as err:
        api.build(sr_config(tmp_path, **{"eval.every": 10}))
    argv = _hint(str(err.value), "eval-sr")
    assert argv[:4] == ["eval-sr", "somerun", "--data", "photos:test"]
    assert build_parser().parse_args(argv).data == "photos:test"  # --data is required: it parses

    raw = OBJECTIVES["pix2pix"].example_config(tmp_path / "p2p")
    with pytest.raises(ConfigError) as err:
        api.build(from_dict({**raw, "eval": {"every": 5}}))
    build_parser().parse_args(_hint(str(err.value), "translate-eval"))  # runnable as written


def test_super_resolution_folders_name_broken_links_instead_of_dropping_them(tmp_path):
    """A broken link among high-resolution images is named (skipped with a warning in training,
    refused where every file is asked for), as image and pair folders name theirs."""
    from PIL import Image

    from ganforge.data.superres import image_files, load_images
    from ganforge.errors import DataError

    folder = tmp_path / "hr"
    folder.mkdir()
    for i in range(2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
    (folder / "gone.png").symlink_to(tmp_path / "nowhere.png")
    assert [p.name for p in image_files(folder)] == ["0.png", "1.png", "gone.png"]
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable file .*gone\.png"):
        images, names = load_images(f"folder:{folder}", skip_unreadable=True)
    assert names == ["0.png", "1.png"] and len(images) == 2
    with pytest.raises(DataError, match=r"gone\.png \(broken link to .*nowhere\.png\)"):
        load_images(f"folder:{folder}")
