"""Combines learned step-size files into one whose matrix depends on the blur kernel's width.

Usage:
  python tools/band_step_sizes.py --base W.step_sizes.json \\
      --band 1.69=heavy_blur.step_sizes.json --output banded.step_sizes.json

Adaptation (adapt_image, evaluate, reproduce, the SavedModel's ``adapt_learned``) then uses
the ``--base`` matrix for bicubic and for kernels whose width (``kernel_sigma``: the RMS
Gaussian sigma in HR pixels, see mlsr_tf/data/degradation.py) is below the first band, and a
band's matrix from its ``min_kernel_sigma`` up.  All files must be learned for the same network
(``tools/meta_train.py --learn_step_sizes``).  The output is written atomically and must not
be one of the inputs.  Bad input: one ``error: ...`` line, exit code 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.meta import step_sizes

_BASE = flags.DEFINE_string("base", None, "Step-size file for bicubic and narrow kernels.")
_BANDS = flags.DEFINE_multi_string("band", [], "MIN_KERNEL_SIGMA=FILE (repeatable).")
_OUTPUT = flags.DEFINE_string("output", None, "Step-size file to write.")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  if not _BASE.value or not _OUTPUT.value or not _BANDS.value:
    _cli.fail("--base, --output and at least one --band are required")
  bands = []
  for text in _BANDS.value:
    low, _, path = text.partition("=")
    try:
      low = float(low)
    except ValueError:
      low = None
    if low is None or not path:
      _cli.fail(f"--band must be MIN_KERNEL_SIGMA=FILE, got {text!r}")
    bands.append((low, path))
  try:
    step_sizes.combine_files(_BASE.value, bands, _OUTPUT.value)
  except (ValueError, OSError) as e:
    _cli.fail(e)
  print(f"wrote {_OUTPUT.value} (base {_BASE.value}; bands "
        f"{', '.join(f'>= {low:g}: {path}' for low, path in bands)})")


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
