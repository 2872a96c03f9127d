"""Phase from an STFT magnitude alone: phase gradient heap integration (PGHI; Průša, Balazs &
Søndergaard 2017, "A noniterative method for reconstruction of phase from STFT magnitude", IEEE/ACM
TASLP 25(5)) and fast Griffin-Lim (Perraudin, Balazs & Søndergaard 2013) to refine it.

PGHI uses that for a Gaussian window exp(-pi t^2 / lambda) the STFT's log-magnitude and phase are
tied like the real and imaginary parts of an analytic function. With the phase taken relative to
each window's centre, x in samples and omega in cycles per sample:

    d phase / dx     = (1 / lambda) d log|S| / d omega + 2 pi omega     (instantaneous frequency)
    d phase / domega = -lambda d log|S| / dx                            (minus the local group delay)

A Hann window of length L is close to the Gaussian with lambda = 0.25645 L^2 (the paper's value).
The two derivatives, from centred differences of log|S| over bins and frames, are integrated over
the time-frequency plane starting at the largest coefficient and always continuing from the largest
one reached so far (a max-heap), so the phase of the loud, reliable coefficients sets that of their
quieter neighbours. Coefficients under ``tol`` times the largest get a random phase, as in the paper.

Why our own: no well-kept Python package ships PGHI (LTFAT and phaseret are MATLAB/Octave and C);
the heap walk is a few dozen lines of numpy, heapq and the standard library's arrays. On our
front end's framing (ganforge.data.mel: frames start (n_fft - hop) / 2 before their hop, phase
relative to the frame's first sample) the centred phase becomes the frame-start phase by
subtracting pi k in bin k.
"""
from __future__ import annotations

import heapq
import math
from array import array
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from .vocos import istft_same

HANN_LAMBDA = 0.25645  # lambda / L^2 of the Gaussian closest to a Hann window (Průša et al. 2017)


def pghi(magnitude: np.ndarray, *, n_fft: int, hop: int, win: int, tol: float = 1e-5,
         seed: int = 0) -> np.ndarray:
    """|STFT| [n_fft // 2 + 1, T] -> phase [n_fft // 2 + 1, T] (frame-start convention)."""
    mag = np.asarray(magnitude, dtype=np.float64)
    bins, frames = mag.shape
    if bins != n_fft // 2 + 1:
        raise ValueError(f"pghi takes [n_fft // 2 + 1 = {n_fft // 2 + 1}, T], got {list(mag.shape)}")
    lam = HANN_LAMBDA * win ** 2
    log_mag = np.log(np.maximum(mag, 1e-12))
    k = np.arange(bins)[:, None]
    dk = np.gradient(log_mag, axis=0) if bins > 1 else np.zeros_like(log_mag)
    dm = np.gradient(log_mag, axis=1) if frames > 1 else np.zeros_like(log_mag)
    # the phase's advance from one frame to the next and from one bin to the next
    along_time = hop * ((n_fft / lam) * dk + 2 * math.pi * k / n_fft)
    along_freq = -(lam / (n_fft * hop)) * dm
    phase = np.random.default_rng(seed).uniform(0, 2 * math.pi, mag.shape)
    done = mag <= tol * mag.max()
    left = int((~done).sum())
    # The walk runs on flat standard-library arrays (index b * frames + f): reading and writing
    # their items costs a fraction of numpy's scalar indexing, they hold 8 bytes per value (Python
    # lists of floats hold about 32), and the arithmetic is the same float64, so the phase is bit
    # for bit the one the walk gives on the 2-D arrays. The heap holds each coefficient's rank in
    # the stable descending sort of |S| (ties by bin, then frame), a plain int, so it pops in the
    # order of (-|S|, bin, frame) entries at a fraction of their comparison cost.
    ph, at, af = (array("d", a.ravel().tobytes()) for a in (phase, along_time, along_freq))
    dn = bytearray(done.ravel().tobytes())
    order_array = np.argsort(-mag, axis=None, kind="stable").astype(np.int64, copy=False)  # "q" below
    rank_array = np.empty_like(order_array)
    rank_array[order_array] = np.arange(order_array.size)
    order, rank = array("q", order_array.tobytes()), array("q", rank_array.tobytes())
    next_start, last_frame, size = 0, frames - 1, bins * frames
    heap: list[int] = []
    push, pop = heapq.heappush, heapq.heappop
    while left:
        if not heap:  # a new island of loud coefficients: start it at phase 0
            while dn[order[next_start]]:
                next_start += 1
            i = order[next_start]
            ph[i], dn[i] = 0.0, 1
            left -= 1
            heap.append(next_start)
        i = order[pop(heap)]
        f = i % frames
        # the neighbours one frame later, one earlier, one bin up, one down
        if f < last_frame and not dn[i + 1]:
            j = i + 1
            ph[j], dn[j] = ph[i] + 0.5 * (at[i] + at[j]), 1
            left -= 1
            push(heap, rank[j])
        if f > 0 and not dn[i - 1]:
            j = i - 1
            ph[j], dn[j] = ph[i] - 0.5 * (at[i] + at[j]), 1
            left -= 1
            push(heap, rank[j])
        j = i + frames
        if j < size and not dn[j]:
            ph[j], dn[j] = ph[i] + 0.5 * (af[i] + af[j]), 1
            left -= 1
            push(heap, rank[j])
        j = i - frames
        if j >= 0 and not dn[j]:
            ph[j], dn[j] = ph[i] - 0.5 * (af[i] + af[j]), 1
            left -= 1
            push(heap, rank[j])
    phase = np.frombuffer(ph, dtype=np.float64).reshape(bins, frames)
    return phase - math.pi * k


def fast_griffin_lim(magnitude: Tensor, phase: Tensor, *, stft: Callable[[Tensor], Tensor],
                     n_fft: int, hop: int, window: Tensor, steps: int,
                     momentum: float = 0.99) -> Tensor:
    """magnitude, phase [B, n_fft // 2 + 1, T] -> waveform [B, T * hop]: ``steps`` projections onto
    consistent spectra (``stft`` of the inverse), each followed by restoring ``magnitude``, with
    Perraudin et al.'s momentum (librosa's default 0.99)."""
    spec = torch.polar(magnitude, phase)
    previous = torch.zeros_like(spec)
    for _ in range(steps):
        rebuilt = stft(istft_same(spec, n_fft, hop, window))
        accelerated = rebuilt + momentum * (rebuilt - previous)
        previous = rebuilt
        spec = torch.polar(magnitude, torch.angle(accelerated))
    return istft_same(spec, n_fft, hop, window)


def retrieve(magnitude: Tensor, *, stft: Callable[[Tensor], Tensor], n_fft: int, hop: int,
             win: int, window: Tensor, steps: int) -> Tensor:
    """|STFT| [B, n_fft // 2 + 1, T] -> waveform [B, T * hop]: PGHI per item, then ``steps`` fast
    Griffin-Lim steps."""
    mag = magnitude.float()
    phase = torch.stack([torch.from_numpy(pghi(m.cpu().numpy(), n_fft=n_fft, hop=hop, win=win))
                         for m in mag]).float().to(mag.device)
    return fast_griffin_lim(mag, phase, stft=stft, n_fft=n_fft, hop=hop, window=window, steps=steps)
