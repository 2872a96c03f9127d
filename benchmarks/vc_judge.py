"""How good is eval-audio's speaker judge, measured on speech and not on a conversion model.

On a make-speech corpus, with the front end of the ``cyclegan-vc-speech`` preset: the judge
(ganforge.metrics.audio.SpeakerJudge) is trained on the two voices' training utterances, then

- its accuracy on held-out real utterances of each voice (the test split and the parallel
  sentences);
- how often per-band statistics matching (each mel band of the source shifted and scaled to the
  target voice's training mean and std, no learning) is judged the target, on the parallel
  sentences, in the mel domain and through Griffin-Lim (as eval-audio resynthesizes);
- the same for a one-octave pitch shift of the source (librosa, pitch and formants together): a
  crude conversion with no learning, to show what the judge does not check;
- all of it next to the judge used before (logistic regression on per-band mean and std), and
  the MCD of each (and of the unconverted source) to the target voice after DTW;
- the "neither" answer of the current judge (``SpeakerJudge.accepts``: judged the voice AND
  inside that voice's typical region, learned from its training utterances with the cutoff on
  those held out from the fit): how many held-out real utterances of each voice it accepts
  (target >= 90%), and how many of the crude fakes above and of Gaussian-noise mels (each parallel
  utterance's own mean and std, i.i.d. over bands and frames) it accepts as a voice (target:
  near 0%). Both judges' two-way answers on the noise are printed too.

    ganforge data make-speech --out runs/vc-judge/speech --voices en+m3,en+f3 --utterances 600
    python benchmarks/vc_judge.py --corpus runs/vc-judge/speech --json benchmarks/results/vc-judge.json
"""
from __future__ import annotations

import json
from pathlib import Path

from _common import Parser, run_main

import numpy as np
import torch

from ganforge.data.audio import load_audio, read_audio
from ganforge.data.mel import AudioConfig, LogMel
from ganforge.data.speech import parallel_pairs
from ganforge.metrics.audio import SpeakerJudge, dtw_mcd, griffin_lim, mel_cepstrum, speaker_features


class MeanStdJudge:
    """The judge eval-audio used before: logistic regression on per-band mean and std."""

    def __init__(self, mels_a, mels_b):
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        x = np.stack([self.features(m) for m in mels_a + mels_b])
        y = np.array([0] * len(mels_a) + [1] * len(mels_b))
        self.model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)

    @staticmethod
    def features(m):
        return np.concatenate([m.mean(1), m.std(1)])

    def predict(self, log_mel):
        return int(self.model.predict(self.features(log_mel)[None])[0])

    def accuracy(self, mels, voice):
        return float(np.mean([self.predict(m) == voice for m in mels]))


def main() -> int:
    p = Parser(description=__doc__.split("\n\n")[0])
    p.add_argument("--corpus", required=True, help="a make-speech corpus")
    p.add_argument("--voices", default="en+m3,en+f3", help="voice A,voice B (the preset's)")
    p.add_argument("--json", help="write the numbers here")
    args = p.parse_args()
    torch.set_num_threads(1)
    import librosa

    voices = args.voices.split(",")
    a = AudioConfig()  # the preset's front end: 22050 Hz, 80 mels to 8 kHz, hop 256
    mel = LogMel.from_config(a)
    analyze = lambda w: mel(torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)))[0].numpy()  # noqa: E731
    load = lambda split, v: [analyze(w) for w in load_audio(  # noqa: E731
        args.corpus, rate=a.rate, min_seconds=a.min_seconds, split=split, voices=[v], log=False).waves]
    train, test = [load("train", v) for v in voices], [load("test", v) for v in voices]
    pairs = parallel_pairs(args.corpus, *voices)
    parallel = [[analyze(read_audio(f, a.rate)) for f in pair] for pair in pairs]
    stats = []
    for mels in train:  # as the objective's VoicePair.stats
        frames = np.concatenate(mels, 1)
        stats.append((frames.mean(1, keepdims=True), np.maximum(frames.std(1, ddof=1, keepdims=True), 1e-3)))
    fakes: dict[str, list[list[np.ndarray]]] = {"stats_matched": [[], []], "stats_matched_griffin_lim": [[], []],
                                               "octave_shift": [[], []]}
    for pair in parallel:
        for src in (0, 1):
            tgt = 1 - src
            matched = (pair[src] - stats[src][0]) / stats[src][1] * stats[tgt][1] + stats[tgt][0]
            fakes["stats_matched"][src].append(matched)
            fakes["stats_matched_griffin_lim"][src].append(analyze(griffin_lim(matched.astype(np.float32), a)))
            wave = griffin_lim(pair[src], a)
            fakes["octave_shift"][src].append(analyze(librosa.effects.pitch_shift(
                wave, sr=a.rate, n_steps=12 if src == 0 else -12)))
    rng = np.random.default_rng(0)
    noise = [rng.normal(q[i].mean(), q[i].std(), q[i].shape) for q in parallel for i in (0, 1)]
    results, regions, margins = {}, None, {}
    for name, cls in (("band_correlation (new)", SpeakerJudge), ("mean_std (before)", MeanStdJudge)):
        judge = cls(*train)
        row = {"held_out_test": {v: judge.accuracy(test[i], i) for i, v in enumerate(voices)},
               "held_out_parallel": {v: judge.accuracy([q[i] for q in parallel], i) for i, v in enumerate(voices)}}
        for key, per_src in fakes.items():  # judged the target voice (1 - src)
            row[f"{key}_as_target"] = {f"{voices[s]}->{voices[1 - s]}": judge.accuracy(per_src[s], 1 - s)
                                       for s in (0, 1)}
        row["gaussian_noise_judged"] = {v: judge.accuracy(noise, i) for i, v in enumerate(voices)}
        if cls is SpeakerJudge:  # accepted: judged the voice and inside its typical region
            regions = [r.describe() for r in judge.regions]
            row["held_out_test_accepted"] = {v: judge.acceptance(test[i], i) for i, v in enumerate(voices)}
            row["held_out_parallel_accepted"] = {v: judge.acceptance([q[i] for q in parallel], i)
                                                 for i, v in enumerate(voices)}
            for key, per_src in fakes.items():
                row[f"{key}_accepted_as_target"] = {f"{voices[s]}->{voices[1 - s]}": judge.acceptance(
                    per_src[s], 1 - s) for s in (0, 1)}
            row["gaussian_noise_accepted_as"] = {v: judge.acceptance(noise, i) for i, v in enumerate(voices)}

            def margin(mels, voice, judge=judge):  # the median distance to the voice's region / its cutoff
                region = judge.regions[voice]
                return float(np.median(region.distance(np.stack([speaker_features(m) for m in mels]))) / region.cutoff)
            margins = {
                **{f"held-out real {v} -> {v}": margin(test[i] + [q[i] for q in parallel], i)
                   for i, v in enumerate(voices)},
                **{f"{key} {voices[s]} -> {voices[1 - s]}": margin(per_src[s], 1 - s)
                   for key, per_src in fakes.items() for s in (0, 1)},
                **{f"gaussian_noise -> {v}": margin(noise, i) for i, v in enumerate(voices)}}
        results[name] = row
    mcd = {key: {f"{voices[s]}->{voices[1 - s]}": float(np.mean([
        dtw_mcd(mel_cepstrum(fake), mel_cepstrum(pair[1 - s])) for fake, pair in zip(per_src[s], parallel)]))
        for s in (0, 1)} for key, per_src in {"source": [[q[0] for q in parallel], [q[1] for q in parallel]],
                                              **fakes}.items()}
    counts = {"train": [len(m) for m in train], "test": [len(m) for m in test], "parallel": len(parallel)}
    print(f"corpus {args.corpus}: {counts['train']} train, {counts['test']} test utterances of "
          f"{' / '.join(voices)}, {counts['parallel']} parallel sentences")
    for v, r in zip(voices, regions):
        print(f"typical region of {v}: {r['components']} PPCA components fit on {r['fit']} training "
              f"utterances; cutoff {r['cutoff']:.1f} (q = {r['quantile']}) from {r['calibration']} held out")
    for name, row in results.items():
        print(f"judge {name}")
        for key, vals in row.items():
            print(f"  {key:<46}" + "  ".join(f"{k} {v:.3f}" for k, v in vals.items()))
    print("median distance to the voice's typical region / its cutoff (inside when <= 1)")
    for key, val in margins.items():
        print(f"  {key:<46}{val:.2f}")
    print("MCD (dB, after DTW) to the target voice's parallel utterance")
    for key, vals in mcd.items():
        print(f"  {key:<46}" + "  ".join(f"{k} {v:.2f}" for k, v in vals.items()))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"corpus": args.corpus, "voices": voices, **counts,
                                               "typical_regions": regions, "results": results,
                                               "median_distance_over_cutoff": margins,
                                               "mcd_to_target": mcd}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
