#!/bin/bash
# Session 31 (runs/s31/anchor.sh): the second-order, no-anchor network of session 30
# (results/meta_runs/second_order_s30, iteration 600) meta-trained 100 iterations more with a
# small supervised anchor (weight 0.25 on train291 patches blurred as the tasks), fresh Adam.
# It ran with --iterations 400 and was stopped after 275; model.weights.h5 here is its validated
# snapshot at iteration 100 (validated/iteration_000100.weights.h5), the best on its monitor.
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set,
# and ANCHOR (the anchor weight; anchor010_s32's command.sh sets 0.1), INIT (the starting
# weights), SEED and VALIDATE_EVERY (anchor010_s33's command.sh sets all three).
set -e
cd "$(dirname "$0")/../../.."
source results/meta_runs/second_order_s30/setup_monitor.sh
export TF_CPP_MIN_LOG_LEVEL=2
python tools/meta_train.py --model idn --weights ${INIT:-results/meta_runs/second_order_s30/model.weights.h5} \
  --data train291 --degradation mixed --mixture_weights 0,1,1 --sigma_max 4 \
  --patch 128 --batch 4 --inner_steps 5 --alpha 0.3 --beta 5e-6 \
  --anchor_data train291 --anchor_weight ${ANCHOR:-0.25} --anchor_degradation mixed \
  --quantize_lr \
  --validation runs/s29_val --validation_size 0 \
  --validation_degradation gaussian:1.41421356,1.41421356,0 \
  --validation_degradation runs/s30/val_kernel_median.npy \
  --validate_every ${VALIDATE_EVERY:-100} --keep_validated_weights --checkpoint_every 25 --log_every 25 --seed ${SEED:-31} --order second \
  --parallel_tasks --iterations ${ITERS:-400} --workdir ${WORKDIR:-runs/s31/anchor025}
