"""The audio commands' and API's messages: eval-audio's default thread count, the direction of
convert in the API's terms, and too-short inputs named with the least length. Tiny runs of the
families' example configs (8 kHz, hop 64, front-end padding 96)."""
from __future__ import annotations

import json
import os
import re

import numpy as np
import pytest
import torch

import ganforge
from ganforge import api, cli
from ganforge.config import from_dict
from ganforge.data.audio import write_tone_folder, write_wav
from ganforge.errors import ConfigError, DataError
from ganforge.metrics import audio as audio_metrics
from ganforge.objectives import OBJECTIVES

pytest.importorskip("librosa")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RATE = 8000  # the example configs' audio.rate


def _train(name, root):
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        raw = OBJECTIVES[name].example_config(root / "data")
        run = root / name
        api.train(from_dict(raw), run, progress=False)
        return run
    finally:
        torch.set_num_threads(old)


@pytest.fixture(scope="module")
def vocoder_run(tmp_path_factory):
    return _train("vocoder", tmp_path_factory.mktemp("vocoder"))


@pytest.fixture(scope="module")
def vc_run(tmp_path_factory):
    return _train("cyclegan-vc", tmp_path_factory.mktemp("vc"))


def _tone(samples: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 200 * np.arange(samples) / RATE)).astype(np.float32)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error: ") and "\n" not in err, err
    return err


def _cpus(monkeypatch, n: int | None, *, affinity: bool = True) -> None:
    """Make this process see ``n`` usable CPUs, through the affinity mask or os.cpu_count."""
    if affinity:
        monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(n)), raising=False)
    else:
        monkeypatch.delattr(os, "sched_getaffinity", raising=False)
        monkeypatch.setattr(os, "cpu_count", lambda: n)


# ----------------------------------------------------------------------------- item 1: --threads


@pytest.mark.parametrize("n, affinity, expected", [(1, True, 1), (8, True, 2), (1, False, 1),
                                                   (16, False, 2), (None, False, 1)])
def test_default_timing_threads_are_capped_at_the_usable_cpus(monkeypatch, n, affinity, expected):
    _cpus(monkeypatch, n, affinity=affinity)
    assert audio_metrics.default_threads() == expected


def test_affinity_mask_wins_over_cpu_count(monkeypatch):
    """A process pinned to one CPU of many (taskset, a container's cpuset) times on one thread."""
    _cpus(monkeypatch, 1)
    monkeypatch.setattr(os, "cpu_count", lambda: 64)
    assert audio_metrics.usable_cpus() == 1 and audio_metrics.default_threads() == 1


def test_eval_audio_help_says_the_default_threads(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["eval-audio", "--help"])
    assert exc.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert audio_metrics.TIMING_THREADS == 2
    assert ("--threads THREADS torch threads for the timing (default: 2, or the number of CPUs this "
            "process may use if that is fewer)") in help_text


def test_eval_audio_times_on_one_thread_where_one_cpu_is_usable(vocoder_run, tmp_path, capsys, monkeypatch):
    held_out = write_tone_folder(tmp_path / "held", n=1, seconds=0.3, rate=RATE, seed=9)
    _cpus(monkeypatch, 1)
    out = tmp_path / "e.json"
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(held_out), "--json", str(out)]) == 0
    assert "timing on 1 thread(s)" in capsys.readouterr().out
    assert json.loads(out.read_text())["threads"] == 1
    # the Python API's default is the same
    assert audio_metrics.evaluate_run(ganforge.load(vocoder_run), held_out)["threads"] == 1
    # an explicit --threads is kept
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(held_out), "--threads", "3"]) == 0
    assert "timing on 3 thread(s)" in capsys.readouterr().out


# ----------------------------------------------------------------------------- item 2: direction


def test_convert_direction_errors_speak_the_api_or_the_cli(vc_run, tmp_path, capsys):
    run = ganforge.load(vc_run)
    mel = run.analyze(torch.from_numpy(_tone(640)))
    with pytest.raises(ConfigError) as exc:
        run.convert(mel, direction="ab")
    msg = str(exc.value)
    assert msg == ("convert: direction='ab' is not a direction; pass direction='AtoB' (voice A to "
                   "voice B) or direction='BtoA'")
    assert "--" not in msg
    # the statistics-matching baseline had taken anything but "AtoB" for BtoA without a word
    with pytest.raises(ConfigError, match=r"^match_statistics: direction='ab' is not a direction"):
        run.objective.match_statistics(mel, direction="ab")
    for direction in ("AtoB", "BtoA"):
        assert run.convert(mel, direction=direction).shape == mel.shape
    # the CLI's parser checks --direction itself, in the CLI's terms
    src = write_wav(tmp_path / "in.wav", _tone(640), RATE)
    with pytest.raises(SystemExit) as exit_:  # argparse's error: exit code 2, one line
        cli.main(["convert", str(vc_run), str(src), "--out", str(tmp_path / "o.wav"), "--direction", "ab"])
    assert exit_.value.code == 2
    err = _one_line_error(capsys)
    assert "--direction" in err and "'ab'" in err and "AtoB" in err and "direction=" not in err


# ----------------------------------------------------------------------------- item 3: short inputs


def test_vocode_names_a_too_short_file_and_its_least_length(vocoder_run, tmp_path, capsys):
    short = write_wav(tmp_path / "short.wav", _tone(60), RATE)
    out = tmp_path / "out.wav"
    assert cli.main(["vocode", str(vocoder_run), str(short), "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert err == (f"ganforge: error: {short} has 60 samples (0.0075 s at 8000 Hz); this run needs at "
                   f"least 97 samples (0.0121 s): give a longer recording")
    assert not out.exists()
    # the least length is exact: the front end pads (n_fft - hop) / 2 = 96 samples by reflection
    enough = write_wav(tmp_path / "enough.wav", _tone(97), RATE)
    assert cli.main(["vocode", str(vocoder_run), str(enough), "--out", str(out)]) == 0
    # the API says it too, without a file
    with pytest.raises(DataError, match=re.escape(
            "analyze: the audio has 60 samples (0.0075 s at 8000 Hz); the front end needs more than 96: "
            "give at least 97 samples (0.0121 s)")):
        ganforge.load(vocoder_run).analyze(torch.from_numpy(_tone(60)))


def test_convert_names_a_too_short_file_and_says_the_least_length(vc_run, tmp_path, capsys):
    short = write_wav(tmp_path / "short.wav", _tone(200), RATE)  # 4 frames: the front end is happy
    out = tmp_path / "out.wav"
    assert cli.main(["convert", str(vc_run), str(short), "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert err == (f"ganforge: error: {short} has 200 samples (0.025 s at 8000 Hz); this run needs at "
                   f"least 257 samples (0.0321 s): give a longer recording")
    assert not out.exists()
    # 257 samples make 5 frames, the fewest the generator takes
    enough = write_wav(tmp_path / "enough.wav", _tone(257), RATE)
    assert cli.main(["convert", str(vc_run), str(enough), "--out", str(out)]) == 0
    # from Python: the minimum in frames, samples and seconds
    run = ganforge.load(vc_run)
    mel = run.analyze(torch.from_numpy(_tone(200)))
    assert mel.shape[-1] == 4
    with pytest.raises(DataError) as exc:
        run.convert(mel)
    assert str(exc.value) == ("convert: the log-mel has 4 frames; this network needs at least 5 (audio of "
                              "257 samples, 0.0321 s at 8000 Hz): give a longer input")


def test_convert_says_the_least_length_at_the_presets_front_end(tmp_path):
    """The reviewer's case: 600 samples at the speech preset's 22050 Hz, hop 256 (3 frames)."""
    cls = OBJECTIVES["cyclegan-vc"]
    raw = cls.example_config(tmp_path)
    raw["audio"] = {"rate": 22050, "n_fft": 1024, "hop": 256, "win": 1024, "n_mels": 16, "fmax": 8000.0}
    objective = cls(from_dict(raw), {})
    objective.bind(device=torch.device("cpu"), rng=torch.Generator())
    assert objective.min_samples() == 1025  # 5 frames of 256; the front end alone needs 385
    mel = objective.analyze(torch.from_numpy(_tone(600)))
    with pytest.raises(DataError, match=re.escape("needs at least 5 (audio of 1025 samples, 0.0465 s at "
                                                  "22050 Hz)")):
        objective.convert(mel)
    with pytest.raises(DataError, match=re.escape("short.wav has 600 samples (0.0272 s at 22050 Hz); this run "
                                                  "needs at least 1025 samples (0.0465 s)")):
        objective.check_length(600, "short.wav")
    assert objective.convert(objective.analyze(torch.from_numpy(_tone(1025)))).shape[-1] == 5
