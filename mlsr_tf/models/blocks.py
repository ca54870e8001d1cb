"""Building blocks shared by the SR networks (keras.layers / keras.ops only).

* `bicubic_upsample(x, scale)`: MATLAB ``imresize(x, scale, 'bicubic')`` for an
  integer upscale, in keras.ops (differentiable, dynamic H and W).
* `pixel_shuffle(x, scale)`: sub-pixel rearrangement in the *channel-major*
  order of PyTorch ``nn.PixelShuffle`` and of the IDN TensorFlow release's
  ``PS(..., color=True)``: input channel ``c * s*s + dy * s + dx`` becomes output
  channel ``c`` at sub-pixel ``(dy, dx)``.  (Plain ``tf.nn.depth_to_space`` uses
  ``(dy * s + dx) * C + c`` instead; the two agree only for C == 1.)
* Layers wrapping them (`BicubicUpsample`, `PixelShuffle`) so functional models
  can use them, and `get_activation` for the models' activation options.
"""

from typing import Sequence

import keras
import numpy as np
from keras import ops


# The bicubic upscale of the input and the final sum stay float32 under a mixed policy:
# bfloat16 keeps 8 significant bits, so an image near 1.0 would be rounded by up to 2 of
# 255 levels, while the residual added to it is small and tolerates 16-bit compute.
OUTPUT_DTYPE = "float32"


def _keys_cubic(distance: np.ndarray) -> np.ndarray:
  """Keys' cubic convolution kernel with a = -0.5 (MATLAB imresize 'bicubic')."""
  d = np.abs(distance)
  return np.where(
      d <= 1, 1.5 * d**3 - 2.5 * d**2 + 1,
      np.where(d < 2, -0.5 * d**3 + 2.5 * d**2 - 4 * d + 2, 0.0))


def bicubic_phase_taps(scale: int) -> list[tuple[int, np.ndarray]]:
  """Per output phase, the first input offset and the 4 bicubic weights.

  For an integer upscale s, MATLAB maps output pixel ``j = s*i + r`` (0-based)
  to input coordinate ``x = i + t_r`` with ``t_r = (r + 0.5) / s - 0.5``, and
  weights input pixels ``floor(x) - 1 .. floor(x) + 2`` by the cubic kernel of
  their distance.  So each phase r uses the 4 inputs ``i + offset_r + k``,
  ``k = 0..3``, with fixed weights.

  Returns:
    A list of ``(offset_r, weights_r)`` for r = 0..s-1 (weights float64, sum 1).
  """
  taps = []
  for r in range(scale):
    t = (r + 0.5) / scale - 0.5
    offset = int(np.floor(t)) - 1
    positions = offset + np.arange(4)
    weights = _keys_cubic(t - positions)
    taps.append((offset, weights / weights.sum()))
  return taps


def is_positive_int(value) -> bool:
  """True for ints (Python or NumPy, not bool) >= 1."""
  return (isinstance(value, (int, np.integer)) and not isinstance(value, bool)
          and value >= 1)


def _check_scale(scale) -> int:
  if not is_positive_int(scale):
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  return int(scale)


def _upsample_axis(x, scale: int, axis: int):
  """Bicubic upscale of NHWC `x` along `axis` (1 = H, 2 = W)."""
  # MATLAB's 'symmetric' border: mirror including the edge pixel, 2 each side.
  if axis == 1:
    head = ops.flip(x[:, :2], axis=1)
    tail = ops.flip(x[:, -2:], axis=1)
  else:
    head = ops.flip(x[:, :, :2], axis=2)
    tail = ops.flip(x[:, :, -2:], axis=2)
  padded = ops.concatenate([head, x, tail], axis=axis)
  length = ops.shape(x)[axis]
  phases = []
  for offset, weights in bicubic_phase_taps(scale):
    phase = 0.0
    for k, weight in enumerate(weights):
      if weight == 0.0:
        continue
      start = 2 + offset + k
      if axis == 1:
        shifted = padded[:, start:start + length]
      else:
        shifted = padded[:, :, start:start + length]
      phase = phase + float(weight) * shifted
    phases.append(phase)
  # Interleave phases: [N, H, s, W, C] -> [N, s*H, W, C] (same along W).
  stacked = ops.stack(phases, axis=axis + 1)
  shape = ops.shape(x)
  if axis == 1:
    new_shape = (-1, shape[1] * scale, shape[2], shape[3])
  else:
    new_shape = (-1, shape[1], shape[2] * scale, shape[3])
  return ops.reshape(stacked, new_shape)


def bicubic_upsample(x, scale: int):
  """MATLAB ``imresize(x, scale, 'bicubic')`` for an integer `scale`.

  Keys cubic (a = -0.5), symmetric border, antialiasing irrelevant when
  enlarging.  Works on float NHWC tensors with dynamic H and W (H, W >= 2);
  scale 1 returns `x` unchanged.

  Args:
    x: float tensor [N, H, W, C].
    scale: positive integer upscale factor.

  Returns:
    Tensor [N, scale*H, scale*W, C], same dtype, not clipped.

  Raises:
    ValueError: if `scale` is not a positive integer.
  """
  scale = _check_scale(scale)
  if scale == 1:
    return x
  return _upsample_axis(_upsample_axis(x, scale, axis=1), scale, axis=2)


def pixel_shuffle(x, scale: int):
  """Sub-pixel shuffle [N, H, W, C*s*s] -> [N, s*H, s*W, C], channel-major.

  Input channel ``c * s*s + dy * s + dx`` goes to output channel c at sub-pixel
  (dy, dx), as in PyTorch ``nn.PixelShuffle`` and IDN-TF ``PS(color=True)``.
  """
  scale = _check_scale(scale)
  shape = ops.shape(x)
  channels_in = x.shape[-1]
  if channels_in is None or channels_in % (scale * scale):
    raise ValueError(
        f"pixel_shuffle needs channels divisible by scale**2={scale * scale}, "
        f"got {channels_in!r}")
  channels = channels_in // (scale * scale)
  x = ops.reshape(x, (-1, shape[1], shape[2], channels, scale, scale))
  x = ops.transpose(x, (0, 1, 4, 2, 5, 3))  # N, H, dy, W, dx, C
  return ops.reshape(x, (-1, shape[1] * scale, shape[2] * scale, channels))


class _ScaleLayer(keras.layers.Layer):
  """A weightless layer parameterised by an integer scale."""

  def __init__(self, scale: int, **kwargs):
    super().__init__(**kwargs)
    self.scale = _check_scale(scale)

  def _scaled_shape(self, input_shape, channels):
    n, h, w, _ = input_shape
    return (n, None if h is None else h * self.scale,
            None if w is None else w * self.scale, channels)

  def get_config(self):
    return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="mlsr_tf")
class BicubicUpsample(_ScaleLayer):
  """Layer form of `bicubic_upsample` (no weights)."""

  def call(self, inputs):
    return bicubic_upsample(inputs, self.scale)

  def compute_output_shape(self, input_shape):
    return self._scaled_shape(input_shape, input_shape[-1])


@keras.saving.register_keras_serializable(package="mlsr_tf")
class PixelShuffle(_ScaleLayer):
  """Layer form of `pixel_shuffle` (no weights)."""

  def call(self, inputs):
    return pixel_shuffle(inputs, self.scale)

  def compute_output_shape(self, input_shape):
    return self._scaled_shape(input_shape, input_shape[-1] // self.scale**2)


_ACTIVATIONS = ("relu", "tanh", "softplus", "sigmoid", "linear", "elu", "gelu",
                "leaky_relu")


@keras.saving.register_keras_serializable(package="mlsr_tf", name="MaxLeakyReLU")
class LeakyReLU(keras.layers.LeakyReLU):
  """``keras.layers.LeakyReLU`` computed as ``max(x, slope * x)`` (for slope <= 1).

  The same function, but not TensorFlow's ``LeakyRelu`` op: grappler's remapper fuses
  Conv2D + BiasAdd + LeakyRelu although ``LeakyReluGrad`` still needs the BiasAdd output,
  then fails on every gradient graph ("remapper failed: ... fanout LeakyReluGrad exist for
  missing node BiasAdd", printed on stderr, and no fusion at all in that graph).  The class
  keeps Keras' name because ``.weights.h5`` files name layers after their class.
  """

  def call(self, inputs):
    if self.negative_slope > 1:
      return super().call(inputs)
    return ops.maximum(inputs, ops.multiply(inputs, self.negative_slope))


def get_activation(name: str, negative_slope: float = 0.05):
  """Returns a keras.layers activation for `name` (one of `_ACTIVATIONS`)."""
  if name == "leaky_relu":
    return LeakyReLU(negative_slope=negative_slope)
  if name not in _ACTIVATIONS:
    raise ValueError(
        f"unknown activation {name!r}; expected one of {_ACTIVATIONS}")
  return keras.layers.Activation(name)


@keras.saving.register_keras_serializable(package="mlsr_tf", name="GroupedConv2D")
class Conv2D(keras.layers.Conv2D):
  """``keras.layers.Conv2D`` whose ``groups=G`` case runs as G dense convolutions.

  The variables (``kernel`` of shape ``(kh, kw, in/G, out)`` and ``bias``), their names,
  the config and the outputs are those of ``keras.layers.Conv2D`` with the same
  ``groups``: group g maps input channels ``[g*in/G, (g+1)*in/G)`` to output channels
  ``[g*out/G, (g+1)*out/G)``, so shipped and imported weights load unchanged.  Only the
  computation differs.  Why: Keras routes grouped convolutions on the TensorFlow CPU
  backend through XLA, whose grouped-convolution gradient runs at ~3 GFLOP/s, about 130x
  slower than a dense convolution on the same cores (WORKSPACE.md, issue 11).  Dense
  convolutions on slices are fast on every backend and device.

  The class keeps the name ``Conv2D`` on purpose: Keras' ``.weights.h5`` files name each
  layer after its class (``layers/conv2d_7/vars``), so another name would change the
  weight layout of every shipped and saved IDN.
  """

  def convolution_op(self, inputs, kernel):
    if self.groups == 1:
      return super().convolution_op(inputs, kernel)
    pieces = zip(ops.split(inputs, self.groups, axis=-1),
                 ops.split(kernel, self.groups, axis=-1))
    return ops.concatenate(
        [super(Conv2D, self).convolution_op(x, k) for x, k in pieces], axis=-1)


def conv(filters: int, name: str, kernel_size: int = 3, groups: int = 1,
         activation=None) -> keras.layers.Conv2D:
  """A 'same'-padded, biased Conv2D (the only conv every network here uses).

  ``groups > 1`` gives this module's :class:`Conv2D` (the weights of Keras'
  ``Conv2D(groups=...)``, computed fast).
  """
  layer = Conv2D if groups > 1 else keras.layers.Conv2D
  return layer(filters, kernel_size, padding="same", groups=groups, activation=activation,
               name=name)


def check_positive_ints(name: str, values: Sequence[int]) -> tuple[int, ...]:
  """Validates a sequence of positive ints (hyper-parameters), else ValueError."""
  try:
    values = tuple(values)
  except TypeError:
    raise ValueError(f"{name} must be a sequence of positive ints, got "
                     f"{values!r}") from None
  if not values or not all(is_positive_int(v) for v in values):
    raise ValueError(f"{name} must be a sequence of positive ints, got "
                     f"{values!r}")
  return tuple(int(v) for v in values)
