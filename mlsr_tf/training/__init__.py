"""Training stage: supervised pretraining, meta-training (Algorithm 1), checkpoints."""
