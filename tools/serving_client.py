"""Sends an image to a TF Serving REST endpoint serving the exported model; writes the answer.

Usage:
  python tools/serving_client.py --input lr.png --output sr.png
  python tools/serving_client.py --input lr.png --output sr.png --signature adapt \\
      --steps 5 --learning_rate 0.1 --kernel bicubic
  python tools/serving_client.py --input lr.png --output sr.png --signature adapt \\
      --steps 5 --learning_rate 0.1 --kernel kernel_x2.mat \\
      --url http://localhost:8501/v1/models/mlsr:predict

The model is served with (see README, "Serving"):
  docker run -p 8501:8501 -v "$PWD/export/mlsr:/models/mlsr" -e MODEL_NAME=mlsr tensorflow/serving
--input_dtype must match the export's (float32: [0, 1] pixels, uint8: 0..255).
Bad input or an unreachable server: one ``error: ...`` line on stderr, exit code 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.serving import rest_client

_INPUT = flags.DEFINE_string("input", None, "LR image (PNG/JPEG/BMP/TIFF).")
_OUTPUT = flags.DEFINE_string("output", None, "SR PNG to write.")
_URL = flags.DEFINE_string("url", "http://localhost:8501/v1/models/mlsr:predict",
                           "TF Serving REST predict URL.")
_SIGNATURE = flags.DEFINE_enum("signature", "serving_default", list(rest_client.SIGNATURES),
                               "Signature to call.")
_STEPS = flags.DEFINE_integer("steps", None, "Adaptation steps (adapt signature).")
_LEARNING_RATE = flags.DEFINE_float("learning_rate", None,
                                    "SGD step size, [0, 1] pixels (adapt signature).")
_KERNEL = flags.DEFINE_string("kernel", None, "bicubic | gaussian:SX,SY,THETA | FILE.mat | "
                              "FILE.npy (adapt signature; default bicubic).")
_INPUT_DTYPE = flags.DEFINE_enum("input_dtype", "float32", list(rest_client.INPUT_DTYPES),
                                 "Pixel type of the export.")
_TIMEOUT = flags.DEFINE_float("timeout", 600.0, "Seconds to wait for the answer.")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  for flag in (_INPUT, _OUTPUT):
    if flag.value is None:
      _cli.fail(f"--{flag.name} is required")
  kernel = _KERNEL.value
  if _SIGNATURE.value == "adapt" and kernel is None:
    kernel = "bicubic"
  config = rest_client.ClientConfig(
      input=_INPUT.value, output=_OUTPUT.value, url=_URL.value, signature=_SIGNATURE.value,
      steps=_STEPS.value, learning_rate=_LEARNING_RATE.value, kernel=kernel,
      input_dtype=_INPUT_DTYPE.value, timeout=_TIMEOUT.value)
  try:
    result = rest_client.run(config)
  except (ValueError, OSError) as e:
    _cli.fail(e)
  print(f"wrote {result['output']}: {result['width']}x{result['height']} "
        f"({config.signature}, server answered in {result['seconds']:.1f} s)")


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
