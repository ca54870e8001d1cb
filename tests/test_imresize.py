"""Tests for mlsr_tf.data.imresize: MATLAB bit-exactness and the TF twin."""

import math
import pathlib

import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

SET5 = paths.data_root() / "datasets" / "Set5"


def _reference_resize_1d(signal, out_length, scale):
  """Slow, literal transcription of MATLAB's bicubic contributions (for float)."""
  n = len(signal)
  width = 4.0 / scale if scale < 1 else 4.0
  kern = ((lambda x: scale * imresize_lib.cubic(scale * x)) if scale < 1
          else imresize_lib.cubic)
  out = []
  for x in range(1, out_length + 1):
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = math.floor(u - width / 2)
    idx = [left + p for p in range(int(math.ceil(width)) + 2)]
    w = np.array([kern(np.float64(u - j)) for j in idx])
    w = w / w.sum()
    vals = []
    for j in idx:  # 1-based, symmetric extension.
      j0 = j - 1
      while j0 < 0 or j0 >= n:
        j0 = -j0 - 1 if j0 < 0 else 2 * n - 1 - j0
      vals.append(signal[j0])
    out.append(float(np.dot(w, vals)))
  return np.array(out)


def _reference_resize(image, scale):
  h, w = image.shape
  out_h, out_w = math.ceil(h * scale - 1e-9), math.ceil(w * scale - 1e-9)
  rows = np.stack([_reference_resize_1d(image[:, c], out_h, scale) for c in range(w)], 1)
  return np.stack([_reference_resize_1d(rows[r], out_w, scale) for r in range(out_h)], 0)


@pytest.mark.parametrize("scale", [2, 4])
def test_matches_matlab_set5_bit_exact(scale):
  ref_dir = SET5 / "LR_bicubic" / f"X{scale}"
  if not (SET5 / "HR").is_dir():
    pytest.skip("../shared not available")
  if not ref_dir.is_dir():
    pytest.skip(f"no MATLAB reference for x{scale}")
  for hr_path in sorted((SET5 / "HR").glob("*.png")):
    hr = image_io.read_image(hr_path)
    h, w = hr.shape[:2]
    hr = hr[:h - h % scale, :w - w % scale]
    lr = imresize_lib.imresize(hr, 1 / scale)
    ref = image_io.read_image(ref_dir / f"{hr_path.stem}x{scale}.png")
    assert lr.dtype == np.uint8
    np.testing.assert_array_equal(lr, ref, err_msg=hr_path.name)


def test_uint8_rounds_between_passes():
  # Without the uint8 rounding between the two passes MATLAB is not matched.
  if not (SET5 / "HR").is_dir():
    pytest.skip("../shared not available")
  hr = image_io.read_image(SET5 / "HR" / "butterfly.png")
  ref = image_io.read_image(SET5 / "LR_bicubic" / "X2" / "butterflyx2.png")
  unrounded = image_io.float_to_uint_saturate(imresize_lib.imresize(hr.astype(np.float64), 0.5))
  assert (unrounded != ref).any()


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 0.7, 2, 3, 1.5])
def test_float_matches_literal_reference(scale):
  image = np.random.default_rng(1).random((13, 11))
  got = imresize_lib.imresize(image, scale)
  assert got.dtype == np.float64
  np.testing.assert_allclose(got, _reference_resize(image, scale), atol=1e-12)


def test_known_values_and_invariants():
  # x2 upscale of a step, by hand: output pixel 2 sits at u = 1.25, its taps at
  # offsets 1.25, 0.25, -0.75, -1.75 have weights cubic() = -0.0703125,
  # 0.8671875, 0.2265625, -0.0234375 on inputs 0, 0, 0, 1; pixel 4 (u = 2.25)
  # puts 0.2265625 and -0.0234375 on the two ones.  Symmetric by construction.
  step = np.array([[0.0, 0.0, 1.0, 1.0]])
  got = imresize_lib.imresize(step, output_shape=(1, 8))[0]
  np.testing.assert_allclose(
      got, [0, -0.0234375, -0.0703125, 0.203125, 0.796875, 1.0703125,
            1.0234375, 1], atol=1e-12)
  const = np.full((9, 7, 3), 0.25)
  np.testing.assert_allclose(imresize_lib.imresize(const, 1 / 3), 0.25, atol=1e-12)
  assert imresize_lib.imresize(np.zeros((255, 256), np.uint8), 1 / 3).shape == (85, 86)
  assert imresize_lib.imresize(np.zeros((5, 7, 2), np.uint8), 3).shape == (15, 21, 2)
  assert imresize_lib.imresize(np.zeros((5, 7)), 0.5).shape == (3, 4)


def test_other_uint8_scales_round_the_float_passes():
  # uint8 x3 = rows pass rounded to uint8, then columns pass rounded.
  image = np.random.default_rng(2).integers(0, 256, (30, 24, 3)).astype(np.uint8)
  got = imresize_lib.imresize(image, 1 / 3)
  rows = image_io.float_to_uint_saturate(imresize_lib.imresize(
      image.astype(np.float64), output_shape=(10, 24), scale=(1 / 3, 1.0)))
  want = image_io.float_to_uint_saturate(imresize_lib.imresize(
      rows.astype(np.float64), output_shape=(10, 8), scale=(1.0, 1 / 3)))
  np.testing.assert_array_equal(got, want)


def test_bad_arguments():
  with pytest.raises(ValueError, match="neither"):
    imresize_lib.imresize(np.zeros((4, 4)))
  with pytest.raises(ValueError, match="-2"):
    imresize_lib.imresize(np.zeros((4, 4)), -2)
  with pytest.raises(ValueError, match="int32"):
    imresize_lib.imresize(np.zeros((4, 4), np.int32), 2)
  with pytest.raises(ValueError, match=r"\(4,\)"):
    imresize_lib.imresize(np.zeros(4), 2)


@pytest.mark.parametrize("scale", [0.5, 1 / 3, 0.25, 2, 4, (0.5, 3)])
def test_tf_matches_numpy(scale):
  tf = pytest.importorskip("tensorflow")
  image = np.random.default_rng(3).random((2, 23, 17, 3))
  want = np.stack([imresize_lib.imresize(im, scale) for im in image])
  got = imresize_lib.imresize_tf(tf.constant(image, tf.float32), scale).numpy()
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=1e-4)
  got_hwc = imresize_lib.imresize_tf(image[0].astype(np.float32), scale).numpy()
  np.testing.assert_allclose(got_hwc, want[0], atol=1e-4)


def test_tf_dynamic_shapes_in_function_and_dataset():
  tf = pytest.importorskip("tensorflow")

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32)])
  def down(x):
    return imresize_lib.imresize_tf(x, 1 / 3)

  for shape in ((1, 12, 9, 3), (2, 7, 20, 3)):
    x = np.random.default_rng(4).random(shape).astype(np.float32)
    want = np.stack([imresize_lib.imresize(im, 1 / 3) for im in x])
    np.testing.assert_allclose(down(tf.constant(x)).numpy(), want, atol=1e-4)

  images = [np.random.default_rng(i).random((8 + i, 6 + 2 * i, 1)).astype(np.float32)
            for i in range(2)]
  ds = tf.data.Dataset.from_generator(
      lambda: iter(images), output_signature=tf.TensorSpec([None, None, 1], tf.float32))
  ds = ds.map(lambda x: imresize_lib.imresize_tf(x, output_shape=(5, 4)))
  for got, im in zip(ds, images):
    want = imresize_lib.imresize(im, output_shape=(5, 4))
    np.testing.assert_allclose(got.numpy(), want, atol=1e-4)
