#!/bin/bash
# Session 30: stage 4 recipe with second-order meta-gradients (128-px tasks), no anchor, from the idn_x2_blur shipped in sessions 26-30 (fixed_alpha_s26).
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set.
set -e
cd "$(dirname "$0")/../../.."
source results/meta_runs/second_order_s30/setup_monitor.sh
export TF_CPP_MIN_LOG_LEVEL=2
python tools/meta_train.py --model idn --weights results/meta_runs/fixed_alpha_s26/model.weights.h5 \
  --data train291 --degradation mixed --mixture_weights 0,1,1 --sigma_max 4 \
  --patch 128 --batch 4 --inner_steps 5 --alpha 0.3 --beta 5e-6 \
  --quantize_lr \
  --validation runs/s29_val --validation_size 0 \
  --validation_degradation gaussian:1.41421356,1.41421356,0 \
  --validation_degradation runs/s30/val_kernel_median.npy \
  --validate_every 200 --keep_validated_weights --checkpoint_every 25 --log_every 25 --seed 10 --order second \
  --parallel_tasks --iterations ${ITERS:-700} --workdir ${WORKDIR:-runs/s30/so128_noanchor}
