"""Review fixes of the style commands (mix, project, edit): mix in bounded chunks and with its
class recorded, edit --latent with the projection's noise maps, edit's provenance, Ctrl-C in
project."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import ganforge
from ganforge import api, cli, provenance
from ganforge.config import from_dict
from ganforge.objectives import stylegan2 as sg2
from ganforge.objectives import _stylegan2_project as projector
from conftest import brightness_logits


@pytest.fixture
def noisy_generator(monkeypatch):
    """Runs loaded with per-layer noise strength 0.5: the example run trains too briefly for its
    noise (strength 0 at the start) to show in the image."""
    load = api.load

    def loaded(*args, **kwargs):
        run = load(*args, **kwargs)
        for nets in (run.ema_nets, run.objective.nets):
            for name, p in nets["G"].named_parameters():
                if name.endswith("noise_strength"):
                    p.data.fill_(0.5)
        return run

    monkeypatch.setattr(api, "load", loaded)


def test_mix_synthesizes_in_chunks_with_the_unchunked_result(style_run, monkeypatch):
    """The whole grid had been one synthesis call: memory grew with its image count (3.9 GB for
    80x80 at 32 px). A grid of at most MIX_CHUNK images per part is the same calls as before."""
    run = ganforge.load(style_run)
    rows, cols = [1, 2, 3], [4, 5, 6, 7]
    monkeypatch.setattr(sg2, "MIX_CHUNK", 10_000)
    whole = run.mix(rows, cols, "0-1")
    obj, nets = run.objective, run.ema_nets
    ws = {s: obj.latents(1, torch.Generator().manual_seed(s), nets=nets)[0] for s in rows + cols}
    mixed = torch.cat([torch.cat([ws[c][:, :2], ws[r][:, 2:]], 1) for r in rows for c in cols])
    img = lambda w: obj.synthesize(w, nets=nets, noise="const").cpu()  # noqa: E731
    top, left, body = img(torch.cat([ws[c] for c in cols])), img(torch.cat([ws[r] for r in rows])), img(mixed)
    grid = [torch.cat([torch.ones_like(top[:1]), top])]
    grid += [torch.cat([left[i:i + 1], body[i * 4:(i + 1) * 4]]) for i in range(3)]
    assert torch.equal(whole, torch.cat(grid))  # bit-identical to the single-call grid

    sizes = []
    synthesize = obj.synthesize
    monkeypatch.setattr(obj, "synthesize", lambda w, **kw: sizes.append(len(w)) or synthesize(w, **kw))
    monkeypatch.setattr(sg2, "MIX_CHUNK", 5)
    chunked = run.mix(rows, cols, "0-1")
    assert max(sizes) == 5 and sum(sizes) == 3 + 4 + 12
    torch.testing.assert_close(chunked, whole)  # other batch sizes: float rounding only


def test_mix_message_shortens_long_seed_lists(style_run, tmp_path, capsys):
    code = cli.main(["mix", str(style_run), "--rows", ",".join(map(str, range(12))), "--cols", "20,21",
                     "--layers", "0-1", "--out", str(tmp_path / "m.png")])
    out = capsys.readouterr().out
    assert code == 0 and "rows 0,1,2,...,11 (12 seeds) keep" in out and "columns 20,21" in out, out
    assert Image.open(tmp_path / "m.png").size == (3 * 9 + 1, 13 * 9 + 1)


def test_mix_of_a_conditional_run_names_its_class(tmp_path, capsys):
    raw = sg2.StyleGAN2Conditional.example_config(tmp_path / "data")
    api.train(from_dict(raw), tmp_path / "run", progress=False)
    code = cli.main(["mix", str(tmp_path / "run"), "--rows", "1,2", "--cols", "3", "--layers", "0-1",
                     "--class", "b", "--out", str(tmp_path / "b.png")])
    out = capsys.readouterr().out
    assert code == 0 and ", class b\n" in out, out
    assert provenance.read(tmp_path / "b.png")["class"] == "b"
    code = cli.main(["mix", str(tmp_path / "run"), "--rows", "1,2", "--cols", "3", "--layers", "0-1",
                     "--out", str(tmp_path / "a.png")])
    out = capsys.readouterr().out
    assert code == 0 and ", class a (the default; choose another with --class)" in out, out
    assert provenance.read(tmp_path / "a.png")["class"] == "a"


def test_edit_of_a_projection_at_strength_0_is_its_reconstruction(style_run, tmp_path, capsys,
                                                                     brightness_classifier, noisy_generator):
    """edit --latent had redrawn the latent with the fixed default noise, not the noise maps
    project had fitted with it: strength 0 differed from reconstruction.png by up to 94/255."""
    run = ganforge.load(style_run)
    target = api.to_uint8_hwc(run.sample(1, seed=9))[0]
    Image.fromarray(target[..., 0]).save(tmp_path / "target.png")
    proj = tmp_path / "proj"
    assert cli.main(["project", str(style_run), str(tmp_path / "target.png"), "--steps", "30", "--quiet",
                     "--out", str(proj)]) == 0
    assert json.loads((proj / "result.json").read_text())["noise_file"] == "noise.npz"
    edit = ["edit", str(style_run), "--latent", str(proj / "latent.npy"), "--attribute", "bright",
            "--strength", "0,1", "--n-train", "100"]
    capsys.readouterr()
    assert cli.main([*edit, "--out", str(tmp_path / "e.png")]) == 0
    assert "note: no" not in capsys.readouterr().out
    recon = np.asarray(Image.open(proj / "reconstruction.png").convert("L")).astype(int)
    edited = np.asarray(Image.open(tmp_path / "e.png").convert("L")).astype(int)[1:9, 1:9]  # padding 1
    assert np.abs(edited - recon).max() <= 1  # PNG rounding
    meta = provenance.read(tmp_path / "e.png")  # what the image depends on
    assert meta["latent"] == str(proj / "latent.npy") and meta["noise"] == str(proj / "noise.npz")
    assert meta["n_train"] == 100 and "seed" not in meta

    (proj / "noise.npz").unlink()  # an older projection: said, and the detail differs
    assert cli.main([*edit, "--out", str(tmp_path / "e2.png")]) == 0
    assert "the fine detail differs from the projection's reconstruction" in capsys.readouterr().out
    other = np.asarray(Image.open(tmp_path / "e2.png").convert("L")).astype(int)[1:9, 1:9]
    assert np.abs(other - recon).max() > 10  # what edit had done: other noise, another image
    assert "noise" not in provenance.read(tmp_path / "e2.png")

    assert cli.main(["edit", str(style_run), "--seed", "3", "--attribute", "bright", "--strength", "0",
                     "--n-train", "100", "--out", str(tmp_path / "s.png")]) == 0
    meta = provenance.read(tmp_path / "s.png")
    assert meta["seed"] == 3 and meta["n_train"] == 100 and "latent" not in meta


def test_edit_refuses_noise_maps_of_another_run(style_run):
    run = ganforge.load(style_run)
    G = run.ema_nets["G"]
    with pytest.raises(ganforge.errors.ConfigError, match="pass the noise.npz that ganforge project wrote"):
        run.edit("bright", [0], latent=np.zeros((G.num_ws, G.w_dim), np.float32),
                 noise=[np.zeros((1, 1, 3, 3), np.float32)], classify=brightness_logits,
                 class_names=["dark", "bright"], n_train=50)


def interrupt_projection_at(monkeypatch, step: int) -> list:
    """A Ctrl-C in the projector after ``step`` optimization steps (raised in its noise
    regularization); returns the call count's list (clear it to count again)."""
    calls = []
    regularization = projector.noise_regularization

    def interrupted(maps):
        calls.append(1)
        if len(calls) > step:
            raise KeyboardInterrupt
        return regularization(maps)

    monkeypatch.setattr(projector, "noise_regularization", interrupted)
    return calls


def test_ctrl_c_in_project_keeps_the_latent_so_far(style_run, tmp_path, monkeypatch, capsys):
    """Ctrl-C had lost the whole projection; now the latent after the steps done is written, with
    its noise maps and reconstruction, and the command exits 130."""
    calls = interrupt_projection_at(monkeypatch, 12)
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(tmp_path / "t.png")
    code = cli.main(["project", str(style_run), str(tmp_path / "t.png"), "--steps", "1000", "--quiet",
                     "--out", str(tmp_path / "proj")])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted after 12 of 1000 steps" in err, err
    summary = json.loads((tmp_path / "proj" / "result.json").read_text())
    assert summary["steps"] == 12 and summary["interrupted"] is True
    run = ganforge.load(style_run)
    ws = torch.from_numpy(np.load(tmp_path / "proj" / "latent.npy")).unsqueeze(0)
    with np.load(tmp_path / "proj" / "noise.npz") as z:
        noise = [torch.from_numpy(z[f"arr_{i}"]) for i in range(sum(k.startswith("arr_") for k in z.files))]
    image = api.to_uint8_hwc(run.objective.synthesize(ws, nets=run.ema_nets, noise=noise))[0, ..., 0]
    recon = np.asarray(Image.open(tmp_path / "proj" / "reconstruction.png").convert("L"))
    assert np.abs(image.astype(int) - recon).max() <= 1
    with pytest.raises(projector.ProjectionInterrupted) as info:  # Python: the exception carries it
        calls.clear()
        run.project(np.full((8, 8), 90, np.uint8), steps=1000)
    assert info.value.result["steps"] == 12 and info.value.result["psnr"] > 0
