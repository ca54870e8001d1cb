"""ZSSR baseline: the 8-layer network trained from scratch on one test image.

A. Shocher, N. Cohen, M. Irani, "Zero-Shot Super-Resolution using Deep Internal
Learning", CVPR 2018.  MLSR's speed claim is measured against it.  Per image:

1. *HR fathers* are drawn from the LR image itself: randomly downscaled (factor
   uniform in ``[min_scale, 1]``; kept at 1 with ``no_interpolate_probability``),
   one of the 8 flips/rotations, a random crop of ``crop_size`` pixels (a multiple
   of the scale; smaller images are used whole).  With ``leave_as_is_probability``
   the father is a plain crop of the LR.
2. Its *LR son* is ``degrade(father, kernel)`` (the given kernel, or MATLAB bicubic).
3. The network (``registry`` name ``zssr``: bicubic upscale + 8 convs of 64 features,
   residual; weights drawn from N(0, init_variance / fan_in), biases 0: 2.0, He
   initialisation, by default, where ZSSR's code has 0.1, see ``ZSSRConfig``) learns
   son -> father with an L1 loss and Adam (learning rate 1e-3).
4. Learning-rate policy (ZSSR's): every ``run_test_every`` iterations the
   reconstruction error ``MSE(f(degrade(LR)), LR)`` is recorded; every
   ``policy_check_every`` iterations, once ``min_iters`` iterations have passed since
   the last change, a line is fitted to the errors of the last ``slope_range``
   iterations; if ``-slope * change_ratio < std(slope)`` the rate is divided by 10.
   Training stops when it falls below ``min_learning_rate`` or after ``max_iters``.
5. The SR of the LR image is the median over the 8 flips/rotations of the network's
   output (ZSSR's geometric self-ensemble).

Not implemented (stated in every report): ZSSR's random shear augmentation, its
iterative back-projection of the output, and gradual multi-scale training.
Pixels are float32 in [0, 1]; images HWC.  ``train_and_upscale`` returns the SR and
a record with the iterations run, the final learning rate, the loss history and
the seconds spent (training + inference).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import imresize as imresize_lib
from mlsr_tf.data import sampling


@dataclasses.dataclass
class ZSSRConfig:
  """ZSSR's hyper-parameters (defaults: the paper's code, ``configs.py``, but for
  ``init_variance``)."""
  max_iters: int = 3000
  min_iters: int = 256
  learning_rate: float = 1e-3
  min_learning_rate: float = 9e-6
  change_ratio: float = 1.5
  policy_check_every: int = 60
  slope_range: int = 256
  run_test_every: int = 50
  crop_size: int = 128
  min_scale: float = 0.5
  leave_as_is_probability: float = 0.05
  no_interpolate_probability: float = 0.45
  filters: int = 64
  num_layers: int = 8
  self_ensemble: bool = True
  seed: int = 0
  # Kernels ~ N(0, init_variance / fan_in).  ZSSR's code uses 0.1; with it, on Set5 with
  # the unseen 5x5 test kernels, the last hidden layer's ReLUs all die within ~50
  # iterations (measured: WORKSPACE.md section 11, session 6) and ZSSR returns the bicubic
  # image.  2.0 (He initialisation, the usual choice for ReLU networks) keeps them alive.
  init_variance: float = 2.0

  def validate(self) -> None:
    """Raises ValueError (repeating the value) for inconsistent settings."""
    for name in ("max_iters", "policy_check_every", "slope_range", "run_test_every",
                 "crop_size", "filters", "num_layers"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if isinstance(self.min_iters, bool) or not isinstance(self.min_iters, int) or \
        self.min_iters < 0:
      raise ValueError(f"min_iters must be a non-negative integer, got {self.min_iters!r}")
    for name in ("learning_rate", "min_learning_rate", "change_ratio", "init_variance"):
      value = getattr(self, name)
      if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be finite and > 0, got {value!r}")
    if not 0 < self.min_scale <= 1:
      raise ValueError(f"min_scale must be in (0, 1], got {self.min_scale!r}")
    for name in ("leave_as_is_probability", "no_interpolate_probability"):
      value = getattr(self, name)
      if not 0 <= value <= 1:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def _crop_size(shape, config: ZSSRConfig, scale: int) -> int:
  """A fixed father size (one compiled training step): fits every downscaled LR."""
  smallest = int(np.floor(min(shape[:2]) * config.min_scale))
  size = min(config.crop_size, smallest)
  size -= size % scale
  if size < 2 * scale:
    raise ValueError(f"LR image of shape {tuple(shape)} is too small for ZSSR at scale "
                     f"{scale} (min_scale {config.min_scale})")
  return size


def sample_father(lr: np.ndarray, size: int, config: ZSSRConfig,
                  rng: np.random.Generator) -> np.ndarray:
  """One augmented HR father (``size x size``) drawn from the LR image (float HWC)."""
  image = lr
  if rng.random() >= config.leave_as_is_probability:
    if rng.random() >= config.no_interpolate_probability:
      factor = float(rng.uniform(config.min_scale, 1.0))
      height = max(size, int(round(lr.shape[0] * factor)))
      width = max(size, int(round(lr.shape[1] * factor)))
      if (height, width) != lr.shape[:2]:
        image = np.clip(imresize_lib.imresize(lr, output_shape=(height, width),
                                              scale=(height / lr.shape[0],
                                                     width / lr.shape[1])), 0, 1)
    image = sampling.dihedral(image, int(rng.integers(0, sampling.NUM_DIHEDRAL)))
  top = int(rng.integers(0, image.shape[0] - size + 1))
  left = int(rng.integers(0, image.shape[1] - size + 1))
  return np.ascontiguousarray(image[top:top + size, left:left + size], np.float32)


def make_son(father: np.ndarray, degradation: degradation_lib.Degradation) -> np.ndarray:
  return np.clip(degradation_lib.degrade(father, degradation), 0, 1).astype(np.float32)


def _should_lower_rate(errors: list, config: ZSSRConfig) -> bool:
  """ZSSR's policy on the recorded ``(iteration, error)`` pairs of the last slope range."""
  last = errors[-1][0]
  window = [(i, e) for i, e in errors if i > last - config.slope_range]
  if len(window) < 3:
    return False  # polyfit's covariance needs more points than parameters.
  x, y = np.array(window, np.float64).T
  (slope, _), covariance = np.polyfit(x, y, 1, cov=True)
  std = float(np.sqrt(max(covariance[0, 0], 0.0)))
  return -slope * config.change_ratio < std


def _initialize(model, rng: np.random.Generator, init_variance: float) -> None:
  """ZSSR's initialisation: kernels ~ N(0, init_variance / fan_in), biases 0."""
  for variable in model.trainable_variables:
    shape = tuple(variable.shape)
    if len(shape) == 4:
      std = np.sqrt(init_variance / np.prod(shape[:3]))
      variable.assign(rng.normal(0.0, std, shape).astype(np.float32))
    else:
      variable.assign(np.zeros(shape, np.float32))


def train_and_upscale(lr, degradation: degradation_lib.Degradation,
                      config: ZSSRConfig = ZSSRConfig(),
                      log: Callable[[str], None] | None = None) -> tuple[np.ndarray, dict]:
  """Trains ZSSR on ``lr`` and super-resolves it.

  Args:
    lr: the LR image, HWC uint8 or float32 in [0, 1] (1 or 3 channels).
    degradation: the kernel (or bicubic) believed to have made ``lr``; its scale is
      the SR factor.
    config: hyper-parameters.
    log: optional progress sink.

  Returns:
    ``(sr, record)``: SR float32 HWC in [0, 1] of ``scale`` times the size, and
    ``{"iterations", "final_learning_rate", "losses": [(iteration, L1)],
    "reconstruction_errors": [(iteration, MSE)], "train_seconds", "seconds"}``.
  """
  import keras  # pylint: disable=g-import-not-at-top  # Lazy: heavy.
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  config.validate()
  if not isinstance(degradation, degradation_lib.Degradation):
    raise ValueError(f"expected a Degradation, got {degradation!r}")
  lr = adaptation.as_float_image(lr, what="lr")
  scale = degradation.scale
  size = _crop_size(lr.shape, config, scale)
  began = time.perf_counter()
  keras.utils.set_random_seed(config.seed)
  model = registry.build_model("zssr", scale=scale, channels=lr.shape[2],
                               filters=config.filters, num_layers=config.num_layers)
  _initialize(model, rng=np.random.default_rng(config.seed),
              init_variance=config.init_variance)
  model.compile(optimizer=keras.optimizers.Adam(config.learning_rate), loss="mean_absolute_error")
  rng = np.random.default_rng(config.seed)
  lr_son = make_son(lr, degradation)[None]
  learning_rate = config.learning_rate
  last_change = 0
  losses, errors = [], []
  iteration = 0
  for iteration in range(1, config.max_iters + 1):
    father = sample_father(lr, size, config, rng)
    son = make_son(father, degradation)
    loss = float(model.train_on_batch(son[None], father[None]))
    if iteration % config.run_test_every == 0:
      reconstruction = keras.ops.convert_to_numpy(model(lr_son, training=False))[0]
      h, w = min(reconstruction.shape[0], lr.shape[0]), min(reconstruction.shape[1], lr.shape[1])
      errors.append((iteration, float(np.mean((reconstruction[:h, :w] - lr[:h, :w]) ** 2))))
      losses.append((iteration, loss))
      if log is not None:
        log(f"zssr iteration {iteration}: L1 {loss:.5f}, reconstruction MSE "
            f"{errors[-1][1]:.6f}, learning rate {learning_rate:.2g}")
    if (iteration % config.policy_check_every == 0 and errors and
        iteration - last_change > config.min_iters and _should_lower_rate(errors, config)):
      learning_rate /= 10.0
      last_change = iteration
      model.optimizer.learning_rate.assign(learning_rate)
      if learning_rate < config.min_learning_rate:
        break
  train_seconds = time.perf_counter() - began
  sr = upscale(model, lr, config.self_ensemble)
  record = {"iterations": iteration, "final_learning_rate": learning_rate,
            "losses": losses, "reconstruction_errors": errors,
            "train_seconds": train_seconds, "seconds": time.perf_counter() - began}
  return sr, record


def upscale(model, lr: np.ndarray, self_ensemble: bool = True) -> np.ndarray:
  """The network's SR of float HWC ``lr``; median over the 8 flips/rotations if asked."""
  import keras  # pylint: disable=g-import-not-at-top
  indices = range(sampling.NUM_DIHEDRAL) if self_ensemble else (0,)
  outputs = []
  for index in indices:
    x = sampling.dihedral(lr, index)[None]
    y = keras.ops.convert_to_numpy(model(x, training=False))[0]
    # Undo the transform: transpose is its own inverse, flips too, applied in reverse.
    if index & 1:
      y = np.flip(y, axis=1)
    if index & 2:
      y = np.flip(y, axis=0)
    if index & 4:
      y = np.transpose(y, (1, 0, 2))
    outputs.append(y)
  return np.clip(np.median(np.stack(outputs), axis=0), 0, 1).astype(np.float32)


@dataclasses.dataclass
class ZSSRFileConfig:
  """``tools/zssr.py``: one LR file in, its SR written (PNG), time and PSNR reported."""
  lr_path: str
  output_path: str
  degradation: str = "bicubic"  # parse_degradation spec: bicubic | gaussian:... | FILE.mat
  scale: int = 2
  gt_path: str | None = None  # Optional HR for PSNR/SSIM on Y (shave = scale).
  zssr: ZSSRConfig = dataclasses.field(default_factory=ZSSRConfig)


def run_file(config: ZSSRFileConfig, log: Callable[[str], None] = print) -> dict:
  """Trains ZSSR on ``config.lr_path``, writes the SR atomically; returns the record.

  Raises:
    ValueError: unreadable/odd input, bad settings, an existing output that is the
      input, or a ground truth of the wrong size.
  """
  import os  # pylint: disable=g-import-not-at-top
  import pathlib  # pylint: disable=g-import-not-at-top
  from mlsr_tf import metrics  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import image_io  # pylint: disable=g-import-not-at-top
  config.zssr.validate()
  degradation = degradation_lib.parse_degradation(config.degradation, config.scale)
  from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
  lr_path, output_path = pathlib.Path(config.lr_path), pathlib.Path(config.output_path)
  if paths.same_file(output_path, lr_path):
    raise ValueError(f"output {str(output_path)!r} would overwrite the input")
  if output_path.suffix.lower() != ".png":
    raise ValueError(f"output must be a .png file, got {str(output_path)!r}")
  image_io.check_output_path(output_path)
  lr = image_io.read_image(lr_path)
  degradation_lib.check_fits(degradation, lr.shape, f"the image {str(lr_path)!r}")
  if lr.dtype != np.uint8:
    raise ValueError(f"{str(lr_path)!r}: only 8-bit images are supported, got {lr.dtype}")
  lr = lr[:, :, :3]
  gt = None
  if config.gt_path:
    gt = image_io.read_image(config.gt_path)[:, :, :3]
    expected = (lr.shape[0] * config.scale, lr.shape[1] * config.scale)
    if gt.shape[:2] != expected:
      raise ValueError(f"ground truth {config.gt_path!r} is {gt.shape[:2]}, expected "
                       f"{expected} (LR x scale)")
  sr, record = train_and_upscale(lr, degradation, config.zssr, log=log)
  sr = image_io.to_uint(sr)
  output_path.parent.mkdir(parents=True, exist_ok=True)
  tmp = output_path.with_name(f".{output_path.stem}.tmp-{os.getpid()}.png")
  image_io.write_png(tmp, sr)
  os.replace(tmp, output_path)
  summary = {"iterations": record["iterations"], "seconds": record["seconds"],
             "train_seconds": record["train_seconds"],
             "final_learning_rate": record["final_learning_rate"]}
  if gt is not None:
    y_sr, y_gt = metrics.rgb_to_y(sr), metrics.rgb_to_y(gt)
    summary["psnr"] = metrics.psnr_y(y_sr, y_gt, config.scale)
    summary["ssim"] = metrics.ssim_y(y_sr, y_gt, config.scale)
  log(f"wrote {output_path}: {record['iterations']} iterations, {record['seconds']:.1f} "
      f"seconds" + (f", PSNR {summary['psnr']:.2f} dB, SSIM {summary['ssim']:.4f}"
                    if gt is not None else ""))
  return summary
