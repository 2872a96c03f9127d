"""Audio: the HiFi-GAN vocoder against Griffin-Lim, and CycleGAN-VC2 voice conversion, on an
espeak-ng speech corpus (issue 18).

1. ``ganforge data make-speech`` writes the corpus (two voices, 600 utterances each, 20 parallel
   sentences) unless --corpus names an existing one.
2. ``hifigan-speech`` trains at its default CPU budget (or --vocoder-steps), then eval-audio on
   the held-out test utterances: mel L1, MCD, PESQ, STOI and real-time factor (2 threads), each
   next to Griffin-Lim on the same mels. Targets: better MCD and PESQ than Griffin-Lim; real-time
   factor < 1.
3. ``cyclegan-vc-speech`` trains (or --vc-steps), then eval-audio on the parallel sentences with
   the vocoder of step 2 for the waveforms: MCD to the target after DTW against the unconverted
   source, and the speaker classifier's conversion success rate. Targets: success >= 90%, MCD
   below the source's. One converted example goes to --example (docs/).
4. Training speed (steps/s and seconds of audio per second) of both, from metrics.jsonl.

    python benchmarks/audio.py --out runs/bench-audio --json benchmarks/results/audio.json \
        --example docs/cyclegan-vc-example.wav
    python benchmarks/audio.py --smoke          # minutes: a tiny corpus and a few steps, no targets
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

from _common import Parser, positive_int, run_main

import torch

from ganforge import api
from ganforge.config import load_config
from ganforge.data.speech import benchmark_corpus
from ganforge.metrics.audio import Synthesizer, evaluate_conversion, evaluate_vocoder, format_table


def _speed(run_dir: Path, samples_per_step: int, rate: int) -> dict:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    timed = [r for r in records if "time" in r]
    last = timed[-1]
    steps_per_s = last["step"] / max(last["time"], 1e-9)
    return {"steps": last["step"], "train_seconds": last["time"], "steps_per_s": steps_per_s,
            "audio_seconds_per_s": steps_per_s * samples_per_step / rate}


def _train(preset: str, run_dir: Path, overrides: list[str], *, resume: bool) -> Path:
    if resume and (run_dir / "checkpoints").is_dir():
        print(f"bench: using the trained run {run_dir}", flush=True)
        return run_dir
    _, cfg = load_config(preset, overrides)
    print(f"bench: training {preset} for {cfg.train.steps} steps -> {run_dir}", flush=True)
    api.train(cfg, run_dir, name=preset, force=True, progress=True)
    return run_dir


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="runs/bench-audio", help="folder for the corpus and both runs")
    p.add_argument("--corpus", help="an existing make-speech corpus (default: written under --out)")
    p.add_argument("--vocoder-steps", type=positive_int, help="default: the preset's")
    p.add_argument("--vc-steps", type=positive_int, help="default: the preset's")
    p.add_argument("--threads", type=positive_int, default=2, help="torch threads for training and timing")
    p.add_argument("--limit", type=positive_int, default=None, help="held-out utterances / sentences to measure")
    p.add_argument("--reuse", action="store_true", help="evaluate runs already trained under --out")
    p.add_argument("--smoke", action="store_true", help="tiny corpus, a few steps: checks the pipeline only")
    p.add_argument("--json", help="write settings, machine and results here")
    p.add_argument("--example", help="write one converted parallel sentence (WAV) here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    corpus = benchmark_corpus(out, args.corpus, smoke=args.smoke)
    common = [f"data.name=audio:{corpus}"]
    voc_steps = 4 if args.smoke else args.vocoder_steps
    vc_steps = 4 if args.smoke else args.vc_steps
    limit = 2 if args.smoke else args.limit
    voc_over = common + ([f"train.steps={voc_steps}"] if voc_steps else []) + (
        ["train.log_every=2", "train.sample_every=4", "train.checkpoint_every=4"] if args.smoke else [])
    vc_over = common + ([f"train.steps={vc_steps}"] if vc_steps else []) + (
        ["train.log_every=2", "train.sample_every=4", "train.checkpoint_every=4"] if args.smoke else [])

    voc_dir = _train("hifigan-speech", out / "hifigan-speech", voc_over, resume=args.reuse)
    voc = api.load(voc_dir)
    start = time.perf_counter()
    voc_eval = evaluate_vocoder(voc, corpus, limit=limit, threads=args.threads)
    print("\n".join(format_table(voc_eval)), f"\n(eval {time.perf_counter() - start:.0f} s)", flush=True)

    vc_dir = _train("cyclegan-vc-speech", out / "cyclegan-vc-speech", vc_over, resume=args.reuse)
    vc = api.load(vc_dir)
    results = {}
    for name, synth in (("vocoder", Synthesizer(vc.config.audio, voc)), ("griffin-lim", Synthesizer(vc.config.audio))):
        results[name] = evaluate_conversion(vc, corpus, synth=synth, limit=limit)
        print("\n".join(format_table(results[name])), flush=True)

    a = voc.config.audio
    speed = {"vocoder": _speed(voc_dir, voc.config.train.batch_size * voc.config.vocoder.segment, a.rate),
             "cyclegan-vc": _speed(vc_dir, vc.config.train.batch_size * vc.config.vc.frames * a.hop, a.rate)}
    for name, s in speed.items():
        print(f"training speed {name}: {s['steps_per_s']:.3f} steps/s, {s['audio_seconds_per_s']:.2f} s of "
              f"audio per s, {s['steps']} steps in {s['train_seconds']:.0f} s")
    if args.example:
        from ganforge.data.audio import read_audio, write_wav
        from ganforge.data.speech import parallel_pairs

        src, _ = parallel_pairs(corpus, vc.config.vc.voice_a, vc.config.vc.voice_b)[0]
        wave = torch.from_numpy(read_audio(src, a.rate))
        converted = Synthesizer(a, voc)(vc.convert(vc.analyze(wave)))[0, :len(wave)]
        write_wav(args.example, converted, a.rate)
        shutil.copyfile(src, Path(args.example).with_name(Path(args.example).stem + "-source.wav"))
        print(f"bench: wrote {args.example} (converted A->B) and its source")
    if args.json:
        payload = {"smoke": args.smoke, "corpus": str(corpus), "threads": args.threads,
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                               "torch": torch.__version__},
                   "vocoder": {"run": str(voc_dir), **voc_eval}, "conversion": results, "speed": speed}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
