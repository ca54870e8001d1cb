"""Task-parallel CPU threading for meta-training.

A meta-iteration is T independent task computations (k inner steps on a small LR_down,
then one query step), each made of many small batch-1 convolutions.  TensorFlow's default
runs one operation at a time across all cores, and small convolutions do not scale
across cores.  With one thread per operation (intra-op 1) and one operation per core at
a time (inter-op = cores), the executor runs the tasks' independent graphs side by side.
Measured on the 2-core CPU (WORKSPACE.md section 9, "task-parallel threads"): a
meta-iteration of 4 tasks is 1.3x faster in float32 and 1.8x faster in bfloat16; a
single large operation (whole-image adaptation, validation) runs on one core and is
slower, so this is an option of meta-training and of the benchmark, not a global default.

TensorFlow fixes its thread pools when it runs its first operation: call
:func:`use_task_parallel_threads` before any model is built.  Under the JAX backend it
does nothing (XLA compiles each meta-iteration into one program and schedules it itself).
"""

from __future__ import annotations

import os


def use_task_parallel_threads(cores: int | None = None) -> dict:
  """One thread per operation, ``cores`` operations at a time (TensorFlow backend).

  Args:
    cores: operations run side by side (default: the CPUs this process may use).

  Returns:
    ``{"intra_op": 1, "inter_op": cores}`` as set, or ``{}`` under another backend.

  Raises:
    ValueError: TensorFlow already ran an operation with other thread settings (the
      pools cannot change any more), or ``cores`` is not a positive integer.
  """
  if cores is None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        (os.cpu_count() or 1)
  if isinstance(cores, bool) or not isinstance(cores, int) or cores < 1:
    raise ValueError(f"cores must be a positive integer, got {cores!r}")
  import keras  # pylint: disable=g-import-not-at-top
  if keras.backend.backend() != "tensorflow":
    return {}
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  threading = tf.config.threading
  wanted = {"intra_op": 1, "inter_op": cores}
  current = {"intra_op": threading.get_intra_op_parallelism_threads(),
             "inter_op": threading.get_inter_op_parallelism_threads()}
  if current == wanted:
    return wanted
  try:
    threading.set_intra_op_parallelism_threads(1)
    threading.set_inter_op_parallelism_threads(cores)
  except RuntimeError:
    raise ValueError(
        f"task-parallel threads (intra-op 1, inter-op {cores}) must be set before "
        f"TensorFlow runs its first operation; this process already runs with intra-op "
        f"{current['intra_op'] or 'default'}, inter-op {current['inter_op'] or 'default'}"
    ) from None
  return wanted
