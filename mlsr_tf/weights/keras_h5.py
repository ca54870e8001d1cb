"""Keras weight files (``.weights.h5``): atomic writes that record the network, checked reads.

Every ``.weights.h5`` this project writes goes through :func:`save`: a temporary
``tmp-<pid>-<name>`` beside the target, renamed over it once complete (a killed writer
leaves only that temporary, removed at the next start by
``mlsr_tf.paths.remove_stale_temporaries`` with :data:`TEMPORARY_PATTERN`), with the
network's registry name, scale and channels recorded as the HDF5 root attribute
``mlsr_tf`` (JSON).  :func:`load` reads any ``.weights.h5`` into a model and gives one
line naming the file for everything that can go wrong:

* not a file, empty, not HDF5, truncated or otherwise unreadable by HDF5;
* recorded for another scale or channel count than the model's (the weights of a x3
  network would otherwise load silently into a x2 one whenever the shapes agree, as they
  do for ``idn_caffe`` and every network that upsamples first);
* tensors that do not fit the model (Keras' message, without its dump of the values);
* non-finite values.

Needs h5py and Keras, not TensorFlow (the JAX machines have none).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import warnings

import numpy as np

from mlsr_tf import paths

ATTRIBUTE = "mlsr_tf"
TEMPORARY_PATTERN = r"tmp-(?P<pid>\d+)-.*\.weights\.h5"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_geometry(model) -> dict:
  """``{"model", "scale", "channels"}`` of a registry network (``{}`` for other models)."""
  config = getattr(model, "sr_config", None)
  if not isinstance(config, dict):
    return {}
  return {key: config[key] for key in ("model", "scale", "channels") if key in config}


def check_geometry(model, recorded: dict, path, what: str = "weights") -> None:
  """Refuses weights whose file records another scale or channel count than the model's.

  Args:
    model: the network the weights are for.
    recorded: what the file says (``{"scale": 3}``, ...; missing keys are not checked).
    path: the file, for the message.
    what: how to call the file in the message.

  Raises:
    ValueError: naming the file and each differing field.
  """
  geometry = model_geometry(model)
  differing = [key for key in ("scale", "channels")
               if recorded.get(key) is not None and key in geometry
               and int(recorded[key]) != int(geometry[key])]
  if differing:
    described = lambda g: ", ".join(f"{key} {g.get(key)}" for key in differing)
    source = f" ({recorded['model']})" if recorded.get("model") else ""
    raise ValueError(
        f"{what} {os.fspath(path)!r} are for a network with {described(recorded)}{source}, "
        f"but the model {geometry.get('model', model.name)!r} has {described(geometry)}"
        + (f"; pass --scale {recorded['scale']}" if "scale" in differing else ""))


def save(model, path) -> None:
  """``model.save_weights`` to ``tmp-<pid>-<name>`` beside ``path``, recorded, then renamed."""
  import h5py  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(path)
  if not path.name.endswith(".weights.h5"):
    raise ValueError(f"Keras weights must be saved as *.weights.h5, got {str(path)!r}")
  tmp = path.with_name(f"tmp-{os.getpid()}-{path.name}")
  try:
    model.save_weights(str(tmp))
    geometry = model_geometry(model)
    if geometry:
      with h5py.File(tmp, "a") as f:
        f.attrs[ATTRIBUTE] = json.dumps(geometry)
    os.replace(tmp, path)
  finally:
    if tmp.exists():
      tmp.unlink()


def _open_error(path, error: Exception) -> ValueError:
  reason = " ".join(str(error).split())
  reason = re.sub(r"^Unable to (synchronously )?open file \((.*)\)$", r"\2", reason)
  return ValueError(f"weights file {os.fspath(path)!r} is corrupt or truncated "
                    f"(HDF5: {reason[:160]})")


def recorded(path) -> dict:
  """What a ``.weights.h5`` records about its network (``{}`` if nothing); checks the file.

  Raises:
    ValueError: not a readable, non-empty HDF5 file (one line naming it).
  """
  import h5py  # pylint: disable=g-import-not-at-top
  path = paths.check_input_file(path, "weights file")
  with open(path, "rb") as f:
    if f.read(8) != _HDF5_SIGNATURE:
      raise ValueError(f"weights file {str(path)!r} is not an HDF5 (.weights.h5) file")
  try:
    with h5py.File(path, "r") as f:
      text = f.attrs.get(ATTRIBUTE)
  except (OSError, RuntimeError, ValueError) as e:
    raise _open_error(path, e) from None
  if text is None:
    return {}
  try:
    value = json.loads(text)
  except (TypeError, ValueError):
    return {}
  return value if isinstance(value, dict) else {}


def condense_keras_error(error: Exception) -> str:
  """Keras' load error in one short line: which weight, which shapes (never the values)."""
  text = str(error)
  shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
  if shapes:
    name = re.search(r"<Variable path=([^,>]+)", text)
    return (f"{name.group(1) if name else 'a weight'} has shape {shapes.group(1)} in the "
            f"model but {shapes.group(2)} in the file")
  text = re.sub(r",? ?value=\[.*", "", text, flags=re.S)  # A tensor dump runs to the end.
  text = " ".join(text.split())
  return text if len(text) <= 240 else text[:240] + " ..."


def load(model, path, what: str = "weights", geometry: dict | None = None) -> None:
  """Loads a ``.weights.h5`` into ``model`` after the checks of the module docstring.

  ``geometry``: what the file records, when it is not a ``.weights.h5`` (a ``.keras``
  archive's config); None reads it with :func:`recorded`.

  Raises:
    ValueError: one line naming the file.
  """
  path = os.fspath(path)
  check_geometry(model, recorded(path) if geometry is None else geometry, path, what)
  try:
    with warnings.catch_warnings():
      # Keras warns about weightless containers (Add, PixelShuffle, ...) of functional
      # models; real mismatches still raise below.
      warnings.filterwarnings("ignore", message="Skipping nested container")
      # A compiled model's file also holds its optimizer; checkpoints restore theirs apart.
      warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
      model.load_weights(path)
  except (ValueError, KeyError, OSError, TypeError, RuntimeError) as e:
    raise ValueError(f"cannot load {what} {path!r} into model {model.name!r}: "
                     f"{condense_keras_error(e)}") from None
  import keras  # pylint: disable=g-import-not-at-top
  bad = [v.path for v in model.weights
         if not np.all(np.isfinite(keras.ops.convert_to_numpy(v.value)))]
  if bad:
    raise ValueError(f"{what} {path!r} hold non-finite values (in {len(bad)} of "
                     f"{len(model.weights)} tensors, e.g. {bad[0]})")
