#!/usr/bin/env bash
# hifigan-speech against vocos-speech at the presets' step budget (6,000 steps) on a lent GPU,
# seeds 0-2, all six runs side by side on one GPU from a make-speech corpus carried as FLAC
# (lossless), each stopped by `timeout` (SIGTERM: the trainer checkpoints) if LIMIT seconds come
# first. Their quality is measured afterwards on the CPU (benchmarks/vocoders.py --reuse; unpack
# the parts with `cat NAME.tar.part-* | tar xf -` and pass --out vruns).
# Runs live in /tmp/vruns (kept while the machine stays warm). Each run (config, metrics, last
# weights) is packed to /tmp/vpack as <= 15 MB parts; this call returns the three HiFi-GAN runs,
# and `PACK=vocos-seed0 bash benchmarks/gpu_vocoders.sh` in each later call one vocos run (59 MB
# at vocos_dim 512: one per call, under the 64 MiB a call returns). The corpus (84 MB) is over the 64 MiB a
# call carries: carry one voice per call into CORPUS (default /tmp/corpus) first.
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
if [ -n "${PACK:-}" ]; then cp /tmp/vpack/"$PACK".tar.part-* "$OUT"/ && ls -la "$OUT"; exit; fi  # PACK=vocos-seed0
CORPUS=${CORPUS:-/tmp/corpus}
LIMIT=${LIMIT:-450}
SEEDS=${SEEDS:-0 1 2}
DEVICE=${DEVICE:-cuda}  # DEVICE=cpu LIMIT=30 EXTRA="train.steps=4" checks the script here
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
for v in en+m3 en+f3; do
  [ -d "$CORPUS/$v/train" ] || { echo "missing $CORPUS/$v/train"; ls "$CORPUS"; exit 1; }
done
RUNS=/tmp/vruns; mkdir -p "$RUNS" /tmp/vpack
train() {  # NAME PRESET SEED
  local t0=$SECONDS run=$RUNS/$1-seed$3
  timeout "$LIMIT" $PY -m ganforge train "$2" --out "$run" --quiet --force "data.name=audio:$CORPUS" \
    "train.seed=$3" "train.device=$DEVICE" train.checkpoint_every=500 train.sample_every=100000 \
    ${EXTRA:-} > "$OUT/$1-seed$3.log" 2>&1
  echo "$1 seed $3 rc $? after $((SECONDS - t0)) s: $(tail -1 "$run/metrics.jsonl" | cut -c1-160)"
}
for s in $SEEDS; do train hifigan hifigan-speech "$s" & train vocos vocos-speech "$s" & done
wait
pack() {  # RUN: its last checkpoint's weights with config and metrics, as <= 15 MB parts
  local run=$RUNS/$1 step
  step=$(cat "$run/checkpoints/latest" 2>/dev/null) || return
  rm -f /tmp/vpack/"$1".tar.part-*
  # state.pt without the optimizer state (which would not fit): config and step, enough to load
  $PY -c "import sys, torch, yaml; r, s = sys.argv[1:]; torch.save({'config': yaml.safe_load(open(r + '/config.yaml')), 'step': int(s[5:])}, f'{r}/checkpoints/{s}/state-light.pt')" "$run" "$step"
  tar cf - -C /tmp --transform 's,state-light.pt$,state.pt,' "vruns/$1/config.yaml" "vruns/$1/metrics.jsonl" \
    "vruns/$1/checkpoints/latest" "vruns/$1/checkpoints/$step/weights.safetensors" \
    "vruns/$1/checkpoints/$step/state-light.pt" | split -b 15M - /tmp/vpack/"$1".tar.part-
}
for run in "$RUNS"/*-seed*; do pack "$(basename "$run")"; done
ls -la /tmp/vpack
cp /tmp/vpack/hifigan-seed*.tar.part-* "$OUT"/
nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null | tail -1
