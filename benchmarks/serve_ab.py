"""Side-by-side A/B of ``ganforge serve`` settings or source trees under load.

Every configuration's server is started at once (an idle server costs no CPU) and the load
alternates between them in short cells, round after round, the order reversed every other
round, so that the machine's drift over minutes hits every configuration alike; the medians
over the rounds are the result. Separate benchmark runs minutes apart differed by up to a
fifth on this 2-core machine, more than the effects measured with this script.

    python benchmarks/serve_ab.py --server on --server off,max_batch=1 --rounds 8 --seconds 8
    python benchmarks/serve_ab.py --server old,src=/tmp/old/src --server new   # two checkouts
    python benchmarks/serve_ab.py --route translate --server on --server "passive,env:OMP_WAIT_POLICY=PASSIVE"

A server is ``LABEL[,max_batch=N][,threads=N][,wait_ms=MS][,src=PATH][,env:VAR=VALUE...]``. The runs are
serve_load.py's (a DCGAN run for ``sample``, a Pix2Pix run for ``translate``, trained for a few
steps), one image per request, clients on loopback as in serve_load.py.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from _common import Parser, positive_float, positive_int, run_main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_load as sl  # noqa: E402


def parse_server(text: str) -> dict:
    """--server's argparse type: a bad item ends as one line naming it, before any server starts."""
    label, *items = text.split(",")
    spec: dict = {"label": label, "max_batch": 32, "threads": None, "wait_ms": None, "src": None, "env": {}}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"'{item}' in {text} is not key=value")
        if key.startswith("env:"):
            spec["env"][key[4:]] = value
        elif key in ("max_batch", "threads"):
            try:
                spec[key] = positive_int(value)
            except argparse.ArgumentTypeError as exc:
                raise argparse.ArgumentTypeError(f"{key} in {text} {exc}") from None
        elif key == "wait_ms":
            try:
                spec[key] = float(value)
            except ValueError:
                raise argparse.ArgumentTypeError(f"wait_ms in {text} must be a number, not '{value}'") from None
        elif key == "src":
            spec["src"] = Path(value)
        else:
            raise argparse.ArgumentTypeError(f"unknown key '{key}' in {text}; use max_batch, threads, wait_ms, "
                                             f"src or env:VAR")
    return spec


def main() -> None:
    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--server", action="append", type=parse_server, required=True,
                   help="a configuration (see above); repeat")
    p.add_argument("--route", choices=["sample", "translate"], default="sample")
    p.add_argument("--clients", type=positive_int, default=32)
    p.add_argument("--rounds", type=positive_int, default=8)
    p.add_argument("--seconds", type=positive_float, default=8.0, help="per cell")
    p.add_argument("--workdir", type=Path, default=sl.ROOT / "runs" / "serve-load")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    specs = args.server
    if len({s["label"] for s in specs}) != len(specs):
        p.error("give each --server its own label")
    preset = "dcgan-fashion-mnist" if args.route == "sample" else "pix2pix-denoise"
    run = sl.tiny_run(preset, args.workdir / ("dcgan" if args.route == "sample" else "pix2pix"))
    request = sl.make_request(args.route, sl.upload_png())
    servers: dict[str, sl.Server] = {}
    cells: dict[str, list[dict]] = {s["label"]: [] for s in specs}
    try:
        for s in specs:
            servers[s["label"]] = sl.Server(run, s["max_batch"], s["threads"], src=s["src"], env=s["env"],
                                               wait_ms=s["wait_ms"])
        for server in servers.values():
            sl.load(server.url, request, min(4, args.clients), seconds=2.0)  # warm-up
        for r in range(args.rounds):
            order = list(servers) if r % 2 == 0 else list(servers)[::-1]
            for label in order:
                cells[label].append(sl.load(servers[label].url, request, args.clients, seconds=args.seconds,
                                            server=servers[label]))
            print(f"round {r}: " + ", ".join(f"{k} {v[-1]['requests_per_s']:.1f}" for k, v in cells.items()),
                  flush=True)
    finally:
        for server in servers.values():
            server.close()
    summary = {}
    for label, rows in cells.items():
        rps = [c["requests_per_s"] for c in rows]
        summary[label] = {"median_requests_per_s": statistics.median(rps), "min": min(rps), "max": max(rps),
                          "median_p99_ms": statistics.median(c["p99_ms"] for c in rows),
                          "errors": sum(c["errors"] for c in rows)}
        print(f"{label:24s} median {summary[label]['median_requests_per_s']:7.1f} req/s (min {min(rps):.1f}, "
              f"max {max(rps):.1f}), median p99 {summary[label]['median_p99_ms']:.1f} ms, "
              f"errors {summary[label]['errors']}")
    if args.json:
        args.json.write_text(json.dumps({"route": args.route, "clients": args.clients, "rounds": args.rounds,
                                         "seconds": args.seconds, "servers": specs, "summary": summary,
                                         "cells": cells}, indent=1, default=str))
        print(f"wrote {args.json}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
