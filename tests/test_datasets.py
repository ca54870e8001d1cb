"""Tests for mlsr_tf.data.datasets: discovery, cropping, LR generation."""

import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.data import datasets
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib

ROOT = paths.data_root()
needs_shared = pytest.mark.skipif(not (ROOT / "datasets").is_dir(),
                                  reason="../shared not available")


def _fake_root(tmp_path):
  hr = tmp_path / "datasets" / "Set5" / "HR"
  hr.mkdir(parents=True)
  rng = np.random.default_rng(0)
  image_io.write_png(hr / "b.png", rng.integers(0, 256, (13, 11, 3)).astype(np.uint8))
  image_io.write_png(hr / "a.png", rng.integers(0, 256, (8, 8, 1)).astype(np.uint8))
  (hr / "notes.txt").write_text("not an image")
  return tmp_path


def test_find_and_load_on_a_fake_root(tmp_path):
  root = _fake_root(tmp_path)
  files = datasets.find_dataset("Set5", root)
  assert [f.name for f in files] == ["a.png", "b.png"]
  items = list(datasets.load_benchmark("Set5", 3, root=root))
  assert [name for name, _, _ in items] == ["a", "b"]
  name, hr, lr = items[1]
  assert hr.shape == (12, 9, 3) and lr.shape == (4, 3, 3) and lr.dtype == np.uint8
  np.testing.assert_array_equal(lr, imresize_lib.imresize(hr, 1 / 3))
  assert items[0][1].shape == (6, 6, 1)  # Gray stays one channel.
  kernel = deg.from_kernel(deg.gaussian_kernel(5, 1.0), 3)
  _, hr, lr = list(datasets.load_benchmark("Set5", 3, kernel, root))[1]
  np.testing.assert_array_equal(lr, deg.degrade(hr, kernel))


def test_errors(tmp_path):
  with pytest.raises(ValueError, match="Set6"):
    datasets.find_dataset("Set6", tmp_path)
  with pytest.raises(ValueError, match="Set14"):
    datasets.find_dataset("Set14", tmp_path)
  (tmp_path / "datasets" / "B100" / "HR").mkdir(parents=True)
  with pytest.raises(ValueError, match="no images"):
    datasets.find_dataset("B100", tmp_path)
  with pytest.raises(ValueError, match="differs"):
    list(datasets.load_benchmark("Set5", 2, deg.bicubic(3), _fake_root(tmp_path / "r")))
  with pytest.raises(ValueError, match="nowhere"):
    datasets.list_training_images(tmp_path / "nowhere")


def test_env_var_selects_root(tmp_path, monkeypatch):
  root = _fake_root(tmp_path)
  monkeypatch.setenv("MLSR_DATA", str(root))
  assert len(datasets.find_dataset("Set5")) == 2


def test_list_training_images_folder(tmp_path):
  root = _fake_root(tmp_path)
  files = datasets.list_training_images(root / "datasets" / "Set5" / "HR")
  assert [f.name for f in files] == ["a.png", "b.png"]


@needs_shared
def test_shared_sets_have_the_published_sizes():
  counts = {name: len(datasets.find_dataset(name)) for name in datasets.BENCHMARKS}
  assert counts == {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}
  assert len(datasets.list_training_images("train291")) == 291


@needs_shared
def test_set5_lr_matches_matlab_files():
  for name, hr, lr in datasets.load_benchmark("Set5", 4):
    ref = image_io.read_image(ROOT / "datasets" / "Set5" / "LR_bicubic" / "X4" / f"{name}x4.png")
    np.testing.assert_array_equal(lr, ref)
    assert hr.shape[0] == 4 * lr.shape[0] and hr.shape[1] == 4 * lr.shape[1]
