#!/bin/bash
# Session 31 (runs/s31/ss_b.sh): model card stage 5's command (step sizes learned for frozen
# weights, bounded by 10) on the anchored snapshot; step_sizes.json here is iteration 400's
# (validated/iteration_000400.step_sizes.json). Then the kernel-width band: zero steps from
# kernel_sigma 1.69 up (held-out, adaptation lost there with every matrix tried; WORKSPACE.md
# section 11, session 31).
# The same command as second_order_s30/step_sizes_command.sh, for this folder's weights.
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set.
WEIGHTS=results/meta_runs/anchor_s31/model.weights.h5 WORKDIR=${WORKDIR:-runs/s31/ss_b} \
  exec bash "$(dirname "$0")/../second_order_s30/step_sizes_command.sh"
