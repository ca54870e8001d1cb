"""Task-parallel threading (mlsr_tf.meta.cpu_threads): set before the first op, refused after.

TensorFlow's thread pools are per process, so each case runs in a fresh interpreter.
"""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _python(code: str) -> subprocess.CompletedProcess:
  env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
  return subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=120, check=False)


def test_sets_one_thread_per_op_before_the_first_op():
  result = _python(
      "import json, tensorflow as tf\n"
      "from mlsr_tf.meta import cpu_threads\n"
      "got = cpu_threads.use_task_parallel_threads(3)\n"
      "again = cpu_threads.use_task_parallel_threads(3)\n"  # Same settings: accepted.
      "tf.constant(1.0) + 1.0\n"
      "print(json.dumps([got, again, tf.config.threading.get_intra_op_parallelism_threads(),"
      " tf.config.threading.get_inter_op_parallelism_threads()]))\n")
  assert result.returncode == 0, result.stderr
  got, again, intra, inter = json.loads(result.stdout.strip().splitlines()[-1])
  assert got == again == {"intra_op": 1, "inter_op": 3}
  assert (intra, inter) == (1, 3)


def test_refused_with_a_clear_error_once_tensorflow_has_run():
  result = _python(
      "import tensorflow as tf\n"
      "from mlsr_tf.meta import cpu_threads\n"
      "tf.constant(1.0) + 1.0\n"
      "try:\n"
      "  cpu_threads.use_task_parallel_threads(2)\n"
      "except ValueError as e:\n"
      "  print('refused:', e)\n")
  assert result.returncode == 0, result.stderr
  assert "refused: task-parallel threads (intra-op 1, inter-op 2) must be set before" \
      in result.stdout


@pytest.mark.parametrize("cores", [0, -1, 1.5, True])
def test_bad_core_counts_are_refused(cores):
  from mlsr_tf.meta import cpu_threads  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=f"cores must be a positive integer, got {cores!r}"):
    cpu_threads.use_task_parallel_threads(cores)


def test_meta_iteration_is_unchanged_by_the_threading():
  """The same meta-iteration (tiny IDN, 2 tasks) gives the same theta either way."""
  code = (
      "import json, sys, numpy as np\n"
      "from mlsr_tf.meta import cpu_threads\n"
      "if sys.argv[1] == 'parallel': cpu_threads.use_task_parallel_threads(2)\n"
      "from mlsr_tf.meta import backend_tf, maml\n"
      "from mlsr_tf.models import registry\n"
      "import keras\n"
      "keras.utils.set_random_seed(0)\n"
      "model = registry.build_model('srcnn', scale=2, channels=1)\n"
      "rng = np.random.default_rng(0)\n"
      "batch = {'lr_down': rng.random((2, 8, 8, 1), np.float32),"
      " 'lr': rng.random((2, 16, 16, 1), np.float32),"
      " 'hr': rng.random((2, 32, 32, 1), np.float32)}\n"
      "trainer = backend_tf.MetaTrainer(model, [0.1, 0.1], 1e-3)\n"
      "trainer.step(batch)\n"
      "print(json.dumps([float(np.sum(t)) for t in trainer.theta_numpy()]))\n")
  # Both processes at once: most of each is TensorFlow's single-threaded import.
  env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
  processes = {mode: subprocess.Popen([sys.executable, "-c", code, mode], cwd=REPO, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True)
               for mode in ("default", "parallel")}
  try:
    outputs = {mode: process.communicate(timeout=180) for mode, process in processes.items()}
  finally:  # On a timeout, no child is left running.
    for process in processes.values():
      if process.poll() is None:
        process.kill()
        process.communicate()
  sums = {}
  for mode, (stdout, stderr) in outputs.items():
    assert processes[mode].returncode == 0, stderr
    sums[mode] = json.loads(stdout.strip().splitlines()[-1])
  assert sums["default"] == pytest.approx(sums["parallel"], rel=1e-5, abs=1e-6)
