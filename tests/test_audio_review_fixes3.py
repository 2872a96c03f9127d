"""Review findings on the audio commands, each reproduced: eval-audio on the run's own training
folder called it held-out; translate / upscale of an audio run told the user to delete their
recording; convert --vocoder with a voice-conversion run did not name --vocoder; eval-audio's
--threads / --limit shared one message. Tiny runs of the families' example configs, as in
test_audio_messages.py."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

import ganforge
from ganforge import cli
from ganforge.data.audio import CORPUS_FILE, write_tone_folder, write_wav
from ganforge.metrics import audio as audio_metrics
from test_audio_messages import RATE, _one_line_error, _tone, vc_run, vocoder_run  # noqa: F401 (fixtures)

pytest.importorskip("librosa")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _stub_run(data_name: str, split: str = "train"):
    return SimpleNamespace(config=SimpleNamespace(data=SimpleNamespace(name=data_name, split=split)))


def _training_folder(run_dir) -> Path:
    return Path(ganforge.load(run_dir).config.data.name.removeprefix("audio:"))


# ----------------------------------------------------------------------------- 1: training files


def test_eval_audio_on_the_folder_the_run_trained_on_says_so(vocoder_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    """data.name=audio:FOLDER and --data FOLDER: "2 held-out utterance(s)", held_out true, no note."""
    folder = _training_folder(vocoder_run)
    assert folder.is_absolute() and len(list(folder.glob("*.wav"))) == 2
    monkeypatch.chdir(folder.parent)
    for data in (str(folder), folder.name, f"./{folder.name}/"):  # absolute and relative
        out = tmp_path / "e.json"
        assert cli.main(["eval-audio", str(vocoder_run), "--data", data, "--threads", "1", "--json", str(out),
                         "--force"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith(f"2 training (not held-out) utterance(s), 1.0 s of audio, from {data};"), lines
        # (pesq and pystoi, an optional extra, add notes of their own where they are absent, as in CI)
        assert [line for line in lines if line.startswith("note:") and "training files" in line] == [
            f"note: {data} holds the run's training files (it trained on data.name=audio:{folder}): the scores "
            f"are not on held-out data; point --data at recordings the run did not train on (e.g. a make-speech "
            f"corpus, whose test/ folders are held out)"]
        result = json.loads(out.read_text())
        assert result["held_out"] is False and result["training_utterances"] == 2
    # other recordings are held-out, without a note
    other = write_tone_folder(tmp_path / "other", n=1, seconds=0.3, rate=RATE, seed=9)
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(other), "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1 held-out utterance(s)") and "training files" not in out


def test_training_files_are_found_by_folder_inside_around_and_relative(tmp_path, monkeypatch):
    good = write_tone_folder(tmp_path / "good", n=2, seconds=0.3, rate=RATE)
    write_tone_folder(good / "sub", n=1, seconds=0.3, rate=RATE, seed=4)
    monkeypatch.chdir(tmp_path)
    for name in (f"audio:{good}", "audio:good", "audio:./good/"):  # data.name absolute or relative
        trained = audio_metrics.trained_on(_stub_run(name))
        assert trained == [good.resolve()]
        # --data the folder itself, a folder inside it, relative
        for data, files in ((good, ["000.wav", "sub/000.wav"]), ("good/sub", ["000.wav"])):
            n, note = audio_metrics.training_files(data, files, trained, name)
            assert n == len(files) and note.startswith(f"{data} holds the run's training files (it trained "
                                                       f"on data.name={name})")
    # a run trained on a folder inside --data: some of the files scored are its training files
    trained = audio_metrics.trained_on(_stub_run("audio:good/sub"))
    n, note = audio_metrics.training_files(tmp_path, ["good/000.wav", "good/sub/000.wav", "x/000.wav"], trained,
                                           "audio:good/sub")
    assert n == 1 and note.startswith(f"1 of the 3 files scored from {tmp_path} are the run's training files")
    assert audio_metrics._header({"kind": "vocoder", "utterances": 3, "held_out": False, "training_utterances": 1,
                                  "audio_seconds": 0.9, "data": "d", "threads": 1}).startswith(
        "3 utterance(s), 1 of them training files (not held-out), 0.9 s of audio")
    # a folder that is not here (a run trained elsewhere): nothing to compare
    assert audio_metrics.trained_on(_stub_run("audio:gone")) == []
    assert audio_metrics.training_files(good, ["000.wav"], [], "audio:gone") == (0, None)


def test_a_corpus_test_split_stays_held_out_for_a_run_trained_on_the_corpus(tmp_path):
    """A make-speech corpus trains on each voice's train/: its test/ folders are held out."""
    corpus = tmp_path / "speech"
    for voice in ("v1", "v2"):
        write_tone_folder(corpus / voice / "train", n=2, seconds=0.3, rate=RATE)
        write_tone_folder(corpus / voice / "test", n=1, seconds=0.3, rate=RATE, seed=2)
    (corpus / CORPUS_FILE).write_text(json.dumps({"voices": ["v1", "v2"]}))
    trained = audio_metrics.trained_on(_stub_run(f"audio:{corpus}"))
    assert trained == [corpus.resolve() / "v1" / "train", corpus.resolve() / "v2" / "train"]
    assert audio_metrics.training_files(corpus, ["v1/test/000.wav", "v2/test/000.wav"], trained) == (0, None)
    assert audio_metrics.training_files(corpus / "v1", ["test/000.wav"], trained) == (0, None)
    assert audio_metrics.training_files(corpus / "v1" / "train", ["000.wav", "001.wav"], trained)[0] == 2


# ----------------------------------------------------------------------------- 2: image commands


def test_translate_and_upscale_of_an_audio_run_give_its_capability_first(vocoder_run, vc_run, tmp_path,  # noqa: F811
                                                                          capsys):
    """They had said "cannot read image in.wav (UnidentifiedImageError); delete or fix it"."""
    wav = write_wav(tmp_path / "in.wav", _tone(2000), RATE)
    before = wav.read_bytes()
    cases = [(["translate", str(vc_run), str(wav), "--out", str(tmp_path / "t.png")],
              "cannot map an input image to an output image", "ganforge convert"),
             (["translate", str(vc_run), str(wav), "--out", str(tmp_path / "t.wav")],
              "cannot map an input image to an output image", "ganforge convert"),
             (["upscale", str(vocoder_run), str(wav), "--out", str(tmp_path / "u.png")],
              "cannot super-resolve an image", "ganforge vocode"),
             (["upscale", str(vocoder_run), str(wav), "--out", str(tmp_path / "u.png"), "--tile", "-1"],
              "cannot super-resolve an image", "ganforge vocode"),
             (["upscale", str(vocoder_run), str(tmp_path / "missing.wav"), "--out", str(tmp_path / "u.png")],
              "cannot super-resolve an image", "ganforge vocode"),
             (["vocode", str(vc_run), str(wav), "--out", str(tmp_path / "v.png")],
              "cannot turn mel-spectrograms into speech", "ganforge convert")]
    for argv, problem, fix in cases:
        assert cli.main(argv) == 2
        err = _one_line_error(capsys)
        assert problem in err and fix in err and "delete" not in err and "file name" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.wav"] and wav.read_bytes() == before


# ----------------------------------------------------------------------------- 3: --vocoder


def test_vocoder_option_given_a_voice_conversion_run_names_the_option(vc_run, tmp_path, capsys):  # noqa: F811
    wav = write_wav(tmp_path / "in.wav", _tone(2000), RATE)
    message = (f"ganforge: error: --vocoder {vc_run} is a voice-conversion run, not a vocoder; pass a vocoder run "
               f"(e.g. trained with hifigan-speech or vocos-pghi-speech) or leave --vocoder out (the mels are "
               f"then made into speech by Griffin-Lim)")
    for argv in (["convert", str(vc_run), str(wav), "--out", str(tmp_path / "cv.wav")],
                 ["eval-audio", str(vc_run), "--data", str(tmp_path)]):
        assert cli.main([*argv, "--vocoder", str(vc_run)]) == 2
        assert _one_line_error(capsys) == message
    assert not (tmp_path / "cv.wav").exists()
    # what leaving it out does, as the message says
    assert cli.main(["convert", str(vc_run), str(wav), "--out", str(tmp_path / "cv.wav")]) == 0
    assert "waveform by griffin-lim" in capsys.readouterr().out


# ----------------------------------------------------------------------------- 4: --threads / --limit


@pytest.mark.parametrize("options, message", [
    (["--threads", "0"], "--threads must be positive, got 0 (leave it out for the default, {threads})"),
    (["--threads", "-1", "--limit", "0"], "--threads must be positive, got -1 (leave it out for the default, "
                                          "{threads})"),
    (["--limit", "0"], "--limit must be positive, got 0 (leave it out to score every utterance)"),
    (["--threads", "1", "--limit", "-2"], "--limit must be positive, got -2 (leave it out to score every "
                                          "utterance)")])
def test_eval_audio_names_the_option_that_is_not_positive(vocoder_run, tmp_path, capsys, options, message):  # noqa: F811
    out = tmp_path / "e.json"
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(tmp_path), "--json", str(out), *options]) == 2
    expected = message.format(threads=audio_metrics.default_threads())
    assert _one_line_error(capsys) == f"ganforge: error: {expected}" and not out.exists()

