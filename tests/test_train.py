"""Tests for mlsr_tf.training.train (supervised pretraining) and mlsr_tf.training.checkpoint."""

import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest

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


def test_training_lowers_the_loss_and_resume_equals_uninterrupted_run(image_folder, tmp_path):
  straight = train.run(_config(image_folder, tmp_path / "a"), log=lambda _: None)
  assert straight["iteration"] == 4
  losses = [event["loss"] for event in straight["history"]]
  assert losses[-1] < losses[0]

  # Resume: 2 + 2 iterations equal 4 straight ones (a constant learning rate, since the
  # cosine schedule is defined by the total number of iterations).
  constant = dict(final_learning_rate_fraction=1.0)
  train.run(_config(image_folder, tmp_path / "c", **constant), log=lambda _: None)
  train.run(_config(image_folder, tmp_path / "d", iterations=2, **constant), log=lambda _: None)
  train.run(_config(image_folder, tmp_path / "d", **constant), log=lambda _: None)
  weights = []
  for name in ("c", "d"):
    model = registry.build_model("tiny", scale=2, channels=3)
    model.load_weights(str(tmp_path / name / "model.weights.h5"))
    weights.append(model.get_weights())
  for a, b in zip(*weights):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  lines = (tmp_path / "d" / "log.jsonl").read_text().splitlines()
  assert [json.loads(line)["iteration"] for line in lines] == [2, 4]


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
  checkpoint.save(tmp_path / "ck", model, optimizer, {"iteration": 7})
  checkpoint.save(tmp_path / "ck", model, optimizer, {"iteration": 8})
  assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]  # No .tmp / .old left.

  other = registry.build_model("tiny", scale=2, channels=3)
  other_optimizer = keras.optimizers.Adam(1e-3)
  other_optimizer.build(other.trainable_variables)
  state = checkpoint.restore(tmp_path / "ck", other, other_optimizer)
  assert state == {"iteration": 8}
  assert int(other_optimizer.iterations) == 7
  for a, b in zip(model.get_weights(), other.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert checkpoint.restore(tmp_path / "missing", other, other_optimizer) is None


def test_checkpoint_restore_rejects_a_different_optimizer(tmp_path):
  model = registry.build_model("tiny", scale=2, channels=3)
  adam = keras.optimizers.Adam()
  adam.build(model.trainable_variables)
  checkpoint.save(tmp_path / "ck", model, adam, {})
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
