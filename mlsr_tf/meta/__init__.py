"""MLSR's meta-learning: inner loop, meta-training (Algorithm 1), adaptation (Algorithm 2)."""
