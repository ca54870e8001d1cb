#!/bin/bash
# Session 30 (runs/s30/ss_na.sh): model card stage 5 (step sizes learned for frozen weights) on the second-order,
# no-anchor snapshot 600.
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set,
# and WEIGHTS (the frozen network; the step_sizes_command.sh of anchor_s31, anchor010_s32 and
# anchor010_s33 set it).
set -e
cd "$(dirname "$0")/../../.."
source results/meta_runs/second_order_s30/setup_monitor.sh
export TF_CPP_MIN_LOG_LEVEL=2
python tools/meta_train.py --model idn --weights ${WEIGHTS:-results/meta_runs/second_order_s30/model.weights.h5} \
  --data train291 --degradation mixed --mixture_weights 0,1,1 --sigma_max 4 \
  --patch 128 --batch 4 --inner_steps 5 --alpha 0.3 --beta 0 \
  --learn_step_sizes --step_size_learning_rate 1e-2 --max_step_size 10 --quantize_lr \
  --validation runs/s29_val --validation_size 0 \
  --validation_degradation gaussian:1.41421356,1.41421356,0 \
  --validate_every 200 --keep_validated_weights --checkpoint_every 50 --log_every 25 --seed 11 \
  --parallel_tasks --iterations ${ITERS:-400} --workdir ${WORKDIR:-runs/s30/ss_na}
