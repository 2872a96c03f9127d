"""Review findings on eval-audio and voice-conversion data, each reproduced: eval-audio said
nothing until it had finished (minutes on the README's corpus), a corpus written with
--parallel 0 was said to lack its voices, and voice folders of one's own were refused without
naming vc.voice_a / vc.voice_b. Tiny runs of the families' example configs (8 kHz, hop 64), as in
test_audio_messages.py."""
from __future__ import annotations

import json
import shutil

import pytest

import ganforge
from ganforge import cli
from ganforge.data import speech
from ganforge.data.audio import load_audio, write_tone_folder
from ganforge.errors import DataError
from ganforge.metrics import audio as audio_metrics
from test_audio_messages import RATE, _one_line_error, vc_run, vocoder_run  # noqa: F401 (fixtures)

pytest.importorskip("librosa")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _voices(root):
    """Voice folders low/ and high/ (the vc example config's voices, 2 utterances each) and 2
    sentences of both under parallel/."""
    for voice, pitch, seed in (("low", 1.0, 1), ("high", 2.0, 2)):
        write_tone_folder(root / voice, n=2, seconds=0.3, rate=RATE, seed=seed, pitch=pitch)
        write_tone_folder(root / "parallel" / voice, n=2, seconds=0.3, rate=RATE, seed=5, pitch=pitch)
    return root


def _mark_scoring(monkeypatch, printed: list[str] | None = None) -> None:
    """Each MCD (computed while scoring) prints, or adds to ``printed``, a marker: what is said
    before the first marker is said before the scoring."""
    real = audio_metrics.mcd

    def mcd(*args):
        print("<scoring>", flush=True) if printed is None else printed.append("<scoring>")
        return real(*args)
    monkeypatch.setattr(audio_metrics, "mcd", mcd)


def _without_markers(lines: list[str]) -> list[str]:
    return [line for line in lines if line != "<scoring>"]


# ----------------------------------------------------------------------------- 1: progress


def test_eval_audio_of_a_vocoder_says_what_it_scores_first_and_progress_as_it_goes(
        vocoder_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    """All of it, the first line included, had come out together after the scoring (50 s for 20
    utterances, 5 minutes for the README's corpus)."""
    held_out = write_tone_folder(tmp_path / "held", n=3, seconds=0.3, rate=RATE, seed=9)
    _mark_scoring(monkeypatch)
    assert cli.main(["eval-audio", str(vocoder_run), "--data", str(held_out), "--threads", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = f"3 held-out utterance(s), 0.9 s of audio, from {held_out}; timing on 1 thread(s)"
    assert lines[0] == header and lines[1] == "<scoring>"
    # a line per utterance scored (each is a tenth or more of 3), after its scoring
    said = [i for i, line in enumerate(lines) if " utterances scored (" in line]
    assert [lines[i].split(" in ")[0] for i in said] == [
        "  1/3 utterances scored (33%)", "  2/3 utterances scored (66%)", "  3/3 utterances scored (100%)"]
    assert all(lines[i - 1] == "<scoring>" for i in said)
    # then the table, without its first line again
    table = _without_markers(lines[said[-1] + 1:])
    assert table[0].startswith("method") and header not in table
    assert table[1].startswith("vocoder") and table[2].startswith("griffin-lim")
    # the Python API says the same through ``log``, and nothing without it
    said_api: list[str] = []
    monkeypatch.undo()
    _mark_scoring(monkeypatch, said_api)
    result = audio_metrics.evaluate_run(ganforge.load(vocoder_run), held_out, threads=1, log=said_api.append)
    assert said_api[0] == header and said_api[1] == "<scoring>" and said_api[-1].startswith("  3/3 utterances")
    assert audio_metrics.format_table(result)[0] == header  # the benchmarks' tables keep it
    said_api.clear()
    audio_metrics.evaluate_run(ganforge.load(vocoder_run), held_out, threads=1)
    assert said_api == ["<scoring>"] * 6 and capsys.readouterr().out == ""  # 2 methods x 3 utterances


def test_eval_audio_of_a_conversion_says_what_it_scores_first_and_progress_as_it_goes(
        vc_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    root = _voices(tmp_path / "voices")
    _mark_scoring(monkeypatch)
    assert cli.main(["eval-audio", str(vc_run), "--data", str(root)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = f"2 parallel sentence(s) of low / high from {root}; waveforms by griffin-lim"
    assert lines[:3] == [header, "  training the speaker judge on the training utterances of low and high",
                         "<scoring>"]
    said = [i for i, line in enumerate(lines) if "sentences converted both ways and scored (" in line]
    assert [lines[i].split(" in ")[0] for i in said] == [
        "  1/2 sentences converted both ways and scored (50%)",
        "  2/2 sentences converted both ways and scored (100%)"]
    assert all(lines[i - 1] == "<scoring>" for i in said)
    table = _without_markers(lines[said[-1] + 1:])
    assert table[0].startswith("speaker judge") and header not in table


# ----------------------------------------------------------------------------- 2: --parallel 0


def _corpus_without_parallel(root):
    """A make-speech corpus of voices low and high written with --parallel 0 (its corpus.json as
    make_speech writes it): train/ and test/ of each voice, no parallel/."""
    for voice, pitch, seed in (("low", 1.0, 1), ("high", 2.0, 2)):
        write_tone_folder(root / voice / "train", n=2, seconds=0.3, rate=RATE, seed=seed, pitch=pitch)
        write_tone_folder(root / voice / "test", n=1, seconds=0.3, rate=RATE, seed=seed + 10, pitch=pitch)
    info = {"voices": ["low", "high"], "rate": RATE, "seed": 3, "train": 2, "test": 1, "parallel": 0,
            "synthesizer": "espeak-ng", "version": "test", "files": {}}
    (root / "corpus.json").write_text(json.dumps(info))
    return root


def test_eval_audio_of_a_corpus_written_with_parallel_0_says_so(vc_run, tmp_path, capsys, monkeypatch):  # noqa: F811
    """It had said "has no parallel/low and parallel/high; write the corpus with ganforge data
    make-speech --voices low,high", of a corpus written with those voices."""
    root = _corpus_without_parallel(tmp_path / "sp0")
    monkeypatch.setattr(audio_metrics, "SpeakerJudge", None)  # refused before the judge is trained
    assert cli.main(["eval-audio", str(vc_run), "--data", str(root)]) == 2
    assert _one_line_error(capsys) == (
        f"ganforge: error: {root} was written with --parallel 0: it has no parallel sentences to score "
        f"conversion with; write it again with ganforge data make-speech --out {root} --voices low,high "
        f"--utterances 3 --rate {RATE} --seed 3 --parallel 20 --force")
    # a corpus of other voices is still asked for those voices
    with pytest.raises(DataError, match=r"has no parallel/en\+m3 and parallel/en\+f3; write the corpus with"):
        speech.parallel_pairs(root, "en+m3", "en+f3")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_make_speech_with_parallel_0_then_parallel_pairs(tmp_path):
    """The reviewer's corpus itself (make-speech --parallel 0), at the default rate and seed."""
    out = tmp_path / "sp0"
    speech.make_speech(out, voices=["en+m3", "en+f3"], utterances=2, parallel=0)
    with pytest.raises(DataError) as exc:
        speech.parallel_pairs(out, "en+m3", "en+f3")
    assert str(exc.value) == (f"{out} was written with --parallel 0: it has no parallel sentences to score "
                              f"conversion with; write it again with ganforge data make-speech --out {out} "
                              f"--voices en+m3,en+f3 --utterances 2 --parallel 20 --force")


# ----------------------------------------------------------------------------- 3: vc.voice_a / vc.voice_b


def test_voice_folders_of_ones_own_name_the_vc_keys_to_set(vc_run, tmp_path, capsys):  # noqa: F811
    """It had said "pick one of them" with nothing naming vc.voice_a / vc.voice_b."""
    own = tmp_path / "own"
    for name in ("alice", "bob"):
        write_tone_folder(own / name, n=2, seconds=0.3, rate=RATE)
    run = tmp_path / "r"
    assert cli.main(["train", "cyclegan-vc-speech", "--out", str(run), f"data.name=audio:{own}"]) == 2
    assert _one_line_error(capsys) == (f"ganforge: error: {own} has no folder for voice 'en+m3' (folders: alice, "
                                       f"bob); pick one of them (set vc.voice_a=alice vc.voice_b=bob)")
    assert not run.exists()
    # a name that needs quoting in a shell is quoted; one folder: the second voice is missing
    shutil.rmtree(own / "bob")
    (own / "alice").rename(own / "alice smith")
    with pytest.raises(DataError) as exc:
        load_audio(own, rate=RATE, min_seconds=0.1, voices=["en+m3"])
    assert str(exc.value) == (f"{own} has no folder for voice 'en+m3' (folders: alice smith); pick one of them "
                              f"(set 'vc.voice_a=alice smith' and vc.voice_b to a second voice's folder beside it)")
    # a corpus without the voice names its voices as the keys to set
    corpus = _corpus_without_parallel(tmp_path / "corpus")
    with pytest.raises(DataError, match=r"its voices: low, high\); pick one of them \(set vc.voice_a=low "
                                        r"vc.voice_b=high\)$"):
        load_audio(corpus, rate=RATE, min_seconds=0.1, voices=["en+m3"])
    # eval-audio cannot change the run's voices: it asks for a folder that has them
    for name in ("alice", "bob"):
        write_tone_folder(tmp_path / "own2" / name, n=1, seconds=0.3, rate=RATE)
    assert cli.main(["eval-audio", str(vc_run), "--data", str(tmp_path / "own2")]) == 2
    assert _one_line_error(capsys) == (
        f"ganforge: error: --data {tmp_path / 'own2'} has no folder for the run's voice 'low' (folders: alice, "
        f"bob); the run converts low and high: point --data at a folder with both (the run trained on "
        f"audio:{vc_run.parent / 'data' / 'voices'})")
