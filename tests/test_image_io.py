"""Tests for mlsr_tf.data.image_io: layout, dtypes, channel order, errors."""

import os

import cv2
import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.data import image_io


def _rng_image(shape, dtype):
  rng = np.random.default_rng(0)
  return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_round_trip(tmp_path, dtype, channels):
  image = _rng_image((7, 5, channels), dtype)
  path = tmp_path / "x.png"
  image_io.write_png(path, image)
  back = image_io.read_image(path)
  assert back.dtype == dtype and back.shape == (7, 5, channels)
  np.testing.assert_array_equal(back, image)
  assert os.listdir(tmp_path) == ["x.png"]  # No temp file left behind.


def test_channel_order_is_rgb(tmp_path):
  # Write with OpenCV directly (BGR): pure red must come back as R=255.
  bgr = np.zeros((2, 2, 3), np.uint8)
  bgr[..., 2] = 255
  for ext in (".png", ".bmp", ".tif"):
    path = tmp_path / ("red" + ext)
    cv2.imwrite(str(path), bgr)
    rgb = image_io.read_image(path)
    np.testing.assert_array_equal(rgb[0, 0], [255, 0, 0])


def test_gray_is_hw1_and_jpeg(tmp_path):
  gray = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))
  cv2.imwrite(str(tmp_path / "g.jpg"), gray, [cv2.IMWRITE_JPEG_QUALITY, 100])
  back = image_io.read_image(tmp_path / "g.jpg")
  assert back.shape == (16, 16, 1) and back.dtype == np.uint8
  assert np.abs(back[..., 0].astype(int) - gray).max() <= 2


def test_16bit_tiff(tmp_path):
  image = _rng_image((4, 6, 3), np.uint16)
  cv2.imwrite(str(tmp_path / "a.tiff"), image[..., ::-1])
  np.testing.assert_array_equal(image_io.read_image(tmp_path / "a.tiff"), image)


def test_errors_name_the_path(tmp_path):
  with pytest.raises(image_io.ImageError, match="missing.png"):
    image_io.read_image(tmp_path / "missing.png")
  corrupt = tmp_path / "corrupt.png"
  corrupt.write_bytes(b"\x89PNG not really")
  with pytest.raises(image_io.ImageError, match="corrupt.png"):
    image_io.read_image(corrupt)
  empty = tmp_path / "empty.jpg"
  empty.write_bytes(b"")
  with pytest.raises(image_io.ImageError, match="empty.jpg"):
    image_io.read_image(empty)
  (tmp_path / "a.gif").write_bytes(b"GIF89a")
  with pytest.raises(image_io.ImageError, match="a.gif"):
    image_io.read_image(tmp_path / "a.gif")
  assert issubclass(image_io.ImageError, ValueError)


def test_write_rejects_bad_input_and_keeps_old_file(tmp_path):
  path = tmp_path / "keep.png"
  image_io.write_png(path, np.zeros((2, 2, 3), np.uint8))
  before = path.read_bytes()
  with pytest.raises(ValueError, match="float32"):
    image_io.write_png(path, np.zeros((2, 2, 3), np.float32))
  with pytest.raises(ValueError, match=r"\(2, 2, 2\)"):
    image_io.write_png(path, np.zeros((2, 2, 2), np.uint8))
  assert path.read_bytes() == before
  with pytest.raises(OSError):
    image_io.write_png(tmp_path / "no_dir" / "x.png", np.zeros((2, 2, 3), np.uint8))


def test_float_conversions():
  image = np.array([[[0], [1], [127], [128], [255]]], np.uint8)
  f = image_io.to_float(image)
  assert f.dtype == np.float32 and f.max() == 1.0 and f.min() == 0.0
  np.testing.assert_array_equal(image_io.to_uint(f), image)
  assert image_io.to_float(np.array([65535], np.uint16))[0] == 1.0
  np.testing.assert_array_equal(image_io.to_uint(np.array([-1.0, 2.0])), [0, 255])
  # Half away from zero, like MATLAB: 0.5/255 -> 1, 1.5/255 -> 2.
  np.testing.assert_array_equal(
      image_io.to_uint(np.array([0.5, 1.5, 2.5]) / 255.0), [1, 2, 3])
  np.testing.assert_array_equal(
      image_io.to_uint(np.array([1.0]), np.uint16), [65535])
  with pytest.raises(ValueError, match="float64"):
    image_io.to_float(np.zeros(3))
  with pytest.raises(ValueError, match="int32"):
    image_io.to_uint(np.zeros(3), np.int32)


def test_reads_shared_gray_and_rgb():
  root = paths.data_root()
  bridge = root / "datasets" / "Set14" / "HR" / "bridge.png"
  if not bridge.exists():
    pytest.skip("../shared not available")
  assert image_io.read_image(bridge).shape == (512, 512, 1)
  baby = image_io.read_image(root / "datasets" / "Set5" / "HR" / "baby.png")
  assert baby.shape == (512, 512, 3) and baby.dtype == np.uint8


def test_written_png_has_ordinary_permissions(tmp_path):
  """The atomic temp file (mkstemp: 0600) must not leave outputs unreadable to others."""
  old = os.umask(0o022)
  try:
    path = tmp_path / "perm.png"
    image_io.write_png(path, np.zeros((4, 4, 3), np.uint8))
    assert (path.stat().st_mode & 0o777) == 0o644
  finally:
    os.umask(old)
