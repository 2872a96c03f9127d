"""The audio families' pieces: the log-mel front end against librosa, MCD and DTW, the HiFi-GAN
discriminator's period reshape and losses by hand, the audio reader's errors, the speech corpus,
and the commands vocode / convert / eval-audio on tiny runs. (Training, exact resume, loading and
the vocode / convert capabilities of both families: tests/test_families.py.)"""
from __future__ import annotations

import json
import math
import shutil
import wave as wavmod

import numpy as np
import pytest
import soundfile as sf
import torch

import ganforge
from ganforge import api, cli
from ganforge.config import from_dict
from ganforge.data.audio import CropBatches, load_audio, read_audio, write_tone_folder, write_wav
from ganforge.data.mel import AudioConfig, LogMel
from ganforge.data.speech import make_speech, parallel_pairs
from ganforge.errors import ConfigError, DataError
from ganforge.metrics.audio import (MCD_CONST, SpeakerJudge, dtw_mcd, dtw_path, evaluate_conversion, format_table,
                                   griffin_lim, mcd, mel_cepstrum, speaker_features)
from ganforge.metrics.speaker import VoiceRegion
from ganforge.models.hifigan import MultiDiscriminator, to_periods
from ganforge.models.phase import fast_griffin_lim, pghi
from ganforge.models.vocos import VocosGenerator, istft_same
from ganforge.objectives import OBJECTIVES
from ganforge.objectives.vocoder import feature_matching, lsgan_d, lsgan_g

librosa = pytest.importorskip("librosa")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _speechlike(seconds=1.0, rate=22050, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8)) * np.hanning(len(t))
    return (0.3 * x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


# ----------------------------------------------------------------------------- front end


def test_log_mel_matches_librosa_melspectrogram():
    """Our torch STFT + librosa filter bank against librosa.feature.melspectrogram on the same
    padded signal (float64): within 1e-3 in log-mel where the mel energy is above 1e-3, within
    0.05 everywhere (the 1e-9 under the square root and float32 only move near-silent bins)."""
    a = AudioConfig()
    w = _speechlike()
    w = w[:len(w) // a.hop * a.hop]
    ours = LogMel.from_config(a)(torch.from_numpy(w))[0].numpy()
    pad = (a.n_fft - a.hop) // 2
    ref = librosa.feature.melspectrogram(
        y=np.pad(w.astype(np.float64), (pad, pad), mode="reflect"), sr=a.rate, n_fft=a.n_fft,
        hop_length=a.hop, win_length=a.win, center=False, power=1.0, n_mels=a.n_mels, fmin=a.fmin,
        fmax=a.fmax)
    assert ours.shape == ref.shape == (80, len(w) // a.hop)
    loud = ref > 1e-3
    assert loud.mean() > 0.3
    assert np.abs(ours - np.log(np.maximum(ref, 1e-5)))[loud].max() < 1e-3
    assert np.abs(ours - np.log(np.maximum(ref, 1e-5))).max() < 0.05


def test_mcd_is_zero_for_itself_and_known_for_a_shift():
    mel = LogMel.from_config(AudioConfig())(torch.from_numpy(_speechlike()))[0].numpy()
    c = mel_cepstrum(mel)
    assert c.shape == (24, mel.shape[1]) and mcd(c, c) == 0.0
    shifted = c.copy()
    shifted[2] += 0.1  # one coefficient off by 0.1 in every frame
    assert mcd(shifted, c) == pytest.approx(MCD_CONST * 0.1, rel=1e-9)  # 10/ln10 sqrt(2) 0.1 dB


def test_dtw_aligns_a_time_stretched_copy():
    rng = np.random.default_rng(0)
    c = rng.standard_normal((24, 30))
    stretched = np.repeat(c, 2, axis=1)  # every frame twice: half speed
    path = dtw_path(stretched, c)
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [59, 29]
    np.testing.assert_array_equal(path[:, 1], path[:, 0] // 2)
    assert dtw_mcd(stretched, c) == 0.0
    assert dtw_mcd(stretched + 0.1, c) > 0


# ----------------------------------------------------------------------------- HiFi-GAN pieces


def test_period_reshape_puts_each_phase_in_a_column():
    x = torch.arange(10.0).view(1, 1, 10)
    y = to_periods(x, 3)  # reflect-padded by 2 to 12 samples: ..., 9, 8, 7
    assert y.shape == (1, 1, 4, 3)
    assert y[0, 0, :, 0].tolist() == [0, 3, 6, 9] and y[0, 0, :, 2].tolist() == [2, 5, 8, 7]
    d = MultiDiscriminator(width=1, periods=[2, 3], scales=2)
    scores, feats = d(torch.randn(2, 1, 300))
    assert len(scores) == len(feats) == 4 and all(s.shape[0] == 2 for s in scores)
    assert feats[1][0].shape[-1] == 3  # the period-3 discriminator sees 3 columns


def test_hifigan_losses_by_hand():
    real = [torch.tensor([[1.0, 0.5]]), torch.tensor([[2.0]])]
    fake = [torch.tensor([[0.0, 1.0]]), torch.tensor([[-1.0]])]
    # D: mean (1 - r)^2 + mean f^2 per sub-discriminator, summed
    assert float(lsgan_d(real, fake)) == pytest.approx((0 + 0.25) / 2 + 0.5 + 1 + 1)
    assert float(lsgan_g(fake)) == pytest.approx((1 + 0) / 2 + 4)
    fr = [[torch.tensor([1.0, 2.0]), torch.tensor([[0.0]])], [torch.tensor([3.0])]]
    ff = [[torch.tensor([1.5, 1.0]), torch.tensor([[2.0]])], [torch.tensor([0.0])]]
    assert float(feature_matching(fr, ff)) == pytest.approx((0.5 + 1.0) / 2 + 2.0 + 3.0)


def test_vocos_inverse_stft_undoes_the_front_ends_framing():
    """istft_same inverts the front end's reflect-padded, uncentred STFT: a waveform of T hops
    comes back from its T complex frames within 1e-5, edges included."""
    a = AudioConfig(n_fft=256, hop=64, win=256)
    front = LogMel.from_config(a)
    wave = torch.from_numpy(_speechlike(0.1, 8000, seed=3))[:12 * a.hop].double()[None]
    padded = torch.nn.functional.pad(wave[:, None], (front.pad, front.pad), mode="reflect")[:, 0]
    window = torch.hann_window(a.n_fft, dtype=torch.float64)
    spec = torch.stft(padded, a.n_fft, a.hop, a.win, window, center=False, return_complex=True)
    assert spec.shape[-1] == 12
    back = istft_same(spec, a.n_fft, a.hop, window)
    assert back.shape == wave.shape
    assert float((back - wave).abs().max()) < 1e-5
    assert float((front.stft(wave) - spec).abs().max()) < 1e-4  # the front end's own frames
    g = VocosGenerator(n_mels=16, n_fft=a.n_fft, hop=a.hop, dim=8, layers=2)
    assert g(torch.randn(2, 16, 12)).shape == (2, 1, 12 * a.hop)  # T frames -> T hops, as HiFi-GAN


def test_vocos_mel_prior_starts_from_the_least_squares_magnitude():
    """With mel_basis and a silent head, the magnitude is pinv(basis) exp(mel) (floored) and the
    phase 0: the generator's output is exactly that spectrum's inverse STFT."""
    a = AudioConfig(n_fft=256, hop=64, win=256, n_mels=8)  # more bands leave low ones empty at n_fft 256
    front = LogMel.from_config(a)
    g = VocosGenerator(n_mels=8, n_fft=a.n_fft, hop=a.hop, dim=8, layers=2, mel_basis=front.fb)
    torch.nn.init.zeros_(g.head.weight)
    torch.nn.init.zeros_(g.head.bias)
    mel = front(torch.from_numpy(_speechlike(0.1, 8000, seed=4))[:12 * a.hop])
    magnitude = (torch.linalg.pinv(front.fb.double()) @ mel.double().exp()).clamp(min=1e-5).float()
    expected = istft_same(torch.complex(magnitude, torch.zeros_like(magnitude)), a.n_fft, a.hop, front.window)
    with torch.no_grad():
        assert torch.allclose(g(mel)[:, 0], expected, atol=1e-5)
    # magnitude_correction off: the head's log-magnitude is ignored, whatever its weights
    fixed = VocosGenerator(n_mels=8, n_fft=a.n_fft, hop=a.hop, dim=8, layers=2, mel_basis=front.fb,
                           correct_magnitude=False)
    with torch.no_grad():
        assert torch.allclose(fixed.spectrum(mel)[0], magnitude, atol=1e-5)
    # the least-squares magnitude is already close: its mel is within 0.5 (log units) on average
    assert float((torch.log((front.fb @ magnitude).clamp(min=1e-5)) - mel).abs().mean()) < 0.5


def test_vocos_generator_trains_vocodes_and_rejects_a_short_window(tmp_path):
    raw = OBJECTIVES["vocoder"].example_config(tmp_path / "data")
    raw["vocoder"].update(generator="vocos", vocos_dim=8, vocos_layers=2)
    run_dir = tmp_path / "vocos"
    api.train(from_dict(raw), run_dir, progress=False)
    run = ganforge.load(run_dir)
    assert type(run.objective.nets["G"]).__name__ == "VocosGenerator"
    hop = run.config.audio.hop
    mel = run.analyze(torch.from_numpy(_speechlike(0.2, 8000)[:12 * hop]))
    out = run.vocode(mel)
    assert out.shape == (1, 12 * hop) and float(out.abs().max()) <= 1.0 and bool(torch.isfinite(out).all())
    prior = dict(raw, vocoder={**raw["vocoder"], "mel_prior": True})
    api.train(from_dict(prior), tmp_path / "prior", progress=False)
    run = ganforge.load(tmp_path / "prior")
    assert run.objective.nets["G"].mel_inverse is not None  # rebuilt from the config at load
    assert run.vocode(mel).shape == (1, 12 * hop)
    fixed = dict(raw, vocoder={**prior["vocoder"], "magnitude_correction": False})
    api.train(from_dict(fixed), tmp_path / "fixed", progress=False)
    G = ganforge.load(tmp_path / "fixed").objective.nets["G"]
    assert not G.correct_magnitude and G.mel_inverse is not None
    with pytest.raises(ConfigError, match="mel_prior=true"):  # no prior to keep
        api.train(from_dict(dict(raw, vocoder={**fixed["vocoder"], "mel_prior": False})),
                  tmp_path / "bad", progress=False)
    with pytest.raises(ConfigError, match="mel_prior"):
        api.train(from_dict(dict(raw, vocoder={**prior["vocoder"], "generator": "hifigan"})),
                  tmp_path / "bad", progress=False)
    raw["audio"]["win"] = raw["audio"]["n_fft"] // 2
    with pytest.raises(ConfigError, match="audio.win"):
        api.train(from_dict(raw), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def _inconsistency(front, magnitude, wave):
    """How far ``magnitude`` is from the STFT magnitude of ``wave``: relative L1 (0 when equal)."""
    return float((front.stft(wave).abs() - magnitude).abs().sum() / magnitude.sum())


def test_pghi_rebuilds_a_consistent_phase_from_the_magnitude_alone():
    """On a harmonic, gliding signal PGHI's phase makes the magnitude nearly an STFT again (much
    closer than random phase, and than 8 Griffin-Lim steps from random phase), and Griffin-Lim
    after PGHI improves it further."""
    a = AudioConfig(n_fft=512, hop=128, win=512, n_mels=40)
    front = LogMel.from_config(a)
    t = np.arange(8000 * 6 // 10) / 8000
    f0 = 120 + 60 * t  # a glide, so the phase advance differs across frames
    x = sum(np.sin(2 * np.pi * np.cumsum(k * f0) / 8000) / k for k in range(1, 10)) * np.hanning(len(t))
    wave = torch.from_numpy(x[:len(x) // a.hop * a.hop].astype(np.float32))[None] * 0.2
    magnitude = front.stft(wave).abs()
    random = torch.rand(magnitude.shape, generator=torch.Generator().manual_seed(0)) * 2 * math.pi
    rebuilt = torch.from_numpy(pghi(magnitude[0].numpy(), n_fft=a.n_fft, hop=a.hop, win=a.win)).float()[None]
    assert rebuilt.shape == magnitude.shape
    inverse = lambda phase: istft_same(torch.polar(magnitude, phase), a.n_fft, a.hop, front.window)  # noqa: E731
    gl = dict(stft=front.stft, n_fft=a.n_fft, hop=a.hop, window=front.window, steps=8)
    e_pghi = _inconsistency(front, magnitude, inverse(rebuilt))
    e_random = _inconsistency(front, magnitude, inverse(random))
    e_gl = _inconsistency(front, magnitude, fast_griffin_lim(magnitude, random, **gl))
    e_both = _inconsistency(front, magnitude, fast_griffin_lim(magnitude, rebuilt, **gl))
    assert e_pghi < 0.3 * e_random and e_pghi < e_gl and e_both < e_pghi, (e_pghi, e_random, e_gl, e_both)
    with pytest.raises(ValueError, match="n_fft // 2 \\+ 1"):
        pghi(magnitude[0, :-1].numpy(), n_fft=a.n_fft, hop=a.hop, win=a.win)


def _pghi_walk_on_arrays(mag, along_time, along_freq, phase, done):
    """The heap walk as the paper states it, on 2-D numpy arrays and (-|S|, bin, frame) heap
    entries: the reference for pghi's walk on flat lists."""
    import heapq

    bins, frames = mag.shape
    left = int((~done).sum())
    order = iter(np.argsort(-mag, axis=None, kind="stable"))
    heap = []
    steps = ((0, 1, along_time, 1.0), (0, -1, along_time, -1.0), (1, 0, along_freq, 1.0), (-1, 0, along_freq, -1.0))
    while left:
        if not heap:
            b, f = divmod(int(next(i for i in order if not done.flat[i])), frames)
            phase[b, f], done[b, f] = 0.0, True
            left -= 1
            heap.append((-mag[b, f], b, f))
        _, b, f = heapq.heappop(heap)
        for db, df, grad, sign in steps:
            nb, nf = b + db, f + df
            if 0 <= nb < bins and 0 <= nf < frames and not done[nb, nf]:
                phase[nb, nf] = phase[b, f] + sign * 0.5 * (grad[b, f] + grad[nb, nf])
                done[nb, nf] = True
                left -= 1
                heapq.heappush(heap, (-mag[nb, nf], nb, nf))
    return phase


def test_pghi_walk_is_bit_for_bit_the_walk_on_arrays():
    """pghi walks flat Python lists for speed; its phase equals the straightforward walk's exactly,
    with ties in magnitude and islands of coefficients under the tolerance (random phase there)."""
    rng = np.random.default_rng(3)
    n_fft, hop, win, tol = 62, 16, 62, 1e-3
    mag = rng.gamma(0.5, size=(n_fft // 2 + 1, 45))
    mag[rng.random(mag.shape) < 0.25] = 0.0  # quiet holes split the plane into islands
    mag[5:9, 10:14] = np.median(mag[mag > 0])  # a loud plateau: the heap breaks ties by position
    assert mag[5, 10] > tol * mag.max()
    got = pghi(mag, n_fft=n_fft, hop=hop, win=win, tol=tol, seed=7)

    lam = 0.25645 * win ** 2
    log_mag = np.log(np.maximum(mag, 1e-12))
    k = np.arange(mag.shape[0])[:, None]
    along_time = hop * ((n_fft / lam) * np.gradient(log_mag, axis=0) + 2 * math.pi * k / n_fft)
    along_freq = -(lam / (n_fft * hop)) * np.gradient(log_mag, axis=1)
    phase = np.random.default_rng(7).uniform(0, 2 * math.pi, mag.shape)
    want = _pghi_walk_on_arrays(mag, along_time, along_freq, phase, mag <= tol * mag.max()) - math.pi * k
    assert np.array_equal(got, want)
    assert (mag <= tol * mag.max()).sum() > 100  # the quiet holes are there


def test_vocoder_with_retrieved_phase_trains_the_magnitude_alone(tmp_path):
    """vocoder.phase=pghi: the head predicts only the magnitude, training sees it with the crops'
    own phase, vocode retrieves the phase (PGHI + fast Griffin-Lim) and keeps the length;
    adv_weight 0 trains without a discriminator; bad combinations are one-line config errors."""
    raw = OBJECTIVES["vocoder"].example_config(tmp_path / "data")
    raw["vocoder"].update(generator="vocos", vocos_dim=8, vocos_layers=2, mel_prior=True, phase="pghi",
                          phase_steps=2, magnitude_weight=1.0, d_crops=1)  # D sees 1 of the 2 crops
    api.train(from_dict(raw), tmp_path / "gan", progress=False)
    run = ganforge.load(tmp_path / "gan")
    G, n_fft = run.objective.nets["G"], run.config.audio.n_fft
    assert G.head.out_features == n_fft // 2 + 1 and set(run.objective.nets) == {"G", "D"}
    records = [json.loads(line) for line in (tmp_path / "gan" / "metrics.jsonl").read_text().splitlines()]
    assert any("magnitude_l1" in r and "g_adv" in r for r in records)
    hop = run.config.audio.hop
    mel = run.analyze(torch.from_numpy(_speechlike(0.2, 8000)[:12 * hop]))
    out = run.vocode(mel)
    assert out.shape == (1, 12 * hop) and float(out.abs().max()) <= 1.0 and bool(torch.isfinite(out).all())
    with pytest.raises(ValueError, match="pass the phase"):
        G(mel)
    alone = dict(raw, vocoder={**raw["vocoder"], "adv_weight": 0.0, "fm_weight": 0.0})
    api.train(from_dict(alone), tmp_path / "alone", progress=False)
    run = ganforge.load(tmp_path / "alone")
    assert set(run.objective.nets) == {"G"} and [p.name for p in run.objective.phases] == ["G"]
    records = [json.loads(line) for line in (tmp_path / "alone" / "metrics.jsonl").read_text().splitlines()]
    assert any("magnitude_l1" in r for r in records) and not any("g_adv" in r for r in records)
    assert run.vocode(mel).shape == (1, 12 * hop)
    for change, message in (({"generator": "hifigan", "mel_prior": False}, "phase=pghi"),
                            ({"phase": "guess"}, "vocoder.phase"),
                            ({"d_crops": -1}, "d_crops"),
                            ({"adv_weight": 0.0}, "fm_weight=0"),
                            ({"adv_weight": 0.0, "fm_weight": 0.0, "mel_weight": 0.0, "magnitude_weight": 0.0},
                             "nothing to train")):
        with pytest.raises(ConfigError, match=message):
            api.train(from_dict(dict(raw, vocoder={**raw["vocoder"], **change})), tmp_path / "bad", progress=False)
    assert not (tmp_path / "bad").exists()


def test_crop_batches_resume_exactly():
    items = [torch.arange(50.0), torch.arange(7.0)]
    a = CropBatches({"wave": items}, 10, 3, seed=1, device=torch.device("cpu"), pad_value=-1)
    first = [next(a)["wave"] for _ in range(5)]
    b = CropBatches({"wave": items}, 10, 3, seed=1, device=torch.device("cpu"), pad_value=-1)
    next(b), next(b)
    state = b.state_dict()
    c = CropBatches({"wave": items}, 10, 3, seed=1, device=torch.device("cpu"), pad_value=-1)
    c.load_state_dict(state)
    assert all(torch.equal(x, next(c)["wave"]) for x in first[2:])
    short = torch.cat(first)[torch.cat(first)[:, -1] == -1]  # the 7-sample item, padded
    assert all(row[:7].tolist() == list(range(7)) for row in short)


# ----------------------------------------------------------------------------- reader


def test_bad_audio_gets_one_line_errors_naming_the_file(tmp_path):
    (tmp_path / "text.wav").write_text("this is not audio")
    with pytest.raises(DataError, match="text.wav: cannot decode") as info:
        read_audio(tmp_path / "text.wav", 8000)
    assert "\n" not in str(info.value)
    with wavmod.open(str(tmp_path / "empty.wav"), "wb") as f:  # a valid header, no samples
        f.setnchannels(1), f.setsampwidth(2), f.setframerate(8000)
    with pytest.raises(DataError, match="empty.wav is empty"):
        read_audio(tmp_path / "empty.wav", 8000)
    write_wav(tmp_path / "silent.wav", np.zeros(8000), 8000)
    with pytest.raises(DataError, match="silent.wav is silent"):
        read_audio(tmp_path / "silent.wav", 8000)
    write_wav(tmp_path / "short.wav", _speechlike(0.05, 8000), 8000)
    with pytest.raises(DataError, match=r"short.wav is too short \(0.050 s"):
        read_audio(tmp_path / "short.wav", 8000, min_seconds=0.25)
    with pytest.raises(DataError, match="empty.wav is empty"):  # a folder stops at its first bad file
        load_audio(tmp_path, rate=8000, min_seconds=0.0)


def test_8khz_stereo_is_mixed_down_and_resampled_with_a_note(tmp_path, capsys):
    left = _speechlike(0.5, 8000)
    sf.write(tmp_path / "stereo.wav", np.stack([left, 0.5 * left], 1), 8000, subtype="FLOAT")
    notes: list[str] = []
    wave = read_audio(tmp_path / "stereo.wav", 16000, notes=notes)
    assert wave.dtype == np.float32 and len(wave) == 8000  # 0.5 s at 16 kHz
    assert any("mixed stereo.wav down from 2 channels" in n for n in notes)
    assert any("resampled stereo.wav from 8000 Hz to 16000 Hz" in n for n in notes)
    np.testing.assert_allclose(wave[::2], 0.75 * left, atol=0.05)  # the mean of the channels
    ds = load_audio(tmp_path, rate=16000, min_seconds=0.1)
    assert len(ds) == 1 and "mixed down to mono" in capsys.readouterr().out


NO_ESPEAK = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                               reason="espeak-ng is not installed (Debian: apt-get install espeak-ng; "
                                      ".ci/run installs it when it runs as root)")


@NO_ESPEAK
def test_make_speech_writes_a_split_corpus_with_parallel_sentences(tmp_path, capsys):
    out = tmp_path / "speech"
    argv = ["data", "make-speech", "--out", str(out), "--voices", "en+m3,en+f3", "--utterances", "3",
            "--parallel", "2", "--rate", "16000"]
    assert cli.main(argv) == 0
    info = json.loads((out / "corpus.json").read_text())
    assert info["voices"] == ["en+m3", "en+f3"] and (info["train"], info["test"]) == (2, 1)
    for voice in info["voices"]:
        assert len(list((out / voice / "train").glob("*.wav"))) == 2
        assert len(list((out / voice / "test").glob("*.wav"))) == 1
        assert sorted(p.name for p in (out / "parallel" / voice).glob("*.wav")) == ["0000.wav", "0001.wav"]
    said = info["files"]
    own = [{said[k] for k in said if k.startswith(f"{v}/")} for v in info["voices"]]
    assert len(own[0]) == 3 and not own[0] & own[1]  # unpaired: different sentences per voice
    assert said["parallel/en+m3/0001.wav"] == said["parallel/en+f3/0001.wav"]
    assert not {said["parallel/en+m3/0000.wav"]} & (own[0] | own[1])  # held out from training
    data, rate = sf.read(out / "en+f3" / "test" / "0002.wav")
    assert rate == 16000 and len(data) > 0.3 * rate and np.abs(data).max() > 0.05
    assert len(load_audio(out, rate=16000, min_seconds=0.1, log=False)) == 4  # train split, 2 voices
    assert cli.main(argv) == 2  # refuses to overwrite
    assert "--force" in capsys.readouterr().err


def test_audio_families_count_clips_per_second_on_the_progress_bar():
    from ganforge.objectives import OBJECTIVES
    from ganforge.training import display

    units = {name: cls.rate_unit.fget(cls) for name, cls in OBJECTIVES.items()}
    assert units["vocoder"] == units["cyclegan-vc"] == "clips/s" and units["unconditional"] == "img/s"
    assert display.postfix({"d_loss": 0.5, "img_per_s": 72.4}, "clips/s") == "D=0.500 clips/s=72"
    assert display.postfix({"img_per_s": 0.94}, "clips/s") == "clips/s=0.94"  # batch 1 on CPU: not 0


def test_a_corpus_split_or_voice_that_is_not_there_is_refused_not_read_whole(tmp_path):
    """data.split=tets had read both splits (the test files eval-audio scores), and
    vc.voice_b=parallel both voices' held-out parallel sentences."""
    root = tmp_path / "corpus"
    for i, rel in enumerate(["a/train/0.wav", "a/test/1.wav", "b/train/2.wav", "b/test/3.wav",
                             "parallel/a/0.wav", "parallel/b/0.wav"]):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        write_wav(root / rel, _speechlike(0.5, 8000, seed=i), 8000)
    (root / "corpus.json").write_text(json.dumps({"voices": ["a", "b"], "rate": 8000}))
    kw = dict(rate=8000, min_seconds=0.1, log=False)
    assert len(load_audio(root, split="train", **kw)) == 2 and len(load_audio(root, split="test", **kw)) == 2
    with pytest.raises(DataError, match=r"corpus/a has no 'tets' split \(it has: test, train\); set data.split"):
        load_audio(root, split="tets", **kw)
    with pytest.raises(DataError, match=r"speech corpus without the voice 'parallel' \(its voices: a, b\)"):
        load_audio(root, voices=["parallel"], **kw)
    plain = tmp_path / "mine"  # a folder of one's own: voice folders without splits are read whole
    for i, rel in enumerate(["x/0.wav", "x/1.wav"]):
        (plain / rel).parent.mkdir(parents=True, exist_ok=True)
        write_wav(plain / rel, _speechlike(0.5, 8000, seed=i), 8000)
    assert len(load_audio(plain, voices=["x"], split="train", **kw)) == 2


@NO_ESPEAK
def test_make_speech_checks_voices_before_it_replaces_a_corpus(tmp_path, capsys):
    """--force had deleted the corpus before an unknown voice failed (nothing left), and a
    mistyped variant (en+f33) was spoken in the plain voice under its wrong name."""
    out = tmp_path / "speech"
    argv = ["data", "make-speech", "--out", str(out), "--utterances", "2", "--parallel", "1"]
    assert cli.main([*argv, "--voices", "en+m3,en+f3"]) == 0
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    for voices, message in (("en+m3,nosuch", "could not speak with voice 'nosuch'"),
                            ("en+m3,en+f33", "no voice variant 'f33' (in --voices en+f33) (did you mean 'f3'?)")):
        assert cli.main([*argv, "--voices", voices, "--force"]) == 2
        assert message in capsys.readouterr().err
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before
        assert [p.name for p in tmp_path.iterdir()] == ["speech"]  # no partial folder left
    assert cli.main([*argv, "--voices", "en+m3,en+f2", "--force"]) == 0  # a good --force replaces it
    assert json.loads((out / "corpus.json").read_text())["voices"] == ["en+m3", "en+f2"]
    assert not (out / "en+f3").exists() and [p.name for p in tmp_path.iterdir()] == ["speech"]


# ----------------------------------------------------------------------------- speaker judge


def test_speaker_features_ignore_per_band_shift_and_scale():
    mel = LogMel.from_config(AudioConfig())(torch.from_numpy(_speechlike()))[0].numpy()
    rng = np.random.default_rng(1)
    moved = mel * rng.uniform(0.3, 3.0, (80, 1)) + rng.normal(0, 2, (80, 1))
    np.testing.assert_allclose(speaker_features(moved), speaker_features(mel), atol=1e-9)
    assert speaker_features(mel).shape == (80 * 79 // 2,)
    smeared = (mel + np.roll(mel, 3, 0)) / 2  # bands mixed across frequency: no longer a per-band map
    assert np.abs(speaker_features(smeared) - speaker_features(mel)).max() > 0.1


def test_voice_region_cutoff_is_a_held_out_quantile_and_sees_off_subspace_points():
    """Features near a 5-dimensional subspace of 50: the cutoff is the ceil((n + 1) q)-th smallest
    distance of the utterances held out from the fit; fresh points of the same distribution fall
    inside about as often as q says; a point far along the subspace, and one off it whose
    projection is the mean itself, fall outside."""
    rng = np.random.default_rng(0)
    basis = np.linalg.qr(rng.standard_normal((50, 50)))[0]
    w, off = basis[:, :5].T * 3, basis[:, 5]  # off: orthogonal to the subspace

    def draw(n):
        return rng.standard_normal((n, 5)) @ w + 0.1 * rng.standard_normal((n, 50))
    region = VoiceRegion(draw(400), quantile=0.9)
    assert (region.n_fit, region.n_calibration, region.components) == (300, 100, 20)
    assert region.cutoff == region.calibration[math.ceil(101 * 0.9) - 1]  # the 91st of 100
    assert 0.85 < region.contains(draw(2000)).mean() < 0.95
    center = region.model[0].mean_
    assert not region.contains(center + 12 * w[0])[0]  # 12 sd along the main direction
    assert not region.contains(center + 3 * off)[0]   # residual norm 3 against about 0.7
    assert region.contains(center)[0]
    with pytest.raises(ValueError, match="at least 8"):
        VoiceRegion(draw(7))


@NO_ESPEAK
def test_speaker_judge_on_two_espeak_voices(tmp_path):
    """Two espeak voices, 14 training sentences each: the judge is right on every held-out real
    utterance, and the source voice with its per-band log-mel mean/std replaced by the target
    voice's (then through Griffin-Lim, as eval-audio does) is never judged the target - while a
    judge on per-band mean/std (the one used before) takes it for the target every time. A
    Gaussian-noise mel still falls on one side of the two-way judge, but is accepted as neither
    voice: it lies in neither voice's typical region, which holds the held-out real speech."""
    from sklearn.linear_model import LogisticRegression

    voices = ["en+m3", "en+f3"]
    out = tmp_path / "speech"
    make_speech(out, voices=voices, utterances=16, parallel=4)  # 14 train + 2 test per voice
    a = AudioConfig()
    analyze = lambda w: LogMel.from_config(a)(torch.from_numpy(w))[0].numpy()  # noqa: E731
    mels = {(split, v): [analyze(w) for w in load_audio(out, rate=a.rate, min_seconds=0.1, split=split,
                                                        voices=[v], log=False).waves]
            for split in ("train", "test") for v in voices}
    parallel = [[analyze(read_audio(f, a.rate)) for f in pair] for pair in parallel_pairs(out, *voices)]
    judge = SpeakerJudge(mels["train", voices[0]], mels["train", voices[1]])
    for i, v in enumerate(voices):
        held_out = mels["test", v] + [p[i] for p in parallel]
        assert len(held_out) == 6 and judge.accuracy(held_out, i) == 1.0
        # 11 fit + 3 calibration utterances: the cutoff is the largest calibration distance, so
        # only n / (n + 1) = 75% of held-out real speech is owed; both voices keep at least half
        assert judge.regions[i].n_calibration == 3 and judge.acceptance(held_out, i) >= 0.5

    # the "neither" answer: Gaussian noise with each utterance's mean and std falls on one side of
    # the two-way judge, yet is accepted as neither voice, far outside both regions
    rng = np.random.default_rng(0)
    noise = [rng.normal(p[i].mean(), p[i].std(), p[i].shape) for p in parallel for i in (0, 1)]
    assert judge.acceptance(noise, 0) == judge.acceptance(noise, 1) == 0.0
    for region in judge.regions:
        assert region.distance(np.stack([speaker_features(m) for m in noise])).min() > 100 * region.cutoff

    stats = [(np.concatenate(mels["train", v], 1).mean(1, keepdims=True),
              np.concatenate(mels["train", v], 1).std(1, keepdims=True)) for v in voices]
    matched = [[(p[src] - stats[src][0]) / stats[src][1] * stats[1 - src][1] + stats[1 - src][0] for p in parallel]
               for src in (0, 1)]  # matched[src]: voice src moved to the other voice's statistics
    for src in (0, 1):
        resynth = [analyze(griffin_lim(m.astype(np.float32), a, n_iter=8)) for m in matched[src]]
        assert [judge.predict(m) for m in matched[src] + resynth] == [src] * 8

    def mean_std(m):
        return np.concatenate([m.mean(1), m.std(1)])
    old = LogisticRegression(max_iter=2000).fit(
        np.stack([mean_std(m) for v in voices for m in mels["train", v]]), [0] * 14 + [1] * 14)
    for src in (0, 1):
        assert old.predict(np.stack([mean_std(m) for m in matched[src]])).tolist() == [1 - src] * 4


# ----------------------------------------------------------------------------- commands


def _train(name, tmp_path):
    raw = OBJECTIVES[name].example_config(tmp_path / "data")
    run = tmp_path / name
    api.train(from_dict(raw), run, progress=False)
    return run, raw


def test_vocode_keeps_the_length_and_eval_audio_compares_with_griffin_lim(tmp_path, capsys, monkeypatch):
    run_dir, raw = _train("vocoder", tmp_path)
    assert sorted(p.name for p in (run_dir / "samples").glob("step_0000004_*.wav")) == ["step_0000004_0.wav",
                                                                                          "step_0000004_1.wav"]
    run = ganforge.load(run_dir)
    hop = run.config.audio.hop
    mel = run.analyze(torch.from_numpy(_speechlike(0.2, 8000)[:12 * hop]))
    assert mel.shape[-1] == 12 and run.vocode(mel).shape == (1, 12 * hop)  # hop-aligned: same length
    src = tmp_path / "in.wav"
    write_wav(src, _speechlike(0.3, 8000)[:1000], 8000)  # not a multiple of hop
    assert cli.main(["vocode", str(run_dir), str(src), "--out", str(tmp_path / "out.wav")]) == 0
    assert sf.info(tmp_path / "out.wav").frames == 1000
    held_out = write_tone_folder(tmp_path / "held", n=1, seconds=0.3, rate=8000, seed=9)
    assert cli.main(["eval-audio", str(run_dir), "--data", str(held_out), "--json", str(tmp_path / "e.json")]) == 0
    out = capsys.readouterr().out
    assert "griffin-lim" in out and "mcd" in out
    res = json.loads((tmp_path / "e.json").read_text())["results"]
    assert res["griffin-lim"]["mcd"] > 0 and res["vocoder"]["rtf"] > 0
    assert res["griffin-lim"]["mel_l1"] < res["vocoder"]["mel_l1"]  # 4 steps: GL is far better
    # --vocoder voices a conversion run's mels: for a vocoder run it had been ignored without a word
    code = cli.main(["eval-audio", str(run_dir), "--data", str(held_out), "--vocoder", str(run_dir)])
    assert code == 2 and "is a vocoder itself" in capsys.readouterr().err
    # the Python API refuses what is not finite (it had returned all-NaN waveforms)
    with pytest.raises(ConfigError, match="vocode takes .* with finite values; this one has NaN or inf"):
        run.vocode(torch.full((1, run.config.audio.n_mels, 8), float("nan")))
    # a WAV holds [-1, 1]: an output at full scale is clipped, and the command says how much
    loud = tmp_path / "loud.wav"
    write_wav(loud, np.clip(_speechlike(0.3, 8000)[:2000] * 50, -1, 1), 8000)
    monkeypatch.setattr(type(run), "vocode", lambda self, mel, ema=True: torch.ones(1, 4000) * 1.5)
    assert cli.main(["vocode", str(run_dir), str(loud), "--out", str(tmp_path / "loud-out.wav")]) == 0
    assert "2000 of 2000 output samples (100%) are at full scale and clipped" in capsys.readouterr().out


def test_convert_and_eval_on_parallel_sentences(tmp_path, capsys):
    run_dir, raw = _train("cyclegan-vc", tmp_path)
    root = tmp_path / "data" / "voices"
    for voice, pitch in (("low", 1.0), ("high", 2.0)):
        write_tone_folder(root / "parallel" / voice, n=2, seconds=0.3, rate=8000, seed=5, pitch=pitch)
    out = tmp_path / "conv.wav"
    src = root / "parallel" / "low" / "000.wav"
    assert cli.main(["convert", str(run_dir), str(src), "--out", str(out), "--direction", "AtoB"]) == 0
    assert sf.info(out).frames == sf.info(src).frames and "griffin-lim" in capsys.readouterr().out
    assert cli.main(["eval-audio", str(run_dir), "--data", str(root), "--json", str(tmp_path / "e.json")]) == 0
    printed = capsys.readouterr().out
    assert "speaker judge" in printed and "two-way" in printed
    res = json.loads((tmp_path / "e.json").read_text())
    # no test split in a plain folder of voices: the judge is measured on the parallel sentences;
    # 2 training utterances per voice are too few for a typical region: two-way rates only
    assert res["sentences"] == 2 and res["classifier_train"] == [2, 2] and res["classifier_held_out"] == [2, 2]
    assert res["typical_regions"] is None and any("fewer than 8 training utterances" in n for n in res["notes"])
    for direction, src in (("AtoB", 0), ("BtoA", 1)):
        row = res["results"][direction]
        assert row["success"] is None and 0 <= row["success_two_way"] <= 1  # NaN: null in strict JSON
        assert row["mcd_source"] > 0 and 0 <= row["success_target_resynth_two_way"] <= 1
        # the unconverted source judged the target is the judge's error rate on that voice
        assert row["source_as_target_two_way"] == pytest.approx(1 - res["classifier_accuracy_by_voice"][src])

    # 12 training utterances per voice (the first 2 are the run's): the regions are learned
    write_tone_folder(root / "low", n=12, seconds=0.4, rate=8000, seed=1)
    write_tone_folder(root / "high", n=12, seconds=0.4, rate=8000, seed=2, pitch=2.0)

    class Parrot:  # "waveforms" that ignore the mel: always a training utterance of voice B
        name = "a parrot"

        def __call__(self, mel):
            return torch.from_numpy(read_audio(root / "high" / "000.wav", 8000))[None]
    res = evaluate_conversion(ganforge.load(run_dir), root, synth=Parrot())
    rows, notes = res["results"], res["notes"]
    assert [r["calibration"] for r in res["typical_regions"]] == [3, 3]
    assert rows["AtoB"]["success_stats_only"] == 1.0 and rows["BtoA"]["success_target_resynth"] == 0.0
    for row in rows.values():  # accepted implies judged the target
        for key in ("success", "success_stats_only", "success_target_resynth", "source_as_target"):
            assert row[key] <= row[f"{key}_two_way"]
    assert any(n.startswith("AtoB: per-band statistics matching alone is accepted as the target 100%") for n in notes)
    assert any(n.startswith("BtoA: the real target through a parrot is accepted as the target only 0%") for n in notes)
    table = "\n".join(format_table(res))
    assert "accepted (judged, two-way)" in table and "1.000 (1.000)" in table
    assert cli.main(["convert", str(run_dir), str(src), "--out", str(out)]) == 2  # exists: refused


def test_audio_folder_reads_mp3_and_explains_a_mixdown_that_cancels(tmp_path):
    from ganforge.data.audio import audio_files
    from ganforge.errors import DataError

    t = np.arange(8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    sf.write(tmp_path / "inverted.wav", np.stack([tone, -tone], 1), 8000)
    if "MP3" in sf.available_formats():
        sf.write(tmp_path / "tone.mp3", tone, 8000, format="MP3")
        assert [p.name for p in audio_files(tmp_path)] == ["inverted.wav", "tone.mp3"]
    with pytest.raises(DataError, match="after mixing its 2 channels to mono .*opposite phase"):
        read_audio(tmp_path / "inverted.wav", 8000)
