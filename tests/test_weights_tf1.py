"""Tests for name maps and the TF1 checkpoint importer (IDN-TF and MZSR layouts)."""

import json

import keras
import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.models import registry
from mlsr_tf.weights import mapping
from mlsr_tf.weights import tf1

WEIGHTS_DIR = paths.data_root() / "weights"
IDN_TF_DIR = WEIGHTS_DIR / "idn_tf_x2"
MZSR_DIR = WEIGHTS_DIR / "mzsr_pretrained"


def _require(path):
  if not path.exists():
    pytest.skip(f"{path} not available")


def _tiny_model():
  inputs = keras.Input((None, None, 3))
  x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
  x = keras.layers.Conv2D(4, 3, padding="same", groups=2, name="conv2")(x)
  return keras.Model(inputs, x, name="tiny_net")


def test_shipped_maps_parse_and_cover_every_idn_and_zssr_weight():
  assert {"idn_tf1", "mzsr"} <= set(mapping.list_name_maps())
  idn_model = registry.build_model("idn", scale=2)
  idn_map = mapping.load_name_map("idn_tf1")
  assert set(idn_map.weights) == set(mapping.model_weight_names(idn_model))
  assert len(idn_map.weights) == 64
  zssr_map = mapping.load_name_map("mzsr")
  assert set(zssr_map.weights) == set(mapping.model_weight_names(
      registry.build_model("zssr", scale=2)))


def test_idn_map_matches_the_real_checkpoint_index_exactly():
  _require(IDN_TF_DIR / "model.ckpt.index")
  variables = tf1.list_checkpoint(IDN_TF_DIR)
  model = registry.build_model("idn", scale=2)
  plan = tf1.verify_checkpoint_layout(IDN_TF_DIR, "idn_tf1", model)
  consumed = {spec.source for spec in plan.values()}
  # Every non-optimizer variable is consumed, with equal shapes.
  leftovers = set(variables) - consumed
  assert leftovers and all(mapping.NameMap({}).is_ignored(n) for n in leftovers)
  assert any("Adam" in n for n in leftovers) and "beta1_power" in leftovers
  weights = mapping.model_weight_names(model)
  for target, spec in plan.items():
    assert tuple(weights[target].shape) == variables[spec.source]
  assert variables["IDN/distill/0/conv2/W"] == (3, 3, 12, 32)  # 4-group conv kernel.


def test_idn_missing_data_shard_is_reported_as_such():
  _require(IDN_TF_DIR / "model.ckpt.index")
  model = registry.build_model("idn", scale=2)
  with pytest.raises(ValueError, match=r"no data shard.*data-00000-of-00001 is missing"):
    tf1.load_tf1_checkpoint(model, IDN_TF_DIR, "idn_tf1")


def test_idn_round_trip_through_a_checkpoint_with_the_real_names(tmp_path):
  """Writes a checkpoint under exactly the real IDN-TF names/shapes (+ optimizer slots)."""
  _require(IDN_TF_DIR / "model.ckpt.index")
  rng = np.random.default_rng(0)
  tensors = {name: rng.standard_normal(shape).astype(np.float32)
             for name, shape in tf1.list_checkpoint(IDN_TF_DIR).items()}
  prefix = tf1.write_checkpoint(tmp_path / "idn" / "model.ckpt", tensors)
  model = registry.build_model("idn", scale=2)
  assigned = tf1.load_tf1_checkpoint(model, tmp_path / "idn", "idn_tf1")
  assert len(assigned) == 64
  weights = mapping.model_weight_names(model)
  np.testing.assert_array_equal(weights["distill_3_conv5/kernel"].numpy(),
                                tensors["IDN/distill/3/conv5/W"])
  np.testing.assert_array_equal(weights["upsample_conv2/bias"].numpy(),
                                tensors["IDN/2/conv2d_1/bias"])
  np.testing.assert_array_equal(weights["conv1/kernel"].numpy(), tensors["IDN/conv1/kernel"])
  assert tf1.checkpoint_prefix(prefix + ".index") == prefix


def test_idn_map_rejects_a_x3_model_naming_the_misshaped_upsampler():
  _require(IDN_TF_DIR / "model.ckpt.index")
  model = registry.build_model("idn", scale=3)
  with pytest.raises(mapping.WeightMismatchError) as info:
    tf1.verify_checkpoint_layout(IDN_TF_DIR, "idn_tf1", model)
  assert [m[0] for m in info.value.misshaped] == ["upsample_conv2/kernel", "upsample_conv2/bias"]
  assert not info.value.missing and not info.value.unexpected


def test_mzsr_pretrained_loads_end_to_end_and_picks_its_map():
  _require(MZSR_DIR / "Pretrained.index")
  model = registry.build_model("zssr", scale=2)
  assert tf1.find_matching_map(model, MZSR_DIR) == "mzsr"
  tf1.load_tf1_checkpoint(model, MZSR_DIR / "Pretrained", "mzsr")
  reference = tf1.read_checkpoint(MZSR_DIR, ["MODEL/conv8/kernel"])["MODEL/conv8/kernel"]
  np.testing.assert_array_equal(
      mapping.model_weight_names(model)["conv8/kernel"].numpy(), reference)
  # A residual network on a smooth image barely changes it.
  ramp = np.linspace(0, 1, 32 * 32 * 3, dtype=np.float32).reshape(1, 32, 32, 3)
  out = model.predict(ramp, verbose=0)
  assert out.shape == (1, 64, 64, 3) and np.all(np.isfinite(out))


def test_error_lists_missing_unexpected_and_misshaped(tmp_path):
  rng = np.random.default_rng(1)
  prefix = tf1.write_checkpoint(tmp_path / "ckpt", {
      "net/a/kernel": rng.standard_normal((3, 3, 3, 4)).astype(np.float32),
      "net/a/bias": rng.standard_normal(5).astype(np.float32),
      "net/stray": np.zeros(2, np.float32),
      "net/a/kernel/Adam": np.zeros((3, 3, 3, 4), np.float32),
      "global_step": np.zeros((), np.int64),
  })
  name_map = mapping.parse_name_map({"weights": {
      "conv1/kernel": "net/a/kernel", "conv1/bias": "net/a/bias",
      "conv2/kernel": "net/b/kernel"}})
  model = _tiny_model()
  with pytest.raises(mapping.WeightMismatchError) as info:
    tf1.load_tf1_checkpoint(model, prefix, name_map)
  error = info.value
  assert isinstance(error, ValueError)
  assert error.missing == ["conv2/kernel (source net/b/kernel absent)",
                           "conv2/bias (not in the name map)"]
  assert error.unexpected == ["net/stray"]  # Optimizer state is ignored.
  assert error.misshaped == [("conv1/bias", (4,), (5,))]
  assert "mis-shaped (1): conv1/bias model (4,) vs source (5,)" in str(error)


def test_json_map_with_transpose_and_split(tmp_path):
  rng = np.random.default_rng(2)
  # One source holds conv1's kernel in OIHW layout; another holds both biases stacked.
  oihw = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
  conv2_kernel = rng.standard_normal((3, 3, 2, 4)).astype(np.float32)
  biases = rng.standard_normal(8).astype(np.float32)
  prefix = tf1.write_checkpoint(tmp_path / "ckpt", {
      "w1": oihw, "w2": conv2_kernel, "biases": biases})
  map_path = tmp_path / "my_layout.json"
  map_path.write_text(json.dumps({"weights": {
      "conv1/kernel": {"source": "w1", "transpose": [2, 3, 1, 0]},
      "conv1/bias": {"source": "biases", "split": {"axis": 0, "parts": 2, "index": 0}},
      "conv2/kernel": "w2",
      "conv2/bias": {"source": "biases", "split": {"axis": 0, "parts": 2, "index": 1}},
  }}))
  model = _tiny_model()
  tf1.load_tf1_checkpoint(model, prefix, str(map_path))
  weights = mapping.model_weight_names(model)
  np.testing.assert_array_equal(weights["conv1/kernel"].numpy(), oihw.transpose(2, 3, 1, 0))
  np.testing.assert_array_equal(weights["conv1/bias"].numpy(), biases[:4])
  np.testing.assert_array_equal(weights["conv2/bias"].numpy(), biases[4:])


@pytest.mark.parametrize("bad, match", [
    ({"weights": {"a/kernel": {"src": "x"}}}, "'source' string"),
    ({"weights": {"a/kernel": {"source": "x", "split": {"axis": 0, "parts": 2, "index": 2}}}},
     "split index 2"),
    ({"weights": {"a/kernel": {"source": "x", "flip": True}}}, "unknown fields"),
    ({"nope": 1}, "'weights' object"),
])
def test_bad_name_maps_are_value_errors(bad, match):
  with pytest.raises(ValueError, match=match):
    mapping.parse_name_map(bad)


def test_unknown_map_name_repeats_it():
  with pytest.raises(ValueError, match="'no_such_map'"):
    mapping.load_name_map("no_such_map")


def test_not_a_checkpoint(tmp_path):
  with pytest.raises(ValueError, match="no TF1 checkpoint"):
    tf1.checkpoint_prefix(tmp_path / "absent")
  assert not tf1.is_tf1_checkpoint(tmp_path)
