"""End-to-end tests of tools/import_weights.py (subprocess, real shared weights)."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from mlsr_tf import models_io
from mlsr_tf import paths
from mlsr_tf.weights import caffe
from mlsr_tf.weights import mapping

TOOL = paths.REPO_ROOT / "tools" / "import_weights.py"
WEIGHTS_DIR = paths.data_root() / "weights"


def _run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, str(TOOL), *map(str, args)], capture_output=True,
                        text=True, cwd=paths.REPO_ROOT, env=env, timeout=120)


def _require(path: pathlib.Path):
  if not path.exists():
    pytest.skip(f"{path} not available")


@pytest.mark.slow  # A subprocess importing TensorFlow: ~10-30 s on 2 cores.
def test_caffe_idn_x3_import_writes_weights_that_load_by_name(tmp_path):
  source = WEIGHTS_DIR / "idn_caffe" / "IDN_x3.caffemodel"
  _require(source)
  output = tmp_path / "idn_caffe_x3.weights.h5"
  result = _run("--format", "caffe-idn", "--input", source, "--output", output)
  assert result.returncode == 0, result.stderr
  assert "idn_caffe x3" in result.stdout and "552,769 parameters" in result.stdout
  assert [p.name for p in tmp_path.iterdir()] == [output.name]  # No temp files left.
  model = models_io.build_and_load("idn_caffe", output, scale=3)
  expected = caffe.caffe_weights(source)["upsample"].blobs[0].transpose(2, 3, 1, 0)
  np.testing.assert_array_equal(
      mapping.model_weight_names(model)["upsample/kernel"].numpy(), expected)


def test_bad_input_via_the_tool_is_one_line_exit_2_and_writes_nothing(tmp_path):
  _require(WEIGHTS_DIR / "idn_tf_x2" / "model.ckpt.index")
  output = tmp_path / "out.weights.h5"
  result = _run("--format", "tf1-idn", "--input", WEIGHTS_DIR / "idn_tf_x2", "--output", output)
  assert result.returncode == 2
  lines = [l for l in result.stderr.splitlines() if l.startswith("error: ")]
  assert len(lines) == 1 and "no data shard" in lines[0], result.stderr
  assert not output.exists()


@pytest.mark.parametrize("fields, message", [
    (dict(format="caffe-idn", input="{mzsr}"), "expects a caffe input"),
    (dict(format="torch-rcan", input="{mzsr}"), "expects a torch input"),
    (dict(format="tf1-idn", input="{mzsr}"), "missing (64)"),
    (dict(format="nope", input="{mzsr}"), "unknown format 'nope'"),
    (dict(format="tf1-mzsr", input="{tmp}/absent"), "no weights at"),
    (dict(format="tf1-mzsr", input="{mzsr}", output="{tmp}/out.h5"), "must end with .weights.h5"),
    (dict(format="tf1-mzsr", input="{mzsr}", output="{tmp}/no_dir/out.weights.h5"),
     "does not exist"),
])
def test_import_errors_are_value_errors_and_write_nothing(tmp_path, fields, message):
  """The library behind the tool (the tool turns these into `error: ...`, exit 2)."""
  _require(WEIGHTS_DIR / "mzsr_pretrained")
  values = {"mzsr": WEIGHTS_DIR / "mzsr_pretrained", "tmp": tmp_path}
  fields = {"output": "{tmp}/out.weights.h5", **fields}
  config = models_io.ImportConfig(**{k: v.format(**values) for k, v in fields.items()})
  with pytest.raises(ValueError) as info:
    models_io.import_weights(config)
  assert message in str(info.value)
  assert not list(tmp_path.iterdir())


def test_mzsr_import_in_process(tmp_path):
  _require(WEIGHTS_DIR / "mzsr_pretrained")
  output = tmp_path / "mzsr.weights.h5"
  report = models_io.import_weights(models_io.ImportConfig(
      format="tf1-mzsr", input=str(WEIGHTS_DIR / "mzsr_pretrained"), output=str(output)))
  assert "zssr x2 (16 tensors" in report
  assert models_io.detect_format(output) == "keras_weights"
