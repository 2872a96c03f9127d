"""Audio data: ``data.name=audio:PATH``, a folder of WAV/FLAC files read with soundfile.

Every file becomes a mono float32 waveform at the config's rate (``audio.rate``): multichannel
files are mixed down and other rates resampled (scipy's polyphase ``resample_poly``), each noted
once in the log. A file that is empty, silent, not finite (NaN samples), shorter than
``audio.min_seconds`` or that soundfile cannot decode stops loading with a one-line DataError
naming it. Files are decoded front to back in blocks, mixed down as they go; ``decode_audio``
does the same for an upload's bytes, with a length limit and a range of sample rates.

A corpus written by ``ganforge data make-speech`` (it has a ``corpus.json``) holds one folder per
voice with ``train/`` and ``test/`` inside, and ``parallel/<voice>/`` (every voice saying the same
held-out sentences). ``audio:CORPUS`` reads the ``data.split`` folder of every voice; a voice is
picked with ``voices=`` (the voice-conversion family reads its two voices this way). One voice's
folder of such a corpus (it has ``train/``, ``test/`` or ``val/`` inside) is read at its
``data.split`` folder too, so a held-out split is never read with the training one. Any other
folder is read recursively as it is.

Training batches are random crops (``CropBatches``): which utterance and where are drawn from a
generator seeded by (seed, batch count), so the count is the whole state and resume is exact.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import DataError, shell_arg

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")  # what libsndfile (1.1 on) decodes
CORPUS_FILE = "corpus.json"
SILENCE_PEAK = 1e-4  # a file whose peak stays below this is "silent"


UPLOAD_RATES = (4000, 192000)  # sample rates of uploads (a header claiming 2 GHz would make resampling explode)
BLOCK_VALUES = 1 << 20  # samples (all channels) decoded at a time


class NotAudio(DataError):
    """The bytes are not audio that soundfile (libsndfile) can decode."""


class TooLong(DataError):
    """The recording is longer than the reader's ``max_seconds``."""


def _decode(source, label: str, fixes: dict[str, str], max_seconds: float | None,
            limit_name: str = "the limit", rates: tuple[int, int] | None = None) -> tuple[np.ndarray, int, int]:
    """(mono float32 at the file's own rate, that rate, its channel count), decoded block by block
    and mixed down as it goes, so that memory follows the mono length; with ``max_seconds`` the
    reading stops just past that length, whatever the header says (a streamed file's header may
    say nothing, or anything); with ``rates`` (low, high) other sample rates are refused."""
    import soundfile as sf

    def refuse(exc):
        why = " ".join(str(exc).replace(repr(source), label).split())[:80] or type(exc).__name__
        return NotAudio(f"{label}: cannot decode as audio ({why}); {fixes['undecodable']}")

    try:
        f = sf.SoundFile(source)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise refuse(exc) from None
    # soundfile seeks to its own position after each read, which libsndfile refuses at the end of
    # a FLAC whose header gives no length; reading front to back needs no seeking
    f.seekable = lambda: False
    with f:
        rate, channels = int(f.samplerate), int(f.channels)
        if rates is not None and not rates[0] <= rate <= rates[1]:
            raise DataError(f"{label} has a sample rate of {rate} Hz, outside {rates[0]}-{rates[1]} Hz; "
                            f"{fixes['rate']}")
        limit = None if max_seconds is None else int(max_seconds * rate)  # frames allowed
        if limit is not None and 0 <= f.frames < 2**62 and f.frames > limit:  # known length: no decoding
            raise TooLong(f"{label} is {f.frames / rate:.3f} s long, over {limit_name} of {max_seconds:g} s; "
                          f"{fixes['long']}")
        blocks, frames = [], 0
        try:
            while True:
                block = f.read(max(1024, BLOCK_VALUES // channels), dtype="float32", always_2d=True)
                if not len(block):
                    break
                blocks.append(block[:, 0].copy() if channels == 1 else block.mean(axis=1, dtype=np.float32))
                frames += len(block)
                if limit is not None and frames > limit:
                    raise TooLong(f"{label} is over {limit_name} of {max_seconds:g} s; {fixes['long']}")
        except DataError:
            raise
        except Exception as exc:
            raise refuse(exc) from None
    return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), rate, channels


def resample(wave: np.ndarray, source: int, target: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) from ``source`` to ``target`` Hz."""
    if source == target:
        return wave
    from math import gcd

    from scipy.signal import resample_poly

    g = gcd(source, target)
    return resample_poly(wave, target // g, source // g).astype(np.float32)


# what each reader's errors ask for: a file of a folder (read_audio), or an upload (decode_audio)
FILE_FIXES = {"undecodable": "remove it or convert it to WAV, FLAC, OGG or MP3",
              "empty": "remove it or record it again", "silent": "remove it",
              "short": "remove it or lower audio.min_seconds",
              "not_finite": "remove it or export it again"}
# a single file given on the command line (vocode, convert): there is no folder to remove it from
INPUT_FIXES = {"undecodable": "pass a WAV, FLAC, OGG or MP3 file", "empty": "pass a recording with samples in it",
               "silent": "pass a recording with speech in it", "short": "pass a longer recording",
               "not_finite": "export it again and pass that"}
UPLOAD_FIXES = {"undecodable": "send a WAV, FLAC, OGG or MP3 file", "empty": "send a recording with samples in it",
                "silent": "send a recording with sound in it", "short": "send a longer recording",
                "rate": "resample it", "not_finite": "export it again", "long": "send a shorter one"}


def read_audio(path: str | Path, rate: int, *, min_seconds: float = 0.0,
               notes: list[str] | None = None, fixes: dict[str, str] = FILE_FIXES) -> np.ndarray:
    """A mono float32 waveform [L] at ``rate``; ``notes`` collects what was changed (mixdown,
    resampling). Empty, silent, too-short and undecodable files raise a one-line DataError whose
    fix comes from ``fixes`` (FILE_FIXES: a file of a folder; INPUT_FIXES: a file given alone)."""
    path = Path(path)
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise DataError(f"{path} {what}; pass a WAV, FLAC, OGG or MP3 file")
    if path.stat().st_size == 0:  # soundfile says "Format not recognised", which hides the cause
        raise DataError(f"{path} is empty (0 bytes); {fixes['empty']}")
    wave, source, channels = _decode(str(path), str(path), fixes, None)
    return _mono_at(wave, source, channels, rate, label=str(path), name=path.name, fixes=fixes,
                    min_seconds=min_seconds, notes=notes)


def decode_audio(data: bytes, rate: int, *, label: str = "the upload", min_seconds: float = 0.0,
                 max_seconds: float | None = None, limit_name: str = "the limit",
                 notes: list[str] | None = None) -> np.ndarray:
    """``read_audio`` of a file's bytes (an upload), with the same checks, and TooLong past
    ``max_seconds`` (checked on the header, then while decoding; the error calls it
    ``limit_name``), and sample rates outside UPLOAD_RATES refused; the errors name ``label`` and
    ask for another file. NotAudio when soundfile cannot decode the bytes."""
    import io

    if not data:  # empty, as a header without samples is (a DataError: the server's 422), not undecodable
        raise DataError(f"{label} is empty (0 bytes); {UPLOAD_FIXES['empty']}")
    wave, source, channels = _decode(io.BytesIO(data), label, UPLOAD_FIXES, max_seconds, limit_name, UPLOAD_RATES)
    return _mono_at(wave, source, channels, rate, label=label, name=label, fixes=UPLOAD_FIXES,
                    min_seconds=min_seconds, notes=notes)


def _mono_at(wave: np.ndarray, source: int, channels: int, rate: int, *, label: str, name: str,
             fixes: dict[str, str], min_seconds: float, notes: list[str] | None) -> np.ndarray:
    if len(wave) == 0:
        raise DataError(f"{label} is empty (0 samples); {fixes['empty']}")
    if not np.isfinite(wave).all():
        raise DataError(f"{label} has samples that are not finite (NaN or infinity); {fixes['not_finite']}")
    if channels > 1 and notes is not None:
        notes.append(f"mixed {name} down from {channels} channels to mono")
    wave = resample(wave, source, rate)
    if source != rate and notes is not None:
        notes.append(f"resampled {name} from {source} Hz to {rate} Hz")
    if float(np.abs(wave).max()) < SILENCE_PEAK:
        cancel = (f" after mixing its {channels} channels to mono (channels in opposite phase cancel out: "
                  f"keep one channel)" if channels > 1 else "")
        raise DataError(f"{label} is silent (peak below {SILENCE_PEAK:g}){cancel}; {fixes['silent']}")
    seconds = len(wave) / rate
    if seconds < min_seconds:
        raise DataError(f"{label} is too short ({seconds:.3f} s, audio.min_seconds={min_seconds:g}); "
                        f"{fixes['short']}")
    return wave


def survey(files: Sequence[Path]) -> tuple[float, set[int], set[int], list[tuple[Path, str]]]:
    """(seconds of audio, sample rates, channel counts, [(file, why unusable)]) of ``files``,
    each decoded as training decodes it and given its checks that do not depend on the config
    (undecodable, empty, not finite, silent); ``ganforge data fetch audio:PATH``'s survey."""
    seconds, rates, channels, bad = 0.0, set(), set(), []
    for path in files:
        try:
            if path.stat().st_size == 0:
                raise DataError(f"{path} is empty (0 bytes)")
            wave, rate, n = _decode(str(path), str(path), FILE_FIXES, None)
            _mono_at(wave, rate, n, rate, label=str(path), name=path.name, fixes=FILE_FIXES,
                     min_seconds=0.0, notes=None)
        except NotAudio:
            bad.append((path, "not audio that soundfile can decode"))
            continue
        except DataError as exc:  # "P is silent (peak below 0.0001); remove it" -> "silent (peak ...)"
            bad.append((path, str(exc).split(";")[0].removeprefix(str(path)).removeprefix(" is ").strip()))
            continue
        seconds, rates, channels = seconds + len(wave) / rate, rates | {rate}, channels | {n}
    return seconds, rates, channels, bad


def audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()
                  and not p.name.startswith("."))


def clipped_samples(wave: torch.Tensor) -> int:
    """How many samples are at or past full scale, which a WAV (``_pcm``) clips to [-1, 1]."""
    return int((wave.abs() >= 1.0).sum())


def _pcm(wave: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(wave, torch.Tensor):
        wave = wave.detach().float().cpu().numpy()
    return np.clip(np.asarray(wave, dtype=np.float32).reshape(-1), -1, 1)


def write_wav(path: str | Path, wave: np.ndarray | torch.Tensor, rate: int) -> Path:
    """A mono 16-bit WAV, written atomically (clipped to [-1, 1]). Encoded in memory and written
    with Python's file I/O: libsndfile reports a full disk as "System error." (a RuntimeError),
    which hid the cause and got past atomic_path's one-line StorageError."""
    data = wav_bytes(wave, rate)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def wav_bytes(wave: np.ndarray | torch.Tensor, rate: int) -> bytes:
    """The bytes of ``write_wav``'s file."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, _pcm(wave), rate, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def summarize_notes(notes: Sequence[str], what: str) -> str | None:
    """One log line for the notes of a load ("3 files mixed down ..."), None when there are none."""
    if not notes:
        return None
    mixed = sum("mixed" in n for n in notes)
    resampled = sum("resampled" in n for n in notes)
    parts = ([f"{mixed} multichannel file(s) mixed down to mono"] if mixed else []) + \
            ([f"{resampled} file(s) resampled"] if resampled else [])
    return f"ganforge: {what}: {', '.join(parts)} (e.g. {notes[0]})"


# ----------------------------------------------------------------------------- datasets


@dataclass
class AudioDataset:
    """Mono float32 waveforms at ``rate``, with their file names (relative to ``root``)."""

    name: str
    root: Path
    rate: int
    waves: list[np.ndarray]
    files: list[str]
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.waves)

    @property
    def seconds(self) -> float:
        return sum(len(w) for w in self.waves) / self.rate


def read_corpus_info(root: Path) -> dict[str, Any] | None:
    """The corpus.json of a make-speech corpus, None for a plain folder."""
    path = root / CORPUS_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise DataError(f"{path} is unreadable; write the corpus again with ganforge data "
                        f"make-speech") from None


def parse_audio_name(name: str) -> Path:
    if not name.startswith("audio:") or not name[len("audio:"):]:
        raise DataError(f"data.name={name!r} is not an audio folder; set data.name=audio:PATH "
                        f"(a folder of WAV, FLAC, OGG or MP3 files, e.g. one written by ganforge data make-speech)")
    return Path(name[len("audio:"):]).expanduser()


def load_audio(root: str | Path, *, rate: int, min_seconds: float, split: str = "train",
               voices: Sequence[str] | None = None, log: bool = True) -> AudioDataset:
    """The audio files of ``root``: in a make-speech corpus the ``split`` folder of each voice
    (all voices, or ``voices``); in any other folder every audio file under it (``voices``:
    the files under those subfolders)."""
    root = Path(root)
    if root.is_file():
        raise DataError(f"{root} is a file; data.name=audio:PATH (and eval-audio --data) takes a folder of "
                        f"WAV, FLAC, OGG or MP3 files, e.g. its folder {root.parent}")
    if not root.is_dir():
        raise DataError(f"audio folder {root} does not exist; write one with ganforge data "
                        f"make-speech --out {shell_arg(root)}, or point data.name=audio:PATH at your WAV files")
    info = read_corpus_info(root)
    folders = [_split_folder(root, split)] if voices is None and info is None else []
    for voice in voices if voices is not None else (info or {}).get("voices", []):
        folder = root / voice
        if info is not None and voice not in info.get("voices", []):
            # parallel/ holds every voice's held-out sentences: training on it mixes the speakers
            # and trains on what eval-audio scores
            raise DataError(f"{root} is a speech corpus without the voice '{voice}' (its voices: "
                            f"{', '.join(info.get('voices', []))}); pick one of them"
                            f"{_voice_keys(info.get('voices', []))}")
        if not folder.is_dir():
            names = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != "parallel")
            have = ", ".join(names)
            if not have:  # a plain folder of WAVs: "pick one of (none)" gave no way forward
                raise DataError(f"{root} has no voice folders; voice conversion needs one subfolder per "
                                f"voice: a make-speech corpus, or {root}/VOICE_A/*.wav and {root}/VOICE_B/*.wav "
                                f"named by vc.voice_a / vc.voice_b")
            raise DataError(f"{root} has no folder for voice '{voice}' (folders: {have}); pick "
                            f"one of them{_voice_keys(names) if voices is not None else ''}")
        splits = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name in ("train", "test", "val"))
        if not (folder / split).is_dir() and (info is not None or splits):
            # a misspelt split had read the whole folder, the held-out test files included
            raise DataError(f"{folder} has no '{split}' split (it has: {', '.join(splits) or 'none'}); "
                            f"set data.split to one of them")
        folders.append(folder / split if (folder / split).is_dir() else folder)
    files = [f for folder in folders for f in audio_files(folder)]
    if not files:
        raise DataError(f"no WAV, FLAC, OGG or MP3 files under {', '.join(map(str, folders))}; add audio files "
                        f"or write a corpus with ganforge data make-speech")
    notes: list[str] = []
    waves = [read_audio(f, rate, min_seconds=min_seconds, notes=notes) for f in files]
    # the folders read, not the root: a voice pair's two loads had printed the same line twice
    line = summarize_notes(notes, ", ".join(map(str, folders)))
    if line and log:
        print(line, flush=True)
    return AudioDataset(f"audio:{root}", root, rate, waves, [str(f.relative_to(root)) for f in files], notes)


def _voice_keys(names: Sequence[str]) -> str:
    """How to pick voices: ``voices=`` comes from the voice-conversion family's vc.voice_a and
    vc.voice_b, which "pick one of them" alone did not name."""
    if len(names) < 2:
        return (f" (set {shell_arg(f'vc.voice_a={names[0]}')} and vc.voice_b to a second voice's folder "
                f"beside it)" if names else "")
    return f" (set {shell_arg(f'vc.voice_a={names[0]}')} {shell_arg(f'vc.voice_b={names[1]}')})"


def _split_folder(root: Path, split: str) -> Path:
    """``root/split`` when ``root`` is one voice's folder of a corpus (it has train/, test/ or
    val/ inside and the split is there), else ``root``: reading it whole had scored a voice
    folder's training files as held-out ones (and trained on its test files)."""
    splits = [name for name in ("train", "test", "val") if (root / name).is_dir()]
    return root / split if splits and split in splits else root


# ----------------------------------------------------------------------------- batches


class CropBatches:
    """Endless batches of random crops of ``length`` along the last axis, one entry per source:
    ``sources = {"wave": [tensor [L], ...]}`` gives ``{"wave": [B, length]}``; a mel source
    ``{"a": [tensor [n_mels, T], ...]}`` gives ``[B, n_mels, length]``. Items shorter than
    ``length`` are padded with ``pad_value``. Crops start at multiples of ``align``."""

    def __init__(self, sources: dict[str, list[torch.Tensor]], length: int, batch_size: int,
                 seed: int, device: torch.device, *, pad_value: float = 0.0, align: int = 1):
        for key, items in sources.items():
            if not items:
                raise DataError(f"no training items for '{key}'; add audio files")
        self.sources = {k: [t.float() for t in v] for k, v in sources.items()}
        self.length, self.batch_size, self.seed, self.device = length, batch_size, seed, device
        self.pad_value, self.align = pad_value, align
        self.count = 0

    def state_dict(self) -> dict[str, int]:
        return {"count": self.count}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.count = int(state["count"])

    def _crop(self, item: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n = item.shape[-1]
        if n <= self.length:
            pad = item.new_full((*item.shape[:-1], self.length - n), self.pad_value)
            return torch.cat([item, pad], -1)
        starts = (n - self.length) // self.align + 1
        start = int(torch.randint(starts, (), generator=g)) * self.align
        return item[..., start:start + self.length]

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, Any]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.count)
        self.count += 1
        out = {}
        for key, items in self.sources.items():
            idx = torch.randint(len(items), (self.batch_size,), generator=g).tolist()
            out[key] = torch.stack([self._crop(items[i], g) for i in idx]).to(self.device)
        return out


def write_tone_folder(root: str | Path, *, n: int, seconds: float, rate: int, seed: int = 0,
                      pitch: float = 1.0) -> Path:
    """Short voiced-like test signals (harmonic tones with a gliding pitch, an envelope and a
    little noise) as WAV files under ``root``: the offline data of the audio example configs.
    ``pitch`` scales the fundamental (two "voices" differ by it)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    t = np.arange(int(seconds * rate)) / rate
    for i in range(n):
        f0 = pitch * rng.uniform(100, 180) * (1 + 0.2 * np.sin(2 * np.pi * rng.uniform(1, 3) * t))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        wave = sum(np.sin(k * phase) / k for k in range(1, 6))
        wave = wave * np.hanning(len(t)) * 0.3 + 0.005 * rng.standard_normal(len(t))
        write_wav(root / f"{i:03d}.wav", wave.astype(np.float32), rate)
    return root
