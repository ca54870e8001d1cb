"""EnhanceNet-E (Sajjadi, Schölkopf, Hirsch, ICCV 2017), the MSE-trained EnhanceNet.

M. S. M. Sajjadi, B. Schölkopf, M. Hirsch, "EnhanceNet: Single Image
Super-Resolution Through Automated Texture Synthesis", ICCV 2017, Table 1:
a 3x3 conv (64, ReLU) on the LR image, 10 residual blocks (conv 3x3, ReLU,
conv 3x3, + skip), nearest-neighbour upsampling each followed by a conv 3x3
(64, ReLU), a conv 3x3 (64, ReLU) and a conv 3x3 to the image channels whose
output is added to the bicubic upscale of the input.  The paper's x4 uses two
x2 stages; here the scale is factored into x2 and x3 stages (x2: one, x3: one,
x4: two x2).

Layer names: ``conv_in``; ``res{b}_conv1``, ``res{b}_conv2`` for b = 0..9;
``upsample{k}_conv`` for each upsampling stage k = 0..; ``conv_hr``;
``conv_out``.
"""

import keras

from mlsr_tf.models import blocks
from mlsr_tf.models import registry


def upsampling_stages(scale: int) -> list[int]:
  """Factors `scale` into x2 and x3 stages (x4 = [2, 2]); ValueError if impossible."""
  stages, rest = [], scale
  for factor in (2, 3):
    while rest % factor == 0:
      stages.append(factor)
      rest //= factor
  if rest != 1 or not stages:
    raise ValueError(f"scale must be a product of 2s and 3s, got {scale!r}")
  return sorted(stages)


@registry.register("enet", default_channels=3)
def build_enet(scale: int = 2, channels: int = 3, filters: int = 64,
               num_blocks: int = 10) -> registry.SRModel:
  """EnhanceNet-E.

  Args:
    scale: upscale factor, a product of 2s and 3s.
    channels: image channels.
    filters: feature width (64).
    num_blocks: residual blocks (10).
  """
  blocks.check_positive_ints("filters/num_blocks", [filters, num_blocks])
  stages = upsampling_stages(scale)
  inputs = keras.Input((None, None, channels), name="lr")
  x = blocks.conv(filters, "conv_in", activation="relu")(inputs)
  for b in range(num_blocks):
    y = blocks.conv(filters, f"res{b}_conv1", activation="relu")(x)
    y = blocks.conv(filters, f"res{b}_conv2")(y)
    x = keras.layers.Add()([x, y])
  for k, factor in enumerate(stages):
    x = keras.layers.UpSampling2D(factor, interpolation="nearest")(x)
    x = blocks.conv(filters, f"upsample{k}_conv", activation="relu")(x)
  x = blocks.conv(filters, "conv_hr", activation="relu")(x)
  residual = blocks.conv(channels, "conv_out")(x)
  upscaled = blocks.BicubicUpsample(scale, name="bicubic", dtype=blocks.OUTPUT_DTYPE)(inputs)
  outputs = keras.layers.Add(name="sr", dtype=blocks.OUTPUT_DTYPE)([residual, upscaled])
  return registry.make_model(inputs, outputs, "enet", dict(
      scale=scale, channels=channels, filters=filters, num_blocks=num_blocks))
