"""Imported public networks reproduce their published PSNR (Set5 x2, CPU)."""

import io

import numpy as np
import pytest

from mlsr_tf import evaluate as evaluate_lib
from mlsr_tf import models_io
from mlsr_tf import paths
from mlsr_tf import sr_inference
from mlsr_tf.data import imresize

ROOT = paths.data_root()
IDN_CAFFE_X2 = ROOT / "weights" / "idn_caffe" / "IDN_x2.caffemodel"
MZSR = ROOT / "weights" / "mzsr_pretrained"


def _require(*required):
  for path in required:
    if not path.exists():
      pytest.skip(f"{path} not available")


def test_idn_caffe_lr_is_float_bicubic_of_the_rounded_y():
  rng = np.random.default_rng(0)
  hr = rng.integers(0, 256, (13, 10, 3), dtype=np.uint8)
  y, lr = sr_inference.idn_caffe_lr(hr, 2)
  assert y.dtype == np.uint8 and y.shape == (12, 10)
  expected_y = np.round(16 + (65.481 * hr[..., 0] + 128.553 * hr[..., 1]
                              + 24.966 * hr[..., 2]) / 255.0)[:12]
  np.testing.assert_array_equal(y, expected_y)
  np.testing.assert_allclose(lr, imresize.imresize(y / 255.0, 0.5))
  assert lr.dtype == np.float64 and not np.allclose(lr * 255, np.round(lr * 255))


def test_idn_caffe_protocol_rejects_rgb_models():
  model = models_io.build_and_load("zssr", None, scale=2, filters=4, num_layers=2)
  with pytest.raises(ValueError, match="Y only"):
    sr_inference.evaluate_idn_caffe(model, ["Set5"], 2)


@pytest.mark.slow
def test_imported_idn_caffe_reproduces_published_set5_x2():
  _require(IDN_CAFFE_X2, ROOT / "datasets" / "Set5")
  config = evaluate_lib.EvalConfig(model="idn_caffe", weights=str(IDN_CAFFE_X2),
                                   datasets=["Set5"], scale=2, protocol="idn-caffe",
                                   output_format="json")
  results = evaluate_lib.run(config, stdout=io.StringIO())
  assert results["Set5"]["images"] == 5
  assert abs(results["Set5"]["psnr"] - 37.83) < 0.05  # Hui et al. 2018, Table 3.


@pytest.mark.slow
def test_imported_mzsr_standard_protocol_set5_x2():
  _require(MZSR, ROOT / "datasets" / "Set5")
  model = models_io.build_and_load("zssr", MZSR, scale=2)
  results = evaluate_lib.evaluate(evaluate_lib.model_upscale_fn(model), ["Set5"], 2)
  # Measured 37.55 dB (WORKSPACE.md section 3); bicubic is 33.66, MZSR reports ~37.5.
  assert abs(results["Set5"]["psnr"] - 37.55) < 0.05


def test_idn_caffe_protocol_needs_a_network_with_weights():
  _require(ROOT / "datasets" / "Set5")
  config = evaluate_lib.EvalConfig(model="bicubic", datasets=["Set5"], scale=2,
                                   protocol="idn-caffe")
  with pytest.raises(ValueError, match="needs a network model"):
    evaluate_lib.run(config)
  with pytest.raises(ValueError, match="unknown protocol 'matlab'"):
    evaluate_lib.run(evaluate_lib.EvalConfig(datasets=["Set5"], protocol="matlab"))
