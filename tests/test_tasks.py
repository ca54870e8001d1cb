"""Tests of MLSR task sampling (mlsr_tf.data.tasks)."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import sampling
from mlsr_tf.data import tasks

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _sampler(kind="mixed", patch=16, channels=3, seed=0, per_task=1):
  rng = np.random.default_rng(123)
  images = [rng.integers(0, 256, (40, 48, channels), dtype=np.uint8) for _ in range(3)]
  patches = sampling.PatchSampler(images, patch, seed=seed, multiple_of=2)
  return tasks.TaskSampler(patches, tasks.DegradationDistribution(kind, 2), per_task)


@pytest.mark.parametrize("kind", tasks.DEGRADATION_KINDS)
def test_shapes_range_and_consistency(kind):
  batch = _sampler(kind).sample(iteration=3, num_tasks=4)
  assert batch["hr"].shape == (4, 16, 16, 3)
  assert batch["lr"].shape == (4, 8, 8, 3)
  assert batch["lr_down"].shape == (4, 4, 4, 3)
  for value in batch.values():
    assert value.dtype == np.float32 and value.min() >= 0 and value.max() <= 1


def test_bicubic_task_is_degrade_of_patch():
  sampler = _sampler("bicubic")
  batch = sampler.sample(5, 2)
  rng = sampler.patches.rng(5)
  first = sampler.patches.sample(rng)
  deg = degradation_lib.bicubic(2)
  lr = degradation_lib.degrade(first.astype(np.float32) / 255.0, deg)
  np.testing.assert_allclose(batch["hr"][0], first / 255.0, atol=1e-7)
  np.testing.assert_allclose(batch["lr"][0], np.clip(lr, 0, 1), atol=1e-6)
  lr_down = degradation_lib.degrade(batch["lr"][0], deg)
  np.testing.assert_allclose(batch["lr_down"][0], np.clip(lr_down, 0, 1), atol=1e-6)


def test_quantize_lr_rounds_lr_to_8_bit_levels_and_makes_lr_down_from_it():
  """quantize_lr: LR equals the float LR rounded to 1/255 steps (an 8-bit LR file), LR_down is
  the degradation of that rounded LR, and HR and the task stream are otherwise unchanged."""
  plain = _sampler("mixed")
  rounded = tasks.TaskSampler(plain.patches, plain.distribution, 1, quantize_lr=True)
  a, b = plain.sample(7, 4), rounded.sample(7, 4)
  np.testing.assert_array_equal(a["hr"], b["hr"])
  np.testing.assert_allclose(b["lr"], np.round(a["lr"] * 255) / 255, atol=1e-6)
  levels = b["lr"] * 255
  assert np.abs(levels - np.round(levels)).max() < 1e-4
  assert np.abs(a["lr"] * 255 - np.round(a["lr"] * 255)).max() > 0.1  # The plain LR is float.
  rng = rounded.patches.rng(7)
  degradation = rounded.distribution.sample(rng)
  hr = rounded.patches.sample(rng)
  task = tasks.make_task(hr, degradation, quantize_lr=True)
  np.testing.assert_allclose(task["lr"], b["lr"][0], atol=1e-7)
  expected_down = np.clip(degradation_lib.make_lr_down(task["lr"], degradation), 0, 1)
  np.testing.assert_allclose(b["lr_down"][0], expected_down, atol=1e-6)


def test_seeded_per_iteration():
  a, b = _sampler(seed=1), _sampler(seed=1)
  for key in ("hr", "lr", "lr_down"):
    np.testing.assert_array_equal(a.sample(7, 3)[key], b.sample(7, 3)[key])
  assert not np.array_equal(a.sample(7, 3)["lr"], a.sample(8, 3)["lr"])
  assert not np.array_equal(a.sample(7, 3)["lr"], _sampler(seed=2).sample(7, 3)["lr"])


def test_mixed_draws_every_kind_and_gaussian_sigmas_in_range():
  dist = tasks.DegradationDistribution("mixed", 2)
  rng = np.random.default_rng(0)
  names = [dist.sample(rng).name for _ in range(60)]
  assert any(n.startswith("random5x5_train") for n in names)
  assert any(n.startswith("gaussian") for n in names)
  assert any(dist.sample(np.random.default_rng(s)).is_bicubic for s in range(20))
  gaussian = tasks.DegradationDistribution("gaussian", 2, sigma_range=(0.5, 3.0))
  assert gaussian.gaussian_size == 19
  for s in range(10):
    sigmas = [float(x) for x in gaussian.sample(np.random.default_rng(s)).name.split("_")[1:3]]
    assert all(0.5 <= x <= 3.0 for x in sigmas)


def test_mixture_weights_set_the_kind_frequencies():
  def kinds(dist, n=600):
    rng = np.random.default_rng(1)
    names = [dist.sample(rng).name for _ in range(n)]
    return [sum(name.startswith(k) for name in names) / n for k in tasks.MIXTURE_KINDS]

  weighted = kinds(tasks.DegradationDistribution("mixed", 2, mixture_weights="2,1,1"))
  np.testing.assert_allclose(weighted, [0.5, 0.25, 0.25], atol=0.06)
  only_bicubic = kinds(tasks.DegradationDistribution("mixed", 2, mixture_weights=(1, 0, 0)))
  assert only_bicubic == [1.0, 0.0, 0.0]
  # No weights keeps the uniform draw, task for task (old runs replay their tasks).
  uniform = tasks.DegradationDistribution("mixed", 2)
  explicit_none = tasks.DegradationDistribution("mixed", 2, mixture_weights="")
  a, b = np.random.default_rng(3), np.random.default_rng(3)
  assert [uniform.sample(a).name for _ in range(30)] == [
      explicit_none.sample(b).name for _ in range(30)]
  assert tasks.parse_mixture_weights("1,1,2") == (0.25, 0.25, 0.5)


@pytest.mark.parametrize("spec", ["1,1", "1,x,1", "-1,1,1", "0,0,0", "1,nan,1"])
def test_bad_mixture_weights_repeat_the_value(spec):
  with pytest.raises(ValueError, match=re.escape(repr(spec))):
    tasks.DegradationDistribution("mixed", 2, mixture_weights=spec)


def test_mixture_weights_need_mixed():
  with pytest.raises(ValueError, match="'gaussian'"):
    tasks.DegradationDistribution("gaussian", 2, mixture_weights="1,1,1")


def test_patches_per_task():
  batch = _sampler("gaussian", per_task=3).sample(0, 2)
  assert batch["hr"].shape == (2, 3, 16, 16, 3) and batch["lr_down"].shape == (2, 3, 4, 4, 3)


def test_bad_arguments():
  with pytest.raises(ValueError, match="'blurry'"):
    tasks.DegradationDistribution("blurry", 2)
  with pytest.raises(ValueError, match="scale\\^2"):
    rng = np.random.default_rng(0)
    patches = sampling.PatchSampler([rng.integers(0, 255, (30, 30, 3), dtype=np.uint8)], 18)
    tasks.TaskSampler(patches, tasks.DegradationDistribution("bicubic", 2))


def test_tf_dataset_equals_numpy_sampler():
  sampler = _sampler("mixed")
  dataset = tasks.make_tf_dataset(sampler, 2, start_iteration=4, stop_iteration=7)
  got = list(dataset.as_numpy_iterator())
  assert len(got) == 3
  for i, batch in zip(range(4, 7), got):
    expected = sampler.sample(i, 2)
    for key in ("hr", "lr", "lr_down"):
      np.testing.assert_array_equal(batch[key], expected[key])


def test_importing_tasks_does_not_import_tensorflow():
  code = ("import sys; sys.path.insert(0, %r); import mlsr_tf.data.tasks; "
          "assert 'tensorflow' not in sys.modules, 'tensorflow imported'" % REPO_ROOT)
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
