"""TF1 checkpoints (name-based `tf.train.Saver` format) into Keras models via name maps.

A TF1 checkpoint is a prefix `P` with files `P.index` (names, shapes, dtypes and
where the bytes are) and `P.data-0000i-of-0000n` (the bytes). The index alone is
enough to verify a layout with `tf.train.list_variables`; loading needs the data.

Shipped name maps (`mlsr_tf/weights/maps/`):
  * `idn_tf1`: the official IDN TensorFlow release (`IDN/conv1/kernel`,
    `IDN/distill/{i}/conv{j}/...`, grouped `W`/`b`, `IDN/2/conv2d*`) -> `idn`;
  * `mzsr`: MZSR's `MODEL/conv{1..8}/{kernel,bias}` -> `zssr`.
"""

import glob
import os
import pathlib

import numpy as np

from mlsr_tf.weights import mapping


class _LazyTensorFlow:
  """Imports TensorFlow on first use: the JAX GPU machines have none, and loading native
  Keras weights through models_io must work there."""

  def __getattr__(self, name):
    import tensorflow  # pylint: disable=g-import-not-at-top
    return getattr(tensorflow, name)


tf = _LazyTensorFlow()


def is_tf1_checkpoint(path: str | os.PathLike) -> bool:
  """True if `path` is a TF1 checkpoint prefix, one of its files, or a directory holding one."""
  try:
    checkpoint_prefix(path)
  except ValueError:
    return False
  return True


def checkpoint_prefix(path: str | os.PathLike) -> str:
  """Resolves a checkpoint prefix from a prefix, a `.index`/`.data-*`/`.meta` file or a directory.

  A directory uses its `checkpoint` state file (latest checkpoint) or else its
  only `*.index` file.

  Raises:
    ValueError: if no checkpoint index is found there.
  """
  path = os.fspath(path)
  if os.path.isdir(path):
    latest = tf.train.latest_checkpoint(path)
    if latest and os.path.exists(latest + ".index"):
      return latest
    indexes = sorted(glob.glob(os.path.join(path, "*.index")))
    if len(indexes) == 1:
      return indexes[0][:-len(".index")]
    raise ValueError(f"directory {path!r} holds {len(indexes)} checkpoint index files "
                     f"(need a 'checkpoint' state file or exactly one *.index)")
  for suffix in (".index", ".meta"):
    if path.endswith(suffix):
      path = path[:-len(suffix)]
  if ".data-" in os.path.basename(path):
    path = path[:path.rindex(".data-")]
  if os.path.exists(path + ".index"):
    return path
  raise ValueError(f"no TF1 checkpoint at {path!r} (expected {path + '.index'!r})")


def list_checkpoint(path: str | os.PathLike) -> dict[str, tuple[int, ...]]:
  """Returns {variable name: shape} from the checkpoint index (data shards not needed)."""
  prefix = checkpoint_prefix(path)
  try:
    return {name: tuple(shape) for name, shape in tf.train.list_variables(prefix)}
  except (tf.errors.OpError, ValueError) as e:
    raise ValueError(f"cannot read checkpoint index {prefix + '.index'!r}: {e}") from e


def _check_data_shards(prefix: str) -> None:
  shards = glob.glob(glob.escape(prefix) + ".data-*-of-*")
  if not shards:
    raise ValueError(
        f"checkpoint {prefix!r} has an index but no data shard "
        f"({os.path.basename(prefix)}.data-00000-of-00001 is missing): the weights themselves "
        "are not there; download the complete checkpoint (index AND .data files)")
  expected = int(shards[0].rsplit("-of-", 1)[1])
  if len(shards) != expected:
    raise ValueError(f"checkpoint {prefix!r} has {len(shards)} of its {expected} data shards")


def read_checkpoint(path: str | os.PathLike, names=None) -> dict[str, np.ndarray]:
  """Reads variables (all, or `names`) of a TF1 checkpoint into numpy arrays.

  Raises:
    ValueError: missing index or data shard, or unreadable data.
  """
  prefix = checkpoint_prefix(path)
  _check_data_shards(prefix)
  try:
    reader = tf.train.load_checkpoint(prefix)
    names = list(reader.get_variable_to_shape_map()) if names is None else list(names)
    return {name: reader.get_tensor(name) for name in names}
  except tf.errors.OpError as e:
    raise ValueError(f"cannot read checkpoint data of {prefix!r}: {e.message}") from e


def verify_checkpoint_layout(path: str | os.PathLike, name_map: mapping.NameMap | str,
                             model) -> dict[str, mapping.WeightSpec]:
  """Checks, from the index only, that `name_map` maps the checkpoint onto `model` exactly.

  Raises:
    WeightMismatchError: listing missing, unexpected and mis-shaped names.
  """
  if not isinstance(name_map, mapping.NameMap):
    name_map = mapping.load_name_map(name_map)
  targets = {name: tuple(v.shape) for name, v in mapping.model_weight_names(model).items()}
  return mapping.resolve(name_map, list_checkpoint(path), targets, context=os.fspath(path))


def load_tf1_checkpoint(model, path: str | os.PathLike,
                        name_map: mapping.NameMap | str) -> list[str]:
  """Loads a TF1 checkpoint into `model` through a name map; returns the assigned weights.

  The layout is verified from the index before any data is read, so a wrong
  map fails with the full list of differences even without the data shard.

  Args:
    model: a built Keras model.
    path: checkpoint prefix, one of its files, or its directory.
    name_map: a `NameMap`, a shipped map name ("idn_tf1", "mzsr") or a JSON path.

  Raises:
    WeightMismatchError: the map does not match checkpoint and model exactly.
    ValueError: unreadable checkpoint or missing data shard.
  """
  if not isinstance(name_map, mapping.NameMap):
    name_map = mapping.load_name_map(name_map)
  prefix = checkpoint_prefix(path)
  source_shapes = list_checkpoint(prefix)
  targets = {name: tuple(v.shape) for name, v in mapping.model_weight_names(model).items()}
  mapping.resolve(name_map, source_shapes, targets, context=prefix)
  _check_data_shards(prefix)
  reader = tf.train.load_checkpoint(prefix)

  def load(name):
    try:
      return reader.get_tensor(name)
    except tf.errors.OpError as e:
      raise ValueError(f"cannot read {name!r} from {prefix!r}: {e.message}") from e

  return mapping.apply_name_map(model, name_map, source_shapes, load, context=prefix)


def find_matching_map(model, path: str | os.PathLike) -> str:
  """Returns the shipped map name that fits `model` and the checkpoint at `path` exactly.

  Raises:
    ValueError: if none fits; the message carries each map's mismatch.
  """
  source_shapes = list_checkpoint(path)
  targets = {name: tuple(v.shape) for name, v in mapping.model_weight_names(model).items()}
  reasons = []
  for name in mapping.list_name_maps():
    try:
      mapping.resolve(mapping.load_name_map(name), source_shapes, targets)
      return name
    except ValueError as e:
      reasons.append(f"[{name}] {str(e)[:300]}")
  raise ValueError(f"no shipped name map fits model {model.name!r} and checkpoint "
                   f"{os.fspath(path)!r}; pass a name map JSON. Tried: " + " ".join(reasons))


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, np.ndarray]) -> str:
  """Writes {name: array} as a TF1 name-based checkpoint (for tests and round trips).

  Returns:
    The checkpoint prefix.
  """
  prefix = os.fspath(path)
  pathlib.Path(prefix).parent.mkdir(parents=True, exist_ok=True)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=list(tensors),
                    shape_and_slices=[""] * len(tensors),
                    tensors=[tf.constant(v) for v in tensors.values()])
  return prefix
