"""End-to-end tests of tools/degrade.py and tools/evaluate.py (subprocesses)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io

REPO = paths.REPO_ROOT
ROOT = paths.data_root()


def _tool(name, *args, env=None):
  return subprocess.run([sys.executable, str(REPO / "tools" / name), *args],
                        capture_output=True, text=True, cwd=str(REPO), env=env, timeout=120)


def _assert_one_line_error(proc, pattern):
  assert proc.returncode == 2, proc.stderr
  lines = [l for l in proc.stderr.strip().splitlines() if l.startswith("error: ")]
  assert len(lines) == 1 and pattern in lines[0], proc.stderr


def test_degrade_bicubic_and_kernel(tmp_path):
  hr = np.random.default_rng(0).integers(0, 256, (20, 18, 3)).astype(np.uint8)
  image_io.write_png(tmp_path / "hr.png", hr)
  proc = _tool("degrade.py", "--input", str(tmp_path / "hr.png"), "--scale", "2",
               "--output", str(tmp_path / "lr.png"))
  assert proc.returncode == 0, proc.stderr
  np.testing.assert_array_equal(image_io.read_image(tmp_path / "lr.png"),
                                deg.degrade(hr, deg.bicubic(2)))
  np.save(tmp_path / "k.npy", deg.gaussian_kernel(5, 1.0, 0.5, 0.2))
  proc = _tool("degrade.py", "--input", str(tmp_path / "hr.png"), "--scale", "3",
               "--output", str(tmp_path / "lr3.png"), "--kernel", str(tmp_path / "k.npy"))
  assert proc.returncode == 0, proc.stderr
  want = deg.degrade(hr, deg.from_kernel(np.load(tmp_path / "k.npy"), 3))
  np.testing.assert_array_equal(image_io.read_image(tmp_path / "lr3.png"), want)
  assert want.shape == (7, 6, 3)


def test_degrade_16bit_gray(tmp_path):
  hr = np.random.default_rng(1).integers(0, 65536, (12, 12, 1)).astype(np.uint16)
  image_io.write_png(tmp_path / "hr16.png", hr)
  proc = _tool("degrade.py", "--input", str(tmp_path / "hr16.png"), "--scale", "2",
               "--output", str(tmp_path / "lr16.png"), "--kernel", "gaussian:1.0")
  assert proc.returncode == 0, proc.stderr
  lr = image_io.read_image(tmp_path / "lr16.png")
  assert lr.dtype == np.uint16 and lr.shape == (6, 6, 1)


def test_degrade_bad_inputs(tmp_path):
  image_io.write_png(tmp_path / "hr.png", np.zeros((8, 8, 3), np.uint8))
  (tmp_path / "corrupt.png").write_bytes(b"\x89PNG broken")
  hr, out = str(tmp_path / "hr.png"), str(tmp_path / "out.png")
  cases = [
      (("--input", str(tmp_path / "missing.png"), "--scale", "2", "--output", out), "missing.png"),
      (("--input", str(tmp_path / "corrupt.png"), "--scale", "2", "--output", out), "corrupt.png"),
      (("--input", hr, "--scale", "0", "--output", out), "0"),
      (("--input", hr, "--scale", "two", "--output", out), "two"),
      (("--input", hr, "--scale", "2", "--output", out, "--kernel", "gaussian:-1"), "gaussian:-1"),
      (("--input", hr, "--scale", "2", "--output", out, "--kernel", "nope.mat"), "nope.mat"),
      (("--input", hr, "--scale", "16", "--output", out), "smaller"),
      (("--input", hr, "--scale", "2", "--output", hr), "overwrite"),
      (("--input", hr, "--output", out), "--scale"),
  ]
  before = (tmp_path / "hr.png").read_bytes()
  for args, pattern in cases:
    _assert_one_line_error(_tool("degrade.py", *args), pattern)
  assert not os.path.exists(out)
  assert (tmp_path / "hr.png").read_bytes() == before


def test_evaluate_json_last_line_and_errors(tmp_path):
  hr_dir = tmp_path / "datasets" / "Set5" / "HR"
  hr_dir.mkdir(parents=True)
  y, x = np.mgrid[0:24, 0:24]
  image = np.repeat((128 + 50 * np.sin(x / 4.0 + y / 6.0))[..., None], 3, 2).astype(np.uint8)
  image_io.write_png(hr_dir / "a.png", image)
  proc = _tool("evaluate.py", "--model", "bicubic", "--datasets", "Set5", "--scale", "2",
               "--format", "json", "--data_root", str(tmp_path))
  assert proc.returncode == 0, proc.stderr
  last = json.loads(proc.stdout.strip().splitlines()[-1])
  assert set(last) == {"Set5"} and last["Set5"]["images"] == 1
  assert set(last["Set5"]) == {"psnr", "ssim", "images"}
  env = dict(os.environ, MLSR_DATA=str(tmp_path))
  proc = _tool("evaluate.py", "--datasets", "Set5", "--scale", "2", env=env)
  assert proc.returncode == 0 and "| Set5 | 1 |" in proc.stdout
  for args, pattern in ((("--datasets", "Set6"), "Set6"),
                        (("--datasets", "Set14"), "Set14"),
                        (("--format", "xml"), "xml"),
                        (("--scale", "-2"), "-2"),
                        (("--degradation", "box"), "box"),
                        (("--model", "idn"), "weights")):
    _assert_one_line_error(
        _tool("evaluate.py", "--data_root", str(tmp_path), "--datasets", "Set5", *args), pattern)


@pytest.mark.skipif(not (ROOT / "datasets" / "Set5").is_dir(), reason="../shared not available")
def test_evaluate_tool_set5_x2_published_baseline():
  proc = _tool("evaluate.py", "--model", "bicubic", "--datasets", "Set5", "--scale", "2",
               "--format", "json")
  assert proc.returncode == 0, proc.stderr
  set5 = json.loads(proc.stdout.strip().splitlines()[-1])["Set5"]
  assert set5["images"] == 5 and abs(set5["psnr"] - 33.66) <= 0.02
