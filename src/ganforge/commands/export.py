"""``ganforge export RUN --format onnx|folder --out OUT``: a trained run as an ONNX graph of one
capability (checked with onnxruntime) or as a self-contained model folder."""
from __future__ import annotations

from ..errors import ConfigError, shell_arg
from . import add_run_arguments


def cmd_export(args) -> int:
    from .. import api
    from ..serve import export

    if args.format == "folder" and args.truncation is not None:
        raise ConfigError("--truncation applies to --format onnx only (a model folder keeps every "
                          "truncation); drop it")
    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    if args.format == "folder":
        out = export.export_folder(run, args.out, force=args.force)
        files = ", ".join(sorted(p.name for p in out.iterdir() if p.is_file()))  # with a family's extras
        print(f"ganforge: wrote model folder {out} ({files}) from "
              f"{run.checkpoint} (step {run.step}); load it with ganforge.load({str(out)!r}) or "
              f"ganforge serve {shell_arg(out)}")
        return 0
    result = export.export_onnx(run, args.out, capability=args.capability, direction=args.direction,
                                force=args.force, truncation=args.truncation)
    inputs = ", ".join(f"{k} [{', '.join(map(str, v))}]" for k, v in result["inputs"].items())  # [batch, 100]
    fixed = "truncation_state" in result
    t = "none" if result.get("truncation") is None else f"{result['truncation']:g}"
    what = result["capability"] + (f" {result['direction']}" if "direction" in result else "")  # translate AtoB
    print(f"ganforge: wrote {result['path']} ({what}; inputs {inputs}; dynamic batch"
          f"{' and size' if 'image' in result['inputs'] else ''}{f'; fixed to truncation {t}' if fixed else ''}"
          f"); onnxruntime matches PyTorch to {result['max_abs_diff']:.2g} (tolerance {export.PARITY_TOL:g})")
    if fixed and args.truncation is None:
        print(f"ganforge: this graph holds one truncation ({result['truncation_state']}); exported at "
              f"objective={run.config.objective}'s default, no truncation (z untruncated); pass "
              f"--truncation T for another")
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("export", help="export a run to ONNX or to a model folder",
                              description="Export a trained run: --format onnx writes the network "
                                          "behind one capability (sample, translate, upscale) with "
                                          "dynamic batch (and image size), checked against PyTorch "
                                          "with onnxruntime; --format folder writes config.json, "
                                          "model.safetensors (EMA weights) and a README.md model "
                                          "card that ganforge.load and ganforge serve accept.")
    add_run_arguments(s, ema=False, out={"required": True, "help": "a .onnx file or a folder"},
                      force="overwrite --out (a folder only if it is a model folder)")
    s.add_argument("--format", required=True, choices=["onnx", "folder"],
                   help="onnx: one graph file for onnxruntime; folder: config.json, the weights and a model card, "
                        "which ganforge.load and ganforge serve take")
    s.add_argument("--capability", choices=["sample", "translate", "upscale"],
                   help="onnx: which capability to export (default: the first the run has)")
    s.add_argument("--direction", choices=["AtoB", "BtoA"],
                   help="onnx, translation runs: which generator; default: a paired run's own "
                        "(translate.direction), an unpaired run's AtoB")
    s.add_argument("--truncation", type=float, metavar="T",
                   help="onnx, samplers whose graph holds state for one truncation (standing "
                        "BatchNorm statistics): the truncation to fix it to (default: none); recorded in the "
                        "file's metadata")
    s.set_defaults(func=cmd_export)
