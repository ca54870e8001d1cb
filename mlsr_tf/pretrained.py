"""The project's own pretrained models, shipped in ``pretrained/``.

Each shipped model is described by a JSON spec (``pretrained/default.json`` for the default
one) next to its weights:

  {"model": "idn", "model_kwargs": {}, "scale": 2, "channels": 3,
   "weights": "idn_x2_mlsr.weights.h5", "sha256": "<hex digest of the weights file>",
   "adaptation": {"steps": 5, "alpha": 0.01}}

``adaptation`` holds the recommended test-time settings (``tools/adapt_image.py`` defaults,
from the model card); a meta-trained model with learned step sizes also names their file,
``"step_sizes": "<name>.step_sizes.json"`` (:mod:`mlsr_tf.meta.step_sizes`), which then
replaces ``alpha`` unless the user gives one.  These weights were trained by this project from random
initialisation; see ``pretrained/MODEL_CARD.md`` for how.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import pathlib
from typing import Optional

from mlsr_tf import paths

DEFAULT_NAME = "default"


@dataclasses.dataclass(frozen=True)
class PretrainedSpec:
  """What is needed to rebuild a shipped model and use it."""
  model: str
  scale: int
  channels: int
  weights: pathlib.Path
  sha256: Optional[str] = None
  model_kwargs: dict = dataclasses.field(default_factory=dict)
  adaptation_steps: int = 5
  adaptation_alpha: float = 0.01
  adaptation: dict = dataclasses.field(default_factory=dict)
  step_sizes: Optional[pathlib.Path] = None  # Learned [k, P] step sizes (JSON), if any.


def spec_path(name: str = DEFAULT_NAME) -> pathlib.Path:
  return paths.PRETRAINED_DIR / f"{name}.json"


def load_spec(name_or_path: str = DEFAULT_NAME) -> PretrainedSpec:
  """Reads the spec of a shipped model (``default``) or of a spec file at a path."""
  path = pathlib.Path(name_or_path)
  if path.suffix != ".json":
    path = spec_path(str(name_or_path))
  if not path.is_file():
    raise FileNotFoundError(f"no pretrained model spec at {path} "
                            f"(shipped specs: {[p.stem for p in available()]})")
  try:
    with open(path, encoding="utf-8") as f:
      raw = json.load(f)
  except (OSError, ValueError) as error:  # ValueError: bad JSON or bad UTF-8.
    raise ValueError(f"unreadable pretrained spec {str(path)!r}: {error}") from None
  if not isinstance(raw, dict):
    raise ValueError(f"malformed pretrained spec {str(path)!r}: expected a JSON object")
  try:
    adaptation = dict(raw.get("adaptation", {}))
    return PretrainedSpec(
        model=raw["model"], scale=int(raw["scale"]), channels=int(raw["channels"]),
        weights=(path.parent / raw["weights"]).resolve(), sha256=raw.get("sha256"),
        model_kwargs=dict(raw.get("model_kwargs", {})),
        adaptation_steps=int(adaptation.get("steps", 5)),
        adaptation_alpha=float(adaptation.get("alpha", 0.01)), adaptation=adaptation,
        step_sizes=((path.parent / adaptation["step_sizes"]).resolve()
                    if adaptation.get("step_sizes") else None))
  except (KeyError, TypeError, ValueError) as error:
    raise ValueError(f"malformed pretrained spec {path}: {error!r}") from error


def available() -> list:
  """The shipped specs (``pretrained/*.json``, not the step-size files beside them)."""
  return sorted(path for path in paths.PRETRAINED_DIR.glob("*.json")
                if not path.name.endswith(".step_sizes.json"))


def sha256_of(path) -> str:
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      digest.update(block)
  return digest.hexdigest()


def load_model(name_or_path: str = DEFAULT_NAME, verify: bool = True,
               precision: str = "float32"):
  """Builds the shipped model and loads its weights; returns ``(model, spec)``.

  With ``verify``, the weights' sha256 must match the spec (a corrupt or swapped file is an
  error, not a silently different model).  ``precision``: the layers' dtype policy (see
  ``mlsr_tf.models.registry.PRECISIONS``).
  """
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  spec = load_spec(name_or_path)
  if not spec.weights.is_file():
    raise FileNotFoundError(f"pretrained weights {spec.weights} are missing")
  if verify and spec.sha256 and sha256_of(spec.weights) != spec.sha256:
    raise ValueError(f"pretrained weights {spec.weights} do not match the sha256 in their spec")
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  model = registry.build_model(spec.model, scale=spec.scale, channels=spec.channels,
                               precision=precision, **spec.model_kwargs)
  keras_h5.load(model, spec.weights, "pretrained weights")
  return model, spec


def load_step_sizes(spec: PretrainedSpec, model):
  """The spec's learned ``[k, P]`` step sizes for ``model`` (None if it has none).

  Raises:
    ValueError: a missing file, or step sizes that do not fit the network or are not
      finite and >= 0 (the message names the file).
  """
  if spec.step_sizes is None:
    return None
  from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
  return step_sizes_lib.load(spec.step_sizes, model)


def shipped_step_sizes(model: str) -> Optional[pathlib.Path]:
  """The learned step-size file of shipped model ``model`` (None: not shipped, or none)."""
  if not spec_path(model).is_file():
    return None
  return load_spec(model).step_sizes


def resolve(model: str, weights: Optional[str]):
  """Maps a shipped model name (``default``) to ``(network name, weights path)``.

  Anything else (a network name with its weights, ``bicubic``) is returned unchanged, so
  tools can accept ``--model default`` beside ``--model NAME --weights FILE``.
  """
  if weights is None and spec_path(model).is_file():
    spec = load_spec(model)
    return spec.model, str(spec.weights)
  return model, weights
