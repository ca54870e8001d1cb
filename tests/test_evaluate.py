"""Tests for mlsr_tf.evaluation.evaluate: scoring, columns, reports, configured runs."""

import dataclasses
import io
import json
import math

import numpy as np
import pytest

from mlsr_tf.evaluation import evaluate as evaluate_lib
from mlsr_tf import metrics
from mlsr_tf import paths
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

ROOT = paths.data_root()


def _fake_root(tmp_path):
  hr = tmp_path / "datasets" / "Set5" / "HR"
  hr.mkdir(parents=True)
  rng = np.random.default_rng(0)
  y, x = np.mgrid[0:40, 0:36]
  smooth = (128 + 60 * np.sin(x / 5.0) * np.cos(y / 7.0))[..., None]
  for i in range(2):
    image = np.clip(smooth + rng.normal(0, 3, (40, 36, 3)), 0, 255).astype(np.uint8)
    image_io.write_png(hr / f"im{i}.png", image)
  return tmp_path


def test_bicubic_scores_match_metrics(tmp_path):
  root = _fake_root(tmp_path)
  results = evaluate_lib.evaluate(evaluate_lib.bicubic_upscale_fn(2), ["Set5"], 2, root=root)
  r = results["Set5"]
  assert r["images"] == 2 and len(r["per_image"]) == 2
  hr = image_io.read_image(root / "datasets" / "Set5" / "HR" / "im1.png")
  sr = imresize_lib.imresize(imresize_lib.imresize(hr, 0.5), 2)
  assert r["per_image"][1]["psnr"] == pytest.approx(metrics.psnr(sr, hr, 2), abs=1e-12)
  assert r["psnr"] == pytest.approx(np.mean([e["psnr"] for e in r["per_image"]]))


def test_dict_outputs_give_columns_and_perfect_upscaler(tmp_path):
  root = _fake_root(tmp_path)
  hrs = {}

  def upscale(lr, name):
    hr = image_io.read_image(root / "datasets" / "Set5" / "HR" / f"{name}.png")
    hrs[name] = hr
    return {"0": imresize_lib.imresize(lr, 2), "oracle": hr}

  results = evaluate_lib.evaluate(upscale, ["Set5"], 2, root=root)
  r = results["Set5"]
  assert set(r["psnr"]) == {"0", "oracle"}
  assert r["psnr"]["oracle"] == math.inf and r["ssim"]["oracle"] == pytest.approx(1.0)
  assert r["psnr"]["0"] < 60
  table = evaluate_lib.format_markdown(results)
  assert "PSNR [oracle]" in table and "| Set5 | 2 |" in table


def test_y_only_output_is_scored_against_hr_y(tmp_path):
  root = _fake_root(tmp_path)

  def y_upscaler(lr, name):
    sr = imresize_lib.imresize(lr, 2)
    return image_io.float_to_uint_saturate(metrics.rgb_to_y(sr))[:, :, None]

  y_res = evaluate_lib.evaluate(y_upscaler, ["Set5"], 2, root=root)["Set5"]
  hr = image_io.read_image(root / "datasets" / "Set5" / "HR" / "im0.png")
  y_sr = y_upscaler(imresize_lib.imresize(hr, 0.5), "im0")[:, :, 0]
  want = metrics.psnr_y(y_sr, metrics.rgb_to_y(hr), 2)
  assert y_res["per_image"][0]["psnr"] == pytest.approx(want, abs=1e-12)
  assert y_res["per_image"][0]["ssim"] == pytest.approx(
      metrics.ssim_y(y_sr, metrics.rgb_to_y(hr), 2), abs=1e-12)


def test_bad_upscaler_outputs(tmp_path):
  root = _fake_root(tmp_path)
  with pytest.raises(ValueError, match="does not match"):
    evaluate_lib.evaluate(lambda lr, n: lr, ["Set5"], 2, root=root)
  with pytest.raises(ValueError, match="float64"):
    evaluate_lib.evaluate(lambda lr, n: imresize_lib.imresize(lr / 1.0, 2), ["Set5"], 2,
                          root=root)


def test_run_json_and_markdown(tmp_path):
  root = _fake_root(tmp_path)
  out, err = io.StringIO(), io.StringIO()
  config = evaluate_lib.EvalConfig(datasets=["Set5"], scale=2, data_root=str(root),
                                   output_format="json")
  results = evaluate_lib.run(config, out, err)
  last = json.loads(out.getvalue().strip().splitlines()[-1])
  assert last == {"Set5": {"psnr": results["Set5"]["psnr"], "ssim": results["Set5"]["ssim"],
                           "images": 2}}
  assert "im1" in err.getvalue()
  out = io.StringIO()
  evaluate_lib.run(dataclass_replace(config, output_format="markdown"), out, io.StringIO())
  assert "| Set5 | 2 |" in out.getvalue()


def test_max_images_scores_the_first_images_only(tmp_path):
  root = str(_fake_root(tmp_path))
  config = evaluate_lib.EvalConfig(datasets=["Set5"], data_root=root, max_images=1)
  first = evaluate_lib.run(config, io.StringIO(), io.StringIO())["Set5"]
  both = evaluate_lib.run(dataclass_replace(config, max_images=0), io.StringIO(),
                          io.StringIO())["Set5"]
  assert first["images"] == 1 and both["images"] == 2
  assert first["psnr"] == pytest.approx(both["per_image"][0]["psnr"], abs=1e-12)


def dataclass_replace(config, **changes):
  return dataclasses.replace(config, **changes)


def test_run_rejects_bad_config(tmp_path):
  root = str(_fake_root(tmp_path))
  base = evaluate_lib.EvalConfig(datasets=["Set5"], data_root=root)
  for changes, pattern in (({"datasets": ["Set6"]}, "Set6"),
                           ({"output_format": "xml"}, "xml"),
                           ({"scale": 0}, "0"),
                           ({"degradation": "box"}, "box"),
                           ({"model": "idn"}, "weights"),
                           ({"datasets": ["Set14"]}, "Set14"),
                           ({"max_images": -1}, "-1")):
    with pytest.raises(ValueError, match=pattern):
      evaluate_lib.run(dataclass_replace(base, **changes), io.StringIO(), io.StringIO())


def test_registered_upscaler_gets_config_and_degradation(tmp_path):
  root = str(_fake_root(tmp_path))
  seen = {}

  def factory(config, degradation):
    seen["scale"], seen["kernel"] = config.options["tag"], degradation.kernel.shape
    return evaluate_lib.bicubic_upscale_fn(config.scale)

  evaluate_lib.register_upscaler("test_bicubic_twin", factory)
  with pytest.raises(ValueError, match="already"):
    evaluate_lib.register_upscaler("test_bicubic_twin", factory)
  config = evaluate_lib.EvalConfig(model="test_bicubic_twin", datasets=["Set5"],
                                   data_root=root, degradation="gaussian:1,1,0,5",
                                   options={"tag": "x"})
  evaluate_lib.run(config, io.StringIO(), io.StringIO())
  assert seen == {"scale": "x", "kernel": (5, 5)}


def test_model_upscale_fn_with_identity_like_models():
  keras = pytest.importorskip("keras")
  lr = np.random.default_rng(1).integers(0, 256, (6, 5, 3)).astype(np.uint8)
  inputs = keras.Input((None, None, 3))
  up = keras.layers.UpSampling2D(2)(inputs)
  model = keras.Model(inputs, up)
  sr = evaluate_lib.model_upscale_fn(model)(lr, "x")
  np.testing.assert_array_equal(sr, np.repeat(np.repeat(lr, 2, 0), 2, 1))
  gray = lr[:, :, :1]
  np.testing.assert_array_equal(evaluate_lib.model_upscale_fn(model)(gray, "g"),
                                np.repeat(np.repeat(gray, 2, 0), 2, 1))


@pytest.mark.skipif(not (ROOT / "datasets" / "Set5").is_dir(), reason="../shared not available")
def test_set5_x2_bicubic_baseline():
  r = evaluate_lib.evaluate(evaluate_lib.bicubic_upscale_fn(2), ["Set5"], 2)["Set5"]
  assert r["images"] == 5 and abs(r["psnr"] - 33.66) <= 0.02
