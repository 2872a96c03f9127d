"""make-speech, convert and eval-audio review, each reproduced: SIGTERM (kill, timeout, a
scheduler) killed make-speech at once and left its hidden partial corpus (338 MB, 9.2 GB), which
no later run removed; --force deleted the old corpus before the new one was moved in, so a kill
between the two lost both; eval-audio's vocoder table gave no units, and convert no time."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from ganforge import cli
from ganforge.atomic import STALE_SECONDS
from ganforge.data import speech
from ganforge.data.audio import write_tone_folder, write_wav
from ganforge.errors import StorageError
from test_audio_messages import RATE, _tone, vc_run, vocoder_run  # noqa: F401 (fixtures)

NO_ESPEAK = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _corpus(out: Path, **kwargs) -> dict:
    """The smallest corpus: one voice, a training and a test sentence, at 8 kHz."""
    return speech.make_speech(out, voices=["en+m3"], utterances=2, parallel=0, rate=8000, **kwargs)


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _in_session(sid: int) -> list[str]:
    """The processes (zombies included) of session ``sid``: make-speech's espeak-ng children."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2:].split()  # state, ppid, pgrp, session, ...
        if int(fields[3]) == sid:
            found.append(text[:text.rindex(")") + 1])
    return found


# ----------------------------------------------------------------------------- 1: SIGTERM


@NO_ESPEAK
def test_sigterm_removes_the_partial_corpus_keeps_the_old_one_and_leaves_no_espeak(tmp_path):
    out = tmp_path / "c"
    _corpus(out)
    old = _files(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ganforge", "data", "make-speech", "--out", str(out),
                             "--voices", "en+m3", "--utterances", "3000", "--rate", "8000", "--force"],
                            env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # its espeak-ng children are found by the session
    deadline = time.monotonic() + 30
    while not any(tmp_path.glob(".c.partial-*/en+m3/train/*.wav")) and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)  # to make-speech alone, as kill and timeout send it
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.strip() == f"ganforge: interrupted (SIGTERM); the corpus in {out} was kept as it was"
    assert _files(out) == old and [p.name for p in tmp_path.iterdir()] == ["c"]
    assert _in_session(proc.pid) == []  # no espeak-ng left speaking, nor a zombie


@NO_ESPEAK
def test_partial_corpora_of_killed_runs_are_removed_live_and_recent_ones_kept(tmp_path):
    """Only `.c.partial-PID` of a process that is gone and untouched for STALE_SECONDS: a pid says
    nothing of a run on another machine writing into a shared folder."""
    old_time = time.time() - STALE_SECONDS - 60
    dead, recent = _dead_pid(), _dead_pid()

    def partial(name: str, when: float | None) -> Path:
        folder = tmp_path / name / "en+m3" / "train"
        folder.mkdir(parents=True)
        (folder / "0000.wav").write_bytes(b"half")
        if when is not None:
            for d in (folder, folder.parent, folder.parent.parent):
                os.utime(d, (when, when))
        return folder.parent.parent

    stale = partial(f".c.partial-{dead}", old_time)
    kept = [partial(f".c.partial-{recent}", None),  # written a moment ago
            partial(f".c.partial-{os.getppid()}", old_time),  # its process runs
            partial(f".d.partial-{dead}", old_time),  # another --out's
            partial(f".c.partial-{dead}x", old_time)]  # not the pattern
    said: list[str] = []
    _corpus(tmp_path / "c", progress=said.append)
    assert not stale.exists() and all(p.is_dir() for p in kept)
    assert said[0] == f"removing {stale}, a partial corpus that a stopped make-speech (process {dead}) left"
    assert said[1].startswith(f"note: {kept[0]} looks left by a stopped make-speech (process {recent} is not "
                              f"running here) but was written ")
    assert len(said) == 3 and said[2] == "2/2 utterances"


# ----------------------------------------------------------------------------- 2: --force


@NO_ESPEAK
def test_force_stopped_as_the_new_corpus_is_moved_in_keeps_the_old_one(tmp_path, monkeypatch):
    """The old corpus was deleted first: a stop before the rename lost it and the new one."""
    out = tmp_path / "c"
    _corpus(out)
    old = _files(out)
    for name in ("rename", "replace"):
        real = getattr(os, name)

        def stopped(src, dst, *args, real=real, **kwargs):
            if Path(src).name.startswith(".c.partial-"):
                raise KeyboardInterrupt
            return real(src, dst, *args, **kwargs)
        monkeypatch.setattr(os, name, stopped)
    with pytest.raises(KeyboardInterrupt):
        _corpus(out, seed=1, force=True)
    monkeypatch.undo()
    assert _files(out) == old and [p.name for p in tmp_path.iterdir()] == ["c"]


@NO_ESPEAK
def test_a_corpus_that_a_killed_force_had_moved_aside_is_put_back(tmp_path):
    """SIGKILL between the two renames: the old corpus waits aside, --out is missing; the next run
    puts it back (and so refuses to replace it without --force) instead of writing beside it."""
    out = tmp_path / "c"
    _corpus(out)
    old = _files(out)
    out.rename(tmp_path / f".c.old-{_dead_pid()}")
    with pytest.raises(StorageError, match="exists and is not empty; pass --force"):
        _corpus(out)
    assert _files(out) == old and [p.name for p in tmp_path.iterdir()] == ["c"]


# ----------------------------------------------------------------------------- 3: units, time


def test_eval_audio_of_a_vocoder_gives_the_units_before_the_notes(vocoder_run, tmp_path, capsys):  # noqa: F811
    held_out = write_tone_folder(tmp_path / "held", n=2, seconds=0.3, rate=RATE, seed=9)
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(held_out), "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    units = [i for i, line in enumerate(lines) if line.startswith("mel_l1: ")]
    assert len(units) == 1, lines
    assert "mcd: dB (lower is better)" in lines[units[0]] and "rtf: seconds of synthesis per second" in lines[units[0]]
    assert lines[units[0] - 1].startswith("griffin-lim ")  # right under the table
    assert all(line.startswith("note: ") for line in lines[units[0] + 1:])


def test_convert_says_how_long_it_took_and_the_real_time_factor(vc_run, tmp_path, capsys):  # noqa: F811
    src = write_wav(tmp_path / "in.wav", _tone(RATE), RATE)
    out = tmp_path / "out.wav"
    assert cli.main(["convert", str(vc_run), str(src), "--out", str(out)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"ganforge: {src} -> {out} (AtoB, waveform by griffin-lim; 1.00 s of audio, "
                           f"analysis, conversion and synthesis in "), last
    assert "real-time factor" in last and out.is_file()
