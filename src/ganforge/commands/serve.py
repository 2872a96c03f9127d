"""``ganforge serve RUN_OR_FOLDER [...]``: trained runs or model folders behind an HTTP API and a
web page (ganforge.serve.server), on uvicorn. Loopback only unless a token is set."""
from __future__ import annotations

import ipaddress
import math
from pathlib import Path

from . import add_run_arguments


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


def model_names(paths: list[str]) -> list[str]:
    """One name per model: its folder's name, made unique with -2, -3, ..."""
    names: list[str] = []
    for p in paths:
        base = Path(p).resolve().name or "model"
        name, k = base, 2
        while name in names:
            name, k = f"{base}-{k}", k + 1
        names.append(name)
    return names


def check_port(host: str, port: int) -> None:
    import socket

    from ..errors import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another "
                              f"--port or --host") from None


def cmd_serve(args) -> int:
    from ..errors import ConfigError

    if not is_loopback(args.host) and not args.token:
        raise ConfigError(f"--host {args.host} is reachable from other machines; set --token T (every "
                          f"/api call then needs 'Authorization: Bearer T') or use --host 127.0.0.1")
    for key in ("max_n", "max_batch", "max_pixels"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    for key, low in (("max_upload_mb", "positive"), ("max_audio_seconds", "positive"), ("batch_wait_ms", "at least 0")):
        value = getattr(args, key)
        if not (math.isfinite(value) and (value > 0 if low == "positive" else value >= 0)):  # NaN, inf too
            raise ConfigError(f"--{key.replace('_', '-')} must be a finite number {low}, got {value}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}; leave it out for torch's default")
    try:
        import uvicorn

        from ..serve.server import Settings, create_app
    except ImportError as exc:
        raise ConfigError(f"ganforge serve needs the serve extra ({exc.name} is missing): "
                          f"pip install 'ganforge[serve]'") from None
    from .. import api

    check_port(args.host, args.port)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    paths = [args.run_dir, *args.more]
    runs = {name: api.load(p, checkpoint=args.checkpoint) for name, p in zip(model_names(paths), paths)}
    settings = Settings(token=args.token, max_n=args.max_n, max_upload_mb=args.max_upload_mb,
                        max_pixels=args.max_pixels, max_audio_seconds=args.max_audio_seconds,
                        max_batch=args.max_batch,
                        batch_wait_ms=args.batch_wait_ms, cors=args.cors)
    app = create_app(runs, settings)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"ganforge: serving {', '.join(runs)} at http://{shown}:{args.port}/ (API docs at /docs; "
          f"{'token required' if args.token else 'no token'}; Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("serve", help="serve runs or model folders over HTTP, with a web page",
                              description="Serve trained runs or exported model folders: a JSON/PNG "
                                          "API (/api/models, /api/sample, /api/interpolate, "
                                          "/api/translate, /api/upscale, /api/vocode, /api/convert, "
                                          "/healthz, /metrics; OpenAPI "
                                          "at /docs) and a web page at /. Binds 127.0.0.1 unless "
                                          "--host says otherwise, which needs --token.")
    add_run_arguments(s, ema=False, run_help="a training run directory or an exported model folder")
    s.add_argument("more", nargs="*", metavar="RUN_OR_FOLDER", help="more models to serve")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every /api call")
    s.add_argument("--max-n", type=int, default=64, help="images per request (default 64)")
    s.add_argument("--max-upload-mb", type=float, default=8.0, help="upload size limit (default 8)")
    s.add_argument("--max-pixels", type=int, default=4_000_000,
                   help="pixels of an uploaded image, and of an upscaled one (default 4,000,000)")
    s.add_argument("--max-audio-seconds", type=float, default=60.0,
                   help="length of an uploaded recording, for vocoder and voice-conversion models (default 60)")
    s.add_argument("--max-batch", type=int, default=32,
                   help="images per forward pass when batching requests (1: no batching)")
    s.add_argument("--batch-wait-ms", type=float, default=0.0,
                   help="how long a batch waits for more requests (default 0: it takes those that "
                        "queued while the last batch ran, and a lone request runs at once)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch threads for inference (default: torch's, one per core); with batching "
                        "off and many small requests, 1 serves more (BENCHMARKS.md, Serving)")
    s.add_argument("--cors", metavar="ORIGIN", help="allow browser calls from this origin (default: none)")
    s.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"])
    s.set_defaults(func=cmd_serve)
