"""Mean PSNR/SSIM (Y, BT.601, border = scale) on SR benchmarks.

Usage:
  python tools/evaluate.py --model bicubic --datasets Set5,Set14,B100,Urban100 --scale 2
  python tools/evaluate.py --model bicubic --datasets Set5 --scale 4 --format json
  python tools/evaluate.py --model default --datasets Set5 --adapt_steps 0,5,20 --alpha 0.1
  python tools/evaluate.py --model idn --weights W.weights.h5 --step_sizes W.step_sizes.json \
      --datasets Urban100 --max_images 40 --adapt_steps 0,5,15
  python tools/evaluate.py --model zssr --weights W --datasets Set5 --scale 2 \
      --degradation gaussian:1.2,1.2,0
  python tools/evaluate.py --model idn_caffe \
      --weights ../shared/weights/idn_caffe/IDN_x2.caffemodel --datasets Set5 --scale 2 \
      --protocol idn-caffe
  python tools/evaluate.py --model idn_caffe --weights W --datasets Set5 --scale 2 \
      --degradation gaussian:1.2,1.2,0 --adapt_steps 0,5,20 [--alpha A] [--finetune adam]

With ``--format json`` the last line of stdout is
``{"Set5": {"psnr": ..., "ssim": ..., "images": 5}, ...}``.  Progress goes to
stderr.  Bad input: a one-line ``error: ...`` on stderr and exit code 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.evaluation import evaluate as evaluate_lib
from mlsr_tf.data import datasets as datasets_lib

_MODEL = flags.DEFINE_string("model", "bicubic", "bicubic, or a network name (needs --weights).")
_WEIGHTS = flags.DEFINE_string("weights", None, "Weights file for a network model.")
_DATASETS = flags.DEFINE_list("datasets", list(datasets_lib.BENCHMARKS),
                              "Comma-separated benchmark names.")
_SCALE = flags.DEFINE_integer("scale", 2, "SR factor.")
_DEGRADATION = flags.DEFINE_string(
    "degradation", "bicubic", "How LR is made: bicubic | gaussian:SX,SY,THETA | FILE.mat | FILE.npy.")
_FORMAT = flags.DEFINE_string("format", "markdown", "Report format: markdown or json.")
_DATA_ROOT = flags.DEFINE_string("data_root", None, "Data root (default $MLSR_DATA or ../shared).")
_ADAPT_STEPS = flags.DEFINE_list(
    "adapt_steps", None,
    "With a network: MLSR test-time adaptation, one column per step count (e.g. 0,5,20,100).")
_ALPHA = flags.DEFINE_float("alpha", 0.65025,
                            "Adaptation step size for [0, 1] pixels (paper's 1e-5 at 0..255, L2).")
_STEP_SIZES = flags.DEFINE_string(
    "step_sizes", None,
    "Learned per-step, per-tensor step sizes (a meta_train step_sizes.json) instead of "
    "--alpha; default: those of a shipped --model that has them, unless --alpha is given.")
_FINETUNE = flags.DEFINE_enum("finetune", "sgd", ["sgd", "adam"],
                              "Adaptation optimizer (adam: the naive fine-tuning baseline).")
_CROPS = flags.DEFINE_integer("crops", None,
                              "With --adapt_steps: adapt on this many random LR crops per step.")
_CROP_SIZE = flags.DEFINE_integer("crop_size", None, "Crop side in LR pixels (with --crops).")
_PRECISION = flags.DEFINE_enum(
    "precision", "float32", ["float32", "mixed_bfloat16"],
    "A network's compute precision (mixed_bfloat16: faster on AMX CPUs; weights float32).")
_MAX_IMAGES = flags.DEFINE_integer("max_images", 0,
                                   "Score the first N images of each set (0: all).")
_PROTOCOL = flags.DEFINE_string(
    "protocol", "standard",
    "standard | idn-caffe (Y only, float-bicubic LR on Y, as the IDN authors scored).")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  from mlsr_tf import pretrained  # pylint: disable=g-import-not-at-top
  model, weights = pretrained.resolve(_MODEL.value, _WEIGHTS.value)  # --model default
  options = {}
  if _CROPS.value is not None or _CROP_SIZE.value is not None:
    if not (_CROPS.value and _CROP_SIZE.value and _CROPS.value > 0 and _CROP_SIZE.value > 0):
      _cli.fail(f"--crops and --crop_size go together and must be positive, got "
                f"{_CROPS.value!r} and {_CROP_SIZE.value!r}")
  if _ADAPT_STEPS.value:
    from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
    try:
      steps = [int(s) for s in _ADAPT_STEPS.value]
    except ValueError:
      _cli.fail(f"--adapt_steps must be integers, got {_ADAPT_STEPS.value!r}")
    if any(s < 0 for s in steps) or not (_ALPHA.value >= 0 and _ALPHA.value < float("inf")):
      _cli.fail(f"--adapt_steps must be >= 0 and --alpha finite and >= 0, got "
                f"{steps!r} and {_ALPHA.value!r}")
    step_sizes = _STEP_SIZES.value
    if step_sizes is None and not _ALPHA.present and _WEIGHTS.value is None:
      step_sizes = pretrained.shipped_step_sizes(_MODEL.value)
    elif step_sizes is not None and _ALPHA.present:
      _cli.fail(f"--step_sizes and --alpha exclude each other, got {step_sizes!r} and "
                f"{_ALPHA.value!r}")
    evaluate_lib.register_upscaler(model, adaptation.eval_upscaler_factory)
    options = dict(adapt_steps=steps, alpha=_ALPHA.value, finetune=_FINETUNE.value,
                   crops=_CROPS.value, crop_size=_CROP_SIZE.value,
                   step_sizes=None if step_sizes is None else str(step_sizes))
  config = evaluate_lib.EvalConfig(
      model=model, weights=weights, datasets=_DATASETS.value,
      scale=_SCALE.value, degradation=_DEGRADATION.value, data_root=_DATA_ROOT.value,
      output_format=_FORMAT.value, protocol=_PROTOCOL.value, options=options,
      precision=_PRECISION.value, max_images=_MAX_IMAGES.value)
  try:
    evaluate_lib.run(config)
  except (ValueError, OSError) as e:
    _cli.fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
