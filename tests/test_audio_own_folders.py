"""Voice conversion on a user's own folders (a review with their own recordings): parallel
sentences in any format the loader reads, a folder without them told the layout rather than a
make-speech command for folder names that are no espeak-ng voices, and the mixdown/resample note
of a voice pair named per voice folder."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from ganforge.data import speech
from ganforge.data.audio import load_audio, write_tone_folder
from ganforge.errors import DataError

RATE = 8000


def _flac(path, seed):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(RATE // 4) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * (200 + 50 * seed) * t)).astype(np.float32), RATE, format="FLAC")


def test_parallel_sentences_are_matched_by_name_in_any_audio_format(tmp_path):
    for i in range(3):
        _flac(tmp_path / "parallel" / "m3" / f"p{i}.flac", i)
    write_tone_folder(tmp_path / "parallel" / "f3", n=2, seconds=0.25, rate=RATE)  # 000.wav, 001.wav
    _flac(tmp_path / "parallel" / "f3" / "p1.FLAC", 5)
    (tmp_path / "parallel" / "f3" / "p2.wav").write_bytes((tmp_path / "parallel" / "f3" / "000.wav").read_bytes())
    pairs = speech.parallel_pairs(tmp_path, "m3", "f3")
    assert [(a.name, b.name) for a, b in pairs] == [("p1.flac", "p1.FLAC"), ("p2.flac", "p2.wav")]


def test_a_users_folder_without_parallel_sentences_is_told_the_layout(tmp_path):
    """It had been told to run make-speech --voices m3,f3: m3 and f3 are the user's folder names."""
    for voice in ("m3", "f3"):
        write_tone_folder(tmp_path / voice, n=2, seconds=0.25, rate=RATE)
    with pytest.raises(DataError) as info:
        speech.parallel_pairs(tmp_path, "m3", "f3")
    assert str(info.value) == (f"{tmp_path} has no parallel/m3 and parallel/f3; conversion is scored on the same "
                               f"sentences said by both voices, in {tmp_path}/parallel/m3/ and "
                               f"{tmp_path}/parallel/f3/, each sentence's two recordings under one name "
                               f"(p1.wav and p1.flac)")
    assert "make-speech" not in str(info.value)
    _flac(tmp_path / "parallel" / "m3" / "a.flac", 1)
    _flac(tmp_path / "parallel" / "f3" / "b.flac", 2)
    with pytest.raises(DataError, match=r"no sentence is in both .*; conversion is scored on the same sentences"):
        speech.parallel_pairs(tmp_path, "m3", "f3")


def test_a_voice_pairs_notes_name_each_voice_folder(tmp_path, capsys):
    for voice in ("m3", "f3"):
        _flac(tmp_path / voice / "u1.flac", 1)  # 8 kHz: resampled to 16 kHz
    lines = []
    for voice in ("m3", "f3"):
        load_audio(tmp_path, rate=16000, min_seconds=0.1, voices=[voice])
        lines += [line for line in capsys.readouterr().out.splitlines() if "resampled" in line]
    assert len(lines) == 2 and lines[0] != lines[1], lines
    assert lines[0].startswith(f"ganforge: {tmp_path / 'm3'}: 1 file(s) resampled"), lines
