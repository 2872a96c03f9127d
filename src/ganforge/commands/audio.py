"""Audio commands: a speech corpus, vocoding, voice conversion and their evaluation.

    ganforge data make-speech --out DIR --voices en+m3,en+f3 --utterances 600 --rate 22050
    ganforge vocode RUN in.wav --out out.wav
    ganforge convert RUN in.wav --out out.wav --direction AtoB [--vocoder VOCODER_RUN]
    ganforge eval-audio RUN --data DIR [--json OUT]
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

from ..errors import ConfigError
from . import add_device_argument, add_json_argument, add_run_arguments, json_output


def _refuse_overwrite(out: Path, force: bool) -> None:
    if out.suffix.lower() != ".wav":
        raise ConfigError(f"--out {out}: give a .wav file name")
    if out.exists() and not force:
        raise ConfigError(f"{out} already exists; pass --force to overwrite or choose another --out")


def cmd_make_speech(args) -> int:
    from ..data.speech import corpus_summary, make_speech
    from ..signals import Terminated, sigterm_interrupts

    voices = [v for v in args.voices.split(",") if v.strip()]
    start = time.perf_counter()
    before = _corpus_stamp(args.out)
    try:
        # SIGTERM (kill, timeout, a scheduler) as Ctrl-C: the partial corpus removed, the old one
        # kept; it had killed the process at once, leaving a hidden folder of up to gigabytes
        with sigterm_interrupts():
            info = make_speech(args.out, voices=voices, utterances=args.utterances, rate=args.rate,
                               parallel=args.parallel, seed=args.seed, force=args.force,
                               progress=lambda line: print(f"ganforge: {line}", flush=True))
    except KeyboardInterrupt as exc:  # ganforge.cli.main's line, and what --out holds now
        term = isinstance(exc, Terminated)
        print(f"ganforge: interrupted{' (SIGTERM)' if term else ''}; {_corpus_left(args.out, before)}",
              file=sys.stderr)
        return 128 + (signal.SIGTERM if term else signal.SIGINT)
    print(f"ganforge: wrote {corpus_summary(info)} to {args.out} in {time.perf_counter() - start:.0f} s")
    return 0


def _corpus_stamp(out: str) -> tuple[int, int] | None:
    """Which corpus.json ``out`` holds (inode, modification time), None for none."""
    from ..data.audio import CORPUS_FILE

    try:
        st = (Path(out) / CORPUS_FILE).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def _corpus_left(out: str, before: tuple[int, int] | None) -> str:
    """What an interrupted make-speech left in ``out`` (its partial corpus is removed)."""
    now = _corpus_stamp(out)
    if now is None:
        return f"nothing was written to {out}"
    if now == before:
        return f"the corpus in {out} was kept as it was"
    return f"the new corpus was complete and is in {out}"  # the stop came while the old one was deleted


def _read_input(run, path: str):
    import torch

    from ..data.audio import INPUT_FIXES, read_audio

    notes: list[str] = []
    a = run.config.audio
    # the fixes of one file passed alone ("pass a recording with speech in it"), not a folder's ("remove it")
    wave = read_audio(path, a.rate, min_seconds=0.0, notes=notes, fixes=INPUT_FIXES)
    for note in notes:
        print(f"ganforge: {note}")
    run.objective.check_length(len(wave), path)  # with the file's name and the least length
    return torch.from_numpy(wave)


def cmd_vocode(args) -> int:
    from .. import api
    from ..data.audio import write_wav

    api.check_capability(args.run_dir, "vocode")  # an image run: this, not --out's suffix, comes first
    out = Path(args.out)
    _refuse_overwrite(out, args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="vocode")
    wave = _read_input(run, args.input)
    start = time.perf_counter()
    fake = run.vocode(run.analyze(wave), ema=not args.no_ema)[0, :len(wave)]
    seconds = time.perf_counter() - start
    write_wav(out, fake, run.config.audio.rate)
    _clip_note(fake, wave)
    duration = len(wave) / run.config.audio.rate
    print(f"ganforge: {args.input} -> {out} ({duration:.2f} s of audio, analysis and synthesis in "
          f"{seconds:.2f} s, real-time factor {seconds / duration:.3f})")
    return 0


def cmd_convert(args) -> int:
    from .. import api
    from ..data.audio import write_wav

    api.check_capability(args.run_dir, "convert")  # an image run: this, not --out's suffix, comes first
    out = Path(args.out)
    _refuse_overwrite(out, args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device, require="convert")
    synth = _synthesizer(run, args)
    wave = _read_input(run, args.input)
    start = time.perf_counter()
    mel = run.convert(run.analyze(wave), direction=args.direction, ema=not args.no_ema)
    fake = synth(mel)[0, :len(wave)]
    seconds = time.perf_counter() - start
    write_wav(out, fake, run.config.audio.rate)
    duration = len(wave) / run.config.audio.rate
    print(f"ganforge: {args.input} -> {out} ({args.direction}, waveform by {synth.name}; {duration:.2f} s "
          f"of audio, analysis, conversion and synthesis in {seconds:.2f} s, real-time factor "
          f"{seconds / duration:.3f})")
    _clip_note(fake, wave)
    return 0


def _clip_note(out, wave) -> None:
    """Say when the output reaches full scale: a WAV holds [-1, 1], so those samples are clipped
    (a loud input, or a network that overshoots); it had been done without a word."""
    from ..data.audio import clipped_samples

    clipped = clipped_samples(out)
    if clipped:
        print(f"ganforge: note: {clipped} of {len(out)} output samples ({100 * clipped / len(out):.3g}%) are "
              f"at full scale and clipped (input peak {float(wave.abs().max()):.2f}); for less, lower the "
              f"input's level")


def _synthesizer(run, args):
    """Griffin-Lim, or the vocoder run of --vocoder (loaded here: metrics never load runs)."""
    from .. import api
    from ..metrics.audio import Synthesizer

    if not args.vocoder:
        return Synthesizer(run.config.audio)
    vocoder = api.load(args.vocoder, device=args.device)
    if "vocode" not in vocoder.capabilities:
        # the run's own refusal ("train a preset that can") had not named --vocoder nor the default
        what = ("a voice-conversion run" if "convert" in vocoder.capabilities
                else f"a run of objective={vocoder.config.objective}")
        raise ConfigError(f"--vocoder {args.vocoder} is {what}, not a vocoder; pass a vocoder run (e.g. trained "
                          f"with {' or '.join(api.presets_that_can('vocode')[:2])}) or leave --vocoder out "
                          f"(the mels are then made into speech by Griffin-Lim)")
    return Synthesizer(run.config.audio, vocoder)


def cmd_eval_audio(args) -> int:
    from .. import api
    from ..atomic import atomic_write_json
    from ..metrics.audio import default_threads, evaluate_run, format_table
    from ..objectives import AUDIO_CAPABILITIES

    if args.threads is None:
        args.threads = default_threads()
    if args.threads <= 0:
        raise ConfigError(f"--threads must be positive, got {args.threads} (leave it out for the "
                          f"default, {default_threads()})")
    if args.limit is not None and args.limit <= 0:
        raise ConfigError(f"--limit must be positive, got {args.limit} (leave it out to score every utterance)")
    out = json_output(args.json, args.force)
    run = api.load(args.run_dir, checkpoint=args.checkpoint, device=args.device)
    if not run.capabilities & AUDIO_CAPABILITIES:
        run.require("vocode")
    if args.vocoder and "convert" not in run.capabilities:
        raise ConfigError(f"--vocoder voices a voice-conversion run's mels; {args.run_dir} is a vocoder "
                          f"itself (evaluated against Griffin-Lim): drop --vocoder")
    synth = _synthesizer(run, args) if "convert" in run.capabilities else None
    # what is scored comes first and progress as it goes (a 600-utterance corpus takes minutes)
    result = evaluate_run(run, args.data, limit=args.limit, threads=args.threads, synth=synth,
                          ema=not args.no_ema, log=lambda line: print(line, flush=True))
    lines = format_table(result, header=False)
    if result["kind"] == "vocoder":  # the units, before the notes, as the conversion table gives its own
        at = len(lines) - len(result["notes"])
        lines[at:at] = [_vocoder_units(result["results"]["vocoder"])]
    for line in lines:
        print(line)
    if out is not None:
        atomic_write_json(out, {"run": str(args.run_dir), "step": run.step, **result})
        print(f"ganforge: wrote {out}")
    return 0


VOCODER_UNITS = {"mel_l1": "mean absolute difference of the natural-log mels (lower is better)",
                 "mcd": "dB (lower is better)", "pesq": "wide-band, 1 to 4.5 (higher is better)",
                 "stoi": "0 to 1 (higher is better)",
                 "rtf": "seconds of synthesis per second of audio (under 1: faster than real time)"}


def _vocoder_units(row: dict) -> str:
    """What the vocoder table's columns measure, in what unit (the columns it has)."""
    return "; ".join(f"{key}: {text}" for key, text in VOCODER_UNITS.items() if key in row)


def _data_subparsers(subparsers):
    """The action table of ``ganforge data``, which cli.py keeps on that parser as ``actions``."""
    return subparsers.choices["data"].actions


def register(subparsers, parser_class) -> None:
    s = _data_subparsers(subparsers).add_parser(
        "make-speech", help="synthesize an offline speech corpus with espeak-ng",
        description="Speak generated sentences with espeak-ng voices: one folder per voice with "
                    "train/ and test/ (different sentences per voice), and parallel/ where every "
                    "voice says the same held-out sentences.")
    s.add_argument("--out", required=True, help="corpus folder")
    s.add_argument("--voices", default="en+m3,en+f3", help="comma-separated espeak-ng voices (default en+m3,en+f3)")
    s.add_argument("--utterances", type=int, default=600, help="sentences per voice, train + test (default 600)")
    s.add_argument("--parallel", type=int, default=20, help="held-out sentences every voice says (default 20)")
    s.add_argument("--rate", type=int, default=22050, help="sample rate of the files, Hz (default 22050)")
    s.add_argument("--seed", type=int, default=0, help="which sentences are drawn (default 0)")
    s.add_argument("--force", action="store_true", help="replace an existing corpus in --out")
    s.set_defaults(func=cmd_make_speech)

    s = subparsers.add_parser("vocode", help="resynthesize a WAV through a trained vocoder",
                              description="Analyze INPUT with the run's log-mel front end and "
                                          "synthesize it back with the vocoder.")
    add_run_arguments(s, out={"required": True, "help": "output .wav"}, force="overwrite --out")
    s.add_argument("input", metavar="INPUT",
                   help="a WAV, FLAC, OGG or MP3 file (mixed to mono, resampled to the run's rate)")
    add_device_argument(s)
    s.set_defaults(func=cmd_vocode)

    s = subparsers.add_parser("convert", help="convert speech to the other voice of a VC run",
                              description="Convert INPUT's mel-spectrogram to the other voice and "
                                          "synthesize it with --vocoder (or Griffin-Lim).")
    add_run_arguments(s, out={"required": True, "help": "output .wav"}, force="overwrite --out")
    s.add_argument("input", metavar="INPUT", help="a WAV, FLAC, OGG or MP3 file of the source voice")
    s.add_argument("--direction", default="AtoB", choices=["AtoB", "BtoA"],
                   help="AtoB (default): from the first voice to the second; BtoA the other way")
    s.add_argument("--vocoder", metavar="RUN", help="a trained vocoder run with the same audio "
                                                    "settings (default: Griffin-Lim)")
    add_device_argument(s)
    s.set_defaults(func=cmd_convert)

    s = subparsers.add_parser("eval-audio", help="measure a vocoder or voice-conversion run",
                              description="Vocoder runs: mel L1, MCD, PESQ, STOI and real-time "
                                          "factor on held-out utterances, next to Griffin-Lim on "
                                          "the same mels. Voice-conversion runs: MCD to the target "
                                          "voice after DTW and the conversion success rate on the "
                                          "corpus's parallel sentences (judged the target voice and "
                                          "inside its typical region; the two-way rate beside it).")
    add_run_arguments(s)
    s.add_argument("--data", required=True, help="a speech corpus (make-speech) or a folder of WAVs")
    s.add_argument("--limit", type=int, default=None, help="at most this many utterances")
    # the default is metrics.audio.default_threads(), resolved when the command runs (registering
    # stays free of torch); the table says the number used
    s.add_argument("--threads", type=int, default=None,
                   help="torch threads for the timing (default: 2, or the number of CPUs this process "
                        "may use if that is fewer)")
    s.add_argument("--vocoder", metavar="RUN", help="VC runs: the vocoder for the waveforms "
                                                    "(default: Griffin-Lim)")
    add_device_argument(s)
    add_json_argument(s, "also write the results to this JSON file")
    s.set_defaults(func=cmd_eval_audio)
