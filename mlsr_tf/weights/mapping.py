"""Name maps from Keras weights to source tensors, with strict matching.

A name map says, for every weight of a Keras model, which tensor of a foreign
checkpoint it comes from and how that tensor is rearranged. It is plain JSON so
that a user can add a layout without code; the shipped ones live in
`mlsr_tf/weights/maps/` (see `list_name_maps`):

    {
      "description": "what checkpoint, which model",
      "model": "idn",
      "ignore": ["^my_extra_counter$"],
      "weights": {
        "conv1/kernel": "IDN/conv1/kernel",
        "head/kernel": {"source": "head.0.weight", "transpose": [2, 3, 1, 0]},
        "q/kernel": {"source": "attn/qkv", "split": {"axis": 1, "parts": 3, "index": 0}}
      }
    }

Keys are Keras weight paths (`<layer>/<variable>`, exactly `variable.path` of
the model's variables with a leading `<model name>/` removed). A value is the
source name, or an object with `source` and optional `split` (applied first,
on the source's axes: equal `parts` along `axis`, keep `index`) and `transpose`
(a permutation, applied second, as `numpy.transpose`).

Matching is strict: every model weight must be mapped, every source tensor must
be consumed (except optimizer state and the map's `ignore` regexes), and every
shape must agree. Otherwise `WeightMismatchError` lists all the missing,
unexpected and mis-shaped names at once.
"""

import dataclasses
import json
import os
import pathlib
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

MAPS_DIR = pathlib.Path(__file__).resolve().parent / "maps"

# Optimizer and bookkeeping state of TF1 training scripts: never model weights.
OPTIMIZER_PATTERNS = (
    r"(^|/)Adam(_\d+)?$",
    r"(^|/)Momentum(_\d+)?$",
    r"(^|/)RMSProp(_\d+)?$",
    r"(^|/)ExponentialMovingAverage$",
    r"^beta[12]_power(_\d+)?$",
    r"^learning_rate(/.*)?$",
    r"^global_step(/.*)?$",
)


def _first(names: Sequence[str], limit: int = 12) -> str:
  """Joins names, eliding after `limit` so errors stay readable (attributes keep all)."""
  shown = ", ".join(names[:limit])
  return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


class WeightMismatchError(ValueError):
  """Source tensors and model weights do not correspond one to one.

  Attributes:
    missing: model weights that no source provides (or whose source is absent).
    unexpected: source tensors that no model weight consumes.
    misshaped: (model weight, model shape, shape produced from the source).
  """

  def __init__(self, missing: Sequence[str], unexpected: Sequence[str],
               misshaped: Sequence[tuple[str, tuple, tuple]], context: str = ""):
    self.missing = list(missing)
    self.unexpected = list(unexpected)
    self.misshaped = list(misshaped)
    parts = []
    if self.missing:
      parts.append(f"missing ({len(self.missing)}): {_first(self.missing)}")
    if self.unexpected:
      parts.append(f"unexpected ({len(self.unexpected)}): {_first(self.unexpected)}")
    if self.misshaped:
      shapes = [f"{name} model {tuple(want)} vs source {tuple(got)}"
                for name, want, got in self.misshaped]
      parts.append(f"mis-shaped ({len(self.misshaped)}): {_first(shapes)}")
    prefix = f"{context}: " if context else ""
    super().__init__(f"{prefix}weights do not match the model; " + "; ".join(parts))


@dataclasses.dataclass(frozen=True)
class WeightSpec:
  """Where one Keras weight comes from."""
  source: str
  transpose: tuple[int, ...] | None = None
  split: tuple[int, int, int] | None = None  # (axis, parts, index)

  def shape_from(self, source_shape: Sequence[int]) -> tuple[int, ...]:
    """The shape this spec produces from a source tensor of `source_shape`."""
    shape = list(source_shape)
    if self.split is not None:
      axis, parts, _ = self.split
      if not -len(shape) <= axis < len(shape) or shape[axis] % parts:
        raise ValueError(f"cannot split {self.source} of shape {tuple(source_shape)} "
                         f"into {parts} parts along axis {axis}")
      shape[axis] //= parts
    if self.transpose is not None:
      if sorted(self.transpose) != list(range(len(shape))):
        raise ValueError(f"transpose {list(self.transpose)} is not a permutation of the axes "
                         f"of {self.source} (shape {tuple(source_shape)})")
      shape = [shape[i] for i in self.transpose]
    return tuple(shape)

  def apply(self, value: np.ndarray) -> np.ndarray:
    """Rearranges a source tensor into the Keras weight."""
    if self.split is not None:
      axis, parts, index = self.split
      value = np.split(value, parts, axis=axis)[index]
    if self.transpose is not None:
      value = np.transpose(value, self.transpose)
    return np.ascontiguousarray(value)


@dataclasses.dataclass(frozen=True)
class NameMap:
  """A parsed name map: Keras weight path -> WeightSpec, plus extra ignore regexes."""
  weights: Mapping[str, WeightSpec]
  ignore: tuple[str, ...] = ()
  model: str | None = None
  description: str = ""

  def is_ignored(self, source_name: str) -> bool:
    return any(re.search(p, source_name) for p in OPTIMIZER_PATTERNS + self.ignore)


def _parse_spec(key: str, value: Any) -> WeightSpec:
  if isinstance(value, str):
    return WeightSpec(source=value)
  if not isinstance(value, dict) or not isinstance(value.get("source"), str):
    raise ValueError(f"name map entry {key!r} must be a string or an object with a 'source' "
                     f"string, got {value!r}")
  unknown = set(value) - {"source", "transpose", "split"}
  if unknown:
    raise ValueError(f"name map entry {key!r} has unknown fields {sorted(unknown)}")
  transpose = value.get("transpose")
  split = value.get("split")
  if split is not None:
    try:
      split = (int(split["axis"]), int(split["parts"]), int(split["index"]))
    except (KeyError, TypeError, ValueError) as e:
      raise ValueError(f"name map entry {key!r}: split needs integer axis, parts, index; "
                       f"got {value['split']!r}") from e
    if not 0 <= split[2] < split[1]:
      raise ValueError(f"name map entry {key!r}: split index {split[2]} not in [0, {split[1]})")
  return WeightSpec(source=value["source"],
                    transpose=tuple(int(i) for i in transpose) if transpose is not None else None,
                    split=split)


def parse_name_map(data: Mapping[str, Any]) -> NameMap:
  """Builds a NameMap from its JSON object (see the module docstring)."""
  if not isinstance(data, Mapping) or not isinstance(data.get("weights"), Mapping):
    raise ValueError(f"a name map must be an object with a 'weights' object, got {data!r:.200}")
  ignore = tuple(data.get("ignore", ()))
  for pattern in ignore:
    re.compile(pattern)
  return NameMap(weights={k: _parse_spec(k, v) for k, v in data["weights"].items()},
                 ignore=ignore, model=data.get("model"),
                 description=data.get("description", ""))


def list_name_maps() -> list[str]:
  """Names of the shipped name maps (files `maps/<name>.json`)."""
  return sorted(p.stem for p in MAPS_DIR.glob("*.json"))


def load_name_map(name_or_path: str | os.PathLike) -> NameMap:
  """Loads a shipped name map by name (e.g. "idn_tf1") or any JSON file by path.

  Raises:
    ValueError: unknown name, unreadable file or invalid content.
  """
  path = pathlib.Path(name_or_path)
  if path.suffix != ".json":
    if str(name_or_path) not in list_name_maps():
      raise ValueError(f"unknown name map {str(name_or_path)!r}; shipped maps: "
                       f"{list_name_maps()} (or give a path to a .json file)")
    path = MAPS_DIR / f"{name_or_path}.json"
  try:
    data = json.loads(path.read_text())
  except OSError as e:
    raise ValueError(f"cannot read name map {str(path)!r}: {e}") from e
  except json.JSONDecodeError as e:
    raise ValueError(f"name map {str(path)!r} is not valid JSON: {e}") from e
  return parse_name_map(data)


def model_weight_names(model) -> dict[str, Any]:
  """Returns {weight path: keras Variable} for all weights (trainable or not) of `model`.

  The path is `variable.path` without a leading `<model.name>/`, so a functional
  model's conv `conv1` has `conv1/kernel` whatever the model is called.

  Raises:
    ValueError: if two variables share a path (the map would be ambiguous).
  """
  names = {}
  for variable in model.weights:
    path = variable.path
    if path.startswith(model.name + "/"):
      path = path[len(model.name) + 1:]
    if path in names:
      raise ValueError(f"model {model.name!r} has two weights named {path!r}; "
                       "give its layers unique names")
    names[path] = variable
  return names


def resolve(name_map: NameMap, source_shapes: Mapping[str, Sequence[int]],
            target_shapes: Mapping[str, Sequence[int]], context: str = ""
            ) -> dict[str, WeightSpec]:
  """Checks that `name_map` turns the sources into exactly the targets, by shapes only.

  Args:
    name_map: the map to check.
    source_shapes: {source tensor name: shape}, e.g. from `tf.train.list_variables`.
    target_shapes: {Keras weight path: shape}.
    context: prefix for error messages (e.g. the file name).

  Returns:
    {Keras weight path: WeightSpec} for every target.

  Raises:
    WeightMismatchError: listing all missing, unexpected and mis-shaped names.
  """
  missing, misshaped, plan = [], [], {}
  consumed = set()
  for target, want in target_shapes.items():
    spec = name_map.weights.get(target)
    if spec is None:
      missing.append(f"{target} (not in the name map)")
      continue
    if spec.source not in source_shapes:
      missing.append(f"{target} (source {spec.source} absent)")
      continue
    consumed.add(spec.source)
    try:
      got = spec.shape_from(source_shapes[spec.source])
    except ValueError as e:
      misshaped.append((target, tuple(want), f"{tuple(source_shapes[spec.source])}: {e}"))
      continue
    if tuple(got) != tuple(want):
      misshaped.append((target, tuple(want), got))
      continue
    plan[target] = spec
  # Map entries for weights the model lacks point at sources nobody consumes:
  # they surface as unexpected sources, plus the entry itself.
  extra_entries = sorted(set(name_map.weights) - set(target_shapes))
  unexpected = sorted(name for name in source_shapes
                      if name not in consumed and not name_map.is_ignored(name))
  unexpected += [f"{entry} (name map entry for a weight the model lacks)"
                 for entry in extra_entries]
  if missing or unexpected or misshaped:
    raise WeightMismatchError(missing, unexpected, misshaped, context)
  return plan


def map_tensors(name_map: NameMap, source_shapes: Mapping[str, Sequence[int]],
                load: Callable[[str], np.ndarray], target_shapes: Mapping[str, Sequence[int]],
                context: str = "") -> dict[str, np.ndarray]:
  """Resolves the map (strictly, see `resolve`) and returns {Keras weight path: array}.

  `load(source_name)` is called once per consumed source, after all shapes agree,
  so nothing is read when the layout is wrong.
  """
  plan = resolve(name_map, source_shapes, target_shapes, context)
  cache: dict[str, np.ndarray] = {}
  arrays = {}
  for target, spec in plan.items():
    if spec.source not in cache:
      cache[spec.source] = np.asarray(load(spec.source))
    arrays[target] = spec.apply(cache[spec.source])
  return arrays


def assign(model, arrays: Mapping[str, np.ndarray]) -> None:
  """Assigns {weight path: array} to the model's variables (all or nothing).

  Raises:
    WeightMismatchError: if names or shapes differ; no variable is changed then.
  """
  variables = model_weight_names(model)
  missing = sorted(set(variables) - set(arrays))
  unexpected = sorted(set(arrays) - set(variables))
  misshaped = [(name, tuple(variables[name].shape), tuple(np.shape(value)))
               for name, value in arrays.items()
               if name in variables and tuple(variables[name].shape) != tuple(np.shape(value))]
  if missing or unexpected or misshaped:
    raise WeightMismatchError(missing, unexpected, misshaped, f"model {model.name!r}")
  for name, variable in variables.items():
    variable.assign(np.asarray(arrays[name], dtype=variable.dtype))


def apply_name_map(model, name_map: NameMap, source_shapes: Mapping[str, Sequence[int]],
                   load: Callable[[str], np.ndarray], context: str = "") -> list[str]:
  """Maps sources onto `model` and assigns them; returns the assigned weight paths."""
  targets = {name: tuple(v.shape) for name, v in model_weight_names(model).items()}
  arrays = map_tensors(name_map, source_shapes, load, targets, context)
  assign(model, arrays)
  return sorted(arrays)
