"""Image reading and writing in one documented layout.

Layout returned by :func:`read_image` and accepted by :func:`write_png`:

* NumPy array, ``HWC`` (grayscale is ``(H, W, 1)``, never 2-D);
* channel order RGB or RGBA (OpenCV's BGR order never leaks out);
* dtype as stored in the file: ``uint8`` or ``uint16``.

Floats for models come from :func:`to_float` (``float32`` in ``[0, 1]``); going
back uses :func:`to_uint`, which rounds half away from zero like MATLAB.

NumPy + OpenCV only: importable without TensorFlow.
"""

import contextlib
import os
import pathlib
import tempfile
from typing import Optional, Union

import cv2
import numpy as np

from mlsr_tf import paths

PathLike = Union[str, os.PathLike]

SUPPORTED_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_SUPPORTED_DTYPES = (np.uint8, np.uint16)
# Largest decoded image read_image accepts (width x height), unless $MLSR_MAX_IMAGE_PIXELS
# says otherwise: 2**27 = 134M pixels (e.g. 16384 x 8192), already 1 GiB as float64 RGB.
MAX_IMAGE_PIXELS = 1 << 27


class ImageError(ValueError):
  """A missing, corrupt or unsupported image file; the message names the path."""


def max_image_pixels() -> int:
  """The decoded-size limit: ``$MLSR_MAX_IMAGE_PIXELS``, else :data:`MAX_IMAGE_PIXELS`."""
  text = os.environ.get("MLSR_MAX_IMAGE_PIXELS", "")
  try:
    value = int(text) if text else MAX_IMAGE_PIXELS
  except ValueError:
    value = 0
  if value < 1:
    raise ImageError(f"MLSR_MAX_IMAGE_PIXELS must be a positive integer, got {text!r}")
  return value


def _be(data: bytes, offset: int, size: int) -> int:
  return int.from_bytes(data[offset:offset + size], "big")


def _png_size(data: bytes):
  if len(data) < 24 or data[12:16] != b"IHDR":
    return None
  return _be(data, 16, 4), _be(data, 20, 4)


def _jpeg_size(data: bytes):
  """Width and height from the first SOF marker; None if truncated or malformed."""
  pos = 2
  while pos + 4 <= len(data):
    if data[pos] != 0xFF:
      return None
    marker = data[pos + 1]
    if marker == 0xFF:  # Fill byte.
      pos += 1
      continue
    if marker in (0x01, 0xD8) or 0xD0 <= marker <= 0xD7:  # No length field.
      pos += 2
      continue
    length = _be(data, pos + 2, 2)
    if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
      if pos + 9 > len(data):
        return None
      size = _be(data, pos + 7, 2), _be(data, pos + 5, 2)
      # A complete JPEG ends with EOI (FFD9) after its scan; a cut one does not.
      return size if data.rfind(b"\xff\xd9") > pos else None
    if marker == 0xDA or length < 2:  # Scan data before any frame header.
      return None
    pos += 2 + length
  return None


def _bmp_size(data: bytes):
  if len(data) < 26:
    return None
  header = int.from_bytes(data[14:18], "little")
  if header == 12:
    return int.from_bytes(data[18:20], "little"), int.from_bytes(data[20:22], "little")
  width = int.from_bytes(data[18:22], "little", signed=True)
  height = int.from_bytes(data[22:26], "little", signed=True)
  return abs(width), abs(height)


def _tiff_size(data: bytes):
  """ImageWidth (256) and ImageLength (257) of the first IFD of a classic TIFF."""
  order = "little" if data[:2] == b"II" else "big"
  read = lambda offset, size: int.from_bytes(data[offset:offset + size], order)
  ifd = read(4, 4)
  if ifd < 8 or ifd + 2 > len(data):
    return None
  count = read(ifd, 2)
  if ifd + 2 + 12 * count > len(data):
    return None
  tags = {}
  for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
    tag, kind = read(entry, 2), read(entry + 2, 2)
    if tag in (256, 257) and kind in (3, 4):
      tags[tag] = read(entry + 8, 2 if kind == 3 else 4)
  if 256 not in tags or 257 not in tags:
    return None
  return tags[256], tags[257]


# Leading bytes -> the header reader of that format (the extension may lie; the bytes do not).
_HEADERS = ((b"\x89PNG\r\n\x1a\n", _png_size), (b"\xff\xd8", _jpeg_size), (b"BM", _bmp_size),
            (b"II*\x00", _tiff_size), (b"MM\x00*", _tiff_size))


def image_size(data: bytes, what: str = "image"):
  """``(width, height)`` read from the header of an encoded PNG/JPEG/BMP/TIFF, no decoding.

  Raises:
    ImageError: not one of these formats, a truncated or malformed header, or more than
      :func:`max_image_pixels` pixels (checked before anything is decoded).
  """
  for magic, reader in _HEADERS:
    if data.startswith(magic):
      try:
        size = reader(data)
      except IndexError:
        size = None
      break
  else:
    raise ImageError(f"corrupt or unsupported image file {what}: not a PNG, JPEG, BMP or TIFF")
  if size is None or min(size) < 1:
    raise ImageError(f"corrupt or truncated image file: {what}")
  limit = max_image_pixels()
  if size[0] * size[1] > limit:
    raise ImageError(
        f"image {what} is {size[0]}x{size[1]} ({size[0] * size[1]:,} pixels), more than the "
        f"limit of {limit:,} pixels (set MLSR_MAX_IMAGE_PIXELS to raise it)")
  return size


@contextlib.contextmanager
def _opencv_quiet():
  """OpenCV's own [ WARN ]/[ERROR] lines off (our errors say what went wrong, once)."""
  level = cv2.utils.logging.getLogLevel()
  cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
  try:
    yield
  finally:
    cv2.utils.logging.setLogLevel(level)


def read_image(path: PathLike) -> np.ndarray:
  """Reads a PNG/JPEG/BMP/TIFF file (8 or 16 bit, gray/RGB/RGBA).

  The image size is read from the file's header and checked against
  :func:`max_image_pixels` before anything is decoded.

  Args:
    path: the image file.

  Returns:
    ``HWC`` array, ``C`` in {1, 3, 4}, RGB(A) order, ``uint8`` or ``uint16`` as
    stored.

  Raises:
    ImageError: the file is missing, unreadable, too large, corrupt or of an
      unsupported type (extension, dtype or channel count).
  """
  path = pathlib.Path(path)
  if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
    raise ImageError(
        f"unsupported image type {path.suffix!r} for {str(path)!r} "
        f"(supported: {', '.join(SUPPORTED_EXTENSIONS)})")
  size = paths.check_input_file(path, "image file", ImageError).stat().st_size
  if size > max_image_pixels() * 8 + (1 << 20):  # More bytes than any image in the limit.
    raise ImageError(f"image file {str(path)!r} is too large ({size:,} bytes)")
  try:
    raw = path.read_bytes()
  except OSError as e:
    raise ImageError(f"cannot read image file {str(path)!r}: {e.strerror or e}") from None
  image_size(raw, repr(str(path)))
  data = np.frombuffer(raw, dtype=np.uint8)
  try:
    with _opencv_quiet():
      image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
  except cv2.error:
    image = None
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


# Output extension -> (OpenCV encoder extension, storable dtypes, storable channel counts).
_WRITERS = {
    ".png": (".png", (np.uint8, np.uint16), (1, 3, 4)),
    ".jpg": (".jpg", (np.uint8,), (1, 3)),
    ".jpeg": (".jpg", (np.uint8,), (1, 3)),
    ".bmp": (".bmp", (np.uint8,), (1, 3, 4)),
    ".tif": (".tiff", (np.uint8, np.uint16), (1, 3, 4)),
    ".tiff": (".tiff", (np.uint8, np.uint16), (1, 3, 4)),
}
JPEG_QUALITY = 95


def check_output_path(path: PathLike, dtype=None, channels: Optional[int] = None) -> str:
  """The format :func:`write_image` would write to ``path``, from its extension.

  Raises:
    ImageError: a directory or broken symbolic link, an extension no writer has, or (when
      given) a dtype or channel count the format cannot store (JPEG and BMP are 8-bit; JPEG
      has no alpha).
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  if os.path.isdir(path):
    raise ImageError(f"cannot write {str(path)!r}: it is a directory")
  if os.path.islink(path) and not os.path.exists(path):
    raise ImageError(f"cannot write {str(path)!r}: a dangling or looping symbolic link")
  if suffix not in _WRITERS:
    raise ImageError(f"cannot write {str(path)!r}: unsupported output type {suffix!r} "
                     f"(supported: {', '.join(_WRITERS)})")
  _, dtypes, channel_counts = _WRITERS[suffix]
  if dtype is not None and np.dtype(dtype) not in dtypes:
    raise ImageError(f"cannot write {np.dtype(dtype)} pixels to {str(path)!r}: {suffix} "
                     f"stores {' and '.join(np.dtype(d).name for d in dtypes)} only")
  if channels is not None and channels not in channel_counts:
    raise ImageError(f"cannot write a {channels}-channel image to {str(path)!r}: {suffix} "
                     f"stores {', '.join(map(str, channel_counts))} channels")
  return suffix


def write_image(path: PathLike, image: np.ndarray) -> None:
  """Writes an ``HWC`` (or ``HW``) uint8/uint16 image in the format its extension names.

  PNG, JPEG (8-bit, gray/RGB, quality :data:`JPEG_QUALITY`), BMP (8-bit) or TIFF, atomically:
  the data go to a temporary file in the target directory that is renamed over ``path``
  only once complete, so a failure never leaves a half-written file.

  Raises:
    ValueError: bad dtype or shape (message repeats them).
    ImageError: an extension or image the format cannot store, or an encoder failure.
    OSError: the directory is missing or not writable.
  """
  path = pathlib.Path(path)
  image = _check_storable(image, f"write_image({str(path)!r})")
  encoder = _WRITERS[check_output_path(path, image.dtype, image.shape[2])][0]
  channels = image.shape[2]
  if channels == 3:
    image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
  elif channels == 4:
    image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
  else:
    image = image[:, :, 0]
  params = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if encoder == ".jpg" else []
  try:
    with _opencv_quiet():
      ok, encoded = cv2.imencode(encoder, np.ascontiguousarray(image), params)
  except cv2.error:
    ok = False
  if not ok:
    raise ImageError(f"cannot encode {encoder[1:].upper()} for {str(path)!r}")
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


def write_png(path: PathLike, image: np.ndarray) -> None:
  """:func:`write_image` for a ``.png`` path (any other extension is an ImageError)."""
  if pathlib.Path(path).suffix.lower() != ".png":
    raise ImageError(f"write_png: {str(path)!r} is not a .png path (see write_image)")
  write_image(path, image)


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
