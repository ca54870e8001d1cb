"""TensorFlow gradient backend and meta-trainer (the product path).

``value_and_grad`` records with a ``tf.GradientTape``; called inside another
``value_and_grad`` the outer tape also records the inner gradient computation, which
is what makes the second-order meta-gradient exact (nested tapes).
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from mlsr_tf.meta import maml


def value_and_grad(fn, params, has_aux: bool = False):
  """``(fn(params), d fn / d params)`` with a tape; unconnected gradients are zeros."""
  params = list(params)
  with tf.GradientTape(watch_accessed_variables=False) as tape:
    tape.watch(params)
    result = fn(params)
  value = result[0] if has_aux else result
  grads = tape.gradient(value, params, unconnected_gradients=tf.UnconnectedGradients.ZERO)
  return result, grads


def compile_fn(fn, jit_compile: bool = False):
  return tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)


BACKEND = maml.GradientBackend(
    name="tensorflow", value_and_grad=value_and_grad, compile=compile_fn,
    convert=tf.convert_to_tensor, to_numpy=lambda t: np.asarray(t))


class MetaTrainer:
  """Algorithm 1 with state in ``tf.Variable``s, one compiled step, optional tf.distribute.

  The meta-parameters are copies of the model's trainable weights (the model's own
  variables change only in :meth:`write_to_model`), plus, when ``objective`` learns the
  inner step sizes, their ``[k, P]`` log-scales.  Under a ``strategy``
  (``MirroredStrategy`` / ``MultiWorkerMirroredStrategy``) each replica computes the
  mean meta-gradient of its share of the tasks; the replica means are averaged
  (equal shares, so this is the global mean) and every replica applies the same
  Adam update.

  Args:
    model: a built Keras model (its current weights are the initial theta).
    alphas: inner step sizes, one per inner step.
    beta: Adam step size of the outer update.
    order: "first" or "second".
    loss_config: :class:`maml.LossConfig`.
    jit_compile: XLA-compile the step.
    strategy: optional ``tf.distribute.Strategy``.
    objective: :class:`maml.MetaObjective` (query-loss weights, learned step sizes).
  """

  def __init__(self, model: keras.Model, alphas: Sequence[float], beta: float,
               order: str = "first", loss_config: maml.LossConfig = maml.LossConfig(),
               jit_compile: bool = False, strategy: tf.distribute.Strategy | None = None,
               objective: maml.MetaObjective = maml.MetaObjective()):
    if order not in maml.ORDERS:
      raise ValueError(f"unknown order {order!r}; expected one of {maml.ORDERS}")
    self.model = model
    self.alphas = [float(a) for a in alphas]
    self.beta = float(beta)
    self.order = order
    self.loss_config = loss_config
    self.objective = objective
    self.strategy = strategy or tf.distribute.get_strategy()
    count = len(model.trainable_variables)
    with self.strategy.scope():
      self.theta = [tf.Variable(v.value, name=f"theta_{i}")
                    for i, v in enumerate(model.trainable_variables)]
      self.meta_params = list(self.theta)
      if objective.learn_step_sizes:
        self.log_scales = tf.Variable(tf.zeros((len(self.alphas), count)), name="log_scales")
        self.meta_params.append(self.log_scales)
      self.m = [tf.Variable(tf.zeros_like(v)) for v in self.meta_params]
      self.v = [tf.Variable(tf.zeros_like(v)) for v in self.meta_params]
      self.count = tf.Variable(0.0, dtype=tf.float32)
    self._apply_fn = maml.make_apply_fn(
        model, [tf.convert_to_tensor(v.value) for v in model.non_trainable_variables])
    self._step = tf.function(self._step_fn, jit_compile=jit_compile)

  def _replica_gradients(self, batch):
    theta = [tf.identity(t) for t in self.theta]
    log_scales = tf.identity(self.log_scales) if self.objective.learn_step_sizes else None
    loss, grads, metrics = maml.meta_gradient(
        BACKEND, self._apply_fn, theta, batch, self.alphas, self.order, self.loss_config,
        query_weights=self.objective.query_weights, log_scales=log_scales,
        anchor_weight=self.objective.anchor_weight)
    return dict(metrics, meta_loss=loss), grads

  def _step_fn(self, batch):
    if self.strategy.num_replicas_in_sync > 1:
      metrics, grads = self.strategy.run(self._replica_gradients, args=(batch,))
      mean = tf.distribute.ReduceOp.MEAN
      grads = [self.strategy.reduce(mean, g, axis=None) for g in grads]
      metrics = {k: self.strategy.reduce(mean, v, axis=None) for k, v in metrics.items()}
    else:
      metrics, grads = self._replica_gradients(batch)
    state = maml.AdamState([tf.identity(m) for m in self.m], [tf.identity(v) for v in self.v],
                           tf.identity(self.count))
    rates = [self.beta] * len(self.theta)
    if self.objective.learn_step_sizes:
      rates.append(self.objective.step_size_learning_rate)
    params, state = maml.adam_update([tf.identity(t) for t in self.meta_params], grads, state,
                                     rates)
    if self.objective.learn_step_sizes:
      params[-1] = maml.project_log_scales(self.alphas, params[-1],
                                           self.objective.max_step_size)
    for var, value in zip(self.meta_params, params):
      var.assign(value)
    for var, value in zip(self.m, state.m):
      var.assign(value)
    for var, value in zip(self.v, state.v):
      var.assign(value)
    self.count.assign(state.count)
    return metrics

  def step(self, batch: dict) -> dict:
    """One meta-iteration on a NumPy batch (``lr_down``, ``lr``, ``hr``, and with an anchor
    ``anchor_lr``, ``anchor_hr``); float metrics."""
    batch = {k: np.asarray(batch[k], np.float32) for k in maml.batch_keys(self.objective)}
    if self.strategy.num_replicas_in_sync > 1:
      dataset = tf.data.Dataset.from_tensors(batch).unbatch().batch(len(batch["hr"]))
      batch = next(iter(self.strategy.experimental_distribute_dataset(dataset)))
    metrics = self._step(batch)
    return {k: float(v) for k, v in metrics.items()}

  def get_state(self) -> dict:
    """Backend-neutral optimizer state: NumPy arrays ``m_i``, ``v_i``, ``count`` (and the
    learned ``log_scales``)."""
    state = {f"m_{i}": m.numpy() for i, m in enumerate(self.m)}
    state.update({f"v_{i}": v.numpy() for i, v in enumerate(self.v)})
    state["count"] = np.asarray(self.count.numpy())
    if self.objective.learn_step_sizes:
      state["log_scales"] = self.log_scales.numpy()
    return state

  def set_state(self, state: dict) -> None:
    for i, m in enumerate(self.m):
      m.assign(state[f"m_{i}"])
    for i, v in enumerate(self.v):
      v.assign(state[f"v_{i}"])
    self.count.assign(float(state["count"]))
    if self.objective.learn_step_sizes:
      self.log_scales.assign(state["log_scales"])

  def theta_numpy(self) -> list:
    return [t.numpy() for t in self.theta]

  def set_theta(self, values) -> None:
    for var, value in zip(self.theta, values):
      var.assign(value)

  def step_sizes(self) -> np.ndarray | None:
    """The learned ``[k, P]`` inner step sizes (None when they are not learned)."""
    if not self.objective.learn_step_sizes:
      return None
    return np.asarray(maml.effective_step_sizes(self.alphas, self.log_scales.value()))

  def write_to_model(self) -> None:
    """Copies theta into the model's trainable variables (for saving / evaluation)."""
    for var, value in zip(self.model.trainable_variables, self.theta):
      var.assign(value.numpy())
