"""Benchmark evaluation: PSNR/SSIM of an upscaler on Set5/Set14/B100/Urban100.

An *upscaler* is a function ``upscale_fn(lr, name)`` taking the LR image (uint8
``HWC``, 1 or 3 channels) and the image name, and returning either

* the SR image (uint8 ``HWC``, the HR's shape), or a Y-only SR image (uint8
  ``HW1``, for an RGB HR: compared against the HR's Y directly, as Y-channel
  networks are evaluated), or
* a dict ``{column: sr}`` to score several variants of one image at once (e.g.
  adaptation after 0, 5, 20 steps); the report then has one column per key.

:func:`evaluate` scores an upscaler; :func:`run` is what ``tools/evaluate.py``
calls: it builds the upscaler named in an :class:`EvalConfig` (``bicubic``
built in; any registered name via :func:`register_upscaler`; otherwise a
registry network loaded with ``--weights``), evaluates and prints the report.
"""

import dataclasses
import json
import math
import sys
import time
from typing import Any, Callable, Dict, Mapping, Optional, Sequence, TextIO, Union

import numpy as np

from mlsr_tf import metrics
from mlsr_tf.data import datasets as datasets_lib
from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

SrOutput = Union[np.ndarray, Mapping[str, np.ndarray]]
UpscaleFn = Callable[[np.ndarray, str], SrOutput]
OUTPUT_FORMATS = ("markdown", "json")


def bicubic_upscale_fn(scale: int) -> UpscaleFn:
  """MATLAB bicubic upscaling by ``scale`` (the classic baseline)."""
  return lambda lr, name: imresize_lib.imresize(lr, scale)


def _score(hr: np.ndarray, sr: np.ndarray, shave: int, where: str):
  """(psnr, ssim) of one SR output against its HR, on Y."""
  sr = np.asarray(sr)
  if sr.dtype != np.uint8:
    raise ValueError(f"{where}: the upscaler returned dtype {sr.dtype}, expected uint8")
  if sr.ndim == 2:
    sr = sr[:, :, None]
  if sr.shape[:2] != hr.shape[:2]:
    raise ValueError(f"{where}: SR shape {sr.shape} does not match HR shape {hr.shape}")
  if sr.shape[2] == 1 and hr.shape[2] != 1:
    y_hr, y_sr = metrics.rgb_to_y(hr), sr[:, :, 0].astype(np.float64)
    return metrics.psnr_y(y_sr, y_hr, shave), metrics.ssim_y(y_sr, y_hr, shave)
  if sr.shape != hr.shape:
    raise ValueError(f"{where}: SR shape {sr.shape} does not match HR shape {hr.shape}")
  return metrics.psnr(sr, hr, shave), metrics.ssim(sr, hr, shave)


def evaluate(upscale_fn: UpscaleFn, datasets: Sequence[str], scale: int,
             degradation: Optional[degradation_lib.Degradation] = None,
             root=None, shave: Optional[int] = None,
             progress: Optional[TextIO] = None,
             max_images: int = 0) -> Dict[str, Dict[str, Any]]:
  """Scores ``upscale_fn`` on benchmark sets.

  Args:
    upscale_fn: see the module docstring.
    datasets: names from ``datasets.BENCHMARKS``.
    scale: integer SR factor.
    degradation: how LR is made from HR (default: MATLAB bicubic).
    root: data root (default: ``$MLSR_DATA`` or ``../shared``).
    shave: border pixels ignored by the metrics (default: ``scale``).
    progress: a stream for one progress line per image (e.g. ``sys.stderr``).
    max_images: score only the first N images of each set, in file order (0: all).

  Returns:
    ``{"Set5": {"psnr": mean, "ssim": mean, "images": 5, "per_image":
    [{"name", "psnr", "ssim"}, ...]}, ...}``.  When the upscaler returns dicts,
    ``psnr``/``ssim`` (overall and per image) are dicts keyed by column.
  """
  scale = degradation_lib._check_scale(scale)  # pylint: disable=protected-access
  shave = scale if shave is None else shave
  results = {}
  for name in datasets:
    per_image = []
    columns = None
    for index, (image_name, hr, lr) in enumerate(
        datasets_lib.load_benchmark(name, scale, degradation, root)):
      if max_images and index >= max_images:
        break
      start = time.perf_counter()
      output = upscale_fn(lr, image_name)
      where = f"{name}/{image_name}"
      if isinstance(output, Mapping):
        keys = [str(k) for k in output]
        if columns is None:
          columns = keys
        elif keys != columns:
          raise ValueError(f"{where}: columns {keys} differ from earlier {columns}")
        scores = {str(k): _score(hr, v, shave, f"{where}[{k}]") for k, v in output.items()}
        entry = {"name": image_name,
                 "psnr": {k: s[0] for k, s in scores.items()},
                 "ssim": {k: s[1] for k, s in scores.items()}}
      else:
        if columns is not None:
          raise ValueError(f"{where}: the upscaler mixed dict and array outputs")
        p, s = _score(hr, output, shave, where)
        entry = {"name": image_name, "psnr": p, "ssim": s}
      per_image.append(entry)
      if progress is not None:
        print(f"[{name} {len(per_image)}] {image_name}: psnr {_brief(entry['psnr'])} "
              f"({time.perf_counter() - start:.2f} s)", file=progress, flush=True)
    if columns is None:
      summary = {"psnr": float(np.mean([e["psnr"] for e in per_image])),
                 "ssim": float(np.mean([e["ssim"] for e in per_image]))}
    else:
      summary = {metric: {c: float(np.mean([e[metric][c] for e in per_image]))
                          for c in columns} for metric in ("psnr", "ssim")}
    results[name] = {**summary, "images": len(per_image), "per_image": per_image}
  return results


def _brief(value) -> str:
  if isinstance(value, Mapping):
    return ", ".join(f"{k}: {v:.2f}" for k, v in value.items())
  return f"{value:.2f}"


def summarize(results: Mapping[str, Mapping[str, Any]]) -> Dict[str, Dict[str, Any]]:
  """The results without per-image entries (what the JSON report prints)."""
  return {name: {k: v for k, v in r.items() if k != "per_image"}
          for name, r in results.items()}


def format_markdown(results: Mapping[str, Mapping[str, Any]]) -> str:
  """A Markdown table: one row per set, PSNR / SSIM (one pair per column)."""
  first = next(iter(results.values()))
  columns = list(first["psnr"]) if isinstance(first["psnr"], Mapping) else [None]
  header = ["dataset", "images"]
  for column in columns:
    suffix = "" if column is None else f" [{column}]"
    header += [f"PSNR{suffix}", f"SSIM{suffix}"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for name, r in results.items():
    row = [name, str(r["images"])]
    for column in columns:
      p = r["psnr"] if column is None else r["psnr"][column]
      s = r["ssim"] if column is None else r["ssim"][column]
      row += [f"{p:.2f}", f"{s:.4f}"]
    lines.append("| " + " | ".join(row) + " |")
  return "\n".join(lines)


# ----------------------------------------------------------------------------
# Configured runs (the library behind tools/evaluate.py).


@dataclasses.dataclass
class EvalConfig:
  """What ``tools/evaluate.py`` asks for.

  Attributes:
    model: ``bicubic``, a name given to :func:`register_upscaler`, or a
      network of ``mlsr_tf.models.registry`` (then ``weights`` is required).
    weights: weights file for a network model.
    datasets: benchmark names.
    scale: SR factor.
    degradation: LR degradation spec (``degradation.parse_degradation``).
    data_root: data root (None: ``$MLSR_DATA`` or ``../shared``).
    output_format: ``markdown`` or ``json`` (JSON summary as the last stdout line).
    options: extra settings for registered upscalers (e.g. adaptation steps).
    protocol: ``standard`` or ``idn-caffe`` (Y only, float-bicubic LR on Y, as
      the IDN authors scored; see ``mlsr_tf.evaluation.idn_protocol``; network models only).
    precision: a network's dtype policy (``mlsr_tf.models.registry.PRECISIONS``).
  """
  model: str = "bicubic"
  weights: Optional[str] = None
  datasets: Sequence[str] = datasets_lib.BENCHMARKS
  scale: int = 2
  degradation: str = "bicubic"
  data_root: Optional[str] = None
  output_format: str = "markdown"
  options: Dict[str, Any] = dataclasses.field(default_factory=dict)
  protocol: str = "standard"
  precision: str = "float32"
  max_images: int = 0  # First N images of each set (0: all).


UpscalerFactory = Callable[[EvalConfig, degradation_lib.Degradation], UpscaleFn]
_UPSCALERS: Dict[str, UpscalerFactory] = {
    "bicubic": lambda config, degradation: bicubic_upscale_fn(config.scale),
}


def register_upscaler(name: str, factory: UpscalerFactory) -> None:
  """Makes ``EvalConfig(model=name)`` use ``factory(config, degradation) -> upscale_fn``."""
  if name in _UPSCALERS:
    raise ValueError(f"upscaler {name!r} is already registered")
  _UPSCALERS[name] = factory


def model_upscale_fn(model) -> UpscaleFn:
  """Wraps a Keras SR model (float NHWC in [0, 1] -> SR) as an upscaler.

  RGB models get gray images as three equal channels and return their channel
  mean; Y-only models (``model.channels == 1``) get the LR's BT.601 Y / 255
  and return Y (scored against the HR's Y).
  """
  import keras  # Lazy: evaluation of bicubic needs no deep-learning framework.

  channels = int(getattr(model, "channels", model.input_shape[-1]))

  def upscale(lr: np.ndarray, name: str) -> np.ndarray:
    del name
    if channels == 1:
      x = metrics.rgb_to_y(lr) / 255.0
      x = x[:, :, None]
    elif lr.shape[2] == 1:
      x = np.repeat(image_io.to_float(lr), channels, axis=2)
    else:
      x = image_io.to_float(lr)
    sr = keras.ops.convert_to_numpy(model(x[None].astype(np.float32), training=False))[0]
    if channels != 1 and lr.shape[2] == 1:
      sr = sr.mean(axis=2, keepdims=True)
    return image_io.to_uint(sr)

  return upscale


def _network_upscaler(config: EvalConfig, degradation) -> UpscaleFn:
  del degradation
  if not config.weights:
    raise ValueError(f"model {config.model!r} needs weights (--weights), got none")
  try:
    from mlsr_tf import models_io  # Lazy: the models stack is optional here.
  except ImportError as e:
    raise ValueError(
        f"model {config.model!r}: network models need mlsr_tf.models_io ({e})") from e
  model = models_io.build_and_load(config.model, config.weights, config.scale, None,
                                   precision=config.precision)
  return model_upscale_fn(model)


def make_upscale_fn(config: EvalConfig,
                    degradation: degradation_lib.Degradation) -> UpscaleFn:
  """The upscaler ``config.model`` names (see :class:`EvalConfig`)."""
  factory = _UPSCALERS.get(config.model, _network_upscaler)
  return factory(config, degradation)


def run(config: EvalConfig, stdout: Optional[TextIO] = None,
        stderr: Optional[TextIO] = None) -> Dict[str, Dict[str, Any]]:
  """Validates ``config``, evaluates and prints the report; returns the results.

  Raises:
    ValueError: bad settings or data (the message says which); image errors
      are ``ImageError``, a ``ValueError`` too.
  """
  stdout = sys.stdout if stdout is None else stdout
  stderr = sys.stderr if stderr is None else stderr
  if config.output_format not in OUTPUT_FORMATS:
    raise ValueError(
        f"unknown format {config.output_format!r}; expected one of {OUTPUT_FORMATS}")
  names = [d for d in config.datasets if d]
  if isinstance(config.max_images, bool) or not isinstance(config.max_images, int) or \
      config.max_images < 0:
    raise ValueError(f"max_images must be an integer >= 0, got {config.max_images!r}")
  if not names:
    raise ValueError(f"no datasets given: {config.datasets!r}")
  for name in names:
    if name not in datasets_lib.BENCHMARKS:
      raise ValueError(
          f"unknown dataset {name!r}; expected some of {datasets_lib.BENCHMARKS}")
  degradation = degradation_lib.parse_degradation(config.degradation, config.scale)
  for name in names:
    datasets_lib.find_dataset(name, config.data_root)  # Fail before any work.
  if config.protocol == "idn-caffe":
    # A registered network with weights, on bicubic LR; adaptation comes as options.
    from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
    if (not degradation.is_bicubic or config.model not in registry.list_models()
        or not config.weights):
      raise ValueError(f"protocol 'idn-caffe' needs a network model with --weights and the "
                       f"bicubic degradation, got model {config.model!r}, weights "
                       f"{config.weights!r}, degradation {config.degradation!r}")
    from mlsr_tf.evaluation import idn_protocol  # Lazy: the models stack is optional here.
    options = dict(config.options)
    adapt_steps = options.get("adapt_steps")
    adapt_options = None
    if options.get("step_sizes"):
      raise ValueError(f"protocol 'idn-caffe' adapts with one --alpha, got step sizes "
                       f"{options['step_sizes']!r}")
    if adapt_steps is not None:
      adapt_options = {key: options[name] for key, name in (
          ("alpha", "alpha"), ("optimizer", "finetune"), ("crops", "crops"),
          ("crop_size", "crop_size"), ("seed", "seed")) if options.get(name) is not None}
    results = idn_protocol.evaluate_with_protocol(
        config.model, config.weights, names, config.scale, config.protocol,
        config.data_root, progress=stderr, adapt_steps=adapt_steps,
        adapt_options=adapt_options, precision=config.precision)
  elif config.protocol == "standard":
    upscale_fn = make_upscale_fn(config, degradation)
    results = evaluate(upscale_fn, names, config.scale, degradation,
                       config.data_root, progress=stderr, max_images=config.max_images)
  else:
    raise ValueError(f"unknown protocol {config.protocol!r}; expected standard or idn-caffe")
  if config.output_format == "json":
    print(json.dumps(summarize(results), allow_nan=True), file=stdout, flush=True)
  else:
    print(f"model {config.model}, x{config.scale}, degradation {degradation.name}",
          file=stdout)
    print(format_markdown(results), file=stdout, flush=True)
  return results
