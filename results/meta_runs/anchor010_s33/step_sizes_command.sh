#!/bin/bash
# Session 33 (runs/s33/cand.sh, second stage): model card stage 5's command (step sizes learned
# for frozen weights, bounded by 10) on this folder's weights; step_sizes.json here is iteration
# 400's (validated/iteration_000400.step_sizes.json). Then the kernel-width band: zero steps from
# kernel_sigma 1.69 up (heavy_blur_zero.step_sizes.json; held-out, adaptation lost there:
# WORKSPACE.md section 11, session 32).
# The same command as second_order_s30/step_sizes_command.sh, for this folder's weights.
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set.
WEIGHTS=results/meta_runs/anchor010_s33/model.weights.h5 WORKDIR=${WORKDIR:-runs/s33/E_ss} \
  exec bash "$(dirname "$0")/../second_order_s30/step_sizes_command.sh"
