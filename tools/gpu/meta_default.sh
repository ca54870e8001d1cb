#!/usr/bin/env bash
# Meta-trains the shipped default (pretrained/idn_x2.weights.h5, stage 1) on a rented GPU with
# Keras' JAX backend: the owed stage 2 of issue 5, without redoing stage 1. Optionally a
# kernel-aware supervised stage first (KERNEL_SECONDS > 0: Gaussian-blurred LR, as MZSR's
# large-scale stage). Prepared and CPU-tested here; run through the device tool from the
# repository root with `carry: [".whl", ".gpu"]` (see tools/gpu/train_default.sh for both).
# Usage: bash tools/gpu/meta_default.sh META_SECONDS [KERNEL_SECONDS]
# Every validation (Set5 centre crops: bicubic, and Gaussian sigma 2.0 with direct
# subsampling) keeps its weights, so the snapshot that meets both issue-5 targets can be
# chosen afterwards; they come back in one tar file (the device tool returns few files).
# Environment overrides (defaults = the paper's beta, a bicubic-heavy mixture):
#   ALPHA=1.0 BETA=1e-6 MIXTURE=2,1,1 PATCH=128 META_BATCH=8 VALIDATE_EVERY=500
#   PRECISION=float32 (kernel stage; mixed_bfloat16 on H100/H200)
set -uo pipefail
meta_seconds=${1:-300}
kernel_seconds=${2:-0}
source "$(dirname "$0")/setup_env.sh"
work=${WORK:-/tmp/work}; mkdir -p "$work"
start=pretrained/idn_x2.weights.h5
if [ "$kernel_seconds" -gt 0 ]; then
  python3 tools/train.py --backend jax --model idn --weights "$start" --data train291 \
    --degradation gaussian --patch 96 --batch "${BATCH:-64}" --iterations 200000 --decay_steps 200000 \
    --learning_rate 1e-4 --pool_size "${POOL_SIZE:-60000}" --workers 14 \
    --workdir "$work/kernel" --checkpoint_every 2000 --validate_every 1000000 \
    --log_every "${LOG_EVERY:-500}" --max_seconds "$kernel_seconds" --fit_iterations_to_time \
    --precision "${PRECISION:-float32}" \
    2>&1 | tee "$out/kernel.log"
  cp "$work/kernel/model.weights.h5" "$out/idn_kernel.weights.h5"
  start="$work/kernel/model.weights.h5"
fi
# Killed by `timeout` when its time is up: the checkpoints and kept snapshots survive.
timeout "$meta_seconds" python3 tools/meta_train.py --backend jax --model idn \
  --weights "$start" --data train291 --patch "${PATCH:-128}" --batch "${META_BATCH:-8}" \
  --inner_steps 5 --alpha "${ALPHA:-1.0}" --beta "${BETA:-1e-6}" --degradation mixed \
  --mixture_weights "${MIXTURE:-2,1,1}" --iterations 1000000 --workdir "$work/meta" \
  --validate_every "${VALIDATE_EVERY:-500}" --validation Set5 --validation_size 256 \
  --validation_steps 10 --validation_degradation bicubic \
  --validation_degradation gaussian:2.0,2.0,0 --keep_validated_weights \
  --checkpoint_every 100 --log_every 50 2>&1 | tee "$out/meta.log"
cp "$work/meta/metrics.jsonl" "$out/meta_metrics.jsonl"
# model.weights.h5 exists only once a checkpoint was written; take what there is.
(cd "$work/meta" && tar -cf "$out/meta_validated.tar" $(ls -d validated model.weights.h5 2>/dev/null))
ls -la "$out"
