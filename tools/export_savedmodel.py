"""Exports the SR network as a SavedModel for TF Serving, with an in-graph adaptation signature.

Usage:
  python tools/export_savedmodel.py --output export/mlsr/1
  python tools/export_savedmodel.py --output export/mlsr/1 --model idn_caffe \\
      --weights ../shared/weights/idn_caffe/IDN_x2.caffemodel
  python tools/export_savedmodel.py --output export/mlsr_u8/1 --input_dtype uint8

Signatures (see mlsr_tf/serving/export.py): ``serving_default`` (lr -> sr) and ``adapt`` (lr, steps,
learning_rate, kernel -> sr; an empty [0, 0] kernel means bicubic); a model with learned step
sizes (``--model idn_x2_blur``) also gets ``adapt_learned`` (lr, steps, kernel -> sr).  --input_dtype float32:
pixels in [0, 1]; uint8: 0..255 in and out.  The output directory must not exist (use TF
Serving's <base>/<name>/<version> layout).  Bad input: one ``error: ...`` line, exit code 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.serving import export

_OUTPUT = flags.DEFINE_string("output", None, "SavedModel directory to create, e.g. export/mlsr/1.")
_MODEL = flags.DEFINE_string("model", "default",
                             "Shipped model name, spec .json, or registered network name.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights for a registered network.")
_SCALE = flags.DEFINE_integer("scale", None, "Upscaling factor (default: the model's / 2).")
_INPUT_DTYPE = flags.DEFINE_enum("input_dtype", "float32", list(export.INPUT_DTYPES),
                                 "Pixel type of lr and sr.")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  if not _OUTPUT.value:
    _cli.fail("--output is required")
  config = export.ExportConfig(output=_OUTPUT.value, model=_MODEL.value,
                               weights=_WEIGHTS.value, scale=_SCALE.value,
                               input_dtype=_INPUT_DTYPE.value)
  try:
    path, signatures = export.run(config)
  except (ValueError, OSError) as e:
    _cli.fail(e)
  print(f"wrote SavedModel {path} (signatures: {', '.join(signatures)}; "
        f"{config.input_dtype} pixels)")


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
