#!/usr/bin/env bash
# The KPDP v3 generator's training data, rebuilt from LFW devtrain (git-ignored, so a new machine has none):
# dlib's 68 landmarks of every devtrain image, the aligned 128 px crops that `kpdp train --data` reads,
# and the gender-balanced sampling weights that `--balance` reads (scripts/gender_weights.py; 1,600 crops
# labelled, seed 0: the set every shipped v3 chunk since step 249 drew from).
#   run: bash scripts/prepare_v3_data.sh [LFW_ROOT (../shared/data/lfw)] [OUT (.gpu)]
# Then: bash scripts/gpu_train_v3.sh MINUTES (carry .gpu/train_128.npz and .gpu/balance.npz), or the same
# `python -m kpdp train --data OUT/train_128.npz --balance OUT/balance.npz ...` on the CPU.
# On 2 CPU cores: landmarks 4.5 min, crops 10 s, weights 1.5 min. Each step is skipped when its file exists.
# Relative paths are read from the directory it is called from; the defaults from the repository root.
set -euo pipefail
here=$(pwd)
cd "$(dirname "$0")/.."
abs() { case "$1" in /*) echo "$1" ;; *) echo "$here/$1" ;; esac; }
root=$([ $# -ge 1 ] && abs "$1" || echo ../shared/data/lfw); out=$([ $# -ge 2 ] && abs "$2" || echo .gpu)
mkdir -p "$out"
[ -f "$out/landmarks_devtrain.npz" ] || python -m kpdp landmarks --dataset lfw --root "$root" --split devtrain \
  --out "$out/landmarks_devtrain.npz"
[ -f "$out/train_128.npz" ] || python -m kpdp pack --landmarks "$out/landmarks_devtrain.npz" --root "$root" \
  --split devtrain --out "$out/train_128.npz"
[ -f "$out/balance.npz" ] || python scripts/gender_weights.py --data "$out/train_128.npz" --n 1600 \
  --out "$out/balance.npz"
ls -la "$out"
