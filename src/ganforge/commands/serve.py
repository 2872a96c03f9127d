"""``ganforge serve RUN_OR_FOLDER [...]``: trained runs or model folders behind an HTTP API and a
web page (ganforge.serve.server), on uvicorn. Loopback only unless a token is set."""
from __future__ import annotations

import contextlib
import ipaddress
import math
import os
import time
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


# Seconds a Ctrl-C (or SIGTERM) waits for the requests in flight before dropping them: a client
# that holds a half-sent request would otherwise keep the server up forever
GRACE_S = 5
BACKLOG = 2048  # uvicorn's default


def listen(host: str, port: int) -> list:
    """Sockets listening on ``host``:``port`` (``localhost``: each of its addresses), bound before
    the models load, so that a port in use is a one-line error at once, and the server's
    "serving" line is true when printed (a second server on the port used to load its models,
    say it served, and fail in uvicorn's bind)."""
    import errno
    import socket

    from ..errors import ConfigError

    if not 0 < port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {port}")
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot listen on {shown} ({exc.strerror}); check --host") from None
    sockets: list[socket.socket] = []
    skipped: OSError | None = None
    try:
        for family, kind, proto, _, address in dict.fromkeys(found):  # as asyncio's create_server binds
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno != errno.EADDRNOTAVAIL:
                    raise
                skipped = exc  # that family is off here (localhost's ::1): asyncio skips it too
                sockets.pop().close()
                continue
            sock.listen(BACKLOG)  # listening: another bind with SO_REUSEADDR now fails
        if not sockets:
            raise skipped
    except OSError as exc:
        for sock in sockets:
            sock.close()
        raise ConfigError(f"cannot listen on {shown} ({exc.strerror}); choose another --port or "
                          f"--host") from None
    return sockets


def check_port(host: str, port: int) -> None:
    """A ConfigError when ``host``:``port`` cannot be listened on now."""
    for sock in listen(host, port):
        sock.close()


def check_token(token: str | None) -> None:
    """A ConfigError for a --token no request can send: empty (``--token "$TOKEN"`` with TOKEN
    unset had started a server that said "no token" and refused every call), or with spaces at
    either end (a Bearer header's token is read without them)."""
    from ..errors import ConfigError

    if token is None:
        return
    if not token.strip():
        raise ConfigError("--token is empty (was $TOKEN set?); give a token or leave out --token")
    if token != token.strip():
        raise ConfigError("--token starts or ends with spaces, which no 'Authorization: Bearer' header "
                          "carries; give the token without them")


def check_distinct(paths: list[str]) -> None:
    """A ConfigError for a folder given twice (``runs/a ./runs/a/``): it had been loaded and
    served once per mention, as a, a-2, a-3."""
    from ..errors import ConfigError

    seen: dict[Path, str] = {}
    for p in paths:
        key = Path(p).resolve()
        if key in seen:
            same = p if p == seen[key] else f"{seen[key]} and {p}"
            raise ConfigError(f"{same} is given twice (the same folder, {key}); give each model once")
        seen[key] = p


def still_training_notes(runs: dict, paths: list[str]) -> list[str]:
    """A line for each served run that a live ``ganforge train`` holds: the server keeps the
    checkpoint it loaded, and does not pick up the ones training writes later."""
    from ..rundir import is_locked

    return [f"ganforge: note: run {name} ({p}) is still training; serving its checkpoint of step "
            f"{run.step}, and serve does not pick up later checkpoints (restart it to serve a newer one)"
            for (name, run), p in zip(runs.items(), paths) if Path(p).is_dir() and is_locked(Path(p))]


def cmd_serve(args) -> int:
    from ..errors import ConfigError

    check_token(args.token)
    if not args.host.strip():
        raise ConfigError(f"--host is empty{'' if not args.host else ' (only spaces)'}; give an address to "
                          f"bind, e.g. --host 127.0.0.1 (the default) or --host 0.0.0.0 with --token")
    if not is_loopback(args.host) and not args.token:
        raise ConfigError(f"--host {args.host} is reachable from other machines; set --token T (every "
                          f"/api call then needs 'Authorization: Bearer T') or use --host 127.0.0.1")
    for key in ("max_n", "max_batch", "max_pixels"):
        if getattr(args, key) < 1:
            raise ConfigError(f"--{key.replace('_', '-')} must be at least 1, got {getattr(args, key)}")
    for key, low in (("max_upload_mb", "above 0"), ("max_audio_seconds", "above 0"), ("batch_wait_ms", "at least 0")):
        value = getattr(args, key)
        if not (math.isfinite(value) and (value > 0 if low == "above 0" else value >= 0)):  # NaN, inf too
            raise ConfigError(f"--{key.replace('_', '-')} must be a finite number {low}, got {value}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}; leave it out for torch's default")
    try:
        import uvicorn  # noqa: F401

        from ..serve.server import Settings, create_app
    except ImportError as exc:
        raise ConfigError(f"ganforge serve needs the serve extra ({exc.name} is missing): "
                          f"pip install 'ganforge[serve]'") from None
    from .. import api

    paths = [args.run_dir, *args.more]
    check_distinct(paths)  # before the port is taken and anything loads
    sockets = listen(args.host, args.port)  # closed by uvicorn's shutdown, or below
    try:
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        runs = {name: api.load(p, checkpoint=args.checkpoint) for name, p in zip(model_names(paths), paths)}
        for note in still_training_notes(runs, paths):
            print(note, flush=True)
        settings = Settings(token=args.token, max_n=args.max_n, max_upload_mb=args.max_upload_mb,
                            max_pixels=args.max_pixels, max_audio_seconds=args.max_audio_seconds,
                            max_batch=args.max_batch,
                            batch_wait_ms=args.batch_wait_ms, cors=args.cors,
                            provenance=not args.no_provenance)
        app = create_app(runs, settings)
        shown = f"[{args.host}]" if ":" in args.host else args.host
        print(f"ganforge: serving {', '.join(runs)} at http://{shown}:{args.port}/ (API docs at /docs; "
              f"{'token required' if args.token else 'no token'}; Ctrl-C stops)", flush=True)
        return run_server(app, sockets, args.log_level)
    finally:
        for sock in sockets:
            sock.close()


def run_server(app, sockets: list, log_level: str) -> int:
    """Serves ``app`` on the listening ``sockets`` until Ctrl-C or SIGTERM: 0 when every request in
    flight was answered and the models' passes ended within GRACE_S; when some were dropped (the
    grace ran out, or a second Ctrl-C), one line and 130 (SIGTERM: 143), without uvicorn's
    tracebacks."""
    import logging
    import signal
    import sys
    import threading

    import uvicorn

    # lifespan off: the models' threads are stopped below, once uvicorn has stopped (after a
    # second Ctrl-C, uvicorn would leave the app's lifespan task to be cancelled, with a traceback)
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off",
                                           timeout_graceful_shutdown=GRACE_S))
    received: list[int] = []
    handled = (signal.SIGINT, signal.SIGTERM)
    # uvicorn takes Ctrl-C and SIGTERM while it serves and raises each again once stopped: here
    # they are noted, not a KeyboardInterrupt out of its cleanup (nor, as Python's default handler
    # is not in place, does asyncio's runner cancel the requests with tracebacks of its own); they
    # stay noted while the models' threads are stopped, so a second Ctrl-C then ends the wait
    main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, lambda sig, frame: received.append(sig)) for sig in handled} if main else {}
    quiet = QuietCancel()
    logging.getLogger("uvicorn.error").addFilter(quiet)
    try:
        try:
            server.run(sockets=sockets)
        finally:
            logging.getLogger("uvicorn.error").removeFilter(quiet)
        clean = not (server.force_exit or app.state.dropped or quiet.dropped)
        # uvicorn waits only for requests it holds: a pass whose client has left (a 499) may still
        # be running, and the interpreter's exit would tear torch down under its thread
        # ("terminate called without an active exception", SIGABRT, exit 134); it gets the grace
        # the requests had, up to another signal
        seen = len(received)
        stopped = _workers_stopped(app.state.workers.values(), GRACE_S if clean else DROP_JOIN_S,
                                   interrupted=lambda: len(received) > seen)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if clean and stopped:
        app.state.close()  # the models' threads, ended by now
        return 0
    terminated = signal.SIGTERM in received and signal.SIGINT not in received
    print(f"ganforge: {'stopped by SIGTERM' if terminated else 'interrupted'}; requests in flight were dropped",
          file=sys.stderr, flush=True)
    code = 143 if terminated else 130
    if not stopped:  # a model's pass is still running: end without the interpreter's teardown
        sys.stdout.flush()
        os._exit(code)
    return code


DROP_JOIN_S = 1.0  # how long a stop that dropped requests waits for a model's pass to end


def _workers_stopped(workers, timeout: float, interrupted=lambda: False) -> bool:
    """Stop the models' threads without the jobs of the dropped requests (still queued); whether
    each has ended within ``timeout`` seconds, or before ``interrupted()`` turned true (False:
    one is inside a forward pass)."""
    import queue

    workers = list(workers)
    for w in workers:
        with contextlib.suppress(queue.Empty):
            while True:
                w.queue.get_nowait()
        w.queue.put(None)
    deadline = time.monotonic() + timeout
    for w in workers:
        while w.thread.is_alive() and not interrupted() and time.monotonic() < deadline:
            w.thread.join(min(0.1, max(0.0, deadline - time.monotonic())))
    return not any(w.thread.is_alive() for w in workers)


class QuietCancel:
    """Drops uvicorn's "Cancel N running task(s), timeout graceful shutdown exceeded" log line:
    run_server says it in its own line."""

    def __init__(self):
        self.dropped = False

    def filter(self, record) -> bool:
        if str(record.msg).startswith("Cancel %s running task"):
            self.dropped = True
            return False
        return True


def register(subparsers, parser_class) -> None:
    s = subparsers.add_parser("serve", help="serve runs or model folders over HTTP, with a web page",
                              description="Serve trained runs or exported model folders: a JSON/PNG "
                                          "API (/api/models, /api/sample, /api/interpolate, "
                                          "/api/translate, /api/upscale, /api/vocode, /api/convert, "
                                          "/healthz, /metrics; OpenAPI "
                                          "at /docs) and a web page at /. Binds 127.0.0.1 unless "
                                          "--host says otherwise, which needs --token.")
    add_run_arguments(s, ema=False, run_help="a training run directory or an exported model folder")
    s.add_argument("more", nargs="*", default=[], metavar="RUN_OR_FOLDER", help="more models to serve")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    s.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every /api call")
    s.add_argument("--max-n", type=int, default=64, help="images per request (default 64)")
    s.add_argument("--max-upload-mb", type=float, default=8.0, help="upload size limit (default 8)")
    s.add_argument("--max-pixels", type=int, default=4_000_000,
                   help="pixels of an uploaded image, and of an upscaled one (default 4,000,000)")
    s.add_argument("--max-audio-seconds", type=float, default=60.0,
                   help="length of an uploaded recording, for vocoder and voice-conversion models (default 60)")
    s.add_argument("--max-batch", type=int, default=32,
                   help="images per forward pass when batching requests (default 32; 1: no batching)")
    s.add_argument("--batch-wait-ms", type=float, default=0.0,
                   help="how long a batch waits for more requests (default 0: it takes those that "
                        "queued while the last batch ran, and a lone request runs at once)")
    s.add_argument("--threads", type=int, default=None,
                   help="torch threads for inference (default: torch's, one per core); with batching "
                        "off and many small requests, 1 serves more (BENCHMARKS.md, Serving)")
    s.add_argument("--cors", metavar="ORIGIN", help="allow browser calls from this origin (default: none)")
    s.add_argument("--no-provenance", action="store_true",
                   help="do not embed the 'generated by ganforge' metadata (PNG text chunks; a .npz's "
                        "provenance array: version, config hash, step, seed, class) in the served images")
    s.add_argument("--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"],
                   help="uvicorn's log level (default warning)")
    s.set_defaults(func=cmd_serve)
