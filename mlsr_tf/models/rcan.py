"""RCAN: Residual Channel Attention Network (Zhang et al., ECCV 2018).

Y. Zhang, K. Li, K. Li, L. Wang, B. Zhong, Y. Fu, "Image Super-Resolution Using
Very Deep Residual Channel Attention Networks", ECCV 2018.  Defaults are the
paper's: 10 residual groups x 20 RCABs, 64 features, reduction 16.

Like the official PyTorch code, the network works on pixel values in
[0, rgb_range] (255) with the DIV2K RGB mean subtracted; the model here takes
[0, 1] input and returns [0, 1]-scaled output, doing the scaling and mean shift
internally (``MeanShift`` layers, no weights), so official weights load as is.

Layer names, and the official PyTorch state-dict keys they hold (conv weight
(out, in, kh, kw) -> Keras kernel (kh, kw, in, out): transpose(2, 3, 1, 0);
biases unchanged):

=============================  ===============================================
Keras layer                    PyTorch RCAN key (``.weight`` / ``.bias``)
=============================  ===============================================
head_conv                      head.0
group{g}_block{b}_conv1        body.{g}.body.{b}.body.0
group{g}_block{b}_conv2        body.{g}.body.{b}.body.2
group{g}_block{b}_ca_conv1     body.{g}.body.{b}.body.3.conv_du.0   (1x1)
group{g}_block{b}_ca_conv2     body.{g}.body.{b}.body.3.conv_du.2   (1x1)
group{g}_conv                  body.{g}.body.{num_blocks}
body_conv                      body.{num_groups}
upsample{k}_conv               tail.0.{2k}  (x2, x3: k = 0; x4: k = 0, 1)
tail_conv                      tail.1
=============================  ===============================================

(``sub_mean`` / ``add_mean`` in the state dict are fixed constants, rebuilt
from ``rgb_mean`` and ``rgb_range``.)  Each upsampling stage is a conv to
``factor**2 * filters`` channels and a channel-major pixel shuffle
(`blocks.pixel_shuffle`, = ``nn.PixelShuffle``).
"""

from typing import Sequence

import keras
from keras import ops

from mlsr_tf.models import blocks
from mlsr_tf.models import registry

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)


@keras.saving.register_keras_serializable(package="mlsr_tf")
class MeanShift(keras.layers.Layer):
  """y = x * scale + offset[channel] (fixed constants, no weights)."""

  def __init__(self, scale: float, offset: Sequence[float], **kwargs):
    super().__init__(**kwargs)
    self.scale = float(scale)
    self.offset = [float(v) for v in offset]

  def call(self, inputs):
    offset = ops.convert_to_tensor(self.offset, dtype=inputs.dtype)
    return inputs * self.scale + offset

  def compute_output_shape(self, input_shape):
    return input_shape

  def get_config(self):
    return {**super().get_config(), "scale": self.scale, "offset": self.offset}


def _rcab(x, prefix, filters, reduction):
  """Residual channel attention block."""
  y = blocks.conv(filters, f"{prefix}_conv1", activation="relu")(x)
  y = blocks.conv(filters, f"{prefix}_conv2")(y)
  attention = keras.layers.GlobalAveragePooling2D(keepdims=True)(y)
  attention = blocks.conv(filters // reduction, f"{prefix}_ca_conv1",
                          kernel_size=1, activation="relu")(attention)
  attention = blocks.conv(filters, f"{prefix}_ca_conv2", kernel_size=1,
                          activation="sigmoid")(attention)
  y = keras.layers.Multiply()([y, attention])
  return keras.layers.Add()([x, y])


def upsampling_factors(scale: int) -> list[int]:
  """RCAN's upsampler stages: powers of two as x2 steps, or a single x3."""
  if scale == 3:
    return [3]
  if scale >= 2 and scale & (scale - 1) == 0:
    return [2] * (scale.bit_length() - 1)
  raise ValueError(f"RCAN supports scale 3 or a power of 2, got {scale!r}")


@registry.register("rcan", default_channels=3)
def build_rcan(scale: int = 2, channels: int = 3, filters: int = 64,
               num_groups: int = 10, num_blocks: int = 20,
               reduction: int = 16, rgb_range: float = 255.0,
               rgb_mean: Sequence[float] | None = None) -> registry.SRModel:
  """RCAN.

  Args:
    scale: 2, 3, 4 (or 8).
    channels: image channels.
    filters: feature width (64).
    num_groups: residual groups (10).
    num_blocks: RCABs per group (20).
    reduction: channel-attention reduction (16).
    rgb_range: pixel range the weights were trained on (255).
    rgb_mean: per-channel mean in [0, 1] subtracted at the input; None = the
      DIV2K mean for 3 channels, 0 otherwise.
  """
  blocks.check_positive_ints("filters/num_groups/num_blocks/reduction",
                             [filters, num_groups, num_blocks, reduction])
  if filters % reduction:
    raise ValueError(f"filters must be divisible by reduction, got "
                     f"filters={filters!r}, reduction={reduction!r}")
  factors = upsampling_factors(scale)
  if rgb_mean is None:
    rgb_mean = DIV2K_RGB_MEAN if channels == 3 else (0.0,) * channels
  rgb_mean = [float(v) for v in rgb_mean]
  if len(rgb_mean) != channels:
    raise ValueError(f"rgb_mean needs {channels} values, got {rgb_mean!r}")
  inputs = keras.Input((None, None, channels), name="lr")
  x = MeanShift(rgb_range, [-rgb_range * m for m in rgb_mean],
                name="sub_mean")(inputs)
  head = blocks.conv(filters, "head_conv")(x)
  x = head
  for g in range(num_groups):
    group_input = x
    for b in range(num_blocks):
      x = _rcab(x, f"group{g}_block{b}", filters, reduction)
    x = blocks.conv(filters, f"group{g}_conv")(x)
    x = keras.layers.Add()([group_input, x])
  x = blocks.conv(filters, "body_conv")(x)
  x = keras.layers.Add()([head, x])
  for k, factor in enumerate(factors):
    x = blocks.conv(factor * factor * filters, f"upsample{k}_conv")(x)
    x = blocks.PixelShuffle(factor)(x)
  x = blocks.conv(channels, "tail_conv")(x)
  outputs = MeanShift(1.0 / rgb_range, rgb_mean, name="add_mean")(x)
  return registry.make_model(inputs, outputs, "rcan", dict(
      scale=scale, channels=channels, filters=filters, num_groups=num_groups,
      num_blocks=num_blocks, reduction=reduction, rgb_range=float(rgb_range),
      rgb_mean=rgb_mean))
