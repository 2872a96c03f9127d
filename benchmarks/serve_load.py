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
3. Latency of the generator in PyTorch against onnxruntime (the exported graph) at batch 1 and
   64 on CPU, for the DCGAN and the translation generator (median of --repeats calls).

The runs are trained for a few steps from the presets (speed does not depend on training), or
given with --dcgan RUN / --translate RUN. Nothing leaves the machine.
"""
from __future__ import annotations

import argparse
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import ganforge  # noqa: E402
from ganforge import api  # noqa: E402
from ganforge.config import load_config  # noqa: E402
from ganforge.serve import export  # noqa: E402

CLIENTS = (1, 8, 32)


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
    def __init__(self, run: Path, max_batch: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        self.proc = subprocess.Popen([sys.executable, "-m", "ganforge", "serve", str(run), "--port",
                                      str(self.port), "--max-batch", str(max_batch)], env=env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.close()
        raise RuntimeError("server did not start")

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def make_request(kind: str, upload: bytes):
    if kind == "sample":
        return lambda c, i: c.post("/api/sample", json={"n": 1, "seed": i})
    return lambda c, i: c.post("/api/translate", files={"file": ("x.png", upload, "image/png")})


def load(url: str, request, clients: int, seconds: float | None = None, total: int | None = None):
    """``clients`` threads send requests back to back for ``seconds`` (or ``total`` requests);
    the clock starts once every client has its connection ready."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(10**9))
    ready = threading.Barrier(clients + 1)
    stop = [0.0]

    def worker():
        with httpx.Client(base_url=url, timeout=60) as c:
            c.get("/healthz")  # open the keep-alive connection before the clock starts
            ready.wait()
            while time.monotonic() < stop[0]:
                with lock:
                    i = next(counter)
                if total is not None and i >= total:
                    return
                t0 = time.perf_counter()
                ok = request(c, i).status_code == 200
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    errors[0] += not ok

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    stop[0] = time.monotonic() + 1e9  # provisional: set properly at the barrier
    ready.wait()
    t0 = time.perf_counter()
    stop[0] = time.monotonic() + (seconds if seconds is not None else 1e9)
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(q):
        return round(1000 * lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else float("nan")

    return {"clients": clients, "requests": len(lat), "errors": errors[0], "seconds": round(wall, 2),
            "requests_per_s": round(len(lat) / wall, 1), "images_per_s": round(len(lat) / wall, 1),
            "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dcgan", type=Path, help="a DCGAN run (default: dcgan-fashion-mnist, 2 steps)")
    p.add_argument("--translate", type=Path, help="a translation run (default: pix2pix-denoise, 2 steps)")
    p.add_argument("--seconds", type=float, default=10.0, help="per client count and mode (default 10)")
    p.add_argument("--requests", type=int, default=5000, help="requests for the memory check")
    p.add_argument("--repeats", type=int, default=50, help="timed calls per PyTorch/ONNX cell")
    p.add_argument("--workdir", type=Path, default=Path("runs/serve-load"))
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    runs = {"sample": args.dcgan or tiny_run("dcgan-fashion-mnist", args.workdir / "dcgan"),
            "translate": args.translate or tiny_run("pix2pix-denoise", args.workdir / "pix2pix")}
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, "png")
    upload = buf.getvalue()
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
              "seconds_per_cell": args.seconds, "load": [], "memory": {}, "torch_vs_onnx": []}

    for kind, run in runs.items():
        for max_batch in (32, 1):
            server = Server(run, max_batch)
            try:
                load(server.url, make_request(kind, upload), 4, seconds=1.0)  # warm-up
                for clients in CLIENTS:
                    row = load(server.url, make_request(kind, upload), clients, seconds=args.seconds)
                    row.update(model=kind, batching=max_batch > 1)
                    result["load"].append(row)
                    print(f"{kind:9s} batching={'on ' if max_batch > 1 else 'off'} {clients:2d} clients: "
                          f"{row['requests_per_s']:8.1f} req/s  p50 {row['p50_ms']:7.2f} ms  "
                          f"p99 {row['p99_ms']:7.2f} ms  errors {row['errors']}", flush=True)
                if kind == "sample" and max_batch > 1:
                    before = server.rss_mb()
                    load(server.url, make_request(kind, upload), 8, total=args.requests)
                    after = server.rss_mb()
                    result["memory"] = {"requests": args.requests, "rss_before_mb": round(before, 1),
                                        "rss_after_mb": round(after, 1),
                                        "growth_percent": round(100 * (after - before) / before, 2)}
                    print(f"memory: {before:.1f} MB -> {after:.1f} MB after {args.requests} requests "
                          f"({result['memory']['growth_percent']:+.2f}%)", flush=True)
            finally:
                server.close()

    for kind, run in runs.items():
        for row in torch_vs_onnx(run, kind, args.workdir, args.repeats):
            result["torch_vs_onnx"].append(row)
            print(f"{row['model']:12s} batch {row['batch']:2d}: PyTorch {row['pytorch_ms']:8.3f} ms  "
                  f"onnxruntime {row['onnxruntime_ms']:8.3f} ms", flush=True)

    def images_per_s(kind, batching, clients=32):
        return next(r["images_per_s"] for r in result["load"]
                    if r["model"] == kind and r["batching"] == batching and r["clients"] == clients)

    for kind in runs:
        ratio = images_per_s(kind, True) / max(images_per_s(kind, False), 1e-9)
        result[f"{kind}_batching_speedup_32_clients"] = round(ratio, 2)
        print(f"{kind}: batching gives {ratio:.2f}x the images/s of unbatched serving at 32 clients")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
