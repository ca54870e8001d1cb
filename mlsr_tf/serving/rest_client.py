"""TF Serving REST client pieces for the exported model (see ``mlsr_tf.serving.export``).

Request bodies use TF Serving's columnar ``"inputs"`` format (a map from the signature's
input names to tensors written as nested lists)::

  {"signature_name": "serving_default", "inputs": {"lr": [[[[r, g, b], ...], ...]]}}
  {"signature_name": "adapt",
   "inputs": {"lr": [[[[r, g, b], ...]]], "steps": 5, "learning_rate": 0.1,
              "kernel": [[]]}}

``lr`` is ``[1, H, W, C]``: floats in [0, 1] for a float32 export, integers 0..255 for a
uint8 export.  ``kernel`` is the ``[k, k]`` blur kernel of the degradation; an empty one
(``[[]]``, shape ``[1, 0]``: JSON cannot spell ``[0, 0]``) means bicubic.  The answer is
``{"outputs": [[[[...]]]]}`` (the single output ``sr``; or ``{"outputs": {"sr": ...}}``).

NumPy + the standard library only (no TensorFlow needed on the client).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time
import urllib.error
import urllib.request
from typing import Optional

import numpy as np

from mlsr_tf import paths
from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

# adapt_learned: only in exports of a model with learned step sizes (no learning_rate).
SIGNATURES = ("serving_default", "adapt", "adapt_learned")
INPUT_DTYPES = ("float32", "uint8")


def _kernel_list(kernel) -> list:
  if kernel is None or isinstance(kernel, str) and kernel == "bicubic":
    return [[]]
  if isinstance(kernel, str):
    kernel = degradation_lib.parse_degradation(kernel, 1).kernel
  kernel = np.asarray(kernel, np.float64)
  if kernel.ndim != 2 or kernel.size == 0 or not np.all(np.isfinite(kernel)):
    raise ValueError(f"kernel must be a finite non-empty [k, k] array, got shape {kernel.shape}")
  return (kernel / kernel.sum()).astype(np.float32).tolist()


def build_predict_request(image: np.ndarray, signature: str = "serving_default",
                          steps: Optional[int] = None, learning_rate: Optional[float] = None,
                          kernel=None, input_dtype: str = "float32") -> dict:
  """The JSON body (a dict) of a TF Serving ``:predict`` call for one image.

  Args:
    image: HWC (or HW) uint8/uint16, or float in [0, 1]; the model's channels (RGB or Y).
    signature: "serving_default", "adapt" or "adapt_learned" (exports of a model with
      learned step sizes).
    steps, learning_rate: required for "adapt" (steps >= 0, finite rate >= 0); steps
      only for "adapt_learned".
    kernel: for "adapt": None / "bicubic", a ``[k, k]`` array, or a
      ``gaussian:SX,SY,THETA`` / ``.mat`` / ``.npy`` spec (normalised to sum 1).
    input_dtype: the export's pixel type, "float32" ([0, 1]) or "uint8" (0..255).
  """
  if signature not in SIGNATURES:
    raise ValueError(f"unknown signature {signature!r}; expected one of {SIGNATURES}")
  if input_dtype not in INPUT_DTYPES:
    raise ValueError(f"unknown input_dtype {input_dtype!r}; expected one of {INPUT_DTYPES}")
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3 or image.shape[2] not in (1, 3):
    raise ValueError(f"expected an HWC image with 1 or 3 channels, got shape {image.shape}")
  if image.dtype in (np.uint8, np.uint16):
    values = image_io.to_float(image)
  elif np.issubdtype(image.dtype, np.floating) and np.all(np.isfinite(image)):
    values = np.clip(image.astype(np.float32), 0.0, 1.0)
  else:
    raise ValueError(f"expected uint8/uint16 or finite float pixels, got dtype {image.dtype}")
  if input_dtype == "uint8":
    lr = image_io.to_uint(values, np.uint8)[None].tolist()
  else:
    lr = values[None].astype(np.float32).tolist()
  inputs = {"lr": lr}
  if signature in ("adapt", "adapt_learned"):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
      raise ValueError(f"{signature} needs steps, a non-negative integer, got {steps!r}")
    inputs.update(steps=int(steps), kernel=_kernel_list(kernel))
    if signature == "adapt_learned":
      if learning_rate is not None:
        raise ValueError(f"adapt_learned uses the model's learned step sizes; got "
                         f"learning_rate={learning_rate!r}")
    elif learning_rate is None or not (math.isfinite(learning_rate) and learning_rate >= 0):
      raise ValueError(f"adapt needs learning_rate, finite and >= 0, got {learning_rate!r}")
    else:
      inputs["learning_rate"] = float(learning_rate)
  elif steps is not None or learning_rate is not None or kernel is not None:
    raise ValueError(f"steps/learning_rate/kernel are for the adapt signature, not "
                     f"{signature!r}")
  return {"signature_name": signature, "inputs": inputs}


def parse_predict_response(body: dict, output_dtype=np.uint8) -> np.ndarray:
  """The ``sr`` image of a ``:predict`` answer as HWC ``output_dtype`` (uint8/uint16).

  Float answers (float32 exports) are in [0, 1]; integer ones (uint8 exports) in 0..255.
  """
  if not isinstance(body, dict) or "outputs" not in body:
    raise ValueError(f"not a TF Serving predict answer: {str(body)[:200]!r}")
  outputs = body["outputs"]
  if isinstance(outputs, dict):
    if "sr" not in outputs:
      raise ValueError(f"answer has no 'sr' output (got {sorted(outputs)})")
    outputs = outputs["sr"]
  sr = np.asarray(outputs)
  if sr.ndim != 4 or sr.shape[0] != 1:
    raise ValueError(f"expected sr of shape [1, H, W, C], got {sr.shape}")
  sr = sr[0]
  values = sr / 255.0 if np.issubdtype(sr.dtype, np.integer) else sr
  return image_io.to_uint(np.clip(values, 0.0, 1.0), output_dtype)


def post_json(url: str, body: dict, timeout: float = 600.0) -> dict:
  """POSTs ``body`` as JSON; returns the decoded answer.

  Raises:
    ValueError: an HTTP error (with TF Serving's ``error`` message) or a non-JSON answer.
    OSError: the server cannot be reached (``urllib.error.URLError``).
  """
  request = urllib.request.Request(url, data=json.dumps(body).encode("utf-8"),
                                   headers={"Content-Type": "application/json"})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as answer:
      text = answer.read().decode("utf-8")
  except urllib.error.HTTPError as e:
    detail = e.read().decode("utf-8", "replace")
    try:
      detail = json.loads(detail).get("error", detail)
    except (ValueError, AttributeError):
      pass
    detail = " ".join(str(detail).split())  # One line, and no tensor dump.
    raise ValueError(f"{url} answered HTTP {e.code}: "
                     f"{detail if len(detail) <= 300 else detail[:300] + ' ...'}") from e
  except urllib.error.URLError as e:
    raise OSError(f"cannot reach {url}: {e.reason}") from None
  except (OSError, ValueError) as e:  # Timeouts, bad URLs ("unknown url type").
    raise OSError(f"cannot reach {url}: {e}") from None
  try:
    return json.loads(text)
  except ValueError as e:
    raise ValueError(f"{url} did not answer JSON: {text[:200]!r}") from e


@dataclasses.dataclass
class ClientConfig:
  """What ``tools/serving_client.py`` needs."""
  input: str
  output: str
  url: str = "http://localhost:8501/v1/models/mlsr:predict"
  signature: str = "serving_default"
  steps: Optional[int] = None
  learning_rate: Optional[float] = None
  kernel: Optional[str] = None
  input_dtype: str = "float32"
  timeout: float = 600.0


def run(config: ClientConfig) -> dict:
  """Reads the image, asks the server, writes the answer as PNG (atomically).

  RGBA: the colour is sent, alpha is upscaled here with MATLAB bicubic.  16-bit images
  give 16-bit results (through the float32 signature's precision).  Returns a summary.
  """
  source, target = pathlib.Path(config.input), pathlib.Path(config.output)
  if target.suffix.lower() != ".png":
    raise ValueError(f"--output must be a .png file, got {str(target)!r}")
  if paths.same_file(target, source):
    raise ValueError(f"--output {str(target)!r} would overwrite the input")
  image_io.check_output_path(target)
  if not (isinstance(config.timeout, (int, float)) and 0 < config.timeout < float("inf")):
    raise ValueError(f"--timeout must be a positive number of seconds, got {config.timeout!r}")
  image = image_io.read_image(source)
  color, alpha = (image[:, :, :3], image[:, :, 3:]) if image.shape[2] == 4 else (image, None)
  body = build_predict_request(color, config.signature, config.steps, config.learning_rate,
                               config.kernel, config.input_dtype)
  start = time.perf_counter()
  answer = post_json(config.url, body, config.timeout)
  seconds = time.perf_counter() - start
  sr = parse_predict_response(answer, image.dtype)
  if alpha is not None:
    scale = sr.shape[0] / image.shape[0]
    upscaled = imresize_lib.imresize(image_io.to_float(alpha).astype(np.float64),
                                     output_shape=sr.shape[:2], scale=scale)
    sr = np.concatenate([sr, image_io.to_uint(np.clip(upscaled, 0, 1), image.dtype)], -1)
  image_io.write_png(target, sr)
  return {"output": str(target), "width": sr.shape[1], "height": sr.shape[0],
          "seconds": round(seconds, 3)}
