"""MATLAB-compatible bicubic ``imresize`` (NumPy, bit-exact on uint8; and TensorFlow).

Reproduces MATLAB's ``imresize(A, scale)`` / ``imresize(A, [rows cols])`` with the
default ``'bicubic'`` method:

* Keys cubic kernel with ``a = -0.5``, support 4;
* antialiasing when downscaling: the kernel is stretched by ``1/scale``;
* output size ``ceil(in * scale)`` when a scale is given;
* symmetric (mirror, edge pixel repeated) borders;
* the dimensions are resized one after the other, the one with the smallest scale
  first (rows first on ties), and for ``uint8`` input the intermediate result is
  rounded (half away from zero) and saturated to ``uint8`` between the two passes,
  exactly like MATLAB's ``imresizemex``.  This is what makes the uint8 output bit
  exact; float input is never rounded and returns ``float64``.

:func:`imresize` is NumPy only.  :func:`imresize_tf` imports TensorFlow lazily and
works on float tensors with dynamic height/width inside ``tf.function`` and
``tf.data``.
"""

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from mlsr_tf.data import image_io

_KERNEL_WIDTH = 4.0  # Support of the cubic kernel, in input pixels.

Scale = Union[float, Sequence[float], None]
Shape = Optional[Sequence[int]]


def cubic(x: np.ndarray) -> np.ndarray:
  """Keys cubic convolution kernel with ``a = -0.5`` (MATLAB's ``cubic``)."""
  absx = np.abs(x)
  absx2 = absx * absx
  absx3 = absx2 * absx
  return ((1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1.0) +
          (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) *
          ((absx > 1.0) & (absx <= 2.0)))


def _output_length(in_length: int, scale: float) -> int:
  """``ceil(in * scale)``, ignoring floating-point dust (e.g. ``255 * (1/3)``)."""
  exact = in_length * scale
  nearest = round(exact)
  if abs(exact - nearest) < 1e-9:
    return int(nearest)
  return int(math.ceil(exact))


def _resolve(in_shape: Tuple[int, int], scale: Scale,
             output_shape: Shape) -> Tuple[Tuple[float, float], Tuple[int, int]]:
  """Per-dimension scale factors and output size, as MATLAB derives them."""
  if scale is None and output_shape is None:
    raise ValueError("imresize: give scale or output_shape, got neither")
  if scale is not None:
    scales = (tuple(float(s) for s in scale) if isinstance(scale, (tuple, list))
              else (float(scale), float(scale)))
    if len(scales) != 2 or not all(s > 0 and math.isfinite(s) for s in scales):
      raise ValueError(f"imresize: scale must be positive and finite, got {scale!r}")
  if output_shape is not None:
    out = tuple(int(n) for n in output_shape)
    if len(out) != 2 or min(out) < 1:
      raise ValueError(
          f"imresize: output_shape must be two positive ints, got {output_shape!r}")
    if scale is None:
      scales = (out[0] / in_shape[0], out[1] / in_shape[1])
  else:
    out = (_output_length(in_shape[0], scales[0]),
           _output_length(in_shape[1], scales[1]))
    if min(out) < 1:
      raise ValueError(f"imresize: scale {scale!r} gives an empty output from {in_shape}")
  return scales, out


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> Tuple[np.ndarray, np.ndarray]:
  """MATLAB's ``contributions``: weights and 0-based source indices, ``[out, P]``.

  Output pixel ``x`` (1-based) maps to input coordinate
  ``u = x / scale + 0.5 * (1 - 1 / scale)``; the ``P = ceil(width) + 2`` nearest
  input pixels get normalised kernel weights; out-of-range indices are mirrored.
  Columns that are zero for every output pixel are dropped, as in MATLAB.
  """
  if scale < 1.0 and antialiasing:
    kernel_width = _KERNEL_WIDTH / scale
    kernel = lambda x: scale * cubic(scale * x)
  else:
    kernel_width = _KERNEL_WIDTH
    kernel = cubic
  x = np.arange(1, out_length + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)
  left = np.floor(u - kernel_width / 2.0)
  taps = int(math.ceil(kernel_width)) + 2
  indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]
  weights = kernel(u[:, None] - indices)
  weights = weights / np.sum(weights, axis=1, keepdims=True)
  # Symmetric padding: 1..n, n..1, repeated.
  mirror = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
  indices = mirror[np.mod(indices.astype(np.int64) - 1, 2 * in_length)]
  keep = np.any(weights != 0, axis=0)
  return weights[:, keep], indices[:, keep]


def _resize_axis(image: np.ndarray, axis: int, weights: np.ndarray,
                 indices: np.ndarray) -> np.ndarray:
  """Applies one dimension's weights, summing taps in order like ``imresizemex``."""
  moved = np.moveaxis(image, axis, 0).astype(np.float64, copy=False)
  extra = (1,) * (moved.ndim - 1)
  out = None
  for tap in range(weights.shape[1]):
    term = weights[:, tap].reshape((-1,) + extra) * moved[indices[:, tap]]
    out = term if out is None else out + term
  return np.moveaxis(out, 0, axis)


def imresize(image: np.ndarray, scale: Scale = None,
             output_shape: Shape = None, antialiasing: bool = True) -> np.ndarray:
  """MATLAB ``imresize(image, scale | [rows cols], 'bicubic')``.

  Args:
    image: ``HW`` or ``HWC`` array; ``uint8`` or float.
    scale: a factor (or a ``(rows, cols)`` pair of factors), e.g. ``0.5`` or
      ``1 / 3``; the output size is ``ceil(in * scale)``.
    output_shape: ``(rows, cols)`` instead of ``scale``; if both are given,
      ``scale`` sets the kernel and ``output_shape`` the size.
    antialiasing: stretch the kernel when downscaling (MATLAB's default).

  Returns:
    ``uint8`` for ``uint8`` input (bit-exact with MATLAB), otherwise ``float64``.
  """
  image = np.asarray(image)
  if image.ndim not in (2, 3) or image.shape[0] < 1 or image.shape[1] < 1:
    raise ValueError(f"imresize: expected an HW or HWC image, got shape {image.shape}")
  is_uint8 = image.dtype == np.uint8
  if not is_uint8 and not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f"imresize: expected uint8 or float input, got dtype {image.dtype}")
  scales, out_shape = _resolve(image.shape[:2], scale, output_shape)
  # Smallest scale first; a stable sort puts rows first on ties (as MATLAB's sort).
  order = sorted(range(2), key=lambda d: scales[d])
  result = image
  for axis in order:
    if out_shape[axis] == result.shape[axis] and scales[axis] == 1.0:
      continue  # MATLAB skips a dimension whose size and scale do not change.
    weights, indices = contributions(
        result.shape[axis], out_shape[axis], scales[axis], antialiasing)
    result = _resize_axis(result, axis, weights, indices)
    if is_uint8:
      result = image_io.float_to_uint_saturate(result, np.uint8)
  if not is_uint8:
    result = result.astype(np.float64, copy=False)
  return result


# ----------------------------------------------------------------------------
# TensorFlow version.


def _contributions_tf(tf, in_length, out_length, scale):
  """``contributions`` in TF ops (dynamic lengths); float64 weights, int32 indices."""
  in_f = tf.cast(in_length, tf.float64)
  scale = tf.cast(scale, tf.float64)
  antialias = scale < 1.0
  kernel_scale = tf.where(antialias, scale, tf.constant(1.0, tf.float64))
  kernel_width = _KERNEL_WIDTH / kernel_scale
  x = tf.range(1, out_length + 1, dtype=tf.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)
  left = tf.floor(u - kernel_width / 2.0)
  taps = tf.cast(tf.math.ceil(kernel_width), tf.int32) + 2
  indices = left[:, None] + tf.range(taps, dtype=tf.float64)[None, :]
  offsets = kernel_scale * (u[:, None] - indices)
  absx = tf.abs(offsets)
  absx2 = absx * absx
  absx3 = absx2 * absx
  weights = ((1.5 * absx3 - 2.5 * absx2 + 1.0) *
             tf.cast(absx <= 1.0, tf.float64) +
             (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) *
             tf.cast((absx > 1.0) & (absx <= 2.0), tf.float64))
  weights = kernel_scale * weights
  weights = weights / tf.reduce_sum(weights, axis=1, keepdims=True)
  period = 2.0 * in_f
  folded = tf.math.floormod(indices - 1.0, period)  # 0 .. 2n-1
  mirrored = tf.where(folded < in_f, folded, period - 1.0 - folded)
  return weights, tf.cast(mirrored, tf.int32)


def _resize_axis_tf(tf, images, axis, out_length, scale):
  """Resizes NHWC ``images`` along ``axis`` (1 or 2)."""
  in_length = tf.shape(images)[axis]
  weights, indices = _contributions_tf(tf, in_length, out_length, scale)
  gathered = tf.gather(images, indices, axis=axis)  # [N, out, P, W, C] or [N, H, out, P, C]
  weights = tf.cast(weights, images.dtype)
  if axis == 1:
    weights = weights[None, :, :, None, None]
  else:
    weights = weights[None, None, :, :, None]
  return tf.reduce_sum(gathered * weights, axis=axis + 1)


def _out_length_tf(tf, in_length, scale):
  exact = tf.cast(in_length, tf.float64) * scale
  nearest = tf.round(exact)
  return tf.cast(
      tf.where(tf.abs(exact - nearest) < 1e-9, nearest, tf.math.ceil(exact)),
      tf.int32)


def as_float_batch_tf(images, what: str):
  """Checks a float ``[H,W,C]``/``[N,H,W,C]`` tensor; returns ``([N,H,W,C] tensor, rank)``."""
  import tensorflow as tf  # Lazy.

  images = tf.convert_to_tensor(images)
  if not images.dtype.is_floating:
    raise ValueError(f"{what}: expected float images, got dtype {images.dtype.name}")
  rank = images.shape.rank
  if rank not in (3, 4):
    raise ValueError(f"{what}: expected [H,W,C] or [N,H,W,C], got shape {images.shape}")
  return (images if rank == 4 else images[None]), rank


def imresize_tf(images, scale: Scale = None, output_shape=None):
  """MATLAB-style bicubic resize of float images in TensorFlow.

  Same algorithm as :func:`imresize` on float input (no intermediate rounding),
  built from TF ops so height and width may be dynamic: usable inside
  ``tf.function``, ``tf.data`` and SavedModel signatures.

  Args:
    images: float tensor ``[H, W, C]`` or ``[N, H, W, C]``.
    scale: Python number (or pair) for the factor; output ``ceil(in * scale)``.
    output_shape: ``(rows, cols)``, Python ints or int tensors, instead of scale.

  Returns:
    A tensor of the input's float dtype and rank.
  """
  import tensorflow as tf  # Lazy: the NumPy path must import without TF.

  batched, rank = as_float_batch_tf(images, "imresize_tf")
  if scale is None and output_shape is None:
    raise ValueError("imresize_tf: give scale or output_shape, got neither")
  in_h, in_w = tf.shape(batched)[1], tf.shape(batched)[2]
  if scale is not None:
    pair = tuple(scale) if isinstance(scale, (tuple, list)) else (scale, scale)
    if len(pair) != 2 or not all(float(s) > 0 for s in pair):
      raise ValueError(f"imresize_tf: scale must be positive, got {scale!r}")
    scales = [tf.constant(float(s), tf.float64) for s in pair]
    static_scales = [float(s) for s in pair]
  if output_shape is not None:
    if len(output_shape) != 2:
      raise ValueError(f"imresize_tf: output_shape must have 2 entries, got {output_shape!r}")
    out_h = tf.cast(output_shape[0], tf.int32)
    out_w = tf.cast(output_shape[1], tf.int32)
    if scale is None:
      scales = [tf.cast(out_h, tf.float64) / tf.cast(in_h, tf.float64),
                tf.cast(out_w, tf.float64) / tf.cast(in_w, tf.float64)]
      static_scales = None
  else:
    out_h = _out_length_tf(tf, in_h, scales[0])
    out_w = _out_length_tf(tf, in_w, scales[1])
  # Smallest scale first (rows on ties); with dynamic scales the order only
  # changes float rounding, so rows-first is used.
  if static_scales is not None and static_scales[1] < static_scales[0]:
    order = (2, 1)
  else:
    order = (1, 2)
  outs = {1: out_h, 2: out_w}
  result = batched
  for axis in order:
    result = _resize_axis_tf(tf, result, axis, outs[axis], scales[axis - 1])
  return result if rank == 4 else result[0]
