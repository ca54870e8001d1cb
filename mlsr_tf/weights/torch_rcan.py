"""The official PyTorch RCAN state dict (EDSR-PyTorch / RCAN code) into the Keras `rcan`.

Keys follow the official layout (`head.0.weight`, `body.{g}.body.{b}.body.{k}.weight`,
`body.{g}.body.{num_blocks}.weight`, `body.{num_groups}.weight`,
`tail.0.{2k}.weight`, `tail.1.weight`, plus the constant `sub_mean.*` /
`add_mean.*`); the Keras layer names are documented in `mlsr_tf/models/rcan.py`.
PyTorch conv weights are (out, in, kh, kw) -> Keras (kh, kw, in, out).

torch is optional and imported only to read `.pt`/`.pth` files; a `.npz` archive
of the same keys (numpy arrays) needs no torch.
"""

import os
import zipfile

import numpy as np

from mlsr_tf.weights import mapping

_CONV_PERMUTATION = (2, 3, 1, 0)
# The mean shifts are constants of the architecture, rebuilt by the Keras model.
_IGNORED = (r"^sub_mean\.", r"^add_mean\.")


def rcan_name_map(scale: int, num_groups: int, num_blocks: int) -> mapping.NameMap:
  """Name map PyTorch RCAN key -> Keras `rcan` weight, for a given architecture."""
  layers = {"head_conv": "head.0", "body_conv": f"body.{num_groups}", "tail_conv": "tail.1"}
  for g in range(num_groups):
    for b in range(num_blocks):
      prefix, source = f"group{g}_block{b}", f"body.{g}.body.{b}.body"
      layers[f"{prefix}_conv1"] = f"{source}.0"
      layers[f"{prefix}_conv2"] = f"{source}.2"
      layers[f"{prefix}_ca_conv1"] = f"{source}.3.conv_du.0"
      layers[f"{prefix}_ca_conv2"] = f"{source}.3.conv_du.2"
    layers[f"group{g}_conv"] = f"body.{g}.body.{num_blocks}"
  # x2 and x3 upsample in one stage, powers of two in log2(scale) x2 stages.
  stages = 1 if scale in (2, 3) else int(round(np.log2(scale)))
  for k in range(stages):
    layers[f"upsample{k}_conv"] = f"tail.0.{2 * k}"
  weights = {}
  for layer, source in layers.items():
    weights[f"{layer}/kernel"] = mapping.WeightSpec(f"{source}.weight", _CONV_PERMUTATION)
    weights[f"{layer}/bias"] = mapping.WeightSpec(f"{source}.bias")
  return mapping.NameMap(weights=weights, ignore=_IGNORED, model="rcan",
                         description="official PyTorch RCAN state dict")


def _strip_wrappers(state: dict) -> dict:
  """Unwraps {'state_dict': ...} / {'model': ...} and DataParallel's 'module.' prefix."""
  for key in ("state_dict", "model"):
    if isinstance(state.get(key), dict):
      state = state[key]
  if state and all(k.startswith("module.") for k in state):
    state = {k[len("module."):]: v for k, v in state.items()}
  return state


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
  """Reads a PyTorch state dict (`torch.save`) or a `.npz` of the same keys into numpy.

  Raises:
    ValueError: unreadable file, or torch needed but not installed.
  """
  path = os.fspath(path)
  if path.endswith(".npz") or _is_npz(path):
    try:
      # Opened here: np.load(path) leaves its own file open when it refuses a corrupt file.
      with open(path, "rb") as f, np.load(f, allow_pickle=False) as archive:
        return _strip_wrappers({k: np.asarray(archive[k]) for k in archive.files})
    except (OSError, ValueError, zipfile.BadZipFile) as e:
      raise ValueError(f"cannot read {path!r} as a .npz state dict: {e}") from e
  try:
    import torch  # pylint: disable=g-import-not-at-top  # Optional dependency.
  except ImportError as e:
    raise ValueError(f"reading the PyTorch file {path!r} needs torch (pip install torch), "
                     "or convert it to .npz with numpy first") from e
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # torch raises many types (pickle, zip, runtime errors).
    raise ValueError(f"cannot read {path!r} as a PyTorch state dict: {e}") from e
  if not isinstance(state, dict):
    raise ValueError(f"{path!r} holds a {type(state).__name__}, not a state dict")
  return {k: v.detach().cpu().numpy() for k, v in _strip_wrappers(state).items()
          if hasattr(v, "detach")}


def _is_npz(path: str) -> bool:
  if not zipfile.is_zipfile(path):
    return False
  with zipfile.ZipFile(path) as archive:
    names = archive.namelist()
  return bool(names) and all(n.endswith(".npy") for n in names)


def load_rcan_state_dict(model, state: dict[str, np.ndarray] | str | os.PathLike) -> list[str]:
  """Loads an official RCAN state dict (dict of arrays or a file) into a Keras `rcan`.

  The architecture (scale, groups, blocks) comes from `model.get_config()`.

  Raises:
    WeightMismatchError: listing missing, unexpected and mis-shaped names.
    ValueError: unreadable file, or a model that is not an `rcan`.
  """
  context = "state dict"
  if not isinstance(state, dict):
    context = os.fspath(state)
    state = read_state_dict(state)
  config = model.get_config()
  if config.get("model") != "rcan":
    raise ValueError(f"a PyTorch RCAN state dict needs an 'rcan' model, got "
                     f"{config.get('model', model.name)!r}")
  name_map = rcan_name_map(config["scale"], config["num_groups"], config["num_blocks"])
  state = {k: np.asarray(v, dtype=np.float32) for k, v in _strip_wrappers(state).items()}
  return mapping.apply_name_map(model, name_map, {k: v.shape for k, v in state.items()},
                                state.__getitem__, context=context)
