"""An offline speech corpus: ``ganforge data make-speech`` synthesizes sentences with espeak-ng.

The sentences come from our own word lists and templates (no text is copied from anywhere), drawn
reproducibly from a seed. Layout of ``--out DIR``::

    DIR/corpus.json              voices, rate, split sizes, and the sentence of every file
    DIR/<voice>/train/NNNN.wav   each voice says DIFFERENT training sentences (unpaired)
    DIR/<voice>/test/NNNN.wav    held-out sentences, different for each voice too
    DIR/parallel/<voice>/NNNN.wav  every voice says the SAME held-out sentences

so a voice-conversion model trains unpaired and is measured on parallel speech, and no test or
parallel sentence appears in any voice's training set.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..atomic import (FULL_ERRNOS, STALE_SECONDS, STORAGE_ERRNOS, is_gone, fsync_dir, replace_folder,
                      restore_replaced)
from ..errors import DataError, StorageError, shell_arg
from ..registry import closest
from .audio import CORPUS_FILE, audio_files, decode_audio, read_corpus_info, wav_bytes, write_wav

ESPEAK = "espeak-ng"
ESPEAK_RATE = 22050  # espeak-ng writes 22050 Hz WAV

NAMES = ["anna", "boris", "clara", "daniel", "elena", "felix", "greta", "hugo", "irene", "jonas",
         "karin", "lucas", "maria", "nora", "oscar", "paula", "ruben", "sofia", "tomas", "vera"]
ADJECTIVES = ["small", "heavy", "quiet", "yellow", "bright", "narrow", "gentle", "rusty", "empty",
              "ancient", "broken", "silver", "wooden", "crowded", "sleepy", "curious", "frozen",
              "golden", "simple", "noisy", "patient", "careful", "distant", "hollow", "clever"]
NOUNS = ["garden", "window", "river", "bicycle", "lantern", "kettle", "mountain", "letter",
         "harbour", "violin", "market", "pencil", "castle", "blanket", "engine", "bridge",
         "meadow", "teacher", "ladder", "orchard", "tunnel", "basket", "compass", "island",
         "kitchen", "station", "feather", "village", "mirror", "forest"]
VERBS = ["carried", "painted", "repaired", "noticed", "followed", "opened", "cleaned", "measured",
         "borrowed", "visited", "described", "collected", "counted", "watched", "remembered",
         "lifted", "pushed", "checked", "found", "built"]
PLACES = ["near the station", "behind the barn", "across the valley", "under the old tree",
          "by the harbour", "at the edge of town", "in the morning", "after the storm",
          "before dinner", "on a cold evening", "during the festival", "next to the school"]
NUMBERS = ["two", "three", "four", "five", "seven", "nine", "eleven", "twelve", "twenty"]
TEMPLATES = [
    "{name} {verb} the {adj} {noun} {place}.",
    "the {adj} {noun} was {place}, so {name} {verb} it.",
    "{number} {adj} {noun}s stood {place}.",
    "did {name} see the {noun} {place}?",
    "{name} and {name2} {verb} a {adj} {noun}.",
    "we {verb} {number} {noun}s and one {adj} {noun2}.",
    "{place}, the {noun} looked {adj} and {adj2}.",
    "please bring the {adj} {noun} to {name} {place}.",
]


def make_sentences(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct sentences from the templates, reproducible for ``seed``."""
    rng = np.random.default_rng(seed)
    out: list[str] = []
    seen: set[str] = set()
    pick = lambda words: words[int(rng.integers(len(words)))]  # noqa: E731
    for _ in range(n * 50):
        if len(out) == n:
            break
        text = pick(TEMPLATES).format(
            name=pick(NAMES), name2=pick(NAMES), adj=pick(ADJECTIVES), adj2=pick(ADJECTIVES),
            noun=pick(NOUNS), noun2=pick(NOUNS), verb=pick(VERBS), place=pick(PLACES),
            number=pick(NUMBERS))
        if text not in seen:
            seen.add(text)
            out.append(text)
    if len(out) < n:
        raise DataError(f"the word lists make fewer than {n} distinct sentences; ask for fewer")
    return out


def espeak_available() -> str | None:
    """The path of espeak-ng, None when it is not installed."""
    return shutil.which(ESPEAK)


def _require_espeak() -> str:
    path = espeak_available()
    if path is None:
        raise DataError("espeak-ng is not installed; install it (Debian/Ubuntu: sudo apt-get install "
                        "espeak-ng) and run ganforge data make-speech again")
    return path


def speak(text: str, voice: str, rate: int, *, speed: int = 160) -> np.ndarray:
    """One sentence spoken by ``voice``: mono float32 [L] at ``rate`` (resampled from espeak's
    22050 Hz when they differ). espeak-ng hands its WAV over a pipe and the file is written here:
    writing it itself on a full disk, espeak-ng exits 0 with the file cut short or empty."""
    exe = _require_espeak()
    proc = subprocess.run([exe, "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True,
                          timeout=60)
    if proc.returncode != 0 or not proc.stdout:
        why = " ".join((proc.stderr.decode(errors="replace") or "no output").split())[:100]
        raise DataError(f"espeak-ng could not speak with voice '{voice}' ({why}); list the "
                        f"voices with: espeak-ng --voices")
    return decode_audio(proc.stdout, rate, label=f"espeak-ng's speech of voice '{voice}'")


def synthesize(text: str, voice: str, out: Path, rate: int, *, speed: int = 160) -> Path:
    """One sentence spoken by ``voice`` to the WAV ``out`` at ``rate``, written atomically."""
    return write_wav(out, speak(text, voice, rate, speed=speed), rate)


def _write_file(path: Path, data: bytes) -> None:
    """A file of the corpus being built: no atomic write of its own (the corpus folder is moved
    into place whole); a full disk is the OSError make_speech reports."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _variants(exe: str) -> set[str] | None:
    """The voice variants espeak-ng has (the names after '+': m3, f3, ...), None if unreadable."""
    try:
        text = subprocess.run([exe, "--voices=variant"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    names = {line.split()[4].split("/", 1)[1] for line in text.splitlines()[1:]
             if len(line.split()) >= 5 and "/" in line.split()[4]}
    return names or None


def check_voices(voices: Sequence[str]) -> None:
    """Each voice speaks, and each variant exists, before anything is written or replaced.
    espeak-ng speaks an unknown variant (en+f33) in the plain voice and exits 0, so a corpus
    labelled with it would hold another voice than its name says."""
    exe = _require_espeak()
    known = _variants(exe)
    for voice in voices:
        lang, _, variant = voice.partition("+")
        if variant and known is not None and variant not in known:
            close = closest(variant, sorted(known))
            raise DataError(f"espeak-ng has no voice variant '{variant}' (in --voices {voice}){close}; it "
                            f"would speak the plain '{lang}' voice instead; list them with: espeak-ng "
                            f"--voices=variant")
    with tempfile.TemporaryDirectory() as tmp:
        for i, voice in enumerate(voices):
            synthesize("test", voice, Path(tmp) / f"{i}.wav", ESPEAK_RATE)


def benchmark_corpus(out: str | Path, corpus: str | Path | None = None, *, smoke: bool = False) -> Path:
    """The corpus the audio benchmarks measure on: ``corpus`` when given, else ``out/speech``,
    written there first if absent (voices en+m3 and en+f3, 600 utterances and 20 parallel
    sentences; ``smoke``: 8 and 3)."""
    if corpus:
        return Path(corpus)
    path = Path(out) / "speech"
    if not (path / "corpus.json").is_file():
        n, parallel = (8, 3) if smoke else (600, 20)
        make_speech(path, voices=["en+m3", "en+f3"], utterances=n, parallel=parallel, force=True)
    return path


def make_speech(out: str | Path, *, voices: Sequence[str], utterances: int, rate: int = 22050,
                test_fraction: float = 0.1, parallel: int = 20, seed: int = 0, force: bool = False,
                workers: int = 2, progress: Callable[[str], None] | None = None) -> dict:
    """Write a corpus (layout in the module docstring); returns the corpus.json content.

    Each voice gets ``utterances`` sentences of its own, ``test_fraction`` of them held out;
    ``parallel`` more sentences are spoken by every voice."""
    out = Path(out)
    voices = [v.strip() for v in voices if v.strip()]
    if len(set(voices)) != len(voices) or not voices:
        raise DataError(f"--voices needs distinct espeak-ng voices, e.g. en+m3,en+f3; got {voices}")
    if any(v in ("parallel",) or "/" in v for v in voices):
        raise DataError("a voice may not be called 'parallel' or contain '/'")
    if utterances < 2:
        raise DataError(f"--utterances {utterances} is too few: each voice needs a training and a test "
                        f"sentence; give --utterances 2 or more")
    if parallel < 0:
        raise DataError(f"--parallel {parallel} is negative; give 0 or more parallel sentences")
    if not 0 < test_fraction < 1:  # an argument of the Python API, not an option of the command
        raise DataError(f"test_fraction={test_fraction!r} is outside (0, 1); give e.g. 0.1")
    if not 4000 <= rate <= 192_000:
        raise DataError(f"--rate must be in 4000..192000 Hz, got {rate}; 22050 is the front end's default")
    restore_replaced(out)  # a --force killed between its two renames: the old corpus put back first
    if out.exists() and not out.is_dir():
        raise StorageError(f"--out {out} is a file; give a folder for the corpus")
    _require_espeak()
    replace = out.exists() and any(out.iterdir())
    if replace:
        if not force:
            raise StorageError(f"{out} exists and is not empty; pass --force to replace it or "
                               f"choose another --out")
        if not (out / CORPUS_FILE).is_file():
            raise StorageError(f"{out} is not a speech corpus (no {CORPUS_FILE}); refusing to delete "
                               f"it, choose another --out")
    check_voices(voices)
    # built beside --out and moved into place when complete: a failure (a voice, Ctrl-C, SIGTERM)
    # leaves the corpus that --force would have replaced as it was, and no half corpus
    final, out = out, _partial(out, os.getpid())
    _remove_stale_partials(final, progress)
    shutil.rmtree(out, ignore_errors=True)  # left by an earlier process with our pid
    n_test = min(utterances - 1, max(1, round(utterances * test_fraction)))  # >= 1 of each split
    pool = make_sentences(len(voices) * utterances + parallel, seed)
    jobs: list[tuple[str, str, Path]] = []
    files: dict[str, str] = {}
    for k, voice in enumerate(voices):
        own = pool[k * utterances:(k + 1) * utterances]
        for i, text in enumerate(own):
            split = "test" if i >= utterances - n_test else "train"
            jobs.append((text, voice, out / voice / split / f"{i:04d}.wav"))
    for i, text in enumerate(pool[len(voices) * utterances:]):
        for voice in voices:
            jobs.append((text, voice, out / "parallel" / voice / f"{i:04d}.wav"))
    for text, _voice, path in jobs:
        files[str(path.relative_to(out))] = text
    done = 0

    def run(job):
        text, voice, path = job
        _write_file(path, wav_bytes(speak(text, voice, rate), rate))

    info = {"voices": voices, "rate": rate, "seed": seed, "train": utterances - n_test,
            "test": n_test, "parallel": parallel, "synthesizer": "espeak-ng",
            "version": _espeak_version(), "files": files}
    try:
        ex = ThreadPoolExecutor(max(1, workers))
        try:
            for _ in ex.map(run, jobs):
                done += 1
                if progress is not None and (done % 200 == 0 or done == len(jobs)):
                    progress(f"{done}/{len(jobs)} utterances")
            _write_file(out / CORPUS_FILE, (json.dumps(info, indent=2) + "\n").encode())
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                raise
            # the file that failed is one of the hidden partial folder, which is removed: name --out
            fix = "free some space" if exc.errno in FULL_ERRNOS else "make it writable"
            kept = f"the corpus in {final} was left as it was" if replace else f"nothing was written to {final}"
            raise StorageError(f"{exc.strerror} while writing the corpus {final}; {fix} or choose another "
                               f"--out ({kept})") from None
        finally:  # a failed utterance stops the rest (the pool had run every one before raising)
            ex.shutdown(wait=True, cancel_futures=True)
        for folder in {path.parent for _, _, path in jobs} | {out}:  # the files' names are durable too
            fsync_dir(folder)
        # the old corpus (or the empty folder given as --out) renamed aside, the new one in, and
        # only then the old one deleted: deleting first, a kill had lost both
        replace_folder(out, final)
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        raise
    return info


def _partial(final: Path, pid: int) -> Path:
    """The hidden folder beside ``final`` where process ``pid`` builds the corpus."""
    return final.parent / f".{final.name}.partial-{pid}"


def _remove_stale_partials(final: Path, say: Callable[[str], None] | None) -> None:
    """Remove the partial corpora of ``final`` that killed runs left (SIGKILL, a crash: Ctrl-C
    and SIGTERM remove their own), up to gigabytes each, which later runs (their pid in the name
    not being ours) had never removed. Only one whose process is not running here and in which
    nothing was written for STALE_SECONDS: a pid says nothing of a run on another machine writing
    into a shared folder. A younger one is named."""
    pattern = re.compile(re.escape(f".{final.name}.partial-") + r"(\d+)")
    try:
        found = sorted((path, int(m[1])) for path in final.parent.iterdir() if (m := pattern.fullmatch(path.name)))
    except OSError:
        return
    for path, pid in found:
        if pid == os.getpid() or not is_gone(pid) or path.is_symlink() or not path.is_dir():
            continue
        idle = _idle_seconds(path)
        if idle > STALE_SECONDS:
            if say is not None:
                say(f"removing {path}, a partial corpus that a stopped make-speech (process {pid}) left")
            shutil.rmtree(path, ignore_errors=True)
        elif say is not None:
            say(f"note: {path} looks left by a stopped make-speech (process {pid} is not running here) but "
                f"was written {idle:.0f} s ago; it is removed once untouched for {STALE_SECONDS // 60} minutes "
                f"(a run on another machine may be writing it), or delete it yourself")


def _idle_seconds(folder: Path) -> float:
    """Seconds since a file was last added anywhere in ``folder``: a live build adds one every
    moment, to one of its subfolders (the top folder's time does not change meanwhile)."""
    try:
        newest = max(os.stat(d).st_mtime for d, _, _ in os.walk(folder))
    except (OSError, ValueError):  # gone meanwhile
        return 0.0
    return time.time() - newest


def _espeak_version() -> str:
    try:
        text = subprocess.run([_require_espeak(), "--version"], capture_output=True, text=True,
                              timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return " ".join(text.split()[:4])


def parallel_pairs(root: str | Path, voice_a: str, voice_b: str) -> list[tuple[Path, Path]]:
    """(voice A file, voice B file) of the same held-out sentence, from ``root/parallel``."""
    root = Path(root)
    a_dir, b_dir = root / "parallel" / voice_a, root / "parallel" / voice_b
    info = read_corpus_info(root)
    if info is not None and info.get("parallel") == 0 and {voice_a, voice_b} <= set(info.get("voices", [])):
        # the voices are there: asking for them, as below, had sent the user after the wrong thing
        raise DataError(f"{root} was written with --parallel 0: it has no parallel sentences to score "
                        f"conversion with; write it again with {_make_speech_again(root, info)}")
    layout = (f"the same sentences said by both voices, in {a_dir}/ and {b_dir}/, each sentence's two "
              f"recordings under one name (p1.wav and p1.flac)")
    if not a_dir.is_dir() or not b_dir.is_dir():
        # a folder of the user's own voices is no make-speech corpus: its folder names are no
        # espeak-ng voices, and make-speech --voices m3,f3 had failed on them
        raise DataError(f"{root} has no parallel/{voice_a} and parallel/{voice_b}; " + (
            f"write the corpus with ganforge data make-speech --voices {voice_a},{voice_b}" if info is not None
            else f"conversion is scored on {layout}"))
    # by name without extension, every format the loader reads: FLAC sentences had been passed
    # over, then said to be in neither folder
    a_files, b_files = ({p.stem: p for p in audio_files(d) if p.parent == d} for d in (a_dir, b_dir))
    names = sorted(a_files.keys() & b_files.keys())
    if not names:
        raise DataError(f"no sentence is in both {a_dir} and {b_dir}; " + (
            "write the corpus again" if info is not None else f"conversion is scored on {layout}"))
    return [(a_files[n], b_files[n]) for n in names]


def _make_speech_again(root: Path, info: dict) -> str:
    """The make-speech command that writes ``root`` again with parallel sentences: the same
    voices, utterances, rate and seed, so its training and test sentences stay the same."""
    extra = "".join(f" --{key} {info[key]}" for key, default in (("rate", 22050), ("seed", 0))
                    if info.get(key, default) != default)
    return (f"ganforge data make-speech --out {shell_arg(root)} --voices {shell_arg(','.join(info['voices']))} "
            f"--utterances {info['train'] + info['test']}{extra} --parallel 20 --force")


def corpus_summary(info: dict) -> str:
    return (f"{len(info['voices'])} voice(s) {', '.join(info['voices'])} at {info['rate']} Hz: "
            f"{info['train']} train + {info['test']} test utterances each, {info['parallel']} "
            f"parallel sentences")

