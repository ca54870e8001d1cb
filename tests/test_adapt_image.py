"""Tests of mlsr_tf.serving.adapt_image: colour handling, tiling, model loading (tiny networks)."""

import dataclasses
import json

import numpy as np
import pytest

from mlsr_tf.serving import adapt_image
from mlsr_tf import metrics
from mlsr_tf import paths
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize
from mlsr_tf.data import synthetic
from mlsr_tf.meta import adaptation
from mlsr_tf.models import registry

OPTIONS = adapt_image.AdaptOptions(steps=3, alpha=0.05)


@pytest.fixture(name="rgb_model", scope="module")
def fixture_rgb_model():
  return registry.build_model("tiny", scale=2, channels=3)


@pytest.fixture(name="y_model", scope="module")
def fixture_y_model():
  return registry.build_model("tiny", scale=2, channels=1)


@pytest.fixture(name="lr", scope="module")
def fixture_lr():
  hr = synthetic.demo_image(96, 112)
  return deg.degrade(hr, deg.bicubic(2))  # 48 x 56, uint8 RGB.


def test_ycbcr_round_trip_and_matlab_luma():
  rgb = np.random.default_rng(0).random((5, 7, 3))
  ycbcr = adapt_image.rgb_to_ycbcr(rgb)
  np.testing.assert_allclose(adapt_image.ycbcr_to_rgb(ycbcr), rgb, atol=1e-12)
  np.testing.assert_allclose(ycbcr[:, :, 0] * 255.0, metrics.rgb_to_y(rgb * 255.0), atol=1e-9)


def test_whole_image_equals_library_adapt(rgb_model, lr):
  """The untiled path is mlsr_tf.meta.adaptation.adapt, also on odd sizes."""
  sr = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), OPTIONS)
  expected = adaptation.adapt(rgb_model, lr, deg.bicubic(2), 3, 0.05)
  assert sr.shape == (96, 112, 3) and sr.dtype == np.uint8
  np.testing.assert_array_equal(sr, image_io.to_uint(expected))
  odd = lr[:45, :51]
  np.testing.assert_array_equal(
      adapt_image.super_resolve(rgb_model, odd, deg.bicubic(2), OPTIONS),
      image_io.to_uint(adaptation.adapt(rgb_model, odd, deg.bicubic(2), 3, 0.05)))
  plain = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2),
                                  adapt_image.AdaptOptions(steps=0))
  assert np.abs(sr.astype(int) - plain).max() > 0  # Adaptation did something.


def test_adam_option_is_library_adam_and_differs_from_sgd(rgb_model, lr):
  """optimizer="adam" runs adaptation's Adam (alpha its learning rate), tiled or not."""
  assert adapt_image.OPTIMIZERS == adaptation.OPTIMIZERS
  options = adapt_image.AdaptOptions(steps=3, alpha=1e-3, optimizer="adam")
  sr = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), options)
  expected = adaptation.adapt(rgb_model, lr, deg.bicubic(2), 3, 1e-3, optimizer="adam")
  np.testing.assert_array_equal(sr, image_io.to_uint(expected))
  sgd = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2),
                                  adapt_image.AdaptOptions(steps=3, alpha=1e-3))
  assert np.abs(sr.astype(int) - sgd).max() > 0
  # The tiled path adapts the same way (tiles with the network's context: within 1/255).
  tiled = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2),
                                    dataclasses.replace(options, tile=20))
  assert np.abs(tiled.astype(int) - sr).max() <= 1


def test_model_variables_unchanged(rgb_model, lr):
  before = [v.numpy().copy() for v in rgb_model.trainable_variables]
  adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), OPTIONS)
  for variable, value in zip(rgb_model.trainable_variables, before):
    np.testing.assert_array_equal(variable.numpy(), value)


@pytest.mark.parametrize("tile,overlap", [(16, None), (20, 7)])
def test_tiled_equals_untiled(rgb_model, tile, overlap):
  lr = deg.degrade(synthetic.demo_image(90, 102, seed=1), deg.bicubic(2))  # 45 x 51: odd.
  untiled = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), OPTIONS)
  tiles = []
  tiled = adapt_image.super_resolve(
      rgb_model, lr, deg.bicubic(2),
      adapt_image.AdaptOptions(steps=3, alpha=0.05, tile=tile, overlap=overlap),
      on_tile=lambda done, total: tiles.append((done, total)))
  assert tiled.shape == untiled.shape == (90, 102, 3)
  assert np.abs(tiled.astype(int) - untiled).max() <= 1  # Within 1/255.
  assert tiles[-1][0] == tiles[-1][1] == len(tiles) > 1


def test_tiles_without_context_differ(rgb_model, lr):
  """The overlap matters: with none, seams change pixels (so the test above has teeth)."""
  params = adaptation.trainable_values(rgb_model)
  image = image_io.to_float(lr)
  whole = adaptation.predict(rgb_model, params, image)
  no_context = adapt_image.tiled_predict(rgb_model, params, image, 2, 16, 0)
  radius = adapt_image.receptive_radius(rgb_model, 2)
  with_context = adapt_image.tiled_predict(rgb_model, params, image, 2, 16, radius)
  assert np.abs(no_context - whole).max() > 1e-3
  np.testing.assert_allclose(with_context, whole, atol=1e-5)
  assert 2 <= radius <= 8  # Bicubic (2 LR px) + two 3x3 convs at HR resolution.


def test_odd_size_and_crops(rgb_model):
  lr = deg.degrade(synthetic.demo_image(70, 90, seed=2), deg.bicubic(2))  # 35 x 45.
  sr = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2),
                               adapt_image.AdaptOptions(steps=2, alpha=0.05, crops=3,
                                                      crop_size=16))
  assert sr.shape == (70, 90, 3)


def test_rgba_alpha_is_bicubic(rgb_model, lr):
  alpha = np.tile(np.linspace(0, 255, lr.shape[1]).astype(np.uint8), (lr.shape[0], 1))
  rgba = np.concatenate([lr, alpha[:, :, None]], axis=-1)
  sr = adapt_image.super_resolve(rgb_model, rgba, deg.bicubic(2), OPTIONS)
  assert sr.shape == (96, 112, 4)
  expected_alpha = image_io.to_uint(np.clip(imresize.imresize(alpha / 255.0, 2), 0, 1))
  np.testing.assert_array_equal(sr[:, :, 3], expected_alpha)
  np.testing.assert_array_equal(
      sr[:, :, :3], adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), OPTIONS))


def test_16_bit_stays_16_bit(rgb_model, lr):
  sr16 = adapt_image.super_resolve(rgb_model, lr.astype(np.uint16) * 257, deg.bicubic(2), OPTIONS)
  sr8 = adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), OPTIONS)
  assert sr16.dtype == np.uint16
  assert np.abs(sr16 / 257.0 - sr8).max() <= 1.0


def test_gray_on_rgb_model(rgb_model, lr):
  gray = lr[:, :, :1]
  sr = adapt_image.super_resolve(rgb_model, gray, deg.bicubic(2), OPTIONS)
  assert sr.shape == (96, 112, 1) and sr.dtype == np.uint8


def test_y_model_takes_chroma_from_bicubic(y_model, lr):
  sr = adapt_image.super_resolve(y_model, lr, deg.bicubic(2), OPTIONS)
  assert sr.shape == (96, 112, 3)
  ycbcr_lr = adapt_image.rgb_to_ycbcr(lr / 255.0)
  expected_chroma = imresize.imresize(ycbcr_lr[:, :, 1:], 2)
  chroma = adapt_image.rgb_to_ycbcr(sr / 255.0)[:, :, 1:]
  # Where no RGB channel was clipped (a random Y network leaves the gamut elsewhere).
  inside = np.all((sr > 0) & (sr < 255), axis=-1)
  assert inside.mean() > 0.5
  assert np.abs(chroma - expected_chroma)[inside].max() < 3 / 255.0
  # Y is the Y-only network's adapted output on the LR's Y.
  y_lr = ycbcr_lr[:, :, :1].astype(np.float32)
  y_sr = adaptation.adapt(y_model, y_lr, deg.bicubic(2), 3, 0.05)[:, :, 0]
  assert np.abs(adapt_image.rgb_to_ycbcr(sr / 255.0)[:, :, 0] - y_sr)[inside].max() < 3 / 255.0


@pytest.mark.parametrize("options,pattern", [
    (adapt_image.AdaptOptions(steps=-1), "-1"),
    (adapt_image.AdaptOptions(alpha=float("nan")), "nan"),
    (adapt_image.AdaptOptions(alpha=-0.5), "-0.5"),
    (adapt_image.AdaptOptions(crops=2), "crop_size=None"),
    (adapt_image.AdaptOptions(crops=2, crop_size=15), "15"),
    (adapt_image.AdaptOptions(tile=0), "tile"),
    (adapt_image.AdaptOptions(optimizer="rmsprop"), "'rmsprop'"),
    (adapt_image.AdaptOptions(optimizer="adam", step_sizes=np.ones((5, 2))), "adam"),
])
def test_bad_options(rgb_model, lr, options, pattern):
  with pytest.raises(ValueError, match=pattern):
    adapt_image.super_resolve(rgb_model, lr, deg.bicubic(2), options)


def test_too_small_image(rgb_model):
  with pytest.raises(ValueError, match="too small"):
    adapt_image.super_resolve(rgb_model, np.zeros((7, 30, 3), np.uint8), deg.bicubic(2), OPTIONS)


def test_compare_to_gt_crops_odd_hr():
  rng = np.random.default_rng(0)
  gt = rng.integers(0, 256, (41, 43, 3)).astype(np.uint8)
  sr = np.pad(gt, ((0, 1), (0, 1), (0, 0)))
  psnr, ssim = adapt_image.compare_to_gt(sr, gt, 2)
  assert psnr == float("inf") and ssim == pytest.approx(1.0)
  with pytest.raises(ValueError, match="does not match"):
    adapt_image.compare_to_gt(sr[:30], gt, 2)


def test_load_inference_model(tmp_path, monkeypatch, rgb_model):
  rgb_model.save_weights(str(tmp_path / "tiny.weights.h5"))
  spec = {"model": "tiny", "scale": 2, "channels": 3, "weights": "tiny.weights.h5",
          "adaptation": {"steps": 7, "alpha": 0.02}}
  (tmp_path / "tiny.json").write_text(json.dumps(spec))
  loaded = adapt_image.load_inference_model(str(tmp_path / "tiny.json"))
  assert (loaded.scale, loaded.channels, loaded.steps, loaded.alpha) == (2, 3, 7, 0.02)
  with pytest.raises(ValueError, match="conflicts"):
    adapt_image.load_inference_model(str(tmp_path / "tiny.json"), scale=3)
  registered = adapt_image.load_inference_model("tiny", str(tmp_path / "tiny.weights.h5"))
  assert registered.alpha == adapt_image.DEFAULT_ALPHA
  with pytest.raises(ValueError, match="needs --weights"):
    adapt_image.load_inference_model("tiny")
  with pytest.raises(ValueError, match="'no_such_model'"):
    adapt_image.load_inference_model("no_such_model")
  monkeypatch.setattr(paths, "PRETRAINED_DIR", tmp_path / "empty")
  with pytest.raises(FileNotFoundError, match="default model .* not installed"):
    adapt_image.load_inference_model("default")


def test_demo_run_prints_json_last(tmp_path, monkeypatch, rgb_model):
  import io  # pylint: disable=g-import-not-at-top
  rgb_model.save_weights(str(tmp_path / "tiny.weights.h5"))
  (tmp_path / "tiny.json").write_text(json.dumps(
      {"model": "tiny", "scale": 2, "channels": 3, "weights": "tiny.weights.h5",
       "adaptation": {"steps": 2, "alpha": 0.05}}))
  monkeypatch.chdir(tmp_path)
  stdout, stderr = io.StringIO(), io.StringIO()
  results = adapt_image.run(adapt_image.AdaptImageConfig(model=str(tmp_path / "tiny.json"),
                                                     demo=True), stdout, stderr)
  assert image_io.read_image(tmp_path / "demo_x2.png").shape == (384, 512, 3)
  last = json.loads(stdout.getvalue().strip().splitlines()[-1])
  assert last["steps"] == 2 and last["psnr_after"] == results[0]["psnr_after"]
  assert "2/2" in stderr.getvalue()
  with pytest.raises(ValueError, match="--demo"):
    adapt_image.run(adapt_image.AdaptImageConfig(input="x.png", demo=True))
