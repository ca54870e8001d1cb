"""tools/_cli.py: TensorFlow's start-up and Python warnings stay off the user's terminal."""

import os
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Imports TensorFlow the way every tool does (tools._cli first), then makes TF log a
# retracing-style warning and an error through its own Python logger.
_SCRIPT = """
from tools import _cli
import tensorflow as tf
tf.get_logger().warning("a-warning-the-user-should-not-see")
tf.get_logger().error("an-error-the-user-should-see")
"""


def _run(verbose: bool):
  env = {k: v for k, v in os.environ.items()
         if k not in ("MLSR_TF_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}
  if verbose:
    env["MLSR_TF_VERBOSE"] = "1"
  return subprocess.run([sys.executable, "-c", _SCRIPT], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_python_warnings_are_hidden_unless_verbose(verbose):
  result = _run(verbose)
  assert "an-error-the-user-should-see" in result.stderr
  assert ("a-warning-the-user-should-not-see" in result.stderr) == verbose
  if not verbose:  # Nothing else: no oneDNN / CUDA / cpu_feature_guard start-up lines.
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, result.stderr
