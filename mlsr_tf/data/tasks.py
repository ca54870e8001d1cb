"""MLSR meta-learning tasks: (LR_down, LR, HR) patch triples, one degradation per task.

A task (the paper's Algorithm 1) is an HR patch of ``P x P`` pixels, its LR
``degrade(HR, d)`` (``P/s``) and its LR_down ``degrade(LR, d)`` (``P/s^2``), where the
degradation ``d`` is drawn per task from a :class:`DegradationDistribution`:

* ``bicubic``: MATLAB bicubic downscaling;
* ``random5x5``: one of the paper's random 5x5 kernels (``kernel_split``: 38k train,
  1k validation, 1k test), blur + subsample;
* ``gaussian``: isotropic or anisotropic Gaussian blur (half each), sigma uniform in
  ``sigma_range`` (default 0.2..3.0 HR pixels), rotation uniform in [0, pi), then
  subsampling;
* ``mixed``: one of the three above, uniformly or with ``mixture_weights``.

Everything is NumPy (importable without TensorFlow: the JAX machines have none) and a
pure function of ``(seed, iteration)``: a resumed run replays exactly the tasks of an
uninterrupted one.  :func:`make_tf_dataset` wraps the sampler in a ``tf.data``
pipeline (parallel map, deterministic order, prefetch); TensorFlow is imported there
only.  Pixels: float32 in [0, 1], ``[T, h, w, C]`` (or ``[T, B, h, w, C]`` with B
patches per task).  Augmentation: the 8 flips/rotations (``sampling.dihedral``).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import image_io
from mlsr_tf.data import sampling

DEGRADATION_KINDS = ("bicubic", "random5x5", "gaussian", "mixed")
DEFAULT_SIGMA_RANGE = (0.2, 3.0)
MIXTURE_KINDS = ("bicubic", "random5x5", "gaussian")


def parse_mixture_weights(spec, kind: str = "mixed") -> tuple[float, float, float] | None:
  """``"2,1,1"`` (or a sequence) -> normalised (bicubic, random5x5, gaussian) weights.

  ``None`` or ``""`` means uniform (returned as ``None``).  Raises ValueError, repeating
  the value, unless there are three finite non-negative numbers with a positive sum, and
  when weights are given for a ``kind`` other than ``mixed``.
  """
  if spec is None or (isinstance(spec, str) and not spec.strip()):
    return None
  if kind != "mixed":
    raise ValueError(f"mixture weights {spec!r} only apply to degradation 'mixed', "
                     f"got {kind!r}")
  try:
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    values = [float(v) for v in parts]
  except (TypeError, ValueError):
    raise ValueError(f"mixture weights must be three numbers for {MIXTURE_KINDS}, "
                     f"got {spec!r}") from None
  if (len(values) != 3 or not all(math.isfinite(v) and v >= 0 for v in values)
      or sum(values) <= 0):
    raise ValueError(f"mixture weights must be three non-negative numbers with a positive "
                     f"sum, for {MIXTURE_KINDS}, got {spec!r}")
  total = sum(values)
  return tuple(v / total for v in values)


class DegradationDistribution:
  """Draws one :class:`Degradation` per task.

  Args:
    kind: one of :data:`DEGRADATION_KINDS`.
    scale: the SR scale.
    split: kernel split for ``random5x5`` ("train", "validation", "test").
    kernel_seed: seed of the 40k random-kernel pool (``kernel_split``).
    sigma_range: Gaussian sigma range (HR pixels).
    mixture_weights: for ``mixed``, the probabilities of (bicubic, random5x5, gaussian)
      in any form :func:`parse_mixture_weights` reads; None: uniform.
  """

  def __init__(self, kind: str, scale: int, split: str = "train", kernel_seed: int = 0,
               sigma_range: Sequence[float] = DEFAULT_SIGMA_RANGE, mixture_weights=None):
    if kind not in DEGRADATION_KINDS:
      raise ValueError(f"unknown degradation {kind!r}; expected one of {DEGRADATION_KINDS}")
    self.mixture_weights = parse_mixture_weights(mixture_weights, kind)
    low, high = (float(s) for s in sigma_range)
    if not 0 < low <= high:
      raise ValueError(f"sigma_range must satisfy 0 < low <= high, got {tuple(sigma_range)!r}")
    self.kind = kind
    self.scale = int(scale)
    self.split = split
    self.kernel_seed = int(kernel_seed)
    self.sigma_range = (low, high)
    # Odd and wide enough for +-3 sigma of the largest Gaussian.
    self.gaussian_size = 2 * math.ceil(3 * high) + 1
    self._kernels = None
    if kind in ("random5x5", "mixed"):
      self._kernels = degradation_lib.kernel_split(split, self.kernel_seed)

  def sample(self, rng: np.random.Generator) -> degradation_lib.Degradation:
    kind = self.kind
    if kind == "mixed":
      if self.mixture_weights is None:  # Kept as is: uniform runs replay their old tasks.
        kind = MIXTURE_KINDS[int(rng.integers(0, 3))]
      else:
        kind = MIXTURE_KINDS[int(rng.choice(3, p=self.mixture_weights))]
    if kind == "bicubic":
      return degradation_lib.bicubic(self.scale)
    if kind == "random5x5":
      index = int(rng.integers(0, len(self._kernels)))
      return degradation_lib.from_kernel(self._kernels[index], self.scale,
                                         name=f"random5x5_{self.split}_{index}")
    low, high = self.sigma_range
    sigma_x = float(rng.uniform(low, high))
    isotropic = bool(rng.integers(0, 2))
    sigma_y = sigma_x if isotropic else float(rng.uniform(low, high))
    theta = 0.0 if isotropic else float(rng.uniform(0.0, math.pi))
    kernel = degradation_lib.gaussian_kernel(self.gaussian_size, sigma_x, sigma_y, theta)
    return degradation_lib.from_kernel(
        kernel, self.scale, name=f"gaussian_{sigma_x:.3f}_{sigma_y:.3f}_{theta:.3f}")


def quantize(image: np.ndarray) -> np.ndarray:
  """Float [0, 1] image rounded to the nearest of 256 levels (what an 8-bit LR file holds)."""
  return (np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0).astype(np.float32)


def make_lr(hr: np.ndarray, degradation: degradation_lib.Degradation,
            quantize_lr: bool = False) -> np.ndarray:
  """Float32 LR in [0, 1] of a float HR image (rounded to 8-bit levels with ``quantize_lr``)."""
  lr = np.clip(degradation_lib.degrade(hr, degradation), 0.0, 1.0).astype(np.float32)
  return quantize(lr) if quantize_lr else lr


def make_task(hr: np.ndarray, degradation: degradation_lib.Degradation,
              quantize_lr: bool = False) -> dict:
  """One (LR_down, LR, HR) triple from an HWC uint8 (or float [0, 1]) HR image.

  ``quantize_lr``: round LR to 8-bit levels, like the LR files adaptation meets at test time
  (LR_down is then made from the rounded LR, as at test time, and stays float).
  """
  hr = image_io.to_float(hr) if hr.dtype != np.float32 else hr
  lr = make_lr(hr, degradation, quantize_lr)
  lr_down = np.clip(degradation_lib.make_lr_down(lr, degradation), 0.0, 1.0).astype(np.float32)
  return {"lr_down": lr_down, "lr": lr, "hr": hr}


class TaskSampler:
  """Meta-batches of tasks, a pure function of ``(seed, iteration)``.

  Args:
    patches: a :class:`sampling.PatchSampler` (HR patches, augmentation, seed).
    distribution: the per-task degradation distribution.
    patches_per_task: HR patches per task (all with the task's degradation); 1 gives
      ``[T, h, w, C]`` arrays, more gives ``[T, B, h, w, C]``.
    quantize_lr: LR rounded to 8-bit levels (:func:`make_task`).
  """

  def __init__(self, patches: sampling.PatchSampler, distribution: DegradationDistribution,
               patches_per_task: int = 1, quantize_lr: bool = False):
    scale = distribution.scale
    if patches.patch_size % (scale * scale):
      raise ValueError(f"patch size {patches.patch_size} must be a multiple of scale^2 = "
                       f"{scale * scale} (LR_down is patch / scale^2 pixels)")
    if patches_per_task < 1:
      raise ValueError(f"patches_per_task must be >= 1, got {patches_per_task!r}")
    self.patches = patches
    self.distribution = distribution
    self.patches_per_task = int(patches_per_task)
    self.quantize_lr = bool(quantize_lr)

  @classmethod
  def from_paths(cls, paths, patch_size: int, scale: int, kind: str = "bicubic",
                 channels: int = 3, seed: int = 0, augment: bool = True,
                 patches_per_task: int = 1, quantize_lr: bool = False,
                 **distribution_kwargs) -> "TaskSampler":
    """Reads the training images and builds the sampler (Y when ``channels == 1``)."""
    patches = sampling.PatchSampler.from_paths(paths, patch_size, channels=channels, seed=seed,
                                               augment=augment, multiple_of=scale)
    return cls(patches, DegradationDistribution(kind, scale, **distribution_kwargs),
               patches_per_task, quantize_lr)

  def sample(self, iteration: int, num_tasks: int) -> dict:
    """``num_tasks`` tasks: dict of float32 ``lr_down``, ``lr``, ``hr`` arrays."""
    if num_tasks < 1:
      raise ValueError(f"num_tasks must be >= 1, got {num_tasks!r}")
    rng = self.patches.rng(iteration)
    tasks = []
    for _ in range(num_tasks):
      degradation = self.distribution.sample(rng)
      triples = [make_task(self.patches.sample(rng), degradation, self.quantize_lr)
                 for _ in range(self.patches_per_task)]
      tasks.append({k: np.stack([t[k] for t in triples]) for k in triples[0]})
    batch = {k: np.stack([t[k] for t in tasks]) for k in tasks[0]}
    if self.patches_per_task == 1:
      batch = {k: v[:, 0] for k, v in batch.items()}
    return batch


def make_tf_dataset(sampler: TaskSampler, num_tasks: int, start_iteration: int = 0,
                    stop_iteration: int | None = None, num_parallel_calls: int | None = None,
                    prefetch: int = 2):
  """A ``tf.data.Dataset`` of meta-batches for iterations ``start .. stop-1`` (in order).

  Batches are sampled in parallel (``num_parallel_calls``, default AUTOTUNE) but
  delivered in iteration order (``deterministic=True``), so the stream equals
  ``[sampler.sample(i, num_tasks) for i in range(start, stop)]``.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (only here: JAX has no TF)

  stop = stop_iteration if stop_iteration is not None else np.iinfo(np.int64).max
  example = sampler.sample(start_iteration, num_tasks)
  keys = ("lr_down", "lr", "hr")

  def sample(iteration):
    batch = sampler.sample(int(iteration), num_tasks)
    return tuple(batch[k] for k in keys)

  def to_dict(iteration):
    values = tf.numpy_function(sample, [iteration], [tf.float32] * len(keys), stateful=False)
    for value, key in zip(values, keys):
      value.set_shape(example[key].shape)
    return dict(zip(keys, values))

  dataset = tf.data.Dataset.range(start_iteration, stop)
  dataset = dataset.map(to_dict, num_parallel_calls=num_parallel_calls or tf.data.AUTOTUNE,
                        deterministic=True)
  return dataset.prefetch(prefetch)
