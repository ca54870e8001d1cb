"""Backend-neutral training checkpoints (work on Keras' TensorFlow and JAX backends alike).

A checkpoint is a directory holding

  model.weights.h5   the model's weights (Keras' own format)
  optimizer.npz      the optimizer's variables, in ``optimizer.variables`` order
  state.json         a JSON dictionary (iteration, history, config, ...)

It is written to ``<dir>.tmp`` and then renamed over ``<dir>``, so an interruption at any
moment leaves either the previous checkpoint or the new one, never a half-written one.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
from typing import Optional

import numpy as np

_WEIGHTS = "model.weights.h5"
_OPTIMIZER = "optimizer.npz"
_STATE = "state.json"


def save(directory, model, optimizer=None, state: Optional[dict] = None,
         optimizer_arrays: Optional[dict] = None) -> None:
  """Writes ``model`` (and ``optimizer``, ``state``) atomically to ``directory``.

  ``optimizer_arrays`` is for optimizers that are not Keras objects (the functional Adam
  of meta-training): a dictionary of arrays written as ``optimizer.npz`` as it is.
  """
  directory = pathlib.Path(directory)
  tmp = directory.with_name(directory.name + ".tmp")
  old = directory.with_name(directory.name + ".old")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  model.save_weights(str(tmp / _WEIGHTS))
  if optimizer is not None:
    optimizer_arrays = {f"v{i:05d}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
  if optimizer_arrays is not None:
    np.savez(tmp / _OPTIMIZER, **optimizer_arrays)
  with open(tmp / _STATE, "w", encoding="utf-8") as f:
    json.dump(state or {}, f, indent=1)
  shutil.rmtree(old, ignore_errors=True)
  if directory.exists():
    os.replace(directory, old)
  os.replace(tmp, directory)
  shutil.rmtree(old, ignore_errors=True)


def latest(directory) -> Optional[pathlib.Path]:
  """The complete checkpoint directory to read (``directory``, or the ``.old`` copy left by
  an interruption between the two renames of :func:`save`), or None if there is none."""
  directory = pathlib.Path(directory)
  for candidate in (directory, directory.with_name(directory.name + ".old")):
    if (candidate / _STATE).exists():
      return candidate
  return None


def restore(directory, model, optimizer=None) -> Optional[dict]:
  """Loads a checkpoint written by :func:`save`; returns its state, or None if there is none.

  The optimizer must already be built (``optimizer.build(model.trainable_variables)``) so
  that its variables exist; a mismatch in their number or shapes raises ``ValueError``.
  """
  directory = latest(directory)
  if directory is None:
    return None
  model.load_weights(str(directory / _WEIGHTS))
  if optimizer is not None and (directory / _OPTIMIZER).exists():
    with np.load(directory / _OPTIMIZER) as data:
      values = [data[k] for k in sorted(data.files)]
    variables = list(optimizer.variables)
    if len(values) != len(variables):
      raise ValueError(f"checkpoint {directory} has {len(values)} optimizer variables, "
                       f"the optimizer has {len(variables)}")
    for variable, value in zip(variables, values):
      if tuple(variable.shape) != value.shape:
        raise ValueError(f"optimizer variable {variable.path} has shape {tuple(variable.shape)}, "
                         f"checkpoint {directory} has {value.shape}")
      variable.assign(value)
  with open(directory / _STATE, encoding="utf-8") as f:
    return json.load(f)
