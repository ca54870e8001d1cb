"""Blur kernels and the LR degradation model (pure, seeded functions).

A :class:`Degradation` turns an HR image into its LR version at an integer scale:

* ``kernel is None``: MATLAB bicubic ``imresize(hr, 1/scale)`` (antialiased),
  bit-exact on uint8 (see :mod:`mlsr_tf.data.imresize`);
* otherwise ``lr = (hr (*) k) subsampled by scale``: a 2-D correlation with the
  kernel (kernel centre at index ``size // 2`` in each dimension, symmetric
  borders -- MATLAB ``'symmetric'`` = SciPy ``'reflect'``), then sampling rows and
  columns ``0, s, 2s, ...``.  Output size ``ceil(H / s) x ceil(W / s)``.
  Sampling alignment: a delta kernel (one at the centre) gives exactly
  ``hr[::s, ::s]``, no shift.  This is the convention of ZSSR / MZSR's
  ``numeric_kernel`` for odd-size kernels.

:func:`make_lr_down` applies the same degradation to the LR image, giving LR↓,
the input of MLSR's inner loop (the LR image is its target).

Random kernels: the distribution of :func:`random_5x5_kernels` is a documented
choice of this package (anisotropic Gaussians, sigma_x and sigma_y uniform in
``[0.2, 2.0]`` LR-independent pixels, rotation uniform in ``[0, pi)``); the MLSR
paper's 40,000 kernels are split 38k/1k/1k into train/validation/test by
:func:`kernel_split`.

NumPy only at import time; the ``*_tf`` functions import TensorFlow lazily.
"""

import dataclasses
import functools
import math
import os
import pathlib
import re
from typing import Optional, Union

import numpy as np

from mlsr_tf import paths
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

RANDOM_KERNEL_SIZE = 5
RANDOM_SIGMA_RANGE = (0.2, 2.0)
KERNEL_POOL_SIZE = 40_000
# Largest kernel side accepted anywhere (kernel files, gaussian:... specs): 255 pixels is a
# Gaussian of sigma ~42; a larger one would blur any image to its mean.
MAX_KERNEL_SIZE = 255
SPLIT_SIZES = {"train": 38_000, "validation": 1_000, "test": 1_000}


def _check_scale(scale) -> int:
  if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  return int(scale)


def check_kernel_size(shape, what: str = "kernel") -> tuple:
  """A 2-D, non-empty shape with both sides at most :data:`MAX_KERNEL_SIZE`."""
  shape = tuple(int(n) for n in shape)
  if len(shape) != 2 or min(shape) < 1:
    raise ValueError(f"{what} must be a non-empty 2-D array, got shape {shape}")
  if max(shape) > MAX_KERNEL_SIZE:
    raise ValueError(f"{what} of shape {shape} is larger than the limit of "
                     f"{MAX_KERNEL_SIZE}x{MAX_KERNEL_SIZE}")
  return shape


def _check_kernel_dtype(dtype, what: str) -> None:
  if dtype.kind not in "iuf":
    got = "text" if dtype.kind in "SU" else f"dtype {dtype}"
    raise ValueError(f"{what} must be an array of real numbers, got {got}")


def check_kernel(kernel, what: str = "kernel") -> np.ndarray:
  """The one kernel validator; returns a read-only float64 copy normalised to sum 1.

  A kernel is a 2-D array of real numbers (not text, objects, booleans or complex numbers)
  of at most :data:`MAX_KERNEL_SIZE` per side, finite, non-negative, with a positive sum.
  Whether it fits the image it blurs is :func:`check_fits`.

  Raises:
    ValueError: naming ``what`` and the problem.
  """
  array = np.asarray(kernel)
  _check_kernel_dtype(array.dtype, what)
  check_kernel_size(array.shape, what)
  kernel = np.array(array, dtype=np.float64)
  if not np.all(np.isfinite(kernel)):
    raise ValueError(f"{what} has non-finite values")
  if kernel.min() < 0:
    raise ValueError(f"{what} has negative values (min {kernel.min():.4g}); a blur kernel "
                     "is non-negative")
  with np.errstate(over="ignore"):
    total = kernel.sum()
  if not np.isfinite(total):  # Finite values whose sum overflows: scale them down first.
    kernel /= kernel.max()
    total = kernel.sum()
  if not total > 0:
    raise ValueError(f"{what} is all zeros (its sum must be positive)")
  kernel /= total
  kernel.setflags(write=False)
  return kernel


@dataclasses.dataclass(frozen=True, eq=False)
class Degradation:
  """How LR images are made from HR ones.

  Attributes:
    scale: integer downscaling factor.
    kernel: 2-D blur kernel (float64, sums to 1), or None for MATLAB bicubic.
    name: short human-readable description (for logs and reports).
  """
  scale: int
  kernel: Optional[np.ndarray] = None
  name: str = "bicubic"

  def __post_init__(self):
    object.__setattr__(self, "scale", _check_scale(self.scale))
    if self.kernel is not None:
      object.__setattr__(self, "kernel", check_kernel(self.kernel))

  @property
  def is_bicubic(self) -> bool:
    return self.kernel is None


def check_fits(degradation: Degradation, image_shape, what: str = "the image") -> None:
  """Refuses a blur kernel larger than the image it is applied to (``what`` names it)."""
  if degradation.kernel is None:
    return
  kernel_h, kernel_w = degradation.kernel.shape
  height, width = int(image_shape[0]), int(image_shape[1])
  if kernel_h > height or kernel_w > width:
    raise ValueError(f"kernel {degradation.name!r} ({kernel_w}x{kernel_h}) is larger than "
                     f"{what} ({width}x{height})")


def kernel_sigma(kernel) -> float:
  """The width of a blur kernel: its RMS Gaussian sigma, in HR pixels.

  ``sqrt((var_x + var_y) / 2)`` of the normalised kernel seen as a distribution over its
  pixel grid (about its own centroid).  It equals sigma for an isotropic Gaussian wide
  enough not to be truncated, ``sqrt((sx^2 + sy^2) / 2)`` for an anisotropic one at any
  angle, and is at most 1.29 for the 5x5 kernels of :func:`random_5x5_kernels`.  It is what
  :mod:`mlsr_tf.meta.step_sizes` chooses a band of learned step sizes by.
  """
  kernel = check_kernel(kernel)
  rows, cols = np.mgrid[:kernel.shape[0], :kernel.shape[1]]
  mean_row, mean_col = (kernel * rows).sum(), (kernel * cols).sum()
  variance = (kernel * ((rows - mean_row) ** 2 + (cols - mean_col) ** 2)).sum() / 2
  return float(np.sqrt(max(variance, 0.0)))


def kernel_sigma_tf(kernel):
  """:func:`kernel_sigma` in TensorFlow (float32) for a ``[k, k]`` kernel tensor; an empty
  ``[0, 0]`` kernel (bicubic in the SavedModel's signatures) gives 0."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  kernel = tf.convert_to_tensor(kernel, tf.float32)
  kernel = kernel / tf.maximum(tf.reduce_sum(kernel), 1e-30)
  rows = tf.cast(tf.range(tf.shape(kernel)[0]), tf.float32)[:, None]
  cols = tf.cast(tf.range(tf.shape(kernel)[1]), tf.float32)[None, :]
  mean_row, mean_col = tf.reduce_sum(kernel * rows), tf.reduce_sum(kernel * cols)
  variance = tf.reduce_sum(kernel * ((rows - mean_row) ** 2 + (cols - mean_col) ** 2)) / 2
  return tf.sqrt(tf.maximum(variance, 0.0))


def bicubic(scale: int) -> Degradation:
  """MATLAB bicubic downscaling by ``scale``."""
  return Degradation(scale=scale, kernel=None, name="bicubic")


def from_kernel(kernel, scale: int, name: str = "kernel") -> Degradation:
  """Blur with ``kernel`` (normalised to sum 1), then subsample by ``scale``."""
  return Degradation(scale=scale, kernel=kernel, name=name)


def gaussian_kernel(size: int, sigma_x: float, sigma_y: Optional[float] = None,
                    theta: float = 0.0) -> np.ndarray:
  """A ``size x size`` (an)isotropic Gaussian kernel, float64, summing to 1.

  Args:
    size: kernel side (odd sizes centre the Gaussian on a pixel).
    sigma_x: standard deviation along the (rotated) horizontal axis, pixels.
    sigma_y: along the (rotated) vertical axis; defaults to ``sigma_x``.
    theta: counter-clockwise rotation of the x axis, radians.
  """
  if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
    raise ValueError(f"gaussian_kernel: size must be a positive integer, got {size!r}")
  check_kernel_size((size, size), "gaussian_kernel")
  sigma_y = sigma_x if sigma_y is None else sigma_y
  if not (sigma_x > 0 and sigma_y > 0):
    raise ValueError(
        f"gaussian_kernel: sigmas must be positive, got ({sigma_x!r}, {sigma_y!r})")
  return _gaussian_kernels(int(size), np.array([sigma_x], np.float64),
                           np.array([sigma_y], np.float64),
                           np.array([theta], np.float64))[0]


def _gaussian_kernels(size: int, sigma_x: np.ndarray, sigma_y: np.ndarray,
                      theta: np.ndarray) -> np.ndarray:
  """Vectorised Gaussian kernels, ``[N, size, size]``, each summing to 1."""
  coords = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
  x = coords[None, None, :]  # Columns.
  y = -coords[None, :, None]  # Rows, pointing up so theta turns counter-clockwise.
  cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
  along = x * cos + y * sin
  across = -x * sin + y * cos
  exponent = (along / sigma_x[:, None, None]) ** 2 + (across / sigma_y[:, None, None]) ** 2
  kernels = np.exp(-0.5 * exponent)
  return kernels / kernels.sum(axis=(1, 2), keepdims=True)


def random_5x5_kernels(count: int, seed: int) -> np.ndarray:
  """``count`` random 5x5 anisotropic Gaussian kernels, ``[count, 5, 5]`` float64.

  Deterministic in ``seed``; kernel ``i`` does not depend on ``count``.
  """
  if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
    raise ValueError(f"count must be a non-negative integer, got {count!r}")
  params = np.random.default_rng(seed).random((int(count), 3))
  low, high = RANDOM_SIGMA_RANGE
  sigma_x = low + (high - low) * params[:, 0]
  sigma_y = low + (high - low) * params[:, 1]
  theta = math.pi * params[:, 2]
  return _gaussian_kernels(RANDOM_KERNEL_SIZE, sigma_x, sigma_y, theta)


@functools.lru_cache(maxsize=4)
def _kernel_pool(seed: int) -> np.ndarray:
  pool = random_5x5_kernels(KERNEL_POOL_SIZE, seed)
  pool.setflags(write=False)
  return pool


def kernel_split(split: str, seed: int = 0) -> np.ndarray:
  """The paper's 40k random 5x5 kernels, split 38k/1k/1k; read-only ``[n, 5, 5]``.

  ``split`` is ``'train'`` (first 38,000 of the seeded pool), ``'validation'``
  (next 1,000) or ``'test'`` (last 1,000): disjoint by construction.
  """
  if split not in SPLIT_SIZES:
    raise ValueError(
        f"unknown kernel split {split!r}; expected one of {sorted(SPLIT_SIZES)}")
  start = 0
  for name, size in SPLIT_SIZES.items():
    if name == split:
      return _kernel_pool(int(seed))[start:start + size]
    start += size
  raise AssertionError("unreachable")


# Largest kernel file read (bytes): a 255x255 float64 kernel is ~0.5 MB.
MAX_KERNEL_FILE_BYTES = 16 << 20


def _load_npy_kernel(path: pathlib.Path, what: str) -> np.ndarray:
  """A .npy array, its header checked (magic, numeric dtype, size) before the data are read."""
  with open(path, "rb") as f:
    if f.read(6) != b"\x93NUMPY":
      raise ValueError(f"{what} is not a NumPy .npy file")
  try:
    header = np.load(path, mmap_mode="r", allow_pickle=False)
  except ValueError as e:  # Object (pickled) data cannot be memory-mapped.
    raise ValueError(f"{what} holds no numeric array: {str(e).split('.')[0]}") from None
  _check_kernel_dtype(header.dtype, what)
  check_kernel_size(header.shape, what)
  return np.array(header)


def _load_mat_kernel(path: pathlib.Path, what: str) -> np.ndarray:
  """Variable ``Kernel`` of a .mat file, or its only variable."""
  import scipy.io  # Lazy: only .mat kernels need SciPy.
  contents = scipy.io.loadmat(str(path))
  arrays = {k: v for k, v in contents.items() if not k.startswith("__")}
  if "Kernel" in arrays:
    return np.asarray(arrays["Kernel"])
  if len(arrays) == 1:
    return np.asarray(next(iter(arrays.values())))
  raise ValueError(f"{what} has no 'Kernel' variable and {len(arrays)} variables "
                   f"({sorted(arrays)}); cannot tell which is the kernel")


def load_kernel(path: Union[str, os.PathLike]) -> np.ndarray:
  """Reads a blur kernel from ``.mat`` (variable ``Kernel`` or the only array) or ``.npy``.

  Returns it normalised to sum 1 (float64, 2-D), after :func:`check_kernel`.

  Raises:
    ValueError: one line naming the file: missing, not a file, too large, unreadable, or
      not a valid kernel (dtype, shape, values).
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  what = f"kernel file {str(path)!r}"
  if suffix not in (".mat", ".npy"):
    raise ValueError(f"kernel file must be .mat or .npy, got {str(path)!r}")
  size = paths.check_input_file(path, "kernel file").stat().st_size
  if size > MAX_KERNEL_FILE_BYTES:
    raise ValueError(f"{what} is too large for a kernel ({size:,} bytes)")
  try:
    kernel = _load_npy_kernel(path, what) if suffix == ".npy" else _load_mat_kernel(path, what)
  except ValueError as e:
    if str(path) in str(e):
      raise
    raise ValueError(f"cannot read {what}: {e}") from None
  except Exception as e:  # SciPy/NumPy raise many types (MatReadError, OSError, ...).
    raise ValueError(f"cannot read {what}: {type(e).__name__}: {e}") from None
  return check_kernel(kernel, f"kernel in {str(path)!r}")


_GAUSSIAN_SPEC = re.compile(r"^gaussian:(.*)$")


def parse_degradation(spec: str, scale: int) -> Degradation:
  """Parses a command-line degradation.

  Forms: ``bicubic``; ``gaussian:SX[,SY[,THETA[,SIZE]]]`` (sigmas in pixels,
  THETA in radians, SIZE odd, default ``2 * ceil(3 * max(SX, SY)) + 1``);
  ``FILE.mat`` or ``FILE.npy`` (see :func:`load_kernel`).

  SX and SY are standard deviations in HR pixels.  MZSR's (Soh et al., CVPR 2020) kernel
  "width" lambda is an eigenvalue of the covariance, i.e. a variance: its g^d_2.0 is
  ``gaussian:1.41421356`` here, not ``gaussian:2.0`` (bicubic interpolation of that LR scores
  28.74 dB on Set5, MZSR reports 28.73; WORKSPACE.md section 11, session 8).
  """
  scale = _check_scale(scale)
  text = str(spec).strip()
  if text == "bicubic":
    return bicubic(scale)
  match = _GAUSSIAN_SPEC.match(text)
  if match:
    try:
      values = [float(v) for v in match.group(1).split(",")]
    except ValueError:
      values = []
    if not 1 <= len(values) <= 4 or not all(math.isfinite(v) for v in values):
      raise ValueError(
          f"bad gaussian degradation {spec!r}; expected gaussian:SX[,SY[,THETA[,SIZE]]]")
    sigma_x = values[0]
    sigma_y = values[1] if len(values) > 1 else sigma_x
    theta = values[2] if len(values) > 2 else 0.0
    if not (sigma_x > 0 and sigma_y > 0):
      raise ValueError(f"bad gaussian degradation {spec!r}: sigmas must be positive")
    if len(values) > 3:
      if values[3] != int(values[3]) or values[3] < 1:
        raise ValueError(f"bad kernel size in {spec!r}; expected a positive integer")
      size = values[3]
    else:
      widest = 3 * max(sigma_x, sigma_y)  # +-3 sigma; may be inf for huge sigmas.
      size = 2 * math.ceil(widest) + 1 if widest < MAX_KERNEL_SIZE else math.inf
    if size > MAX_KERNEL_SIZE:  # Checked before anything is allocated.
      raise ValueError(f"gaussian degradation {spec!r} needs a kernel wider than the limit "
                       f"of {MAX_KERNEL_SIZE} pixels")
    size = int(size)
    return from_kernel(gaussian_kernel(size, sigma_x, sigma_y, theta), scale, name=text)
  if text.lower().endswith((".mat", ".npy")):
    return from_kernel(load_kernel(text), scale, name=pathlib.Path(text).name)
  raise ValueError(
      f"unknown degradation {spec!r}; expected bicubic, gaussian:SX,SY,THETA, "
      "FILE.mat or FILE.npy")


def blur_subsample(image: np.ndarray, kernel: np.ndarray, scale: int) -> np.ndarray:
  """Correlates ``HW``/``HWC`` float ``image`` with ``kernel`` and keeps every ``scale``-th pixel.

  Symmetric borders; kernel centre at ``size // 2``; samples at ``0, s, 2s, ...``.
  Only the kept pixels are computed.  Returns float64.
  """
  image = np.asarray(image, dtype=np.float64)
  kernel = np.asarray(kernel, dtype=np.float64)
  kh, kw = kernel.shape
  pad_top, pad_left = kh // 2, kw // 2
  pad = [(pad_top, kh - 1 - pad_top), (pad_left, kw - 1 - pad_left)]
  pad += [(0, 0)] * (image.ndim - 2)
  padded = np.pad(image, pad, mode="symmetric")
  out_h = -(-image.shape[0] // scale)
  out_w = -(-image.shape[1] // scale)
  out = np.zeros((out_h, out_w) + image.shape[2:], np.float64)
  for a in range(kh):
    for b in range(kw):
      if kernel[a, b] != 0:
        out += kernel[a, b] * padded[a:a + scale * out_h:scale, b:b + scale * out_w:scale]
  return out


def degrade(image: np.ndarray, degradation: Degradation) -> np.ndarray:
  """HR -> LR with ``degradation``. ``HW``/``HWC`` NumPy.

  ``uint8`` in -> ``uint8`` out (rounded half away from zero, saturated; bicubic
  is MATLAB-exact); float in -> ``float64`` out, not clipped.
  """
  if not isinstance(degradation, Degradation):
    raise ValueError(f"expected a Degradation, got {degradation!r}")
  image = np.asarray(image)
  if image.ndim not in (2, 3):
    raise ValueError(f"degrade: expected an HW or HWC image, got shape {image.shape}")
  is_uint8 = image.dtype == np.uint8
  if not is_uint8 and not np.issubdtype(image.dtype, np.floating):
    raise ValueError(f"degrade: expected uint8 or float input, got dtype {image.dtype}")
  if degradation.is_bicubic:
    return imresize_lib.imresize(image, 1.0 / degradation.scale)
  out = blur_subsample(image, degradation.kernel, degradation.scale)
  if is_uint8:
    return image_io.float_to_uint_saturate(out, np.uint8)
  return out


def degrade_tf(images, degradation_or_kernel, scale: Optional[int] = None):
  """In-graph HR -> LR for float ``[H,W,C]`` or ``[N,H,W,C]`` tensors (dynamic sizes).

  Args:
    images: float tensor (any range; nothing is clipped or rounded).
    degradation_or_kernel: a :class:`Degradation` (bicubic or kernel), or a
      kernel tensor/array: ``[k, k]`` shared by all images, or ``[N, k, k]`` one
      per image (e.g. one per meta-learning task).  Tensors are used as given
      (normalise them yourself); arrays and Degradations are sum-1.
    scale: the integer factor; required with a raw kernel, optional (must agree)
      with a Degradation.

  Returns:
    Tensor ``[..., ceil(H/s), ceil(W/s), C]`` of the images' dtype.  Usable in
    ``tf.function``, ``tf.data`` and SavedModel signatures.
  """
  import tensorflow as tf  # Lazy: keeps the NumPy path TensorFlow-free.

  if isinstance(degradation_or_kernel, Degradation):
    if scale is not None and _check_scale(scale) != degradation_or_kernel.scale:
      raise ValueError(
          f"scale {scale!r} disagrees with the degradation's scale "
          f"{degradation_or_kernel.scale}")
    scale = degradation_or_kernel.scale
    if degradation_or_kernel.is_bicubic:
      return imresize_lib.imresize_tf(images, 1.0 / scale)
    kernel = degradation_or_kernel.kernel
  else:
    if scale is None:
      raise ValueError("degrade_tf: scale is required with a raw kernel, got None")
    scale = _check_scale(scale)
    kernel = degradation_or_kernel
    if isinstance(kernel, np.ndarray) and kernel.ndim == 2:
      kernel = check_kernel(kernel)
  batched, rank = imresize_lib.as_float_batch_tf(images, "degrade_tf")
  kernel = tf.cast(tf.convert_to_tensor(kernel), batched.dtype)
  if kernel.shape.rank not in (2, 3):
    raise ValueError(f"degrade_tf: kernel must be [k,k] or [N,k,k], got shape {kernel.shape}")
  shape = tf.shape(batched)
  n, channels = shape[0], shape[3]
  if kernel.shape.rank == 2:
    kernel = tf.broadcast_to(kernel[None], tf.concat([[n], tf.shape(kernel)], 0))
  kh, kw = tf.shape(kernel)[1], tf.shape(kernel)[2]
  pad_top, pad_left = kh // 2, kw // 2
  padded = tf.pad(batched, [[0, 0], [pad_top, kh - 1 - pad_top],
                            [pad_left, kw - 1 - pad_left], [0, 0]], mode="SYMMETRIC")
  # Fold the batch into channels so each image gets its own kernel in one
  # depthwise convolution: [1, H', W', N*C] with filter [k, k, N*C, 1].
  ph, pw = tf.shape(padded)[1], tf.shape(padded)[2]
  folded = tf.reshape(tf.transpose(padded, [1, 2, 0, 3]), [1, ph, pw, n * channels])
  filters = tf.transpose(kernel, [1, 2, 0])[:, :, :, None]  # [k, k, N, 1]
  filters = tf.repeat(filters, channels, axis=2)  # Channel-major within each image.
  out = tf.nn.depthwise_conv2d(folded, filters, strides=[1, scale, scale, 1],
                               padding="VALID")
  oh, ow = tf.shape(out)[1], tf.shape(out)[2]
  out = tf.transpose(tf.reshape(out, [oh, ow, n, channels]), [2, 0, 1, 3])
  return out if rank == 4 else out[0]


def make_lr_down(lr, degradation: Degradation):
  """LR -> LR↓: the same degradation applied again (the inner loop's input).

  NumPy in -> :func:`degrade`; a TensorFlow tensor in -> :func:`degrade_tf`.
  """
  if isinstance(lr, np.ndarray):
    return degrade(lr, degradation)
  return degrade_tf(lr, degradation)


def degrade_file(input_path, output_path, degradation: Degradation) -> np.ndarray:
  """Reads an image, degrades it and writes the LR image (atomically).

  The output format is the one its extension names (``image_io.write_image``: PNG, JPEG,
  BMP, TIFF); an extension, dtype or channel count it cannot store is refused before any
  work.  8-bit images are degraded in uint8 (bicubic is MATLAB-exact); 16-bit ones in float
  and written back as 16-bit.  Refuses to overwrite the input and kernels larger than it.

  Returns:
    The LR image written.
  """
  input_path, output_path = pathlib.Path(input_path), pathlib.Path(output_path)
  image_io.check_output_path(output_path)
  if output_path.exists() and input_path.exists() and output_path.samefile(input_path):
    raise ValueError(f"output {str(output_path)!r} would overwrite the input")
  image = image_io.read_image(input_path)
  image_io.check_output_path(output_path, image.dtype, image.shape[2])
  if image.shape[0] < degradation.scale or image.shape[1] < degradation.scale:
    raise ValueError(
        f"image {str(input_path)!r} of shape {image.shape} is smaller than the scale "
        f"{degradation.scale}")
  check_fits(degradation, image.shape, f"the image {str(input_path)!r}")
  if not output_path.parent.is_dir():
    raise ValueError(f"output directory {str(output_path.parent)!r} does not exist")
  if image.dtype == np.uint8:
    lr = degrade(image, degradation)
  else:
    lr = image_io.to_uint(degrade(image_io.to_float(image), degradation), image.dtype)
  image_io.write_image(output_path, lr)
  return lr
