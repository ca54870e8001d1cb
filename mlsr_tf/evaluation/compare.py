"""Per-image comparison of two methods' cached scores (e.g. IDN-ML against ZSSR).

The paper's tables compare means; several of the project's claims are per image ("20
adaptation steps are at least ZSSR on the same image and kernel; 100 steps are ZSSR +
0.5 dB").  This module reads two of ``reproduce``'s per-image caches
(``<out>/partial/<method>__<set>.jsonl``: one JSON line per image, ``{"key": fingerprint,
"entry": {"name", "psnr": {steps: dB}, ...}}``) and lines them up by image name.
``reach`` answers Figure 6's kind of claim ("5 meta-learned steps are worth about 350
naive steps"): how many steps the baseline's curve needs to reach the candidate's score.

Conventions: PSNR in dB as ``reproduce`` scored it (Y of BT.601, border shaved by the
scale); a cache may hold lines of older settings (another fingerprint), and only the lines
with the fingerprint of its last complete line -- the setting that wrote it last -- are
read, the others counted.  A line cut short by an interruption is skipped, as the cache
itself does.  Pure: reads files, writes nothing.
"""

import dataclasses
import json
import math
import pathlib
import statistics
from typing import Sequence


@dataclasses.dataclass(frozen=True)
class CachedScores:
  """One cache file: ``psnr[name][steps]`` in file order, and what was skipped."""
  path: str
  key: str
  psnr: dict
  other_setting_lines: int


def read_scores(path) -> CachedScores:
  """Reads a ``reproduce`` per-image cache; ValueError naming the file if unusable."""
  path = pathlib.Path(path)
  if path.is_dir():
    raise ValueError(f"score file '{path}' is a directory")
  if not path.exists():
    raise ValueError(f"no such score file: '{path}'")
  if not path.is_file():  # A FIFO would block the read.
    raise ValueError(f"score file '{path}' is not a regular file")
  try:
    text = path.read_text(encoding="utf-8")
  except UnicodeDecodeError:
    raise ValueError(f"score file '{path}' is not text (UTF-8 JSON lines)") from None
  records = []
  for line in text.splitlines():
    try:
      record = json.loads(line)
    except json.JSONDecodeError:
      continue  # An interrupted append.
    if (isinstance(record, dict) and isinstance(record.get("entry"), dict)
        and isinstance(record["entry"].get("psnr"), dict) and "name" in record["entry"]):
      records.append(record)
  if not records:
    raise ValueError(f"score file '{path}' holds no per-image score lines of "
                     "tools/reproduce.py")
  key = records[-1].get("key")
  psnr, others = {}, 0
  for record in records:
    if record.get("key") != key:
      others += 1
      continue
    entry = record["entry"]
    try:
      scores = {int(k): float(v) for k, v in entry["psnr"].items()}
    except (TypeError, ValueError):
      raise ValueError(f"{path}: image {entry['name']!r} has non-numeric scores "
                       f"{entry['psnr']!r}") from None
    psnr[str(entry["name"])] = scores
  return CachedScores(str(path), str(key), psnr, others)


@dataclasses.dataclass(frozen=True)
class Comparison:
  """Per image: the baseline's score and the candidate's at each of ``steps``."""
  baseline: CachedScores
  baseline_step: int
  candidate: CachedScores
  steps: tuple
  margins: tuple
  rows: tuple        # (name, baseline dB, (candidate dB per step, ...))
  only_baseline: tuple
  only_candidate: tuple

  def differences(self, index: int) -> list:
    return [row[2][index] - row[1] for row in self.rows]

  def mean(self, values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)

  def holds(self, index: int) -> int:
    """Images where candidate at ``steps[index]`` >= baseline + ``margins[index]``."""
    # A hair of tolerance so that a margin of 0 counts exact ties as holding.
    return sum(d >= self.margins[index] - 1e-9 for d in self.differences(index))


def _score(scores: CachedScores, name: str, step: int) -> float:
  values = scores.psnr[name]
  if step not in values:
    raise ValueError(f"{scores.path}: image {name!r} has no score at {step} steps "
                     f"(it has {sorted(values)})")
  return values[step]


def compare(baseline: CachedScores, candidate: CachedScores, steps: Sequence[int],
            baseline_step: int = 0, margins: Sequence[float] | None = None) -> Comparison:
  """Lines up the two caches by image name (baseline's order); ValueError if none match.

  ``margins[i]`` is the claim's required lead at ``steps[i]`` (default 0 for every step).
  """
  steps = tuple(int(s) for s in steps)
  if not steps or any(s < 0 for s in steps):
    raise ValueError(f"steps must be one or more non-negative integers, got {list(steps)}")
  margins = tuple(float(m) for m in (margins if margins is not None else [0.0] * len(steps)))
  if len(margins) != len(steps):
    raise ValueError(f"one margin per step count is needed: {len(steps)} steps {list(steps)}, "
                     f"{len(margins)} margins {list(margins)}")
  if not all(math.isfinite(m) for m in margins):
    raise ValueError(f"margins must be finite numbers, got {list(margins)}")
  common = [n for n in baseline.psnr if n in candidate.psnr]
  if not common:
    raise ValueError(f"{baseline.path} and {candidate.path} share no image names")
  rows = tuple((name, _score(baseline, name, baseline_step),
                tuple(_score(candidate, name, s) for s in steps)) for name in common)
  return Comparison(
      baseline, int(baseline_step), candidate, steps, margins, rows,
      tuple(n for n in baseline.psnr if n not in candidate.psnr),
      tuple(n for n in candidate.psnr if n not in baseline.psnr))


def _file_notes(files) -> list:
  """Lines on images only one file has and on lines of another setting that were skipped."""
  lines = []
  for label, scores, only in files:
    if only:
      lines.append(f"- only in {label}'s file ({len(only)}): {', '.join(only)}")
    if scores.other_setting_lines:
      lines.append(f"- {scores.path}: {scores.other_setting_lines} line(s) of another "
                   "setting skipped")
  return lines


def format_markdown(comparison: Comparison, baseline_label: str = "baseline",
                    candidate_label: str = "candidate") -> str:
  """A per-image markdown table, the means, and how many images meet each margin."""
  c = comparison
  base = f"{baseline_label} /{c.baseline_step}"
  heads = [f"{candidate_label} /{s}" for s in c.steps]
  diffs = [f"/{s} − {baseline_label}" for s in c.steps]
  lines = ["| image | " + " | ".join([base] + heads + diffs) + " |",
           "|---" * (1 + 1 + 2 * len(c.steps)) + "|"]
  for name, b, cands in c.rows:
    cells = [f"{b:.3f}"] + [f"{v:.3f}" for v in cands] + [f"{v - b:+.2f}" for v in cands]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  means = ([f"{c.mean([r[1] for r in c.rows]):.3f}"]
           + [f"{c.mean([r[2][i] for r in c.rows]):.3f}" for i in range(len(c.steps))]
           + [f"**{c.mean(c.differences(i)):+.2f}**" for i in range(len(c.steps))])
  lines.append(f"| mean of {len(c.rows)} | " + " | ".join(means) + " |")
  lines.append("")
  for i, s in enumerate(c.steps):
    lines.append(f"- {candidate_label} at {s} steps ≥ {baseline_label} + {c.margins[i]:g} dB: "
                 f"{c.holds(i)} of {len(c.rows)} images; mean lead "
                 f"{c.mean(c.differences(i)):+.3f} dB.")
  lines += _file_notes(((baseline_label, c.baseline, c.only_baseline),
                        (candidate_label, c.candidate, c.only_candidate)))
  return "\n".join(lines) + "\n"


def to_json(comparison: Comparison) -> dict:
  c = comparison
  return {
      "baseline": c.baseline.path, "baseline_step": c.baseline_step,
      "candidate": c.candidate.path, "steps": list(c.steps), "margins": list(c.margins),
      "images": [{"name": n, "baseline": b, "candidate": dict(zip(map(str, c.steps), v))}
                 for n, b, v in c.rows],
      "mean_difference": {str(s): c.mean(c.differences(i)) for i, s in enumerate(c.steps)},
      "holds": {str(s): c.holds(i) for i, s in enumerate(c.steps)},
      "only_baseline": list(c.only_baseline), "only_candidate": list(c.only_candidate),
  }


def steps_to_reach(curve: dict, target: float) -> float | None:
  """The first step count at which ``curve`` (``{steps: dB}``) reaches ``target`` dB.

  The curves are read out at a few step counts only, so between two read-outs the curve is
  taken as linear (an estimate, not a measurement).  The *first* crossing is returned,
  since naive Adam curves dip and recover and may fall back later; None if no read-out
  reaches ``target``.
  """
  points = sorted((int(s), float(v)) for s, v in curve.items())
  if not points:
    raise ValueError("the curve has no points")
  if points[0][1] >= target:
    return float(points[0][0])
  for (s0, v0), (s1, v1) in zip(points, points[1:]):
    if v1 >= target:  # v0 < target <= v1, so v1 > v0.
      return s0 + (s1 - s0) * (target - v0) / (v1 - v0)
  return None


def mean_curve(curves: Sequence[dict]) -> dict:
  """The mean of several ``{steps: dB}`` curves at the read-outs all of them have."""
  if not curves:
    raise ValueError("no curves to average")
  read_outs = sorted(set.intersection(*(set(c) for c in curves)))
  return {s: math.fsum(c[s] for c in curves) / len(curves) for s in read_outs}


@dataclasses.dataclass(frozen=True)
class Reach:
  """Baseline steps needed to reach the candidate's score at each of ``steps``."""
  baseline: CachedScores
  candidate: CachedScores
  steps: tuple
  rows: tuple          # (name, (candidate dB per step, ...), (baseline steps or None, ...))
  curve_steps: tuple   # The baseline's read-outs that every shared image has.
  mean_curve: dict     # Baseline mean dB over the shared images, per read-out.
  mean_targets: tuple  # Candidate mean dB per step.
  only_baseline: tuple
  only_candidate: tuple

  def mean_curve_reach(self, index: int) -> float | None:
    return steps_to_reach(self.mean_curve, self.mean_targets[index])

  def reached(self, index: int) -> list:
    return [row[2][index] for row in self.rows if row[2][index] is not None]


def reach(baseline: CachedScores, candidate: CachedScores, steps: Sequence[int]) -> Reach:
  """For each shared image: the baseline's steps to reach the candidate's score at ``steps``.

  Also the same on the mean curves (the set's mean PSNR per step count, as the paper's
  Figure 6 plots), over the baseline read-outs every shared image has.
  """
  steps = tuple(int(s) for s in steps)
  if not steps or any(s < 0 for s in steps):
    raise ValueError(f"steps must be one or more non-negative integers, got {list(steps)}")
  common = [n for n in baseline.psnr if n in candidate.psnr]
  if not common:
    raise ValueError(f"{baseline.path} and {candidate.path} share no image names")
  mean = mean_curve([baseline.psnr[n] for n in common])
  curve_steps = tuple(mean)
  if len(curve_steps) < 2:
    raise ValueError(f"{baseline.path}: the images share fewer than two step counts "
                     f"({list(curve_steps)}), so there is no curve to read")
  rows = []
  for name in common:
    targets = tuple(_score(candidate, name, s) for s in steps)
    curve = {s: baseline.psnr[name][s] for s in curve_steps}
    rows.append((name, targets, tuple(steps_to_reach(curve, t) for t in targets)))
  mean_targets = tuple(math.fsum(r[1][i] for r in rows) / len(rows) for i in range(len(steps)))
  return Reach(baseline, candidate, steps, tuple(rows), curve_steps, mean, mean_targets,
               tuple(n for n in baseline.psnr if n not in candidate.psnr),
               tuple(n for n in candidate.psnr if n not in baseline.psnr))


def _steps_text(value: float | None, last: int) -> str:
  return f"> {last}" if value is None else f"{value:.0f}"


def format_reach_markdown(result: Reach, baseline_label: str = "baseline",
                          candidate_label: str = "candidate") -> str:
  """Per image: the candidate's score and the baseline steps that reach it; then the means."""
  r = result
  last = r.curve_steps[-1]
  heads = [f"{candidate_label} /{s}" for s in r.steps]
  needs = [f"{baseline_label} steps to reach /{s}" for s in r.steps]
  lines = ["| image | " + " | ".join(heads + needs) + " |",
           "|---" * (1 + 2 * len(r.steps)) + "|"]
  for name, targets, reached in r.rows:
    cells = [f"{t:.3f}" for t in targets] + [_steps_text(v, last) for v in reached]
    lines.append(f"| {name} | " + " | ".join(cells) + " |")
  lines.append("")
  for i, s in enumerate(r.steps):
    reached = r.reached(i)
    # An image that never reaches the target counts as more than the last read-out.
    median = statistics.median(math.inf if row[2][i] is None else row[2][i] for row in r.rows)
    median = _steps_text(None if math.isinf(median) else median, last)
    on_mean = r.mean_curve_reach(i)
    lines.append(
        f"- {candidate_label} at {s} steps: mean {r.mean_targets[i]:.3f} dB over "
        f"{len(r.rows)} images; {baseline_label}'s mean curve "
        + (f"does not reach it within {last}" if on_mean is None
           else f"reaches it at about {on_mean:.0f}")
        + f" steps; per image, median {median} steps, "
        f"{len(reached)} of {len(r.rows)} images reached within {last} steps.")
  lines.append(f"- {baseline_label}'s read-outs: {', '.join(map(str, r.curve_steps))} steps "
               "(linear between them).")
  lines += _file_notes(((baseline_label, r.baseline, r.only_baseline),
                        (candidate_label, r.candidate, r.only_candidate)))
  return "\n".join(lines) + "\n"


def reach_to_json(result: Reach) -> dict:
  r = result
  return {
      "baseline": r.baseline.path, "candidate": r.candidate.path, "steps": list(r.steps),
      "baseline_read_outs": list(r.curve_steps),
      "images": [{"name": n, "candidate": dict(zip(map(str, r.steps), t)),
                  "baseline_steps_to_reach": dict(zip(map(str, r.steps), v))}
                 for n, t, v in r.rows],
      "mean_candidate": dict(zip(map(str, r.steps), r.mean_targets)),
      "mean_curve": {str(s): v for s, v in r.mean_curve.items()},
      "mean_curve_steps_to_reach": {str(s): r.mean_curve_reach(i)
                                    for i, s in enumerate(r.steps)},
      "only_baseline": list(r.only_baseline), "only_candidate": list(r.only_candidate),
  }
