"""Benchmarks the user-facing paths: adapt_image CLI end to end, SavedModel adapt vs Python.

Usage:
  python tools/bench_export.py --model idn_caffe \\
      --weights ../shared/weights/idn_caffe/IDN_x2.caffemodel --sizes 256,512 --steps 5,20
  python tools/bench_export.py --sizes 256 --steps 5 --skip_cli   # SavedModel row only

Prints one JSON line per measurement: CLI rows (``tools/adapt_image.py`` as a fresh process
on a synthetic LR of each size, whole image vs --crops/--crop_size; seconds include start-up
and model load) and one ``savedmodel_vs_python`` row (the exported ``adapt`` signature vs
``mlsr_tf.meta.adaptation`` on the same LR, after a warm-up call each).
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.serving import export

_MODEL = flags.DEFINE_string("model", "default", "Shipped model, spec .json or network name.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights for a registered network.")
_SIZES = flags.DEFINE_list("sizes", ["256", "512"], "LR sides to time the CLI on.")
_STEPS = flags.DEFINE_list("steps", ["5", "20"], "Adaptation step counts.")
_CROPS = flags.DEFINE_integer("crops", 4, "Crops per step in the crops mode.")
_CROP_SIZE = flags.DEFINE_integer("crop_size", 64, "Crop side (LR pixels).")
_COMPARE_SIZE = flags.DEFINE_integer("compare_size", 256, "LR side of the SavedModel row.")
_COMPARE_STEPS = flags.DEFINE_integer("compare_steps", 5, "Steps of the SavedModel row.")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", 0.1, "SGD step size ([0, 1] pixels).")
_WORKDIR = flags.DEFINE_string("workdir", None, "Scratch folder (default: a temp folder).")
_SKIP_CLI = flags.DEFINE_bool("skip_cli", False, "Only the SavedModel vs Python row.")


def _integers(flag) -> tuple:
  try:
    return tuple(int(v) for v in flag.value)
  except ValueError:
    _cli.fail(f"--{flag.name} must be comma-separated integers, got {','.join(flag.value)!r}")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  try:
    config = export.BenchConfig(
        model=_MODEL.value, weights=_WEIGHTS.value, sizes=_integers(_SIZES),
        steps=_integers(_STEPS), crops=_CROPS.value,
        crop_size=_CROP_SIZE.value, compare_size=_COMPARE_SIZE.value,
        compare_steps=_COMPARE_STEPS.value, learning_rate=_LEARNING_RATE.value,
        workdir=_WORKDIR.value, skip_cli=_SKIP_CLI.value)
    export.benchmark(config, log=lambda row: print(json.dumps(row), flush=True))
  except (ValueError, OSError) as e:
    _cli.fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
