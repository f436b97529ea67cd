#!/usr/bin/env bash
# KPDP v3 generator training on a lent GPU (the device tool's `run`), one command, results under $OUT.
# Carry: .gpu/train_128.npz (python -m kpdp pack, LFW devtrain) and .gpu/balance.npz
# (scripts/gender_weights.py); both are git-ignored. It resumes from .gpu/v3/last.pt when carried,
# else starts from the shipped v3 weights (kpdp/assets/generator_kpdp_v3.safetensors) when present,
# else from the DeepPrivacy-style weights grown into the v3 condition; its discriminator from the committed
# kpdp/assets/discriminator_kpdp_v3.safetensors when present (the last chunk's critic; else from scratch).
# Both networks come back under $OUT: commit them together, so the next chunk resumes on any machine.
# G learns at a fifth of D's rate and foreign samples keep the source's tone (chunk 4 on the CPU: a
# fine-tuned G under a fresh D at lr 1e-4 collapsed by step 446, and every checkpoint drew dark skin lighter).
#   run: bash scripts/gpu_train_v3.sh MINUTES [extra kpdp-train arguments]   (CPU check: DEVICE=cpu STEPS=2)
#   env: OUT, DEVICE, STEPS, BATCH, DATA, BALANCE (empty: uniform), WORK (checkpoint folder), SKIP_INSTALL=1;
#   tests/scripts/test_gpu_train_v3.py runs it on the CPU on 16 sample crops
# Terms measured or prepared since, to pass as extra arguments: --geometry-weight 10 (chunk 7: the drawn
# landmarks follow the condition, expression does not), --diversity-weight W (two draws of one geometry
# pushed apart in FaceNet space; chunk 8 on the CPU, W = 1: same-photo linkage -0.32 against a control, but
# bought with a mottled texture on the faces: try W = 0.25 here, and look at the faces first).
# Data: bash scripts/prepare_v3_data.sh (writes both carried files into .gpu/).
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-7}; shift || true
out=${OUT:-/tmp/gpu-out}; work=${WORK:-.gpu/v3}; mkdir -p "$out" "$work"
device=${DEVICE:-cuda}; steps=${STEPS:-40000}; batch=${BATCH:-32}
data=${DATA:-.gpu/train_128.npz}; balance=${BALANCE-.gpu/balance.npz}  # BALANCE= (empty): uniform sampling
b_args=(); [ -n "$balance" ] && b_args=(--balance "$balance")
init=kpdp/assets/generator_kpdp_v3.safetensors
[ -f "$init" ] || init=kpdp/assets/generator_deepprivacy.safetensors
d_init=kpdp/assets/discriminator_kpdp_v3.safetensors
d_args=(); [ -f "$d_init" ] && [ "$init" = kpdp/assets/generator_kpdp_v3.safetensors ] && d_args=(--init-discriminator "$d_init")
[ -n "${SKIP_INSTALL:-}" ] || pip install -q -c constraints.txt -e . 2>&1 | tail -1 || true
python -m kpdp train --data "$data" --out "$work" --condition sparse7+dense68 --mask ellipse \
  --init-from "$init" "${d_args[@]}" --steps "$steps" --d-warmup 200 --batch "$batch" --lr 1e-4 --g-lr 2e-5 --tone-weight 5 \
  --foreign-p 0.5 --id-weight 1.0 --id-margin 0.3 --l1-weight 2 --ema 0.999 --seed 0 --ckpt-every 500 --sample-every 500 --device "$device" \
  "${b_args[@]}" --minutes "$minutes" "$@" 2>&1 | tr '\r' '\n' | grep -v "it/s\]$" | tail -20
python -m kpdp export-generator --ckpt "$work/last.pt" --out "$out/generator_kpdp_v3.safetensors" \
  --condition sparse7+dense68 --command "bash scripts/gpu_train_v3.sh $minutes (device $device, batch $batch)"
python -m kpdp export-discriminator --ckpt "$work/last.pt" --out "$out/discriminator_kpdp_v3.safetensors" \
  --condition sparse7+dense68 --command "bash scripts/gpu_train_v3.sh $minutes (device $device, batch $batch)" \
  --pairs-with "generator_kpdp_v3.safetensors of the same command (its EMA)"
cp "$work/losses.csv" "$out/losses.csv"
ls -t "$work"/samples_*.png | head -1 | xargs -I{} cp {} "$out/samples_last.png"
ls -la "$out"
