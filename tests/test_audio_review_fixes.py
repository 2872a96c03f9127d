"""Review findings on the audio commands, each reproduced: a full disk under vocode / convert /
make-speech, eval-audio of one voice's folder, data.name=audio:FILE, voice conversion on a plain
folder of WAVs, and the messages of a bad single input, a 0-byte file and make-speech's options.
Tiny runs of the families' example configs (8 kHz, hop 64), as in test_audio_messages.py."""
from __future__ import annotations

import asyncio
import errno
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from ganforge import cli
from ganforge.data import speech
from ganforge.data.audio import NotAudio, decode_audio, load_audio, read_audio, write_tone_folder, write_wav
from ganforge.errors import DataError, StorageError
from test_audio_messages import RATE, _one_line_error, _tone, vc_run, vocoder_run  # noqa: F401 (fixtures)

pytest.importorskip("librosa")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _disk_fills_on_wav(monkeypatch) -> None:
    """Writing a .wav writes half its bytes, then fails as a full disk does."""
    real = pathlib.Path.write_bytes

    def write_bytes(self, data):
        if self.suffix != ".wav":
            return real(self, data)
        with open(self, "wb") as f:
            f.write(data[:len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")
    monkeypatch.setattr(pathlib.Path, "write_bytes", write_bytes)


def _names(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ----------------------------------------------------------------------------- 1: full disk


def test_write_wav_on_a_full_disk_is_a_one_line_storage_error_and_leaves_nothing(tmp_path, monkeypatch):
    """libsndfile reported a full disk as "System error." (a RuntimeError): a traceback, exit 1."""
    old = write_wav(tmp_path / "old.wav", _tone(800), RATE).read_bytes()
    _disk_fills_on_wav(monkeypatch)
    for name in ("new.wav", "old.wav"):
        with pytest.raises(StorageError) as exc:
            write_wav(tmp_path / name, _tone(4000), RATE)
        kept = "nothing was written" if name == "new.wav" else f"{name} was left as it was"
        assert str(exc.value) == (f"cannot write {tmp_path / name}: No space left on device; free some space "
                                  f"or choose another path ({kept})")
    assert _names(tmp_path) == ["old.wav"] and (tmp_path / "old.wav").read_bytes() == old  # no partial file


def test_vocode_and_convert_on_a_full_disk_exit_2_with_one_line(vocoder_run, vc_run, tmp_path, capsys,  # noqa: F811
                                                              monkeypatch):
    src = write_wav(tmp_path / "in.wav", _tone(2000), RATE)
    out = write_wav(tmp_path / "out.wav", _tone(300), RATE)
    before = out.read_bytes()
    _disk_fills_on_wav(monkeypatch)
    for argv in (["vocode", str(vocoder_run)], ["convert", str(vc_run)]):
        assert cli.main([*argv, str(src), "--out", str(out), "--force"]) == 2
        err = _one_line_error(capsys)
        assert "No space left on device; free some space" in err and "out.wav was left as it was" in err
        assert _names(tmp_path) == ["in.wav", "out.wav"] and out.read_bytes() == before


# ----------------------------------------------------------------------------- 2: held-out split


def test_eval_audio_of_one_voice_folder_scores_its_test_split_only(vocoder_run, tmp_path, capsys):  # noqa: F811
    """corpus/VOICE (train/ and test/ inside, no corpus.json) had been read whole: 4 files called
    held-out, 3 of them training files."""
    voice = tmp_path / "en+m3"
    write_tone_folder(voice / "train", n=3, seconds=0.3, rate=RATE, seed=1)
    write_tone_folder(voice / "test", n=1, seconds=0.3, rate=RATE, seed=2)
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(voice)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 held-out utterance(s)") and "training files" not in out
    # training reads the voice folder's train/ only (it had trained on test/ too)
    assert load_audio(voice, rate=RATE, min_seconds=0.1, log=False).files == [f"train/00{i}.wav" for i in range(3)]
    # a train/ folder itself, or a voice folder with train/ and no test/: scored, with a warning
    only_train = tmp_path / "only-train"
    shutil.copytree(voice / "train", only_train / "train")
    for data, n in ((voice / "train", 3), (only_train, 3)):
        assert cli.main(["eval-audio", str(vocoder_run), "--data", str(data)]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"{n} training (not held-out) utterance(s)")
        assert [line for line in lines if "training files" in line] == [
            f"note: {data} holds training files (train/), not held-out ones: the scores are on data the run "
            f"may have trained on; point --data at the corpus or a voice's test/ folder"]
    # a plain folder of WAVs is scored as given, without a warning
    plain = write_tone_folder(tmp_path / "plain", n=2, seconds=0.3, rate=RATE, seed=3)
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(plain)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 held-out utterance(s)") and "training files" not in out


# ----------------------------------------------------------------------------- 3: audio:FILE


def test_data_name_audio_of_a_file_says_it_takes_a_folder(tmp_path, capsys):
    wav = write_wav(tmp_path / "base.wav", _tone(2000), RATE)
    with pytest.raises(DataError) as exc:
        load_audio(wav, rate=RATE, min_seconds=0.0)
    assert str(exc.value) == (f"{wav} is a file; data.name=audio:PATH (and eval-audio --data) takes a folder of "
                              f"WAV, FLAC, OGG or MP3 files, e.g. its folder {tmp_path}")
    assert cli.main(["train", "vocos-pghi-speech", "--out", str(tmp_path / "run"), "--steps", "1",
                     f"data.name=audio:{wav}"]) == 2
    assert "is a file; data.name=audio:PATH" in _one_line_error(capsys) and not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- 4: VC on a plain folder


def test_voice_conversion_on_a_plain_folder_says_it_needs_a_folder_per_voice(vc_run, tmp_path, capsys):  # noqa: F811
    """It had said "has no folder for voice 'low' (folders: none); pick one of them"."""
    plain = write_tone_folder(tmp_path / "plain", n=2, seconds=0.3, rate=RATE)
    with pytest.raises(DataError) as exc:  # what training reads (data.name=audio:plain)
        load_audio(plain, rate=RATE, min_seconds=0.1, voices=["low"])
    assert str(exc.value) == (f"{plain} has no voice folders; voice conversion needs one subfolder per voice: a "
                              f"make-speech corpus, or {plain}/VOICE_A/*.wav and {plain}/VOICE_B/*.wav named by "
                              f"vc.voice_a / vc.voice_b")
    assert cli.main(["eval-audio", str(vc_run), "--data", str(plain)]) == 2
    assert _one_line_error(capsys) == (
        f"ganforge: error: --data {plain} has no voice folders; evaluating voice conversion needs one subfolder "
        f"per voice and parallel sentences: a make-speech corpus, or {plain}/low/*.wav, {plain}/high/*.wav and "
        f"{plain}/parallel/low, {plain}/parallel/high (the same sentences, same file names)")
    # folders that are there but not the voice: they are listed, as before
    write_tone_folder(plain / "mid", n=1, seconds=0.3, rate=RATE)
    with pytest.raises(DataError, match=r"has no folder for voice 'low' \(folders: mid\); pick one of them"):
        load_audio(plain, rate=RATE, min_seconds=0.1, voices=["low"])


# ----------------------------------------------------------------------------- 5: messages


def test_a_bad_single_input_asks_for_another_recording_not_to_remove_it(vocoder_run, vc_run, tmp_path,  # noqa: F811
                                                                       capsys):
    silent = write_wav(tmp_path / "silent.wav", np.zeros(2000), RATE)
    empty = tmp_path / "empty.wav"
    empty.touch()
    out = tmp_path / "out.wav"
    for argv in (["vocode", str(vocoder_run)], ["convert", str(vc_run)]):
        assert cli.main([*argv, str(silent), "--out", str(out)]) == 2
        assert _one_line_error(capsys) == (f"ganforge: error: {silent} is silent (peak below 0.0001); pass a "
                                           f"recording with speech in it")
        assert cli.main([*argv, str(empty), "--out", str(out)]) == 2
        assert _one_line_error(capsys) == (f"ganforge: error: {empty} is empty (0 bytes); pass a recording with "
                                           f"samples in it")
    assert not out.exists()


def test_a_zero_byte_file_is_empty_not_undecodable(tmp_path):
    """soundfile says "Format not recognised" of 0 bytes; a file of 0 bytes is empty. The server
    answers an upload of 0 bytes with 400, as its image endpoints do and README says; it had been
    422, which README gives a recording with no samples."""
    (tmp_path / "empty.wav").touch()
    with pytest.raises(DataError, match=r"empty.wav is empty \(0 bytes\); remove it or record it again"):
        read_audio(tmp_path / "empty.wav", RATE)
    with pytest.raises(DataError, match=r"empty.wav is empty \(0 bytes\)"):  # a folder's file: its fix
        load_audio(tmp_path, rate=RATE, min_seconds=0.0)
    with pytest.raises(DataError) as exc:
        decode_audio(b"", RATE)
    assert not isinstance(exc.value, NotAudio)
    assert str(exc.value) == "the upload is empty (0 bytes); send a recording with samples in it"
    pytest.importorskip("fastapi")
    from ganforge.serve.server import ApiError, Settings, decode_recording

    with pytest.raises(ApiError) as api_exc:
        asyncio.run(decode_recording(b"", Settings(), RATE))
    assert api_exc.value.status == 400
    assert api_exc.value.message == "the upload is empty (0 bytes); send a WAV, FLAC, OGG or MP3 recording"


@pytest.mark.parametrize("argv, message", [
    (["--utterances", "1"], "--utterances 1 is too few: each voice needs a training and a test sentence; give "
                            "--utterances 2 or more"),
    (["--utterances", "-3"], "--utterances -3 is too few"),
    (["--parallel", "-1"], "--parallel -1 is negative; give 0 or more parallel sentences"),
])
def test_make_speech_names_the_option_and_value_it_refuses(tmp_path, capsys, argv, message):
    assert cli.main(["data", "make-speech", "--out", str(tmp_path / "c"), *argv]) == 2
    err = _one_line_error(capsys)
    assert err.startswith(f"ganforge: error: {message}") and "test fraction" not in err
    assert not (tmp_path / "c").exists()
    with pytest.raises(DataError, match=r"^test_fraction=1.5 is outside \(0, 1\); give e.g. 0.1$"):
        speech.make_speech(tmp_path / "c", voices=["en"], utterances=4, test_fraction=1.5)


NO_ESPEAK = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")


@NO_ESPEAK
def test_make_speech_on_a_full_disk_says_so_and_writes_nothing(tmp_path, capsys, monkeypatch):
    """It had blamed ".partial-N/corpus.json (corpus.json was left as it was)", with no corpus.json
    anywhere, after espeak-ng had cut its files short without a word."""
    real, calls = speech._write_file, []

    def write_file(path, data):
        calls.append(path)
        if len(calls) == 3:  # the disk fills in the middle of the third utterance
            real(path, data[:len(data) // 2])
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)
    monkeypatch.setattr(speech, "_write_file", write_file)
    out = tmp_path / "c"
    argv = ["data", "make-speech", "--out", str(out), "--utterances", "3", "--parallel", "1", "--rate", "8000"]
    assert cli.main(argv) == 2
    assert _one_line_error(capsys) == (f"ganforge: error: No space left on device while writing the corpus {out}; "
                                       f"free some space or choose another --out (nothing was written to {out})")
    assert _names(tmp_path) == []  # no partial folder either
    assert len(calls) < 8  # the utterances after the failure were not all spoken first
    monkeypatch.setattr(speech, "_write_file", real)
    assert cli.main(argv) == 0
    capsys.readouterr()
    before = sorted((str(p), p.read_bytes() if p.is_file() else b"") for p in out.rglob("*"))
    calls.clear()
    monkeypatch.setattr(speech, "_write_file", write_file)
    assert cli.main([*argv, "--force"]) == 2
    assert _one_line_error(capsys).endswith(f"(the corpus in {out} was left as it was)")
    assert sorted((str(p), p.read_bytes() if p.is_file() else b"") for p in out.rglob("*")) == before
    assert _names(tmp_path) == ["c"]
    # what is written is what espeak-ng said, whole, at the corpus's rate
    data, rate = sf.read(out / "en+m3" / "train" / "0000.wav")
    assert rate == 8000 and len(data) > 0.3 * rate and np.abs(data).max() > 0.05


def _can_mount_tmpfs() -> bool:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                              capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


@NO_ESPEAK
@pytest.mark.skipif(not _can_mount_tmpfs(), reason="needs unshare -rm to mount a small tmpfs")
def test_make_speech_on_a_really_full_disk(tmp_path):
    """A 64 KiB tmpfs in a private mount namespace: a real ENOSPC, from espeak-ng's speech on."""
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=64k tmpfs {disk} && {sys.executable} -m ganforge data make-speech "
              f"--out {disk}/c --utterances 10 --parallel 2; echo rc=$?; ls -A {disk}")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip() == (f"ganforge: error: No space left on device while writing the corpus {disk}/c; "
                                   f"free some space or choose another --out (nothing was written to {disk}/c)")
    assert proc.stdout.strip().splitlines()[-1] == "rc=2"  # and ls shows nothing: no partial folder
