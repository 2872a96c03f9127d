"""Measures of the audio families (``ganforge eval-audio``), each next to a baseline.

Vocoder runs, on held-out utterances (a corpus's test split): mel L1 between the analysis of the
output and the input mel; mel-cepstral distortion (MCD, dB); PESQ (wide band, at 16 kHz) and
STOI when the ``pesq`` / ``pystoi`` packages are installed; and the real-time factor (seconds of
synthesis per second of audio, torch on ``threads`` threads: by default ``default_threads()``,
2 or the CPUs this process may use if fewer) - for the run and for Griffin-Lim
(librosa: the mel inverted to a magnitude by non-negative least squares, 32 iterations) on the
same mels.

MCD here is computed on mel cepstra: the DCT-II of the natural-log 80-band mel spectrum of our
front end scaled as a cepstrum (``mel_cepstrum``), coefficients 1-24 (c0, the energy, left out),
with the usual
MCD = 10 / ln 10 * sqrt(2 sum_d (c_d - c'_d)^2) averaged over frames. It is not the SPTK
mel-cepstrum of the VC literature, so compare numbers within this table, not with papers.

Voice-conversion runs, on the corpus's parallel sentences (both voices say the same sentence):
MCD of the converted speech to the target speaker's utterance after DTW alignment
(librosa.sequence.dtw on the cepstra), against the MCD of the unconverted source to it; and the
conversion success rate: the share of converted utterances that a speaker judge (``SpeakerJudge``,
trained on the two voices' training utterances) accepts as the target voice. Converted mels
become waveforms through a trained vocoder run or Griffin-Lim (said in the output) and are
analysed again. Two baselines go through the same path: "stats_only"
replaces the source voice's per-band log-mel mean and standard deviation by the target's without
the generator (the normalization the family trains in), and "target_resynth" is the real target
utterance itself (the most a perfect conversion could score through this waveform path).

The judge (``metrics/speaker.py``): its features are the correlations between mel bands over
time after each band of the utterance is normalized, so per-band statistics matching cannot move
a mel towards the other voice (a judge on per-band mean and std, used before, took it for the
target 95-100% of the time). The invariance holds for mels; a vocoder between them can break it,
which is why the statistics-matching and real-target rows go through the same waveforms and a
note flags them. A conversion succeeds when the judge picks the target voice AND the utterance
lies in the target voice's typical region (learned from its training utterances, cutoff on
utterances held out from that fit): without the second check anything unlike both voices, noise
included, counted for one of them. The two-way rate (judged the target, nothing more) is kept
beside it as ``*_two_way``.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..data.audio import load_audio, read_audio
from ..errors import ConfigError, GanforgeError
from ..progress import Tenths
from .speaker import MIN_UTTERANCES, SpeakerJudge, speaker_features  # noqa: F401  (speaker_features: re-exported)

N_CEPSTRA = 24
MCD_CONST = 10 / math.log(10) * math.sqrt(2)
FRONT_END = ("rate", "n_fft", "hop", "win", "n_mels", "fmin", "fmax")
TIMING_THREADS = 2  # torch threads for the real-time factor, unless this process may use fewer CPUs


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, else all)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no sched_getaffinity (macOS, Windows)
        return os.cpu_count() or 1


def default_threads() -> int:
    """TIMING_THREADS, capped at ``usable_cpus()``: more threads than CPUs made the real-time factor
    vary tenfold between identical runs."""
    return max(1, min(TIMING_THREADS, usable_cpus()))


# ----------------------------------------------------------------------------- measures


def mel_cepstrum(log_mel: np.ndarray, n: int = N_CEPSTRA) -> np.ndarray:
    """log-mel [n_mels, T] -> cepstra c_1..c_n [n, T]: c_d = (1 / N) sum_k log S_k cos(pi d (k +
    1/2) / N), the cepstrum convention log S(w) = c_0 + 2 sum_d c_d cos(d w) on the N mel bands."""
    from scipy.fft import dct

    log_mel = np.asarray(log_mel, dtype=np.float64)
    return dct(log_mel, type=2, norm=None, axis=0)[1:n + 1] / (2 * log_mel.shape[0])


def mcd(c: np.ndarray, c_ref: np.ndarray) -> float:
    """Mean mel-cepstral distortion (dB) between frame-aligned cepstra [n, T]."""
    t = min(c.shape[1], c_ref.shape[1])
    diff = c[:, :t] - c_ref[:, :t]
    return float((MCD_CONST * np.sqrt((diff ** 2).sum(0))).mean())


def dtw_path(c: np.ndarray, c_ref: np.ndarray) -> np.ndarray:
    """The DTW alignment [K, 2] (frame of c, frame of c_ref), in time order (librosa)."""
    import librosa

    _, wp = librosa.sequence.dtw(X=c, Y=c_ref, metric="euclidean")
    return wp[::-1]


def dtw_mcd(c: np.ndarray, c_ref: np.ndarray) -> float:
    """MCD (dB) along the DTW alignment of cepstra of different lengths."""
    path = dtw_path(c, c_ref)
    return mcd(c[:, path[:, 0]], c_ref[:, path[:, 1]])


def pesq_score(ref: np.ndarray, deg: np.ndarray, rate: int) -> float | None:
    """Wide-band PESQ at 16 kHz; None when the ``pesq`` package is not installed."""
    try:
        from pesq import pesq
    except ImportError:
        return None
    from ..data.audio import resample

    try:
        return float(pesq(16000, resample(ref, rate, 16000), resample(deg, rate, 16000), "wb"))
    except Exception:  # pesq's NoUtterancesError on silence-like input
        return math.nan


def stoi_score(ref: np.ndarray, deg: np.ndarray, rate: int) -> float | None:
    try:
        from pystoi import stoi
    except ImportError:
        return None
    return float(stoi(ref, deg, rate, extended=False))


def griffin_lim(log_mel: np.ndarray, audio, *, n_iter: int = 32) -> np.ndarray:
    """The Griffin-Lim baseline: log-mel [n_mels, T] of our front end -> waveform [T * hop]
    aligned with the analysed signal (frames uncentred after (n_fft - hop) / 2 of padding)."""
    import librosa

    mag = librosa.feature.inverse.mel_to_stft(np.exp(np.asarray(log_mel, dtype=np.float64)),
                                              sr=audio.rate, n_fft=audio.n_fft, power=1.0,
                                              fmin=audio.fmin, fmax=audio.fmax)
    wave = librosa.griffinlim(mag, n_iter=n_iter, hop_length=audio.hop, win_length=audio.win,
                              n_fft=audio.n_fft, center=False, random_state=0)
    pad, t = (audio.n_fft - audio.hop) // 2, log_mel.shape[1] * audio.hop
    wave = np.pad(wave, (0, max(0, pad + t - len(wave))))[pad:pad + t]
    return np.clip(wave, -1, 1).astype(np.float32)


class Synthesizer:
    """log-mel [B, n_mels, T] -> waveform [B, T * hop]: a trained vocoder run (anything with
    ``vocode`` and ``config.audio``), or Griffin-Lim when ``vocoder`` is None."""

    def __init__(self, audio, vocoder=None):
        self.audio, self.vocoder = audio, vocoder
        if vocoder is not None:
            theirs = vocoder.config.audio
            for key in FRONT_END:
                if getattr(theirs, key) != getattr(audio, key):
                    raise ConfigError(f"the vocoder was trained with audio.{key}={getattr(theirs, key)}, "
                                      f"this run has {getattr(audio, key)}; use a vocoder trained "
                                      f"with the same front end, or leave --vocoder out (Griffin-Lim)")
        self.name = "griffin-lim" if vocoder is None else f"vocoder {vocoder.run_dir}"

    def __call__(self, mel: torch.Tensor) -> torch.Tensor:
        if self.vocoder is not None:
            return self.vocoder.vocode(mel)
        return torch.from_numpy(np.stack([griffin_lim(m.numpy(), self.audio) for m in mel]))


def _timed(fn: Callable, arg, threads: int):
    """(fn(arg), seconds) with torch on ``threads`` threads."""
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        out = fn(arg)
        return out, time.perf_counter() - start
    finally:
        torch.set_num_threads(old)


def _utterances(run, data: str | Path, limit: int | None, split: str = "test"):
    a = run.config.audio
    ds = load_audio(data, rate=a.rate, min_seconds=a.min_seconds, split=split)
    waves = [w[:len(w) // a.hop * a.hop] for w in ds.waves]
    return waves[:limit] if limit else waves, ds.files[:limit] if limit else ds.files


def trained_on(run) -> list[Path]:
    """The folders (resolved) whose files the run trained on, as training read its data.name=audio:PATH
    (a relative PATH from the current folder); [] when that folder is not here."""
    from ..data.audio import _split_folder, parse_audio_name, read_corpus_info

    try:
        root = parse_audio_name(run.config.data.name).resolve()
        info = read_corpus_info(root) if root.is_dir() else None
    except (GanforgeError, OSError):
        return []
    if not root.is_dir():
        return []
    split = run.config.data.split
    if info is None:  # a plain folder, or one voice's folder with train/ and test/
        return [_split_folder(root, split)]
    # a make-speech corpus: each voice's split folder (its test/ and parallel/ are held out)
    return [root / v / split if (root / v / split).is_dir() else root / v for v in info.get("voices", [])]


def training_files(data: str | Path, files: list[str], trained: Sequence[Path] = (),
                   data_name: str = "") -> tuple[int, str | None]:
    """(how many of ``files`` (relative to ``data``) are training files, a note saying so): the files
    under the folders the run trained on (``trained``, from ``trained_on``; the same folder as
    --data, inside it or around it), else any under a train/ folder (a corpus's, which the run may
    have trained on); the table would otherwise call them held-out."""
    root = Path(data).resolve()
    mine = sum(any(t == p or t in p.parents for t in trained) for p in (root / f for f in files))
    if mine:
        which = f"{data} holds" if mine == len(files) else f"{mine} of the {len(files)} files scored from {data} are"
        return mine, (f"{which} the run's training files (it trained on data.name={data_name}): the scores are "
                      f"not on held-out data; point --data at recordings the run did not train on (e.g. a "
                      f"make-speech corpus, whose test/ folders are held out)")
    if root.name != "train" and not any("train" in Path(f).parts[:-1] for f in files):
        return 0, None
    return len(files), (f"{data} holds training files (train/), not held-out ones: the scores are on data the "
                        f"run may have trained on; point --data at the corpus or a voice's test/ folder")


# ----------------------------------------------------------------------------- vocoder


def _progress(log: Callable[[str], None] | None, total: int, what: str) -> Callable[[int], None]:
    """A line per tenth of an evaluation (at about 2.5 s an utterance on 2 CPUs, a 600-utterance
    corpus had passed 5 minutes without one), with the time; nothing without ``log``."""
    if log is None:
        return lambda done: None
    start = time.perf_counter()
    return Tenths(log, total, lambda done: f"  {done}/{total} {what} ({100 * done // total}%) in "
                                           f"{time.perf_counter() - start:.0f} s")


def evaluate_vocoder(run, data: str | Path, *, limit: int | None = None, threads: int | None = None,
                     ema: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The vocoder's scores and Griffin-Lim's on the held-out utterances of ``data``. ``log``: the
    table's first line (what is scored) before scoring, then progress lines."""
    a = run.config.audio
    threads = default_threads() if threads is None else threads
    waves, files = _utterances(run, data, limit)
    # a note, and the table's first line says it too
    n_training, training = training_files(data, files, trained_on(run), run.config.data.name)
    seconds = sum(len(w) for w in waves) / a.rate
    head = {"kind": "vocoder", "data": str(data), "utterances": len(waves), "held_out": training is None,
            "training_utterances": n_training, "audio_seconds": seconds, "threads": threads}
    if log is not None:
        log(_header(head))
    progress = _progress(log, len(waves), "utterances scored")
    methods: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
        "vocoder": lambda mel: run.vocode(mel, ema=ema)[0].numpy(),
        "griffin-lim": lambda mel: griffin_lim(mel[0].numpy(), a)}
    sums: dict[str, dict[str, list[float]]] = {m: {} for m in methods}
    for i, wave in enumerate(waves):
        mel = run.analyze(torch.from_numpy(wave))
        ref_cep = mel_cepstrum(mel[0].numpy())
        for name, fn in methods.items():
            out, dt = _timed(fn, mel, threads)
            out_mel = run.analyze(torch.from_numpy(out))
            row = sums[name]
            row.setdefault("mel_l1", []).append(float((out_mel - mel).abs().mean()))
            row.setdefault("mcd", []).append(mcd(mel_cepstrum(out_mel[0].numpy()), ref_cep))
            for key, score in (("pesq", pesq_score(wave, out, a.rate)), ("stoi", stoi_score(wave, out, a.rate))):
                if score is not None:
                    row.setdefault(key, []).append(score)
            row.setdefault("seconds", []).append(dt)
        progress(i + 1)
    results = {}
    for name, row in sums.items():
        results[name] = {k: float(np.nanmean(v)) for k, v in row.items() if k != "seconds"}
        results[name]["rtf"] = sum(row["seconds"]) / seconds
    notes = [f"{key}: not measured (pip install {key if key == 'pesq' else 'pystoi'})"
             for key in ("pesq", "stoi") if key not in results["vocoder"]] + ([training] if training else [])
    return {**head, "results": results, "notes": notes}


# ----------------------------------------------------------------------------- conversion


def _held_out(data: Path, voice: str, load) -> list[np.ndarray]:
    """The voice's test split of a make-speech corpus (none in a plain folder of voices)."""
    return load("test", voice) if (data / voice / "test").is_dir() else []


def evaluate_conversion(run, data: str | Path, *, synth: Synthesizer, limit: int | None = None,
                        ema: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The conversion's scores and its baselines' on the parallel sentences of ``data``. ``log``:
    the table's first line (what is scored) before the judge is trained, then progress lines."""
    from ..data.speech import parallel_pairs

    a, vc = run.config.audio, run.config.vc
    voices = (vc.voice_a, vc.voice_b)
    data = Path(data)
    if data.is_dir() and not any((data / v).is_dir() for v in voices) and not any(
            p.is_dir() and p.name != "parallel" for p in data.iterdir()):
        # a plain folder of WAVs: load_audio's "no folder for voice (folders: none)" gave no way forward
        raise ConfigError(f"--data {data} has no voice folders; evaluating voice conversion needs one subfolder "
                          f"per voice and parallel sentences: a make-speech corpus, or {data}/{voices[0]}/*.wav, "
                          f"{data}/{voices[1]}/*.wav and {data}/parallel/{voices[0]}, "
                          f"{data}/parallel/{voices[1]} (the same sentences, same file names)")
    missing = [v for v in voices if not (data / v).is_dir()]
    if data.is_dir() and missing:  # load_audio's fix (set vc.voice_a / vc.voice_b) is for training
        have = sorted(p.name for p in data.iterdir() if p.is_dir() and p.name != "parallel")
        raise ConfigError(f"--data {data} has no folder for the run's voice '{missing[0]}' (folders: "
                          f"{', '.join(have)}); the run converts {voices[0]} and {voices[1]}: point --data at "
                          f"a folder with both (the run trained on {run.config.data.name})")
    # parallel_pairs first: a corpus without parallel sentences is refused before the judge is trained
    pairs = parallel_pairs(data, *voices)[:limit] if limit else parallel_pairs(data, *voices)
    head = {"kind": "conversion", "data": str(data), "voices": list(voices), "sentences": len(pairs),
            "waveforms": synth.name}
    if log is not None:
        log(_header(head))
        log(f"  training the speaker judge on the training utterances of {voices[0]} and {voices[1]}")
    analyze = lambda w: run.analyze(torch.from_numpy(w))[0].numpy()  # noqa: E731

    def load(split: str, voice: str) -> list[np.ndarray]:
        ds = load_audio(data, rate=a.rate, min_seconds=a.min_seconds, split=split, voices=[voice], log=False)
        return [analyze(w) for w in ds.waves]

    train = [load("train", v) for v in voices]
    judge = SpeakerJudge(*train)

    def verdict(row: dict, key: str, mel: np.ndarray, voice: int) -> None:
        """Accepted as ``voice`` (judged it, inside its region) under ``key``; judged it under
        ``key``_two_way."""
        row.setdefault(key, []).append(judge.accepts(mel, voice))
        row.setdefault(f"{key}_two_way", []).append(float(judge.predict(mel) == voice))
    rows: dict[str, dict[str, list[float]]] = {}
    parallel_mels: list[list[np.ndarray]] = [[], []]
    progress = _progress(log, len(pairs), "sentences converted both ways and scored")
    for done, (file_a, file_b) in enumerate(pairs, 1):
        mels = [analyze(read_audio(f, a.rate)) for f in (file_a, file_b)]
        for i, mel in enumerate(mels):
            parallel_mels[i].append(mel)
        for direction, src, tgt in (("AtoB", 0, 1), ("BtoA", 1, 0)):
            converted = run.convert(torch.from_numpy(mels[src]), direction=direction, ema=ema)
            resynth = analyze(synth(converted)[0].numpy())
            tgt_cep = mel_cepstrum(mels[tgt])
            row = rows.setdefault(direction, {})
            row.setdefault("mcd_converted", []).append(dtw_mcd(mel_cepstrum(resynth), tgt_cep))
            row.setdefault("mcd_converted_mel", []).append(dtw_mcd(mel_cepstrum(converted[0].numpy()), tgt_cep))
            row.setdefault("mcd_source", []).append(dtw_mcd(mel_cepstrum(mels[src]), tgt_cep))
            verdict(row, "source_as_target", mels[src], tgt)
            verdict(row, "success", resynth, tgt)
            stats_only = run.objective.match_statistics(torch.from_numpy(mels[src])[None], direction=direction)
            stats_only = analyze(synth(stats_only.cpu())[0].numpy())
            row.setdefault("mcd_stats_only", []).append(dtw_mcd(mel_cepstrum(stats_only), tgt_cep))
            verdict(row, "success_stats_only", stats_only, tgt)
            target_resynth = analyze(synth(torch.from_numpy(mels[tgt])[None])[0].numpy())
            verdict(row, "success_target_resynth", target_resynth, tgt)
        progress(done)
    results = {d: {k: float(np.mean(v)) for k, v in row.items()} for d, row in rows.items()}
    notes = [] if judge.regions else [
        f"fewer than {MIN_UTTERANCES} training utterances of a voice ({' + '.join(map(str, map(len, train)))}): "
        f"its typical region is not learned, so only the two-way rates (*_two_way) are measured"]
    for d, row in results.items():  # the judge hears mels again after synthesis, no longer invariant
        tail, verb = ("", "accepted as") if judge.regions else ("_two_way", "judged")
        stats_only, target = row["success_stats_only" + tail], row["success_target_resynth" + tail]
        if stats_only >= 0.5:
            notes.append(f"{d}: per-band statistics matching alone is {verb} the target "
                         f"{stats_only:.0%} of the time through {synth.name}: success does "
                         f"not show conversion with these waveforms")
        if target < 0.9:
            notes.append(f"{d}: the real target through {synth.name} is {verb} the target only "
                         f"{target:.0%} of the time: these waveforms lose what the judge relies on")
    held_out = [_held_out(data, v, load)[:limit] + parallel_mels[i] for i, v in enumerate(voices)]
    return {**head, "classifier_train": [len(m) for m in train],
            "classifier_held_out": [len(m) for m in held_out],
            "classifier_accuracy_by_voice": [judge.accuracy(m, i) for i, m in enumerate(held_out)],
            "classifier_acceptance_by_voice": [judge.acceptance(m, i) for i, m in enumerate(held_out)],
            "typical_regions": [r.describe() for r in judge.regions] if judge.regions else None,
            "classifier_accuracy_real": float(np.mean([judge.predict(m) == i for i, ms in enumerate(held_out)
                                                       for m in ms])),
            "results": results, "notes": notes}


def evaluate_run(run, data: str | Path, *, limit: int | None = None, threads: int | None = None,
                 synth: Synthesizer | None = None, ema: bool = True,
                 log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The evaluation the run's capabilities call for (vocode or convert)."""
    if not Path(data).is_dir():
        raise ConfigError(f"--data {data} is not a folder; pass a speech corpus (ganforge data "
                          f"make-speech --out DIR) or a folder of WAV files")
    if "vocode" in run.capabilities:
        return evaluate_vocoder(run, data, limit=limit, threads=threads, ema=ema, log=log)
    return evaluate_conversion(run, data, synth=synth or Synthesizer(run.config.audio), limit=limit, ema=ema,
                               log=log)


def _header(result: dict[str, Any]) -> str:
    """The first line of an evaluation's table: what is scored (known before the scoring)."""
    if result["kind"] == "vocoder":
        n = result["utterances"]
        mine = result.get("training_utterances", n)
        which = (f"{n} held-out utterance(s)" if result.get("held_out", True) else
                 f"{n} training (not held-out) utterance(s)" if mine >= n else
                 f"{n} utterance(s), {mine} of them training files (not held-out)")
        return (f"{which}, {result['audio_seconds']:.1f} s of "
                f"audio, from {result['data']}; timing on {result['threads']} thread(s)")
    return (f"{result['sentences']} parallel sentence(s) of {' / '.join(result['voices'])} from "
            f"{result['data']}; waveforms by {result['waveforms']}")


def format_table(result: dict[str, Any], *, header: bool = True) -> list[str]:
    """The printed lines of an evaluation; ``header=False`` leaves out the first line, which an
    evaluation with ``log`` has said already."""
    res = result["results"]
    if result["kind"] == "vocoder":
        cols = [c for c in ("mel_l1", "mcd", "pesq", "stoi", "rtf") if c in res["vocoder"]]
        lines = [f"{'method':<14}" + "".join(f"{c:>10}" for c in cols)]
        lines += [f"{name:<14}" + "".join(f"{row[c]:>10.4f}" for c in cols) for name, row in res.items()]
    else:
        mcds = ["mcd_converted", "mcd_converted_mel", "mcd_source", "mcd_stats_only"]
        rates = {"conversion": "success", "stats_only": "success_stats_only",
                 "target_resynth": "success_target_resynth", "source": "source_as_target"}
        by_voice = ", ".join(f"{v} {acc:.3f} ({two:.3f}) of {n}" for v, acc, two, n in zip(
            result["voices"], result["classifier_acceptance_by_voice"], result["classifier_accuracy_by_voice"],
            result["classifier_held_out"]))
        lines = [f"speaker judge (band correlations of the per-band normalized log-mel, trained on "
                 f"{' + '.join(map(str, result['classifier_train']))} utterances): held-out real utterances "
                 f"accepted (judged, two-way) {by_voice}",
                 f"{'direction':<10}" + "".join(f"{c:>{len(c) + 2}}" for c in mcds)]
        lines += [f"{d:<10}" + "".join(f"{row[c]:>{len(c) + 2}.4f}" for c in mcds) for d, row in res.items()]
        lines.append("mcd_*: dB after DTW to the target voice (converted after resynthesis, converted "
                     "mel, unconverted source, per-band mean/std matching only)")
        lines.append(f"{'direction':<10}" + "".join(f"{c:>17}" for c in rates))
        lines += [f"{d:<10}" + "".join(f"{row[k]:>9.3f} ({row[k + '_two_way']:.3f})" for k in rates.values())
                  for d, row in res.items()]
        lines.append("success (accepted as the target: judged the target voice AND inside its typical "
                     "region) and, in brackets, the two-way rate (judged the target, nothing more), of: "
                     "the conversion, per-band mean/std matching only, the real target through the same "
                     "waveforms, the unconverted source")
    return ([_header(result)] if header else []) + lines + [f"note: {n}" for n in result["notes"]]
