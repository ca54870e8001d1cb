"""Tests of the meta-training library and tool (resume determinism, outputs, errors)."""

import dataclasses
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fault_injection
from mlsr_tf.training import meta_train
from mlsr_tf.data import image_io

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(name="data_dir")
def fixture_data_dir(tmp_path):
  rng = np.random.default_rng(0)
  folder = tmp_path / "images"
  folder.mkdir()
  for i in range(3):
    base = rng.integers(0, 256, (6, 7, 3)).astype(np.float64)
    image = np.kron(base, np.ones((6, 6, 1))) + rng.normal(0, 8, (36, 42, 3))
    image_io.write_png(folder / f"im{i}.png", np.clip(image, 0, 255).astype(np.uint8))
  return folder


def _config(workdir, data_dir, **kwargs):
  values = dict(workdir=str(workdir), model="tiny", weights=None, channels=3,
                data=str(data_dir), patch=16, batch=2, inner_steps=2, alpha=0.5, beta=1e-3,
                iterations=3, degradation="mixed", validate_every=0, log_every=1,
                checkpoint_every=1)
  values.update(kwargs)
  return meta_train.MetaTrainConfig(**values)


def _weights(path):
  import h5py  # pylint: disable=g-import-not-at-top
  values = []
  with h5py.File(path, "r") as f:
    f.visititems(lambda name, obj: values.append((name, obj[()]))
                 if isinstance(obj, h5py.Dataset) else None)
  return values


def test_resume_equals_uninterrupted_run(tmp_path, data_dir):
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)  # Same initial weights for both runs (tiny has no file).
  straight = _config(tmp_path / "straight", data_dir)
  meta_train.run(straight, log=lambda _: None)
  keras.utils.set_random_seed(0)
  resumed = _config(tmp_path / "resumed", data_dir, iterations=2)
  meta_train.run(resumed, log=lambda _: None)
  lines = []
  result = meta_train.run(dataclasses.replace(resumed, iterations=3), log=lines.append)
  assert result["iteration"] == 3
  assert any("resuming from iteration 2" in line for line in lines)
  a = _weights(tmp_path / "straight" / "model.weights.h5")
  b = _weights(tmp_path / "resumed" / "model.weights.h5")
  assert [n for n, _ in a] == [n for n, _ in b] and a
  for (_, x), (_, y) in zip(a, b):
    np.testing.assert_array_equal(x, y)
  # The checkpoint and the metrics log are complete.
  state = json.loads((tmp_path / "straight" / "checkpoint" / "state.json").read_text())
  assert state["iteration"] == 3
  events = [json.loads(l) for l in (tmp_path / "straight" / "metrics.jsonl").read_text().splitlines()]
  assert [e["iteration"] for e in events] == [1, 2, 3]
  # Already done: nothing to do, weights untouched.
  again = meta_train.run(straight, log=lambda _: None)
  assert again["iteration"] == 3


def test_validation_reports_bicubic_base_adapted(tmp_path, data_dir):
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  config = _config(tmp_path / "run", data_dir, iterations=1, validate_every=1,
                   validation=str(data_dir), validation_images=2, validation_size=24,
                   validation_steps=2, degradation="bicubic")
  result = meta_train.run(config, log=lambda _: None)
  scores = result["validation"][str(data_dir)]
  assert set(scores) == {"bicubic", "base", "adapted"}
  assert all(10 < v < 60 for v in scores.values())
  assert scores["adapted"] != scores["base"]


def test_fixed_validation_degradations_and_kept_weights(tmp_path, data_dir):
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  specs = ("bicubic", "gaussian:2.0,2.0,0")
  config = _config(tmp_path / "run", data_dir, iterations=2, validate_every=1,
                   validation=str(data_dir), validation_images=2, validation_size=24,
                   validation_steps=1, mixture_weights="2,1,1",
                   validation_degradations=specs, keep_validated_weights=True)
  result = meta_train.run(config, log=lambda _: None)
  keys = [f"{data_dir}/{spec}" for spec in specs]
  assert sorted(result["validation"]) == sorted(keys)
  bicubic, blurred = (result["validation"][k] for k in keys)
  # Gaussian sigma 2 with direct subsampling is far blurrier than bicubic.
  assert blurred["bicubic"] < bicubic["bicubic"] - 1
  kept = sorted(p.name for p in (tmp_path / "run" / "validated").iterdir())
  assert kept == [f"iteration_{i:06d}.weights.h5" for i in (0, 1, 2)]
  # The last kept snapshot is the final model.
  for (_, x), (_, y) in zip(_weights(tmp_path / "run" / "validated" / kept[-1]),
                            _weights(tmp_path / "run" / "model.weights.h5")):
    np.testing.assert_array_equal(x, y)


def test_bad_config_raises_with_value(tmp_path, data_dir):
  with pytest.raises(ValueError, match="18"):
    meta_train.run(_config(tmp_path / "x", data_dir, patch=18), log=lambda _: None)
  with pytest.raises(ValueError, match="'third'"):
    meta_train.run(_config(tmp_path / "x", data_dir, order="third"), log=lambda _: None)
  with pytest.raises(ValueError, match="'jax'"):
    meta_train.run(_config(tmp_path / "x", data_dir, backend="jax"), log=lambda _: None)
  with pytest.raises(ValueError, match="'1,2'"):
    meta_train.run(_config(tmp_path / "x", data_dir, mixture_weights="1,2"), log=lambda _: None)
  with pytest.raises(ValueError, match="'bicubic'"):
    meta_train.run(_config(tmp_path / "x", data_dir, degradation="bicubic",
                           mixture_weights="1,1,1"), log=lambda _: None)
  with pytest.raises(ValueError, match="'blur'"):
    meta_train.run(_config(tmp_path / "x", data_dir, validation_degradations=("blur",)),
                   log=lambda _: None)
  with pytest.raises(ValueError, match="anchor_weight 0.0"):
    meta_train.run(_config(tmp_path / "x", data_dir, anchor_data=str(data_dir)),
                   log=lambda _: None)
  with pytest.raises(ValueError, match="-2"):
    meta_train.run(_config(tmp_path / "x", data_dir, anchor_data=str(data_dir),
                           anchor_weight=-2.0), log=lambda _: None)


def test_anchor_batch_is_bicubic_patches_of_its_own_data_and_resumes(tmp_path, data_dir):
  """The anchor patches come from --anchor_data (not the tasks' images), bicubic, and the
  run with an anchor resumes to the same weights as an uninterrupted one."""
  other = tmp_path / "other"
  other.mkdir()
  image_io.write_png(other / "flat.png", np.full((40, 40, 3), 77, np.uint8))
  config = _config(tmp_path / "a", data_dir, anchor_data=str(other), anchor_weight=1.0)
  batch = meta_train.sample_batch(meta_train.make_task_sampler(config, 3),
                                  meta_train.make_anchor_sampler(config, 3), 5, config)
  assert batch["anchor_hr"].shape == batch["hr"].shape
  np.testing.assert_allclose(batch["anchor_hr"], 77 / 255, atol=1e-6)
  np.testing.assert_allclose(batch["anchor_lr"], 77 / 255, atol=1e-5)
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  lines = []
  meta_train.run(config, log=lines.append)
  assert any("anchor loss" in line for line in lines)
  keras.utils.set_random_seed(0)
  resumed = dataclasses.replace(config, workdir=str(tmp_path / "b"), iterations=2)
  meta_train.run(resumed, log=lambda _: None)
  meta_train.run(dataclasses.replace(resumed, iterations=3), log=lambda _: None)
  for (_, x), (_, y) in zip(_weights(tmp_path / "a" / "model.weights.h5"),
                            _weights(tmp_path / "b" / "model.weights.h5")):
    np.testing.assert_array_equal(x, y)


def test_anchor_degradation_makes_the_anchor_lr_with_the_given_blurs(tmp_path, data_dir):
  """A kernel-aware anchor: Gaussian-blurred LR patches are smoother than bicubic ones."""
  noise = tmp_path / "noise"
  noise.mkdir()
  image_io.write_png(noise / "n.png", (np.random.default_rng(0).random((64, 64, 3)) * 255)
                     .astype(np.uint8))
  config = _config(tmp_path / "a", data_dir, anchor_data=str(noise), anchor_weight=1.0)

  def lr_to_hr_contrast(kind):
    anchored = dataclasses.replace(config, anchor_degradation=kind)
    anchored.validate()
    sampler = meta_train.make_anchor_sampler(anchored, 3)
    ratios = []
    for iteration in range(8):
      batch = meta_train.sample_batch(meta_train.make_task_sampler(anchored, 3), sampler,
                                      iteration, anchored)
      assert batch["anchor_lr"].shape[1:3] == tuple(s // 2 for s in batch["anchor_hr"].shape[1:3])
      ratios.append(batch["anchor_lr"].std() / batch["anchor_hr"].std())
    return float(np.mean(ratios))
  assert lr_to_hr_contrast("gaussian") < 0.8 * lr_to_hr_contrast("bicubic")
  with pytest.raises(ValueError, match="'blurry'"):
    dataclasses.replace(config, anchor_degradation="blurry").validate()


def test_sigma_min_aims_the_tasks_at_heavy_blur_and_the_anchor_keeps_every_blur(
    tmp_path, data_dir):
  config = _config(tmp_path / "a", data_dir, degradation="gaussian", sigma_min=1.7,
                   sigma_max=3.0, anchor_data=str(data_dir), anchor_weight=1.0,
                   anchor_degradation="gaussian")
  config.validate()
  rng = np.random.default_rng(0)

  def drawn_sigmas(sampler):  # Names are gaussian_SX_SY_THETA.
    names = [sampler.distribution.sample(rng).name for _ in range(300)]
    return np.array([[float(v) for v in name.split("_")[1:3]] for name in names])
  tasks_sigmas = drawn_sigmas(meta_train.make_task_sampler(config, 3))
  anchor_sigmas = drawn_sigmas(meta_train.make_anchor_sampler(config, 3))
  assert 1.7 <= tasks_sigmas.min() and tasks_sigmas.max() <= 3.0
  assert anchor_sigmas.min() < 0.5 and anchor_sigmas.max() > 2.5
  # Left at its default, the tasks are the ones runs drew before sigma_min existed.
  default = _config(tmp_path / "b", data_dir, degradation="gaussian")
  assert meta_train.make_task_sampler(default, 3).distribution.sigma_range == (0.2, 3.0)
  for bad in (0.0, -1.0, float("nan"), 3.5):
    with pytest.raises(ValueError, match=f"got {bad!r}"):
      dataclasses.replace(config, sigma_min=bad).validate()


def test_tool_bad_input_exits_2(tmp_path):
  done = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "tools", "meta_train.py"), "--model", "tiny",
       "--data", str(tmp_path / "missing"), "--workdir", str(tmp_path / "w"),
       "--iterations", "1", "--patch", "16"],
      capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 2, done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("error:") and "missing" in last


@pytest.mark.parametrize("flags,value", [
    (["--mixture_weights", "1,2"], "'1,2'"),
    (["--sigma_min", "5", "--sigma_max", "4"], "got 5.0"),
])
def test_tool_bad_task_flags_exit_2_with_the_value(tmp_path, data_dir, flags, value):
  done = subprocess.run(
      [sys.executable, os.path.join(REPO_ROOT, "tools", "meta_train.py"), "--model", "tiny",
       "--data", str(data_dir), "--workdir", str(tmp_path / "w"), "--iterations", "1",
       "--patch", "16"] + flags,
      capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == 2, done.stderr[-2000:]
  last = done.stderr.strip().splitlines()[-1]
  assert last.startswith("error:") and value in last
  assert not (tmp_path / "w" / "model.weights.h5").exists()


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_weights(
    tmp_path, data_dir, monkeypatch):
  """A meta loss that blows up must not overwrite good weights with NaNs."""
  config = _config(tmp_path / "run", data_dir, iterations=1)
  meta_train.run(config, log=lambda _: None)
  good = _weights(tmp_path / "run" / "model.weights.h5")
  real = meta_train.make_trainer

  def exploding_trainer(*args, **kwargs):  # Iteration 2 diverges (as too large a step would).
    trainer = real(*args, **kwargs)
    step = trainer.step
    trainer.step = lambda batch: dict(step(batch), meta_loss=float("nan"))
    return trainer
  monkeypatch.setattr(meta_train, "make_trainer", exploding_trainer)
  with pytest.raises(meta_train.DivergedError, match="iteration 2.*iteration 1"):
    meta_train.run(dataclasses.replace(config, iterations=4), log=lambda _: None)
  after = _weights(tmp_path / "run" / "model.weights.h5")
  for (name_a, a), (name_b, b) in zip(good, after):
    assert name_a == name_b
    np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------- lost work (issue 14)


@pytest.mark.parametrize("changes,named", [
    (dict(seed=1, batch=3), "batch 2 -> 3, seed 0 -> 1"),
    (dict(patch=32, degradation="bicubic"), "patch 16 -> 32, degradation 'mixed' -> 'bicubic'"),
])
def test_resuming_with_other_result_flags_is_refused(tmp_path, data_dir, changes, named):
  from mlsr_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  config = _config(tmp_path / "run", data_dir, iterations=1)
  meta_train.run(config, log=lambda _: None)
  before = (tmp_path / "run" / "model.weights.h5").read_bytes()
  with pytest.raises(checkpoint.CheckpointError, match=rf"configuration: {named} \(these"):
    meta_train.run(dataclasses.replace(config, iterations=2, **changes), log=lambda _: None)
  assert (tmp_path / "run" / "model.weights.h5").read_bytes() == before


def test_lost_state_is_refused_and_failed_starts_leave_nothing(tmp_path, data_dir):
  from mlsr_tf.training import checkpoint  # pylint: disable=g-import-not-at-top
  config = _config(tmp_path / "run", data_dir, iterations=1)
  meta_train.run(config, log=lambda _: None)
  (tmp_path / "run" / "checkpoint" / "state.json").unlink()
  with pytest.raises(checkpoint.CheckpointError, match="holds weights but no readable"):
    meta_train.run(dataclasses.replace(config, iterations=2), log=lambda _: None)
  result = meta_train.run(dataclasses.replace(config, iterations=2, overwrite=True),
                          log=lambda _: None)
  assert result["iteration"] == 2
  state = json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())
  assert state["iteration"] == 2
  with pytest.raises(ValueError, match="nothing_here"):
    meta_train.run(_config(tmp_path / "new" / "run", tmp_path / "nothing_here"),
                   log=lambda _: None)
  assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("name", ["model.weights.h5", "optimizer.npz", "state.json"])
def test_corrupt_checkpoint_files_are_one_line_naming_them(tmp_path, data_dir, name):
  config = _config(tmp_path / "run", data_dir, iterations=1)
  meta_train.run(config, log=lambda _: None)
  path = tmp_path / "run" / "checkpoint" / name
  path.write_bytes(path.read_bytes()[:40])
  with pytest.raises(ValueError) as caught:
    meta_train.run(dataclasses.replace(config, iterations=2), log=lambda _: None)
  message = str(caught.value)
  assert name in message and "\n" not in message and len(message) < 400, message


@pytest.mark.parametrize("point,resumed_at", [("checkpoint.tmp:2", 2),
                                              ("tmp-*-model.weights.h5:4", 2)])
def test_kill_during_checkpoint_write_loses_no_work(tmp_path, data_dir, point, resumed_at):
  """SIGKILL inside the second checkpoint, then resume: bit for bit an uninterrupted run."""
  import keras  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  meta_train.run(_config(tmp_path / "straight", data_dir), log=lambda _: None)
  config = _config(tmp_path / "killed", data_dir)
  fault_injection.run_until_killed(point, "mlsr_tf.training.meta_train", "MetaTrainConfig",
                                   config)
  clean = {"checkpoint", "metrics.jsonl", "model.weights.h5", "tensorboard"}
  leftovers = lambda: {p.name for p in (tmp_path / "killed").iterdir()} - clean
  assert leftovers()  # What a killed writer leaves (checkpoint.old/.tmp, tmp-<pid>-...).
  lines = []
  meta_train.run(config, log=lines.append)
  assert f"resuming from iteration {resumed_at} in {tmp_path / 'killed'}" in lines
  for (_, x), (_, y) in zip(_weights(tmp_path / "straight" / "model.weights.h5"),
                            _weights(tmp_path / "killed" / "model.weights.h5")):
    np.testing.assert_array_equal(x, y)
  assert not leftovers()


@pytest.mark.slow  # A tool subprocess that runs until it is interrupted.
def test_ctrl_c_prints_one_line_and_the_rerun_resumes(tmp_path, data_dir):
  """SIGINT (Ctrl-C) during a run: exit 130 and one line on how to resume, no traceback; the
  same command then resumes from the last checkpoint."""
  import signal  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  command = [sys.executable, os.path.join(REPO_ROOT, "tools", "meta_train.py"), "--model",
             "tiny", "--channels", "3", "--data", str(data_dir), "--workdir",
             str(tmp_path / "w"), "--patch", "16", "--batch", "2", "--inner_steps", "2",
             "--alpha", "0.5", "--beta", "1e-3", "--validate_every", "0", "--log_every", "1",
             "--checkpoint_every", "1"]
  log = tmp_path / "stdout.txt"
  with open(log, "w", encoding="utf-8") as out:
    # SIGINT back to its default in the child: a shell without job control starts background
    # jobs with SIGINT ignored, and Python then never raises KeyboardInterrupt.
    proc = subprocess.Popen(command + ["--iterations", "100000"], stdout=out,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    # Iteration 4's log line comes after iteration 3's checkpoint (each iteration logs, then
    # saves), so waiting for it makes "at least 3 saved" certain whenever the signal lands.
    while "iteration 4/" not in log.read_text() and proc.poll() is None:
      assert time.time() < deadline, "the run did not reach iteration 4"
      time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
  assert proc.returncode == 130, stderr[-2000:]
  lines = [l for l in stderr.strip().splitlines() if l.strip()]
  assert lines[-1].startswith("interrupted; the last checkpoint is kept in "), lines[-3:]
  assert "Traceback" not in stderr
  state = json.loads((tmp_path / "w" / "checkpoint" / "state.json").read_text())
  assert state["iteration"] >= 3
  lines = []  # The same settings, in this process (one TensorFlow import fewer).
  meta_train.run(_config(tmp_path / "w", data_dir, iterations=state["iteration"] + 1),
                 log=lines.append)
  assert f"resuming from iteration {state['iteration']} in {tmp_path / 'w'}" in lines


def test_initial_step_sizes_continue_an_earlier_runs_learned_step_sizes(tmp_path, data_dir):
  """--initial_step_sizes: a new run starts its learned step sizes at the file's values (not at
  alpha), then learns on from them; a file of another step count, or without
  --learn_step_sizes, is refused naming the file."""
  from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
  first = _config(tmp_path / "first", data_dir, iterations=2, learn_step_sizes=True,
                  step_size_learning_rate=0.5)
  meta_train.run(first, log=lambda _: None)
  learned_path = tmp_path / "first" / meta_train.STEP_SIZES_FILE
  model = meta_train.build_model(first)
  learned = step_sizes_lib.load(learned_path, model)
  assert not np.allclose(learned, first.alpha)  # The first run moved them.

  second = _config(tmp_path / "second", data_dir, iterations=1, learn_step_sizes=True,
                   step_size_learning_rate=0.5, initial_step_sizes=str(learned_path), seed=1)
  trainer = meta_train.make_trainer(meta_train.build_model(second), second)
  meta_train.set_initial_step_sizes(trainer, second)
  np.testing.assert_allclose(trainer.step_sizes(), learned, rtol=1e-6)
  # With zero step-size learning the run keeps them exactly as given.
  frozen = dataclasses.replace(second, step_size_learning_rate=0.0)
  meta_train.run(frozen, log=lambda _: None)
  np.testing.assert_allclose(
      step_sizes_lib.load(tmp_path / "second" / meta_train.STEP_SIZES_FILE, model), learned,
      rtol=1e-6)

  # A bound below the file's largest value: the run starts (and saves) them clipped to it,
  # and a resume with another bound is refused (the bound changes the result).
  cap = float(np.median(learned))
  bounded = dataclasses.replace(frozen, workdir=str(tmp_path / "bounded"), max_step_size=cap)
  meta_train.run(bounded, log=lambda _: None)
  np.testing.assert_allclose(
      step_sizes_lib.load(tmp_path / "bounded" / meta_train.STEP_SIZES_FILE, model),
      np.minimum(learned, cap), rtol=1e-5)
  with pytest.raises(ValueError, match="max_step_size"):
    meta_train.run(dataclasses.replace(bounded, iterations=2, max_step_size=None),
                   log=lambda _: None)

  with pytest.raises(ValueError, match="has 2 steps, but the run takes 3 inner steps"):
    meta_train.run(dataclasses.replace(second, workdir=str(tmp_path / "x"), inner_steps=3),
                   log=lambda _: None)
  with pytest.raises(ValueError, match="need learned step sizes"):
    meta_train.run(dataclasses.replace(second, workdir=str(tmp_path / "y"),
                                       learn_step_sizes=False), log=lambda _: None)
  # A file banded by kernel width holds several matrices: a run starts from one.
  banded_path = tmp_path / "banded.step_sizes.json"
  step_sizes_lib.save(banded_path, model, learned, bands=[(1.5, learned / 2)])
  with pytest.raises(ValueError, match="banded.step_sizes.json' has bands by kernel width"):
    meta_train.run(dataclasses.replace(second, workdir=str(tmp_path / "z"),
                                       initial_step_sizes=str(banded_path)), log=lambda _: None)
  assert not any((tmp_path / name).exists() for name in "xyz")


def test_quantize_lr_rounds_validation_lr_and_a_resume_must_keep_it(tmp_path, data_dir):
  """--quantize_lr: the validation LR is on 8-bit levels like evaluate.py's LR files (the
  plain one is float), and a run cannot be resumed with the other setting."""
  base = _config(tmp_path / "q", data_dir, validation=str(data_dir), validation_images=2,
                 validation_size=24, validation_degradations=("gaussian:2.0,2.0,0",))
  plain = meta_train.validation_set(base, 3)
  rounded = meta_train.validation_set(dataclasses.replace(base, quantize_lr=True), 3)
  for (_, _, lr_plain, _), (_, _, lr_rounded, _) in zip(*[next(iter(v.values()))
                                                          for v in (plain, rounded)]):
    np.testing.assert_allclose(lr_rounded, np.round(lr_plain * 255) / 255, atol=1e-6)
    assert np.abs(lr_plain * 255 - np.round(lr_plain * 255)).max() > 0.1
  meta_train.run(dataclasses.replace(base, iterations=1, quantize_lr=True), log=lambda _: None)
  with pytest.raises(Exception, match="quantize_lr"):
    meta_train.run(dataclasses.replace(base, iterations=2), log=lambda _: None)
