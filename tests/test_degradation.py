"""Tests for mlsr_tf.data.degradation: kernels, alignment, splits, TF twin."""

import math
import subprocess
import sys

import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

ZSSR_KERNEL = paths.data_root() / "kernels" / "zssr_bsd100_100_x2" / "kernel_x2.mat"


def _scipy_reference(image, kernel, scale):
  ndimage = pytest.importorskip("scipy.ndimage")
  blurred = np.stack([ndimage.correlate(image[..., c], kernel, mode="reflect")
                      for c in range(image.shape[-1])], -1)
  return blurred[::scale, ::scale]


def test_gaussian_kernel_properties():
  k = deg.gaussian_kernel(7, 1.0)
  assert k.dtype == np.float64 and k.shape == (7, 7)
  assert abs(k.sum() - 1) < 1e-12 and np.unravel_index(k.argmax(), k.shape) == (3, 3)
  np.testing.assert_allclose(k, k.T, atol=1e-15)
  np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-15)
  g = np.exp(-0.5 * (np.arange(7) - 3.0) ** 2)
  np.testing.assert_allclose(k, np.outer(g, g) / np.outer(g, g).sum(), atol=1e-15)
  # Wide along x, narrow along y; theta = pi/2 swaps them.
  aniso = deg.gaussian_kernel(9, 3.0, 0.5)
  assert aniso[4].sum() > aniso[:, 4].sum()
  np.testing.assert_allclose(deg.gaussian_kernel(9, 3.0, 0.5, math.pi / 2), aniso.T, atol=1e-12)
  # Covariance along the rotated axis matches sigma_x^2 (wide, 45 degrees).
  k45 = deg.gaussian_kernel(41, 4.0, 1.0, math.pi / 4)
  c = np.arange(41) - 20.0
  x, y = np.meshgrid(c, -c)
  along = (x + y) / math.sqrt(2)
  assert abs(np.sum(k45 * along ** 2) - 16.0) < 1e-3
  with pytest.raises(ValueError, match="-1"):
    deg.gaussian_kernel(5, -1.0)
  with pytest.raises(ValueError, match="0"):
    deg.gaussian_kernel(0, 1.0)


def test_delta_kernel_is_pure_subsampling():
  image = np.random.default_rng(0).integers(0, 256, (13, 10, 3)).astype(np.uint8)
  for size, scale in ((5, 2), (9, 3), (4, 2)):
    delta = np.zeros((size, size))
    delta[size // 2, size // 2] = 1
    out = deg.degrade(image, deg.from_kernel(delta, scale))
    np.testing.assert_array_equal(out, image[::scale, ::scale])
    tf_out = deg.degrade_tf(image.astype(np.float32), delta, scale)
    np.testing.assert_allclose(tf_out.numpy() if hasattr(tf_out, "numpy") else tf_out,
                               image[::scale, ::scale], atol=1e-4)


@pytest.mark.parametrize("kernel_shape", [(5, 5), (9, 9), (4, 6)])
def test_kernel_degradation_matches_scipy_correlate(kernel_shape):
  rng = np.random.default_rng(1)
  image = rng.random((21, 16, 3))
  kernel = rng.random(kernel_shape)
  kernel /= kernel.sum()
  for scale in (2, 3, 4):
    got = deg.degrade(image, deg.from_kernel(kernel, scale))
    assert got.shape == (math.ceil(21 / scale), math.ceil(16 / scale), 3)
    np.testing.assert_allclose(got, _scipy_reference(image, kernel, scale), atol=1e-12)


def test_bicubic_degradation_is_imresize():
  image = np.random.default_rng(2).integers(0, 256, (24, 18, 3)).astype(np.uint8)
  for scale in (2, 3, 4):
    out = deg.degrade(image, deg.bicubic(scale))
    np.testing.assert_array_equal(out, imresize_lib.imresize(image, 1 / scale))
  assert deg.bicubic(2).is_bicubic and deg.bicubic(2).kernel is None


def test_uint8_and_float_paths_agree():
  image = np.random.default_rng(3).integers(0, 256, (16, 16, 3)).astype(np.uint8)
  d = deg.from_kernel(deg.gaussian_kernel(5, 1.3), 2)
  as_uint = deg.degrade(image, d)
  as_float = deg.degrade(image.astype(np.float64), d)
  assert as_uint.dtype == np.uint8 and as_float.dtype == np.float64
  np.testing.assert_array_equal(as_uint, image_io.float_to_uint_saturate(as_float))


def test_random_kernels_and_splits():
  a = deg.random_5x5_kernels(10, seed=7)
  b = deg.random_5x5_kernels(20, seed=7)
  np.testing.assert_array_equal(a, b[:10])  # Kernel i independent of count.
  assert a.shape == (10, 5, 5)
  np.testing.assert_allclose(a.sum(axis=(1, 2)), 1, atol=1e-12)
  assert not np.allclose(a, deg.random_5x5_kernels(10, seed=8))
  assert np.all(a >= 0)
  splits = {s: deg.kernel_split(s) for s in ("train", "validation", "test")}
  assert [len(splits[s]) for s in ("train", "validation", "test")] == [38000, 1000, 1000]
  pool = deg.random_5x5_kernels(40000, seed=0)
  np.testing.assert_array_equal(np.concatenate(list(splits.values())), pool)
  np.testing.assert_array_equal(deg.kernel_split("test"), splits["test"])  # Reproducible.
  assert not np.array_equal(deg.kernel_split("test", seed=1), splits["test"])
  with pytest.raises(ValueError, match="'val'"):
    deg.kernel_split("val")


def test_kernel_sigma_reference_values_and_tf_twin():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  cases = [
      (deg.gaussian_kernel(25, 2.0), 2.0),  # Isotropic, untruncated: sigma itself.
      (deg.gaussian_kernel(31, 1.6, 1.2, 0.4), math.sqrt((1.6 ** 2 + 1.2 ** 2) / 2)),
      (deg.gaussian_kernel(31, 1.6, 1.2, 1.9), math.sqrt((1.6 ** 2 + 1.2 ** 2) / 2)),
      (np.pad(np.ones((1, 1)), 3), 0.0),  # A delta: no blur.
      (np.array([[1.0, 1.0]]), 0.5 / math.sqrt(2)),  # Two taps: variance 1/4 along x only.
  ]
  for kernel, expected in cases:
    assert deg.kernel_sigma(kernel) == pytest.approx(expected, abs=1e-6)
    assert float(deg.kernel_sigma_tf(tf.constant(kernel, tf.float32))) == pytest.approx(
        expected, abs=1e-5)
  # Scale-free in the kernel's values; shifted off-centre, the width is unchanged.
  kernel = deg.gaussian_kernel(15, 1.3)
  assert deg.kernel_sigma(7 * kernel) == pytest.approx(1.3, abs=1e-4)
  assert deg.kernel_sigma(np.pad(kernel, ((0, 4), (4, 0)))) == pytest.approx(1.3, abs=1e-4)
  # The random 5x5 kernels stay below the 1.7 band of the shipped blur model's step sizes.
  widths = [deg.kernel_sigma(k) for k in deg.kernel_split("test")]
  assert 1.2 < max(widths) < 1.3
  assert float(deg.kernel_sigma_tf(tf.zeros((0, 0)))) == 0.0  # The bicubic request.
  with pytest.raises(ValueError, match="all zeros"):
    deg.kernel_sigma(np.zeros((3, 3)))


def test_load_kernel_formats(tmp_path):
  k = deg.gaussian_kernel(5, 1.0, 2.0, 0.5)
  np.save(tmp_path / "k.npy", k * 3)
  np.testing.assert_allclose(deg.load_kernel(tmp_path / "k.npy"), k, atol=1e-15)
  scipy_io = pytest.importorskip("scipy.io")
  scipy_io.savemat(tmp_path / "other.mat", {"psf": k})
  np.testing.assert_allclose(deg.load_kernel(tmp_path / "other.mat"), k, atol=1e-15)
  scipy_io.savemat(tmp_path / "two.mat", {"a": k, "b": k})
  with pytest.raises(ValueError, match="two.mat"):
    deg.load_kernel(tmp_path / "two.mat")
  (tmp_path / "bad.mat").write_bytes(b"garbage")
  with pytest.raises(ValueError, match="bad.mat"):
    deg.load_kernel(tmp_path / "bad.mat")
  with pytest.raises(ValueError, match="missing.npy"):
    deg.load_kernel(tmp_path / "missing.npy")
  np.save(tmp_path / "neg.npy", -k)
  with pytest.raises(ValueError, match="negative values"):
    deg.load_kernel(tmp_path / "neg.npy")
  if ZSSR_KERNEL.exists():
    zssr = deg.load_kernel(ZSSR_KERNEL)
    assert zssr.shape == (9, 9) and abs(zssr.sum() - 1) < 1e-12


def test_parse_degradation():
  assert deg.parse_degradation("bicubic", 3).is_bicubic
  g = deg.parse_degradation("gaussian:1.5,0.5,0.3", 2)
  assert g.scale == 2 and g.kernel.shape == (11, 11)
  np.testing.assert_allclose(g.kernel, deg.gaussian_kernel(11, 1.5, 0.5, 0.3))
  iso = deg.parse_degradation("gaussian:1.0", 4)
  np.testing.assert_allclose(iso.kernel, deg.gaussian_kernel(7, 1.0))
  assert deg.parse_degradation("gaussian:1,1,0,5", 2).kernel.shape == (5, 5)
  for bad in ("gaussian:", "gaussian:a,b", "gaussian:-1", "gaussian:1,1,0,2.5", "box", "k.png"):
    with pytest.raises(ValueError, match=bad.split(":")[0]):
      deg.parse_degradation(bad, 2)
  with pytest.raises(ValueError, match="0"):
    deg.parse_degradation("bicubic", 0)
  if ZSSR_KERNEL.exists():
    assert deg.parse_degradation(str(ZSSR_KERNEL), 2).kernel.shape == (9, 9)


def test_degrade_tf_matches_numpy_and_per_image_kernels():
  tf = pytest.importorskip("tensorflow")
  rng = np.random.default_rng(4)
  images = rng.random((3, 17, 14, 3))
  kernels = deg.random_5x5_kernels(3, seed=0)
  got = deg.degrade_tf(tf.constant(images, tf.float32), kernels, 2).numpy()
  for i in range(3):
    want = deg.degrade(images[i], deg.from_kernel(kernels[i], 2))
    np.testing.assert_allclose(got[i], want, atol=1e-5)
  bic = deg.degrade_tf(images.astype(np.float32), deg.bicubic(3)).numpy()
  np.testing.assert_allclose(bic[1], deg.degrade(images[1], deg.bicubic(3)), atol=1e-4)
  with pytest.raises(ValueError, match="None"):
    deg.degrade_tf(images, kernels[0])
  with pytest.raises(ValueError, match="3"):
    deg.degrade_tf(images, deg.bicubic(2), scale=3)


def test_degrade_tf_in_saved_model_style_function():
  tf = pytest.importorskip("tensorflow")

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.float32),
                                tf.TensorSpec([None, None], tf.float32)])
  def down(image, kernel):
    return deg.degrade_tf(image, kernel, 2)

  image = np.random.default_rng(5).random((15, 12, 3)).astype(np.float32)
  for k in (deg.gaussian_kernel(5, 1.0), deg.gaussian_kernel(9, 2.0, 1.0, 1.0)):
    want = deg.degrade(image.astype(np.float64), deg.from_kernel(k, 2))
    np.testing.assert_allclose(down(image, k.astype(np.float32)).numpy(), want, atol=1e-5)


def test_make_lr_down():
  lr = np.random.default_rng(6).integers(0, 256, (20, 20, 3)).astype(np.uint8)
  d = deg.bicubic(2)
  np.testing.assert_array_equal(deg.make_lr_down(lr, d), deg.degrade(lr, d))
  tf = pytest.importorskip("tensorflow")
  d = deg.from_kernel(deg.gaussian_kernel(5, 1.0), 2)
  got = deg.make_lr_down(tf.constant(lr / 255.0, tf.float32), d).numpy()
  np.testing.assert_allclose(got, deg.degrade(lr / 255.0, d), atol=1e-6)


def test_numpy_modules_import_without_tensorflow():
  code = ("import sys; sys.modules['tensorflow'] = None\n"
          "import mlsr_tf.data.degradation, mlsr_tf.data.imresize, mlsr_tf.data.image_io\n"
          "import mlsr_tf.metrics\n"
          "assert mlsr_tf.data.degradation.random_5x5_kernels(2, 0).shape == (2, 5, 5)\n")
  subprocess.run([sys.executable, "-c", code], check=True, cwd=str(paths.REPO_ROOT))


# ----------------------------------------------------------------- hostile kernels (issue 14)


def _kernel_files(tmp):
  """(file, expected message part) for kernel files that must be refused in one line."""
  scipy_io = pytest.importorskip("scipy.io")
  k = deg.gaussian_kernel(5, 1.0)
  cases = []

  def npy(name, array, pattern):
    np.save(tmp / name, array, allow_pickle=True)
    cases.append((tmp / name, pattern))

  def mat(name, contents, pattern):
    scipy_io.savemat(tmp / name, contents)
    cases.append((tmp / name, pattern))

  npy("zeros.npy", np.zeros((5, 5)), "all zeros")
  npy("negative.npy", k - 0.05, "negative values")
  npy("nan.npy", np.where(k > 0.1, np.nan, k), "non-finite")
  npy("inf.npy", np.where(k > 0.1, np.inf, k), "non-finite")
  npy("cube.npy", np.ones((3, 3, 3)), r"2-D array, got shape \(3, 3, 3\)")
  npy("row.npy", np.ones(5), r"2-D array, got shape \(5,\)")
  npy("empty.npy", np.ones((0, 5)), r"non-empty 2-D")
  npy("bool.npy", np.ones((3, 3), bool), "dtype bool")
  npy("complex.npy", k.astype(np.complex128), "dtype complex128")
  npy("text.npy", np.array([["a", "b"]]), "text")
  npy("objects.npy", np.array([{"a": 1}], dtype=object), "no numeric array")
  npy("wide.npy", np.ones((3, 300)), "larger than the limit of 255x255")
  mat("string.mat", {"Kernel": "hello"}, "text")
  mat("cell.mat", {"Kernel": np.array([k, k[:3]], dtype=object)}, "dtype object")
  mat("empty.mat", {"Kernel": np.zeros((0, 0))}, "non-empty 2-D")
  (tmp / "garbage.npy").write_bytes(b"garbage bytes, not numpy")
  cases.append((tmp / "garbage.npy", "not a NumPy .npy file"))
  (tmp / "garbage.mat").write_bytes(b"MATLAB 5.0 MAT-file, but then nothing")
  cases.append((tmp / "garbage.mat", "cannot read kernel file"))
  (tmp / "nothing.npy").write_bytes(b"")
  cases.append((tmp / "nothing.npy", "is empty"))
  (tmp / "folder.mat").mkdir()
  cases.append((tmp / "folder.mat", "is a directory"))
  (tmp / "loop.npy").symlink_to(tmp / "loop.npy")
  cases.append((tmp / "loop.npy", "loop.npy"))
  return cases


def test_bad_kernel_files_are_one_line_errors_naming_the_file(tmp_path):
  for path, pattern in _kernel_files(tmp_path):
    with pytest.raises(ValueError, match=pattern) as caught:
      deg.parse_degradation(str(path), 2)
    message = str(caught.value)
    assert path.name in message and "\n" not in message and len(message) < 300, message


def test_kernel_file_size_is_checked_before_reading(tmp_path, monkeypatch):
  np.save(tmp_path / "k.npy", np.ones((5, 5)))
  monkeypatch.setattr(deg, "MAX_KERNEL_FILE_BYTES", 100)
  with pytest.raises(ValueError, match="too large for a kernel"):
    deg.load_kernel(tmp_path / "k.npy")


@pytest.mark.parametrize("spec", ["gaussian:1e6,1e6,0", "gaussian:1,1,0,1000001",
                                  "gaussian:1e308", "gaussian:43", "gaussian:1,1,0,257"])
def test_huge_gaussian_specs_are_refused_before_allocating(spec):
  with pytest.raises(ValueError, match="limit"):
    deg.parse_degradation(spec, 2)
  assert deg.parse_degradation("gaussian:42", 2).kernel.shape == (253, 253)  # Just fits.


def test_kernel_validator_accepts_integer_and_overflowing_kernels():
  np.testing.assert_array_equal(deg.check_kernel(np.ones((2, 2), np.uint8)), np.full((2, 2), .25))
  np.testing.assert_allclose(deg.check_kernel([[1e308, 1e308]]), [[0.5, 0.5]])
  with pytest.raises(ValueError, match="my kernel is all zeros"):
    deg.check_kernel(np.zeros((3, 3)), "my kernel")


def test_kernel_larger_than_the_image_is_refused():
  blur = deg.parse_degradation("gaussian:2.0", 2)  # 13x13
  deg.check_fits(blur, (13, 40))
  deg.check_fits(deg.bicubic(2), (1, 1))
  with pytest.raises(ValueError, match=r"'gaussian:2.0' \(13x13\) is larger than lr.png \(40x12\)"):
    deg.check_fits(blur, (12, 40), "lr.png")
