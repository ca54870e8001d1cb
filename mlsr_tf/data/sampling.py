"""Random HR patches from a set of training images (NumPy only; no TensorFlow needed).

Layout: every patch is HWC ``uint8`` (RGB, or 1 channel for Y / grayscale).

Reproducibility: a batch is a pure function of ``(seed, iteration)``: the generator is
``np.random.default_rng([seed, iteration])``.  A run that is interrupted and resumed at
iteration ``i`` therefore sees exactly the data an uninterrupted run would have seen.

Augmentation is the 8-element dihedral group (identity, flips, rotations by 90 degrees),
as is usual for SR training (EDSR, IDN, MLSR).
"""

from __future__ import annotations

import pathlib
from typing import Sequence

import numpy as np

from mlsr_tf.data import image_io

NUM_DIHEDRAL = 8


def dihedral(image: np.ndarray, index: int) -> np.ndarray:
  """Applies element ``index`` (0..7) of the dihedral group to an HWC (or NHWC) array.

  Index bit 2 transposes H and W, bit 1 flips vertically, bit 0 flips horizontally.
  """
  if not 0 <= index < NUM_DIHEDRAL:
    raise ValueError(f"dihedral index must be in 0..7, got {index!r}")
  h_axis = image.ndim - 3
  out = image
  if index & 4:
    axes = list(range(image.ndim))
    axes[h_axis], axes[h_axis + 1] = axes[h_axis + 1], axes[h_axis]
    out = np.transpose(out, axes)
  if index & 2:
    out = np.flip(out, axis=h_axis)
  if index & 1:
    out = np.flip(out, axis=h_axis + 1)
  return np.ascontiguousarray(out)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
  """Returns ``image`` (HWC uint8) with 1 (BT.601 Y, MATLAB rgb2ycbcr) or 3 (RGB) channels.

  Gray images are replicated to RGB; alpha is dropped.  Y is rounded to uint8 (16..235).
  """
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3, got {channels!r}")
  if image.shape[-1] == 4:
    image = image[..., :3]
  if image.shape[-1] == channels:
    return image
  if channels == 3:
    return np.repeat(image, 3, axis=-1)
  rgb = image.astype(np.float64)
  y = 16.0 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]) / 255.0
  return np.clip(np.round(y), 0, 255).astype(np.uint8)[..., None]


class PatchSampler:
  """Samples square HR patches of ``patch_size`` pixels, seeded per iteration.

  Each patch is drawn from an image chosen with probability proportional to the number
  of distinct patch positions it holds (so every position of the training set is equally
  likely), then a dihedral transform is applied when ``augment`` is set.

  Args:
    images: HWC uint8 images (already in the wanted channel count).
    patch_size: side of the square patch, in HR pixels.
    seed: base seed; batches depend only on ``(seed, iteration)``.
    augment: apply a random one of the 8 flips/rotations.
    multiple_of: crop offsets are rounded down to a multiple of this (use the scale, so that
      subsampling grids stay aligned with the image's own grid).
  """

  def __init__(self, images: Sequence[np.ndarray], patch_size: int, seed: int = 0,
               augment: bool = True, multiple_of: int = 1):
    if patch_size <= 0:
      raise ValueError(f"patch_size must be positive, got {patch_size!r}")
    if multiple_of <= 0:
      raise ValueError(f"multiple_of must be positive, got {multiple_of!r}")
    usable = [im for im in images if im.shape[0] >= patch_size and im.shape[1] >= patch_size]
    if not usable:
      raise ValueError(
          f"no training image is at least {patch_size}x{patch_size} pixels "
          f"(got {len(images)} images)")
    self.images = usable
    self.patch_size = int(patch_size)
    self.seed = int(seed)
    self.augment = bool(augment)
    self.multiple_of = int(multiple_of)
    positions = np.array([(im.shape[0] - patch_size + 1) * (im.shape[1] - patch_size + 1)
                          for im in usable], dtype=np.float64)
    self._image_probability = positions / positions.sum()

  @classmethod
  def from_paths(cls, paths: Sequence[str | pathlib.Path], patch_size: int, channels: int = 3,
                 **kwargs) -> "PatchSampler":
    """Reads ``paths`` with :func:`image_io.read_image` and converts them to ``channels``."""
    images = [to_channels(_as_uint8(image_io.read_image(p)), channels) for p in paths]
    return cls(images, patch_size, **kwargs)

  def rng(self, iteration: int) -> np.random.Generator:
    return np.random.default_rng([self.seed, int(iteration)])

  def sample(self, rng: np.random.Generator) -> np.ndarray:
    """One patch (HWC uint8) drawn with ``rng``."""
    image = self.images[rng.choice(len(self.images), p=self._image_probability)]
    size = self.patch_size
    top = int(rng.integers(0, image.shape[0] - size + 1))
    left = int(rng.integers(0, image.shape[1] - size + 1))
    top -= top % self.multiple_of
    left -= left % self.multiple_of
    patch = image[top:top + size, left:left + size]
    if self.augment:
      patch = dihedral(patch, int(rng.integers(0, NUM_DIHEDRAL)))
    return np.ascontiguousarray(patch)

  def batch(self, iteration: int, count: int) -> np.ndarray:
    """``count`` patches ``[count, P, P, C]`` uint8, a pure function of (seed, iteration)."""
    rng = self.rng(iteration)
    return np.stack([self.sample(rng) for _ in range(count)])


def _as_uint8(image: np.ndarray) -> np.ndarray:
  if image.dtype == np.uint8:
    return image
  if image.dtype == np.uint16:
    return np.round(image.astype(np.float64) / 257.0).astype(np.uint8)
  raise ValueError(f"training images must be uint8 or uint16, got dtype {image.dtype}")
