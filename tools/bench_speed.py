r"""CPU/GPU speed of IDN training and adaptation against a dense-convolution roofline.

Usage:
  python tools/bench_speed.py                                   # IDN, float32 and bfloat16
  python tools/bench_speed.py --precisions float32 --orders first --repeats 5
  python tools/bench_speed.py --backend jax --out bench.json
  python tools/bench_speed.py --parallel_tasks   # meta_train --parallel_tasks's threading

Times, per precision, in one run on one machine: the roofline (dense 3x3 64->64 convs),
IDN forward and forward+backward on a batch of LR patches, one adaptation step (whole
image and crops) and one meta-iteration (first and second order).  Each line reports ms,
GFLOP/s and the ratio to the roofline; the last stdout line is JSON with every number
(also written to --out).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # pylint: disable=g-import-not-at-top

flags.DEFINE_enum("backend", None, ["tensorflow", "jax"], "Keras backend.")
flags.DEFINE_string("model", "idn", "Registered model name (random weights: speed only).")
flags.DEFINE_integer("scale", 2, "Upscaling factor.")
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Layer dtype policies.")
flags.DEFINE_integer("batch", 16, "Forward(+backward): LR patches per batch.")
flags.DEFINE_integer("lr_patch", 48, "Forward(+backward): LR patch side.")
flags.DEFINE_integer("adapt_lr_size", 256, "Adaptation: LR image side.")
flags.DEFINE_integer("adapt_crops", 4, "Adaptation with crops: crops per step.")
flags.DEFINE_integer("adapt_crop_size", 96, "Adaptation with crops: crop side (LR pixels).")
flags.DEFINE_integer("adapt_steps", 3, "Adaptation steps per timed call.")
flags.DEFINE_integer("meta_tasks", 4, "Meta-iteration: tasks per meta-batch.")
flags.DEFINE_integer("meta_patch", 128, "Meta-iteration: HR patch side.")
flags.DEFINE_integer("inner_steps", 5, "Meta-iteration: inner steps k.")
flags.DEFINE_list("orders", ["first", "second"], "Meta-gradient orders to time.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (median).")
flags.DEFINE_bool("parallel_tasks", False, "One thread per op, ops side by side "
                  "(mlsr_tf.meta.cpu_threads; meta_train --parallel_tasks).")
flags.DEFINE_string("out", None, "Also write the JSON here.")

FLAGS = flags.FLAGS


def main(argv):
  del argv
  if FLAGS.backend:
    os.environ["KERAS_BACKEND"] = FLAGS.backend
  from mlsr_tf.meta import benchmark  # pylint: disable=g-import-not-at-top  (after backend)
  for name in ("batch", "lr_patch", "adapt_lr_size", "adapt_crops", "adapt_crop_size",
               "adapt_steps", "meta_tasks", "meta_patch", "inner_steps", "repeats"):
    if getattr(FLAGS, name) < 1:
      _cli.fail(f"--{name} must be >= 1, got {getattr(FLAGS, name)!r}")
  try:
    config = benchmark.SpeedConfig(
        model=FLAGS.model, scale=FLAGS.scale, precisions=tuple(FLAGS.precisions),
        batch=FLAGS.batch, lr_patch=FLAGS.lr_patch, adapt_lr_size=FLAGS.adapt_lr_size,
        adapt_crops=FLAGS.adapt_crops, adapt_crop_size=FLAGS.adapt_crop_size,
        adapt_steps=FLAGS.adapt_steps, meta_tasks=FLAGS.meta_tasks,
        meta_patch=FLAGS.meta_patch, inner_steps=FLAGS.inner_steps,
        orders=tuple(FLAGS.orders), repeats=FLAGS.repeats,
        parallel_tasks=FLAGS.parallel_tasks)
    result = benchmark.run_speed(config, log=lambda line: print(line, flush=True))
  except (ValueError, OSError) as error:
    _cli.fail(error)
  text = json.dumps(result)
  if FLAGS.out:
    with open(FLAGS.out, "w", encoding="utf-8") as f:
      f.write(text + "\n")
  print(text)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
