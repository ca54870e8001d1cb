"""Image reading and writing in one documented layout.

Layout returned by :func:`read_image` and accepted by :func:`write_png`:

* NumPy array, ``HWC`` (grayscale is ``(H, W, 1)``, never 2-D);
* channel order RGB or RGBA (OpenCV's BGR order never leaks out);
* dtype as stored in the file: ``uint8`` or ``uint16``.

Floats for models come from :func:`to_float` (``float32`` in ``[0, 1]``); going
back uses :func:`to_uint`, which rounds half away from zero like MATLAB.

NumPy + OpenCV only: importable without TensorFlow.
"""

import os
import pathlib
import tempfile
from typing import Union

import cv2
import numpy as np

PathLike = Union[str, os.PathLike]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SUPPORTED_DTYPES = (np.uint8, np.uint16)


class ImageError(ValueError):
  """A missing, corrupt or unsupported image file; the message names the path."""


def read_image(path: PathLike) -> np.ndarray:
  """Reads a PNG/JPEG/BMP/TIFF file (8 or 16 bit, gray/RGB/RGBA).

  Args:
    path: the image file.

  Returns:
    ``HWC`` array, ``C`` in {1, 3, 4}, RGB(A) order, ``uint8`` or ``uint16`` as
    stored.

  Raises:
    ImageError: the file is missing, unreadable, corrupt or of an unsupported
      type (extension, dtype or channel count).
  """
  path = pathlib.Path(path)
  if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
    raise ImageError(
        f"unsupported image type {path.suffix!r} for {str(path)!r} "
        f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
  if not path.is_file():
    raise ImageError(f"no such image file: {str(path)!r}")
  try:
    data = np.fromfile(path, dtype=np.uint8)
  except OSError as e:
    raise ImageError(f"cannot read image file {str(path)!r}: {e}") from e
  image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
  if image is None:
    raise ImageError(f"corrupt or undecodable image file: {str(path)!r}")
  if image.dtype not in _SUPPORTED_DTYPES:
    raise ImageError(
        f"unsupported pixel type {image.dtype} in {str(path)!r} "
        "(only 8- and 16-bit images)")
  if image.ndim == 2:
    image = image[:, :, None]
  channels = image.shape[2]
  if channels == 3:
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
  elif channels == 4:
    image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
  elif channels != 1:
    raise ImageError(
        f"unsupported channel count {channels} in {str(path)!r}")
  return np.ascontiguousarray(image)


def _check_storable(image: np.ndarray, what: str) -> np.ndarray:
  """Validates an HWC uint8/uint16 image with 1, 3 or 4 channels; returns HWC."""
  image = np.asarray(image)
  if image.dtype not in _SUPPORTED_DTYPES:
    raise ValueError(
        f"{what}: expected uint8 or uint16 pixels, got dtype {image.dtype}")
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
    raise ValueError(
        f"{what}: expected an HWC image with 1, 3 or 4 channels, got shape "
        f"{image.shape}")
  if image.shape[0] == 0 or image.shape[1] == 0:
    raise ValueError(f"{what}: empty image of shape {image.shape}")
  return image


def write_png(path: PathLike, image: np.ndarray) -> None:
  """Writes an ``HWC`` (or ``HW``) uint8/uint16 RGB(A)/gray image as PNG, atomically.

  The data go to a temporary file in the target directory that is renamed over
  ``path`` only once complete, so a failure never leaves a half-written file.

  Raises:
    ValueError: bad dtype or shape (message repeats them).
    ImageError: the PNG cannot be encoded.
    OSError: the directory is missing or not writable.
  """
  path = pathlib.Path(path)
  image = _check_storable(image, f"write_png({str(path)!r})")
  channels = image.shape[2]
  if channels == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  elif channels == 4:
    image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
  else:
    image = image[:, :, 0]
  ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image))
  if not ok:
    raise ImageError(f"cannot encode PNG for {str(path)!r}")
  directory = path.parent if str(path.parent) else pathlib.Path(".")
  fd, tmp_name = tempfile.mkstemp(
      prefix="." + path.name + ".", suffix=".tmp", dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(encoded.tobytes())
    os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600; use what open() would.
    os.replace(tmp_name, path)
  except BaseException:
    if os.path.exists(tmp_name):
      os.unlink(tmp_name)
    raise


def _current_umask() -> int:
  mask = os.umask(0)
  os.umask(mask)
  return mask


def to_float(image: np.ndarray) -> np.ndarray:
  """``uint8``/``uint16`` -> ``float32`` in ``[0, 1]`` (divides by 255 / 65535)."""
  image = np.asarray(image)
  if image.dtype == np.uint8:
    return image.astype(np.float32) / np.float32(255.0)
  if image.dtype == np.uint16:
    return image.astype(np.float32) / np.float32(65535.0)
  raise ValueError(f"to_float: expected uint8 or uint16, got dtype {image.dtype}")


def round_half_away(x: np.ndarray) -> np.ndarray:
  """Rounds half away from zero, as MATLAB's ``round`` and its integer casts do."""
  x = np.asarray(x)
  return np.sign(x) * np.floor(np.abs(x) + 0.5)


def to_uint(image_float: np.ndarray, dtype=np.uint8) -> np.ndarray:
  """``[0, 1]`` floats -> ``uint8``/``uint16``: scaled, clipped, rounded half away."""
  dtype = np.dtype(dtype)
  if dtype not in _SUPPORTED_DTYPES:
    raise ValueError(f"to_uint: dtype must be uint8 or uint16, got {dtype}")
  peak = float(np.iinfo(dtype).max)
  scaled = np.clip(np.asarray(image_float, dtype=np.float64) * peak, 0.0, peak)
  return np.floor(scaled + 0.5).astype(dtype)


def float_to_uint_saturate(values: np.ndarray, dtype=np.uint8) -> np.ndarray:
  """MATLAB's ``uint8(x)`` on values already in ``0..255``: round half away, saturate."""
  dtype = np.dtype(dtype)
  info = np.iinfo(dtype)
  return np.clip(round_half_away(values), info.min, info.max).astype(dtype)
