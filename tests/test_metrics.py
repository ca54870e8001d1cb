"""Tests for mlsr_tf.metrics: Y conversion, PSNR, SSIM reference values."""

import math

import numpy as np
import pytest

from mlsr_tf import metrics
from mlsr_tf import paths
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib


def test_rgb_to_y_matches_matlab_coefficients():
  assert metrics.rgb_to_y(np.zeros((1, 1, 3), np.uint8))[0, 0] == 16.0
  assert abs(metrics.rgb_to_y(np.full((1, 1, 3), 255, np.uint8))[0, 0] - 235.0) < 1e-12
  # MATLAB: rgb2ycbcr(uint8([255 0 0])) luma = 81.481 before rounding.
  red = np.array([[[255, 0, 0]]], np.uint8)
  assert abs(metrics.rgb_to_y(red)[0, 0] - 81.481) < 1e-12
  gray = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
  np.testing.assert_array_equal(metrics.rgb_to_y(gray), gray[..., 0])
  rgba = np.concatenate([red, np.zeros((1, 1, 1), np.uint8)], -1)
  assert metrics.rgb_to_y(rgba)[0, 0] == metrics.rgb_to_y(red)[0, 0]


def test_psnr_reference_values():
  a = np.full((10, 10, 1), 100, np.uint8)
  b = a.copy()
  assert metrics.psnr(a, b, 0) == math.inf
  b[...] = 110  # MSE 100 on Y (gray is its own Y).
  assert abs(metrics.psnr(a, b, 0) - 10 * math.log10(255 ** 2 / 100)) < 1e-12
  # Errors only in the border disappear once it is shaved.
  c = a.copy()
  c[0, :] = 0
  c[:, -2:] = 0
  assert metrics.psnr(a, c, 2) == math.inf
  assert metrics.psnr(a, c, 1) < 100


def test_ssim_properties():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (40, 40, 3)).astype(np.uint8)
  assert abs(metrics.ssim(a, a, 4) - 1.0) < 1e-12
  noisy = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
  s = metrics.ssim(a, noisy, 4)
  assert 0 < s < 1 and abs(s - metrics.ssim(noisy, a, 4)) < 1e-12


def test_ssim_matches_direct_formula():
  # Brute-force 2-D window sums at a few positions, independent of the
  # separable implementation.
  rng = np.random.default_rng(1)
  a = rng.integers(0, 256, (14, 13, 1)).astype(np.uint8)
  b = rng.integers(0, 256, (14, 13, 1)).astype(np.uint8)
  x, y = a[..., 0].astype(float), b[..., 0].astype(float)
  r = np.arange(11) - 5.0
  w = np.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * 1.5 ** 2))
  w /= w.sum()
  c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
  values = []
  for i in range(4):
    for j in range(3):
      px, py = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
      mx, my = (w * px).sum(), (w * py).sum()
      vx = (w * px * px).sum() - mx * mx
      vy = (w * py * py).sum() - my * my
      cxy = (w * px * py).sum() - mx * my
      values.append((2 * mx * my + c1) * (2 * cxy + c2) /
                    ((mx * mx + my * my + c1) * (vx + vy + c2)))
  assert abs(metrics.ssim(a, b, 0) - np.mean(values)) < 1e-12


def test_bad_inputs():
  a = np.zeros((20, 20, 3), np.uint8)
  with pytest.raises(ValueError, match="float64"):
    metrics.psnr(a.astype(np.float64), a, 2)
  with pytest.raises(ValueError, match=r"\(20, 19, 3\)"):
    metrics.psnr(a, a[:, :19], 2)
  with pytest.raises(ValueError, match="11x11"):
    metrics.ssim(a, a, 5)
  with pytest.raises(ValueError, match="-1"):
    metrics.psnr(a, a, -1)


def test_bicubic_x2_set5_published_baseline():
  hr_dir = paths.data_root() / "datasets" / "Set5" / "HR"
  if not hr_dir.is_dir():
    pytest.skip("../shared not available")
  psnrs, ssims = [], []
  for path in sorted(hr_dir.glob("*.png")):
    hr = image_io.read_image(path)
    hr = hr[:hr.shape[0] // 2 * 2, :hr.shape[1] // 2 * 2]
    sr = imresize_lib.imresize(imresize_lib.imresize(hr, 0.5), 2)
    psnrs.append(metrics.psnr(sr, hr, 2))
    ssims.append(metrics.ssim(sr, hr, 2))
  assert abs(np.mean(psnrs) - 33.66) <= 0.02
  assert abs(np.mean(ssims) - 0.9299) <= 0.001  # Published bicubic SSIM (VDSR, Table 2).
