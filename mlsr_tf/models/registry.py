"""Name -> builder registry for the SR networks, and the `SRModel` class.

Every network is a functional Keras model (so weight paths are
``<layer name>/kernel`` and ``<layer name>/bias``) of class `SRModel`, whose
`get_config` returns the builder's hyper-parameters instead of the layer graph:

    model = build_model("idn", scale=2)
    config = model.get_config()   # {"model": "idn", "scale": 2, "channels": 3, ...}
    clone = model_from_config(config)     # same architecture, fresh weights
    keras.saving.load_model(...)          # `.keras` files rebuild the same way

All models take float32 NHWC input in [0, 1] with dynamic H and W and return
[N, scale*H, scale*W, C] (not clipped).
"""

import contextlib
import importlib
import inspect
from typing import Any, Callable

import keras

from mlsr_tf.models import blocks

_BUILDERS: dict[str, Callable[..., "SRModel"]] = {}
_DEFAULT_CHANNELS: dict[str, int] = {}
# Modules whose import registers builders (imported lazily: keeps this light).
_MODEL_MODULES = ("idn", "zssr", "srcnn", "enet", "rcan")
# Keras dtype policies a model can be built with.  Variables (and so saved weights) stay
# float32 under every one; "mixed_*" compute in 16 bits (bfloat16 runs on AMX on CPUs that
# have it, float16 is for GPUs).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
# Sanity limits checked before any layer allocates its weights (an x100000 sub-pixel
# upsampler or a billion filters would exhaust any machine): scale and channels, and every
# integer hyper-parameter (filters, blocks, layers, ...).
MAX_SCALE = 16
MAX_CHANNELS = 16
MAX_INTEGER_HYPERPARAMETER = 4096


def check_precision(precision: str) -> str:
  if precision not in PRECISIONS:
    raise ValueError(f"unknown precision {precision!r}; expected one of {PRECISIONS}")
  return precision


@contextlib.contextmanager
def dtype_policy(precision: str):
  """Layers built inside take ``precision`` as their dtype policy (global one restored)."""
  check_precision(precision)
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(precision)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


@keras.saving.register_keras_serializable(package="mlsr_tf")
class SRModel(keras.Model):
  """A functional SR model whose config is its registry name + hyper-parameters."""

  def __init__(self, inputs, outputs, sr_config: dict[str, Any], **kwargs):
    super().__init__(inputs=inputs, outputs=outputs, **kwargs)
    self.sr_config = dict(sr_config)

  @property
  def scale(self) -> int:
    return self.sr_config["scale"]

  @property
  def channels(self) -> int:
    return self.sr_config["channels"]

  def get_config(self) -> dict[str, Any]:
    return dict(self.sr_config)

  @classmethod
  def from_config(cls, config, custom_objects=None):
    del custom_objects  # Builders need none.
    return model_from_config(config)


def register(name: str, default_channels: int = 3):
  """Decorator: registers `builder(scale, channels, **kwargs) -> SRModel`."""

  def decorator(builder):
    if name in _BUILDERS:
      raise ValueError(f"model {name!r} is already registered")
    _BUILDERS[name] = builder
    _DEFAULT_CHANNELS[name] = default_channels
    return builder

  return decorator


def _ensure_registered():
  for module in _MODEL_MODULES:
    importlib.import_module(f"mlsr_tf.models.{module}")


def list_models() -> list[str]:
  """Sorted names accepted by `build_model`."""
  _ensure_registered()
  return sorted(_BUILDERS)


def build_model(name: str, scale: int = 2, channels: int | None = None,
                precision: str = "float32", **kwargs) -> SRModel:
  """Builds the registered network `name`.

  Args:
    name: one of `list_models()` ("idn", "idn_caffe", "rcan", "srcnn", "enet",
      "zssr", "tiny").
    scale: integer upscale factor.
    channels: image channels (3 = RGB, 1 = Y); None = the model's default
      (1 for idn_caffe, 3 otherwise).
    precision: the layers' dtype policy, one of `PRECISIONS` (weights stay float32).
    **kwargs: the builder's hyper-parameters (see each builder's docstring).

  Returns:
    An `SRModel`; ``model.get_config()`` round-trips through `model_from_config`.

  Raises:
    ValueError: unknown name or invalid hyper-parameters (message repeats them).
  """
  _ensure_registered()
  if name not in _BUILDERS:
    raise ValueError(
        f"unknown model {name!r}; expected one of {sorted(_BUILDERS)}")
  if channels is None:
    channels = _DEFAULT_CHANNELS[name]
  if not blocks.is_positive_int(channels) or channels > MAX_CHANNELS:
    raise ValueError(f"channels must be a positive integer <= {MAX_CHANNELS}, got {channels!r}")
  if not blocks.is_positive_int(scale) or scale > MAX_SCALE:
    raise ValueError(f"scale must be a positive integer <= {MAX_SCALE}, got {scale!r}")
  for key, value in kwargs.items():
    if (isinstance(value, int) and not isinstance(value, bool)
        and abs(value) > MAX_INTEGER_HYPERPARAMETER):
      raise ValueError(f"{key}={value!r} for model {name!r} is larger than the limit of "
                       f"{MAX_INTEGER_HYPERPARAMETER}")
  builder = _BUILDERS[name]
  accepted = set(inspect.signature(builder).parameters) - {"scale", "channels"}
  unknown = sorted(set(kwargs) - accepted)
  if unknown:
    raise ValueError(f"unknown arguments {unknown!r} for model {name!r}; "
                     f"accepted: {sorted(accepted)}")
  with dtype_policy(precision):
    return builder(scale=int(scale), channels=int(channels), **kwargs)


def model_from_config(config: dict[str, Any]) -> SRModel:
  """Rebuilds a model from ``SRModel.get_config()`` (fresh weights).

  Also accepts the ``{"class_name": ..., "config": {...}}`` form that
  ``keras.saving.serialize_keras_object`` writes.
  """
  if not isinstance(config, dict):
    raise ValueError(f"model config must be a dict, got {config!r}")
  if "model" not in config and isinstance(config.get("config"), dict):
    config = config["config"]
  if "model" not in config:
    raise ValueError(f"model config lacks the 'model' key: {config!r}")
  kwargs = dict(config)
  name = kwargs.pop("model")
  return build_model(name, **kwargs)


def make_model(inputs, outputs, name: str, sr_config: dict[str, Any]) -> SRModel:
  """Wraps a functional graph as an `SRModel` named `name` (used by builders)."""
  return SRModel(inputs=inputs, outputs=outputs,
                 sr_config={"model": name, **sr_config}, name=name)
