"""ZSSR / MZSR network, and the `tiny` test network.

``zssr``: A. Shocher, N. Cohen, M. Irani, "Zero-Shot Super-Resolution using
Deep Internal Learning", CVPR 2018; the same 8-layer network is meta-trained in
J. W. Soh, S. Cho, N. I. Cho, "Meta-Transfer Learning for Zero-Shot
Super-Resolution" (MZSR), CVPR 2020.  The input is bicubic-upscaled (MATLAB
bicubic, inside the model), passed through ``conv1``..``conv8`` (3x3, 64
features, ReLU after the first 7) and added back (global residual).  Layer
``conv{k}`` holds MZSR's ``MODEL/conv{k}/{kernel,bias}`` unchanged.
With ``scale=1`` the input is taken as already upscaled (MZSR's own interface).

``tiny``: the same design with 2 layers of 8 features (443 parameters for RGB)
and a selectable activation (``tanh``/``softplus`` give smooth losses for
finite-difference gradient tests).  Layers ``conv1``, ``conv2``.
"""

import keras

from mlsr_tf.models import blocks
from mlsr_tf.models import registry


def _residual_convnet(name, scale, channels, filters, num_layers, kernel_size,
                      activation):
  blocks.check_positive_ints("filters/num_layers/kernel_size",
                             [filters, num_layers, kernel_size])
  if num_layers < 2:
    raise ValueError(f"num_layers must be >= 2, got {num_layers!r}")
  inputs = keras.Input((None, None, channels), name="lr")
  upscaled = blocks.BicubicUpsample(scale, name="bicubic", dtype=blocks.OUTPUT_DTYPE)(inputs)
  x = upscaled
  for k in range(1, num_layers):
    x = blocks.conv(filters, f"conv{k}", kernel_size=kernel_size)(x)
    x = blocks.get_activation(activation)(x)
  x = blocks.conv(channels, f"conv{num_layers}", kernel_size=kernel_size)(x)
  outputs = keras.layers.Add(name="sr", dtype=blocks.OUTPUT_DTYPE)([x, upscaled])
  return registry.make_model(inputs, outputs, name, dict(
      scale=scale, channels=channels, filters=filters, num_layers=num_layers,
      kernel_size=kernel_size, activation=activation))


@registry.register("zssr", default_channels=3)
def build_zssr(scale: int = 2, channels: int = 3, filters: int = 64,
               num_layers: int = 8, kernel_size: int = 3,
               activation: str = "relu") -> registry.SRModel:
  """ZSSR/MZSR network: bicubic upscale + residual of `num_layers` convs.

  Args:
    scale: upscale factor; 1 = input already bicubic-upscaled.
    channels: image channels.
    filters: hidden width (64).
    num_layers: convolutions (8); the last one is linear.
    kernel_size: square kernel size (3).
    activation: hidden activation ("relu").
  """
  return _residual_convnet("zssr", scale, channels, filters, num_layers,
                           kernel_size, activation)


@registry.register("tiny", default_channels=3)
def build_tiny(scale: int = 2, channels: int = 3, filters: int = 8,
               num_layers: int = 2, kernel_size: int = 3,
               activation: str = "tanh") -> registry.SRModel:
  """Tiny residual net for fast tests (443 parameters for RGB defaults).

  Same arguments as `build_zssr`; default activation "tanh" (smooth).
  """
  return _residual_convnet("tiny", scale, channels, filters, num_layers,
                           kernel_size, activation)
