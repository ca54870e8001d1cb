#!/bin/bash
# Session 32 (runs/s32/cand.sh A 0.1 100): the second-order, no-anchor network of session 30
# (results/meta_runs/second_order_s30, iteration 600) meta-trained 100 iterations more with a
# small supervised anchor (weight 0.10 on train291 patches blurred as the tasks), fresh Adam:
# anchor_s31's command with --anchor_weight 0.1 instead of 0.25, run to its end (100).
# model.weights.h5 here is iteration 100's (also validated/iteration_000100.weights.h5).
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set.
ANCHOR=0.1 ITERS=${ITERS:-100} WORKDIR=${WORKDIR:-runs/s32/A} \
  exec bash "$(dirname "$0")/../anchor_s31/command.sh"
