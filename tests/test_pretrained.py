"""Tests for mlsr_tf.pretrained and the shipped default model."""

import json
import shutil

import pytest

from mlsr_tf import evaluate as evaluate_lib
from mlsr_tf import paths
from mlsr_tf import pretrained
from mlsr_tf.data import datasets


def test_default_spec_is_complete_and_weights_match_their_sha256():
  spec = pretrained.load_spec("default")
  assert spec.model == "idn" and spec.scale == 2 and spec.channels == 3
  assert spec.weights.is_file()
  assert spec.weights.stat().st_size < 5_000_000  # "A few MB at most."
  assert pretrained.sha256_of(spec.weights) == spec.sha256
  assert spec.adaptation_steps >= 0 and spec.adaptation_alpha > 0


def test_model_card_states_the_sha256_and_the_reference_numbers():
  raw = json.loads(pretrained.spec_path("default").read_text())
  card = (paths.PRETRAINED_DIR / raw["card"]).read_text()
  assert raw["sha256"] in card
  reference = raw["reference"]["Set5_x2_bicubic_psnr"]
  assert f"{reference:.2f}" in card


def test_corrupt_weights_are_rejected(tmp_path):
  spec_file = pretrained.spec_path("default")
  raw = json.loads(spec_file.read_text())
  shutil.copy(paths.PRETRAINED_DIR / raw["weights"], tmp_path / raw["weights"])
  (tmp_path / "copy.json").write_text(json.dumps(raw))
  model, _ = pretrained.load_model(str(tmp_path / "copy.json"))
  assert model.count_params() == 579_276
  with open(tmp_path / raw["weights"], "r+b") as f:
    f.seek(-100, 2)
    f.write(b"\0" * 10)
  with pytest.raises(ValueError, match="sha256"):
    pretrained.load_model(str(tmp_path / "copy.json"))


def test_missing_spec_and_resolve():
  with pytest.raises(FileNotFoundError, match="no_such_model"):
    pretrained.load_spec("no_such_model")
  model, weights = pretrained.resolve("default", None)
  assert model == "idn" and weights.endswith(".weights.h5")
  assert pretrained.resolve("idn", "w.h5") == ("idn", "w.h5")
  assert pretrained.resolve("bicubic", None) == ("bicubic", None)


@pytest.mark.slow
def test_default_model_reproduces_the_model_card_set5_x2_within_0_02_db():
  try:
    datasets.find_dataset("Set5", None)
  except (ValueError, OSError):
    pytest.skip("Set5 not available under the data root")
  raw = json.loads(pretrained.spec_path("default").read_text())
  model, weights = pretrained.resolve("default", None)
  config = evaluate_lib.EvalConfig(model=model, weights=weights, datasets=["Set5"], scale=2,
                                   output_format="json")
  import io  # pylint: disable=g-import-not-at-top
  results = evaluate_lib.run(config, stdout=io.StringIO(), stderr=io.StringIO())
  measured = results["Set5"]["psnr"]
  assert abs(measured - raw["reference"]["Set5_x2_bicubic_psnr"]) <= 0.02
  assert measured >= 37.5  # Issue 5's target for the default model.
