"""ZSSR baseline: trains the 8-layer network on one LR image and writes its SR.

Usage:
  python tools/zssr.py --lr ../shared/kernels/zssr_bsd100_100_x2/lr.png \
      --degradation ../shared/kernels/zssr_bsd100_100_x2/kernel_x2.mat --output /tmp/sr.png
  python tools/zssr.py --lr LR.png --degradation gaussian:1.0 --gt HR.png --max_iters 300 \
      --output SR.png       # a small budget: NOT ZSSR's (up to 3,000 iterations)

Prints the iterations run, seconds per image (training + inference) and, with --gt,
PSNR/SSIM on Y.  Defaults are ZSSR's (Adam 1e-3, its learning-rate policy, 128-pixel
crops, up to 3,000 iterations, 8-transform median ensemble); not implemented: shear
augmentation, back-projection, gradual scales.  Bad input: one ``error: ...`` line,
exit code 2; the output is written atomically and never over the input.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.evaluation import zssr

_LR = flags.DEFINE_string("lr", None, "LR image (8-bit PNG/JPEG).")
_OUTPUT = flags.DEFINE_string("output", None, "SR output (.png).")
_DEGRADATION = flags.DEFINE_string(
    "degradation", "bicubic", "Kernel of the LR: bicubic | gaussian:SX[,SY,THETA] | FILE.mat|.npy")
_SCALE = flags.DEFINE_integer("scale", 2, "SR factor.")
_GT = flags.DEFINE_string("gt", None, "Optional HR ground truth for PSNR/SSIM.")
_MAX_ITERS = flags.DEFINE_integer("max_iters", 3000, "Iteration budget (ZSSR: 3,000).")
_MIN_ITERS = flags.DEFINE_integer("min_iters", 256, "Iterations between learning-rate drops.")
_CROP = flags.DEFINE_integer("crop_size", 128, "HR-father crop size.")
_FILTERS = flags.DEFINE_integer("filters", 64, "Hidden width.")
_LAYERS = flags.DEFINE_integer("num_layers", 8, "Convolutions.")
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", True, "Median over the 8 flips/rotations.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  if not _LR.value or not _OUTPUT.value:
    _cli.fail("--lr and --output are required")
  config = zssr.ZSSRFileConfig(
      lr_path=_LR.value, output_path=_OUTPUT.value, degradation=_DEGRADATION.value,
      scale=_SCALE.value, gt_path=_GT.value,
      zssr=zssr.ZSSRConfig(max_iters=_MAX_ITERS.value, min_iters=_MIN_ITERS.value,
                           crop_size=_CROP.value, filters=_FILTERS.value,
                           num_layers=_LAYERS.value, self_ensemble=_ENSEMBLE.value,
                           seed=_SEED.value))
  try:
    zssr.run_file(config)
  except (ValueError, OSError) as e:
    _cli.fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
