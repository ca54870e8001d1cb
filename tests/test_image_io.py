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


# ----------------------------------------------------------------- hostile inputs (issue 14)


def _encoded(ext, image=None):
  image = np.zeros((6, 5, 3), np.uint8) if image is None else image
  ok, data = cv2.imencode(ext, image)
  assert ok
  return bytearray(data.tobytes())


def _claim_size(ext, width, height):
  """An encoded image whose header claims width x height (the pixel data stay 6x5)."""
  data = _encoded(ext)
  if ext == ".png":
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
  elif ext == ".jpg":
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
  elif ext == ".bmp":
    data[18:26] = width.to_bytes(4, "little") + height.to_bytes(4, "little")
  else:  # TIFF, little-endian: patch the ImageWidth/ImageLength entries of the first IFD.
    ifd = int.from_bytes(data[4:8], "little")
    for entry in range(ifd + 2, ifd + 2 + 12 * int.from_bytes(data[ifd:ifd + 2], "little"), 12):
      tag = int.from_bytes(data[entry:entry + 2], "little")
      if tag in (256, 257):
        data[entry + 2:entry + 4] = (4).to_bytes(2, "little")  # LONG
        data[entry + 8:entry + 12] = (width if tag == 256 else height).to_bytes(4, "little")
  return bytes(data)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_decoded_size_limit_is_checked_from_the_header(tmp_path, ext, capfd):
  path = tmp_path / ("huge" + ext)
  path.write_bytes(_claim_size(ext, 60000, 60000))
  with pytest.raises(image_io.ImageError, match=r"huge.*60000x60000.*limit"):
    image_io.read_image(path)
  assert image_io.image_size(_claim_size(ext, 7, 9)) == (7, 9)
  assert capfd.readouterr().err == ""  # No OpenCV output on the terminal.


def test_size_limit_from_the_environment(tmp_path, monkeypatch):
  path = tmp_path / "a.png"
  image_io.write_png(path, np.zeros((10, 10, 3), np.uint8))
  monkeypatch.setenv("MLSR_MAX_IMAGE_PIXELS", "99")
  with pytest.raises(image_io.ImageError, match="limit of 99 pixels"):
    image_io.read_image(path)
  monkeypatch.setenv("MLSR_MAX_IMAGE_PIXELS", "100")
  assert image_io.read_image(path).shape == (10, 10, 3)
  monkeypatch.setenv("MLSR_MAX_IMAGE_PIXELS", "lots")
  with pytest.raises(image_io.ImageError, match="'lots'"):
    image_io.read_image(path)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif"])
def test_truncated_files_are_one_error_and_opencv_stays_quiet(tmp_path, ext, capfd):
  image = np.random.default_rng(0).integers(0, 256, (40, 50, 3)).astype(np.uint8)
  data = _encoded(ext, image)
  path = tmp_path / ("cut" + ext)
  path.write_bytes(bytes(data[:len(data) // 2]))
  with pytest.raises(image_io.ImageError, match="cut"):
    image_io.read_image(path)
  assert capfd.readouterr().err == ""


def test_paths_that_are_not_image_files(tmp_path):
  (tmp_path / "dir.png").mkdir()
  loop = tmp_path / "loop.png"
  loop.symlink_to(loop)
  (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere.png")
  os.mkfifo(tmp_path / "fifo.png")
  (tmp_path / "text.png").write_text("hello, not an image")
  for name, pattern in (("dir.png", "is a directory"), ("loop.png", "loop.png"),
                        ("dangling.png", "no such image file"),
                        ("fifo.png", "not a regular file"), ("text.png", "not a PNG")):
    with pytest.raises(image_io.ImageError, match=pattern):
      image_io.read_image(tmp_path / name)


def test_unicode_path_round_trip(tmp_path):
  path = tmp_path / "bilder ü 图像" / "ñ.png"
  path.parent.mkdir()
  image = _rng_image((5, 4, 3), np.uint8)
  image_io.write_image(path, image)
  np.testing.assert_array_equal(image_io.read_image(path), image)


@pytest.mark.parametrize("ext,dtype,channels", [
    (".png", np.uint16, 4), (".tif", np.uint16, 3), (".tiff", np.uint8, 1),
    (".bmp", np.uint8, 3), (".jpg", np.uint8, 3), (".jpeg", np.uint8, 1)])
def test_write_image_uses_the_format_of_the_extension(tmp_path, ext, dtype, channels):
  image = _rng_image((8, 6, channels), dtype)
  path = tmp_path / ("x" + ext)
  image_io.write_image(path, image)
  magic = {".png": b"\x89PNG", ".tif": b"II*\x00", ".tiff": b"II*\x00", ".bmp": b"BM",
           ".jpg": b"\xff\xd8", ".jpeg": b"\xff\xd8"}[ext]
  assert path.read_bytes().startswith(magic)
  back = image_io.read_image(path)
  assert back.shape == image.shape and back.dtype == dtype
  if not ext.startswith(".jp"):  # Lossless formats.
    np.testing.assert_array_equal(back, image)


def test_write_image_refuses_what_the_format_cannot_store(tmp_path):
  cases = ((tmp_path / "x.gif", np.uint8, 3, "unsupported output type '.gif'"),
           (tmp_path / "x.jpg", np.uint16, 3, "uint16 pixels"),
           (tmp_path / "x.jpg", np.uint8, 4, "4-channel"),
           (tmp_path / "x.bmp", np.uint16, 1, "uint16"),
           (tmp_path / "noext", np.uint8, 3, "unsupported output type ''"))
  for path, dtype, channels, pattern in cases:
    with pytest.raises(image_io.ImageError, match=pattern):
      image_io.write_image(path, np.zeros((4, 4, channels), dtype))
  with pytest.raises(image_io.ImageError, match="not a .png path"):
    image_io.write_png(tmp_path / "x.jpg", np.zeros((4, 4, 3), np.uint8))
  assert not list(tmp_path.iterdir())  # Nothing written, no temporaries.
