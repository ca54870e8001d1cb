"""mlsr_tf.evaluation.compare: per-image comparison of two reproduce caches."""

import json

import pytest

from mlsr_tf.evaluation import compare


def _write(path, lines, tail=""):
  path.write_text("".join(json.dumps(line) + "\n" for line in lines) + tail, encoding="utf-8")
  return path


def _line(name, psnr, key="k1"):
  return {"key": key, "entry": {"name": name, "psnr": {str(k): v for k, v in psnr.items()},
                                "ssim": {}}}


@pytest.fixture
def files(tmp_path):
  baseline = _write(tmp_path / "zssr.jsonl", [
      _line("a", {0: 30.0}), _line("b", {0: 25.0}), _line("only_base", {0: 20.0})])
  candidate = _write(tmp_path / "ml.jsonl", [
      _line("old", {0: 1.0, 20: 1.0, 100: 1.0}, key="k0"),  # Another setting: skipped.
      _line("b", {0: 24.0, 20: 25.0, 100: 25.4}),
      _line("a", {0: 29.0, 20: 30.5, 100: 30.6}),
      _line("extra", {0: 10.0, 20: 11.0, 100: 12.0})],
      tail='{"key": "k1", "entry": {"name": "cut')  # An interrupted append.
  return baseline, candidate


def test_differences_means_and_margins_per_image(files):
  baseline, candidate = (compare.read_scores(p) for p in files)
  assert candidate.other_setting_lines == 1 and "cut" not in candidate.psnr
  result = compare.compare(baseline, candidate, [20, 100], margins=[0, 0.5])
  assert [r[0] for r in result.rows] == ["a", "b"]  # The baseline's order.
  assert result.differences(0) == pytest.approx([0.5, 0.0])
  assert result.differences(1) == pytest.approx([0.6, 0.4])
  assert result.holds(0) == 2  # A tie meets a margin of 0.
  assert result.holds(1) == 1  # b leads by 0.4 < 0.5.
  assert result.only_baseline == ("only_base",) and result.only_candidate == ("extra",)
  data = compare.to_json(result)
  assert data["mean_difference"]["100"] == pytest.approx(0.5)
  assert data["holds"] == {"20": 2, "100": 1}
  text = compare.format_markdown(result, "ZSSR", "IDN-ML")
  assert "| a | 30.000 | 30.500 | 30.600 | +0.50 | +0.60 |" in text
  assert "IDN-ML at 100 steps ≥ ZSSR + 0.5 dB: 1 of 2 images" in text
  assert "only in ZSSR's file (1): only_base" in text and "1 line(s) of another setting" in text


def test_the_last_setting_of_a_file_is_the_one_read(tmp_path):
  path = _write(tmp_path / "s.jsonl", [_line("a", {0: 1.0}, "old"), _line("a", {0: 2.0}, "new")])
  scores = compare.read_scores(path)
  assert scores.key == "new" and scores.psnr == {"a": {0: 2.0}}


def test_bad_inputs_are_refused_naming_the_file(files, tmp_path):
  baseline, candidate = (compare.read_scores(p) for p in files)
  with pytest.raises(ValueError, match=r"ml.jsonl: image 'a' has no score at 5 steps"):
    compare.compare(baseline, candidate, [5])
  with pytest.raises(ValueError, match="one margin per step count"):
    compare.compare(baseline, candidate, [20, 100], margins=[0.5])
  with pytest.raises(ValueError, match="non-negative"):
    compare.compare(baseline, candidate, [-1])
  with pytest.raises(ValueError, match="finite"):
    compare.compare(baseline, candidate, [20], margins=[float("nan")])
  other = compare.read_scores(_write(tmp_path / "o.jsonl", [_line("z", {0: 1.0})]))
  with pytest.raises(ValueError, match="share no image names"):
    compare.compare(baseline, other, [0])
  (tmp_path / "empty.jsonl").write_text("not json\n")
  (tmp_path / "binary.jsonl").write_bytes(b"\xff\xfe\x00")
  (tmp_path / "folder.jsonl").mkdir()
  for name, message in [("missing.jsonl", "no such score file"),
                        ("empty.jsonl", "holds no per-image score lines"),
                        ("binary.jsonl", "is not text"), ("folder.jsonl", "is a directory")]:
    with pytest.raises(ValueError, match=message) as error:
      compare.read_scores(tmp_path / name)
    assert name in str(error.value)


def test_steps_to_reach_is_the_first_crossing_linear_between_read_outs():
  curve = {0: 30.0, 10: 31.0, 50: 33.0}
  assert compare.steps_to_reach(curve, 30.5) == pytest.approx(5.0)
  assert compare.steps_to_reach(curve, 32.0) == pytest.approx(30.0)
  assert compare.steps_to_reach(curve, 29.0) == 0.0  # Reached before any step.
  assert compare.steps_to_reach(curve, 33.5) is None
  dipping = {0: 30.0, 5: 29.0, 20: 32.0, 100: 30.0}  # An Adam-like dip, then a fall back.
  assert compare.steps_to_reach(dipping, 31.0) == pytest.approx(15.0)
  with pytest.raises(ValueError, match="no points"):
    compare.steps_to_reach({}, 1.0)


def test_reach_per_image_and_on_the_mean_curve(tmp_path):
  naive = compare.read_scores(_write(tmp_path / "naive.jsonl", [
      _line("a", {0: 30.0, 10: 31.0, 100: 32.0, 350: 33.0}),
      _line("b", {0: 20.0, 10: 20.5, 100: 21.0, 350: 21.5}),
      _line("c", {0: 1.0, 10: 2.0})]))  # Not in the candidate's file.
  meta = compare.read_scores(_write(tmp_path / "meta.jsonl", [
      _line("b", {0: 20.0, 5: 22.0}), _line("a", {0: 30.0, 5: 31.5})]))
  result = compare.reach(naive, meta, [5])
  assert [row[0] for row in result.rows] == ["a", "b"]
  assert result.rows[0][2][0] == pytest.approx(55.0)  # 31.5: halfway from 10 to 100.
  assert result.rows[1][2][0] is None  # b never reaches 22.0.
  assert result.curve_steps == (0, 10, 100, 350)
  assert result.mean_targets[0] == pytest.approx(26.75)
  # Mean curve 25.0, 25.75, 26.5, 27.25: 26.75 is a third of the way from 100 to 350.
  assert result.mean_curve_reach(0) == pytest.approx(100 + 250 / 3)
  text = compare.format_reach_markdown(result, "naive", "IDN-ML")
  assert "| a | 31.500 | 55 |" in text and "| b | 22.000 | > 350 |" in text
  assert "reaches it at about 183 steps" in text
  assert "median > 350 steps, 1 of 2 images reached within 350 steps" in text
  data = compare.reach_to_json(result)
  assert data["images"][1]["baseline_steps_to_reach"] == {"5": None}
  assert data["only_baseline"] == ["c"]


def test_reach_needs_a_curve_and_the_candidates_steps(tmp_path):
  one_point = compare.read_scores(_write(tmp_path / "zssr.jsonl", [_line("a", {0: 30.0})]))
  meta = compare.read_scores(_write(tmp_path / "meta.jsonl", [_line("a", {0: 30.0, 5: 31.0})]))
  with pytest.raises(ValueError, match="fewer than two step counts"):
    compare.reach(one_point, meta, [5])
  with pytest.raises(ValueError, match="no score at 20 steps"):
    compare.reach(meta, meta, [20])
  with pytest.raises(ValueError, match="non-negative"):
    compare.reach(meta, meta, [-5])


def test_reach_says_when_the_mean_curve_never_gets_there(tmp_path):
  naive = compare.read_scores(_write(tmp_path / "n.jsonl", [_line("a", {0: 30.0, 50: 30.5})]))
  meta = compare.read_scores(_write(tmp_path / "m.jsonl", [_line("a", {5: 31.0})]))
  text = compare.format_reach_markdown(compare.reach(naive, meta, [5]), "naive", "IDN-ML")
  assert "naive's mean curve does not reach it within 50 steps; per image, median > 50" in text
