"""Keras 3 super-resolution networks (keras.layers / keras.ops only: they run on TF and JAX)."""
