"""Tests for mlsr_tf.models_io: format detection and loading any format into a model."""

import os
import zipfile

import numpy as np
import pytest

from mlsr_tf import models_io
from mlsr_tf import paths
from mlsr_tf.models import registry
from mlsr_tf.weights import mapping
from mlsr_tf.weights import tf1

WEIGHTS_DIR = paths.data_root() / "weights"


def _tiny(scale=2):
  return registry.build_model("zssr", scale=scale, filters=4, num_layers=3)


def test_keras_formats_round_trip_and_are_detected_by_content(tmp_path):
  model = _tiny()
  weights_file = tmp_path / "w.weights.h5"
  model.save_weights(weights_file)
  model.save(tmp_path / "m.keras")
  renamed = tmp_path / "no_extension"
  renamed.write_bytes(weights_file.read_bytes())
  assert models_io.detect_format(weights_file) == "keras_weights"
  assert models_io.detect_format(tmp_path / "m.keras") == "keras"
  assert models_io.detect_format(renamed) == "keras_weights"
  for path in (weights_file, tmp_path / "m.keras"):
    clone = _tiny()
    models_io.load_weights_into(clone, path)
    for a, b in zip(model.weights, clone.weights):
      np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_tf1_checkpoint_forms_and_explicit_map(tmp_path):
  model = _tiny()
  tensors = {f"MODEL/{name}": v.numpy() for name, v in mapping.model_weight_names(model).items()}
  prefix = tf1.write_checkpoint(tmp_path / "ckpt" / "Pretrained", tensors)
  for form in (prefix, prefix + ".index", tmp_path / "ckpt"):
    assert models_io.detect_format(form) == "tf1"
  clone = _tiny()
  name_map = mapping.parse_name_map(
      {"weights": {name: f"MODEL/{name}" for name in mapping.model_weight_names(clone)}})
  models_io.load_weights_into(clone, tmp_path / "ckpt", name_map=name_map)
  for a, b in zip(model.weights, clone.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_torch_npz_and_unknown_files(tmp_path):
  np.savez(tmp_path / "state.npz", **{"head.0.weight": np.zeros((1, 1, 3, 3))})
  assert models_io.detect_format(tmp_path / "state.npz") == "torch"
  (tmp_path / "junk.bin").write_bytes(b"\x07not weights at all")
  with pytest.raises(ValueError, match="unrecognised weights file"):
    models_io.detect_format(tmp_path / "junk.bin")
  with zipfile.ZipFile(tmp_path / "other.zip", "w") as archive:
    archive.writestr("readme.txt", "hi")
  with pytest.raises(ValueError, match="zip archive"):
    models_io.detect_format(tmp_path / "other.zip")
  with pytest.raises(ValueError, match="no weights at"):
    models_io.detect_format(tmp_path / "absent")


def test_wrong_keras_weights_are_a_value_error(tmp_path):
  _tiny().save_weights(tmp_path / "w.weights.h5")
  with pytest.raises(ValueError, match=r"cannot load weights .*w.weights.h5.*conv1/kernel has "
                     r"shape \(3, 3, 3, 8\) in the model but \(3, 3, 3, 4\) in the file$"):
    models_io.load_weights_into(registry.build_model("zssr", scale=2, filters=8, num_layers=3),
                                tmp_path / "w.weights.h5")


def test_build_and_load_real_files():
  caffemodel = WEIGHTS_DIR / "idn_caffe" / "IDN_x2.caffemodel"
  mzsr = WEIGHTS_DIR / "mzsr_pretrained"
  if not (caffemodel.exists() and mzsr.exists()):
    pytest.skip("shared weights not available")
  assert models_io.detect_format(caffemodel) == "caffe"
  model = models_io.build_and_load("idn_caffe", caffemodel, scale=2)
  assert model.count_params() == 552_769
  zssr = models_io.build_and_load("zssr", mzsr, scale=2)
  assert zssr.get_config()["model"] == "zssr"
  with pytest.raises(ValueError, match="no shipped name map fits"):
    models_io.build_and_load("idn", mzsr, scale=2)


def test_recorded_scale_is_checked_for_every_keras_format(tmp_path):
  """zssr upsamples first: x3 weights have x2 shapes, so only what the file records tells."""
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  x3 = _tiny(scale=3)
  keras_h5.save(x3, tmp_path / "x3.weights.h5")
  x3.save(tmp_path / "x3.keras")
  for path in (tmp_path / "x3.weights.h5", tmp_path / "x3.keras"):
    with pytest.raises(ValueError, match=r"x3\.(weights\.h5|keras)' are for a network with "
                                         r"scale 3 \(zssr\).*has scale 2; pass --scale 3"):
      models_io.load_weights_into(_tiny(scale=2), path)
    models_io.load_weights_into(_tiny(scale=3), path)


@pytest.mark.skipif(not (WEIGHTS_DIR / "idn_caffe").is_dir(), reason="shared weights absent")
def test_idn_x3_caffemodel_is_refused_by_an_x2_network():
  x3 = WEIGHTS_DIR / "idn_caffe" / "IDN_x3.caffemodel"
  with pytest.raises(ValueError, match=r"IDN_x3.caffemodel' are for a network with scale 3, "
                                       r"but the model 'idn_caffe' has scale 2"):
    models_io.build_and_load("idn_caffe", x3, scale=2)
  assert models_io.build_and_load("idn_caffe", x3, scale=3).scale == 3


def test_weight_paths_that_are_not_files(tmp_path):
  (tmp_path / "empty.weights.h5").write_bytes(b"")
  os.mkfifo(tmp_path / "fifo.weights.h5")
  for name, pattern in (("empty.weights.h5", "is empty"), ("fifo.weights.h5", "not a file")):
    with pytest.raises(ValueError, match=pattern):
      models_io.load_weights_into(_tiny(), tmp_path / name)
