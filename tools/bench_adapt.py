r"""Milliseconds per adaptation step and per meta-iteration vs a plain forward+backward.

Usage:
  python tools/bench_adapt.py --model idn_caffe \
      --weights ../shared/weights/idn_caffe/IDN_x2.caffemodel --lr_size 128 \
      --adapt_steps 5 --patch 64 --batch 2 --inner_steps 2 [--backend jax]

The last line of stdout is JSON with every number (ms and overhead ratios).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # pylint: disable=g-import-not-at-top

flags.DEFINE_enum("backend", None, ["tensorflow", "jax"], "Keras backend.")
flags.DEFINE_string("model", "idn_caffe", "Registered model name.")
flags.DEFINE_string("weights", None, "Weights (any importable format; default: random init).")
flags.DEFINE_integer("scale", 2, "Upscaling factor.")
flags.DEFINE_integer("lr_size", 128, "LR side for the adaptation timing.")
flags.DEFINE_integer("adapt_steps", 5, "Adaptation steps timed.")
flags.DEFINE_integer("patch", 64, "HR patch side for the meta-iteration timing.")
flags.DEFINE_integer("batch", 2, "Tasks per meta-batch.")
flags.DEFINE_integer("inner_steps", 2, "Inner steps per meta-iteration.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (median).")
flags.DEFINE_list("orders", ["first", "second"], "Meta-gradient orders to time.")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.backend:
    os.environ["KERAS_BACKEND"] = FLAGS.backend
  from mlsr_tf.meta import benchmark  # pylint: disable=g-import-not-at-top  (after backend)
  for name in ("lr_size", "adapt_steps", "patch", "batch", "inner_steps", "repeats"):
    if getattr(FLAGS, name) < 1:
      _cli.fail(f"--{name} must be >= 1, got {getattr(FLAGS, name)!r}")
  try:
    config = benchmark.BenchConfig(
        model=FLAGS.model, weights=FLAGS.weights, scale=FLAGS.scale, lr_size=FLAGS.lr_size,
        adapt_steps=FLAGS.adapt_steps, patch=FLAGS.patch, batch=FLAGS.batch,
        inner_steps=FLAGS.inner_steps, repeats=FLAGS.repeats, orders=tuple(FLAGS.orders))
    result = benchmark.run(config, log=lambda line: print(line, flush=True))
  except (ValueError, OSError) as error:
    _cli.fail(error)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
