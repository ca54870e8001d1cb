"""SR benchmark metrics with the usual (MATLAB) conventions.

* Colour: MATLAB ``rgb2ycbcr`` luma, BT.601 studio swing:
  ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` for ``R, G, B`` in 0..255,
  kept in float64 (not rounded), so ``Y`` is in 16..235.  A one-channel image is
  its own Y; an alpha channel is ignored.
* PSNR and SSIM are computed on Y in float64 from uint8 images, after removing
  ``shave`` pixels (usually the scale) from every border; peak 255.
* SSIM is Wang et al.'s ``ssim_index.m``: 11x11 Gaussian window with sigma 1.5,
  ``K1 = 0.01``, ``K2 = 0.03``, ``L = 255``, 'valid' filtering, mean of the map
  (no automatic downsampling).

NumPy only.
"""

import math

import numpy as np

_SSIM_WINDOW = 11
_SSIM_SIGMA = 1.5
_SSIM_K1, _SSIM_K2, _PEAK = 0.01, 0.03, 255.0


def rgb_to_y(image: np.ndarray) -> np.ndarray:
  """BT.601 luma of an ``HWC`` image with values in 0..255 -> ``HW`` float64 in 16..235.

  ``C == 1`` returns the channel itself (a gray image is its own Y).
  """
  image = np.asarray(image)
  if image.ndim == 2:
    return image.astype(np.float64)
  if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
    raise ValueError(f"rgb_to_y: expected HW or HWC with 1, 3 or 4 channels, got shape {image.shape}")
  if image.shape[2] == 1:
    return image[:, :, 0].astype(np.float64)
  rgb = image[:, :, :3].astype(np.float64)
  return 16.0 + (65.481 * rgb[:, :, 0] + 128.553 * rgb[:, :, 1] +
                 24.966 * rgb[:, :, 2]) / 255.0


def _prepare(a: np.ndarray, b: np.ndarray, shave: int, what: str):
  """Checks a uint8 pair and returns their shaved Y planes (float64)."""
  a, b = np.asarray(a), np.asarray(b)
  if a.dtype != np.uint8 or b.dtype != np.uint8:
    raise ValueError(f"{what}: expected uint8 images, got {a.dtype} and {b.dtype}")
  if a.shape != b.shape:
    raise ValueError(f"{what}: shapes differ: {a.shape} vs {b.shape}")
  return _shave_y(rgb_to_y(a), rgb_to_y(b), shave, what)


def _shave_y(ya: np.ndarray, yb: np.ndarray, shave: int, what: str):
  """Checks two Y planes and removes ``shave`` border pixels from both."""
  ya, yb = np.asarray(ya, np.float64), np.asarray(yb, np.float64)
  if ya.ndim != 2 or ya.shape != yb.shape:
    raise ValueError(f"{what}: expected two HW planes of one shape, got {ya.shape} and {yb.shape}")
  if isinstance(shave, bool) or not isinstance(shave, (int, np.integer)) or shave < 0:
    raise ValueError(f"{what}: shave must be a non-negative integer, got {shave!r}")
  if shave:
    ya, yb = ya[shave:-shave, shave:-shave], yb[shave:-shave, shave:-shave]
  if ya.size == 0:
    raise ValueError(f"{what}: nothing left of {ya.shape} after shaving {shave}")
  return ya, yb


def psnr(a: np.ndarray, b: np.ndarray, shave: int) -> float:
  """PSNR (dB) on Y between two uint8 images; ``inf`` when identical."""
  return _psnr(*_prepare(a, b, shave, "psnr"))


def psnr_y(ya: np.ndarray, yb: np.ndarray, shave: int) -> float:
  """PSNR between two Y planes (``HW``, 0..255 scale), e.g. a Y-only network's output."""
  return _psnr(*_shave_y(ya, yb, shave, "psnr_y"))


def _psnr(ya: np.ndarray, yb: np.ndarray) -> float:
  mse = np.mean((ya - yb) ** 2)
  if mse == 0:
    return math.inf
  return float(10.0 * np.log10(_PEAK ** 2 / mse))


def _gaussian_window_1d() -> np.ndarray:
  x = np.arange(_SSIM_WINDOW, dtype=np.float64) - (_SSIM_WINDOW - 1) / 2.0
  g = np.exp(-(x ** 2) / (2.0 * _SSIM_SIGMA ** 2))
  # fspecial('gaussian') = outer(g, g) / sum(outer(g, g)), which factorises.
  return g / g.sum()


def _filter_valid(image: np.ndarray, window: np.ndarray) -> np.ndarray:
  """Separable 'valid' correlation with ``outer(window, window)``."""
  view = np.lib.stride_tricks.sliding_window_view(image, window.size, axis=0)
  rows = view @ window
  view = np.lib.stride_tricks.sliding_window_view(rows, window.size, axis=1)
  return view @ window


def ssim(a: np.ndarray, b: np.ndarray, shave: int) -> float:
  """Mean SSIM (Wang et al. 2004) on Y between two uint8 images."""
  return _ssim(*_prepare(a, b, shave, "ssim"))


def ssim_y(ya: np.ndarray, yb: np.ndarray, shave: int) -> float:
  """Mean SSIM between two Y planes (``HW``, 0..255 scale)."""
  return _ssim(*_shave_y(ya, yb, shave, "ssim_y"))


def _ssim(ya: np.ndarray, yb: np.ndarray) -> float:
  if min(ya.shape) < _SSIM_WINDOW:
    raise ValueError(
        f"ssim: need at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after shaving, got {ya.shape}")
  window = _gaussian_window_1d()
  c1 = (_SSIM_K1 * _PEAK) ** 2
  c2 = (_SSIM_K2 * _PEAK) ** 2
  mu_a = _filter_valid(ya, window)
  mu_b = _filter_valid(yb, window)
  mu_a2, mu_b2, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
  var_a = _filter_valid(ya * ya, window) - mu_a2
  var_b = _filter_valid(yb * yb, window) - mu_b2
  cov = _filter_valid(ya * yb, window) - mu_ab
  ssim_map = ((2 * mu_ab + c1) * (2 * cov + c2)) / ((mu_a2 + mu_b2 + c1) * (var_a + var_b + c2))
  return float(np.mean(ssim_map))
