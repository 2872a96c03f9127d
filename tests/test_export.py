"""ganforge export: ONNX graphs of every exportable capability of every registered family match
PyTorch within 1e-4 in onnxruntime (dynamic batch and image size), model folders load back and
give identical outputs, and each bad request gets its one-line error."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest
import torch
from torch import nn

import ganforge
from conftest import run_cli
from ganforge import api
from ganforge.config import from_dict
from ganforge.errors import CheckpointError, ConfigError
from ganforge.objectives import OBJECTIVES, register_objective
from ganforge.objectives.unconditional import UnconditionalGAN

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from ganforge.serve import export  # noqa: E402
from ganforge.serve.graph import EXPORTABLE, record_sample  # noqa: E402


class _TruncatedG(nn.Module):
    """A generator whose forward takes the truncation as a number, as StyleGAN's psi does."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, z, truncation=1.0):
        return self.inner(z * truncation)


@register_objective("test-truncation")
class TruncationFamily(UnconditionalGAN):
    """A family added outside the package: export and serve must handle it without edits."""

    capabilities = frozenset({"sample", "truncation"})

    def __init__(self, cfg, data_info):
        super().__init__(cfg, data_info)
        self.nets["G"] = _TruncatedG(self.nets["G"])

    def sample(self, n: int, *, generator: torch.Generator,
               nets: Mapping[str, nn.Module] | None = None, truncation: float | None = None):
        if truncation is not None and not 0 <= truncation <= 1:
            raise ConfigError(f"truncation must be in [0, 1], got {truncation}")
        G = (nets or {}).get("G", self.nets["G"])
        return G(self._z(n, generator), 1.0 if truncation is None else float(truncation)).clamp(-1, 1)


# the package's families and the one above (other test modules register toy families of their own)
FAMILIES = sorted(n for n, c in OBJECTIVES.items() if c.capabilities & set(EXPORTABLE)
                  and (c.__module__.startswith("ganforge.") or c is TruncationFamily))
CASES = [(f, c, "AtoB") for f in FAMILIES for c in EXPORTABLE if c in OBJECTIVES[f].capabilities]
CASES.append(("cyclegan", "translate", "BtoA"))


def train_family(name: str, root: Path) -> Path:
    """A tiny trained run of family ``name`` (its example config) under ``root``."""
    raw: dict[str, Any] = OBJECTIVES[name].example_config(root / "data" / name)
    run = root / name
    api.train(from_dict(raw), run, progress=False)
    return run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("export-runs")
    return {name: train_family(name, root) for name in FAMILIES}


def _ort(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    return export.ort_session(path).run(None, feed)[0]


@pytest.mark.parametrize("family,capability,direction", CASES)
def test_onnx_matches_the_familys_own_method(family, capability, direction, runs, tmp_path):
    run = ganforge.load(runs[family])
    out = tmp_path / "g.onnx"
    result = export.export_onnx(run, out, capability=capability, direction=direction)
    assert result["max_abs_diff"] <= 1e-4
    session = export.ort_session(out)
    meta = json.loads(session.get_modelmeta().custom_metadata_map["ganforge"])
    assert meta["family"] == family and meta["capability"] == capability
    names = [i.name for i in session.get_inputs()]
    # the metadata's shapes name the dynamic axes as the graph does, not the traced example's sizes
    assert [meta["inputs"][i.name]["shape"] for i in session.get_inputs()] == [i.shape for i in session.get_inputs()]
    assert meta["inputs"][names[0]]["shape"][0] == "batch"
    # and so does the result the CLI prints ("inputs image [batch, 3, height, width]", not [1, 3, 64, 81])
    assert result["inputs"] == {i.name: i.shape for i in session.get_inputs()}
    if capability != "sample":
        assert meta["inputs"]["image"]["shape"][2:] == ["height", "width"]
    if capability == "sample":
        for n, seed in ((1, 3), (5, 7)):
            labels = None if not run.class_names else [i % len(run.class_names) for i in range(n)]
            call = record_sample(run, n, seed=seed, labels=labels)
            feed = {k: np.asarray(call.arguments[k], dtype=np.float32 if k == "truncation" else None)
                    for k in names}
            ref = run.sample(n, seed=seed, labels=labels).numpy()
            got = _ort(out, feed)
            assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4
        assert names[0] == "z" and (("labels" in names) == bool(run.class_names))
    elif capability == "translate":
        c = run.objective.input_channels(direction)
        for shape in ((1, c, 8, 8), (3, c, 13, 21)):  # batch and size are dynamic, 13 x 21 not a stride multiple
            x = torch.rand(shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
            ref = run.translate(x, direction=direction).numpy()
            got = _ort(out, {"image": x.numpy()})
            assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4
    else:  # upscale: uint8 in and out in PyTorch; compare on the uint8 scale
        image = np.random.default_rng(0).integers(0, 256, (9, 14, 3), dtype=np.uint8)
        ref = run.upscale(image, tile=0).astype(int)
        x = image.transpose(2, 0, 1)[None].astype(np.float32) / 127.5 - 1
        got = ((np.clip(_ort(out, {"image": x}), -1, 1) + 1) * 127.5).round()[0].transpose(1, 2, 0)
        assert got.shape == ref.shape
        assert np.abs(got - ref).max() <= 1 and (got == ref).mean() > 0.99  # rounding ties only


def test_truncation_is_an_onnx_input_for_a_family_that_declares_it(tmp_path):
    run = ganforge.load(train_family("test-truncation", tmp_path))
    out = tmp_path / "t.onnx"
    export.export_onnx(run, out)
    names = [i.name for i in export.ort_session(out).get_inputs()]
    assert names == ["z", "truncation"]
    for t in (0.3, 0.9):
        call = record_sample(run, 4, seed=1, truncation=t)
        got = _ort(out, {"z": call.arguments["z"].numpy(), "truncation": np.array(t, np.float32)})
        ref = run.sample(4, seed=1, truncation=t).numpy()
        assert np.abs(got - ref).max() <= 1e-4
    assert np.abs(_ort(out, {"z": call.arguments["z"].numpy(), "truncation": np.array(0.3, np.float32)})
                  - ref).max() > 1e-3  # the input is used, not baked in


def test_stylegan2_graph_takes_truncation_per_sample_and_the_layer_noise(runs, tmp_path):
    run = ganforge.load(runs["stylegan2"])
    obj, nets, G = run.objective, run.ema_nets, run.ema_nets["G"]
    with torch.no_grad():  # after 3 steps the noise strengths are still ~0: make the noise matter
        for conv in G.synthesis.convs:
            conv.noise_strength.fill_(0.5)
    # the sampler is mapping -> truncation (lerp, exact at psi = 1) -> synthesis with the drawn noise
    gen = torch.Generator().manual_seed(2)
    ws, _ = obj.latents(4, gen, nets=nets)
    noise = G.synthesis.make_noise(4, "random", generator=gen)
    assert torch.equal(obj.synthesize(ws, nets=nets, noise=noise), run.sample(4, seed=2))
    out = tmp_path / "s.onnx"
    export.export_onnx(run, out)
    names = [i.name for i in export.ort_session(out).get_inputs()]
    assert names == ["z", "truncation", "noise"]
    for t in (None, 1.0, 0.5, 0.0):
        call = record_sample(run, 4, seed=2, truncation=t)
        feed = {k: call.arguments[k].numpy() for k in names}
        assert np.abs(_ort(out, feed) - run.sample(4, seed=2, truncation=t).numpy()).max() <= 1e-4
    psi = np.array([0.5, 1.0, 0.0, 0.5], np.float32)  # one psi per sample, as the server batches them
    got = _ort(out, {**feed, "truncation": psi})
    for k, p in enumerate(psi):
        assert np.abs(got[k] - run.sample(4, seed=2, truncation=float(p))[k].numpy()).max() <= 1e-4
    silent = _ort(out, {**feed, "noise": np.zeros_like(feed["noise"])})
    assert np.abs(silent - got).max() > 1e-2  # the noise is an input, not baked in


def test_lapgan_chain_exports_from_the_cli_with_its_noise_as_an_input(runs, tmp_path):
    from ganforge.models.lapgan import upsample_static
    from ganforge.models.pyramid import upsample

    x = torch.randn(3, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(upsample_static(x, 2, 4), upsample(x))  # the chain's u(.) is the trained one
    out = tmp_path / "lap.onnx"
    r = run_cli("export", runs["lapgan-conditional"], "--format", "onnx", "--out", out)
    assert r.returncode == 0, r.stderr
    run = ganforge.load(runs["lapgan-conditional"])
    call = record_sample(run, 3, seed=4, labels=[1, 0, 1])
    feed = {k: call.arguments[k].numpy() for k in ("z", "labels", "noise")}
    assert feed["noise"].shape == (3, 8 * 8 + 16 * 16)  # levels 8 and 16 px: one plane each
    ref = run.sample(3, seed=4, labels=[1, 0, 1])
    assert torch.equal(run.sample(3, seed=4, labels=[1, 0, 1], return_levels=True)[-1], ref)
    got = _ort(out, feed)
    assert np.abs(got - ref.numpy()).max() <= 1e-4
    assert np.abs(_ort(out, {**feed, "noise": np.zeros_like(feed["noise"])}) - got).max() > 1e-3
    assert np.abs(_ort(out, {**feed, "labels": 1 - feed["labels"]}) - got).max() > 1e-3


def test_server_batches_the_chained_samplers_through_their_graphs(runs, tmp_path):
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    from ganforge.serve.server import Settings, create_app, png_bytes

    style = ganforge.load(export.export_folder(ganforge.load(runs["stylegan2"]), tmp_path / "sg"))
    lap = ganforge.load(runs["lapgan-conditional"])
    # without the provenance record (tests/test_serve_provenance.py): the bytes are the bare PNG's
    app = create_app({"sg": style, "lap": lap}, Settings(max_batch=16, batch_wait_ms=300, provenance=False))
    with TestClient(app) as c:
        workers = app.state.workers
        assert workers["sg"].graph is not None and workers["lap"].graph is not None
        jobs = [(style, dict(n=2, seed=s, truncation=t)) for s, t in ((1, None), (2, 0.5), (3, 0.0))]
        jobs += [(lap, dict(n=2, seed=s, labels=cls)) for s, cls in ((1, "a"), (2, "b"))]
        futures = [workers["sg" if run is style else "lap"].submit("sample", **p) for run, p in jobs]
        for (run, p), f in zip(jobs, futures):
            assert torch.allclose(f.result(timeout=30), run.sample(p["n"], seed=p["seed"], labels=p.get("labels"),
                                                                   truncation=p.get("truncation")), atol=1e-5)
        text = c.get("/metrics").text
        # the family's own interpolation (a W walk with fixed noise), not a walk of the graph's inputs
        r = c.post("/api/interpolate", json={"model": "sg", "seed_a": 3, "seed_b": 4, "steps": 4})
        assert r.status_code == 200 and r.content == png_bytes(style.interpolate([3, 4], 6)[:4], 4)
    # three truncations, one forward pass of 6 images
    assert 'ganforge_batch_images_sum{model="sg"} 6.0' in text
    assert 'ganforge_batch_images_count{model="sg"} 1.0' in text


def test_biggan_graph_is_fixed_to_the_truncation_asked_for(runs, tmp_path, capsys):
    from ganforge import cli

    def export_cli(out, *extra):  # in this process: the CLI's parsing, messages and exit codes
        code = cli.main(["export", str(runs["biggan"]), "--format", "onnx", "--out", str(out), *extra])
        return code, capsys.readouterr()

    out, default = tmp_path / "t05.onnx", tmp_path / "default.onnx"
    code, printed = export_cli(out, "--truncation", "0.5")
    assert code == 0, printed.err
    assert printed.out.count("\n") == 1 and "fixed to truncation 0.5)" in printed.out
    code, printed = export_cli(default)
    assert code == 0, printed.err
    lines = printed.out.splitlines()
    assert len(lines) == 2 and "fixed to truncation none" in lines[0]
    assert "no truncation" in lines[1] and "--truncation T" in lines[1]
    session = export.ort_session(out)
    assert [i.name for i in session.get_inputs()] == ["z", "labels"]
    meta = json.loads(session.get_modelmeta().custom_metadata_map["ganforge"])
    assert meta["truncation"] == 0.5 and "standing BatchNorm statistics" in meta["truncation_fixed"]
    meta = json.loads(export.ort_session(default).get_modelmeta().custom_metadata_map["ganforge"])
    assert meta["truncation"] is None
    run = ganforge.load(runs["biggan"])
    for n, seed in ((1, 3), (5, 7)):
        labels = [i % 2 for i in range(n)]
        call = record_sample(run, n, seed=seed, labels=labels, truncation=0.5)
        feed = {k: call.arguments[k].numpy() for k in ("z", "labels")}
        assert np.abs(feed["z"]).max() <= 0.5
        ref = run.sample(n, seed=seed, labels=labels, truncation=0.5).numpy()
        got = _ort(out, feed)
        assert got.shape == ref.shape and np.abs(got - ref).max() <= 1e-4
    # the same inputs through the graph of untruncated statistics: the truncation is in the file
    assert np.abs(_ort(default, feed) - ref).max() > 1e-3
    code, printed = export_cli(tmp_path / "bad.onnx", "--truncation", "0")
    assert code == 2 and printed.err.count("\n") == 1 and "threshold > 0" in printed.err
    assert not (tmp_path / "bad.onnx").exists()
    # a graph that takes its truncation as an input has nothing to fix
    with pytest.raises(ConfigError, match="drop --truncation") as info:
        export.export_onnx(ganforge.load(runs["stylegan2"]), tmp_path / "s.onnx", truncation=0.5)
    assert "\n" not in str(info.value) and not (tmp_path / "s.onnx").exists()


def test_server_runs_one_biggan_truncation_per_forward_pass(runs):
    from ganforge.serve.batching import ModelWorker

    run = ganforge.load(runs["biggan"])
    batches = []
    worker = ModelWorker("big", run, max_batch=16, wait_ms=300, on_batch=lambda m, n: batches.append(n))
    try:
        assert worker.graph is not None
        jobs = [dict(n=2, seed=s, truncation=t) for s, t in ((1, 0.5), (2, None), (3, 1.0), (4, 0.5))]
        futures = [worker.submit("sample", **p) for p in jobs]
        got = [f.result(timeout=60) for f in futures]
    finally:
        worker.close()
    for p, images in zip(jobs, got):
        assert torch.allclose(images, run.sample(p["n"], seed=p["seed"], truncation=p["truncation"]), atol=1e-5)
    assert sorted(batches) == [2, 2, 4]  # 0.5 twice in one pass; None and 1.0 each alone


@pytest.mark.parametrize("family", FAMILIES)
def test_model_folder_loads_and_gives_identical_outputs(family, runs, tmp_path):
    run = ganforge.load(runs[family])
    folder = export.export_folder(run, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["family"] == family and config["step"] == run.step
    assert config["capabilities"] == sorted(run.capabilities)
    from safetensors.torch import load_file

    keys = load_file(folder / "model.safetensors").keys()
    assert keys and not any(k.startswith(("D", "ema.")) for k in keys)  # EMA generators only
    card = (folder / "README.md").read_text()
    assert f"step {run.step}" in card and f"objective: {family}" in card
    loaded = ganforge.load(folder)
    assert loaded.capabilities == run.capabilities and loaded.step == run.step
    assert loaded.class_names == run.class_names
    if "sample" in run.capabilities:
        assert torch.equal(loaded.sample(6, seed=4), run.sample(6, seed=4))
    if "translate" in run.capabilities:
        x = torch.rand(2, run.objective.input_channels("AtoB"), 9, 12) * 2 - 1
        assert torch.equal(loaded.translate(x), run.translate(x))
    if "upscale" in run.capabilities:
        image = np.random.default_rng(1).integers(0, 256, (7, 5, 3), dtype=np.uint8)
        assert np.array_equal(loaded.upscale(image), run.upscale(image))


def test_model_card_reports_the_evaluation_at_the_exported_step(runs, tmp_path):
    run = ganforge.load(runs["unconditional"])  # step 4
    with open(runs["unconditional"] / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"step": 4, "fid": 12.5, "kid": 0.0125}) + "\n")
    assert export.evaluation_numbers(runs["unconditional"], 4) == {"step": 4, "fid": 12.5, "kid": 0.0125}
    card = (export.export_folder(run, tmp_path / "m") / "README.md").read_text()
    assert "| fid | 12.5 |" in card and "| kid | 0.0125 |" in card
    # what the numbers were measured with comes along (the hook logs it beside them)
    protocol = {"extractor": "fashion-mnist-cnn", "extractor_sha256": "d0", "reference": "fashion-mnist",
                "split": "train", "n": 300, "seed": 1}
    with open(runs["unconditional"] / "metrics.jsonl", "a") as f:  # the step evaluated again
        f.write(json.dumps({"step": 4, "fid": 11.0, "protocol": protocol}) + "\n")
    assert export.evaluation_numbers(runs["unconditional"], 4)["protocol"] == protocol
    card = (export.export_folder(run, tmp_path / "m2") / "README.md").read_text()
    assert "| fid | 11 |" in card and "| protocol |" not in card
    assert "the fashion-mnist-cnn extractor (d0) on 300 samples (noise seed 1) against the train split" in card


@pytest.mark.parametrize("family", ["pix2pix", "cyclegan", "superres"])
def test_model_card_of_an_image_to_image_model_evaluates_and_uses_it(family, runs, tmp_path, monkeypatch, capsys):
    """The card of a translate or upscale model had advised `eval.every` (refused for translation
    runs) or `ganforge eval` (refused for upscale runs) and its Python block stopped at
    ganforge.load: the evaluation it names runs as written, and so do its code and commands."""
    import re
    import shlex

    from PIL import Image

    from ganforge import cli

    run = ganforge.load(runs[family])
    monkeypatch.chdir(tmp_path)  # the card names the folder as it lies beside it
    if run.config.data.name.startswith("folder:"):  # and its dataset by name, read from here
        data = Path(run.config.data.name.removeprefix("folder:"))
        (tmp_path / data.name).symlink_to(data)
    export.export_folder(run, tmp_path / "model")
    card = (tmp_path / "model" / "README.md").read_text()
    evaluation = card.split("## Evaluation")[1].split("## Use")[0]
    assert "`ganforge eval`" not in evaluation and "train with `eval.every`" not in evaluation
    command = re.findall(r"`(ganforge (?:translate-eval|eval-sr) [^`]*)`", evaluation)
    assert command == ["ganforge translate-eval model" if family != "superres"
                       else "ganforge eval-sr model --data photos:test"]
    extra = ["--extractor", "fashion-mnist-cnn"] if family == "cyclegan" else []  # offline, as the card says
    if family == "cyclegan":
        assert "`--extractor fashion-mnist-cnn`" in evaluation
    assert cli.main(shlex.split(command[0])[1:] + extra) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert ("psnr_y" if family == "superres" else "FID" if family == "cyclegan" else "PSNR") in printed

    image = np.random.default_rng(3).integers(0, 256, (9, 14, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "in.png")
    code = card.split("```python\n")[1].split("```")[0]
    assert "g.translate(" in code or "g.upscale(" in code
    exec(compile(code, "README.md", "exec"), {})
    got = np.asarray(Image.open(tmp_path / "out.png"))
    if family == "superres":
        assert np.array_equal(got, run.upscale(image))
    else:
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 127.5 - 1
        y = ((run.translate(x)[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
        assert np.array_equal(got, y)
    shell = card.split("```bash\n")[1].split("```")[0].splitlines()
    assert shell[0].startswith(f"ganforge {'upscale' if family == 'superres' else 'translate'} model in.png")
    (tmp_path / "out.png").unlink()
    assert cli.main(shlex.split(shell[0])[1:]) == 0, capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png").convert("RGB")), got)


def test_cli_exports_and_refuses_to_overwrite(runs, tmp_path):
    out = tmp_path / "g.onnx"
    r = run_cli("export", runs["conditional"], "--format", "onnx", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "onnxruntime matches PyTorch" in r.stdout and out.is_file()
    before = out.read_bytes()
    r = run_cli("export", runs["conditional"], "--format", "onnx", "--out", out)
    assert r.returncode == 2 and "already exists" in r.stderr and r.stderr.count("\n") == 1
    assert out.read_bytes() == before
    model = tmp_path / "model"
    assert run_cli("export", runs["conditional"], "--format", "folder", "--out", model).returncode == 0
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    r = run_cli("export", runs["conditional"], "--format", "folder", "--out", other, "--force")
    assert r.returncode == 2 and "replaces only a model folder" in r.stderr
    assert (other / "keep.txt").read_text() == "mine"
    r = run_cli("export", runs["conditional"], "--format", "folder", "--out", model, "--force")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("kwargs,message", [
    ({"out": "g.pt"}, "give a .onnx file name"),
    ({"capability": "translate"}, "cannot map an input image"),
    ({"capability": "preview"}, "exportable are sample, translate, upscale"),
])
def test_export_errors_are_one_line(kwargs, message, runs, tmp_path):
    run = ganforge.load(runs["unconditional"])
    out = tmp_path / kwargs.pop("out", "g.onnx")
    with pytest.raises(ConfigError, match=message) as info:
        export.export_onnx(run, out, **kwargs)
    assert "\n" not in str(info.value) and not out.exists()


def test_a_corrupt_model_folder_is_a_one_line_error(tmp_path):
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="export it again") as info:
        ganforge.load(tmp_path)
    assert "\n" not in str(info.value)


def test_weights_files_are_as_readable_as_the_files_beside_them(runs, tmp_path, monkeypatch):
    """safetensors writes 0600: an exported folder's model.safetensors (and a checkpoint's weights)
    could not be read by another user or container, and loading it said "No such file"."""
    import os
    import stat

    from ganforge.training import checkpoint as ckpt

    folder = export.export_folder(ganforge.load(runs["unconditional"]), tmp_path / "model")
    mode = stat.S_IMODE((folder / "model.safetensors").stat().st_mode)
    assert mode == stat.S_IMODE((folder / "config.json").stat().st_mode) and mode & 0o044 == 0o044
    weights = ckpt.find(runs["unconditional"]) / "weights.safetensors"
    assert stat.S_IMODE(weights.stat().st_mode) & 0o044 == 0o044
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, m: False if str(p).endswith(".safetensors") else real_access(p, m))
    with pytest.raises(CheckpointError, match=r"model.safetensors exists but this user may not read it \(mode "
                                              r"0o6\d\d\); make it readable \(chmod a\+r\)"):
        ganforge.load(folder)
    with pytest.raises(CheckpointError, match="weights.safetensors exists but this user may not read it"):
        ckpt.load(ckpt.find(runs["unconditional"]))
