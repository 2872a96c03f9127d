"""The audio families outside training: model folders of a vocoder and a voice-conversion run give
the run's own outputs, and ``ganforge serve`` answers /api/vocode and /api/convert with the WAV
that ``ganforge vocode`` / ``ganforge convert`` write, and every bad recording with a 4xx JSON
error, after which the server keeps serving."""
from __future__ import annotations

import io
import json
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

import ganforge
from conftest import run_cli
from ganforge import cli
from ganforge.data.audio import TooLong, decode_audio, read_audio, write_tone_folder
from ganforge.errors import ConfigError, DataError
from ganforge.serve import export
from test_export import train_family

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
pytest.importorskip("librosa")  # Griffin-Lim of the conversion without a vocoder

from fastapi.testclient import TestClient  # noqa: E402

from ganforge.serve.server import Settings, create_app  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("audio-runs")
    return {name: train_family(name, root) for name in ("vocoder", "cyclegan-vc")}


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A 0.7 s voiced-like recording at the tiny runs' 8 kHz, not a multiple of their hop."""
    folder = write_tone_folder(tmp_path_factory.mktemp("rec"), n=1, seconds=0.7, rate=8000, seed=11)
    return next(folder.glob("*.wav"))


@pytest.fixture(scope="module")
def client(runs):
    loaded = {name: ganforge.load(path) for name, path in runs.items()}
    with TestClient(create_app(loaded, Settings(max_audio_seconds=2.0, max_upload_mb=0.2))) as c:
        yield c


def post(client, endpoint, data: bytes, **form):
    return client.post(endpoint, data=form, files={"file": ("in.wav", data, "audio/wav")})


def wav(wave: np.ndarray, rate: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, wave, rate, subtype="FLOAT" if np.isnan(wave).any() else "PCM_16", format="WAV")
    return buf.getvalue()


def test_audio_model_folders_give_the_runs_outputs(runs, recording, tmp_path):
    for name, capability in (("vocoder", "vocode"), ("cyclegan-vc", "convert")):
        run = ganforge.load(runs[name])
        folder = export.export_folder(run, tmp_path / name)
        loaded = ganforge.load(folder)
        wave = torch.from_numpy(read_audio(recording, run.config.audio.rate))
        assert torch.equal(loaded.analyze(wave), run.analyze(wave))
        mel = run.analyze(wave)
        if capability == "vocode":
            assert torch.equal(loaded.vocode(mel), run.vocode(mel))
        else:  # the per-voice mel statistics travel in config.json; without them convert differs
            for direction in ("AtoB", "BtoA"):
                assert torch.equal(loaded.convert(mel, direction=direction), run.convert(mel, direction=direction))
            stats = {k: v.tolist() for k, v in run.objective.stats.items()}
            assert stats["a_mean"] != stats["b_mean"]  # a check that can fail: the voices differ
        with pytest.raises(export.ExportError, match="--format folder exports it"):  # no ONNX graph
            export.export_onnx(run, tmp_path / f"{name}.onnx")
        card = (folder / "README.md").read_text()
        assert f"ganforge {capability} {name} in.wav --out out.wav" in card
        assert "8000 Hz mono audio" in card and "resolution" not in card.split("## Evaluation")[0]
    # a folder without the statistics (exported before they were kept) is refused, not wrong
    config = json.loads((tmp_path / "cyclegan-vc" / "config.json").read_text())
    config["objective_state"] = {}
    (tmp_path / "cyclegan-vc" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="export it again"):
        ganforge.load(tmp_path / "cyclegan-vc")


def test_models_describe_the_front_end_voices_and_vocoders(client):
    info = {m["name"]: m for m in client.get("/api/models").json()["models"]}
    assert info["vocoder"]["capabilities"] == ["vocode"] and info["vocoder"]["audio"]["rate"] == 8000
    assert info["vocoder"]["resolution"] is None
    vc = info["cyclegan-vc"]
    assert [(d["direction"], d["from"], d["to"]) for d in vc["directions"]] == [("AtoB", "low", "high"),
                                                                            ("BtoA", "high", "low")]
    assert vc["vocoders"] == ["vocoder"]  # the same front end
    assert client.get("/api/models").json()["limits"]["max_audio_seconds"] == 2.0
    assert {"/api/vocode", "/api/convert"} <= set(client.get("/openapi.json").json()["paths"])  # in /docs


def test_vocode_returns_the_wav_of_ganforge_vocode(client, runs, recording, tmp_path):
    r = post(client, "/api/vocode", recording.read_bytes(), model="vocoder")
    assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
    out = tmp_path / "cli.wav"
    assert cli.main(["vocode", str(runs["vocoder"]), str(recording), "--out", str(out)]) == 0
    assert r.content == out.read_bytes()
    assert sf.info(io.BytesIO(r.content)).frames == sf.info(recording).frames  # as long as the recording


def test_samples_at_full_scale_are_counted_in_a_header(client, recording, monkeypatch):
    """`ganforge convert` notes "66 of 71721 output samples ... are at full scale and clipped"; the
    server had returned the same clipped bytes without a sign."""
    def loud(self, mel, **_):
        wave = torch.zeros(1, mel.shape[-1] * 256)
        wave[0, :3] = torch.tensor([1.5, -1.0, 1.0])
        return wave

    r = post(client, "/api/vocode", recording.read_bytes(), model="vocoder")
    frames = sf.info(io.BytesIO(r.content)).frames
    assert r.headers["x-ganforge-clipped"].endswith(f" of {frames}")
    monkeypatch.setattr(ganforge.inference.LoadedRun, "vocode", loud)
    r = post(client, "/api/vocode", recording.read_bytes(), model="vocoder")
    assert r.status_code == 200 and r.headers["x-ganforge-clipped"] == f"3 of {frames}"


@pytest.mark.parametrize("vocoder", [None, "vocoder"])
def test_convert_returns_the_wav_of_ganforge_convert(vocoder, client, runs, recording, tmp_path):
    form = {"model": "cyclegan-vc", "direction": "BtoA", **({"vocoder": vocoder} if vocoder else {})}
    r = post(client, "/api/convert", recording.read_bytes(), **form)
    assert r.status_code == 200, r.text
    assert r.headers["x-ganforge-waveform"] == (f"vocoder {vocoder}" if vocoder else "griffin-lim")
    assert r.headers["x-ganforge-clipped"].endswith(f" of {sf.info(io.BytesIO(r.content)).frames}")
    out = tmp_path / "cli.wav"
    extra = ["--vocoder", str(runs["vocoder"])] if vocoder else []
    assert cli.main(["convert", str(runs["cyclegan-vc"]), str(recording), "--out", str(out),
                     "--direction", "BtoA", *extra]) == 0
    assert r.content == out.read_bytes()


def test_stereo_at_another_rate_is_mixed_down_and_resampled(client):
    t = np.arange(22050) / 22050
    stereo = np.stack([np.sin(2 * np.pi * 150 * t), np.sin(2 * np.pi * 300 * t)], axis=1) * 0.3
    r = post(client, "/api/vocode", wav(stereo.astype(np.float32), 22050), model="vocoder")
    assert r.status_code == 200
    info = sf.info(io.BytesIO(r.content))
    assert (info.samplerate, info.channels, info.frames) == (8000, 1, 8000)


def streamed_flac(seconds: float, rate: int = 8000) -> bytes:
    """A FLAC whose header gives no length (total_samples 0), as a streaming encoder writes it."""
    buf = io.BytesIO()
    t = np.arange(int(seconds * rate)) / rate
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), rate, format="FLAC", subtype="PCM_16")
    data = bytearray(buf.getvalue())
    data[21] &= 0xF0  # STREAMINFO's 36-bit total_samples: 0, unknown
    data[22:26] = bytes(4)
    return bytes(data)


def wav_claiming_rate(rate: int) -> bytes:
    """A 0.5 s WAV whose header says ``rate`` Hz (resampling from an absurd rate would explode)."""
    data = bytearray(wav(np.sin(np.arange(4000) / 3).astype(np.float32) * 0.3, 8000))
    data[24:28], data[28:32] = struct.pack("<I", rate), struct.pack("<I", 2 * rate & 0xFFFFFFFF)
    return bytes(data)


def test_a_recording_of_unknown_length_stops_decoding_at_the_limit():
    assert sf.info(io.BytesIO(streamed_flac(3.0))).frames > 2**62  # the header says nothing
    with pytest.raises(TooLong, match="over the cap of 2 s"):
        decode_audio(streamed_flac(3.0), 8000, max_seconds=2.0, limit_name="the cap")
    assert len(decode_audio(streamed_flac(1.5), 8000, max_seconds=2.0)) == 12000  # read to its end


@pytest.mark.parametrize("endpoint, data, form, status, words", [
    ("/api/vocode", b"not audio at all" * 20, {}, 400, "cannot decode as audio"),
    ("/api/vocode", "silent", {}, 422, "silent"),
    ("/api/vocode", "short", {}, 422, "this run needs at least"),  # as ganforge vocode says
    # the conversion model's own least length, not the front end's, which had been said first
    ("/api/convert", "short", {"model": "cyclegan-vc"}, 422, "this run needs at least"),
    ("/api/vocode", "long", {}, 413, "--max-audio-seconds of 2 s"),
    ("/api/vocode", "streamed-long", {}, 413, "--max-audio-seconds of 2 s"),
    ("/api/vocode", "rate", {}, 422, "sample rate of 1000003 Hz"),
    ("/api/vocode", "nan", {}, 422, "not finite"),
    ("/api/vocode", "over-upload", {}, 413, "upload over the server's limit --max-upload-mb 0.2"),
    ("/api/vocode", "over-body", {}, 413, "request body over the server's limit"),
    ("/api/vocode", "ok", {"model": "cyclegan-vc"}, 422, "cannot vocode"),
    ("/api/convert", "ok", {"model": "vocoder"}, 422, "cannot convert"),
    ("/api/convert", "ok", {"model": "cyclegan-vc", "direction": "up"}, 422, "direction"),
    ("/api/convert", "ok", {"model": "cyclegan-vc", "vocoder": "nope"}, 422, "the ones that are: vocoder"),
    ("/api/convert", "ok", {"model": "cyclegan-vc", "vocoder": "cyclegan-vc"}, 422, "not a served vocoder"),
    ("/api/translate", "ok", {"model": "vocoder"}, 422, "cannot translate"),
])
def test_each_bad_recording_gets_a_json_error_and_the_server_keeps_serving(endpoint, data, form, status, words,
                                                                           client, recording):
    rng = np.random.default_rng(0)
    nan = rng.normal(0, 0.1, 4000).astype(np.float32)
    nan[100] = np.nan
    made = {"silent": lambda: wav(np.zeros(8000, np.float32), 8000),
            "short": lambda: wav(rng.normal(0, 0.1, 40).astype(np.float32), 8000),  # shorter than a window
            "long": lambda: wav(rng.normal(0, 0.1, 3 * 8000).astype(np.float32), 8000),  # 3 s > 2 s
            "streamed-long": lambda: streamed_flac(3.0),
            "rate": lambda: wav_claiming_rate(1_000_003),
            "nan": lambda: wav(nan, 8000),  # float WAV: the NaN survives
            "over-upload": lambda: b"RIFF" + bytes(int(0.2 * 2**20)),  # past the file limit, not the body's
            "over-body": lambda: b"RIFF" + bytes(300_000),  # past the body's limit (file + 64 KiB)
            "ok": recording.read_bytes}
    r = post(client, endpoint, made[data]() if isinstance(data, str) else data, **form)
    assert r.status_code == status and words in r.json()["error"], r.text
    assert post(client, "/api/vocode", recording.read_bytes(), model="vocoder").status_code == 200


def test_serve_refuses_a_limit_that_is_not_a_positive_number(runs):
    for option, value in (("--max-audio-seconds", "0"), ("--max-audio-seconds", "nan"),
                          ("--max-audio-seconds", "inf"), ("--max-upload-mb", "inf"), ("--batch-wait-ms", "inf")):
        r = run_cli("serve", runs["vocoder"], option, value)
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert f"{option} must be a finite number" in r.stderr and f"got {float(value)}" in r.stderr


def test_the_audio_routes_need_the_token_when_the_server_has_one(runs, recording):
    loaded = {"vocoder": ganforge.load(runs["vocoder"])}
    with TestClient(create_app(loaded, Settings(token="s3cret"))) as c:
        assert post(c, "/api/vocode", recording.read_bytes()).status_code == 401
        assert post(c, "/api/convert", recording.read_bytes()).status_code == 401
        r = c.post("/api/vocode", files={"file": ("in.wav", recording.read_bytes(), "audio/wav")},
                   headers={"Authorization": "Bearer s3cret"})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"


def test_the_length_limit_is_exact_and_the_rate_range_is_for_uploads_only(tmp_path):
    tone = (0.3 * np.sin(np.arange(16001) / 3)).astype(np.float32)
    assert len(decode_audio(wav(tone[:16000], 8000), 8000, max_seconds=2.0)) == 16000  # exactly 2 s
    with pytest.raises(TooLong, match="2.000 s long"):  # 2 s and one sample (2.0001 s)
        decode_audio(wav(tone, 8000), 8000, max_seconds=2.0)
    hires = tmp_path / "hires.wav"  # a 384 kHz file: read (and resampled) as before, refused as an upload
    sf.write(hires, np.tile(tone, 3)[:38400], 384000, subtype="PCM_16")
    assert len(read_audio(hires, 8000)) == 800
    with pytest.raises(DataError, match="sample rate of 384000 Hz, outside 4000-192000 Hz"):
        decode_audio(hires.read_bytes(), 8000)
