"""Tests for the PyTorch RCAN state-dict importer (synthetic state dicts; torch optional)."""

import gc
import warnings

import numpy as np
import pytest

from mlsr_tf.models import registry
from mlsr_tf.weights import mapping
from mlsr_tf.weights import torch_rcan

TINY = dict(filters=8, num_groups=2, num_blocks=2, reduction=4)


def _official_shapes(scale, filters, num_groups, num_blocks, reduction, channels=3):
  """Key -> shape of the official RCAN state dict (EDSR-PyTorch layout, conv bias=True)."""
  shapes = {}

  def conv(key, cin, cout, k=3):
    shapes[f"{key}.weight"] = (cout, cin, k, k)
    shapes[f"{key}.bias"] = (cout,)

  conv("head.0", channels, filters)
  for g in range(num_groups):
    for b in range(num_blocks):
      body = f"body.{g}.body.{b}.body"
      conv(f"{body}.0", filters, filters)
      conv(f"{body}.2", filters, filters)
      conv(f"{body}.3.conv_du.0", filters, filters // reduction, 1)
      conv(f"{body}.3.conv_du.2", filters // reduction, filters, 1)
    conv(f"body.{g}.body.{num_blocks}", filters, filters)
  conv(f"body.{num_groups}", filters, filters)
  factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
  for k, factor in enumerate(factors):
    conv(f"tail.0.{2 * k}", filters, factor * factor * filters)
  conv("tail.1", filters, channels)
  shapes["sub_mean.weight"] = (channels, channels, 1, 1)
  shapes["sub_mean.bias"] = (channels,)
  shapes["add_mean.weight"] = (channels, channels, 1, 1)
  shapes["add_mean.bias"] = (channels,)
  return shapes


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_synthetic_official_state_dict_loads_with_transposed_kernels(scale):
  rng = np.random.default_rng(scale)
  state = {k: rng.standard_normal(s).astype(np.float32) * 0.05
           for k, s in _official_shapes(scale, **TINY).items()}
  model = registry.build_model("rcan", scale=scale, **TINY)
  assigned = torch_rcan.load_rcan_state_dict(model, state)
  assert len(assigned) == len(model.weights)
  weights = mapping.model_weight_names(model)
  np.testing.assert_array_equal(weights["head_conv/kernel"].numpy(),
                                state["head.0.weight"].transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(weights["group1_block0_ca_conv2/bias"].numpy(),
                                state["body.1.body.0.body.3.conv_du.2.bias"])
  np.testing.assert_array_equal(weights["group0_conv/kernel"].numpy(),
                                state["body.0.body.2.weight"].transpose(2, 3, 1, 0))
  last_stage = 1 if scale == 4 else 0
  np.testing.assert_array_equal(weights[f"upsample{last_stage}_conv/kernel"].numpy(),
                                state[f"tail.0.{2 * last_stage}.weight"].transpose(2, 3, 1, 0))


def test_npz_file_and_dataparallel_prefix_round_trip(tmp_path):
  """A model's weights exported in the official layout reload to identical outputs."""
  source = registry.build_model("rcan", scale=2, **TINY)
  name_map = torch_rcan.rcan_name_map(2, TINY["num_groups"], TINY["num_blocks"])
  weights = mapping.model_weight_names(source)
  state = {}
  for target, spec in name_map.weights.items():
    value = weights[target].numpy()
    state["module." + spec.source] = value.transpose(3, 2, 0, 1) if value.ndim == 4 else value
  path = tmp_path / "rcan_x2.npz"
  np.savez(path, **state)
  target_model = registry.build_model("rcan", scale=2, **TINY)
  torch_rcan.load_rcan_state_dict(target_model, path)
  image = np.random.default_rng(0).random((1, 9, 7, 3), dtype=np.float32)
  np.testing.assert_allclose(target_model.predict(image, verbose=0),
                             source.predict(image, verbose=0), rtol=1e-5, atol=1e-5)


def test_truncated_npz_is_a_value_error_and_the_file_is_closed(tmp_path):
  path = tmp_path / "rcan_x2.npz"
  np.savez(path, a=np.zeros(64, np.float32))
  path.write_bytes(path.read_bytes()[:40])  # Starts like a zip, is not one.
  with warnings.catch_warnings(record=True) as warned:
    warnings.simplefilter("always", ResourceWarning)
    with pytest.raises(ValueError, match="cannot read .*rcan_x2.npz.* as a .npz state dict"):
      torch_rcan.read_state_dict(path)
    gc.collect()
  assert not [w for w in warned if issubclass(w.category, ResourceWarning)], \
      [str(w.message) for w in warned]


def test_mismatched_state_dict_names_everything_wrong():
  state = {k: np.zeros(s, np.float32) for k, s in _official_shapes(2, **TINY).items()}
  del state["tail.1.bias"]
  state["body.9.weight"] = np.zeros((8, 8, 3, 3), np.float32)
  state["head.0.weight"] = np.zeros((8, 1, 3, 3), np.float32)
  model = registry.build_model("rcan", scale=2, **TINY)
  with pytest.raises(mapping.WeightMismatchError) as info:
    torch_rcan.load_rcan_state_dict(model, state)
  assert info.value.missing == ["tail_conv/bias (source tail.1.bias absent)"]
  assert info.value.unexpected == ["body.9.weight"]
  assert [m[0] for m in info.value.misshaped] == ["head_conv/kernel"]


def test_real_torch_file_when_torch_is_installed(tmp_path):
  torch = pytest.importorskip("torch")
  state = {k: torch.zeros(s) for k, s in _official_shapes(2, **TINY).items()}
  path = tmp_path / "rcan.pt"
  torch.save(state, path)
  model = registry.build_model("rcan", scale=2, **TINY)
  assert len(torch_rcan.load_rcan_state_dict(model, path)) == len(model.weights)


def test_non_rcan_model_is_rejected():
  with pytest.raises(ValueError, match="'zssr'"):
    torch_rcan.load_rcan_state_dict(registry.build_model("zssr", scale=2), {})
