"""``ganforge export RUN --format onnx|folder --out OUT``: a trained run as an ONNX graph of one
capability (checked with onnxruntime) or as a self-contained model folder."""
from __future__ import annotations

from . import add_run_arguments


def cmd_export(args) -> int:
    from .. import api
    from ..serve import export

    run = api.load(args.run_dir, checkpoint=args.checkpoint)
    if args.format == "folder":
        out = export.export_folder(run, args.out, force=args.force)
        print(f"ganforge: wrote model folder {out} (config.json, model.safetensors, README.md) from "
              f"{run.checkpoint} (step {run.step}); load it with ganforge.load('{out}') or "
              f"ganforge serve {out}")
        return 0
    result = export.export_onnx(run, args.out, capability=args.capability, direction=args.direction,
                                force=args.force)
    inputs = ", ".join(f"{k} {v}" for k, v in result["inputs"].items())
    print(f"ganforge: wrote {result['path']} ({result['capability']}; inputs {inputs}; dynamic batch"
          f"{' and size' if 'image' in result['inputs'] else ''}); onnxruntime matches PyTorch to "
          f"{result['max_abs_diff']:.2g} (tolerance {export.PARITY_TOL:g})")
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
    s.add_argument("--format", required=True, choices=["onnx", "folder"])
    s.add_argument("--capability", choices=["sample", "translate", "upscale"],
                   help="onnx: which capability to export (default: the first the run has)")
    s.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                   help="onnx, translation runs: which generator (BtoA: unpaired runs only)")
    s.set_defaults(func=cmd_export)
