"""Reproduces the MLSR paper's Tables 3, 4, 5 and adaptation curves (writes results/).

Usage:
  python tools/reproduce.py --table 5 --config cpu   # ~17 min on 2 CPU cores (T3 ~15, T4 ~8)
  python tools/reproduce.py --table 3 --config cpu --workdir runs/reproduce_cpu
  python tools/reproduce.py --table 4 --config paper --workdir runs/reproduce_paper  # GPU
  python tools/reproduce.py --table 3 --config cpu \
      --meta_weights bicubic_train291=runs/x/model.weights.h5   # evaluate a checkpoint
  python tools/reproduce.py --table 5 --config paper --dry_run  # only write config.json
  python tools/reproduce.py --table 4 --config cpu-full --workdir runs/reproduce_cpu_full
      # whole images, stage-1 IDN, 0/5/20/100 steps: hours; rerun to resume
  python tools/reproduce.py --table 4 --config cpu-full --workdir runs/reproduce_cpu_full \
      --cached_only   # the table of the images scored so far (from --out's partial/)
  python tools/reproduce.py --table 4 --config cpu-full --steps 0,5,20 \
      --out results/table4/cpu-full_steps20 --workdir runs/reproduce_cpu_full  # a shorter run
  python tools/reproduce.py --table 5 --config cpu-full --sets Set5 \
      --methods "IDN-ML (kernels),IDN (idn_x2_blur) + SGD" --steps 0,5,20   # part of a table
  python tools/reproduce.py --table 5 --config cpu --alpha 0.65025 \
      --workdir runs/reproduce_cpu_a065 --out results/table5/cpu_alpha0.65  # step-size ablation
  python tools/reproduce.py --table 5 --config cpu-val --out runs/screen_CANDIDATE \
      --meta_weights recipe_kernels=runs/CANDIDATE/model.weights.h5
      # choose among kernel meta-training runs on held-out images and validation kernels

Writes ``table.md``, ``table.csv``, ``per_image.csv``, ``curves.csv``/``curves.png``,
``config.json`` and ``results.json`` into ``--out`` (default
``results/table<N>/<config>``).  Meta-training runs go to ``--workdir/<run name>``
and resume when rerun; every image's scores are appended to ``--out/partial/`` as soon as
they exist, so a rerun after an interruption (or in the next session) skips the images
already done, as long as nothing that determines them changed (method, network and weights,
steps, step sizes).  ``cpu`` configs are NOT paper scale (the caption says what was cut);
``cpu-full`` runs whole images with the shipped networks (Tables 3 and 4: stage-1 IDN and
the best CPU meta-training recipe; Table 5: ``idn_x2_blur`` and its kernel meta-training,
ZSSR at its full budget; hours per image set); ``paper`` configs need a GPU.
Bad input: one ``error: ...`` line, exit 2.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # First: quiets TensorFlow's C++ start-up lines.

from mlsr_tf.evaluation import reproduce

_TABLE = flags.DEFINE_integer("table", None, "Paper table: 3, 4 or 5.")
_CONFIG = flags.DEFINE_string(
    "config", "cpu", "cpu (small, this machine), cpu-full (whole images, the shipped networks, "
    "hours, resumable), cpu-val (table 5 only: held-out images and validation kernels, to "
    "choose a kernel meta-training run) or paper (GPU).")
_WORKDIR = flags.DEFINE_string("workdir", "runs/reproduce", "Parent folder of meta-training runs.")
_OUT = flags.DEFINE_string("out", None, "Output folder (default results/table<N>/<config>).")
_META_WEIGHTS = flags.DEFINE_list(
    "meta_weights", [], "RUN=WEIGHTS pairs: evaluate these meta-trained weights instead of "
    "meta-training run RUN (names in config.json: meta_runs[].name).")
_META_ITERATIONS = flags.DEFINE_integer("meta_iterations", None,
                                        "Override every meta run's iteration count.")
_DATA_ROOT = flags.DEFINE_string("data_root", None, "Data root (default $MLSR_DATA or ../shared).")
_ALPHA = flags.DEFINE_float("alpha", None, "Override the step size (meta-training and tests; "
                            "[0, 1] pixels).")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Only validate and write config.json.")
_STEPS = flags.DEFINE_list("steps", None, "Override the adaptation step counts of every "
                           "adapting method, e.g. 0,5,20 (the curve stops at the largest).")
_SETS = flags.DEFINE_list("sets", None, "Only these image sets of the table (e.g. Set5,Set14 "
                          "or Urban100[001-040]).")
_METHODS = flags.DEFINE_list("methods", None, "Only these methods of the table, by label "
                             "(e.g. 'IDN-ML (kernels)').")
_CACHED_ONLY = flags.DEFINE_bool(
    "cached_only", False, "Compute nothing: write the table of the images already scored in "
    "--out/partial/ (progress of a long or interrupted run; cells count their images).")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  if _TABLE.value is None:
    _cli.fail("--table is required (3, 4 or 5)")
  steps = None
  if _STEPS.value is not None:
    try:
      steps = [int(v) for v in _STEPS.value]
    except ValueError:
      _cli.fail(f"--steps must be non-negative integers, got {','.join(_STEPS.value)!r}")
  meta_weights = {}
  for pair in _META_WEIGHTS.value:
    name, sep, path = pair.partition("=")
    if not sep or not name or not path:
      _cli.fail(f"--meta_weights entries must be RUN=WEIGHTS, got {pair!r}")
    meta_weights[name] = path
  try:
    reproduce.run(_TABLE.value, _CONFIG.value, _WORKDIR.value, _OUT.value, meta_weights,
                  _META_ITERATIONS.value, _DATA_ROOT.value, _DRY_RUN.value, _ALPHA.value,
                  cached_only=_CACHED_ONLY.value, steps=steps, sets=_SETS.value,
                  methods=_METHODS.value)
  except (ValueError, OSError) as e:
    _cli.fail(e)


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
