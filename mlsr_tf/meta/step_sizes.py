"""Learned inner step sizes: one per adaptation step and per trainable tensor.

Meta-training with ``learn_step_sizes`` (MAML++'s per-layer, per-step learning rates, LSLR)
learns a ``[k, P]`` matrix: row ``s`` holds the SGD step size of step ``s`` for each of the
model's ``P`` trainable tensors, in ``model.trainable_variables`` order.  It is stored as
JSON beside the weights, keyed by the variables' paths so that a file can never be applied
to a network it was not learned for::

  {"format": "mlsr_tf.step_sizes/1", "variables": ["conv1/kernel", ...],
   "step_sizes": [[a_00, a_01, ...], ...]}

Adaptation runs any number of steps with it: step ``i`` uses row ``min(i, k - 1)``.
"""

from __future__ import annotations

import json
import math
import os
import pathlib

import numpy as np

FORMAT = "mlsr_tf.step_sizes/1"


def variable_paths(model) -> list:
  return [str(v.path) for v in model.trainable_variables]


def check(matrix, model, where: str = "step sizes") -> np.ndarray:
  """``matrix`` as float32 ``[k, P]`` for ``model``; ValueError naming ``where`` otherwise."""
  try:
    matrix = np.asarray(matrix, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{where}: step sizes are not a numeric matrix") from None
  count = len(model.trainable_variables)
  if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] != count:
    raise ValueError(f"{where}: step sizes of shape {matrix.shape} do not fit the network "
                     f"({count} trainable tensors: expected [steps, {count}])")
  if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
    raise ValueError(f"{where}: step sizes must be finite and >= 0")
  return matrix.astype(np.float32)


def save(path, model, matrix) -> None:
  """Writes ``matrix`` for ``model`` to ``path`` atomically (temporary file, then rename)."""
  matrix = check(matrix, model)
  path = pathlib.Path(path)
  text = json.dumps({"format": FORMAT, "variables": variable_paths(model),
                     "step_sizes": [[float(v) for v in row] for row in matrix]})
  tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
  tmp.write_text(text + "\n", encoding="utf-8")
  os.replace(tmp, path)


def load(path, model) -> np.ndarray:
  """Reads and checks a step-size file for ``model`` (ValueError naming the file)."""
  path = pathlib.Path(path)
  where = f"step-size file {str(path)!r}"
  try:
    data = json.loads(path.read_text(encoding="utf-8"))
  except FileNotFoundError:
    raise ValueError(f"{where} does not exist") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(f"{where} is not readable JSON ({error})") from None
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"{where} is not a {FORMAT} file")
  if data.get("variables") != variable_paths(model):
    raise ValueError(f"{where} was learned for other variables than this network's")
  return check(data.get("step_sizes"), model, where)


def schedule(alpha, steps: int, count: int) -> list:
  """Per-step step sizes for ``steps`` steps: each a float or a ``[count]`` float32 array.

  ``alpha``: a number, one number per step, or a ``[k, count]`` learned matrix (step i
  uses row ``min(i, k - 1)``).
  """
  if isinstance(alpha, np.ndarray) and alpha.ndim == 2:
    if alpha.shape[1] != count:
      raise ValueError(f"step sizes of shape {alpha.shape} do not fit {count} tensors")
    rows = [np.asarray(alpha[min(i, len(alpha) - 1)], np.float32) for i in range(steps)]
    if any(not np.all(np.isfinite(r)) or np.any(r < 0) for r in rows):
      raise ValueError("step sizes must be finite and >= 0")
    return rows
  from mlsr_tf.meta import maml  # pylint: disable=g-import-not-at-top
  alphas = maml.step_sizes(alpha, steps)
  if any(not isinstance(a, (int, float, np.floating)) or not math.isfinite(a) or a < 0
         for a in alphas):
    raise ValueError(f"alpha must be finite and >= 0, got {alpha!r}")
  return [float(a) for a in alphas]
