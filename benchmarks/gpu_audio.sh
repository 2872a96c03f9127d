#!/usr/bin/env bash
# The audio presets at their full budgets on a lent GPU (issue 18): hifigan-speech and
# cyclegan-vc-speech, 6,000 steps each, trained side by side on one GPU from a make-speech corpus
# carried as FLAC (CORPUS, default .speechflac; FLAC of the 16-bit WAVs is lossless). Their
# step-based quality is then measured on the CPU (`python benchmarks/audio.py --reuse`). The runs
# come back under $OUT as a few files (config, metrics, the last weights; the vocoder's optimizer
# state too, so it can be resumed on the CPU if the time limit stops it early), split to <= 15 MB.
# The corpus (95 MB as FLAC) is over the device tool's 64 MiB per call: the 2026-12-04 lease
# carried one voice per call and copied each to /tmp/corpus there (kept while the machine stays
# warm), then ran this with CORPUS=/tmp/corpus LIMIT=510. The conversion run's state.pt (87 MB,
# over the 64 MiB a call returns) stays there: fetch it in a further call to resume that run.
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
CORPUS=${CORPUS:-.speechflac}
LIMIT=${LIMIT:-420}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu EXTRA="train.steps=4" checks the script here
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
for v in en+m3 en+f3; do
  [ -d "$CORPUS/$v/train" ] || { echo "missing $CORPUS/$v/train"; ls "$CORPUS"; exit 1; }
done
train() {  # NAME PRESET
  local t0=$SECONDS
  timeout "$LIMIT" $PY -m ganforge train "$2" --out "runs/gpu-$1" --quiet "data.name=audio:$CORPUS" \
    "train.device=$DEVICE" train.checkpoint_every=500 train.sample_every=3000 ${EXTRA:-} > "$OUT/$1.log" 2>&1
  echo "$1 rc $? after $((SECONDS - t0)) s: $(tail -c 300 "runs/gpu-$1/metrics.jsonl" | tail -1 | cut -c1-200)"
}
train voc hifigan-speech & train vc cyclegan-vc-speech & wait
pack() {  # NAME STATE(0/1)
  local run=runs/gpu-$1 step; step=$(cat "$run/checkpoints/latest" 2>/dev/null) || return
  local files=("$run/config.yaml" "$run/metrics.jsonl" "$run/checkpoints/latest" "$run/checkpoints/$step/weights.safetensors")
  [ "$2" = 1 ] && files+=("$run/checkpoints/$step/state.pt")
  tar cf - "${files[@]}" | split -b 15M - "$OUT/$1.tar.part-"
  echo "$1: packed $step"; ls -la "$OUT" | grep "$1.tar"
}
pack voc 1; pack vc 0
