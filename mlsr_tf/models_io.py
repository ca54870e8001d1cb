"""Loading weights of any supported format into the SR models.

`load_weights_into(model, path)` recognises the format from the file itself:

  * Keras weights (`.weights.h5`: HDF5 signature) and Keras archives (`.keras`:
    a zip with `config.json` and `model.weights.h5`);
  * TF1 checkpoints: a prefix (`P` with `P.index`), one of its files, or a
    directory holding one; mapped through the shipped name map that fits the
    model (`idn_tf1` for `idn`, `mzsr` for `zssr`) or a given one;
  * Caffe `.caffemodel` (protobuf NetParameter) for `idn_caffe`;
  * PyTorch RCAN state dicts (`torch.save` zip/pickle, or `.npz` of the same keys).

This module sits above `mlsr_tf.models` and `mlsr_tf.weights` and may import both.
"""

import dataclasses
import json
import os
import re
import zipfile

from mlsr_tf import paths
from mlsr_tf.models import registry
from mlsr_tf.weights import caffe
from mlsr_tf.weights import keras_h5
from mlsr_tf.weights import mapping
from mlsr_tf.weights import tf1
from mlsr_tf.weights import torch_rcan

FORMATS = ("keras_weights", "keras", "tf1", "caffe", "torch")

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
_PICKLE_PROTOCOL_2_PLUS = b"\x80"


def _zip_names(path: str) -> list[str]:
  try:
    with zipfile.ZipFile(path) as archive:
      return archive.namelist()
  except (zipfile.BadZipFile, OSError):
    return []


def _keras_archive_geometry(path: str) -> dict:
  """Scale and channels a ``.keras`` archive's config.json records (an SRModel's config)."""
  try:
    with zipfile.ZipFile(path) as archive:
      config = json.loads(archive.read("config.json")).get("config", {})
  except (zipfile.BadZipFile, KeyError, OSError, ValueError, AttributeError):
    return {}
  return config if isinstance(config, dict) else {}


def detect_format(path: str | os.PathLike) -> str:
  """Returns one of `FORMATS` for `path`, by its content (and TF1 checkpoint file layout).

  Raises:
    ValueError: if nothing is there, or the content is not a supported format.
  """
  path = os.fspath(path)
  if os.path.isdir(path) or not os.path.isfile(path):
    if tf1.is_tf1_checkpoint(path):
      return "tf1"
    raise ValueError(f"no weights at {path!r}: not a file, and no TF1 checkpoint there")
  paths.check_input_file(path, "weights file")  # Empty, FIFO, ...
  if tf1.is_tf1_checkpoint(path) and (path.endswith((".index", ".meta")) or ".data-" in path):
    return "tf1"
  with open(path, "rb") as f:
    head = f.read(8)
  if head.startswith(_HDF5_SIGNATURE):
    return "keras_weights"
  if zipfile.is_zipfile(path):
    names = _zip_names(path)
    if "config.json" in names and any(n.endswith(".weights.h5") for n in names):
      return "keras"
    if any(n.endswith("data.pkl") for n in names) or (names and all(
        n.endswith(".npy") for n in names)):
      return "torch"
    raise ValueError(f"{path!r} is a zip archive but neither a .keras model, a torch.save "
                     f"file nor a .npz state dict (entries: {names[:5]})")
  if head.startswith(_PICKLE_PROTOCOL_2_PLUS):
    return "torch"  # Legacy (non-zip) torch.save.
  try:
    if caffe.caffe_weights(path):
      return "caffe"
  except ValueError:
    pass
  raise ValueError(f"unrecognised weights file {path!r}: expected a Keras .weights.h5/.keras, "
                   "a TF1 checkpoint, a .caffemodel or a PyTorch state dict")


def load_weights_into(model, path: str | os.PathLike,
                      name_map: mapping.NameMap | str | None = None) -> str:
  """Loads weights of any supported format into a built `model`; returns the format.

  Args:
    model: a Keras model (normally from `mlsr_tf.models.registry.build_model`).
    path: weights file, checkpoint prefix or directory (see the module docstring).
    name_map: for TF1 checkpoints only: a `NameMap`, shipped map name or JSON path;
      None picks the shipped map that fits model and checkpoint exactly.

  Raises:
    ValueError (including `WeightMismatchError`): unrecognised or unreadable
      input, or weights that do not fit the model (the message lists the names).
  """
  path = os.fspath(path)
  weights_format = detect_format(path)
  if weights_format == "keras_weights":
    keras_h5.load(model, path)
  elif weights_format == "keras":
    keras_h5.load(model, path, geometry=_keras_archive_geometry(path))
  elif weights_format == "tf1":
    if name_map is None:
      name_map = tf1.find_matching_map(model, path)
    tf1.load_tf1_checkpoint(model, path, name_map)
  elif weights_format == "caffe":
    caffe.load_caffemodel(model, path)
  else:
    torch_rcan.load_rcan_state_dict(model, path)
  return weights_format


def build_and_load(name: str, weights_path: str | os.PathLike | None, scale: int = 2,
                   channels: int | None = None, precision: str = "float32", **model_kwargs):
  """Builds registered model `name` and loads `weights_path` (any format) into it.

  `weights_path=None` returns the freshly initialised model.  `precision`: see
  `registry.build_model` (the weights load the same under every precision).

  Raises:
    ValueError: unknown model, bad arguments, or weights that do not fit.
  """
  model = registry.build_model(name, scale=scale, channels=channels, precision=precision,
                               **model_kwargs)
  if weights_path is not None:
    load_weights_into(model, weights_path)
  return model


# --format of tools/import_weights.py -> (model, weights format, shipped name map).
IMPORT_FORMATS = {
    "tf1-idn": ("idn", "tf1", "idn_tf1"),
    "tf1-mzsr": ("zssr", "tf1", "mzsr"),
    "caffe-idn": ("idn_caffe", "caffe", None),
    "torch-rcan": ("rcan", "torch", None),
}


@dataclasses.dataclass
class ImportConfig:
  """What `import_weights` converts (the flags of tools/import_weights.py)."""
  format: str
  input: str
  output: str
  scale: int | None = None
  model: str | None = None
  name_map: str | None = None


def _scale_from_name(path: str) -> int | None:
  match = re.search(r"_x(\d+)\b", os.path.basename(path))
  return int(match.group(1)) if match else None


def import_weights(config: ImportConfig) -> str:
  """Converts `config.input` into the Keras weights file `config.output`.

  The output is written to a temporary file and renamed, so a failure never
  leaves a partial file; the input is never modified.

  Returns:
    A one-line report (model, scale, number of tensors, output path).

  Raises:
    ValueError: bad format/paths, or weights that do not fit (names listed).
  """
  if config.format not in IMPORT_FORMATS:
    raise ValueError(f"unknown format {config.format!r}; expected one of "
                     f"{sorted(IMPORT_FORMATS)}")
  model_name, expected_format, name_map = IMPORT_FORMATS[config.format]
  model_name = config.model or model_name
  name_map = config.name_map or name_map
  if not config.output.endswith(".weights.h5"):
    raise ValueError(f"--output must end with .weights.h5, got {config.output!r}")
  if os.path.abspath(config.output) == os.path.abspath(config.input):
    raise ValueError(f"--output {config.output!r} would overwrite the input")
  found_format = detect_format(config.input)
  if found_format != expected_format:
    raise ValueError(f"--format {config.format} expects a {expected_format} input, but "
                     f"{config.input!r} is {found_format}")
  scale = config.scale
  if scale is None and expected_format == "caffe":  # Recorded by the file, else in its name.
    scale = (caffe.recorded_geometry(caffe.caffe_weights(config.input)).get("scale")
             or _scale_from_name(config.input))
  scale = scale or 2
  model = registry.build_model(model_name, scale=scale)
  load_weights_into(model, config.input, name_map=name_map)
  output_dir = os.path.dirname(os.path.abspath(config.output))
  if not os.path.isdir(output_dir):
    raise ValueError(f"output directory {output_dir!r} does not exist")
  keras_h5.save(model, config.output)
  return (f"imported {config.format} {config.input} -> {model_name} x{scale} "
          f"({len(model.weights)} tensors, {model.count_params():,} parameters): "
          f"{config.output}")
