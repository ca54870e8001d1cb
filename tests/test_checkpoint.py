"""Tests for mlsr_tf.training.checkpoint: work-directory sessions, corrupt files, leftovers."""

import gc
import json
import os
import pathlib
import warnings

import keras
import numpy as np
import pytest

from mlsr_tf.models import registry
from mlsr_tf.training import checkpoint

CONFIG = {"seed": 0, "batch": 4, "log_every": 10}


def _model():
  return registry.build_model("tiny", scale=2, channels=3)


def _write_run(workdir: pathlib.Path, iteration: int = 3, config=None) -> keras.Model:
  """What a training tool leaves after a checkpoint: ckpt/ and model.weights.h5."""
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  model = _model()
  optimizer = keras.optimizers.Adam()
  optimizer.build(model.trainable_variables)
  workdir.mkdir(parents=True, exist_ok=True)
  checkpoint.save(workdir / "ckpt", model, optimizer,
                  {"iteration": iteration, "config": config or CONFIG})
  keras_h5.save(model, workdir / "model.weights.h5")
  return model


def _session(workdir, **kwargs):
  return checkpoint.workdir_session(workdir, "ckpt", outputs=("model.weights.h5", "log.jsonl"),
                                    **kwargs)


def test_fresh_and_resumed_sessions(tmp_path):
  with _session(tmp_path / "new" / "run") as session:
    assert session.state is None and session.workdir.is_dir()
  _write_run(tmp_path / "old")
  with _session(tmp_path / "old") as session:
    assert session.state["iteration"] == 3 and session.state["config"] == CONFIG


def test_a_failed_start_leaves_no_empty_directories(tmp_path):
  with pytest.raises(RuntimeError):
    with _session(tmp_path / "a" / "b" / "c"):
      raise RuntimeError("no data")
  assert list(tmp_path.iterdir()) == []
  (tmp_path / "kept").mkdir()
  with pytest.raises(RuntimeError):
    with _session(tmp_path / "kept" / "run"):
      (tmp_path / "kept" / "run" / "log.jsonl").write_text("{}\n")
      raise RuntimeError("failed after writing")
  assert (tmp_path / "kept" / "run" / "log.jsonl").exists()  # Not empty: kept.


def test_weights_without_state_are_refused_unless_overwrite(tmp_path):
  workdir = tmp_path / "run"
  _write_run(workdir)
  (workdir / "ckpt" / "state.json").unlink()
  (workdir / "log.jsonl").write_text("{}\n")
  before = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"holds weights but no readable checkpoint state .*state.json' is "
                           r"missing\); refusing to overwrite them: pass --overwrite"):
    with _session(workdir):
      pass
  assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == before
  with _session(workdir, overwrite=True) as session:
    assert session.state is None
    assert list(workdir.iterdir()) == []  # Checkpoint, weights and log discarded.


@pytest.mark.parametrize("content,pattern", [
    ("{}", "has no valid 'iteration'"),
    ('{"iteration": 3}', "has no 'config' object"),
    ('{"iteration": -1, "config": {}}', "-1"),
    ('{"iteration": 3, "conf', "unreadable"),
    ("[1, 2]", "not a JSON object"),
    ("\udcff", "unreadable"),
])
def test_unreadable_states_are_one_line_naming_the_file(tmp_path, content, pattern):
  workdir = tmp_path / "run"
  _write_run(workdir)
  (workdir / "ckpt" / "state.json").write_bytes(content.encode("utf-8", "surrogateescape"))
  with pytest.raises(checkpoint.CheckpointError, match=pattern) as caught:
    with _session(workdir):
      pass
  message = str(caught.value)
  assert "state.json" in message and "\n" not in message and "--overwrite" in message


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
@pytest.mark.parametrize("name", ["model.weights.h5", "optimizer.npz"])
def test_corrupt_checkpoint_files_are_one_line_naming_the_file(tmp_path, name, damage):
  workdir = tmp_path / "run"
  _write_run(workdir)
  path = workdir / "ckpt" / name
  data = path.read_bytes()
  path.write_bytes({"truncate": data[:len(data) // 2], "garbage": b"\x00garbage" * 50,
                    "empty": b""}[damage])
  model = _model()
  optimizer = keras.optimizers.Adam()
  optimizer.build(model.trainable_variables)
  with warnings.catch_warnings(record=True) as warned:
    warnings.simplefilter("always", ResourceWarning)
    with pytest.raises(ValueError) as caught:
      checkpoint.restore(workdir / "ckpt", model, optimizer)
    gc.collect()
  message = str(caught.value)
  assert name in message and "\n" not in message and len(message) < 400, message
  # The refused file is closed (np.load(path) leaks it when a zip is truncated).
  assert not [w for w in warned if issubclass(w.category, ResourceWarning)], \
      [str(w.message) for w in warned]


def test_resuming_with_a_different_configuration_names_the_fields(tmp_path):
  saved = {"seed": 0, "batch": 4, "log_every": 10, "weights": [1, 2]}
  now = {"seed": 1, "batch": 8, "log_every": 99, "weights": (1, 2), "new_field": 5}
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"in 'w' with a different configuration: seed 0 -> 1, batch 4 -> 8 "
                           r"\(these change the result"):
    checkpoint.check_same_run(saved, now, ("seed", "batch", "weights"), "w")
  checkpoint.check_same_run(saved, now, ("weights",), "w")  # Tuples equal saved lists.
  # A field older states lack counts as its default (what those runs did).
  checkpoint.check_same_run(saved, now, ("new_field",), "w", defaults={"new_field": 5})
  with pytest.raises(checkpoint.CheckpointError, match="new_field '<not recorded>' -> 5"):
    checkpoint.check_same_run(saved, now, ("new_field",), "w")


def test_leftovers_of_a_killed_writer_are_cleaned_or_recovered(tmp_path):
  workdir = tmp_path / "run"
  model = _write_run(workdir, iteration=3)
  # Killed between the two renames of save(): only ckpt.old is complete.
  os.replace(workdir / "ckpt", workdir / "ckpt.old")
  (workdir / "ckpt.tmp").mkdir()
  (workdir / "ckpt.tmp" / "model.weights.h5").write_bytes(b"half")
  (workdir / "tmp-999999999-model.weights.h5").write_bytes(b"half")
  (workdir / "model.weights.h5.tmp.weights.h5").write_bytes(b"half")  # Older versions.
  (workdir / "validated").mkdir()
  (workdir / "validated" / "tmp-999999999-iteration_000001.weights.h5").write_bytes(b"half")
  with checkpoint.workdir_session(workdir, "ckpt", subdirectories=("validated",)) as session:
    assert session.state["iteration"] == 3
  assert sorted(p.name for p in workdir.iterdir()) == ["ckpt", "model.weights.h5",
                                                       "validated"]
  assert list((workdir / "validated").iterdir()) == []
  restored = _model()
  checkpoint.restore(workdir / "ckpt", restored)
  for a, b in zip(model.get_weights(), restored.get_weights()):
    np.testing.assert_array_equal(a, b)


def test_one_run_per_work_directory(tmp_path):
  with _session(tmp_path / "run"):
    with pytest.raises(checkpoint.CheckpointError, match="in use by another run"):
      with _session(tmp_path / "run"):
        pass
  with _session(tmp_path / "run"):  # Released again.
    pass


def test_a_file_as_work_directory(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(checkpoint.CheckpointError, match="exists and is not a directory"):
    with _session(tmp_path / "file"):
      pass
  assert (tmp_path / "file").read_text() == "x"


def test_state_json_records_are_read_back_exactly(tmp_path):
  _write_run(tmp_path / "run", iteration=7, config={"a": [1, 2]})
  state = json.loads((tmp_path / "run" / "ckpt" / "state.json").read_text())
  assert checkpoint.read_state(tmp_path / "run" / "ckpt") == state


def test_a_complete_temporary_checkpoint_is_the_newest_and_kept(tmp_path):
  """Killed after writing <dir>.tmp completely but before renaming it: no work is lost."""
  workdir = tmp_path / "run"
  _write_run(workdir, iteration=3)
  newer = tmp_path / "newer"
  _write_run(newer, iteration=5)
  os.replace(workdir / "ckpt", workdir / "ckpt.old")
  os.replace(newer / "ckpt", workdir / "ckpt.tmp")
  with _session(workdir) as session:
    assert session.state["iteration"] == 5
  assert sorted(p.name for p in workdir.iterdir()) == ["ckpt", "model.weights.h5"]
  # An incomplete one (its state not yet written) is dropped for the previous checkpoint.
  _write_run(newer, iteration=7)
  (newer / "ckpt" / "state.json").write_text('{"iteration": 7, "con')
  os.replace(newer / "ckpt", workdir / "ckpt.tmp")
  with _session(workdir) as session:
    assert session.state["iteration"] == 5
  assert not (workdir / "ckpt.tmp").exists()
