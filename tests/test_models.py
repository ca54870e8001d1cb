"""Tests for mlsr_tf.models: registry, shapes, parameter counts, bicubic, layouts."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlsr_tf import paths
from mlsr_tf.models import blocks
from mlsr_tf.models import build_model
from mlsr_tf.models import list_models
from mlsr_tf.models import model_from_config

# Small configurations of every registered model (seconds to build and run).
SMALL_CONFIGS = {
    "idn": dict(filters=16, distill_channels=4),
    "idn_caffe": dict(filters=16, distill_channels=4, upsample_kernel=9),
    "zssr": dict(filters=8, num_layers=3),
    "tiny": {},
    "srcnn": dict(filters=(8, 4)),
    "enet": dict(filters=8, num_blocks=2),
    "rcan": dict(filters=8, num_groups=2, num_blocks=2, reduction=4),
}


def _rand(*shape, seed=0):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


# ---------------------------------------------------------------------------
# Reference bicubic: MATLAB imresize's general contribution formula, float64.


def _reference_upsample_axis(x, scale, axis):
  n = x.shape[axis]
  u = np.arange(1, n * scale + 1) / scale + 0.5 * (1 - 1 / scale)
  indices = np.floor(u - 2)[:, None] + np.arange(6)[None, :]
  weights = blocks._keys_cubic(u[:, None] - indices)
  weights /= weights.sum(axis=1, keepdims=True)
  mirror = np.concatenate([np.arange(n), np.arange(n)[::-1]])
  indices = mirror[np.mod(indices.astype(int) - 1, 2 * n)]
  moved = np.moveaxis(x, axis, 0)
  return np.moveaxis(np.einsum("ok,ok...->o...", weights, moved[indices]), 0,
                     axis)


def _reference_bicubic(x, scale):
  return _reference_upsample_axis(_reference_upsample_axis(x, scale, 1), scale,
                                  2)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_upsample_matches_matlab_formula(scale):
  x = _rand(2, 5, 8, 3).astype(np.float64)
  got = blocks.bicubic_upsample(tf.constant(x, tf.float32), scale).numpy()
  assert got.shape == (2, 5 * scale, 8 * scale, 3)
  np.testing.assert_allclose(got, _reference_bicubic(x, scale), atol=1e-6)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_upsample_matches_data_imresize(scale):
  imresize = pytest.importorskip("mlsr_tf.data.imresize").imresize
  image = _rand(9, 7, 3, seed=scale).astype(np.float64)
  want = imresize(image, scale)
  got = blocks.bicubic_upsample(tf.constant(image[None], tf.float32),
                                scale).numpy()[0]
  np.testing.assert_allclose(got, want, atol=1e-6)


def test_bicubic_upsample_properties():
  # Constants stay constant; scale 1 is the identity; taps sum to one.
  x = np.full((1, 4, 6, 1), 0.3, np.float32)
  np.testing.assert_allclose(blocks.bicubic_upsample(x, 3), 0.3, atol=1e-7)
  assert blocks.bicubic_upsample(x, 1) is x
  for scale in (2, 3, 4):
    for _, weights in blocks.bicubic_phase_taps(scale):
      assert weights.sum() == pytest.approx(1.0)
  with pytest.raises(ValueError, match="1.5"):
    blocks.bicubic_upsample(x, 1.5)


def test_bicubic_upsample_dynamic_shape_in_tf_function():
  fn = tf.function(lambda x: blocks.bicubic_upsample(x, 2),
                   input_signature=[tf.TensorSpec([None, None, None, 1])])
  for shape in [(1, 3, 5, 1), (2, 6, 4, 1)]:
    x = _rand(*shape)
    np.testing.assert_allclose(fn(x).numpy(),
                               _reference_bicubic(x.astype(np.float64), 2),
                               atol=1e-6)


def test_pixel_shuffle_is_channel_major():
  # Input channel c*s*s + dy*s + dx -> output channel c at sub-pixel (dy, dx).
  scale, channels = 2, 3
  x = _rand(1, 2, 3, channels * scale * scale)
  got = blocks.pixel_shuffle(x, scale).numpy()
  assert got.shape == (1, 4, 6, channels)
  for c in range(channels):
    for dy in range(scale):
      for dx in range(scale):
        np.testing.assert_array_equal(
            got[0, dy::scale, dx::scale, c],
            x[0, :, :, c * scale * scale + dy * scale + dx])
  # With one output channel it is depth_to_space.
  y = _rand(1, 3, 2, 9)
  np.testing.assert_array_equal(blocks.pixel_shuffle(y, 3).numpy(),
                                tf.nn.depth_to_space(y, 3).numpy())


# ---------------------------------------------------------------------------
# Registry.


def test_registry_lists_every_model():
  assert set(list_models()) == set(SMALL_CONFIGS)


@pytest.mark.parametrize("name,scale,count", [
    ("idn", 2, 579_276),
    ("idn_caffe", 2, 552_769),
    ("idn_caffe", 3, 552_769),
    ("idn_caffe", 4, 552_769),
    ("zssr", 2, 225_091),  # 3*64*9+64 + 6*(64*64*9+64) + 64*3*9+3.
    ("tiny", 2, 443),
    ("srcnn", 2, 69_251),  # 9-5-5 with 64/32 features on RGB.
])
def test_parameter_counts(name, scale, count):
  assert build_model(name, scale=scale).count_params() == count


def test_small_rcan_parameter_count_matches_formula():
  f, r, groups, blocks_per_group, c = 8, 4, 2, 2, 3
  conv = lambda k, i, o: k * k * i * o + o
  rcab = 2 * conv(3, f, f) + conv(1, f, f // r) + conv(1, f // r, f)
  want = (conv(3, c, f) + groups * (blocks_per_group * rcab + conv(3, f, f))
          + conv(3, f, f) + 2 * conv(3, f, 4 * f) + conv(3, f, c))
  model = build_model("rcan", scale=4, **SMALL_CONFIGS["rcan"])
  assert model.count_params() == want


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shape_for_odd_sizes(name, scale):
  model = build_model(name, scale=scale, **SMALL_CONFIGS[name])
  x = _rand(2, 7, 5, model.channels)
  y = model(x)
  assert tuple(y.shape) == (2, 7 * scale, 5 * scale, model.channels)
  assert np.all(np.isfinite(keras.ops.convert_to_numpy(y)))


@pytest.mark.parametrize("name", sorted(SMALL_CONFIGS))
def test_get_config_round_trip(name):
  model = build_model(name, scale=3, **SMALL_CONFIGS[name])
  config = model.get_config()
  assert config["model"] == name and config["scale"] == 3
  clone = model_from_config(config)
  assert clone.get_config() == config
  assert clone.count_params() == model.count_params()
  assert [w.path for w in clone.weights] == [w.path for w in model.weights]
  # Also through Keras' own serialization (what `.keras` files store).
  serialized = keras.saving.serialize_keras_object(model)
  assert model_from_config(serialized).get_config() == config


def test_keras_file_round_trip(tmp_path):
  model = build_model("idn", scale=2, **SMALL_CONFIGS["idn"])
  x = _rand(1, 6, 7, 3)
  path = tmp_path / "idn.keras"
  model.save(path)
  loaded = keras.saving.load_model(path)
  assert loaded.get_config() == model.get_config()
  np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())


@pytest.mark.parametrize("kwargs,match", [
    (dict(name="no_such_model"), "no_such_model"),
    (dict(name="idn", scale=0), "0"),
    (dict(name="idn", scale=1), "1"),
    (dict(name="idn", wrong_arg=3), "wrong_arg"),
    (dict(name="idn", channels=-2), "-2"),
    (dict(name="idn", scale=None), "None"),
    (dict(name="idn", scale="2"), "'2'"),
    (dict(name="idn", scale=2.0), r"2\.0"),
    (dict(name="idn", groups=5), "5"),
    (dict(name="rcan", scale=5), "5"),
    (dict(name="enet", scale=7), "7"),
    (dict(name="srcnn", filters=(8,)), r"\(9, 5, 5\)"),
    (dict(name="tiny", activation="swishy"), "swishy"),
])
def test_bad_arguments_raise_value_error(kwargs, match):
  with pytest.raises(ValueError, match=match):
    build_model(**kwargs)


def test_model_from_config_rejects_bad_config():
  with pytest.raises(ValueError, match="nope"):
    model_from_config({"model": "nope"})
  with pytest.raises(ValueError, match="'scale': 2"):
    model_from_config({"scale": 2})


def test_gradients_through_tf_function_with_dynamic_shape():
  model = build_model("idn", scale=2, **SMALL_CONFIGS["idn"])

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
  def loss_and_grads(x):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.square(model(x)))
    return loss, tape.gradient(loss, model.trainable_variables)

  for shape in [(1, 5, 7, 3), (2, 6, 4, 3)]:
    loss, grads = loss_and_grads(_rand(*shape))
    assert np.isfinite(loss.numpy())
    assert all(g is not None and np.all(np.isfinite(g.numpy())) for g in grads)


# ---------------------------------------------------------------------------
# Architecture details that weight importers rely on.


def test_idn_layer_names_and_grouped_kernels():
  model = build_model("idn", scale=2)
  shapes = {w.path: tuple(w.shape) for w in model.weights}
  assert len(shapes) == 2 * (2 + 4 * 7 + 2)
  for i in range(4):
    assert shapes[f"distill_{i}_conv2/kernel"] == (3, 3, 12, 32)
    assert shapes[f"distill_{i}_conv5/kernel"] == (3, 3, 16, 48)
    assert shapes[f"distill_{i}_conv7/kernel"] == (1, 1, 80, 64)
  assert shapes["upsample_conv2/kernel"] == (3, 3, 64, 12)


def test_grouped_conv_equals_idn_tf_release_group_conv():
  # IDN-TF's GroupConv2d splits the input channels and W's OUTPUT axis into 4
  # consecutive groups and concatenates; Keras' groups=4 must agree, so that
  # the checkpoint's W (3, 3, 12, 32) is assigned unchanged.
  model = build_model("idn", scale=2)
  layer = model.get_layer("distill_0_conv2")
  rng = np.random.default_rng(3)
  layer.kernel.assign(rng.standard_normal(layer.kernel.shape).astype("float32"))
  layer.bias.assign(rng.standard_normal(layer.bias.shape).astype("float32"))
  x = _rand(1, 6, 5, 48)
  kernel = layer.kernel.numpy()
  want = tf.concat([
      tf.nn.conv2d(xi, ki, 1, "SAME")
      for xi, ki in zip(tf.split(x, 4, axis=3), tf.split(kernel, 4, axis=3))
  ], axis=3) + layer.bias.numpy()
  np.testing.assert_allclose(layer(x).numpy(), want.numpy(), atol=1e-5)


def test_idn_matches_tf_release_checkpoint_layout():
  index = paths.data_root() / "weights" / "idn_tf_x2" / "model.ckpt.index"
  if not index.exists():
    pytest.skip(f"{index} absent")
  variables = dict(tf.train.list_variables(str(index)[:-len(".index")]))
  keras_shapes = {w.path: tuple(w.shape)
                  for w in build_model("idn", scale=2).weights}
  def keras_name(var):
    parts = var.split("/")[1:]  # Drop the "IDN" scope.
    leaf = {"W": "kernel", "b": "bias"}.get(parts[-1], parts[-1])
    if parts[0] == "distill":
      return f"distill_{parts[1]}_{parts[2]}/{leaf}"
    if parts[0] == "2":
      return {"conv2d": "upsample_conv1", "conv2d_1": "upsample_conv2"}[
          parts[1]] + f"/{leaf}"
    return f"{parts[0]}/{leaf}"
  ckpt = {keras_name(k): tuple(v) for k, v in variables.items()
          if k.startswith("IDN/") and "Adam" not in k}
  assert ckpt == keras_shapes


def _caffe_deconv(features, kernel, stride, pad):
  """Caffe Deconvolution, single output channel: out[o] += in[i] w[o+pad-s*i]."""
  h, w, _ = features.shape
  size = kernel.shape[0]
  full = np.zeros(((h - 1) * stride + size, (w - 1) * stride + size))
  for i in range(h):
    for j in range(w):
      full[i * stride:i * stride + size, j * stride:j * stride + size] += (
          np.einsum("abc,c->ab", kernel, features[i, j]))
  return full[pad:pad + (h - 1) * stride + 1, pad:pad + (w - 1) * stride + 1]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_idn_caffe_upsampler_aligns_like_test_idn_m(scale):
  # test_IDN.m adds the deconvolution output to im_b(s:end, s:end): output
  # pixel (y, x) must equal the Caffe deconvolution at (y-s+1, x-s+1).
  model = build_model("idn_caffe", scale=scale, **SMALL_CONFIGS["idn_caffe"])
  x = _rand(1, 5, 6, 1)
  deconv = model.get_layer("upsample")
  features = keras.Model(model.input, deconv.input)(x).numpy()[0]
  residual = (model(x).numpy()[0, :, :, 0]
              - blocks.bicubic_upsample(x, scale).numpy()[0, :, :, 0])
  kernel = deconv.kernel.numpy()[:, :, 0, :]
  bias = deconv.bias.numpy()[0]
  want = _caffe_deconv(features, kernel, scale, pad=4) + bias
  np.testing.assert_allclose(residual[scale - 1:, scale - 1:], want,
                             atol=2e-5)


# ---------------------------------------------------------------------------
# Real weights (read from ../shared; skipped where absent).


def test_idn_caffe_reproduces_published_set5_x2():
  root = paths.data_root()
  weights = root / "weights" / "idn_caffe" / "IDN_x2.caffemodel"
  images = sorted(glob.glob(str(root / "datasets" / "Set5" / "HR" / "*.png")))
  if not weights.exists() or not images:
    pytest.skip("IDN Caffe weights or Set5 absent")
  caffe = pytest.importorskip("mlsr_tf.weights.caffe")
  imresize = pytest.importorskip("mlsr_tf.data.imresize").imresize
  image_io = pytest.importorskip("mlsr_tf.data.image_io")
  model = build_model("idn_caffe", scale=2)
  caffe.load_caffemodel(model, weights)
  scores = []
  for path in images:
    rgb = image_io.read_image(path).astype(np.float64)
    # MATLAB rgb2ycbcr on uint8, Y channel, rounded to uint8; modcrop 2.
    y = np.round(16 + (65.481 * rgb[..., 0] + 128.553 * rgb[..., 1]
                       + 24.966 * rgb[..., 2]) / 255)
    y = y[:y.shape[0] // 2 * 2, :y.shape[1] // 2 * 2] / 255
    lr = imresize(y.astype(np.float32), 0.5).astype(np.float32)
    sr = model(lr[None, :, :, None]).numpy()[0, :, :, 0]
    sr = np.clip(np.round(sr * 255), 0, 255)
    diff = (sr - y * 255)[2:-2, 2:-2]
    scores.append(10 * np.log10(255**2 / np.mean(diff**2)))
  assert np.mean(scores) == pytest.approx(37.83, abs=0.05)


# ---------------------------------------------------------------------------
# JAX backend: weights saved there load into the TF model, same outputs.

_JAX_SCRIPT = r"""
import sys
import numpy as np
import keras
from mlsr_tf.models import build_model
configs = eval(sys.argv[2])
out = sys.argv[1]
for name, (scale, kwargs) in configs.items():
  keras.utils.set_random_seed(1)
  model = build_model(name, scale=scale, **kwargs)
  x = np.random.default_rng(2).random((1, 7, 5, model.channels), dtype=np.float32)
  model.save_weights(f"{out}/{name}.weights.h5")
  np.save(f"{out}/{name}_x.npy", x)
  np.save(f"{out}/{name}_y.npy", keras.ops.convert_to_numpy(model(x)))
print(keras.backend.backend())
"""


# One small model per distinct op (grouped conv, pixel shuffle, bicubic,
# transposed conv + crop, mean shift + channel attention, nearest upsampling):
# JAX compiles an initializer per weight shape, so fewer layers = faster.
_JAX_CONFIGS = {
    "idn": (2, dict(filters=16, distill_channels=4, num_blocks=1)),
    "idn_caffe": (3, dict(filters=16, distill_channels=4, num_blocks=1,
                          upsample_kernel=9)),
    "rcan": (4, dict(filters=8, num_groups=1, num_blocks=1, reduction=4)),
    "enet": (3, dict(filters=8, num_blocks=1)),
}


@pytest.mark.jax
@pytest.mark.slow
def test_jax_saved_weights_load_into_tf_model(tmp_path):
  pytest.importorskip("jax")
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  configs = _JAX_CONFIGS
  # XLA at optimisation level 0 compiles each weight initializer ~5x faster (53 s -> ~25 s
  # for this test on 2 cores); the weights and outputs are compared, not XLA's speed.
  env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_backend_optimization_level=0",
             PYTHONPATH=str(paths.REPO_ROOT))
  result = subprocess.run(
      [sys.executable, "-c", _JAX_SCRIPT, str(tmp_path), repr(configs)],
      env=env, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.strip().splitlines()[-1] == "jax"
  for name, (scale, kwargs) in configs.items():
    model = build_model(name, scale=scale, **kwargs)
    model.load_weights(tmp_path / f"{name}.weights.h5")
    x = np.load(tmp_path / f"{name}_x.npy")
    np.testing.assert_allclose(model(x).numpy(),
                               np.load(tmp_path / f"{name}_y.npy"), atol=1e-5,
                               err_msg=name)


# ---------------------------------------------------------------------------
# Fast grouped convolutions and LeakyReLU (issue 11): same weights, same numbers.


def _keras_reference_layers(monkeypatch):
  """Makes the builders use Keras' own Conv2D(groups=...) and LeakyReLU layers."""
  monkeypatch.setattr(blocks, "Conv2D", keras.layers.Conv2D)
  monkeypatch.setattr(blocks, "LeakyReLU", keras.layers.LeakyReLU)


def test_grouped_conv_outputs_and_gradients_equal_keras_grouped_conv():
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(2, 9, 7, 12)).astype(np.float32))
  fast = blocks.conv(8, "fast", groups=4)
  reference = keras.layers.Conv2D(8, 3, padding="same", groups=4, name="reference")
  fast.build(x.shape)
  reference.build(x.shape)
  assert isinstance(fast, blocks.Conv2D) and fast.kernel.shape == (3, 3, 3, 8)
  reference.set_weights([rng.normal(size=(3, 3, 3, 8)).astype(np.float32),
                         rng.normal(size=(8,)).astype(np.float32)])
  fast.set_weights(reference.get_weights())
  upstream = tf.constant(rng.normal(size=(2, 9, 7, 8)).astype(np.float32))
  results = []
  for layer in (fast, reference):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x)
      loss = tf.reduce_sum(y * upstream)
    results.append([y] + tape.gradient(loss, [x, layer.kernel, layer.bias]))
  for a, b in zip(*results):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)


def test_leaky_relu_equals_keras_leaky_relu_with_gradient():
  x = tf.constant(np.linspace(-3, 3, 61, dtype=np.float32))
  for layer in (blocks.get_activation("leaky_relu", 0.05),
                keras.layers.LeakyReLU(negative_slope=0.05)):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x)
      loss = tf.reduce_sum(y * x)
    grad = tape.gradient(loss, x)
    if isinstance(layer, blocks.LeakyReLU):
      fast = (y.numpy(), grad.numpy())
  np.testing.assert_allclose(fast[0], y.numpy(), rtol=1e-6)
  np.testing.assert_allclose(fast[1], grad.numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", ["idn", "idn_caffe"])
def test_idn_weight_files_are_interchangeable_with_keras_grouped_layers(
    name, tmp_path, monkeypatch):
  """Weights saved by the Keras-layer IDN (the layout shipped before issue 11) load into
  the fast IDN unchanged, and both compute the same image."""
  fast = build_model(name, **SMALL_CONFIGS[name])
  with monkeypatch.context() as patch:
    _keras_reference_layers(patch)
    reference = build_model(name, **SMALL_CONFIGS[name])
  assert not any(isinstance(l, blocks.Conv2D) for l in reference.layers)
  rng = np.random.default_rng(1)
  reference.set_weights([rng.normal(0, 0.1, w.shape).astype(np.float32)
                         for w in reference.get_weights()])
  path = str(tmp_path / "reference.weights.h5")
  reference.save_weights(path)
  fast.load_weights(path)
  x = _rand(1, 11, 13, fast.input_shape[-1])
  np.testing.assert_allclose(fast(x).numpy(), reference(x).numpy(), rtol=1e-4, atol=1e-5)


def test_mixed_bfloat16_keeps_float32_weights_and_output():
  model = build_model("idn", precision="mixed_bfloat16", **SMALL_CONFIGS["idn"])
  assert all(w.dtype == "float32" for w in model.weights)
  assert model.get_layer("distill_0_conv1").compute_dtype == "bfloat16"
  assert model.get_layer("sr").compute_dtype == "float32"  # The image itself stays fp32.
  reference = build_model("idn", **SMALL_CONFIGS["idn"])
  reference.set_weights(model.get_weights())
  x = _rand(1, 12, 12, 3)
  out = model(x)
  assert out.dtype == "float32"
  # bfloat16 features: close to float32 but not equal.
  difference = np.abs(out.numpy() - reference(x).numpy())
  assert 0 < difference.max() < 0.05
  with pytest.raises(ValueError, match="'float8'"):
    build_model("idn", precision="float8")
