"""Makes an LR image from an HR one: blur with a kernel (or bicubic), subsample.

Usage:
  python tools/degrade.py --input HR.png --scale 2 --output LR.png
  python tools/degrade.py --input HR.png --scale 4 --output LR.png --kernel gaussian:2.0,1.0,0.5
  python tools/degrade.py --input HR.png --scale 2 --output LR.png --kernel kernel_x2.mat

--kernel: bicubic (default, MATLAB imresize) | gaussian:SX[,SY[,THETA[,SIZE]]]
(sigmas in HR pixels, THETA in radians) | FILE.mat (variable 'Kernel') | FILE.npy.
With a kernel: correlate (symmetric borders), keep pixels 0, s, 2s, ...
--output: PNG, JPEG (8-bit), BMP (8-bit) or TIFF, as its extension says; others are refused.
Bad input: a one-line ``error: ...`` on stderr and exit code 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.data import degradation as degradation_lib

_INPUT = flags.DEFINE_string("input", None, "HR image (PNG/JPEG/BMP/TIFF, 8 or 16 bit).")
_OUTPUT = flags.DEFINE_string(
    "output", None, "LR image to write; its extension picks the format (.png, .jpg, .bmp, .tif).")
_SCALE = flags.DEFINE_integer("scale", None, "Integer downscaling factor.")
_KERNEL = flags.DEFINE_string(
    "kernel", "bicubic", "bicubic | gaussian:SX,SY,THETA | FILE.mat | FILE.npy")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  for flag in (_INPUT, _OUTPUT, _SCALE):
    if flag.value is None:
      _cli.fail(f"--{flag.name} is required")
  try:
    degradation = degradation_lib.parse_degradation(_KERNEL.value, _SCALE.value)
    lr = degradation_lib.degrade_file(_INPUT.value, _OUTPUT.value, degradation)
  except (ValueError, OSError) as e:
    _cli.fail(e)
  print(f"wrote {_OUTPUT.value}: {lr.shape[1]}x{lr.shape[0]} "
        f"(x{degradation.scale}, {degradation.name})")


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
