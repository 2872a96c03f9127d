"""Serving speech: ``ganforge serve`` of a vocoder run and a voice-conversion run under load, on
loopback, against the same work done in-process through the Python API.

    python benchmarks/serve_audio.py --vocoder RUN --vc RUN --input utterance.wav --json out.json

Three routes, each with the one recording uploaded back to back by 1 and 2 clients (``--clients``)
for ``--seconds`` each: ``vocode`` (analysis and the vocoder), ``convert`` through the served
vocoder, and ``convert`` through Griffin-Lim. Per cell: requests/s, p50/p99 latency, the served
real-time factor (p50 latency over the recording's length; below 1 is faster than real time) and
seconds of audio served per second of wall-clock. Before the servers start, the same work in this
process (``run.vocode(run.analyze(wave))``, ``run.convert`` then the vocoder or Griffin-Lim;
median of ``--repeats``), so that the server's own cost can be read off. Last, the server's
memory (VmRSS) before and after ``--memory-requests`` more vocode requests. The clients are threads
of this process, sharing the machine's cores with the server (serve_load.py's). Run it alone.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from _common import Parser, nonnegative_int, positive_float, positive_int, positive_ints, run_main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serve_load as sl  # noqa: E402  (puts this checkout's src first on the path)

import torch  # noqa: E402

import ganforge  # noqa: E402
from ganforge.data.audio import read_audio  # noqa: E402
from ganforge.metrics.audio import Synthesizer  # noqa: E402


def multipart(upload: bytes, **fields: str) -> tuple[bytes, dict]:
    boundary = "ganforge-bench"
    parts = [f"--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
             for k, v in fields.items()]
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"in.wav\"\r\n"
                 f"Content-Type: audio/wav\r\n\r\n".encode() + upload + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def in_process(vocoder_run: Path, vc_run: Path, wave: torch.Tensor, repeats: int) -> dict[str, float]:
    """Median seconds of each route's work through the Python API, in this process."""
    voc, vc = ganforge.load(vocoder_run), ganforge.load(vc_run)
    griffin_lim = Synthesizer(vc.config.audio)
    work = {"vocode": lambda: voc.vocode(voc.analyze(wave)),
            "convert+vocoder": lambda: voc.vocode(vc.convert(vc.analyze(wave))),
            "convert+griffin-lim": lambda: griffin_lim(vc.convert(vc.analyze(wave)))}
    out = {}
    for name, fn in work.items():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        out[name] = statistics.median(times)
    return out


def main() -> None:
    p = Parser(description=__doc__.split("\n")[0])
    p.add_argument("--vocoder", type=Path, required=True, help="a trained vocoder run (e.g. vocos-pghi-speech)")
    p.add_argument("--vc", type=Path, required=True, help="a trained cyclegan-vc run with the same front end")
    p.add_argument("--input", type=Path, required=True, help="the recording every request uploads")
    p.add_argument("--seconds", type=positive_float, default=20.0, help="per cell (default 20)")
    p.add_argument("--clients", type=positive_ints, default="1,2", help="client counts, comma-separated (default 1,2)")
    p.add_argument("--repeats", type=positive_int, default=5, help="in-process timings per route (default 5)")
    p.add_argument("--memory-requests", type=nonnegative_int, default=200,
                   help="vocode requests between the two memory readings (default 200; 0: skip)")
    p.add_argument("--json", type=Path, help="write the results here")
    args = p.parse_args()
    rate = ganforge.load(args.vocoder).config.audio.rate
    wave = read_audio(args.input, rate)
    seconds_audio = len(wave) / rate
    upload = args.input.read_bytes()
    result = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "torch_threads": torch.get_num_threads()},
              "input": str(args.input), "audio_seconds": round(seconds_audio, 3), "seconds_per_cell": args.seconds,
              "in_process": {}, "load": []}
    for name, secs in in_process(args.vocoder, args.vc, torch.from_numpy(wave), args.repeats).items():
        result["in_process"][name] = {"seconds": round(secs, 4), "real_time_factor": round(secs / seconds_audio, 4)}
        print(f"in process  {name:20s} {secs:7.3f} s for {seconds_audio:.2f} s of audio "
              f"(real-time factor {secs / seconds_audio:.3f})", flush=True)

    vocoder_name, vc_name = args.vocoder.resolve().name, args.vc.resolve().name
    routes = {"vocode": ("/api/vocode", {"model": vocoder_name}),
              "convert+vocoder": ("/api/convert", {"model": vc_name, "direction": "AtoB", "vocoder": vocoder_name}),
              "convert+griffin-lim": ("/api/convert", {"model": vc_name, "direction": "AtoB"})}
    server = sl.Server(args.vocoder, 32, more=[args.vc])
    try:
        for name, (path, fields) in routes.items():
            body, headers = multipart(upload, **fields)

            def request(c, i, path=path, body=body, headers=headers):
                return c.request("POST", path, body, headers)

            if request(sl.Client(server.url), 0) != 200:
                raise SystemExit(f"serve_audio: {name} did not answer 200; check the runs' front ends")
            for clients in args.clients:
                row = sl.load(server.url, request, clients, seconds=args.seconds, server=server)
                row.update(route=name, served_real_time_factor=round(row["p50_ms"] / 1000 / seconds_audio, 4),
                           audio_seconds_per_s=round(row["requests_per_s"] * seconds_audio, 2))
                result["load"].append(row)
                print(f"served      {name:20s} {clients} client(s): {row['requests_per_s']:6.2f} req/s  "
                      f"p50 {row['p50_ms']:8.1f} ms  p99 {row['p99_ms']:8.1f} ms  real-time factor "
                      f"{row['served_real_time_factor']:.3f}  audio s/s {row['audio_seconds_per_s']:.1f}  "
                      f"errors {row['errors']}", flush=True)
        if args.memory_requests > 0:
            body, headers = multipart(upload, **routes["vocode"][1])
            result["memory"] = m = sl.memory_growth(
                server, lambda c, i: c.request("POST", "/api/vocode", body, headers), 2, args.memory_requests)
            print(f"memory: {m['rss_before_mb']:.1f} MB -> {m['rss_after_mb']:.1f} MB after {args.memory_requests} "
                  f"more vocode requests ({m['growth_percent']:+.2f}%)", flush=True)
    finally:
        server.close()
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")


if __name__ == "__main__":
    raise SystemExit(run_main(main))
