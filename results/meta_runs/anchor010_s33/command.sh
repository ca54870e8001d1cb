#!/bin/bash
# Session 33 (runs/s33/cand.sh E 0.1 300 results/meta_runs/anchor010_s32/model.weights.h5 33):
# anchor010_s32's network (shipped in session 32) meta-trained 300 iterations more with the same
# small anchor (weight 0.10), a fresh Adam and seed 33: anchor_s31's command with these settings,
# run to its end (300). model.weights.h5 here is iteration 300's (also
# validated/iteration_000300.weights.h5).
# Run from anywhere, with the project's requirements installed; WORKDIR and ITERS may be set.
INIT=results/meta_runs/anchor010_s32/model.weights.h5 SEED=33 VALIDATE_EVERY=300 ANCHOR=0.1 ITERS=${ITERS:-300} \
  WORKDIR=${WORKDIR:-runs/s33/E} exec bash "$(dirname "$0")/../anchor_s31/command.sh"
