"""What the phase is worth to a vocoder (issue 18): on held-out utterances, spectra built from the
log-mel with the phase taken from different places, each turned into a waveform by the inverse STFT
and measured as eval-audio measures a vocoder (mel L1, MCD, PESQ, STOI, real-time factor).

    least-squares magnitude        pinv(mel basis) exp(mel), floored: what the mel says about |STFT|
    ... + random phase             uniform phase: the floor a learned phase has to beat
    ... + true phase               the analysed signal's own phase: the ceiling of that magnitude
    ... + K Griffin-Lim steps      fast Griffin-Lim (momentum 0.99, librosa's default) from random
                                   phase on that magnitude, K = 4, 16, 32, in torch on our framing
    ... + PGHI                     phase gradient heap integration (Průša et al. 2017) from that
                                   magnitude alone (ganforge.models.phase), and + 8 Griffin-Lim steps
    ... + true IF integrated       the signal's own instantaneous frequency (phase advance per hop),
                                   summed over time from phase 0 in every bin: what a network that
                                   predicted the IF perfectly would give without the phase's
                                   relation across bins (alone, and + 8 Griffin-Lim steps)
    Griffin-Lim 32 (eval-audio)    the baseline eval-audio reports (librosa, NNLS magnitude)

For each --run (a trained vocos vocoder) also its own output, its magnitude with the true phase and
its phase on the least-squares magnitude (for a vocoder.phase=pghi run, its magnitude with 32
Griffin-Lim steps from random phase instead), which says whether its magnitude or its phase holds it
back. The Griffin-Lim loop here is a measuring device; eval-audio's baseline stays librosa's.

    python benchmarks/vocoder_phase.py --corpus /work/bench/speech --limit 40 \\
        --runs runs/vocos-speech --json benchmarks/results/vocoder-phase.json
    python benchmarks/vocoder_phase.py --smoke
"""
from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Callable

from _common import Parser, positive_int, run_main

import numpy as np
import torch

from ganforge import api
from ganforge.data.audio import load_audio
from ganforge.data.mel import AudioConfig, LogMel
from ganforge.data.speech import benchmark_corpus
from ganforge.metrics.audio import griffin_lim, mcd, mel_cepstrum, pesq_score, stoi_score
from ganforge.models.phase import fast_griffin_lim, pghi
from ganforge.models.vocos import istft_same

STEPS = (4, 16, 32)


def integrated_true_if(wave: torch.Tensor, front: LogMel) -> torch.Tensor:
    """The phase rebuilt from the signal's own instantaneous frequency alone: per bin, the wrapped
    phase advance between frames (around the bin's centre frequency) summed from 0."""
    phase = torch.angle(front.stft(wave))
    centre = (2 * math.pi * front.hop / front.n_fft) * torch.arange(phase.shape[1])[None, :, None]
    step = torch.remainder(phase.diff(dim=-1) - centre + math.pi, 2 * math.pi) - math.pi + centre
    return torch.cat([torch.zeros_like(phase[..., :1]), step.cumsum(-1)], dim=-1)


def methods(front: LogMel, audio: AudioConfig, runs: list) -> dict[str, Callable]:
    """name -> fn(wave [1, L], mel [1, n_mels, T], least-squares magnitude, random phase) -> wave."""
    inverse = lambda mag, phase: istft_same(torch.polar(mag, phase), front.n_fft, front.hop, front.window)  # noqa: E731
    true_phase = lambda wave: torch.angle(front.stft(wave))  # noqa: E731
    framing = dict(stft=front.stft, n_fft=front.n_fft, hop=front.hop, window=front.window)
    gla = lambda mag, phase, k: fast_griffin_lim(mag, phase, steps=k, **framing)  # noqa: E731
    heap = lambda mag: torch.from_numpy(  # noqa: E731
        pghi(mag[0].numpy(), n_fft=front.n_fft, hop=front.hop, win=front.win)).float()[None]
    table: dict[str, Callable] = {
        "least-squares magnitude + random phase": lambda w, mel, mag, rnd: inverse(mag, rnd),
        "least-squares magnitude + true phase": lambda w, mel, mag, rnd: inverse(mag, true_phase(w)),
        **{f"least-squares magnitude + {k} Griffin-Lim steps":
           (lambda w, mel, mag, rnd, k=k: gla(mag, rnd, k)) for k in STEPS},
        "least-squares magnitude + true IF integrated":
            lambda w, mel, mag, rnd: inverse(mag, integrated_true_if(w, front)),
        "... + 8 Griffin-Lim steps":
            lambda w, mel, mag, rnd: gla(mag, integrated_true_if(w, front), 8),
        "least-squares magnitude + PGHI": lambda w, mel, mag, rnd: inverse(mag, heap(mag)),
        "... + PGHI + 8 Griffin-Lim steps": lambda w, mel, mag, rnd: gla(mag, heap(mag), 8),
        "Griffin-Lim 32 (eval-audio's baseline)":
            lambda w, mel, mag, rnd: torch.from_numpy(griffin_lim(mel[0].numpy(), audio))[None]}
    for run in runs:
        G, name = run.objective.nets["G"], Path(run.run_dir).name
        table[f"{name} (step {run.step})"] = lambda w, mel, mag, rnd, run=run: run.vocode(mel)
        table[f"{name}'s magnitude + true phase"] = (
            lambda w, mel, mag, rnd, G=G: inverse(G.spectrum(mel)[0], true_phase(w)))
        if G.has_phase:
            table[f"{name}'s phase + least-squares magnitude"] = (
                lambda w, mel, mag, rnd, G=G: inverse(mag, G.spectrum(mel)[1]))
        else:  # a magnitude-only run: its own output is PGHI + Griffin-Lim on its magnitude
            table[f"{name}'s magnitude + 32 Griffin-Lim steps"] = (
                lambda w, mel, mag, rnd, G=G: gla(G.spectrum(mel)[0], rnd, 32))
    return table


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", help="a make-speech corpus (default: written under --out)")
    p.add_argument("--out", default="runs/bench-vocoder-phase")
    p.add_argument("--runs", nargs="*", default=[], help="trained vocoder runs with vocoder.generator=vocos")
    p.add_argument("--limit", type=positive_int, default=40,
                   help="held-out utterances (the first of each voice, alternating)")
    p.add_argument("--threads", type=positive_int, default=2)
    p.add_argument("--smoke", action="store_true", help="a tiny corpus, 2 utterances")
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    corpus = benchmark_corpus(args.out, args.corpus, smoke=args.smoke)
    runs = [api.load(r) for r in args.runs]
    audio = runs[0].config.audio if runs else AudioConfig()
    for run in runs:
        if run.config.vocoder.generator != "vocos" or run.config.audio != audio:
            raise SystemExit(f"error: {run.run_dir} is not a vocos vocoder on the default front end")
    front = LogMel.from_config(audio)
    pinv = torch.linalg.pinv(front.fb.double()).float()
    ds = load_audio(corpus, rate=audio.rate, min_seconds=audio.min_seconds, split="test", log=False)
    waves = [w[:len(w) // audio.hop * audio.hop] for w in ds.waves]
    by_voice: dict[str, list[np.ndarray]] = {}
    for f, w in zip(ds.files, waves):
        by_voice.setdefault(Path(f).parts[-3], []).append(w)
    limit = 2 if args.smoke else args.limit
    order = [w for group in zip(*by_voice.values()) for w in group][:limit]  # voices alternate
    generator = torch.Generator().manual_seed(0)
    table, rows = methods(front, audio, runs), {}
    seconds = sum(len(w) for w in order) / audio.rate
    with torch.inference_mode():
        for wave in order:
            w = torch.from_numpy(wave)[None]
            mel = front(w)
            ref = mel_cepstrum(mel[0].numpy())
            mag = (pinv @ mel.exp()).clamp(min=1e-5)
            rnd = torch.rand(mag.shape, generator=generator) * 2 * math.pi
            for name, fn in table.items():
                start = time.perf_counter()
                out = fn(w, mel, mag, rnd).clamp(-1, 1)
                took = time.perf_counter() - start
                out_mel, out_np = front(out), out[0].numpy()
                row = rows.setdefault(name, {})
                row.setdefault("mel_l1", []).append(float((out_mel - mel).abs().mean()))
                row.setdefault("mcd", []).append(mcd(mel_cepstrum(out_mel[0].numpy()), ref))
                for key, score in (("pesq", pesq_score(wave, out_np, audio.rate)),
                                   ("stoi", stoi_score(wave, out_np, audio.rate))):
                    if score is not None:
                        row.setdefault(key, []).append(score)
                row.setdefault("seconds", []).append(took)
    results = {name: {**{k: float(np.nanmean(v)) for k, v in row.items() if k != "seconds"},
                      "rtf": sum(row["seconds"]) / seconds} for name, row in rows.items()}
    keys = ("mel_l1", "mcd", "pesq", "stoi", "rtf")
    print(f"{len(order)} held-out utterances, {seconds:.1f} s of audio, {args.threads} thread(s)")
    print(f"{'phase from':58s}" + "".join(f"{k:>9s}" for k in keys))
    for name, r in results.items():
        print(f"{name:58s}" + "".join(f"{r.get(k, float('nan')):9.3f}" for k in keys))
    if args.json:
        payload = {"smoke": args.smoke, "corpus": str(corpus), "utterances": len(order),
                   "audio_seconds": seconds, "threads": args.threads, "runs": [str(r.run_dir) for r in runs],
                   "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__},
                   "results": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
