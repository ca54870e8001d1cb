"""Hostile input for every tool (issue 14): exit code 2, one ``error:`` line naming the
problem (and the file), nothing written, no input changed.

Each tool's cases run in one process (``tool_runner``: one TensorFlow import per tool).  A
case is ``(argv, pattern)``: ``pattern`` must be in the one stderr line, which must start
with ``error: ``; ``pattern=None`` marks a set-up step that must succeed (exit 0), e.g. a
short training run that a later case resumes badly.  The classes of the issue are all here:
inputs that exhaust the machine (huge headers, huge kernels, huge numbers), nonsense
(diverging adaptation, weights of another scale, unsupported output types, resuming with
other settings), lost work (a deleted state), corrupt files, leftovers; plus empty files,
directories given as files, symlink loops, FIFOs, unicode paths, NaN/inf flags and files
where directories are expected.
"""

import json
import os
import shutil
import struct
import zlib

import numpy as np
import pytest

import tool_runner
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io
from mlsr_tf.data import synthetic

SHARED = tool_runner.REPO.parent / "shared"  # Only the IDN-Caffe x3 case needs it.


def _png_header_only(width: int, height: int) -> bytes:
  """A PNG whose header claims width x height (and whose data are a few zero bytes)."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
  header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
  return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
          + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.fixture(name="root", scope="module")
def fixture_root(tmp_path_factory):
  """Every hostile file once: images, kernels, weights, a tiny spec, data folders."""
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  root = tmp_path_factory.mktemp("hostile")
  (root / "out").mkdir()
  hr = synthetic.demo_image(64, 80)
  image_io.write_png(root / "hr.png", hr)
  image_io.write_png(root / "lr.png", deg.degrade(hr, deg.bicubic(2)))
  image_io.write_png(root / "hr16.png", (hr.astype(np.uint16) * 257))
  image_io.write_png(root / "rgba.png", np.concatenate([hr, hr[:, :, :1]], axis=2))
  (root / "bilder ü 图像").mkdir()
  image_io.write_png(root / "bilder ü 图像" / "ñ.png", deg.degrade(hr, deg.bicubic(2)))
  (root / "huge.png").write_bytes(_png_header_only(100000, 100000))
  data = (root / "hr.png").read_bytes()
  (root / "truncated.png").write_bytes(data[:len(data) // 2])
  (root / "text.png").write_text("hello, I am not a picture")
  (root / "empty.png").write_bytes(b"")
  (root / "folder.png").mkdir()
  (root / "loop.png").symlink_to(root / "loop.png")
  os.mkfifo(root / "fifo.png")
  np.save(root / "zeros.npy", np.zeros((5, 5)))
  np.save(root / "negative.npy", deg.gaussian_kernel(5, 1.0) - 0.05)
  np.save(root / "nan.npy", np.full((5, 5), np.nan))
  np.save(root / "cube.npy", np.ones((3, 3, 3)))
  np.save(root / "wide.npy", np.ones((70, 70)))  # Larger than hr.png (80x64).
  (root / "garbage.npy").write_bytes(b"garbage, not numpy")
  import scipy.io  # pylint: disable=g-import-not-at-top
  scipy.io.savemat(root / "string.mat", {"Kernel": "hello"})
  registry_x2 = registry.build_model("tiny", scale=2)
  keras_h5.save(registry_x2, root / "tiny.weights.h5")
  keras_h5.save(registry.build_model("tiny", scale=3), root / "tiny_x3.weights.h5")
  keras_h5.save(registry.build_model("tiny", scale=2, channels=1), root / "tiny_y.weights.h5")
  weights = (root / "tiny.weights.h5").read_bytes()
  (root / "truncated.weights.h5").write_bytes(weights[:len(weights) // 2])
  (root / "tiny.json").write_text(json.dumps({
      "model": "tiny", "scale": 2, "channels": 3, "weights": "tiny.weights.h5",
      "adaptation": {"steps": 1, "alpha": 0.05}}))
  (root / "broken.json").write_text('{"model": "tiny", "scale": ')
  (root / "afile").write_text("a file where a directory is expected")
  (root / "images").mkdir()
  for seed in range(2):
    image_io.write_png(root / "images" / f"im{seed}.png", synthetic.demo_image(48, 56, seed))
  hr_dir = root / "data" / "datasets" / "Set5" / "HR"
  hr_dir.mkdir(parents=True)
  image_io.write_png(hr_dir / "a.png", synthetic.demo_image(24, 24))
  (root / "runs").mkdir()
  return root


def _check(results, cases) -> list:
  """The problems of each case (empty when every case behaves)."""
  problems = []
  for (argv, pattern), result in zip(cases, results):
    where = ' '.join(map(str, argv))
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    if pattern is None:
      if result["code"] != 0:
        problems.append(f"{where}: set-up failed: {result['stderr'][-800:]}")
      continue
    if result["code"] != 2:
      problems.append(f"{where}: exit {result['code']}: {result['stderr'][-800:]}")
    elif len(lines) != 1 or not lines[0].startswith("error: "):
      problems.append(f"{where}: stderr is not one error line: {lines[:6]}")
    elif pattern not in lines[0]:
      problems.append(f"{where}: {pattern!r} not in {lines[0]!r}")
    elif len(lines[0]) > 600:
      problems.append(f"{where}: a {len(lines[0])}-character line")
    if result["changed"]:
      problems.append(f"{where}: wrote or changed {result['changed']}")
  return problems


def _report(tool, results, root) -> None:
  """With $MLSR_BAD_INPUT_REPORT: one JSON line per case (tool, argv, exit, stderr), paths
  relative to the fixture folder (WORKSPACE.md's table of section 8 is made from it)."""
  report = os.environ.get("MLSR_BAD_INPUT_REPORT")
  if report:
    with open(report, "a", encoding="utf-8") as f:
      for result in results:
        f.write(json.dumps({"tool": tool, "argv": result["argv"], "code": result["code"],
                            "stderr": result["stderr"].strip(), "seconds": result["seconds"]},
                           ensure_ascii=False).replace(str(root) + "/", "") + "\n")


def _run(tool, cases, root, env=None):
  results = tool_runner.run_cases(tool, [argv for argv, _ in cases], root, env=env)
  _report(tool, results, root)
  problems = _check(results, cases)
  assert not problems, "\n".join(problems)


def _image_cases(root, flag, rest):
  """Bad image files, for any tool reading one through ``flag``."""
  return [
      ([flag, root / "missing.png", *rest], "no such image file"),
      ([flag, root / "huge.png", *rest], "100000x100000"),
      ([flag, root / "truncated.png", *rest], "truncated.png"),
      ([flag, root / "text.png", *rest], "text.png"),
      ([flag, root / "empty.png", *rest], "empty.png' is empty"),
      ([flag, root / "folder.png", *rest], "folder.png' is a directory"),
      ([flag, root / "loop.png", *rest], "loop.png"),
      ([flag, root / "fifo.png", *rest], "fifo.png' is not a regular file"),
      ([flag, root / "bilder ü 图像" / "nö.png", *rest], "nö.png"),
  ]


def _kernel_cases(root, flag, rest, image="the image"):
  return [
      ([*rest, flag, "gaussian:1e6,1e6,0"], "gaussian:1e6,1e6,0"),
      ([*rest, flag, "gaussian:1,1,0,1000001"], "limit"),
      ([*rest, flag, "gaussian:nan"], "gaussian:nan"),
      ([*rest, flag, "gaussian:inf,1"], "gaussian:inf,1"),
      ([*rest, flag, root / "zeros.npy"], "all zeros"),
      ([*rest, flag, root / "negative.npy"], "negative values"),
      ([*rest, flag, root / "nan.npy"], "non-finite"),
      ([*rest, flag, root / "cube.npy"], "cube.npy"),
      ([*rest, flag, root / "wide.npy"], f"is larger than {image}"),
      ([*rest, flag, root / "garbage.npy"], "garbage.npy' is not a NumPy"),
      ([*rest, flag, root / "string.mat"], "string.mat"),
      ([*rest, flag, root / "missing.mat"], "missing.mat"),
      ([*rest, flag, root / "folder.png"], "folder.png"),
  ]


def test_degrade(root):
  out = root / "out" / "lr.png"
  base = ["--input", root / "hr.png", "--scale", "2"]
  cases = [
      *_image_cases(root, "--input", ["--scale", "2", "--output", out]),
      *_kernel_cases(root, "--kernel", [*base, "--output", out]),
      ([*base, "--output", root / "out" / "lr.gif"], "unsupported output type '.gif'"),
      ([*base, "--output", root / "out" / "lr"], "unsupported output type ''"),
      (["--input", root / "hr16.png", "--scale", "2", "--output", root / "out" / "lr.jpg"],
       "uint16"),
      (["--input", root / "rgba.png", "--scale", "2", "--output", root / "out" / "lr.jpg"],
       "4-channel"),
      ([*base, "--output", root / "hr.png"], "overwrite the input"),
      ([*base, "--output", root / "loop.png"], "loop.png"),
      ([*base, "--output", root / "afile" / "lr.png"], "afile"),
      ([*base, "--output", root / "nowhere" / "lr.png"], "does not exist"),
      (["--input", root / "hr.png", "--scale", "0", "--output", out], "0"),
      (["--input", root / "hr.png", "--scale", "1000000000", "--output", out], "smaller"),
      (["--input", root / "hr.png", "--scale", "nan", "--output", out], "nan"),
      (["--input", root / "hr.png", "--output", out], "--scale"),
  ]
  _run("degrade.py", cases, root)


def test_adapt_image(root):
  spec = root / "tiny.json"
  base = ["--input", root / "lr.png", "--model", spec, "--output", root / "out" / "sr.png"]
  cases = [
      *_image_cases(root, "--input", ["--model", spec]),
      *_kernel_cases(root, "--kernel", base, "the image"),
      ([*base, "--alpha", "1e6", "--steps", "2", "--quiet"], "adaptation diverged"),
      ([*base, "--alpha", "1e30", "--steps", "1", "--quiet"], "adaptation diverged"),
      ([*base, "--alpha", "nan"], "nan"),
      ([*base, "--alpha", "inf"], "inf"),
      ([*base, "--steps", "-1"], "-1"),
      ([*base, "--crops", "1000000000", "--crop_size", "8"], "more than the limit"),
      ([*base, "--tile", "0"], "tile"),
      ([*base, "--gt", root / "lr.png"], "does not match"),
      ([*base, "--gt", root / "truncated.png"], "truncated.png"),
      (["--input", root / "lr.png", "--output", root / "out" / "sr.jpg", "--model", spec],
       "sr.jpg"),
      (["--input", root / "lr.png", "--output", root / "lr.png", "--model", spec],
       "overwrite the input"),
      (["--input", root / "lr.png", "--output", root / "loop.png", "--model", spec],
       "loop.png"),
      (["--input", root / "lr.png", "--model", "tiny", "--weights", root / "tiny_x3.weights.h5",
        "--output", root / "out" / "sr.png"], "tiny_x3.weights.h5' are for a network with scale 3"),
      (["--input", root / "lr.png", "--model", "tiny", "--weights",
        root / "truncated.weights.h5", "--output", root / "out" / "sr.png"],
       "truncated.weights.h5' is corrupt or truncated"),
      (["--input", root / "lr.png", "--model", "tiny", "--weights", root / "folder.png",
        "--output", root / "out" / "sr.png"], "folder.png"),
      (["--input", root / "lr.png", "--model", root / "broken.json"], "broken.json"),
      (["--input_dir", root / "afile", "--output_dir", root / "out"], "afile"),
      (["--input_dir", root / "out", "--output_dir", root / "out"], "must differ"),
      (["--input", root / "lr.png", "--model", "no_such_model"], "'no_such_model'"),
      (["--input", root / "lr.png", "--model", "tiny", "--weights", root / "tiny.weights.h5",
        "--scale", "100000", "--output", root / "out" / "sr.png"], "<= 16"),
  ]
  if (SHARED / "weights" / "idn_caffe" / "IDN_x3.caffemodel").exists():
    cases.append((["--input", root / "lr.png", "--model", "idn_caffe", "--weights",
                   SHARED / "weights" / "idn_caffe" / "IDN_x3.caffemodel",
                   "--output", root / "out" / "sr.png"], "are for a network with scale 3"))
  _run("adapt_image.py", cases, root)


def _train_flags(root, workdir):
  return ["--model", "tiny", "--data", root / "images", "--patch", "16", "--batch", "2",
          "--pool_size", "8", "--workers", "1", "--validation", "", "--nojit_compile",
          "--log_every", "1", "--checkpoint_every", "1", "--workdir", workdir]


def test_train(root):
  workdir = root / "runs" / "train"
  flags = _train_flags(root, workdir)
  lost = root / "runs" / "train_lost"
  cases = [
      ([*flags, "--iterations", "abc"], "abc"),
      ([*flags, "--patch", "15"], "15"),
      ([*flags, "--learning_rate", "nan"], "nan"),
      ([*flags, "--learning_rate", "-1"], "-1"),
      ([*flags, "--decay_steps", "0"], "decay_steps"),
      ([*flags, "--max_seconds", "nan"], "nan"),
      ([*flags, "--model_kwargs", "[1]"], "[1]"),
      ([*flags, "--model_kwargs", '{"no_such_argument": 1}'], "no_such_argument"),
      ([*flags, "--model_kwargs", '{"filters": 1000000000}'], "filters=1000000000"),
      ([*flags, "--data", root / "missing"], "missing"),
      ([*flags, "--data", root / "afile"], "afile"),
      ([*flags, "--weights", root / "truncated.weights.h5"], "truncated.weights.h5"),
      ([*flags, "--weights", root / "tiny_x3.weights.h5"], "scale 3"),
      ([*flags, "--degradation", "gaussian:1e6"], "gaussian:1e6"),
      ([*flags, "--pool_size", "1000000000"], "more than half of this machine"),
      ([*flags, "--batch", "1000000000"], "more than half of this machine"),
      ([*_train_flags(root, root / "afile")], "afile"),
      ([*_train_flags(root, "/proc/mlsr_run")], "/proc/mlsr_run"),
      ([*flags, "--iterations", "2"], None),  # A run to resume badly:
      ([*flags, "--iterations", "3", "--seed", "1", "--batch", "3"], "batch 2 -> 3, seed 0 -> 1"),
      ([*flags, "--iterations", "3", "--learning_rate", "0.1"], "learning_rate"),
      ([*_train_flags(root, lost), "--iterations", "1"], None),
  ]
  _run("train.py", cases, root)
  # Lost state, corrupt files: refused in one line naming the file, nothing changed.
  (lost / "ckpt" / "state.json").unlink()
  shutil.copytree(workdir, root / "runs" / "train_npz")
  (root / "runs" / "train_npz" / "ckpt" / "optimizer.npz").write_bytes(b"PK\x03\x04broken")
  shutil.copytree(workdir, root / "runs" / "train_empty_state")
  (root / "runs" / "train_empty_state" / "ckpt" / "state.json").write_text("{}")
  shutil.copytree(workdir, root / "runs" / "train_h5")
  h5 = root / "runs" / "train_h5" / "ckpt" / "model.weights.h5"
  h5.write_bytes(h5.read_bytes()[:3000])
  cases = [
      ([*_train_flags(root, lost), "--iterations", "2"], "holds weights but no readable"),
      ([*_train_flags(root, root / "runs" / "train_npz"), "--iterations", "3"], "optimizer.npz"),
      ([*_train_flags(root, root / "runs" / "train_empty_state"), "--iterations", "3"],
       "state.json' has no valid 'iteration'"),
      ([*_train_flags(root, root / "runs" / "train_h5"), "--iterations", "3"],
       "model.weights.h5' is corrupt or truncated"),
  ]
  _run("train.py", cases, root)


def _meta_flags(root, workdir):
  return ["--model", "tiny", "--channels", "3", "--data", root / "images", "--patch", "16",
          "--batch", "2", "--inner_steps", "1", "--validate_every", "0", "--log_every", "1",
          "--checkpoint_every", "1", "--workdir", workdir]


def test_meta_train(root):
  workdir = root / "runs" / "meta"
  flags = _meta_flags(root, workdir)
  cases = [
      ([*flags, "--iterations", "0"], "iterations"),
      ([*flags, "--alpha", "nan"], "nan"),
      ([*flags, "--beta", "inf"], "inf"),
      ([*flags, "--patch", "18"], "18"),
      ([*flags, "--model_kwargs", "{bad json"], "{bad json"),
      ([*flags, "--query_weights", "1,x"], "'x'"),
      ([*flags, "--data", root / "missing"], "missing"),
      ([*flags, "--weights", root / "truncated.weights.h5"], "truncated.weights.h5"),
      ([*flags, "--weights", root / "tiny_x3.weights.h5"], "scale 3"),
      ([*flags, "--validation_degradation", "gaussian:1e6"], "gaussian:1e6"),
      ([*flags, "--validation_degradation", root / "garbage.npy"], "garbage.npy"),
      ([*flags, "--alpha", "1e12", "--iterations", "1"], "diverged"),
      ([*flags, "--batch", "1000000000"], "more than half of this machine"),
      ([*_meta_flags(root, root / "afile"), "--iterations", "1"], "afile"),
      ([*flags, "--iterations", "1"], None),  # A run to resume badly:
      ([*flags, "--iterations", "2", "--seed", "3", "--degradation", "bicubic"],
       "degradation 'mixed' -> 'bicubic'"),
      ([*flags, "--iterations", "2", "--patch", "32", "--batch", "1"],
       "patch 16 -> 32, batch 2 -> 1"),
  ]
  _run("meta_train.py", cases, root)
  (workdir / "checkpoint" / "state.json").unlink()
  shutil.copytree(workdir, root / "runs" / "meta_lost")
  (workdir / "checkpoint" / "state.json").write_text('{"iteration": 1, "config": {}}')
  (workdir / "checkpoint" / "optimizer.npz").write_bytes(b"not a zip")
  _run("meta_train.py", [
      ([*_meta_flags(root, root / "runs" / "meta_lost"), "--iterations", "2"],
       "holds weights but no readable"),
      ([*flags, "--iterations", "2"], "different configuration"),  # config {} recorded.
  ], root)


def test_export_savedmodel(root):
  spec = root / "tiny.json"
  out = root / "out" / "mlsr" / "1"
  cases = [
      ([], "--output is required"),
      (["--output", root / "out", "--model", spec], "already exists"),
      (["--output", root / "afile" / "1", "--model", spec], "afile"),
      (["--output", out, "--model", spec, "--scale", "3"], "conflicts"),
      (["--output", out, "--model", "tiny", "--weights", root / "truncated.weights.h5"],
       "truncated.weights.h5"),
      (["--output", out, "--model", "tiny", "--weights", root / "tiny_y.weights.h5"],
       "channels 1"),
      (["--output", out, "--model", root / "broken.json"], "broken.json"),
      (["--output", out, "--model", spec, "--input_dtype", "int7"], "int7"),
  ]
  _run("export_savedmodel.py", cases, root)


def test_evaluate(root):
  data = ["--data_root", root / "data", "--datasets", "Set5"]
  cases = [
      ([*data, "--datasets", "Set6"], "Set6"),
      ([*data, "--scale", "-2"], "-2"),
      ([*data, "--degradation", "gaussian:1e6,1e6,0"], "gaussian:1e6,1e6,0"),
      ([*data, "--degradation", root / "string.mat"], "string.mat"),
      ([*data, "--model", "tiny", "--weights", root / "tiny_x3.weights.h5"], "scale 3"),
      ([*data, "--model", "tiny", "--weights", root / "truncated.weights.h5"],
       "truncated.weights.h5"),
      ([*data, "--model", "tiny", "--weights", root / "tiny.weights.h5", "--adapt_steps", "2",
        "--alpha", "1e6"], "adaptation diverged"),
      ([*data, "--model", "tiny", "--weights", root / "tiny.weights.h5", "--adapt_steps", "x"],
       "'x'"),
      ([*data, "--model", "tiny", "--weights", root / "tiny.weights.h5", "--adapt_steps", "1",
        "--alpha", "nan"], "nan"),
      (["--data_root", root / "afile", "--datasets", "Set5"], "afile"),
      ([*data, "--model", "tiny", "--weights", root / "tiny.weights.h5", "--scale", "100000"],
       "scale must be a positive integer <= 16"),
  ]
  _run("evaluate.py", cases, root)


def test_import_weights(root):
  out = root / "out" / "w.weights.h5"
  cases = [
      (["--format", "caffe-idn", "--input", root / "missing.caffemodel", "--output", out],
       "missing.caffemodel"),
      (["--format", "caffe-idn", "--input", root / "text.png", "--output", out], "text.png"),
      (["--format", "caffe-idn", "--input", root / "empty.png", "--output", out], "empty.png"),
      (["--format", "caffe-idn", "--input", root / "tiny.weights.h5", "--output", out],
       "tiny.weights.h5"),
      (["--format", "tf1-idn", "--input", root / "folder.png", "--output", out], "folder.png"),
      (["--format", "nope", "--input", root / "tiny.weights.h5", "--output", out], "nope"),
      (["--format", "caffe-idn", "--input", root / "text.png", "--output", root / "out" / "w.h5"],
       "w.h5"),
      (["--format", "caffe-idn", "--input", root / "text.png"], "--output is required"),
  ]
  _run("import_weights.py", cases, root)


def test_zssr(root):
  base = ["--lr", root / "lr.png", "--output", root / "out" / "sr.png", "--max_iters", "1"]
  cases = [
      *_image_cases(root, "--lr", ["--output", root / "out" / "sr.png"]),
      *_kernel_cases(root, "--degradation", base, "the image"),
      ([*base, "--max_iters", "-1"], "-1"),
      (["--lr", root / "lr.png", "--output", root / "out" / "sr.gif"], "sr.gif"),
      (["--lr", root / "lr.png", "--output", root / "lr.png"], "overwrite"),
      ([*base, "--gt", root / "lr.png"], "lr.png"),
  ]
  _run("zssr.py", cases, root)


def test_serving_client(root):
  base = ["--input", root / "lr.png", "--output", root / "out" / "sr.png",
          "--url", "http://127.0.0.1:9/v1/models/mlsr:predict", "--timeout", "5"]
  cases = [
      *_image_cases(root, "--input", ["--output", root / "out" / "sr.png"]),
      (base, "127.0.0.1:9"),  # Nothing listens there.
      ([*base, "--signature", "adapt", "--steps", "-1"], "-1"),
      ([*base, "--signature", "adapt", "--steps", "1", "--learning_rate", "0.1", "--kernel",
        "gaussian:1e6"], "gaussian:1e6"),
      ([*base, "--signature", "adapt", "--steps", "1", "--learning_rate", "0.1", "--kernel",
        root / "nan.npy"], "nan.npy"),
      ([*base, "--timeout", "nan"], "--timeout must be a positive number of seconds, got nan"),
      ([*base, "--output", root / "loop.png"], "loop.png"),
      (["--input", root / "lr.png", "--output", root / "out" / "sr.gif"], "sr.gif"),
      ([*base, "--url", "not a url"], "not a url"),
  ]
  _run("serving_client.py", cases, root)


def _score_files(root):
  """A tiny per-image cache of tools/reproduce.py (one image) for compare_scores.py."""
  line = '{"key": "k", "entry": {"name": "a", "psnr": {"0": 30.0, "20": 31.0}}}\n'
  (root / "scores.jsonl").write_text(line, encoding="utf-8")
  return root / "scores.jsonl"


def _other_cases(root):
  scores = _score_files(root)
  pair = ["--baseline", scores, "--candidate", scores]
  return {
      "compare_scores.py": [
          (["--baseline", scores], "--baseline, --candidate and --steps are required"),
          ([*pair, "--steps", "a,b"], "'a,b'"),
          ([*pair, "--steps", "-1"], "non-negative"),
          ([*pair, "--steps", "5"], "has no score at 5 steps"),
          ([*pair, "--steps", "20", "--margins", "0,1"], "one margin per step count"),
          ([*pair, "--steps", "20", "--margins", "nan"], "finite"),
          ([*pair, "--steps", "20", "--reach", "--margins", "0.5"], "--reach reads the baseline"),
          ([*pair, "--steps", "20", "--reach", "--baseline_step", "20"], "do not apply"),
          ([*pair, "--steps", "30", "--reach"], "has no score at 30 steps"),
          (["--baseline", root / "missing.jsonl", "--candidate", scores, "--steps", "0"],
           "no such score file: '" + str(root / "missing.jsonl")),
          (["--baseline", root / "folder.png", "--candidate", scores, "--steps", "0"],
           "folder.png' is a directory"),
          (["--baseline", scores, "--candidate", root / "fifo.png", "--steps", "0"],
           "fifo.png' is not a regular file"),
          (["--baseline", scores, "--candidate", root / "text.png", "--steps", "0"],
           "holds no per-image score lines"),
          (["--baseline", scores, "--candidate", root / "hr.png", "--steps", "0"],
           "hr.png' is not text")],
      "reproduce.py": [
          (["--table", "9"], "9"),
          (["--table", "3", "--config", "bogus"], "bogus"),
          (["--table", "3", "--meta_weights", "x"], "'x'"),
          (["--table", "3", "--meta_iterations", "-5", "--dry_run", "--out",
            root / "out" / "t"], "-5")],
      "bench_adapt.py": [
          (["--lr_size", "0"], "lr_size"), (["--orders", "third"], "third"),
          (["--weights", root / "truncated.weights.h5", "--model", "tiny"],
           "truncated.weights.h5")],
      "bench_export.py": [
          (["--sizes", "a,b"], "'a,b'"), (["--steps", "-1", "--skip_cli"], "-1"),
          (["--model", root / "broken.json"], "broken.json")],
      "bench_speed.py": [
          (["--batch", "0"], "batch"), (["--precisions", "float8"], "float8"),
          (["--out", root / "afile" / "x.json", "--repeats", "0"], "repeats")],
  }


@pytest.mark.parametrize("tool", ["reproduce.py", "compare_scores.py", "bench_adapt.py",
                                  "bench_export.py", "bench_speed.py"])
def test_reproduce_and_benchmarks(root, tool):
  _run(tool, _other_cases(root)[tool], root)
