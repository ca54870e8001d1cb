"""Tests for mlsr_tf.data.sampling."""

import numpy as np
import pytest

from mlsr_tf.data import sampling


def _image(h, w, c=3, seed=0):
  return np.random.default_rng(seed).integers(0, 256, size=(h, w, c), dtype=np.uint8)


def test_dihedral_group_has_eight_distinct_elements_and_inverses():
  image = _image(5, 5)
  outs = [sampling.dihedral(image, i) for i in range(8)]
  assert len({o.tobytes() for o in outs}) == 8
  # Flips are involutions; a transpose with both flips is a 180-degree-rotated transpose.
  for i in (1, 2, 3, 4):
    np.testing.assert_array_equal(sampling.dihedral(sampling.dihedral(image, i), i), image)
  np.testing.assert_array_equal(sampling.dihedral(image, 3), image[::-1, ::-1])
  np.testing.assert_array_equal(sampling.dihedral(image, 4), image.transpose(1, 0, 2))


def test_dihedral_works_on_batches_and_rejects_bad_index():
  batch = np.stack([_image(4, 6, seed=s) for s in range(3)])
  out = sampling.dihedral(batch, 5)
  for k in range(3):
    np.testing.assert_array_equal(out[k], sampling.dihedral(batch[k], 5))
  with pytest.raises(ValueError, match="9"):
    sampling.dihedral(batch, 9)


def test_to_channels_y_matches_matlab_rgb2ycbcr():
  white = np.full((1, 1, 3), 255, np.uint8)
  black = np.zeros((1, 1, 3), np.uint8)
  assert sampling.to_channels(white, 1)[0, 0, 0] == 235
  assert sampling.to_channels(black, 1)[0, 0, 0] == 16
  gray = _image(3, 3, c=1)
  np.testing.assert_array_equal(sampling.to_channels(gray, 3)[..., 2], gray[..., 0])


def test_batches_are_a_pure_function_of_seed_and_iteration():
  images = [_image(40, 50, seed=1), _image(30, 33, seed=2)]
  a = sampling.PatchSampler(images, 16, seed=3)
  b = sampling.PatchSampler(images, 16, seed=3)
  np.testing.assert_array_equal(a.batch(7, 4), b.batch(7, 4))
  # Order of calls does not matter: iteration 7 after iteration 2 is still iteration 7.
  b.batch(2, 4)
  np.testing.assert_array_equal(a.batch(7, 4), b.batch(7, 4))
  assert not np.array_equal(a.batch(7, 4), a.batch(8, 4))
  assert a.batch(0, 4).shape == (4, 16, 16, 3)


def test_patches_come_from_the_images_at_aligned_offsets():
  image = np.arange(24 * 24, dtype=np.int64).reshape(24, 24, 1)
  sampler = sampling.PatchSampler([image.astype(np.uint16)], 8, seed=0, augment=False,
                                  multiple_of=4)
  for patch in sampler.batch(0, 16):
    top, left = divmod(int(patch[0, 0, 0]), 24)
    assert top % 4 == 0 and left % 4 == 0
    np.testing.assert_array_equal(patch, image[top:top + 8, left:left + 8])


def test_small_images_are_skipped_and_all_small_is_an_error():
  sampler = sampling.PatchSampler([_image(8, 8), _image(20, 20)], 16)
  assert len(sampler.images) == 1
  with pytest.raises(ValueError, match="16x16"):
    sampling.PatchSampler([_image(8, 8)], 16)
  with pytest.raises(ValueError, match="-1"):
    sampling.PatchSampler([_image(8, 8)], -1)
