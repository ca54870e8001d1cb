"""tools/_cli.py: TensorFlow's start-up and Python warnings stay off the user's terminal; a
Ctrl-C that Python swallowed in a garbage-collector callback is not lost."""

import os
import pathlib
import signal
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


# A KeyboardInterrupt raised inside a gc callback, as when SIGINT lands while JAX's callback
# runs: Python prints "Exception ignored" and the loop goes on to its end (20 s with the hook,
# where the re-sent signal should end it at once; 2 s without, where nothing will).
_SWALLOWED = """
import gc, sys, time
from tools import _cli
if sys.argv[1] == "keep":
  _cli.keep_interrupts()
  _cli.keep_interrupts()  # Idempotent: one re-sent signal, not two.
def callback(phase, info):
  if phase == "start":
    gc.callbacks.remove(callback)
    raise KeyboardInterrupt
gc.callbacks.append(callback)
gc.collect()
try:
  start = time.time()
  while time.time() < start + float(sys.argv[2]):
    time.sleep(0.01)
  print("not interrupted")
except KeyboardInterrupt:
  print("interrupted after", round(time.time() - start, 2), "s")
  time.sleep(0.5)  # A second re-sent SIGINT would raise here.
"""


@pytest.mark.parametrize("keep", [True, False])
def test_a_ctrl_c_swallowed_in_a_gc_callback_is_sent_again(keep):
  # SIGINT at its default in the child: a parent that ignores it (as some pytest-xdist
  # workers end up doing) would pass SIG_IGN on, and Python then raises no KeyboardInterrupt.
  result = subprocess.run([sys.executable, "-c", _SWALLOWED, "keep" if keep else "plain",
                           "20" if keep else "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
  if keep:
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("interrupted after"), result.stdout
    assert "Exception ignored" not in result.stderr and not result.stderr.strip()
  else:  # Python's own behaviour, which the hook exists for.
    assert result.stdout.startswith("not interrupted"), result.stdout
    assert "Exception ignored" in result.stderr and "KeyboardInterrupt" in result.stderr
