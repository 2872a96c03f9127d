"""Load benchmark of ``ganforge serve`` on loopback, plus PyTorch against onnxruntime.

    python benchmarks/serve_load.py --json serve-load.json           # about 6 minutes
    python benchmarks/serve_load.py --seconds 2 --requests 500       # a quick end-to-end check

1. For a DCGAN run (one 28x28 sample per request) and a Pix2Pix translation run (one 32x32 upload
   per request), with batching on (--max-batch 32) and off (--max-batch 1): 1, 8 and 32
   concurrent clients for --seconds each (default 10 s, not the issue's 30 s, so that the whole
   script stays near 6 minutes): requests/s, images/s, p50/p99 latency. The server is a real
   ``ganforge serve`` process on 127.0.0.1; clients are threads of this process with keep-alive
   connections (they share the machine's cores with the server, as a local client would).
2. Memory (VmRSS) of the DCGAN server before and after --requests requests (default 5,000).
3. The model's own time per image at batch 1, 4, 16 and 32 (``--breakdown-only`` runs just this
   and 4): the ceiling of the batching ratio, since a server adds the same per-request work to
   either side.
4. Latency of the generator in PyTorch against onnxruntime (the exported graph) at batch 1 and
   64 on CPU, for the DCGAN and the translation generator (median of --repeats calls).

The runs are trained for a few steps from the presets (speed does not depend on training), or
given with --dcgan RUN / --translate RUN. Nothing leaves the machine.
"""
from __future__ import annotations

import http.client
import io
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from _common import Parser, nonnegative_int, positive_float, positive_int, positive_ints, run_main

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import ganforge  # noqa: E402
from ganforge import api  # noqa: E402
from ganforge.config import load_config  # noqa: E402
from ganforge.serve import export  # noqa: E402


def tiny_run(preset: str, out: Path, steps: int = 2) -> Path:
    if not (out / "checkpoints").is_dir():
        _, cfg = load_config(preset, [f"train.steps={steps}", "train.checkpoint_every=2", "eval.every=0",
                                      "train.sample_every=1000"])
        api.train(cfg, out, progress=False, force=True)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, run: Path, max_batch: int, threads: int | None = None, *, src: Path | None = None,
                 env: dict[str, str] | None = None, more: list[Path] = (), wait_ms: float | None = None):
        """``src``: the ganforge source tree to serve from (default this checkout's); ``env``:
        extra environment variables of the server process; ``more``: more runs to serve."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **(env or {}), "PYTHONPATH": str(src or ROOT / "src")}
        self.proc = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", str(run), *map(str, more), "--port",
                                      str(self.port), "--max-batch", str(max_batch),
                                      *(["--threads", str(threads)] if threads else []),
                                      *(["--batch-wait-ms", str(wait_ms)] if wait_ms is not None else [])], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.close()
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def batches(self) -> tuple[float, float]:
        """(forward passes, images) so far, from the server's /metrics."""
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            text = r.read().decode()
        values = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                  if line.startswith(("ganforge_batch_images_count", "ganforge_batch_images_sum"))}
        return values.get("ganforge_batch_images_count", 0.0), values.get("ganforge_batch_images_sum", 0.0)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Client:
    """One keep-alive HTTP/1.1 connection (the standard library's http.client, lighter than
    httpx), so that less of the 2 cores the server shares with its clients goes to the clients;
    each row reports the clients' CPU per request. ``request`` returns the status code."""

    def __init__(self, url: str):
        host, port = url.split("//", 1)[1].split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> int:
        self.conn.request(method, path, body=body or None, headers=headers or {})
        response = self.conn.getresponse()
        response.read()
        return response.status

    def close(self) -> None:
        self.conn.close()


def upload_png() -> bytes:
    """The image every translate request uploads: 32x32 RGB noise, as a PNG."""
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "png")
    return buf.getvalue()


def make_request(kind: str, upload: bytes):
    if kind == "sample":
        return lambda c, i: c.request("POST", "/api/sample", json.dumps({"n": 1, "seed": i}).encode(),
                                      {"Content-Type": "application/json"})
    boundary = "ganforge-bench"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + upload + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return lambda c, i: c.request("POST", "/api/translate", body, headers)


def load(url: str, request, clients: int, seconds: float | None = None, total: int | None = None,
         server: Server | None = None):
    """``clients`` threads send requests back to back for ``seconds`` (or ``total`` requests);
    the clock starts once every client has its connection ready. With ``server``: its CPU time
    and this process's (the clients') per request, and the mean images per forward pass."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(10**9))
    ready = threading.Barrier(clients + 1)
    stop = [0.0]

    def worker():
        c = Client(url)
        try:
            c.request("GET", "/healthz")  # open the keep-alive connection before the clock starts
            ready.wait()
            while time.monotonic() < stop[0]:
                with lock:
                    i = next(counter)
                if total is not None and i >= total:
                    return
                t0 = time.perf_counter()
                ok = request(c, i) == 200
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors[0] += not ok
        finally:
            c.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    stop[0] = time.monotonic() + 1e9  # provisional: set properly at the barrier
    ready.wait()
    t0, client_cpu = time.perf_counter(), time.process_time()
    if server is not None:
        server_cpu, (passes, images) = server.cpu_seconds(), server.batches()
    stop[0] = time.monotonic() + (seconds if seconds is not None else 1e9)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    client_cpu = time.process_time() - client_cpu
    lat = sorted(latencies)
    extra = {}
    if server is not None and lat:
        server_cpu = server.cpu_seconds() - server_cpu
        passes2, images2 = server.batches()
        extra = {"server_cpu_ms_per_request": round(1000 * server_cpu / len(lat), 3),
                 "client_cpu_ms_per_request": round(1000 * client_cpu / len(lat), 3),
                 "mean_batch_images": round((images2 - images) / max(passes2 - passes, 1), 2)}

    def pct(q):
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "errors": errors[0], "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 1), "images_per_s": round(len(lat) / wall, 1),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99), **extra}


def memory_growth(server: Server, request, clients: int, total: int) -> dict:
    """The server's VmRSS before and after ``total`` more requests from ``clients`` clients."""
    before = server.rss_mb()
    load(server.url, request, clients, total=total)
    after = server.rss_mb()
    return {"requests": total, "rss_before_mb": round(before, 1), "rss_after_mb": round(after, 1),
            "growth_percent": round(100 * (after - before) / before, 2)}


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 3)


def torch_vs_onnx(run_dir: Path, capability: str, workdir: Path, repeats: int) -> list[dict]:
    from ganforge.serve.graph import build_graph

    run = ganforge.load(run_dir)
    path = workdir / f"{run_dir.name}.onnx"
    export.export_onnx(run, path, capability=capability, force=True)
    graph, inputs = build_graph(run, capability)
    session = export.ort_session(path)
    rows = []
    for batch in (1, 64):
        feed = {k: (v[:1].expand(batch, *v.shape[1:]).contiguous() if v.dim() else v) for k, v in inputs.items()}
        if capability == "translate":
            feed = {"image": torch.rand(batch, *inputs["image"].shape[1:2], 32, 32) * 2 - 1}
        with torch.inference_mode():
            t_torch = median_ms(lambda f=feed: graph(*f.values()), repeats)
        np_feed = {k: v.numpy() for k, v in feed.items()}
        t_onnx = median_ms(lambda f=np_feed: session.run(None, f), repeats)
        rows.append({"model": run_dir.name, "batch": batch, "pytorch_ms": t_torch, "onnxruntime_ms": t_onnx})
    return rows


def breakdown(run_dir: Path, repeats: int, threads: list[int | None]) -> dict:
    """Where one sample request's server time goes besides HTTP, median ms in this process:
    the model per image at batch 1, 4, 16 and 32 (for each torch thread setting), recording a
    request's inputs (z from its seed), and the PNG encoding. The rest of
    ``server_cpu_ms_per_request`` is HTTP, JSON, validation and the hand-offs between the event
    loop and the threads.

    ``forward_only_batching_gain``: the model's own images/s at its best batch size of these
    against batch 1, at the same thread setting, timed in this process alone. It is the scale of
    what batching can give a server of this model on this machine: even with HTTP free, its
    passes get no cheaper per image than this. Not a strict bound on the served ratio, since
    under load the event loop and the forward passes share the cores unevenly."""
    from ganforge.serve.graph import build_graph, record_sample
    from ganforge.serve.server import png_bytes

    run = ganforge.load(run_dir)
    graph, inputs = build_graph(run, "sample")
    image = run.sample(1, seed=0)
    before = torch.get_num_threads()
    out: dict = {"record_inputs_ms": median_ms(lambda: record_sample(run, 1, seed=3), repeats),
                 "png_ms": median_ms(lambda: png_bytes(image, 1), repeats), "model_per_image_ms": {}}
    try:
        for t in threads:
            torch.set_num_threads(t or before)  # default: torch's own setting, as the server's
            # the batch sizes take turns in blocks of 8 calls, so that a slow spell of the machine
            # (a virtual one's neighbours) falls on all of them alike; the first 3 calls of each
            # block are not timed (caches and allocator warm to that size, as in a server that
            # runs one size after another)
            feeds = {batch: [v[:1].expand(batch, *v.shape[1:]).contiguous() if v.dim() else v
                             for v in inputs.values()] for batch in (1, 4, 16, 32)}
            times: dict[int, list[float]] = {batch: [] for batch in feeds}
            with torch.inference_mode():
                for _ in range(max(1, repeats // 5)):
                    for batch, feed in feeds.items():
                        for i in range(8):
                            t0 = time.perf_counter()
                            graph(*feed)
                            if i >= 3:
                                times[batch].append(time.perf_counter() - t0)
            per_image = {batch: round(1000 * statistics.median(ts) / batch, 3) for batch, ts in times.items()}
            key = f"threads_{t or 'default'}"
            out["model_per_image_ms"][key] = per_image
            best = min(per_image.values())
            out.setdefault("forward_only_batching_gain", {})[key] = round(per_image[1] / best, 2)
    finally:
        torch.set_num_threads(before)
    return out


def main() -> None:
    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--dcgan", type=Path, help="a DCGAN run (default: dcgan-fashion-mnist, 2 steps)")
    p.add_argument("--translate", type=Path, help="a translation run (default: pix2pix-denoise, 2 steps)")
    p.add_argument("--seconds", type=positive_float, default=10.0, help="per client count and mode (default 10)")
    p.add_argument("--requests", type=nonnegative_int, default=5000, help="requests for the memory check")
    p.add_argument("--repeats", type=positive_int, default=50, help="timed calls per PyTorch/ONNX cell")
    p.add_argument("--clients", type=positive_ints, default="1,8,32",
                   help="client counts, comma-separated (default 1,8,32)")
    p.add_argument("--routes", default="sample,translate", help="sample, translate or both (default)")
    p.add_argument("--threads", default="default",
                   help="the server's torch threads, comma-separated settings to compare: 'default' "
                        "(torch's, one per core) or a number (default: default)")
    p.add_argument("--no-onnx", action="store_true", help="skip the PyTorch/onnxruntime latencies")
    p.add_argument("--breakdown-only", action="store_true",
                   help="no servers: only the sample request's breakdown (model per image by batch size "
                        "and thread setting, inputs, PNG) and, unless --no-onnx, PyTorch/onnxruntime")
    p.add_argument("--workdir", type=Path, default=Path("runs/serve-load"))
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    clients_list = args.clients
    routes = args.routes.split(",")
    runs = {}
    if "sample" in routes:
        runs["sample"] = args.dcgan or tiny_run("dcgan-fashion-mnist", args.workdir / "dcgan")
    if "translate" in routes and not (args.breakdown_only and args.no_onnx):  # else unused
        runs["translate"] = args.translate or tiny_run("pix2pix-denoise", args.workdir / "pix2pix")
    upload = upload_png()
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
              "seconds_per_cell": args.seconds, "load": [], "memory": {}, "torch_vs_onnx": []}

    thread_settings = [None if t == "default" else int(t) for t in args.threads.split(",")]
    for kind, run in ({} if args.breakdown_only else runs).items():
        for threads in thread_settings:
            for max_batch in (32, 1):
                server = Server(run, max_batch, threads)
                try:
                    load(server.url, make_request(kind, upload), 4, seconds=1.0)  # warm-up
                    for clients in clients_list:
                        row = load(server.url, make_request(kind, upload), clients, seconds=args.seconds,
                                   server=server)
                        row.update(model=kind, batching=max_batch > 1, threads=threads or "default")
                        result["load"].append(row)
                        print(f"{kind:9s} batching={'on ' if max_batch > 1 else 'off'} threads={threads or 'default'} "
                              f"{clients:2d} clients: "
                              f"{row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                              f"p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}  CPU ms/request: server "
                              f"{row['server_cpu_ms_per_request']:.2f}, clients {row['client_cpu_ms_per_request']:.2f}"
                              f"  images/pass {row['mean_batch_images']:.1f}", flush=True)
                    if kind == "sample" and max_batch > 1 and args.requests > 0 and not result["memory"]:
                        result["memory"] = m = memory_growth(server, make_request(kind, upload), 8, args.requests)
                        print(f"memory: {m['rss_before_mb']:.1f} MB -> {m['rss_after_mb']:.1f} MB after "
                              f"{args.requests} requests ({m['growth_percent']:+.2f}%)", flush=True)
                finally:
                    server.close()

    if "sample" in runs:
        result["sample_breakdown"] = b = breakdown(runs["sample"], args.repeats, thread_settings)
        print(f"one sample request, besides HTTP: record inputs {b['record_inputs_ms']} ms, "
              f"PNG {b['png_ms']} ms", flush=True)
        for key, per_image in b["model_per_image_ms"].items():
            print(f"model ms per image, {key}: " + ", ".join(f"batch {k} {v}" for k, v in per_image.items())
                  + f"; batching gains at most {b['forward_only_batching_gain'][key]}x in the forward pass "
                    f"alone", flush=True)
    for kind, run in ({} if args.no_onnx else runs).items():
        for row in torch_vs_onnx(run, kind, args.workdir, args.repeats):
            result["torch_vs_onnx"].append(row)
            print(f"{row['model']:12s} batch {row['batch']:2d}: PyTorch {row['pytorch_ms']:8.3f} ms  "
                  f"onnxruntime {row['onnxruntime_ms']:8.3f} ms", flush=True)

    def images_per_s(kind, batching, threads, clients=32):
        return next(r["images_per_s"] for r in result["load"] if r["model"] == kind and r["batching"] == batching
                    and r["clients"] == clients and r["threads"] == (threads or "default"))

    for kind in runs if max(clients_list) == 32 and not args.breakdown_only else ():
        for threads in thread_settings:
            ratio = images_per_s(kind, True, threads) / max(images_per_s(kind, False, threads), 1e-9)
            result[f"{kind}_batching_speedup_32_clients_threads_{threads or 'default'}"] = round(ratio, 2)
            print(f"{kind}, threads={threads or 'default'}: batching gives {ratio:.2f}x the images/s of "
                  f"unbatched serving at 32 clients")
        if len(thread_settings) > 1:  # the fairest comparison: each side at its best thread setting
            best_on = max(images_per_s(kind, True, t) for t in thread_settings)
            best_off = max(images_per_s(kind, False, t) for t in thread_settings)
            result[f"{kind}_batching_speedup_32_clients_best"] = round(best_on / max(best_off, 1e-9), 2)
            print(f"{kind}, each at its best thread setting: {best_on / max(best_off, 1e-9):.2f}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
