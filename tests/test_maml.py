"""Tests of the meta-learning algorithm (mlsr_tf.meta.maml) on the TensorFlow backend."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from mlsr_tf.meta import backend_tf
from mlsr_tf.meta import maml
from mlsr_tf.meta import testing

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
B = backend_tf.BACKEND


def _task(rng, size=8, scale=2, channels=1, dtype=np.float64, tasks=None):
  """A random (LR_down, LR, HR) task: HR smooth-ish noise, LR/LR_down by box averaging."""
  shape = (size * scale * scale, size * scale * scale, channels)
  lead = () if tasks is None else (tasks,)
  hr = rng.uniform(0, 1, lead + (1,) + shape).astype(dtype)

  def down(a):
    h, w = a.shape[-3] // scale, a.shape[-2] // scale
    return a.reshape(a.shape[:-3] + (h, scale, w, scale, channels)).mean(axis=(-4, -2))
  lr = down(hr)
  return {"lr_down": down(lr), "lr": lr, "hr": hr}


def _as_tf(batch):
  return {k: tf.constant(v) for k, v in batch.items()}


def _theta(model):
  return [tf.constant(v.numpy()) for v in model.trainable_variables]


def test_alpha_conversion():
  assert maml.PAPER_ALPHA == pytest.approx(0.65025)
  assert maml.alpha_for_pixel_range(1e-5, "l1") == pytest.approx(2.55e-3)
  with pytest.raises(ValueError, match="'l3'"):
    maml.alpha_for_pixel_range(1e-5, "l3")


def test_pixel_range_255_equals_converted_alpha():
  """The paper's alpha on 0..255 pixels == the converted alpha on [0, 1] pixels."""
  model = testing.tiny_sr_net(dtype="float64")
  apply_fn = maml.make_apply_fn(model)
  task = _as_tf(_task(np.random.default_rng(0)))
  theta = _theta(model)
  a, _ = maml.inner_loop(B, apply_fn, theta, task["lr_down"], task["lr"], [1e-5] * 2,
                         maml.LossConfig("l2", 255.0))
  b, _ = maml.inner_loop(B, apply_fn, theta, task["lr_down"], task["lr"],
                         [maml.alpha_for_pixel_range(1e-5)] * 2)
  for x, y in zip(a, b):
    np.testing.assert_allclose(x.numpy(), y.numpy(), rtol=1e-10, atol=1e-12)


def test_support_loss_falls_over_inner_steps():
  model = testing.tiny_sr_net()
  task = _as_tf(_task(np.random.default_rng(1), dtype=np.float32))
  _, losses = maml.inner_loop(B, maml.make_apply_fn(model), _theta(model), task["lr_down"],
                              task["lr"], [0.5] * 5)
  losses = [float(l) for l in losses]
  assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_first_order_gradient_is_gradient_at_adapted_weights():
  model = testing.tiny_sr_net(dtype="float64")
  apply_fn = maml.make_apply_fn(model)
  task = _as_tf(_task(np.random.default_rng(2)))
  theta = _theta(model)
  alphas = [0.5, 0.3, 0.2]
  loss, grads, _ = maml.task_meta_gradient(B, apply_fn, theta, task["lr_down"], task["lr"],
                                           task["hr"], alphas, "first")
  # Independently: plain SGD with its own tape, then the query-loss gradient there.
  params = [tf.Variable(t) for t in theta]
  for alpha in alphas:
    with tf.GradientTape() as tape:
      out = model.stateless_call(params, [], task["lr_down"])[0]
      support = tf.reduce_mean(tf.square(out - task["lr"]))
    for p, g in zip(params, tape.gradient(support, params)):
      p.assign_sub(alpha * g)
  with tf.GradientTape() as tape:
    query = tf.reduce_mean(tf.square(model.stateless_call(params, [], task["lr"])[0]
                                     - task["hr"]))
  expected = tape.gradient(query, params)
  assert float(loss) == pytest.approx(float(query), rel=1e-12)
  for g, e in zip(grads, expected):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-9, atol=1e-14)


def _meta_loss(apply_fn, theta, task, alphas):
  adapted, _ = maml.inner_loop(B, apply_fn, theta, task["lr_down"], task["lr"], alphas)
  return float(maml.pixel_loss(apply_fn(adapted, task["lr"]), task["hr"]))


def test_second_order_meta_gradient_matches_finite_differences():
  model = testing.tiny_sr_net(dtype="float64")
  apply_fn = maml.make_apply_fn(model)
  task = _as_tf(_task(np.random.default_rng(3)))
  theta = _theta(model)
  alphas = [0.5, 0.5]  # Large enough that the second-order term is clearly non-zero.
  loss, grads, _ = maml.task_meta_gradient(B, apply_fn, theta, task["lr_down"], task["lr"],
                                           task["hr"], alphas, "second")
  _, first, _ = maml.task_meta_gradient(B, apply_fn, theta, task["lr_down"], task["lr"],
                                        task["hr"], alphas, "first")
  assert float(loss) == pytest.approx(_meta_loss(apply_fn, theta, task, alphas), rel=1e-12)
  rng = np.random.default_rng(4)
  eps = 1e-6  # Central differences: error O(eps**2); rounding ~1e-16 / eps.
  for _ in range(3):
    direction = [rng.standard_normal(t.shape) for t in theta]
    plus = [t + eps * d for t, d in zip(theta, direction)]
    minus = [t - eps * d for t, d in zip(theta, direction)]
    numeric = (_meta_loss(apply_fn, plus, task, alphas)
               - _meta_loss(apply_fn, minus, task, alphas)) / (2 * eps)
    analytic = sum(float(np.sum(g.numpy() * d)) for g, d in zip(grads, direction))
    first_order = sum(float(np.sum(g.numpy() * d)) for g, d in zip(first, direction))
    assert analytic == pytest.approx(numeric, rel=1e-6, abs=1e-12)
    # The first-order approximation is measurably different (else the test proves nothing).
    assert abs(first_order - numeric) > 1e-3 * abs(numeric)


def test_adam_update_matches_keras_adam():
  rng = np.random.default_rng(5)
  values = [rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal(4).astype(np.float32)]
  grads_seq = [[rng.standard_normal(v.shape).astype(np.float32) for v in values]
               for _ in range(3)]
  variables = [keras.Variable(v) for v in values]
  optimizer = keras.optimizers.Adam(learning_rate=1e-3)
  params, state = [tf.constant(v) for v in values], maml.adam_init(values)
  for grads in grads_seq:
    optimizer.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    params, state = maml.adam_update(params, [tf.constant(g) for g in grads], state, 1e-3)
  for p, v in zip(params, variables):
    np.testing.assert_allclose(p.numpy(), v.numpy(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("order", ["first", "second"])
def test_meta_trainer_step_equals_pure_step(order):
  model = testing.tiny_sr_net()
  batch = _task(np.random.default_rng(6), dtype=np.float32, tasks=2)
  batch = {k: v[:, 0] for k, v in batch.items()}  # [T, h, w, C]: one patch per task.
  before = [v.numpy().copy() for v in model.trainable_variables]
  trainer = backend_tf.MetaTrainer(model, [0.5, 0.5], beta=1e-3, order=order)
  metrics = trainer.step(batch)
  theta, _, pure_metrics = maml.meta_train_step(
      B, maml.make_apply_fn(model), _theta(model), maml.adam_init(before), _as_tf(batch),
      [0.5, 0.5], 1e-3, order)
  for a, b in zip(trainer.theta_numpy(), theta):
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
  assert metrics["meta_loss"] == pytest.approx(float(pure_metrics["meta_loss"]), rel=1e-5)
  assert metrics["support_loss_after"] < metrics["support_loss_before"]
  for v, b in zip(model.trainable_variables, before):  # The model is untouched...
    np.testing.assert_array_equal(v.numpy(), b)
  trainer.write_to_model()  # ...until written explicitly.
  for v, t in zip(model.trainable_variables, trainer.theta_numpy()):
    np.testing.assert_array_equal(v.numpy(), t)


def test_meta_gradient_with_patches_per_task():
  model = testing.tiny_sr_net()
  batch = _as_tf(_task(np.random.default_rng(7), dtype=np.float32, tasks=2))  # [T, 1, ...]
  flat = {k: v[:, 0] for k, v in batch.items()}
  apply_fn = maml.make_apply_fn(model)
  a = maml.meta_gradient(B, apply_fn, _theta(model), batch, [0.5], "first")
  b = maml.meta_gradient(B, apply_fn, _theta(model), flat, [0.5], "first")
  assert float(a[0]) == pytest.approx(float(b[0]), rel=1e-6)


def test_unknown_names_raise_with_value():
  with pytest.raises(ValueError, match="'third'"):
    maml.task_meta_gradient(B, None, [], None, None, None, [], "third")
  with pytest.raises(ValueError, match="'huber'"):
    maml.LossConfig("huber")
  with pytest.raises(ValueError, match="'torch'"):
    maml.get_backend("torch")


@pytest.mark.jax
def test_jax_backend_matches_tensorflow(tmp_path):
  """The same algorithm on Keras' JAX backend: same meta-gradient and trainer step."""
  pytest.importorskip("jax")
  model = testing.tiny_sr_net()
  weights = tmp_path / "tiny.weights.h5"
  model.save_weights(weights)
  batch = {k: v[:, 0] for k, v in
           _task(np.random.default_rng(8), dtype=np.float32, tasks=2).items()}
  np.savez(tmp_path / "batch.npz", **batch)
  results = {}
  for order in ("first", "second"):
    trainer = backend_tf.MetaTrainer(testing.tiny_sr_net(), [0.5, 0.5], 1e-3, order)
    trainer.model.load_weights(weights)
    trainer.set_theta([v.numpy() for v in trainer.model.trainable_variables])
    results[order] = (trainer.step(batch)["meta_loss"], trainer.theta_numpy())
  script = textwrap.dedent(f"""
      import json, sys
      import numpy as np
      sys.path.insert(0, {REPO_ROOT!r})
      from mlsr_tf.meta import backend_jax, testing
      batch = dict(np.load({str(tmp_path / 'batch.npz')!r}))
      out = {{}}
      for order in ("first", "second"):
        model = testing.tiny_sr_net()
        model.load_weights({str(weights)!r})
        trainer = backend_jax.MetaTrainer(model, [0.5, 0.5], 1e-3, order)
        loss = trainer.step(batch)["meta_loss"]
        np.savez({str(tmp_path)!r} + "/jax_" + order + ".npz", *trainer.theta_numpy())
        out[order] = loss
      print(json.dumps(out))
      """)
  env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0, done.stderr[-3000:]
  losses = json.loads(done.stdout.strip().splitlines()[-1])
  for order in ("first", "second"):
    assert losses[order] == pytest.approx(results[order][0], rel=1e-4)
    jax_theta = np.load(tmp_path / f"jax_{order}.npz")
    for i, t in enumerate(results[order][1]):
      np.testing.assert_allclose(jax_theta[f"arr_{i}"], t, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- objective


def _objective_value(apply_fn, theta, task, alphas, weights, log_scales=None):
  """sum_t w_t L(f_theta_t(LR), HR) by plain unrolling (float64 reference)."""
  count = len(theta)
  if log_scales is not None:
    matrix = np.asarray(alphas)[:, None] * np.exp(log_scales)
    rows = [[tf.constant(matrix[s, j]) for j in range(count)] for s in range(len(alphas))]
  else:
    rows = alphas
  point, total = list(theta), 0.0
  for t, weight in enumerate(weights):
    if weight:
      total += weight * float(maml.pixel_loss(apply_fn(point, task["lr"]), task["hr"]))
    if t < len(rows):
      point, _ = maml.sgd_step(B, apply_fn, point, task["lr_down"], task["lr"], rows[t])
  return total


def test_anchor_and_multi_step_weights_first_order():
  """First order: the gradient of sum_t w_t L_t is sum_t w_t (grad L)(theta_t)."""
  model = testing.tiny_sr_net(dtype="float64")
  apply_fn = maml.make_apply_fn(model)
  task = _as_tf(_task(np.random.default_rng(7)))
  theta = _theta(model)
  alphas, weights = [0.5, 0.3], (0.7, 0.2, 1.0)
  loss, grads, _ = maml.task_meta_gradient(B, apply_fn, theta, task["lr_down"], task["lr"],
                                           task["hr"], alphas, "first", query_weights=weights)
  assert float(loss) == pytest.approx(_objective_value(apply_fn, theta, task, alphas, weights),
                                      rel=1e-12)
  expected = [tf.zeros_like(t) for t in theta]
  point = theta
  for t, weight in enumerate(weights):
    _, g = B.value_and_grad(lambda p: maml.pixel_loss(apply_fn(p, task["lr"]), task["hr"]),
                            point)
    expected = [e + weight * gi for e, gi in zip(expected, g)]
    if t < len(alphas):
      point, _ = maml.sgd_step(B, apply_fn, point, task["lr_down"], task["lr"], alphas[t])
  for g, e in zip(grads, expected):
    np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-9, atol=1e-14)
  with pytest.raises(ValueError, match="3 entries"):
    maml.task_meta_gradient(B, apply_fn, theta, task["lr_down"], task["lr"], task["hr"],
                            alphas, query_weights=(1.0, 1.0))


@pytest.mark.parametrize("order", ["first", "second"])
def test_learned_step_size_gradient(order):
  """d objective / d log_scale: exact for second order (finite differences); for k = 1 the
  first-order value is exact too (the only inner gradient does not depend on alpha)."""
  model = testing.tiny_sr_net(dtype="float64")
  apply_fn = maml.make_apply_fn(model)
  task = _as_tf(_task(np.random.default_rng(8)))
  theta = _theta(model)
  alphas = [0.5] if order == "first" else [0.5, 0.4]
  weights = (0.3,) + (0.0,) * (len(alphas) - 1) + (1.0,)
  rng = np.random.default_rng(9)
  log_scales = rng.normal(0, 0.3, (len(alphas), len(theta)))
  loss, grads, _ = maml.task_meta_gradient(
      B, apply_fn, theta, task["lr_down"], task["lr"], task["hr"], alphas, order,
      query_weights=weights, log_scales=tf.constant(log_scales))
  assert len(grads) == len(theta) + 1 and tuple(grads[-1].shape) == log_scales.shape
  assert float(loss) == pytest.approx(
      _objective_value(apply_fn, theta, task, alphas, weights, log_scales), rel=1e-10)
  eps = 1e-6
  for _ in range(3):
    direction = rng.standard_normal(log_scales.shape)
    numeric = (_objective_value(apply_fn, theta, task, alphas, weights,
                                log_scales + eps * direction)
               - _objective_value(apply_fn, theta, task, alphas, weights,
                                  log_scales - eps * direction)) / (2 * eps)
    analytic = float(np.sum(grads[-1].numpy() * direction))
    assert analytic == pytest.approx(numeric, rel=1e-5, abs=1e-12)


def test_meta_trainer_with_learned_step_sizes_equals_pure_step_and_restores():
  model = testing.tiny_sr_net()
  batch = _task(np.random.default_rng(10), dtype=np.float32, tasks=2)
  batch = {k: v[:, 0] for k, v in batch.items()}
  objective = maml.MetaObjective((0.5, 0.0, 1.0), learn_step_sizes=True,
                                 step_size_learning_rate=0.05)
  trainer = backend_tf.MetaTrainer(model, [0.5, 0.5], beta=1e-3, objective=objective)
  start = _theta(model) + [tf.zeros((2, len(model.trainable_variables)))]
  metrics = trainer.step(batch)
  params, _, pure = maml.meta_train_step(B, maml.make_apply_fn(model), start,
                                         maml.adam_init(start), _as_tf(batch), [0.5, 0.5],
                                         1e-3, "first", objective=objective)
  for a, b in zip(trainer.theta_numpy(), params[:-1]):
    np.testing.assert_allclose(a, b.numpy(), rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(trainer.step_sizes(), 0.5 * np.exp(params[-1].numpy()), rtol=1e-5)
  assert not np.allclose(trainer.step_sizes(), 0.5)  # They moved (by about 0.05 in log).
  assert metrics["meta_loss"] == pytest.approx(float(pure["meta_loss"]), rel=1e-5)
  state = trainer.get_state()
  again = backend_tf.MetaTrainer(testing.tiny_sr_net(), [0.5, 0.5], 1e-3, objective=objective)
  again.set_state(state)
  np.testing.assert_allclose(again.step_sizes(), trainer.step_sizes(), rtol=1e-6)


def test_max_step_size_bounds_every_learned_step_size():
  """A step-size learning rate large enough to push past the bound within three updates: the
  TF trainer and the pure step both end at or below max_step_size, entries under it are
  untouched by the projection, and a bound with fixed step sizes is refused."""
  assert maml.log_scale_bounds([0.5, 0.0], 2.0) == [pytest.approx(np.log(4.0)), np.inf]
  projected = maml.project_log_scales([0.5, 0.25], tf.constant([[2.0, -1.0], [0.0, 5.0]]),
                                      1.0).numpy()
  np.testing.assert_allclose(projected, [[np.log(2.0), -1.0], [0.0, np.log(4.0)]], rtol=1e-6)
  model = testing.tiny_sr_net()
  batch = {k: v[:, 0] for k, v in
           _task(np.random.default_rng(12), dtype=np.float32, tasks=2).items()}
  objective = maml.MetaObjective((0.0, 1.0, 1.0), learn_step_sizes=True,
                                 step_size_learning_rate=2.0, max_step_size=0.6)
  objective.validate(2)
  free = backend_tf.MetaTrainer(model, [0.5, 0.5], 1e-3,
                                objective=dataclasses.replace(objective, max_step_size=None))
  bounded = backend_tf.MetaTrainer(testing.tiny_sr_net(), [0.5, 0.5], 1e-3, objective=objective)
  start = _theta(model) + [tf.zeros((2, len(model.trainable_variables)))]
  params, state = start, maml.adam_init(start)
  for step in range(3):
    free.step(batch)
    bounded.step(batch)
    params, state, _ = maml.meta_train_step(B, maml.make_apply_fn(model), params, state,
                                            _as_tf(batch), [0.5, 0.5], 1e-3, "first",
                                            objective=objective)
    if step == 0:  # Same start, same gradient: the bound only clips the free update.
      assert free.step_sizes().max() > 0.6 and free.step_sizes().min() < 0.6
      np.testing.assert_allclose(bounded.step_sizes(), np.minimum(free.step_sizes(), 0.6),
                                 rtol=1e-5)
    assert bounded.step_sizes().max() <= 0.6 * (1 + 1e-6)
    assert (0.5 * np.exp(params[-1].numpy())).max() <= 0.6 * (1 + 1e-6)
  for bad in (0.0, -1.0, float("inf"), True):
    with pytest.raises(ValueError, match=repr(bad)):
      dataclasses.replace(objective, max_step_size=bad).validate(2)
  with pytest.raises(ValueError, match="learn_step_sizes"):
    maml.MetaObjective(max_step_size=1.0).validate(2)


@pytest.mark.parametrize("order", ["first", "second"])
def test_anchor_batch_adds_its_weighted_supervised_gradient(order):
  """anchor_weight w: meta loss + w L(f_theta(anchor_lr), anchor_hr), gradient + w grad of it;
  the step sizes' gradient does not change (the anchor does not adapt)."""
  model = testing.tiny_sr_net(dtype="float64")
  apply_fn = maml.make_apply_fn(model)
  rng = np.random.default_rng(11)
  batch = {k: v[:, 0] for k, v in _task(rng, tasks=2).items()}
  anchor = {k: v[:, 0] for k, v in _task(rng, tasks=3).items()}
  theta = _theta(model)
  log_scales = tf.constant(rng.normal(0, 0.2, (2, len(theta))))
  plain = maml.meta_gradient(B, apply_fn, theta, _as_tf(batch), [0.3, 0.2], order,
                             log_scales=log_scales)
  anchored = maml.meta_gradient(
      B, apply_fn, theta, _as_tf(dict(batch, anchor_lr=anchor["lr"], anchor_hr=anchor["hr"])),
      [0.3, 0.2], order, log_scales=log_scales, anchor_weight=2.5)
  supervised, expected = B.value_and_grad(
      lambda p: maml.pixel_loss(apply_fn(p, tf.constant(anchor["lr"])),
                                tf.constant(anchor["hr"])), theta)
  assert float(supervised) > 0
  assert float(anchored[0]) == pytest.approx(float(plain[0]) + 2.5 * float(supervised),
                                             rel=1e-12)
  assert float(anchored[2]["anchor_loss"]) == pytest.approx(float(supervised), rel=1e-12)
  for a, p, e in zip(anchored[1][:-1], plain[1][:-1], expected):
    np.testing.assert_allclose(a.numpy(), p.numpy() + 2.5 * e.numpy(), rtol=1e-9, atol=1e-14)
  np.testing.assert_array_equal(anchored[1][-1].numpy(), plain[1][-1].numpy())
  with pytest.raises(ValueError, match="anchor_lr"):
    maml.meta_gradient(B, apply_fn, theta, _as_tf(batch), [0.3, 0.2], order,
                       anchor_weight=1.0)
  with pytest.raises(ValueError, match="-1.0"):
    maml.MetaObjective(anchor_weight=-1.0).validate(2)
