#!/usr/bin/env bash
# Trains the project's default model (IDN, RGB, x2) on a rented GPU machine with Keras' JAX
# backend (those machines have JAX but no TensorFlow). Prepared and CPU-tested here first;
# run through the device tool from the repository root, with `carry: [".whl", ".gpu"]`:
#   .whl/  keras, optree, namex wheels for cp312 (see DEVELOPERS.md)
#   .gpu/data/datasets/{train291,Set5/HR}  copied from ../shared (ignored, never committed)
# Usage: bash tools/gpu/train_default.sh PRETRAIN_SECONDS META_SECONDS
# Results are copied to $OUT (at most 8 files come back).
set -uo pipefail
pretrain_seconds=${1:-420}
meta_seconds=${2:-90}
out=${OUT:-/tmp/out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax MLSR_DATA="$PWD/.gpu/data" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
nvidia-smi -L; python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"
work=/tmp/work; mkdir -p "$work"
python3 tools/train.py --backend jax --model idn --data train291 --patch 96 --batch 32 \
  --iterations "${PRETRAIN_ITERATIONS:-60000}" --learning_rate 4e-4 --pool_size 60000 --workers 14 \
  --workdir "$work/pretrain" --checkpoint_every 2000 --validate_every 5000 --log_every 1000 \
  --max_seconds "$pretrain_seconds" --fit_iterations_to_time 2>&1 | tee "$out/pretrain.log"
cp "$work/pretrain/model.weights.h5" "$out/idn_pretrained.weights.h5"
cp "$work/pretrain/log.jsonl" "$out/pretrain_log.jsonl"
if [ "$meta_seconds" -gt 0 ] && [ -f tools/meta_train.py ]; then
  python3 tools/meta_train.py --backend jax --model idn \
    --weights "$work/pretrain/model.weights.h5" --data train291 --patch 128 --batch 8 \
    --inner_steps 5 --degradation mixed --iterations "${META_ITERATIONS:-3000}" \
    --workdir "$work/meta" --validate_every 500 --validation Set5 \
    --max_seconds "$meta_seconds" 2>&1 | tee "$out/meta.log"
  cp "$work/meta/model.weights.h5" "$out/idn_meta.weights.h5" 2>/dev/null
  cp "$work/meta/log.jsonl" "$out/meta_log.jsonl" 2>/dev/null
fi
ls -la "$out"
