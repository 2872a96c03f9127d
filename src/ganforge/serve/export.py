"""Export a trained run: an ONNX graph of one capability, or a self-contained model folder.

ONNX: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``), which needs
only the ``onnx`` package and works offline with torch 2.1-2.14; the dynamo exporter would also
need ``onnxscript``. The graph is the network call behind the capability (ganforge.serve.graph):
``sample`` takes the tensors the family feeds its generator (z, class labels, truncation where it
reaches the network as a number) with a dynamic batch; a sample graph whose network holds state
for one truncation (standing BatchNorm statistics) is recorded at ``truncation`` and says so in
its metadata; ``translate`` / ``upscale`` take one float image [N, C, H, W] in [-1, 1] of
dynamic size. The file is checked with onnxruntime against PyTorch before it replaces ``out``.

Folder (the from_pretrained convention): config.json (the resolved config, step, family,
capabilities), model.safetensors (the EMA generator weights) and a generated README.md model
card; ``ganforge.load(folder)`` and ``ganforge serve folder`` read it.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import re
import warnings
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, Iterator

import torch
import yaml

from .. import provenance
from ..inference import LoadedRun
from ..runfiles import MODEL_CONFIG, MODEL_WEIGHTS, recorded_plugins
from ..atomic import atomic_path, atomic_write_text, restore_replaced, save_tensors
from ..data.base import PATH_PREFIXES
from ..errors import ConfigError, GanforgeError, shell_arg
from ..objectives import AUDIO_CAPABILITIES, CAPABILITIES
from ..report.run import environment_parts, given_dataset, given_record
from ..training import checkpoint as ckpt
from .graph import EXPORTABLE, IMAGE_CAPABILITIES, build_graph, example_image, truncation_state, verify

PARITY_TOL = 1e-4  # fp32 ONNX against PyTorch, largest absolute difference on [-1, 1] outputs
OPSET = 17


class ExportError(GanforgeError):
    """A run that cannot be exported as asked."""


def default_capability(run: LoadedRun) -> str:
    for capability in EXPORTABLE:
        if capability in run.capabilities:
            return capability
    raise ExportError(f"run {run.run_dir} has none of the capabilities ONNX export covers "
                      f"({', '.join(EXPORTABLE)}); --format folder exports it as a model folder")


def _require_onnx():
    try:
        import onnx  # noqa: F401
    except ImportError:
        raise ExportError("ONNX export needs the onnx package: pip install 'ganforge[serve]' "
                          "(or pip install onnx onnxruntime)") from None


def ort_session(path: Path | str):
    """An onnxruntime CPU session (ExportError when onnxruntime is missing)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("checking an ONNX file needs onnxruntime: pip install 'ganforge[serve]'") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # idle worker threads would otherwise spin and take CPU from PyTorch in the same process
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _second_inputs(run, capability: str, direction: str, inputs: dict[str, torch.Tensor]):
    """Inputs of another batch size (and image size) than the traced ones: the dynamic axes
    must really be dynamic."""
    if capability in IMAGE_CAPABILITIES:
        s = max(int(run.objective.stride), 1)
        return {"image": example_image(run, capability, direction, n=3, size=(s + 3, 2 * s + 5))}
    out = {}
    for k, v in inputs.items():
        out[k] = v if v.dim() == 0 else torch.cat([v, v[:1]])
        if v.is_floating_point() and v.dim() > 0:
            out[k] = torch.randn(out[k].shape, generator=torch.Generator().manual_seed(3))
    return out


def export_onnx(run: LoadedRun, out: Path | str, *, capability: str | None = None,
                direction: str | None = None, force: bool = False,
                truncation: float | None = None) -> dict[str, Any]:
    """Write ``out`` (.onnx) and return what was checked: inputs, the largest difference to
    PyTorch on the traced and on a second input shape (``max_abs_diff``), for a translate graph
    its ``direction``, and for a sample graph fixed to one truncation, that truncation
    (``truncation``, None: none) and why (``truncation_state``). ``truncation``: for such graphs only."""
    _require_onnx()
    import onnx

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise ConfigError(f"--out {out}: give a .onnx file name for --format onnx")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite it or choose another --out")
    capability = capability or default_capability(run)
    if capability not in EXPORTABLE:
        raise ConfigError(f"--capability {capability}: exportable are {', '.join(EXPORTABLE)}")
    run.require(capability)
    # None: a pix2pix run's own direction, a CycleGAN run's AtoB (other graphs record AtoB, as before)
    direction = direction or (run.objective.default_direction if capability == "translate" else "AtoB")
    if truncation is not None:
        run.require("truncation")
        if capability != "sample" or truncation_state(run) is None:
            raise ConfigError(f"--truncation is for sample graphs whose network holds state for one "
                              f"truncation; the {capability} graph of objective={run.config.objective} "
                              f"holds none (a truncation it takes is an input): drop --truncation")
    built = build_graph(run, capability, direction, truncation=truncation)
    if built is None:
        raise ExportError(f"{capability} of run {run.run_dir} calls no network to export")
    graph, inputs = built
    gap = verify(run, graph, capability, direction)
    if not gap <= PARITY_TOL:
        raise ExportError(f"the {capability} graph of objective={run.config.objective} does not reproduce "
                          f"the family's own {capability} (difference {gap:.3g}; inf: another shape): export "
                          f"replays the method's one network call alone, and this method does more (a second "
                          f"call, or a reshape of the output); a family author makes it one call plus "
                          f"clamping, or declares export_module(nets) (ganforge.serve.graph)")
    names = list(inputs)
    dynamic = {k: ({0: "batch", 2: "height", 3: "width"} if capability in IMAGE_CAPABILITIES else {0: "batch"})
               for k, v in inputs.items() if v.dim() > 0}
    dynamic["image_out"] = ({0: "batch", 2: "out_height", 3: "out_width"}
                            if capability in IMAGE_CAPABILITIES else {0: "batch"})
    meta = onnx_metadata(run, capability, direction, graph, inputs, dynamic)
    with atomic_path(out) as tmp:
        with warnings.catch_warnings():  # the TorchScript exporter's deprecation and tracer notes
            warnings.simplefilter("ignore")
            with onnx_symbolics():
                torch.onnx.export(graph, tuple(inputs.values()), str(tmp), input_names=names,
                                  output_names=["image_out"], dynamic_axes=dynamic,
                                  opset_version=OPSET, dynamo=False)
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model)
        for key, value in meta.items():
            model.metadata_props.add(key=key, value=value)
        onnx.save(model, str(tmp))
        diffs = [onnx_gap(tmp, graph, feed) for feed in
                 (inputs, _second_inputs(run, capability, direction, inputs))]
        if max(diffs) > PARITY_TOL:
            raise ExportError(f"onnxruntime's output differs from PyTorch's by {max(diffs):.3g} "
                              f"(> {PARITY_TOL}); the file was not written")
    # each input's shape as the graph takes it (its dynamic axes by name), not the check's example
    result = {"capability": capability, "inputs": graph_shapes(inputs, dynamic),
              "max_abs_diff": max(diffs), "path": str(out)}
    if capability == "translate":  # which generator: the metadata's direction
        result["direction"] = direction
    if graph.truncation_state:
        result.update(truncation=graph.truncation, truncation_state=graph.truncation_state)
    return result


def _vdot(g, a, b):
    return g.op("ReduceSum", g.op("Mul", a, b), keepdims_i=0)  # real vectors: sum(a * b)


def _bicubic_aa(g, x, output_size, align_corners, scale_factors):
    """Upsampling by ``bicubic_up`` (torch's antialiased bicubic, PIL's kernel) as ONNX Resize:
    cubic with a = -0.5, taps outside the image dropped and the rest renormalized
    (exclude_outside), half-pixel centres. For upsampling that is the same arithmetic; shrinking
    would need ONNX's antialias, which opset 17 lacks."""
    from torch.onnx import symbolic_helper as sh

    scales = sh._maybe_get_const(scale_factors, "fs")
    if (not isinstance(scales, (list, tuple)) or any(s < 1 for s in scales)
            or sh._maybe_get_const(align_corners, "i")):
        raise ExportError("antialiased bicubic resizing is exported only for upsampling by a "
                          "scale factor (align_corners=False)")
    sizes = g.op("Constant", value_t=torch.tensor([1.0, 1.0, *scales], dtype=torch.float32))
    roi = g.op("Constant", value_t=torch.tensor([], dtype=torch.float32))
    return g.op("Resize", x, roi, sizes, mode_s="cubic", cubic_coeff_a_f=-0.5, exclude_outside_i=1,
                coordinate_transformation_mode_s="half_pixel")


SYMBOLICS = {"aten::vdot": _vdot, "aten::_upsample_bicubic2d_aa": _bicubic_aa}


@contextlib.contextmanager
def onnx_symbolics() -> Iterator[None]:
    """Inside: the TorchScript exporter writes the aten ops that it has no ONNX form for and
    that our networks call on every forward:
    - ``aten::vdot`` (spectral norm's sigma = u . W v) as ReduceSum(Mul), for real vectors. The
      parametrization cannot be frozen for a trace instead (``parametrize.cached`` refuses
      tracing; removing it on a copy would edit the class the run's modules share).
    - ``aten::_upsample_bicubic2d_aa``: super-resolution's bicubic skip (``bicubic_up``)."""
    for name, fn in SYMBOLICS.items():
        torch.onnx.register_custom_op_symbolic(name, fn, OPSET)
    try:
        yield
    finally:
        for name in SYMBOLICS:
            torch.onnx.unregister_custom_op_symbolic(name, OPSET)


@torch.inference_mode()
def onnx_gap(path: Path, graph, feed: dict[str, torch.Tensor]) -> float:
    """Largest |onnxruntime - PyTorch| of ``graph`` on ``feed``."""
    session = ort_session(path)
    got = session.run(None, {k: v.numpy() for k, v in feed.items()})[0]
    ref = graph(*feed.values()).numpy()
    if got.shape != ref.shape:
        return float("inf")
    return float(abs(got - ref).max())


def graph_shapes(inputs: dict, dynamic: dict) -> dict[str, list]:
    """Each input's shape with its dynamic axes by name (``["batch", 100]``)."""
    return {k: [dynamic.get(k, {}).get(i, n) for i, n in enumerate(v.shape)] for k, v in inputs.items()}


def onnx_metadata(run, capability, direction, graph, inputs, dynamic=None) -> dict[str, str]:
    """What a user of the .onnx file needs to know, as metadata_props (strings). ``dynamic``: the
    graph's dynamic axes (input name -> {axis: name}); an input's shape names them as the graph
    does (``["batch", 100]``), not the sizes of the example it was traced with."""
    dynamic = dynamic or {}
    meaning = {"image": "float32 [N, C, H, W] in [-1, 1], any H, W >= stride",
               **getattr(graph.net, "input_meaning", {})}
    shapes = graph_shapes(inputs, dynamic)
    info = {"family": run.config.objective, "capability": capability,
            "inputs": {k: {"shape": shapes[k], "dtype": str(v.dtype).replace("torch.", ""),
                           **({"meaning": meaning[k]} if k in meaning else {})} for k, v in inputs.items()},
            "output": (f"image_out: float32 [N, {run.point_dim}], points (a toy mixture's samples)"
                       if run.point_dim else "image_out: float32 [N, C, H, W] in [-1, 1]"), "step": run.step}
    if capability in IMAGE_CAPABILITIES:
        info.update(stride=graph.stride, scale=graph.scale, direction=direction)
    if run.class_names and capability == "sample":
        info["class_names"] = run.class_names
    if graph.truncation_state:  # null: no truncation
        info.update(truncation=graph.truncation,
                    truncation_fixed=f"this graph is right for this truncation only: {graph.truncation_state}; "
                                     f"draw z with it (ganforge export --truncation T for another)")
    # the config as a model folder shows it: without this machine's paths (shareable_config)
    shared = shareable_config(run.config, machine_paths(run)).to_dict()
    return {"ganforge": json.dumps(shareable_value(info, machine_paths(run))),
            "ganforge_config": yaml.safe_dump(shared, sort_keys=False)}


# ----------------------------------------------------------------------------- model folder


def logged_evaluations(run_dir: Path) -> list[dict[str, Any]]:
    """The evaluations the run logged to metrics.jsonl and kept, in step order: each its metric
    values, its step and the protocol it was measured with (extractor, split, n, seed). Records
    that a resume or a rollback logged again are read as the report reads them (the later
    history replaces the earlier from its first step on): those are not the weights the run kept."""
    from ..metrics.evaluation import METRICS
    from ..report.run import read_metrics

    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return []
    out = []
    for record in read_metrics(path, [])[0]:
        values = {k: v for k, v in record.items() if k in METRICS}
        if values:
            out.append({"step": record["step"], **values})
            if isinstance(record.get("protocol"), dict):
                out[-1]["protocol"] = record["protocol"]
    return out


def evaluation_numbers(run_dir: Path, step: int) -> dict[str, Any]:
    """The evaluation the run logged at ``step`` (the exported checkpoint's), or {} when it logged
    none there: another step's numbers measure other weights (metric name -> value, its step,
    and its protocol)."""
    found = [e for e in logged_evaluations(run_dir) if e["step"] == step]
    return found[-1] if found else {}


def _unpaired(run: LoadedRun) -> bool:
    """A translation run between two unpaired domains (CycleGAN): both directions, FID/KID."""
    return getattr(getattr(run.config, "translate", None), "task", None) == "unpaired"


def evaluation_advice(run: LoadedRun, name: str, cfg=None) -> list[str]:
    """The card's Evaluation lines when the run logged none: the command that evaluates what the
    model does (``ganforge eval`` covers sampling runs only; translate-eval, eval-sr and
    eval-audio the others), with the arguments it needs. ``cfg``: the config the card shows
    (``shareable_config``; default the run's)."""
    cfg = cfg or run.config
    caps = run.capabilities
    # the family's own command (Objective.evaluated_by), said here with what it measures
    by = getattr(run.objective, "evaluated_by", None)
    command = f"`{by.replace('RUN', name)}`" if by else None
    if "vocode" in caps and command:
        return [f"The run's audio evaluation is not kept in the run; {command} measures mel L1, MCD, PESQ, "
                "STOI and the real-time factor on held-out utterances, next to Griffin-Lim on the same mels "
                "(DIR: a speech corpus of `ganforge data make-speech`, or a folder of WAVs)."]
    if "convert" in caps and command:
        return [f"The run's audio evaluation is not kept in the run; {command} measures the MCD to the target "
                "voice and the conversion success rate on the corpus's parallel sentences (DIR: a speech "
                "corpus of `ganforge data make-speech`; `--vocoder VOCODER_RUN` voices them with a vocoder "
                "run instead of Griffin-Lim)."]
    if "translate" in caps and command:
        what = ("FID/KID of its translations against the other domain's held-out images (features: "
                "`--extractor inception`, the default, or `--extractor fashion-mnist-cnn` offline)"
                if _unpaired(run) else "PSNR/SSIM of its translations of the held-out pairs, next to the "
                                       "trivial baseline")
        # a folder dataset is named without its path (shareable_config): read from where it runs
        folder = cfg.data.name.removeprefix("folder:") if cfg.data.name.startswith("folder:") else None
        where = (f"; it reads the folder `{folder}` in the directory it runs in, or pass `--data "
                 f"folder:PATH`" if folder else "")
        return [f"The run logged no evaluation (translation runs are evaluated after training, not with "
                f"`eval.every`): {command} measures {what}, on the held-out split of the dataset above "
                f"(`--n N`: at most N of them){where}."]
    if "upscale" in caps and command:
        return [f"The run logged no evaluation (super-resolution runs are evaluated after training, not "
                f"with `eval.every`): {command} measures Y-channel PSNR/SSIM against bicubic upscaling on "
                f"the held-out photographs (`--data DIR`: a folder of high-resolution images of your own)."]
    if "sample" in caps and run.point_dim:  # a toy mixture: eval takes images, bench modes points
        return [f"The run logged no evaluation: `ganforge sample {name} --n 1000 --out points.png` draws its "
                f"points over the mixture's modes, and `ganforge bench modes --data {shell_arg(cfg.data.name)}` "
                f"measures modes covered and high-quality samples of a recipe over seeds."]
    if "sample" in caps and given_record(run.run_dir) is not None:  # not data.name's dataset
        return [f"The run logged no evaluation: `ganforge eval {name} --ref folder:PATH` measures it against "
                f"the images it trained on, saved to a folder (or train with `hooks=` and `eval.every`)."]
    if "sample" in caps:
        ref = cfg.data.name
        try:
            from ..metrics.evaluation import check_reference

            check_reference(ref)
        except GanforgeError:  # a folder or toy name that --ref does not take
            ref = "DATASET"
        return [f"The run logged no evaluation: `ganforge eval {name} --ref {shell_arg(ref)}` measures it (or train "
                f"with `eval.every`)."]
    return ["The run logged no evaluation."]


def _card_qualifier(capability: str, cfg) -> str:
    """What the card adds to a capability that holds only in part for this model: ``edit`` labels
    images with the dataset's classifier, which a folder has not (``ganforge edit`` refuses it;
    from Python ``classify=`` gives one)."""
    if capability == "edit":
        from ..metrics.features import classifier_weights

        if classifier_weights(cfg.data.name) is None:
            return (f"; `{cfg.data.name}` has no built-in classifier, so only from Python with "
                    f"`classify=` (a function of images giving class logits)")
    return ""


def model_card(run: LoadedRun, meta: dict[str, Any]) -> str:
    """The folder's README.md; ``meta``: name, source, evaluation, evaluated (the steps the run
    evaluated) and config (what the card shows of the run's config: ``shareable_config``)."""
    cfg = meta.get("config") or run.config
    # the name as the card's commands need it: quoted for the shell, a string literal for Python
    # (a folder named "it's model" had given `ganforge serve it's model`)
    sh, py = shell_arg(meta["name"]), json.dumps(meta["name"], ensure_ascii=False)
    lines = [f"# {meta['name']}", "",
             f"{CARD_MARK}objective `{cfg.objective}`, exported from `{meta['source']}` at "
             f"step {run.step}.", "", "## What it does", ""]
    lines += [f"- `{c}`: {CAPABILITIES[c]}{_card_qualifier(c, cfg)}" for c in sorted(run.capabilities)]
    audio = bool(run.capabilities & AUDIO_CAPABILITIES)
    a = cfg.audio if audio else None
    given = given_dataset(run.run_dir)  # the config's data.name is the preset's, never read
    if given is not None:  # and its description the preset's: said as the report's header says it
        cfg = copy.deepcopy(cfg)
        cfg.description = (f"{cfg.description}; trained instead on {given}" if cfg.description
                           else f"trained on {given}")
    lines += ["", "## Data", "", f"- dataset: {given}" if given is not None
              else f"- dataset: `{cfg.data.name}` (split `{cfg.data.split}`)",
              f"- {a.rate} Hz mono audio, log-mel front end: {a.n_mels} mels, n_fft {a.n_fft}, hop {a.hop}"
              if audio else f"- {run.point_dim}-D points" if run.point_dim
              else f"- resolution {cfg.data.resolution}, {cfg.data.channels} channel(s)"]
    if run.class_names:
        lines.append(f"- classes: {', '.join(f'{i}={n}' for i, n in enumerate(run.class_names))}")
    lines += ["", "## Evaluation", ""]
    ev = dict(meta.get("evaluation") or {})
    protocol = ev.pop("protocol", None)
    if ev:
        lines += ["| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in ev.items()]
        if protocol:
            from ..report.run import describe_protocol

            lines += ["", describe_protocol(protocol)]
    elif meta.get("evaluated"):  # at other steps: other weights' numbers
        steps = meta["evaluated"]
        lines += [f"No evaluation was logged at step {run.step}, the step of these weights; the run's "
                  f"{len(steps)} evaluation{'s' if len(steps) > 1 else ''} (steps {steps[0]} to {steps[-1]}) "
                  f"are in its metrics.jsonl."]
    else:
        lines += evaluation_advice(run, sh, cfg)
    lines += ["", "## Use", ""]
    plugins = recorded_plugins(run.run_dir, to_load=True)  # a plugin loss is not needed to load it
    if plugins:  # the family or networks were registered outside ganforge
        lines += [f"It needs the module{'s' if len(plugins) > 1 else ''} it was trained with, "
                  f"{', '.join(f'`{m}`' for m in plugins)}, importable and imported first: "
                  f"`import {', '.join(plugins)}` in Python, `GANFORGE_PLUGINS={','.join(plugins)}` before "
                  f"`ganforge`.", ""]
        lines.append(f"```python\nimport {', '.join(plugins)}")
    else:
        lines.append("```python")
    if audio:
        lines += ["import torch", "import ganforge", "from ganforge.data.audio import read_audio", "",
                  f'g = ganforge.load({py})',
                  f"wave = torch.from_numpy(read_audio(\"in.wav\", {a.rate}))   # mono float32 at {a.rate} Hz",
                  "mel = g.analyze(wave)   # log-mel [1, n_mels, T]"]
        lines.append("out = g.vocode(mel)   # waveform [1, T * hop] in [-1, 1]" if "vocode" in run.capabilities
                     else "converted = g.convert(mel, direction=\"AtoB\")   # the other voice's log-mel")
    elif "translate" in run.capabilities:
        unpaired = _unpaired(run)
        channels = run.objective.input_channels() if hasattr(run.objective, "input_channels") \
            else cfg.data.channels
        way = getattr(run.objective, "default_direction", "AtoB")
        lines += ["import torch", "from PIL import Image", "import ganforge",
                  "from ganforge.imageio import read_array", "",
                  f'g = ganforge.load({py})',
                  f'pixels = read_array("in.png", "{"L" if channels == 1 else "RGB"}")   '
                  f"# uint8 [H, W, {channels}], any H and W",
                  "x = torch.from_numpy(pixels.copy()).permute(2, 0, 1)[None].float() / 127.5 - 1   "
                  f"# [1, {channels}, H, W] in [-1, 1]",
                  f'y = g.translate(x, direction="{way}")   # [1, C, H, W] in [-1, 1]'
                  + ('; "BtoA": the other way' if unpaired else "; the way it trained"),
                  "out = ((y[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).squeeze(-1)",
                  'Image.fromarray(out.numpy()).save("out.png")']
    elif "upscale" in run.capabilities:
        s = getattr(run.objective, "scale", None)
        lines += ["from PIL import Image", "import ganforge", "",
                  f'g = ganforge.load({py})',
                  f'sr = g.upscale(Image.open("in.png"))   # uint8 [{s or "s"}*h, {s or "s"}*w, 3], '
                  "tiled (tile=256 LR pixels)",
                  'Image.fromarray(sr).save("out.png")']
    else:
        lines += ["import ganforge", "", f'g = ganforge.load({py})']
    if "sample" in run.capabilities:
        lines.append(f"points = g.sample(16, seed=0)   # float [16, {run.point_dim}]" if run.point_dim
                     else "images = g.sample(16, seed=0)   # float [16, C, H, W] in [-1, 1]")
    lines += ["```", "", "```bash"]
    if "vocode" in run.capabilities:
        lines.append(f"ganforge vocode {sh} in.wav --out out.wav")
    if "convert" in run.capabilities:
        lines.append(f"ganforge convert {sh} in.wav --out out.wav --direction AtoB")
    if "translate" in run.capabilities:
        lines.append(f"ganforge translate {sh} in.png --out out.png"
                     + (" --direction AtoB" if _unpaired(run) else ""))
    if "upscale" in run.capabilities:
        lines.append(f"ganforge upscale {sh} in.png --out out.png")
    lines.append(f"ganforge serve {sh}")
    if plugins:
        start = lines.index("```bash") + 1
        lines[start:] = [f"GANFORGE_PLUGINS={','.join(plugins)} {line}" for line in lines[start:]]
    lines += ["```", "", "## Training config", ""]
    if run.environment:
        lines += [f"Trained with {environment_text(run.environment)}.", ""]
    if given is not None:
        lines += [f"`data.name` below is the preset's, not read: the run trained on {given}.", ""]
    lines += ["```yaml", cfg.to_yaml().rstrip(), "```", ""]
    return "\n".join(lines)


def environment_text(env: dict[str, Any]) -> str:
    """``LoadedRun.environment`` in words: "ganforge 0.1.0, torch 2.14.1, fp32 on CPU, 2 threads"."""
    precision, where, version = environment_parts(env)
    return f"ganforge {env.get('ganforge', '?')}, {version}, {precision} on {where}"


CARD_MARK = "A ganforge model: "  # the model card's first sentence (model_card)


def not_replaceable(out: Path) -> str | None:
    """Why --force may not replace ``out``, or None when it is an empty folder or a ganforge model
    folder, whole or damaged (a file deleted by hand). That is a folder that holds only files
    export writes (config.json, README.md, *.safetensors: nothing else, so no checkpoints/ or
    config.yaml of a run, and nothing of the user's is lost), and that says it is ganforge's: its
    config.json has the ``ganforge_model`` key, or, with no config.json, its README.md is the
    model card. Another tool's model folder (config.json, model.safetensors and README.md too)
    fails the first; a lone model.safetensors says nothing of where it came from, and stays."""
    if not out.is_dir():
        return "it is a file, not a folder"
    entries = sorted(out.iterdir())
    if not entries:
        return None
    foreign = [e.name for e in entries if not e.is_file() or e.is_symlink()
               or not (e.name in (MODEL_CONFIG, "README.md") or e.name.endswith(".safetensors"))]
    if foreign:
        return f"it holds {foreign[0]}, which export does not write"
    config, card = out / MODEL_CONFIG, out / "README.md"
    if config.is_file():
        try:
            meta = json.loads(config.read_text(encoding="utf-8"))
            marked = isinstance(meta, dict) and "ganforge_model" in meta
        except (OSError, ValueError, TypeError):  # unreadable: the card may still say whose it is
            marked = None
        if marked is not None:
            return None if marked else f"its {MODEL_CONFIG} is not a ganforge model's"
    try:
        if card.is_file() and CARD_MARK in card.read_text(encoding="utf-8", errors="replace")[:4096]:
            return None
    except OSError:
        pass
    return f"it has neither a ganforge {MODEL_CONFIG} nor ganforge's model card (README.md)"


def shareable_data_name(name: str) -> str:
    """A folder:/audio: data name with its path cut to the folder's own name (folder:cats): a run
    saves the path absolute (where it was read on this machine), which a shared folder must not
    publish. Other names unchanged."""
    for prefix in PATH_PREFIXES:
        path = name[len(prefix):].rstrip("/\\") if name.startswith(prefix) else ""
        if path:
            return prefix + (Path(path).name or path)
    return name


# An absolute path in free text (a description's overrides): POSIX (/...), home (~/...) or
# Windows (C:\..., \\server\...), starting a word (or after = or folder:) and running to the next
# space, quote, bracket, comma or semicolon; not a URL's //host
_START, _END = r"""(?<![^\s=:'"`(\[{,])""", r"""(?![^\s'"`;,()\[\]{}<>])"""
_ABS_PATH = re.compile(_START + r"""(?:~|[A-Za-z]:)?[\\/](?![/\s])[^\s'"`;,()\[\]{}<>]*""")


def _path_name(path: str) -> str:
    """The last folder or file name of ``path`` (either separator), or ``path`` when it has none."""
    return re.split(r"[\\/]", path.rstrip("\\/"))[-1] or path


def _machine_path(text: str) -> str | None:
    """``text`` cut to its name (``folder:``/``audio:`` prefix kept) when the whole of it is an
    absolute or home path, else None."""
    for prefix in ("", *PATH_PREFIXES):
        rest = text[len(prefix):] if text.startswith(prefix) else None
        if rest and (rest.startswith("~") or PurePosixPath(rest).is_absolute()
                     or PureWindowsPath(rest).is_absolute()):
            return prefix + _path_name(rest)
    return None


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _strings(v)


def shareable_value(value, also: tuple = ()):
    """``value`` (JSON-like: dicts, lists, strings, numbers) with every path of this machine cut
    to its folder's or file's name: strings that are an absolute path (``/home/me/runs/psnr``
    -> ``psnr``, ``folder:/data/cats`` -> ``folder:cats``), and absolute paths inside text (a
    description that repeats the overrides). ``also``: more paths to cut where text holds them
    (a run directory), which matters for paths with spaces that the text scan cuts short."""
    known = {str(p) for p in also if p} | {s.split(":", 1)[1] if s.startswith(PATH_PREFIXES) else s
                                           for s in _strings(value) if _machine_path(s) is not None}
    known = sorted({p.rstrip("\\/") for p in known if _machine_path(p.rstrip("\\/"))}, key=len, reverse=True)
    # each known path with its name as a replacement string (a backslash in it escaped)
    cuts = [(re.compile(_START + re.escape(p) + r"[\\/]?" + _END), _path_name(p).replace("\\", "\\\\"))
            for p in known]

    def text(s: str) -> str:
        whole = _machine_path(s)
        if whole is not None:
            return whole
        for pattern, name in cuts:
            s = pattern.sub(name, s)
        return _ABS_PATH.sub(lambda m: _path_name(m.group()), s)

    def walk(v):
        if isinstance(v, str):
            return text(v)
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(value)


def _assign(section, values: dict) -> None:
    """Set the text fields of dataclass ``section`` (nested ones too) to ``values`` (its dict)."""
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if dataclasses.is_dataclass(value) and isinstance(values.get(f.name), dict):
            _assign(value, values[f.name])
        elif isinstance(value, (str, list, tuple)) and f.name in values:
            setattr(section, f.name, values[f.name])


def shareable_config(cfg, also: tuple = ()):
    """The run's config as a model folder and an ONNX file show it, without this machine's
    paths: data.name's folder cut to its name, data.data_dir (where this machine keeps its
    datasets) at its default, and every other absolute path (sr.init_from, a path the
    description repeats) cut to its name (``shareable_value``; ``also``: more paths to cut,
    the run directory). Nothing that loads, serves or evaluates a model folder reads them
    (eval takes --ref and --data-dir; translate-eval reads a folder: dataset by that name, from
    where it runs; --interp reads the start weights the folder carries)."""
    shared = copy.deepcopy(cfg)
    shared.data.name = shareable_data_name(shared.data.name)
    shared.data.data_dir = None
    data_path = next((cfg.data.name[len(p):] for p in PATH_PREFIXES if cfg.data.name.startswith(p)), None)
    clean = shareable_value(shared.to_dict(), (*also, data_path, cfg.data.data_dir))
    _assign(shared, {k: v for k, v in clean.items() if k not in shared.sections})
    for name, section in shared.sections.items():
        _assign(section, clean[name])
    return shared


def machine_paths(run: LoadedRun) -> tuple[str, ...]:
    """Where this machine keeps the run (as given and resolved): paths a shared copy cuts to
    their names wherever text holds them (``shareable_value``)."""
    paths = {str(Path(run.run_dir).absolute()), str(Path(run.run_dir).resolve())}
    if getattr(run, "is_model_folder", False):
        return tuple(paths)
    return (*paths, str(Path(run.checkpoint).absolute()), str(Path(run.checkpoint).resolve()))


def source_name(run: LoadedRun) -> str:
    """What the model was exported from, named without this machine's paths: the run folder's
    name and the checkpoint (``mine/checkpoints/step_0000020``), or a model folder's name."""
    run_name = Path(run.run_dir).resolve().name
    if getattr(run, "is_model_folder", False):
        return run_name
    return f"{run_name}/checkpoints/{Path(run.checkpoint).name}"


def export_folder(run: LoadedRun, out: Path | str, *, force: bool = False) -> Path:
    """Write the model folder ``out`` (replaced only with ``force``, and only when it is empty or
    a ganforge model folder, whole or damaged: ``not_replaceable``)."""
    out = Path(out)
    restore_replaced(out)  # a --force killed while it replaced out: put back or clean up first
    if out.exists():
        why = not_replaceable(out)  # first: "pass --force" is no advice where --force is refused
        if why is not None:
            raise ConfigError(f"--force replaces only a model folder; {out} is something else "
                              f"({why}), so choose another --out" if force else
                              f"{out} already exists and is not a model folder ({why}), so --force "
                              f"would not replace it; choose another --out")
        if not force:
            raise ConfigError(f"{out} already exists; pass --force to replace it or choose another --out")
    nets = run.ema_nets or run.objective.nets  # the EMA generators; all nets when none is kept
    here = machine_paths(run)
    shared = shareable_config(run.config, here)
    evaluation = evaluation_numbers(run.run_dir, run.step)
    if isinstance(evaluation.get("protocol"), dict) and "reference" in evaluation["protocol"]:
        protocol = evaluation["protocol"]  # its reference is data.name: a folder's path too
        evaluation["protocol"] = {**protocol, "reference": shareable_data_name(str(protocol["reference"]))}
    evaluation = shareable_value(evaluation, here)
    meta = {"name": out.name, "source": source_name(run), "evaluation": evaluation,
            "evaluated": [e["step"] for e in logged_evaluations(run.run_dir)], "config": shared}
    state = shareable_value(run.objective.inference_state(), here)  # e.g. the PSNR run a GAN stage started from
    files = run.objective.inference_files()  # e.g. the weights an SR GAN stage started from (--interp)
    config = {"ganforge_model": 1, "family": run.config.objective,
              "capabilities": sorted(run.capabilities), "step": run.step,
              "class_names": run.class_names, "nets": sorted(nets), "source": meta["source"],
              "ema": run.ema_weights,
              "evaluation": meta["evaluation"], "objective_state": state, "files": sorted(files),
              "config": shared.to_dict(),
              # the run's own config hash: the folder's images carry it, as the run's do (its
              # config here is cut for sharing, and an older version's run saved fewer settings)
              "config_hash": provenance.run_config_hash(run),
              "environment": run.environment}  # where it was trained (None: a version before 2026-12-07)
    plugins = recorded_plugins(run.run_dir, to_load=True)
    if plugins:  # the modules outside ganforge its family or networks need imported (names only)
        config["plugins"] = plugins
    given = given_record(run.run_dir)
    if given is not None:  # trained on data passed from Python: its card, exported again, says so
        config["dataset"] = shareable_value(given, here)
    # written beside out and renamed in place of the old folder (atomic_path's replace_folder),
    # which is deleted only once the new one is in place; errors name out
    with atomic_path(out) as tmp:
        tmp.mkdir()
        save_tensors(ckpt.flatten_weights(nets), tmp / MODEL_WEIGHTS)
        for name, tensors in files.items():
            save_tensors({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / f"{name}.safetensors")
        atomic_write_text(tmp / MODEL_CONFIG, json.dumps(config, indent=2) + "\n")
        atomic_write_text(tmp / "README.md", model_card(run, meta))
    return out
