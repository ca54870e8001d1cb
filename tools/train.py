r"""Supervised pretraining of an SR network (stage (a) of MLSR), resumable.

Usage:
  python tools/train.py --model idn --data train291 --workdir runs/idn_x2 \
      --iterations 20000 --batch 16 --patch 96 [--backend tensorflow|jax]

Rerun with the same --workdir (and a larger --iterations) to resume where it stopped: the
result equals a run started with that --iterations (the cosine learning-rate decay lasts
--decay_steps, whatever --iterations is).  Resuming with flags that change the result
(--seed, --batch, --learning_rate, ...) is refused, naming them; a workdir with weights but
no readable checkpoint is refused unless --overwrite (which starts again).
The latest weights are written to WORKDIR/model.weights.h5, which every tool accepts
through --weights.  --max_seconds stops cleanly (after a checkpoint) once that much wall
time has passed, for time-boxed GPU sessions.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

flags.DEFINE_enum("backend", None, ["tensorflow", "jax"],
                  "Keras backend (default: $KERAS_BACKEND, else tensorflow).")
flags.DEFINE_string("model", "idn", "Registered model name.")
flags.DEFINE_string("model_kwargs", "{}", "JSON dict of extra model constructor arguments.")
flags.DEFINE_integer("scale", 2, "Upscaling factor.")
flags.DEFINE_integer("channels", 3, "1 (Y) or 3 (RGB).")
flags.DEFINE_string("weights", None, "Initial weights (any importable format).")
flags.DEFINE_string("data", "train291", "Training set name under the data root, or a folder.")
flags.DEFINE_string("data_root", None, "Data root (default $MLSR_DATA, else ../shared).")
flags.DEFINE_integer("patch", 96, "HR patch size.")
flags.DEFINE_integer("batch", 16, "Batch size.")
flags.DEFINE_integer("iterations", 1000, "Total number of training iterations.")
flags.DEFINE_float("learning_rate", 2e-4, "Initial Adam learning rate (cosine decay).")
flags.DEFINE_integer("decay_steps", 20000,
                     "Length of the cosine learning-rate decay, in iterations (independent of "
                     "--iterations; the rate stays at its final value after it).")
flags.DEFINE_float("final_learning_rate_fraction", 0.05,
                   "The learning rate at the end of the decay, as a fraction of the initial one.")
flags.DEFINE_enum("loss", "l1", ["l1", "l2"], "Training loss.")
flags.DEFINE_string("degradation", "bicubic",
                    "bicubic | gaussian:SX,SY,THETA | FILE.mat|.npy | a distribution name "
                    "(see mlsr_tf.data.tasks).")
flags.DEFINE_integer("pool_size", 4096, "Number of (LR, HR) patch pairs prepared up front.")
flags.DEFINE_integer("workers", 0, "Processes preparing the pool (0: all cores).")
flags.DEFINE_string("workdir", "runs/train", "Output and checkpoint directory.")
flags.DEFINE_integer("checkpoint_every", 500, "Checkpoint period (iterations).")
flags.DEFINE_integer("validate_every", 1000, "Validation period (iterations).")
flags.DEFINE_string("validation", "Set5", "Comma-separated validation sets.")
flags.DEFINE_integer("log_every", 100, "Progress line period (iterations).")
flags.DEFINE_integer("seed", 0, "Seed of data sampling.")
flags.DEFINE_bool("jit_compile", True, "Compile the train step with XLA.")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                  "Layer dtype policy: mixed_float16 on GPUs (with loss scaling), "
                  "mixed_bfloat16 on GPUs/TPUs and CPUs with AMX-BF16; weights stay float32.")
flags.DEFINE_float("max_seconds", None, "Stop cleanly after this many seconds.")
flags.DEFINE_bool("overwrite", False,
                  "Discard what --workdir holds (weights, checkpoint, log) and start again.")
flags.DEFINE_bool("fit_iterations_to_time", False,
                  "With --max_seconds: measure the speed early and shorten --iterations (and "
                  "the learning-rate schedule) to finish within the time.")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.backend:
    os.environ["KERAS_BACKEND"] = FLAGS.backend
  from mlsr_tf.training import train  # pylint: disable=g-import-not-at-top  (after KERAS_BACKEND)
  try:
    config = train.TrainConfig(
        model=FLAGS.model, model_kwargs=_cli.json_object("model_kwargs"), scale=FLAGS.scale,
        channels=FLAGS.channels, weights=FLAGS.weights, data=FLAGS.data,
        data_root=FLAGS.data_root, patch=FLAGS.patch, batch=FLAGS.batch,
        iterations=FLAGS.iterations, learning_rate=FLAGS.learning_rate,
        decay_steps=FLAGS.decay_steps,
        final_learning_rate_fraction=FLAGS.final_learning_rate_fraction, loss=FLAGS.loss,
        degradation=FLAGS.degradation, pool_size=FLAGS.pool_size, workers=FLAGS.workers,
        workdir=FLAGS.workdir, checkpoint_every=FLAGS.checkpoint_every,
        validate_every=FLAGS.validate_every, validation=FLAGS.validation,
        log_every=FLAGS.log_every, seed=FLAGS.seed, jit_compile=FLAGS.jit_compile,
        precision=FLAGS.precision,
        max_seconds=FLAGS.max_seconds, fit_iterations_to_time=FLAGS.fit_iterations_to_time,
        overwrite=FLAGS.overwrite)
    result = train.run(config, log=lambda line: print(line, flush=True))
  except KeyboardInterrupt:
    _cli.interrupted(FLAGS.workdir)
  except (ValueError, OSError) as error:
    _cli.fail(error)
  print(json.dumps({"iteration": result["iteration"], "stop_reason": result["stop_reason"]}))


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
