"""Per-image comparison of two methods' cached scores from tools/reproduce.py.

Usage:
  python tools/compare_scores.py \
      --baseline results/table5/cpu-full/partial/ZSSR__Set14.jsonl --baseline_label ZSSR \
      --candidate results/table5/cpu-full_steps100/partial/IDN-ML__kernels__Set14.jsonl \
      --candidate_label IDN-ML --steps 20,100 --margins 0,0.5
      # issue 13: "20 steps >= ZSSR" and "100 steps >= ZSSR + 0.5 dB", image by image
  python tools/compare_scores.py --baseline A.jsonl --candidate B.jsonl --steps 5 \
      --baseline_step 5 --format json
  python tools/compare_scores.py --reach \
      --baseline "results/table5/cpu-full/partial/IDN__stage-1_default____SGD__Set14.jsonl" \
      --baseline_label "naive SGD" \
      --candidate results/table5/cpu-full/partial/IDN-ML__kernels__Set14.jsonl \
      --candidate_label IDN-ML --steps 5
      # Figure 6: how many naive steps reach what 5 meta-learned steps reach

Reads the two ``partial/*.jsonl`` files (scores written image by image by
``tools/reproduce.py``), lines them up by image name and prints a markdown table:
the baseline at ``--baseline_step`` (0 for ZSSR and other one-shot methods), the candidate
at each of ``--steps``, the differences, their means, and on how many images the candidate
leads by at least ``--margins`` (one per step count, default 0).  With ``--reach``,
instead: per image and on the set's mean curves, the number of baseline steps (first
crossing, linear between the baseline's read-outs) that reaches the candidate's score at
each of ``--steps``.  Writes nothing.
Bad input (missing or unreadable file, a step count an image lacks, no shared images,
bad flag values): one ``error: ...`` line, exit 2.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli

from mlsr_tf.evaluation import compare

_BASELINE = flags.DEFINE_string("baseline", None, "Baseline's per-image cache (.jsonl).")
_CANDIDATE = flags.DEFINE_string("candidate", None, "Candidate's per-image cache (.jsonl).")
_BASELINE_STEP = flags.DEFINE_integer("baseline_step", 0, "The baseline's step count.")
_STEPS = flags.DEFINE_list("steps", None, "The candidate's step counts, e.g. 20,100.")
_MARGINS = flags.DEFINE_list("margins", None, "Required lead in dB per step count "
                             "(default 0 for each).")
_BASELINE_LABEL = flags.DEFINE_string("baseline_label", "baseline", "Baseline's name.")
_CANDIDATE_LABEL = flags.DEFINE_string("candidate_label", "candidate", "Candidate's name.")
_REACH = flags.DEFINE_bool("reach", False, "Report the baseline steps needed to reach the "
                           "candidate's score at each of --steps (Figure 6's claim).")
_FORMAT = flags.DEFINE_enum("format", "markdown", ["markdown", "json"], "Output format.")


def _numbers(flag: str, values, kind):
  try:
    return [kind(v) for v in values]
  except ValueError:
    _cli.fail(f"--{flag} must be a comma-separated list of numbers, got {','.join(values)!r}")


def main(argv):
  del argv  # Checked by _cli.parse_flags_or_exit.
  if not _BASELINE.value or not _CANDIDATE.value or not _STEPS.value:
    _cli.fail("--baseline, --candidate and --steps are required")
  steps = _numbers("steps", _STEPS.value, int)
  margins = _numbers("margins", _MARGINS.value, float) if _MARGINS.value else None
  if _REACH.value and (margins is not None or _BASELINE_STEP.value != 0):
    _cli.fail("--reach reads the baseline's whole curve: --margins and --baseline_step "
              "do not apply to it")
  labels = (_BASELINE_LABEL.value, _CANDIDATE_LABEL.value)
  try:
    baseline = compare.read_scores(_BASELINE.value)
    candidate = compare.read_scores(_CANDIDATE.value)
    if _REACH.value:
      result = compare.reach(baseline, candidate, steps)
      as_json, as_markdown = compare.reach_to_json, compare.format_reach_markdown
    else:
      result = compare.compare(baseline, candidate, steps, _BASELINE_STEP.value, margins)
      as_json, as_markdown = compare.to_json, compare.format_markdown
  except (ValueError, OSError) as e:
    _cli.fail(e)
  if _FORMAT.value == "json":
    print(json.dumps(as_json(result), indent=1))
  else:
    print(as_markdown(result, *labels), end="")


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
