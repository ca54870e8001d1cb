"""Tests for mlsr_tf.weights.keras_h5: recorded geometry, atomic saves, one-line load errors."""

import os

import h5py
import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.models import registry
from mlsr_tf.weights import keras_h5


def _tiny(channels=3, scale=2):
  return registry.build_model("tiny", scale=scale, channels=channels)


def test_save_records_the_network_and_leaves_no_temporary(tmp_path):
  model = _tiny()
  keras_h5.save(model, tmp_path / "m.weights.h5")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]
  assert keras_h5.recorded(tmp_path / "m.weights.h5") == {"model": "tiny", "scale": 2,
                                                          "channels": 3}
  clone = _tiny()
  keras_h5.load(clone, tmp_path / "m.weights.h5")
  for a, b in zip(model.get_weights(), clone.get_weights()):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(ValueError, match="must be saved as"):
    keras_h5.save(model, tmp_path / "m.h5")


def test_a_failed_save_keeps_the_old_file(tmp_path, monkeypatch):
  model = _tiny()
  target = tmp_path / "m.weights.h5"
  keras_h5.save(model, target)
  before = target.read_bytes()

  def broken(path):
    with open(path, "wb") as f:
      f.write(b"half")
    raise OSError(28, "No space left on device")
  monkeypatch.setattr(model, "save_weights", broken)
  with pytest.raises(OSError, match="No space"):
    keras_h5.save(model, target)
  assert target.read_bytes() == before
  assert sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]


def _corrupt_files(tmp):
  good = tmp / "good.weights.h5"
  keras_h5.save(_tiny(), good)
  data = good.read_bytes()
  cases = {"truncated.weights.h5": (data[:len(data) // 3], "corrupt or truncated"),
           "empty.weights.h5": (b"", "is empty"),
           "text.weights.h5": (b"not an hdf5 file at all", "not an HDF5")}
  for name, (content, _) in cases.items():
    (tmp / name).write_bytes(content)
  patterns = {name: pattern for name, (_, pattern) in cases.items()}
  keras_h5.save(_tiny(channels=1), tmp / "gray.weights.h5")
  patterns["gray.weights.h5"] = "channels 1 .*has channels 3"
  nan = tmp / "nan.weights.h5"
  keras_h5.save(_tiny(), nan)
  with h5py.File(nan, "a") as f:
    f.visititems(lambda name, obj: obj.__setitem__(..., np.nan)
                 if isinstance(obj, h5py.Dataset) and obj.ndim else None)
  patterns["nan.weights.h5"] = "non-finite values"
  old = tmp / "unrecorded.weights.h5"
  _tiny(channels=1).save_weights(str(old))  # Keras' own file: nothing recorded.
  patterns["unrecorded.weights.h5"] = r"conv1/kernel has shape \(3, 3, 3, 8\) in the model but"
  (tmp / "dir.weights.h5").mkdir()
  patterns["dir.weights.h5"] = "is a directory"
  return patterns


def test_every_bad_file_is_one_short_line_naming_it(tmp_path):
  for name, pattern in _corrupt_files(tmp_path).items():
    with pytest.raises(ValueError, match=pattern) as caught:
      keras_h5.load(_tiny(), tmp_path / name)
    message = str(caught.value)
    assert name in message and "\n" not in message and len(message) < 400, message
    assert "value=" not in message  # No tensor dump.


def test_temporaries_of_killed_writers_are_removed(tmp_path):
  dead = tmp_path / "tmp-999999999-model.weights.h5"
  mine = tmp_path / f"tmp-{os.getpid()}-model.weights.h5"
  for path in (dead, mine, tmp_path / "model.weights.h5"):
    path.write_bytes(b"x")
  removed = paths.remove_stale_temporaries(tmp_path, keras_h5.TEMPORARY_PATTERN)
  assert removed == [dead]
  assert sorted(p.name for p in tmp_path.iterdir()) == sorted([mine.name, "model.weights.h5"])
