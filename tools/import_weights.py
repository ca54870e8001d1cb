r"""Converts public pretrained weights into a Keras `.weights.h5` file.

Usage (from the repository root):

  python tools/import_weights.py --format caffe-idn \
      --input ../shared/weights/idn_caffe/IDN_x2.caffemodel --scale 2 \
      --output /tmp/idn_caffe_x2.weights.h5
  python tools/import_weights.py --format tf1-mzsr \
      --input ../shared/weights/mzsr_pretrained --output /tmp/mzsr.weights.h5
  python tools/import_weights.py --format tf1-idn --input PATH/TO/idn_tf_x2 \
      --output /tmp/idn_x2.weights.h5       # needs the full checkpoint (.data shard)
  python tools/import_weights.py --format torch-rcan --input RCAN_BIX4.pt --scale 4 \
      --output /tmp/rcan_x4.weights.h5

Formats: tf1-idn -> model `idn` (name map idn_tf1), tf1-mzsr -> `zssr` (map mzsr),
caffe-idn -> `idn_caffe`, torch-rcan -> `rcan`. `--name_map FILE.json` imports
any other TF1 layout into `--model`. The output loads with
`--model NAME --weights FILE` in every tool. Bad input: one-line error, exit 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf import models_io

_FORMAT = flags.DEFINE_string("format", None,
                              f"Source layout: {'|'.join(models_io.IMPORT_FORMATS)}.")
_INPUT = flags.DEFINE_string("input", None, "Checkpoint prefix/directory or weights file.")
_OUTPUT = flags.DEFINE_string("output", None, "Output Keras weights file (*.weights.h5).")
_SCALE = flags.DEFINE_integer("scale", None,
                              "Upscale factor; default: the format's (2; IDN-Caffe "
                              "reads it from a _x<s> file name).")
_MODEL = flags.DEFINE_string("model", None, "Override the target model (with --name_map).")
_NAME_MAP = flags.DEFINE_string("name_map", None,
                                "TF1 only: JSON name map (or shipped map name) to use.")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  for flag in (_FORMAT, _INPUT, _OUTPUT):
    if not flag.value:
      _cli.fail(f"--{flag.name} is required")
  try:
    config = models_io.ImportConfig(
        format=_FORMAT.value, input=_INPUT.value, output=_OUTPUT.value,
        scale=_SCALE.value, model=_MODEL.value, name_map=_NAME_MAP.value)
    report = models_io.import_weights(config)
  except (ValueError, OSError) as e:
    _cli.fail(e)
  print(report)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
