"""End-to-end tests of tools/adapt_image.py (subprocesses, a tiny model from a spec JSON)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io
from mlsr_tf.data import synthetic

REPO = paths.REPO_ROOT
KERNEL_DIR = paths.data_root() / "kernels" / "zssr_bsd100_100_x2"


def _tool(*args):
  return subprocess.run([sys.executable, str(REPO / "tools" / "adapt_image.py"), *args],
                        capture_output=True, text=True, cwd=str(REPO), timeout=180)


def _assert_one_line_error(proc, pattern):
  assert proc.returncode == 2, (proc.stdout, proc.stderr)
  lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error: ")]
  assert len(lines) == 1 and pattern in lines[0], proc.stderr


@pytest.fixture(name="work", scope="module")
def fixture_work(tmp_path_factory):
  """A folder with a tiny-model spec, an HR image and its bicubic LR."""
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  work = tmp_path_factory.mktemp("adapt_image")
  registry.build_model("tiny", scale=2).save_weights(str(work / "tiny.weights.h5"))
  (work / "tiny.json").write_text(json.dumps({
      "model": "tiny", "scale": 2, "channels": 3, "weights": "tiny.weights.h5",
      "adaptation": {"steps": 2, "alpha": 0.05}}))
  hr = synthetic.demo_image(64, 80)
  image_io.write_png(work / "hr.png", hr)
  image_io.write_png(work / "lr.png", deg.degrade(hr, deg.bicubic(2)))
  return work


def test_gt_json_default_output_and_progress(work):
  proc = _tool("--input", str(work / "lr.png"), "--model", str(work / "tiny.json"),
               "--gt", str(work / "hr.png"), "--steps", "3")
  assert proc.returncode == 0, proc.stderr
  out = work / "lr_x2.png"
  assert image_io.read_image(out).shape == (64, 80, 3)
  lines = proc.stdout.strip().splitlines()
  result = json.loads(lines[-1])
  assert set(result) == {"psnr_before", "psnr_after", "ssim_after", "steps", "seconds"}
  assert result["steps"] == 3 and result["seconds"] > 0
  assert np.isfinite(result["psnr_before"]) and 0 < result["ssim_after"] <= 1
  assert "3 steps in" in lines[-2] and "wrote" in lines[-2]  # Final line with time and steps.
  assert "3/3" in proc.stderr  # Progress over the steps.
  out.unlink()


def test_folder_mode_with_tiles_and_crops(work, tmp_path):
  in_dir, out_dir = tmp_path / "in", tmp_path / "out"
  in_dir.mkdir()
  out_dir.mkdir()
  lr = image_io.read_image(work / "lr.png")
  image_io.write_png(in_dir / "a.png", lr)
  image_io.write_png(in_dir / "b.png", lr[:20, :24, :1])  # Gray, another size.
  (in_dir / "notes.txt").write_text("not an image")
  proc = _tool("--input_dir", str(in_dir), "--output_dir", str(out_dir), "--model",
               str(work / "tiny.json"), "--tile", "16", "--crops", "2", "--crop_size", "8")
  assert proc.returncode == 0, proc.stderr
  assert sorted(p.name for p in out_dir.iterdir()) == ["a_x2.png", "b_x2.png"]
  assert image_io.read_image(out_dir / "b_x2.png").shape == (40, 48, 1)
  assert "tiles a.png" in proc.stderr


@pytest.mark.skipif(not KERNEL_DIR.is_dir(), reason="../shared kernels not available")
def test_zssr_kernel_image(work, tmp_path):
  proc = _tool("--input", str(KERNEL_DIR / "lr.png"), "--kernel",
               str(KERNEL_DIR / "kernel_x2.mat"), "--model", str(work / "tiny.json"),
               "--output", str(tmp_path / "sr.png"), "--steps", "1")
  assert proc.returncode == 0, proc.stderr
  assert image_io.read_image(tmp_path / "sr.png").shape == (320, 480, 3)


def _bad_cases(work, tmp):
  lr, spec = str(work / "lr.png"), str(work / "tiny.json")
  (tmp / "corrupt.png").write_bytes(b"\x89PNG not really")
  (tmp / "image.gif").write_bytes(b"GIF89a")
  image_io.write_png(tmp / "small.png", np.zeros((7, 40, 3), np.uint8))
  return [
      (["--input", str(tmp / "missing.png")], "no such image file"),
      (["--input", str(tmp / "corrupt.png")], "corrupt"),
      (["--input", str(tmp / "image.gif")], "unsupported image type"),
      (["--input", str(tmp / "small.png"), "--model", spec], "too small"),
      (["--input", lr, "--steps", "-1"], "-1"),
      (["--input", lr, "--alpha", "nan"], "nan"),
      (["--input", lr, "--alpha", "-0.1"], "-0.1"),
      (["--input", lr, "--output", lr], "overwrite the input"),
      (["--input", lr, "--input_dir", str(tmp)], "exactly one of --input or --input_dir"),
      (["--input", lr, "--model", "no_such_model"], "'no_such_model'"),
      (["--input", lr, "--model", spec, "--scale", "3"], "conflicts"),
      (["--input", lr, "--model", spec, "--crops", "2"], "crops and crop_size go together"),
      (["--input", lr, "--model", spec, "--kernel", "gaussian:x"], "gaussian:x"),
      (["--input", lr, "--model", spec, "--gt", lr], "does not match"),
      (["--input", lr, "--bogus_flag", "1"], "bogus_flag"),
      (["--input", lr, "--model", spec, "--optimizer", "adam"], "needs --alpha"),
      (["--input", lr, "--model", spec, "--optimizer", "lbfgs"], "lbfgs"),
      (["--input", lr, "--model", spec, "--step_sizes", str(tmp / "s.json"), "--alpha", "0.1"],
       "replace --alpha"),
      (["--input", lr, "--model", spec, "--step_sizes", str(tmp / "missing.json")],
       "missing.json' does not exist"),
  ]


def test_bad_inputs_exit_2_one_line_no_output(work, tmp_path):
  """Every case in one process (tool_runner: one TensorFlow import): exit 2, one error line,
  no output written, the inputs untouched."""
  import tool_runner  # pylint: disable=g-import-not-at-top
  before = {p: p.read_bytes() for p in work.iterdir()}
  cases = _bad_cases(work, tmp_path)
  output = tmp_path / "out.png"
  argvs = [args + ([] if "--output" in args else ["--output", str(output)])
           for args, _ in cases]
  watched = tool_runner.snapshot(tmp_path)
  results = tool_runner.run_cases("adapt_image.py", argvs, work)
  for (args, pattern), result in zip(cases, results):
    lines = [l for l in result["stderr"].strip().splitlines() if l.startswith("error: ")]
    assert result["code"] == 2, (args, result["stderr"][-2000:])
    assert len(lines) == 1 and pattern in lines[0], (args, result["stderr"][-2000:])
    assert result["changed"] == [], args  # Nothing written beside the inputs.
  assert not output.exists()
  assert {p: p.read_bytes() for p in work.iterdir()} == before  # Inputs untouched.
  assert tool_runner.snapshot(tmp_path) == watched  # No output, no leftover *.tmp.


def test_a_failure_on_a_later_image_writes_nothing(work, tmp_path, monkeypatch):
  """Folder mode stages every output and renames them only once all images succeeded."""
  from mlsr_tf.meta.adaptation import AdaptationDivergedError  # pylint: disable=g-import-not-at-top
  from mlsr_tf.serving import adapt_image  # pylint: disable=g-import-not-at-top
  in_dir, out_dir = tmp_path / "in", tmp_path / "out"
  in_dir.mkdir()
  out_dir.mkdir()
  lr = image_io.read_image(work / "lr.png")
  for name in ("a.png", "b.png", "c.png"):
    image_io.write_png(in_dir / name, lr)
  (out_dir / ".a_x2.999999999.staged.png").write_bytes(b"left by a killed run")
  real, calls = adapt_image.super_resolve, []

  def second_diverges(*args, **kwargs):
    calls.append(1)
    if len(calls) == 2:
      raise AdaptationDivergedError("adaptation diverged: the loss after 1 of 2 steps is nan")
    return real(*args, **kwargs)
  monkeypatch.setattr(adapt_image, "super_resolve", second_diverges)
  config = adapt_image.AdaptImageConfig(input_dir=str(in_dir), output_dir=str(out_dir),
                                        model=str(work / "tiny.json"), steps=1, quiet=True)
  with pytest.raises(AdaptationDivergedError, match="^b.png: adaptation diverged"):
    adapt_image.run(config)
  assert list(out_dir.iterdir()) == []  # Nothing written; the stale staging file removed.
  monkeypatch.setattr(adapt_image, "super_resolve", real)
  adapt_image.run(config)
  assert sorted(p.name for p in out_dir.iterdir()) == ["a_x2.png", "b_x2.png", "c_x2.png"]


def test_diverging_adaptation_exits_2_and_writes_nothing(work, tmp_path):
  proc = _tool("--input", str(work / "lr.png"), "--model", str(work / "tiny.json"),
               "--output", str(tmp_path / "sr.png"), "--alpha", "1e6", "--steps", "2")
  _assert_one_line_error(proc, "lr.png: adaptation diverged")
  assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
  assert list(tmp_path.iterdir()) == []
