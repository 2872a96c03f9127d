"""A long recording is vocoded in pieces of bounded size, each with context on both sides: the
waveform is the whole input's (to float rounding) while memory no longer grows with the length
(a 120 s file had peaked at 1.7 GB, a 30-minute one would need about 12 GB)."""
from __future__ import annotations

import pytest
import torch

import ganforge
from ganforge import api
from ganforge.config import from_dict
from ganforge.objectives import OBJECTIVES
from ganforge.objectives import vocoder as V


@pytest.mark.parametrize("generator", ["hifigan", "vocos", "vocos-pghi"])
def test_a_long_mel_is_vocoded_in_pieces_with_the_whole_inputs_result(tmp_path, monkeypatch, generator):
    raw = OBJECTIVES["vocoder"].example_config(tmp_path / "data")
    if generator.startswith("vocos"):
        raw["vocoder"].update(generator="vocos", vocos_dim=8, vocos_layers=2)
    if generator == "vocos-pghi":  # the network gives the magnitude; the phase is retrieved from all of it
        raw["vocoder"].update(phase="pghi", mel_prior=True)
    api.train(from_dict(raw), tmp_path / "run", progress=False)
    run = ganforge.load(tmp_path / "run")
    monkeypatch.setattr(V, "PIECE_FRAMES", 40)
    monkeypatch.setattr(V, "PIECE_CONTEXT", 16)
    mel = run.analyze(torch.randn(300 * run.config.audio.hop) * 0.1)
    G = run.objective.nets["G"]
    seen = []
    called = "spectrum" if generator == "vocos-pghi" else "forward"
    net = getattr(G, called)
    monkeypatch.setattr(G, called, lambda m, *a, **k: seen.append(m.shape[-1]) or net(m, *a, **k))
    pieces = run.vocode(mel)
    assert seen and max(seen) <= 40 + 2 * 16 and len(seen) == 8, seen  # 300 frames in pieces of 40
    monkeypatch.setattr(V, "PIECE_FRAMES", 10_000)
    whole = run.vocode(mel)
    assert seen[-1] == 300  # one call for the whole
    assert pieces.shape == whole.shape == (1, 300 * run.config.audio.hop)
    torch.testing.assert_close(pieces, whole, rtol=0, atol=1e-5)
