"""Keras 3 super-resolution networks (keras.layers / keras.ops only: they run on TF and JAX).

Entry points: `build_model(name, scale=2, channels=None, **kwargs)`,
`list_models()`, `model_from_config(config)`; MATLAB-exact
`blocks.bicubic_upsample(x, scale)`.
"""

from mlsr_tf.models.registry import SRModel, build_model, list_models, model_from_config

__all__ = ["SRModel", "build_model", "list_models", "model_from_config"]
