#!/usr/bin/env bash
# Trains the project's default model (IDN, RGB, x2) on a rented GPU machine with Keras' JAX
# backend (those machines have JAX but no TensorFlow). Prepared and CPU-tested here first;
# run through the device tool from the repository root, with `carry: [".whl", ".gpu"]`:
#   .whl/  keras, optree, namex wheels for cp312 (see DEVELOPERS.md)
#   .gpu/data/datasets/{train291,Set5/HR}  copied from ../shared (ignored, never committed)
# Usage: bash tools/gpu/train_default.sh PRETRAIN_SECONDS META_SECONDS
# Stage 1: supervised pretraining from random initialisation (bicubic x2, train291), with
#          the schedule fitted to PRETRAIN_SECONDS. Stage 2: MLSR meta-training (Algorithm 1,
#          first order) on a mixture of degradations, stopped after META_SECONDS (its last
#          checkpoint is kept). Results are copied to $OUT (at most 8 files come back).
set -uo pipefail
pretrain_seconds=${1:-400}
meta_seconds=${2:-130}
source "$(dirname "$0")/setup_env.sh"
work=${WORK:-/tmp/work}; mkdir -p "$work"
python3 tools/train.py --backend jax --model idn --data train291 --patch 96 \
  --batch "${BATCH:-64}" --iterations 200000 --decay_steps 200000 --learning_rate 5e-4 \
  --pool_size "${POOL_SIZE:-60000}" --workers 14 --workdir "$work/pretrain" \
  --checkpoint_every 2000 --validate_every 5000 --log_every "${LOG_EVERY:-500}" \
  --max_seconds "$pretrain_seconds" --fit_iterations_to_time \
  --precision "${PRECISION:-float32}" 2>&1 | tee "$out/pretrain.log"
cp "$work/pretrain/model.weights.h5" "$out/idn_pretrained.weights.h5"
cp "$work/pretrain/log.jsonl" "$out/pretrain_log.jsonl"
if [ "$meta_seconds" -gt 0 ]; then
  # Killed by `timeout` when its time is up: the last checkpoint (every 100) is what we keep.
  timeout "$meta_seconds" python3 tools/meta_train.py --backend jax --model idn \
    --weights "$work/pretrain/model.weights.h5" --data train291 --patch 128 \
    --batch "${META_BATCH:-8}" --inner_steps 5 --alpha 0.1 --beta 1e-5 --degradation mixed \
    --iterations 100000 --workdir "$work/meta" --validate_every 500 --validation Set5 \
    --validation_size 128 --checkpoint_every 100 --log_every 50 2>&1 | tee "$out/meta.log"
  cp "$work/meta/model.weights.h5" "$out/idn_meta.weights.h5"
  cp "$work/meta/metrics.jsonl" "$out/meta_metrics.jsonl"
fi
ls -la "$out"
