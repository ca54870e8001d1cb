"""Running SR networks on images, and the IDN authors' evaluation protocol.

`evaluate_idn_caffe` scores a Y-only network the way the IDN authors computed
their published numbers (Hui et al., CVPR 2018, Caffe release), which differs
from the standard protocol of `mlsr_tf.evaluation.evaluate` in how the LR is made:

  standard:  LR = MATLAB bicubic of the uint8 RGB HR, quantized to uint8;
  idn-caffe: Y = MATLAB `rgb2ycbcr` of the uint8 HR (uint8, i.e. rounded),
             LR = MATLAB bicubic of Y / 255 in float (NOT quantized); the
             network output (residual + bicubic upscale, inside the model) is
             quantized to uint8 and compared with Y, `scale` border pixels shaved.

Gray images are their own Y. PSNR/SSIM are `mlsr_tf.metrics.psnr_y`/`ssim_y`.
"""

import sys
import time
from typing import Any, Optional, Sequence, TextIO

import numpy as np

from mlsr_tf import metrics
from mlsr_tf.data import datasets as datasets_lib
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

PROTOCOLS = ("standard", "idn-caffe")


def predict(model, images: np.ndarray) -> np.ndarray:
  """Runs `model` on float NHWC (or one HWC) images in [0, 1]; returns float32 numpy."""
  import keras  # pylint: disable=g-import-not-at-top  # Lazy: keeps imports light.
  batch = np.asarray(images, dtype=np.float32)
  single = batch.ndim == 3
  if single:
    batch = batch[None]
  out = keras.ops.convert_to_numpy(model(batch, training=False))
  return out[0] if single else out


def uint8_y(image: np.ndarray) -> np.ndarray:
  """MATLAB `rgb2ycbcr` Y of a uint8 image, as uint8 (rounded); gray is its own Y."""
  if image.ndim == 3 and image.shape[2] == 1:
    return image[:, :, 0]
  if image.ndim == 2:
    return image
  return image_io.to_uint(metrics.rgb_to_y(image) / 255.0)


def idn_caffe_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
  """(uint8 Y of the HR cropped to a multiple of `scale`, float LR Y in [0, 1])."""
  y_hr = datasets_lib.crop_to_multiple(uint8_y(hr), scale)
  lr = imresize_lib.imresize(y_hr.astype(np.float64) / 255.0, 1.0 / scale)
  return y_hr, lr


def upscale_y(model, lr_y: np.ndarray) -> np.ndarray:
  """Float Y (HW, [0, 1]) -> the model's float output (sH x sW), unclipped."""
  return predict(model, lr_y[:, :, None])[:, :, 0]


def _columns_mean(per_image: list, metric: str):
  first = per_image[0][metric]
  if isinstance(first, dict):
    return {c: float(np.mean([e[metric][c] for e in per_image])) for c in first}
  return float(np.mean([e[metric] for e in per_image]))


def score_image(model, hr: np.ndarray, scale: int,
                adapt_steps: Optional[Sequence[int]] = None,
                adapt_options: Optional[dict] = None) -> dict:
  """``{"psnr", "ssim"}`` of one uint8 RGB HR image under the IDN-Caffe protocol.

  Without ``adapt_steps`` the values are numbers; with them (MLSR's Algorithm 2 on
  (LR_down, LR), LR_down = MATLAB bicubic of the protocol's float LR, not quantized, like
  the LR itself) they are ``{"<steps>": value}``, one adaptation run read out at each count.
  """
  y_hr, lr = idn_caffe_lr(hr, scale)
  y_hr = y_hr.astype(np.float64)
  if adapt_steps is None:
    sr = image_io.to_uint(upscale_y(model, lr)).astype(np.float64)
    return {"psnr": metrics.psnr_y(sr, y_hr, scale), "ssim": metrics.ssim_y(sr, y_hr, scale)}
  from mlsr_tf.data import degradation as degradation_lib  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  by_step = adaptation.adapt_at_steps(model, lr[:, :, None].astype(np.float32),
                                      degradation_lib.bicubic(scale), adapt_steps,
                                      **(adapt_options or {}))
  srs = {str(k): image_io.to_uint(v[:, :, 0]).astype(np.float64)
         for k, v in sorted(by_step.items())}
  return {"psnr": {k: metrics.psnr_y(sr, y_hr, scale) for k, sr in srs.items()},
          "ssim": {k: metrics.ssim_y(sr, y_hr, scale) for k, sr in srs.items()}}


def evaluate_idn_caffe(model, datasets: Sequence[str], scale: int, root=None,
                       progress: Optional[TextIO] = None,
                       adapt_steps: Optional[Sequence[int]] = None,
                       adapt_options: Optional[dict] = None) -> dict[str, dict[str, Any]]:
  """Scores a 1-channel network with the IDN-Caffe protocol (module docstring).

  With ``adapt_steps`` (e.g. ``[0, 5, 20]``) every image is first adapted (MLSR's
  Algorithm 2) on (LR_down, LR), LR_down being MATLAB bicubic of the protocol's float LR
  (not quantized, like the LR itself), and scored after each step count: ``psnr``/``ssim``
  become ``{"<steps>": value}`` as in ``mlsr_tf.evaluation.evaluate``.  ``adapt_options``
  are keyword arguments of ``mlsr_tf.meta.adaptation.adapt_at_steps`` (``alpha``,
  ``optimizer``, ``crops``, ``crop_size``, ``seed``).

  Returns:
    The structure of `mlsr_tf.evaluation.evaluate.evaluate`: {set: {"psnr", "ssim",
    "images", "per_image": [{"name", "psnr", "ssim"}]}}.

  Raises:
    ValueError: a model that is not 1-channel, or unknown datasets.
  """
  channels = int(model.input_shape[-1])
  if channels != 1:
    raise ValueError(f"the idn-caffe protocol is Y only: model {model.name!r} has "
                     f"{channels} channels")
  results = {}
  for name in datasets:
    per_image = []
    for path in datasets_lib.find_dataset(name, root):
      start = time.perf_counter()
      hr = image_io.read_image(path)[:, :, :3]
      entry = dict(name=path.stem, **score_image(model, hr, scale, adapt_steps, adapt_options))
      per_image.append(entry)
      if progress is not None:
        psnr = entry["psnr"]
        shown = (", ".join(f"{k}: {v:.2f}" for k, v in psnr.items())
                 if isinstance(psnr, dict) else f"{psnr:.2f}")
        print(f"[{name} {len(per_image)}] {path.stem}: psnr {shown} "
              f"({time.perf_counter() - start:.2f} s)", file=progress, flush=True)
    results[name] = {"psnr": _columns_mean(per_image, "psnr"),
                     "ssim": _columns_mean(per_image, "ssim"),
                     "images": len(per_image), "per_image": per_image}
  return results


def evaluate_with_protocol(model_name: str, weights: str, datasets: Sequence[str], scale: int,
                           protocol: str, root=None,
                           progress: Optional[TextIO] = sys.stderr,
                           adapt_steps: Optional[Sequence[int]] = None,
                           adapt_options: Optional[dict] = None,
                           precision: str = "float32") -> dict[str, dict[str, Any]]:
  """Builds `model_name`, loads `weights` (any format) and runs a non-standard protocol.

  ``adapt_steps`` / ``adapt_options``: see :func:`evaluate_idn_caffe`; ``precision``: the
  network's dtype policy.
  """
  from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top  # Lazy: heavy.
  if protocol != "idn-caffe":
    raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS} "
                     "(standard runs through mlsr_tf.evaluation.evaluate)")
  model = models_io.build_and_load(model_name, weights, scale, channels=1, precision=precision)
  return evaluate_idn_caffe(model, datasets, scale, root, progress, adapt_steps, adapt_options)
