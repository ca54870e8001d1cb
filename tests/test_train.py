"""Tests for mlsr_tf.training.train (supervised pretraining) and mlsr_tf.training.checkpoint."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

import fault_injection
from mlsr_tf.training import checkpoint
from mlsr_tf.training import train
from mlsr_tf.data import image_io
from mlsr_tf.data import sampling
from mlsr_tf.data import synthetic
from mlsr_tf.models import registry

REPO = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture
def image_folder(tmp_path):
  folder = tmp_path / "images"
  folder.mkdir()
  for seed in range(3):
    image_io.write_png(folder / f"im{seed}.png", synthetic.demo_image(64, 72, seed=seed))
  return folder


def _config(folder, workdir, **overrides):
  values = dict(model="tiny", scale=2, channels=3, data=str(folder), patch=16, batch=2,
                iterations=4, pool_size=32, workers=1, workdir=str(workdir),
                checkpoint_every=2, validate_every=1000, log_every=2, validation="",
                learning_rate=1e-3, jit_compile=False)
  values.update(overrides)
  return train.TrainConfig(**values)


def test_config_rejects_bad_values_and_repeats_them():
  for field, value in (("scale", 5), ("loss", "huber"), ("batch", 0), ("patch", 15),
                       ("learning_rate", float("nan")), ("iterations", -1)):
    config = train.TrainConfig(**{field: value})
    with pytest.raises(ValueError, match=str(value) if field != "learning_rate" else "nan"):
      config.validate()


def test_pool_is_deterministic_and_independent_of_worker_count(image_folder):
  images = [image_io.read_image(p) for p in sorted(image_folder.iterdir())]
  sampler = sampling.PatchSampler(images, 16, seed=1, multiple_of=2)
  make = train.degradation_sampler("bicubic", 2)
  lr_a, hr_a = train.build_pool(sampler, make, 40, seed=3, workers=1, chunk=16)
  lr_b, hr_b = train.build_pool(sampler, make, 40, seed=3, workers=2, chunk=16)
  np.testing.assert_array_equal(lr_a, lr_b)
  np.testing.assert_array_equal(hr_a, hr_b)
  assert lr_a.shape == (40, 8, 8, 3) and hr_a.shape == (40, 16, 16, 3)
  lr_batch, hr_batch = train.pool_batch(lr_a, hr_a, seed=0, iteration=5, batch=4)
  assert lr_batch.dtype == np.float32 and 0 <= lr_batch.min() and hr_batch.max() <= 1


def test_degradation_sampler_fixed_and_distribution():
  rng = np.random.default_rng(0)
  assert train.degradation_sampler("bicubic", 2)(rng).kernel is None
  fixed = train.degradation_sampler("gaussian:1.0", 2)
  assert fixed(rng).kernel is not None
  mixed = train.degradation_sampler("mixed", 2)
  kinds = {mixed(rng).kernel is None for _ in range(30)}
  assert kinds == {True, False}  # Both bicubic and kernel degradations are drawn.


def _weights_of(workdir):
  model = registry.build_model("tiny", scale=2, channels=3)
  model.load_weights(str(pathlib.Path(workdir) / "model.weights.h5"))
  return model.get_weights()


def _assert_same_weights(workdir_a, workdir_b):
  a, b = _weights_of(workdir_a), _weights_of(workdir_b)
  assert len(a) == len(b) and a
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x, y)  # Bit for bit.


def test_training_lowers_the_loss_and_resume_equals_uninterrupted_run(image_folder, tmp_path):
  # The README's recipe: the same flags and workdir, a larger --iterations.  The cosine
  # schedule (decay_steps=5, so that it matters in 4 iterations) is not tied to --iterations.
  flags = dict(decay_steps=5, learning_rate=1e-2)
  straight = train.run(_config(image_folder, tmp_path / "a", **flags), log=lambda _: None)
  assert straight["iteration"] == 4
  losses = [event["loss"] for event in straight["history"]]
  assert losses[-1] < losses[0]
  rates = [event["learning_rate"] for event in straight["history"]]
  assert rates[1] < rates[0]  # The schedule decays.

  train.run(_config(image_folder, tmp_path / "b", iterations=2, **flags), log=lambda _: None)
  lines = []
  resumed = train.run(_config(image_folder, tmp_path / "b", **flags), log=lines.append)
  assert "resumed from iteration 2" in lines
  _assert_same_weights(tmp_path / "a", tmp_path / "b")
  assert [e["learning_rate"] for e in resumed["history"]] == rates
  lines = (tmp_path / "b" / "log.jsonl").read_text().splitlines()
  assert [json.loads(line)["iteration"] for line in lines] == [2, 4]
  # Already done: nothing to do, nothing rewritten.
  before = (tmp_path / "b" / "model.weights.h5").stat().st_mtime_ns
  again = train.run(_config(image_folder, tmp_path / "b", **flags), log=lambda _: None)
  assert again["iteration"] == 4
  assert (tmp_path / "b" / "model.weights.h5").stat().st_mtime_ns == before


@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_trains_float32_weights_and_resumes(image_folder, tmp_path, precision):
  before = keras.config.dtype_policy().name
  result = train.run(_config(image_folder, tmp_path / "m", precision=precision, iterations=2,
                             learning_rate=1e-2), log=lambda _: None)
  assert keras.config.dtype_policy().name == before  # The global policy is restored.
  assert all(np.isfinite(event["loss"]) for event in result["history"])
  # Saved weights are float32 and load into the ordinary (float32) model, changed by training.
  model = registry.build_model("tiny", scale=2, channels=3)
  model.load_weights(str(tmp_path / "m" / "model.weights.h5"))
  keras.utils.set_random_seed(0)  # The initial weights of the run (config seed 0).
  initial = registry.build_model("tiny", scale=2, channels=3)
  assert all(w.dtype == np.float32 for w in model.get_weights())
  assert any(not np.allclose(a, b) for a, b in zip(model.get_weights(), initial.get_weights()))
  # Resuming the mixed-precision checkpoint continues from iteration 2 (Adam state restored;
  # a float16 loss scale restarts from its initial value).
  again = train.run(_config(image_folder, tmp_path / "m", precision=precision, iterations=4,
                            learning_rate=1e-2), log=lambda _: None)
  assert again["iteration"] == 4


def test_precision_is_validated():
  with pytest.raises(ValueError, match="'float8'"):
    train.TrainConfig(precision="float8").validate()


def test_checkpoint_round_trip_and_atomic_replacement(tmp_path):
  model = registry.build_model("tiny", scale=2, channels=3)
  optimizer = keras.optimizers.Adam(1e-3)
  optimizer.build(model.trainable_variables)
  optimizer.iterations.assign(7)
  checkpoint.save(tmp_path / "ck", model, optimizer, {"iteration": 7, "config": {}})
  checkpoint.save(tmp_path / "ck", model, optimizer, {"iteration": 8, "config": {}})
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # No .tmp / .old left.

  other = registry.build_model("tiny", scale=2, channels=3)
  other_optimizer = keras.optimizers.Adam(1e-3)
  other_optimizer.build(other.trainable_variables)
  state = checkpoint.restore(tmp_path / "ck", other, other_optimizer)
  assert state == {"iteration": 8, "config": {}}
  assert int(other_optimizer.iterations) == 7
  for a, b in zip(model.get_weights(), other.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert checkpoint.restore(tmp_path / "missing", other, other_optimizer) is None


def test_checkpoint_restore_rejects_a_different_optimizer(tmp_path):
  model = registry.build_model("tiny", scale=2, channels=3)
  adam = keras.optimizers.Adam()
  adam.build(model.trainable_variables)
  checkpoint.save(tmp_path / "ck", model, adam, {"iteration": 0, "config": {}})
  sgd = keras.optimizers.SGD(momentum=0.0)
  sgd.build(model.trainable_variables)
  with pytest.raises(ValueError, match="optimizer variables"):
    checkpoint.restore(tmp_path / "ck", model, sgd)


def test_train_tool_bad_flag_gives_one_line_and_exit_2(tmp_path):
  result = subprocess.run(
      [sys.executable, str(REPO / "tools" / "train.py"), "--patch", "15", "--scale", "2",
       "--data", str(tmp_path), "--workdir", str(tmp_path / "w")],
      capture_output=True, text=True, timeout=120,
      env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
  assert result.returncode == 2
  errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and "15" in errors[0]


# ----------------------------------------------------------------- lost work (issue 14)


def test_resuming_with_other_result_flags_is_refused_naming_them(image_folder, tmp_path):
  train.run(_config(image_folder, tmp_path / "w", iterations=2), log=lambda _: None)
  before = (tmp_path / "w" / "model.weights.h5").read_bytes()
  with pytest.raises(checkpoint.CheckpointError,
                     match=r"different configuration: batch 2 -> 3, seed 0 -> 1 \(these change"):
    train.run(_config(image_folder, tmp_path / "w", seed=1, batch=3), log=lambda _: None)
  with pytest.raises(checkpoint.CheckpointError, match="decay_steps 20000 -> 10"):
    train.run(_config(image_folder, tmp_path / "w", decay_steps=10), log=lambda _: None)
  assert (tmp_path / "w" / "model.weights.h5").read_bytes() == before
  # Settings that do not change the result may differ.
  result = train.run(_config(image_folder, tmp_path / "w", log_every=1, checkpoint_every=1,
                             validate_every=7, workers=2), log=lambda _: None)
  assert result["iteration"] == 4


def test_lost_state_is_refused_and_overwrite_starts_again(image_folder, tmp_path):
  train.run(_config(image_folder, tmp_path / "w", iterations=2), log=lambda _: None)
  (tmp_path / "w" / "ckpt" / "state.json").unlink()
  before = (tmp_path / "w" / "model.weights.h5").read_bytes()
  with pytest.raises(checkpoint.CheckpointError, match="holds weights but no readable"):
    train.run(_config(image_folder, tmp_path / "w"), log=lambda _: None)
  assert (tmp_path / "w" / "model.weights.h5").read_bytes() == before
  lines = []
  train.run(_config(image_folder, tmp_path / "w", overwrite=True), log=lines.append)
  assert not any("resumed" in line for line in lines)
  events = [json.loads(l) for l in (tmp_path / "w" / "log.jsonl").read_text().splitlines()]
  assert [e["iteration"] for e in events] == [2, 4]  # The old log was discarded too.


def test_failed_start_leaves_no_work_directory(tmp_path):
  with pytest.raises(ValueError, match="missing_images"):
    train.run(_config(tmp_path / "missing_images", tmp_path / "runs" / "w"), log=lambda _: None)
  assert not (tmp_path / "runs").exists()


# Renames of one checkpoint (every 2 iterations): tmp-<pid>-model.weights.h5 into ckpt.tmp/,
# ckpt -> ckpt.old, ckpt.tmp -> ckpt, then tmp-<pid>-model.weights.h5 -> model.weights.h5.
@pytest.mark.parametrize("point,resumed_at", [
    ("tmp-*-model.weights.h5:3", 2),  # Iteration 4's ckpt.tmp incomplete: iteration 2 used.
    ("ckpt.tmp:2", 4),  # Between the renames: ckpt.tmp complete, ckpt is ckpt.old.
    ("tmp-*-model.weights.h5:4", 4),  # Checkpoint done, workdir weights not yet renamed.
])
def test_kill_during_checkpoint_write_loses_no_work(image_folder, tmp_path, point, resumed_at):
  """SIGKILL inside the second checkpoint (iteration 4 of 6), then resume: the result is
  bit for bit that of an uninterrupted run, and no leftovers remain."""
  flags = dict(iterations=6, decay_steps=5, learning_rate=1e-2)
  train.run(_config(image_folder, tmp_path / "straight", **flags), log=lambda _: None)
  fault_injection.run_until_killed(point, "mlsr_tf.training.train", "TrainConfig",
                                   _config(image_folder, tmp_path / "killed", **flags))
  clean = ["ckpt", "log.jsonl", "model.weights.h5"]
  assert sorted(p.name for p in (tmp_path / "killed").iterdir()) != clean  # Leftovers.
  lines = []
  result = train.run(_config(image_folder, tmp_path / "killed", **flags), log=lines.append)
  assert result["iteration"] == 6
  assert f"resumed from iteration {resumed_at}" in lines
  _assert_same_weights(tmp_path / "straight", tmp_path / "killed")
  assert sorted(p.name for p in (tmp_path / "killed").iterdir()) == clean
