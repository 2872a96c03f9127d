#!/usr/bin/env bash
# One lent GPU session's measurements, sized for the device tool's 15 minutes (one short call).
# Runs from the repo root on the GPU machine with its own python3/torch; writes logs and JSON
# under $OUT (or ./gpu-out). Each part has its own time limit so one failure or slow part does
# not cost the others; `python3 -c` prints the environment first.
set -u
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
PY=${PY:-python3}
$PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" 2>&1 | tee "$OUT/env.log"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,memory.total --format=csv 2>&1 | tee -a "$OUT/env.log"
part() {  # part NAME SECONDS ARGS...
  local name=$1 secs=$2; shift 2
  echo "=== $name (limit ${secs}s) $(date +%T)"
  timeout "$secs" $PY benchmarks/throughput_gpu.py --device cuda --json "$OUT/$name.json" "$@" \
    2>&1 | tee "$OUT/$name.log" | grep -v Warning
  echo "=== $name rc ${PIPESTATUS[0]}"
}
if [ "${1:-1}" = 1 ]; then
# 1. DCGAN against the plain loop, each lever, 32/64/128 px, with host-sync counts (issue 16's 3x)
part dcgan 130 --families dcgan --resolutions 32,64,128 --levers-list tf32,channels_last,bf16,fp16 \
  --steps 30 --warmup 10 --profile
# 2. StyleGAN2 and BigGAN images/s at 32/64/128 px (issues 13 and 15): baseline, bf16, tf32, all
part stylegan2 100 --families stylegan2 --resolutions 32,64,128 --levers-list tf32,bf16,channels_last \
  --steps 20 --warmup 8
part biggan 80 --families biggan --resolutions 32,64,128 --levers-list tf32,bf16,channels_last \
  --steps 20 --warmup 8
# 3. torch.compile, one resolution (its warm-up compiles G and D: tens of seconds each)
part compile 110 --families dcgan,biggan --resolutions 64 --levers-list compile,bf16 --steps 30 --warmup 10
fi
if [ "${1:-1}" = 2 ]; then  # the second call: 128 px for StyleGAN2 and BigGAN, a larger batch, host syncs
part sg2_128 110 --families stylegan2 --resolutions 128 --levers-list tf32,bf16 --steps 8 --warmup 4
part bg_128 70 --families biggan --resolutions 128 --levers-list tf32,bf16,channels_last --steps 10 --warmup 4
part dcgan_b512 45 --families dcgan --resolutions 64 --batch-size 512 --levers-list tf32,bf16,channels_last \
  --steps 20 --warmup 5
part sg2_profile 50 --families stylegan2 --resolutions 32 --levers-list "" --steps 10 --warmup 4 --profile
fi
if [ "${1:-1}" = 3 ]; then  # StyleGAN2 again after its CPU speed-up (unfused modulated conv, D filters first)
part sg2_unfused 150 --families stylegan2 --resolutions 32,64,128 --levers-list tf32,bf16 --steps 15 --warmup 5
fi
