"""Adapting and super-resolving image files: the library behind ``tools/adapt_image.py``.

One image (or a folder of them) goes through:

1. :func:`load_inference_model`: the shipped model (``pretrained/default.json`` or another
   spec) or a registered network with weights in any format ``mlsr_tf.models_io`` reads;
2. colour handling (:func:`super_resolve`), so any PNG/JPEG/BMP/TIFF works with any model:

   * 8-bit images give 8-bit results, 16-bit images 16-bit results (the network sees
     float32 in [0, 1] either way);
   * RGBA: the colour channels are adapted and upscaled, alpha is upscaled with MATLAB
     bicubic (no network);
   * a Y-only model (1 channel, e.g. ``idn_caffe``) on a colour image adapts and upscales
     Y (BT.601, MATLAB ``rgb2ycbcr``) and takes Cb/Cr from bicubic;
   * a gray image on an RGB model is replicated to RGB; the result's channel mean is kept;

3. Algorithm 2 of the paper: ``mlsr_tf.meta.adaptation.adapt`` for a whole image; with
   tiling its two halves (``adapt_parameters`` on ``make_lr_down(LR)`` and LR, exactly what
   ``adapt`` does) and a tiled ``predict``; never a copy of its loop;
4. optional tiling of the final forward pass (``tile``): tiles of ``tile`` LR pixels with
   ``overlap`` pixels of context on each side, the context cut off again.  With the overlap
   at least the network's receptive radius (the default, measured by
   :func:`receptive_radius`) the result equals the untiled one up to float rounding.

With a ground truth, :func:`run` reports ``psnr_before`` (the same network *without*
adaptation, i.e. 0 steps, on the same input and tiling), ``psnr_after``, ``ssim_after``
(Y channel, BT.601, ``scale`` border pixels shaved; the images are compared on their
common top-left area, which differs only when the HR size is not a multiple of the scale).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import sys
import time
import weakref
from typing import Callable, Optional, TextIO

import numpy as np

from mlsr_tf import metrics
from mlsr_tf import paths
from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib
from mlsr_tf.data import synthetic
from mlsr_tf.meta import step_sizes as step_sizes_lib  # NumPy only (no TensorFlow).

# Outputs written while a run is in progress (renamed to their names at its end).
STAGED_PATTERN = r"\..+\.(?P<pid>\d+)\.staged\.png"
# The LR must give an LR_down of at least this many pixels per side (per scale factor).
MIN_LR_DOWN_SIDE = 4
# Default SGD step size ([0, 1] pixels, L2) for networks without a model card, i.e. not
# meta-trained (plain fine-tuning).  The paper's 1e-5 at 0..255 (0.65025 here) is for
# meta-trained weights: on IDN-Caffe it diverges (Urban100 img004: 30.5 -> 5.8 dB in 5
# steps), 0.3 diverges on a crop, 0.1 gains (WORKSPACE.md section 6).
DEFAULT_ALPHA = 0.1
DEFAULT_STEPS = 5
# Those of mlsr_tf.meta.adaptation, which is imported late here (it loads TensorFlow).
OPTIMIZERS = ("sgd", "adam")

# MATLAB rgb2ycbcr (BT.601, studio swing) on [0, 1] RGB -> [0, 1]-scaled YCbCr.
_YCBCR_MATRIX = np.array([[65.481, 128.553, 24.966],
                          [-37.797, -74.203, 112.0],
                          [112.0, -93.786, -18.214]], np.float64) / 255.0
_YCBCR_OFFSET = np.array([16.0, 128.0, 128.0], np.float64) / 255.0


def rgb_to_ycbcr(rgb: np.ndarray) -> np.ndarray:
  """Float RGB in [0, 1] (HWC) -> YCbCr scaled to [0, 1] (MATLAB ``rgb2ycbcr`` / 255)."""
  return np.asarray(rgb, np.float64) @ _YCBCR_MATRIX.T + _YCBCR_OFFSET


def ycbcr_to_rgb(ycbcr: np.ndarray) -> np.ndarray:
  """Inverse of :func:`rgb_to_ycbcr` (not clipped)."""
  return (np.asarray(ycbcr, np.float64) - _YCBCR_OFFSET) @ np.linalg.inv(_YCBCR_MATRIX).T


@dataclasses.dataclass
class InferenceModel:
  """A network ready for adaptation, with its recommended settings.

  Attributes:
    model: the Keras SR model (float32 NHWC in [0, 1], dynamic H, W).
    scale: its upscaling factor.
    channels: 3 (RGB) or 1 (Y only).
    steps: default number of adaptation steps (model card, or :data:`DEFAULT_STEPS`).
    alpha: default SGD step size for [0, 1] pixels (model card, or :data:`DEFAULT_ALPHA`).
    description: what was loaded, for logs.
    step_sizes: learned ``[k, P]`` step sizes shipped with a meta-trained model (used
      instead of ``alpha`` unless one is given; a ``step_sizes.KernelSigmaBands`` when
      they depend on the kernel's width), else None.
  """
  model: object
  scale: int
  channels: int
  steps: int
  alpha: float
  description: str
  step_sizes: Optional[object] = None


def _model_channels(model) -> int:
  return int(model.inputs[0].shape[-1])


def _model_scale(model) -> int:
  scale = getattr(model, "scale", None)
  if isinstance(scale, int) and scale >= 1:
    return scale
  probe = np.zeros((1, 8, 8, _model_channels(model)), np.float32)
  return int(np.asarray(model(probe)).shape[1] // 8)


def load_inference_model(model: str = "default", weights: Optional[str] = None,
                         scale: Optional[int] = None,
                         precision: str = "float32") -> InferenceModel:
  """Loads the network to use.

  Args:
    model: a shipped model name (``default``) or a spec JSON path (see
      :mod:`mlsr_tf.pretrained`); or a registered network name
      (``mlsr_tf.models.list_models()``), then ``weights`` is required.
    weights: weights for a registered network (any format of ``mlsr_tf.models_io``).
    scale: the upscaling factor; must agree with a shipped model's, defaults to 2 for a
      registered network.
    precision: the layers' dtype policy (``mlsr_tf.models.registry.PRECISIONS``);
      ``mixed_bfloat16`` is faster on CPUs with AMX (see the model card for its PSNR cost).

  Raises:
    ValueError: unknown model, missing/mismatched weights, conflicting scale.
    FileNotFoundError: a shipped spec or its weights are missing.
  """
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  if scale is not None and (isinstance(scale, bool) or int(scale) != scale or scale < 1):
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  if model in registry.list_models():
    if not weights:
      raise ValueError(f"--model {model} needs --weights (a registered network without "
                       "trained weights super-resolves nothing)")
    from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top
    scale = 2 if scale is None else int(scale)
    network = models_io.build_and_load(model, weights, scale=scale, precision=precision)
    return InferenceModel(network, scale, _model_channels(network), DEFAULT_STEPS,
                          DEFAULT_ALPHA, f"{model} x{scale} from {weights}")
  if weights:
    raise ValueError(f"--weights is only for a registered network (one of "
                     f"{registry.list_models()}), not with the shipped model {model!r}")
  from mlsr_tf import pretrained  # pylint: disable=g-import-not-at-top
  is_path = str(model).endswith(".json")
  if not is_path and not pretrained.spec_path(str(model)).is_file():
    if model == pretrained.DEFAULT_NAME:
      raise FileNotFoundError(
          f"the default model {pretrained.spec_path(model)} is not installed yet; pass "
          "--model NAME --weights FILE (e.g. --model idn_caffe --weights IDN_x2.caffemodel)")
    raise ValueError(f"unknown model {model!r}: neither a registered network "
                     f"{registry.list_models()} nor a shipped model "
                     f"{[p.stem for p in pretrained.available()]} nor a spec .json")
  network, spec = pretrained.load_model(str(model), precision=precision)
  if scale is not None and int(scale) != spec.scale:
    raise ValueError(f"--scale {scale} conflicts with model {model!r}, which is x{spec.scale}")
  return InferenceModel(network, spec.scale, spec.channels, spec.adaptation_steps,
                        spec.adaptation_alpha, f"{spec.model} x{spec.scale} ({model})",
                        pretrained.load_step_sizes(spec, network))


# Measured receptive radius per model (weak: models can be freed).
_RADIUS_CACHE = weakref.WeakKeyDictionary()


def receptive_radius(model, scale: int, start: int = 24, limit: int = 256) -> int:
  """How far (in LR pixels) a change in the input can move the output: a probe.

  Runs the network on a smooth random image with and without a bump in the centre and
  measures the extent of the change; doubles the probe while the change reaches its
  border.  Used as the default tile overlap.
  """
  channels = _model_channels(model)
  rng = np.random.default_rng(0)
  size = start
  while True:
    side = 2 * size + 1
    base = 0.3 + 0.4 * rng.random((side, side, channels)).astype(np.float32)
    bumped = base.copy()
    bumped[size, size] += 0.2
    out = np.asarray(model(np.stack([base, bumped])), np.float64)
    changed = np.abs(out[0] - out[1]).max(axis=-1) > 1e-6
    rows, cols = np.nonzero(changed)
    centre = scale * size + (scale - 1) / 2.0
    reach = 0.0 if rows.size == 0 else max(np.abs(rows - centre).max(),
                                           np.abs(cols - centre).max())
    radius = int(math.ceil(reach / scale)) + 1
    if radius < size - 1 or size >= limit:
      return radius
    size *= 2


def tiled_predict(model, params, lr: np.ndarray, scale: int, tile: int, overlap: int,
                  progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
  """``adaptation.predict`` tile by tile: float HWC [0, 1] -> float32 HWC, clipped.

  Each ``tile x tile`` block of the LR is run with ``overlap`` pixels of context on every
  side (where the image has them); only the block's own output is kept.
  """
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  if tile < 1 or overlap < 0:
    raise ValueError(f"need tile >= 1 and overlap >= 0, got tile={tile!r}, overlap={overlap!r}")
  height, width, channels = lr.shape
  out = np.zeros((scale * height, scale * width, channels), np.float32)
  boxes = [(top, left) for top in range(0, height, tile) for left in range(0, width, tile)]
  for index, (top, left) in enumerate(boxes):
    bottom, right = min(top + tile, height), min(left + tile, width)
    top0, left0 = max(top - overlap, 0), max(left - overlap, 0)
    bottom1, right1 = min(bottom + overlap, height), min(right + overlap, width)
    sr = adaptation.predict(model, params, lr[top0:bottom1, left0:right1])
    out[scale * top:scale * bottom, scale * left:scale * right] = sr[
        scale * (top - top0):scale * (bottom - top0),
        scale * (left - left0):scale * (right - left0)]
    if progress is not None:
      progress(index + 1, len(boxes))
  return out


@dataclasses.dataclass
class AdaptOptions:
  """How to adapt and run the network on one image (see :func:`super_resolve`)."""
  steps: int = DEFAULT_STEPS
  alpha: float = DEFAULT_ALPHA
  crops: Optional[int] = None
  crop_size: Optional[int] = None
  tile: Optional[int] = None
  overlap: Optional[int] = None  # None: the network's receptive radius.
  seed: int = 0
  step_sizes: Optional[np.ndarray] = None  # Learned [k, P] step sizes: replace alpha.
  optimizer: str = "sgd"  # "sgd" (MLSR) or "adam" (alpha is then its learning rate).

  def step_size_argument(self):
    """What ``adaptation.adapt_parameters`` takes as ``alpha``."""
    return float(self.alpha) if self.step_sizes is None else self.step_sizes


def check_options(options: AdaptOptions, scale: int) -> None:
  """Raises ValueError (repeating the value) for bad or conflicting options."""
  steps = options.steps
  if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
  try:
    alpha = float(options.alpha)
  except (TypeError, ValueError):
    alpha = float("nan")
  if not math.isfinite(alpha) or alpha < 0:
    raise ValueError(f"alpha must be finite and >= 0, got {options.alpha!r}")
  if options.optimizer not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {options.optimizer!r}; expected one of {OPTIMIZERS}")
  if options.optimizer == "adam" and options.step_sizes is not None:
    raise ValueError("learned step sizes are SGD step sizes; adam takes one learning rate "
                     "(alpha)")
  if (options.crops is None) != (options.crop_size is None):
    raise ValueError(f"crops and crop_size go together, got crops={options.crops!r}, "
                     f"crop_size={options.crop_size!r}")
  if options.crops is not None and (options.crops < 1 or options.crop_size < scale or
                                    options.crop_size % scale):
    raise ValueError(f"need crops >= 1 and crop_size a positive multiple of the scale {scale}, "
                     f"got crops={options.crops!r}, crop_size={options.crop_size!r}")
  if options.tile is not None and options.tile < 1:
    raise ValueError(f"tile must be a positive number of LR pixels, got {options.tile!r}")
  if options.overlap is not None and options.overlap < 0:
    raise ValueError(f"overlap must be >= 0, got {options.overlap!r}")


def _adapt_network_input(model, image: np.ndarray, degradation, options: AdaptOptions,
                         on_step=None, on_tile=None) -> np.ndarray:
  """Adapts on ``image`` (float HWC, the model's channels); returns the SR (float32 HWC)."""
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  scale = degradation.scale
  kwargs = dict(crops=options.crops, crop_size=options.crop_size, seed=options.seed,
                optimizer=options.optimizer, progress=on_step)
  if options.tile is None or options.tile >= max(image.shape[:2]):
    return adaptation.adapt(model, image, degradation, int(options.steps),
                            options.step_size_argument(), **kwargs)
  # Tiled: the same adaptation as `adapt` (its own two halves), then a tiled forward pass.
  params = adaptation.adapt_parameters(
      model, adaptation.make_lr_down(image, degradation), image, int(options.steps),
      options.step_size_argument(), **kwargs)
  overlap = options.overlap
  if overlap is None:
    if model not in _RADIUS_CACHE:
      _RADIUS_CACHE[model] = receptive_radius(model, scale)
    overlap = _RADIUS_CACHE[model]
  return tiled_predict(model, params, image, scale, options.tile, overlap, on_tile)


def super_resolve(model, image: np.ndarray, degradation: degradation_lib.Degradation,
                  options: AdaptOptions, on_step=None, on_tile=None) -> np.ndarray:
  """Adapts ``model`` to ``image`` and upscales it; colour handling as in the module doc.

  Args:
    model: a Keras SR network of ``degradation.scale`` (1 or 3 input channels).
    image: HWC uint8/uint16 (as from ``image_io.read_image``), 1, 3 or 4 channels.
    degradation: the degradation believed to have made the image (builds LR_down).
    options: :class:`AdaptOptions`.
    on_step: ``on_step(step, steps, loss)`` after each adaptation step.
    on_tile: ``on_tile(done, total)`` after each tile.

  Returns:
    The SR image, HWC of the input's dtype and channel count, ``scale`` times larger.
  """
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[:, :, None]
  if image.dtype not in (np.uint8, np.uint16) or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
    raise ValueError(f"expected an HWC uint8/uint16 image with 1, 3 or 4 channels, "
                     f"got {image.dtype} of shape {image.shape}")
  scale = degradation.scale
  check_options(options, scale)
  min_side = MIN_LR_DOWN_SIDE * scale
  if min(image.shape[:2]) < min_side:
    raise ValueError(f"image of size {image.shape[1]}x{image.shape[0]} is too small for x{scale} "
                     f"adaptation (needs at least {min_side}x{min_side})")
  if options.crops is not None and options.crop_size > scale * (min(image.shape[:2]) // scale):
    raise ValueError(f"crop_size {options.crop_size} is larger than the image "
                     f"({image.shape[1]}x{image.shape[0]})")
  values = image_io.to_float(image).astype(np.float64)
  color, alpha = values, None
  if values.shape[2] == 4:
    color, alpha = values[:, :, :3], values[:, :, 3:]
  model_channels = _model_channels(model)
  run = lambda x: _adapt_network_input(model, x.astype(np.float32), degradation, options,
                                       on_step, on_tile)
  if model_channels == color.shape[2]:
    sr = run(color)
  elif model_channels == 1:  # Y-only network on a colour image.
    ycbcr = rgb_to_ycbcr(color)
    y_sr = run(ycbcr[:, :, :1])
    chroma = imresize_lib.imresize(ycbcr[:, :, 1:], scale)
    sr = ycbcr_to_rgb(np.concatenate([y_sr.astype(np.float64), chroma], axis=-1))
  elif model_channels == 3 and color.shape[2] == 1:  # Gray image on an RGB network.
    sr = run(np.repeat(color, 3, axis=2)).mean(axis=-1, keepdims=True)
  else:
    raise ValueError(f"cannot run a {model_channels}-channel model on a "
                     f"{color.shape[2]}-channel image")
  if alpha is not None:
    sr = np.concatenate([sr, imresize_lib.imresize(alpha, scale)], axis=-1)
  return image_io.to_uint(np.clip(sr, 0.0, 1.0), image.dtype)


def compare_to_gt(sr: np.ndarray, gt: np.ndarray, scale: int) -> tuple[float, float]:
  """(PSNR, SSIM) on Y (BT.601), ``scale`` border pixels shaved, common top-left area.

  Raises:
    ValueError: the sizes differ by ``scale`` pixels or more (not this image's HR).
  """
  if any(abs(a - b) >= scale for a, b in zip(sr.shape[:2], gt.shape[:2])):
    raise ValueError(f"ground truth of size {gt.shape[1]}x{gt.shape[0]} does not match the "
                     f"x{scale} result of size {sr.shape[1]}x{sr.shape[0]}")
  height, width = min(sr.shape[0], gt.shape[0]), min(sr.shape[1], gt.shape[1])

  def y_plane(image):
    image = image[:height, :width]
    if image.dtype == np.uint16:
      image = image_io.to_uint(image_io.to_float(image), np.uint8)
    return metrics.rgb_to_y(image)

  y_sr, y_gt = y_plane(sr), y_plane(gt)
  return metrics.psnr_y(y_sr, y_gt, scale), metrics.ssim_y(y_sr, y_gt, scale)


class Progress:
  """A one-line text progress bar on ``stream`` (redrawn with carriage returns)."""

  def __init__(self, label: str, stream: TextIO, width: int = 24):
    self.label, self.stream, self.width = label, stream, width
    self.open = False  # A bar is drawn without its final newline.

  def __call__(self, done: int, total: int, loss: Optional[float] = None) -> None:
    filled = int(round(self.width * done / max(total, 1)))
    text = f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}"
    if loss is not None:
      text += f" loss {loss:.3g}"
    self.open = done < total
    self.stream.write(text + ("" if self.open else "\n"))
    self.stream.flush()

  def close(self) -> None:
    """Ends an unfinished bar's line (so that an error message starts a line of its own)."""
    if self.open:
      self.stream.write("\n")
      self.stream.flush()
      self.open = False


@dataclasses.dataclass
class AdaptImageConfig:
  """Everything ``tools/adapt_image.py`` needs (one field per flag).

  ``input``/``output`` (default output: ``<input stem>_x<scale>.png`` beside the input) or
  ``input_dir``/``output_dir`` (folder mode: every supported image, ``<stem>_x<scale>.png``),
  or ``demo``: the offline image of ``mlsr_tf.data.synthetic.demo_image`` (384x512) as HR,
  its bicubic LR as input and the HR as ground truth (output default ``demo_x<scale>.png``).
  ``steps``/``alpha`` default to the model card's; ``optimizer`` "adam" (plain Adam on the
  same self-supervised loss, ``alpha`` its learning rate, which must then be given) instead of
  MLSR's SGD.  ``step_sizes``: a learned step-size file for the network (instead of the model
  card's; excludes ``alpha``).  ``kernel``: ``bicubic``,
  ``gaussian:SX,SY,THETA`` or a ``.mat``/``.npy`` file (the degradation used for LR_down).
  """
  input: Optional[str] = None
  output: Optional[str] = None
  input_dir: Optional[str] = None
  output_dir: Optional[str] = None
  model: str = "default"
  weights: Optional[str] = None
  scale: Optional[int] = None
  steps: Optional[int] = None
  alpha: Optional[float] = None
  step_sizes: Optional[str] = None
  optimizer: str = "sgd"
  kernel: str = "bicubic"
  crops: Optional[int] = None
  crop_size: Optional[int] = None
  tile: Optional[int] = None
  overlap: Optional[int] = None
  gt: Optional[str] = None
  seed: int = 0
  quiet: bool = False
  demo: bool = False
  precision: str = "float32"


def _plan(config: AdaptImageConfig, scale: int) -> list[tuple[pathlib.Path, pathlib.Path]]:
  """(input, output) pairs; checks the paths (before any work is done)."""
  if config.input_dir is not None:
    in_dir, out_dir = pathlib.Path(config.input_dir), pathlib.Path(config.output_dir)
    if not in_dir.is_dir():
      raise ValueError(f"--input_dir {str(in_dir)!r} is not a directory")
    if not out_dir.is_dir():
      raise ValueError(f"--output_dir {str(out_dir)!r} is not a directory")
    if paths.same_file(in_dir, out_dir):
      raise ValueError(f"--output_dir {str(out_dir)!r} must differ from --input_dir "
                       "(inputs are never overwritten)")
    inputs = sorted(p for p in in_dir.iterdir()
                    if p.is_file() and p.suffix.lower() in image_io.SUPPORTED_EXTENSIONS)
    if not inputs:
      raise ValueError(f"no images ({', '.join(image_io.SUPPORTED_EXTENSIONS)}) in "
                       f"{str(in_dir)!r}")
    return [(p, out_dir / f"{p.stem}_x{scale}.png") for p in inputs]
  source = pathlib.Path(config.input)
  target = (pathlib.Path(config.output) if config.output
            else source.with_name(f"{source.stem}_x{scale}.png"))
  if target.suffix.lower() != ".png":
    raise ValueError(f"--output must be a .png file, got {str(target)!r}")
  if paths.same_file(source, target):
    raise ValueError(f"--output {str(target)!r} would overwrite the input")
  image_io.check_output_path(target)
  if not target.parent.is_dir():
    raise ValueError(f"output directory {str(target.parent)!r} does not exist")
  return [(source, target)]


def check_config(config: AdaptImageConfig) -> None:
  """Flag-level checks that need no model (raises ValueError repeating the values)."""
  single, folder = config.input is not None, config.input_dir is not None
  if config.demo:
    if single or folder or config.gt:
      raise ValueError(f"--demo makes its own input and ground truth; it takes none of "
                       f"--input/--input_dir/--gt, got input={config.input!r}, "
                       f"input_dir={config.input_dir!r}, gt={config.gt!r}")
    single = True
  elif single == folder:
    raise ValueError(f"give exactly one of --input or --input_dir, got input={config.input!r}, "
                     f"input_dir={config.input_dir!r}")
  if folder and (config.output_dir is None or config.output is not None or config.gt):
    raise ValueError(f"--input_dir needs --output_dir and takes neither --output nor --gt, "
                     f"got output_dir={config.output_dir!r}, output={config.output!r}, "
                     f"gt={config.gt!r}")
  if single and config.output_dir is not None:
    raise ValueError(f"--output_dir goes with --input_dir, not --input "
                     f"(got {config.output_dir!r}); use --output")
  if config.steps is not None and config.steps < 0:
    raise ValueError(f"--steps must be >= 0, got {config.steps!r}")
  if config.alpha is not None and not (math.isfinite(config.alpha) and config.alpha >= 0):
    raise ValueError(f"--alpha must be finite and >= 0, got {config.alpha!r}")
  if config.scale is not None and config.scale < 1:
    raise ValueError(f"--scale must be a positive integer, got {config.scale!r}")
  if config.step_sizes is not None and (config.alpha is not None or config.optimizer != "sgd"):
    raise ValueError(f"--step_sizes are SGD step sizes that replace --alpha, got step_sizes "
                     f"{config.step_sizes!r} with alpha {config.alpha!r} and optimizer "
                     f"{config.optimizer!r}")
  if config.optimizer == "adam" and config.alpha is None:  # Its name is checked with the options.
    raise ValueError("--optimizer adam needs --alpha, its learning rate (e.g. 1e-4): the model "
                     "card's step size is an SGD step size")


def run(config: AdaptImageConfig, stdout: Optional[TextIO] = None,
        stderr: Optional[TextIO] = None) -> list[dict]:
  """Adapts to and super-resolves each input, writes the PNG(s); returns one dict per image.

  Prints progress to ``stderr``, a summary line per image to ``stdout`` and, with a
  ground truth, a last stdout line of JSON ``{"psnr_before", "psnr_after", "ssim_after",
  "steps", "seconds"}`` (``psnr_before``: the same network without adaptation).  Every
  input is read and checked before any output is written; outputs are written atomically.

  Raises:
    ValueError / OSError: bad flags, unreadable inputs, missing model (nothing written).
  """
  stdout = stdout or sys.stdout
  stderr = stderr or sys.stderr
  check_config(config)
  if config.input is not None:  # Fail on bad paths before the (slow) model load.
    image_io.read_image(config.input)
    if config.output is not None:
      _plan(config, scale=1)
  loaded = load_inference_model(config.model, config.weights, config.scale, config.precision)
  if config.step_sizes is not None:
    loaded = dataclasses.replace(
        loaded, step_sizes=step_sizes_lib.load(config.step_sizes, loaded.model))
  scale = loaded.scale
  degradation = degradation_lib.parse_degradation(config.kernel, scale)
  options = AdaptOptions(
      steps=loaded.steps if config.steps is None else config.steps,
      alpha=loaded.alpha if config.alpha is None else config.alpha,
      crops=config.crops, crop_size=config.crop_size, tile=config.tile,
      overlap=config.overlap, seed=config.seed,
      step_sizes=(step_sizes_lib.for_degradation(loaded.step_sizes, degradation)
                  if config.alpha is None else None),
      optimizer=config.optimizer)
  check_options(options, scale)
  if config.demo:
    gt = synthetic.demo_image(384, 512)
    images = [degradation_lib.degrade(gt, degradation)]
    target = pathlib.Path(config.output or f"demo_x{scale}.png")
    if target.suffix.lower() != ".png":
      raise ValueError(f"--output must be a .png file, got {str(target)!r}")
    pairs = [(pathlib.Path("demo"), target)]
  else:
    pairs = _plan(config, scale)
    images = [image_io.read_image(source) for source, _ in pairs]
    gt = image_io.read_image(config.gt) if config.gt else None
  for (source, _), image in zip(pairs, images):  # All checks before any output.
    if min(image.shape[:2]) < MIN_LR_DOWN_SIDE * scale:
      raise ValueError(f"image {str(source)!r} of size {image.shape[1]}x{image.shape[0]} is "
                       f"too small for x{scale} (needs at least {MIN_LR_DOWN_SIDE * scale} "
                       "pixels per side)")
    degradation_lib.check_fits(degradation, image.shape, f"the image {str(source)!r}")
    if gt is not None and any(abs(s * scale - g) >= scale
                              for s, g in zip(image.shape[:2], gt.shape[:2])):
      raise ValueError(f"--gt {config.gt!r} of size {gt.shape[1]}x{gt.shape[0]} does not "
                       f"match x{scale} of the input ({image.shape[1]}x{image.shape[0]})")
  quiet_stream = open(os.devnull, "w") if config.quiet else None  # pylint: disable=consider-using-with
  progress_stream = quiet_stream or stderr
  results, staged = [], []
  for directory in {target.parent for _, target in pairs}:
    paths.remove_stale_temporaries(directory, STAGED_PATTERN)
  try:
    for (source, target), image in zip(pairs, images):
      step_bar = Progress(f"adapt {source.name}", progress_stream)
      tile_bar = Progress(f"tiles {source.name}", progress_stream)
      start = time.perf_counter()
      try:
        sr = super_resolve(loaded.model, image, degradation, options, step_bar, tile_bar)
      except ValueError as error:  # E.g. AdaptationDivergedError: say which image.
        step_bar.close()
        tile_bar.close()
        raise type(error)(f"{source.name}: {error}") from None
      seconds = time.perf_counter() - start
      # Staged beside the target; renamed only once every image succeeded (a diverged or
      # failing later image leaves no output at all).
      staged.append((target.with_name(f".{target.stem}.{os.getpid()}.staged.png"), target))
      image_io.write_png(staged[-1][0], sr)
      result = {"input": str(source), "output": str(target), "steps": int(options.steps),
                "seconds": round(seconds, 3)}
      lines = [f"wrote {target}: {sr.shape[1]}x{sr.shape[0]} (x{scale}, {loaded.description}, "
               f"{degradation.name}, {options.steps} steps in {seconds:.1f} s)"]
      if gt is not None:
        before = super_resolve(loaded.model, image, degradation,
                               dataclasses.replace(options, steps=0))
        psnr_before, _ = compare_to_gt(before, gt, scale)
        psnr_after, ssim_after = compare_to_gt(sr, gt, scale)
        result.update(psnr_before=round(psnr_before, 4), psnr_after=round(psnr_after, 4),
                      ssim_after=round(ssim_after, 5))
        lines.append(json.dumps({key: result[key] for key in
                                 ("psnr_before", "psnr_after", "ssim_after", "steps",
                                  "seconds")}))
      results.append((result, lines))
    for staged_path, target in staged:
      os.replace(staged_path, target)
    staged = []
  finally:
    if quiet_stream is not None:
      quiet_stream.close()
    for staged_path, _ in staged:
      staged_path.unlink(missing_ok=True)
  for _, lines in results:
    for line in lines:
      print(line, file=stdout)
  return [result for result, _ in results]
