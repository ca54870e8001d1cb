"""Adapts the SR network to an image (MLSR, Algorithm 2) and upscales it.

Usage:
  python tools/adapt_image.py --demo              # offline: synthetic image, PSNR before/after
  python tools/adapt_image.py --input lr.png                       # writes lr_x2.png
  python tools/adapt_image.py --input lr.png --output sr.png --steps 5 --alpha 0.01
  python tools/adapt_image.py --input lr.png --gt hr.png           # last stdout line: JSON
  python tools/adapt_image.py --input lr.png --kernel kernel_x2.mat --crops 4 --crop_size 64
  python tools/adapt_image.py --input lr.png --model idn_x2_blur --kernel gaussian:1.41421356 \
      --steps 10 --optimizer adam --alpha 1e-4   # Adam instead of the learned SGD steps
  python tools/adapt_image.py --input lr.png --model idn_x2_blur --kernel gaussian:1.41421356 \
      --step_sizes pretrained/idn_x2_blur.step_sizes.json   # one step-size matrix for all kernels
  python tools/adapt_image.py --input big.png --tile 128           # tiled final forward pass
  python tools/adapt_image.py --input_dir in/ --output_dir out/    # every image of a folder
  python tools/adapt_image.py --input lr.png --model idn_caffe \\
      --weights ../shared/weights/idn_caffe/IDN_x2.caffemodel

--model: a shipped model (default: pretrained/default.json), a spec .json, or a registered
network name together with --weights (any format tools/import_weights.py reads).
--steps/--alpha default to the model card (5 steps and the paper's step size otherwise;
idn_x2_blur's learned step sizes take Set5 at MZSR's g^d_2.0, gaussian:1.41421356, from 33.22
to 34.43 dB in its 5 default steps; from kernel width 1.69 up it is not adapted:
pretrained/MODEL_CARD.md).
--optimizer adam: plain Adam on the same self-supervised loss; --alpha (its learning rate) is
then required.
--kernel: the degradation that made the LR (builds LR_down): bicubic | gaussian:SX,SY,THETA |
FILE.mat | FILE.npy.  --gt: the last stdout line is JSON {"psnr_before", "psnr_after",
"ssim_after", "steps", "seconds"}; psnr_before is the same network without adaptation.
PNG/JPEG/BMP/TIFF, gray, RGBA (alpha: bicubic) and 16-bit (kept 16-bit) inputs; the output
is PNG.  Bad input: a one-line ``error: ...`` on stderr, exit code 2, nothing written.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.serving import adapt_image

_INPUT = flags.DEFINE_string("input", None, "LR image (PNG/JPEG/BMP/TIFF).")
_OUTPUT = flags.DEFINE_string("output", None, "SR PNG (default: <input>_x<scale>.png beside it).")
_INPUT_DIR = flags.DEFINE_string("input_dir", None, "Folder of LR images (instead of --input).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Folder for the SR PNGs (with --input_dir).")
_MODEL = flags.DEFINE_string("model", "default",
                             "Shipped model name, spec .json, or registered network name.")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights for a registered network.")
_SCALE = flags.DEFINE_integer("scale", None, "Upscaling factor (default: the model's / 2).")
_STEPS = flags.DEFINE_integer("steps", None, "Adaptation steps (default: model card).")
_ALPHA = flags.DEFINE_float("alpha", None, "SGD step size, [0, 1] pixels (default: model card); "
                            "with --optimizer adam its learning rate (required).")
_STEP_SIZES = flags.DEFINE_string(
    "step_sizes", None, "Learned step-size file (default: the model card's; excludes --alpha), "
    "e.g. pretrained/idn_x2_blur.step_sizes.json: one matrix for every kernel.")
_OPTIMIZER = flags.DEFINE_enum("optimizer", "sgd", list(adapt_image.OPTIMIZERS),
                               "Adaptation optimizer: sgd (MLSR, the model card's step sizes) "
                               "or adam (plain Adam on the same loss, e.g. --alpha 1e-4).")
_KERNEL = flags.DEFINE_string("kernel", "bicubic",
                              "bicubic | gaussian:SX,SY,THETA | FILE.mat | FILE.npy")
_CROPS = flags.DEFINE_integer("crops", None, "Adapt on this many random crops per step.")
_CROP_SIZE = flags.DEFINE_integer("crop_size", None, "Crop side in LR pixels (with --crops).")
_TILE = flags.DEFINE_integer("tile", None, "Run the final forward pass in tiles of this many "
                             "LR pixels.")
_OVERLAP = flags.DEFINE_integer("tile_overlap", None, "Tile context in LR pixels (default: "
                                "the network's measured receptive radius).")
_GT = flags.DEFINE_string("gt", None, "HR ground truth: print PSNR/SSIM JSON as the last line.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the crop positions.")
_QUIET = flags.DEFINE_bool("quiet", False, "No progress bars.")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16"],
    "Compute precision: mixed_bfloat16 is faster on CPUs with AMX-BF16 (weights stay float32; "
    "see the model card for its PSNR cost).")
_DEMO = flags.DEFINE_bool("demo", False, "Offline demo: a synthetic HR image, its bicubic LR "
                          "as input and the HR as --gt (writes demo_x<scale>.png).")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  config = adapt_image.AdaptImageConfig(
      input=_INPUT.value, output=_OUTPUT.value, input_dir=_INPUT_DIR.value,
      output_dir=_OUTPUT_DIR.value, model=_MODEL.value, weights=_WEIGHTS.value,
      scale=_SCALE.value, steps=_STEPS.value, alpha=_ALPHA.value, step_sizes=_STEP_SIZES.value,
      optimizer=_OPTIMIZER.value, kernel=_KERNEL.value,
      crops=_CROPS.value, crop_size=_CROP_SIZE.value, tile=_TILE.value,
      overlap=_OVERLAP.value, gt=_GT.value, seed=_SEED.value, quiet=_QUIET.value,
      demo=_DEMO.value, precision=_PRECISION.value)
  try:
    adapt_image.run(config)
  except (ValueError, OSError) as e:
    _cli.fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
