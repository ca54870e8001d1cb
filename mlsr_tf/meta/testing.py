"""Tiny SR networks for tests of the meta-learning code (seconds on CPU)."""

import keras


def tiny_sr_net(scale: int = 2, channels: int = 1, features: int = 4,
                activation: str = "tanh", dtype: str = "float32",
                seed: int = 0) -> keras.Model:
  """conv3x3 -> activation -> conv3x3 (scale^2 * C) -> depth_to_space, plus nearest upscale.

  ``tanh`` keeps the network smooth, so finite differences of second-order
  meta-gradients are accurate (ReLU kinks would spoil them).
  """
  init = keras.initializers.GlorotUniform(seed=seed)
  inputs = keras.Input((None, None, channels), dtype=dtype)
  hidden = keras.layers.Conv2D(features, 3, padding="same", activation=activation,
                               kernel_initializer=init, bias_initializer="zeros",
                               dtype=dtype)(inputs)
  residual = keras.layers.Conv2D(scale * scale * channels, 3, padding="same",
                                 kernel_initializer=keras.initializers.GlorotUniform(seed + 1),
                                 bias_initializer=keras.initializers.Constant(0.01),
                                 dtype=dtype)(hidden)
  residual = keras.layers.Lambda(lambda t: keras.ops.depth_to_space(t, scale),
                                 dtype=dtype)(residual)
  base = keras.layers.UpSampling2D(scale, dtype=dtype)(inputs)
  outputs = keras.layers.Add(dtype=dtype)([base, residual])
  return keras.Model(inputs, outputs, name="tiny_sr_net")
