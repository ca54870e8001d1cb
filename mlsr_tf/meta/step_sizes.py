"""Learned inner step sizes: one per adaptation step and per trainable tensor.

Meta-training with ``learn_step_sizes`` (MAML++'s per-layer, per-step learning rates, LSLR)
learns a ``[k, P]`` matrix: row ``s`` holds the SGD step size of step ``s`` for each of the
model's ``P`` trainable tensors, in ``model.trainable_variables`` order.  It is stored as
JSON beside the weights, keyed by the variables' paths so that a file can never be applied
to a network it was not learned for::

  {"format": "mlsr_tf.step_sizes/1", "variables": ["conv1/kernel", ...],
   "step_sizes": [[a_00, a_01, ...], ...]}

Adaptation runs any number of steps with it: step ``i`` uses row ``min(i, k - 1)``.

A file may also hold matrices for wider blur kernels, chosen by the kernel's width
(:func:`mlsr_tf.data.degradation.kernel_sigma`, HR pixels), since adaptation knows its
kernel; ``step_sizes`` then serves bicubic and every kernel narrower than the first band::

  {..., "kernel_sigma_bands": [{"min_kernel_sigma": 1.69, "step_sizes": [[...], ...]}, ...]}

:func:`load` returns a :class:`KernelSigmaBands` for such a file, and :func:`for_degradation`
picks its matrix for one degradation.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib

import numpy as np

from mlsr_tf.data import degradation as degradation_lib

FORMAT = "mlsr_tf.step_sizes/1"


def variable_paths(model) -> list:
  return [str(v.path) for v in model.trainable_variables]


def check(matrix, model, where: str = "step sizes") -> np.ndarray:
  """``matrix`` as float32 ``[k, P]`` for ``model``; ValueError naming ``where`` otherwise."""
  return _check_matrix(matrix, len(model.trainable_variables), where)


def _check_matrix(matrix, count: int, where: str) -> np.ndarray:
  try:
    matrix = np.asarray(matrix, dtype=np.float64)
  except (TypeError, ValueError):
    raise ValueError(f"{where}: step sizes are not a numeric matrix") from None
  if matrix.ndim != 2 or matrix.shape[0] < 1 or matrix.shape[1] != count:
    raise ValueError(f"{where}: step sizes of shape {matrix.shape} do not fit the network "
                     f"({count} trainable tensors: expected [steps, {count}])")
  if not np.all(np.isfinite(matrix)) or np.any(matrix < 0):
    raise ValueError(f"{where}: step sizes must be finite and >= 0")
  return matrix.astype(np.float32)


@dataclasses.dataclass(frozen=True, eq=False)
class KernelSigmaBands:
  """Learned step sizes chosen by the blur kernel's width.

  ``base`` serves bicubic and kernels narrower than the first band; ``bands`` holds
  ``(min_kernel_sigma, matrix)`` pairs in increasing order: a kernel of width ``w`` uses
  the matrix of the last band with ``min_kernel_sigma <= w``.
  """
  base: np.ndarray
  bands: tuple

  def for_kernel(self, kernel) -> np.ndarray:
    """The ``[k, P]`` matrix for ``kernel`` (None: bicubic)."""
    chosen = self.base
    if kernel is not None:
      sigma = degradation_lib.kernel_sigma(kernel)
      for low, matrix in self.bands:
        if sigma >= low:
          chosen = matrix
    return chosen


def for_degradation(alpha, degradation):
  """``alpha`` as :func:`schedule` takes it: a :class:`KernelSigmaBands` resolved for
  ``degradation``'s kernel (bicubic, or a plain ``lr -> lr_down`` callable without a
  ``kernel``: the base matrix); anything else unchanged."""
  if isinstance(alpha, KernelSigmaBands):
    return alpha.for_kernel(getattr(degradation, "kernel", None))
  return alpha


def save(path, model, matrix, bands=()) -> None:
  """Writes ``matrix`` (and ``(min_kernel_sigma, matrix)`` ``bands``) for ``model`` to
  ``path`` atomically (temporary file, then rename)."""
  bands = _check_bands([(low, check(m, model, f"band {low!r}")) for low, m in bands],
                       "step sizes")
  _write(path, variable_paths(model), check(matrix, model), bands)


def _write(path, variables, matrix, bands) -> None:
  as_lists = lambda m: [[float(v) for v in row] for row in m]
  data = {"format": FORMAT, "variables": list(variables), "step_sizes": as_lists(matrix)}
  if bands:
    data["kernel_sigma_bands"] = [{"min_kernel_sigma": low, "step_sizes": as_lists(m)}
                                  for low, m in bands]
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
  tmp.write_text(json.dumps(data) + "\n", encoding="utf-8")
  os.replace(tmp, path)


def _check_bands(bands, where: str) -> tuple:
  lows = []
  for low, _ in bands:
    if isinstance(low, bool) or not isinstance(low, (int, float)) or not 0 < low < math.inf:
      raise ValueError(f"{where}: min_kernel_sigma must be a finite number > 0, got {low!r}")
    lows.append(float(low))
  if any(b <= a for a, b in zip(lows, lows[1:])):
    raise ValueError(f"{where}: min_kernel_sigma must increase from band to band, got {lows}")
  return tuple((low, matrix) for low, (_, matrix) in zip(lows, bands))


def _read(path) -> tuple:
  """The JSON of a step-size file and its name for messages (ValueError naming it)."""
  where = f"step-size file {str(path)!r}"
  try:
    data = json.loads(pathlib.Path(path).read_text(encoding="utf-8"))
  except FileNotFoundError:
    raise ValueError(f"{where} does not exist") from None
  except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
    raise ValueError(f"{where} is not readable JSON ({error})") from None
  if not isinstance(data, dict) or data.get("format") != FORMAT:
    raise ValueError(f"{where} is not a {FORMAT} file")
  return data, where


def load(path, model):
  """Reads and checks a step-size file for ``model`` (ValueError naming the file).

  Returns the ``[k, P]`` matrix, or a :class:`KernelSigmaBands` when the file has
  ``kernel_sigma_bands``.
  """
  data, where = _read(path)
  if data.get("variables") != variable_paths(model):
    raise ValueError(f"{where} was learned for other variables than this network's")
  base = check(data.get("step_sizes"), model, where)
  if "kernel_sigma_bands" not in data:
    return base
  entries = data["kernel_sigma_bands"]
  if (not isinstance(entries, list) or not entries
      or not all(isinstance(e, dict) and set(e) == {"min_kernel_sigma", "step_sizes"}
                 for e in entries)):
    raise ValueError(f"{where}: kernel_sigma_bands must be a non-empty list of "
                     "{min_kernel_sigma, step_sizes} objects")
  bands = [(e["min_kernel_sigma"], check(e["step_sizes"], model, where)) for e in entries]
  return KernelSigmaBands(base, _check_bands(bands, where))


def combine_files(base_path, bands, output_path) -> None:
  """Writes ``output_path``: the matrix of ``base_path`` with ``(min_kernel_sigma, path)``
  ``bands`` (each file's own matrix), all learned for the same network.

  Raises:
    ValueError: a file that is unreadable, not a plain step-size file, or learned for
      other variables (named); bad or non-increasing ``min_kernel_sigma``; an existing
      ``output_path`` that is one of the inputs.
  """
  def read(path):
    data, where = _read(path)
    if "kernel_sigma_bands" in data:
      raise ValueError(f"{where} already has kernel_sigma_bands")
    return data, where

  inputs = [base_path] + [path for _, path in bands]
  output = pathlib.Path(output_path)
  if any(output.exists() and output.resolve() == pathlib.Path(p).resolve() for p in inputs):
    raise ValueError(f"output {str(output_path)!r} is one of the input files")
  base, base_where = read(base_path)
  variables = base.get("variables")
  if not isinstance(variables, list) or not variables:
    raise ValueError(f"{base_where} names no variables")
  result = []
  for low, path in bands:
    data, where = read(path)
    if data.get("variables") != variables:
      raise ValueError(f"{where} was learned for other variables than {str(base_path)!r}")
    result.append((low, _check_matrix(data.get("step_sizes"), len(variables), where)))
  _write(output, variables, _check_matrix(base.get("step_sizes"), len(variables), base_where),
         _check_bands(result, "bands"))


def schedule(alpha, steps: int, count: int) -> list:
  """Per-step step sizes for ``steps`` steps: each a float or a ``[count]`` float32 array.

  ``alpha``: a number, one number per step, or a ``[k, count]`` learned matrix (step i
  uses row ``min(i, k - 1)``).  A :class:`KernelSigmaBands` must first be resolved for the
  degradation (:func:`for_degradation`).
  """
  if isinstance(alpha, KernelSigmaBands):
    raise ValueError("step sizes banded by kernel width need the degradation: pass them "
                     "through step_sizes.for_degradation first")
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
