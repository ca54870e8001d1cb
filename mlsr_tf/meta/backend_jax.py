"""JAX gradient backend and meta-trainer (GPU machines; imports no TensorFlow).

``jax.value_and_grad`` composes: the outer one differentiates through inner ones,
which gives the exact second-order meta-gradient; the whole meta-iteration is one
``jax.jit``-compiled pure function of ``(theta, adam_state, batch)``.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import keras
import numpy as np

from mlsr_tf.meta import maml


def value_and_grad(fn, params, has_aux: bool = False):
  return jax.value_and_grad(fn, has_aux=has_aux)(list(params))


def compile_fn(fn, jit_compile: bool = True):
  del jit_compile  # JAX always compiles.
  return jax.jit(fn)


BACKEND = maml.GradientBackend(
    name="jax", value_and_grad=value_and_grad, compile=compile_fn,
    convert=jnp.asarray, to_numpy=lambda t: np.asarray(t))


class MetaTrainer:
  """Algorithm 1 on JAX: the same interface as ``backend_tf.MetaTrainer`` (no strategy).

  Args:
    model: a built Keras model (its current weights are the initial theta).
    alphas: inner step sizes, one per inner step.
    beta: Adam step size.
    order: "first" or "second".
    loss_config: :class:`maml.LossConfig`.
    jit_compile: ignored (always compiled).
    strategy: must be None.
    objective: :class:`maml.MetaObjective`.
  """

  def __init__(self, model: keras.Model, alphas: Sequence[float], beta: float,
               order: str = "first", loss_config: maml.LossConfig = maml.LossConfig(),
               jit_compile: bool = True, strategy=None,
               objective: maml.MetaObjective = maml.MetaObjective()):
    del jit_compile
    if strategy is not None:
      raise ValueError(f"the JAX meta-trainer takes no tf.distribute strategy, got {strategy!r}")
    if order not in maml.ORDERS:
      raise ValueError(f"unknown order {order!r}; expected one of {maml.ORDERS}")
    self.model = model
    self.objective = objective
    self.alphas = [float(a) for a in alphas]
    self.meta_params = [jnp.asarray(v.value) for v in model.trainable_variables]
    self._count = len(self.meta_params)
    if objective.learn_step_sizes:
      self.meta_params.append(jnp.zeros((len(self.alphas), self._count), jnp.float32))
    self.adam_state = maml.adam_init(self.meta_params)
    apply_fn = maml.make_apply_fn(model, [jnp.asarray(v.value)
                                          for v in model.non_trainable_variables])
    alphas = list(self.alphas)
    beta = float(beta)

    def step(meta_params, adam_state, batch):
      return maml.meta_train_step(BACKEND, apply_fn, meta_params, adam_state, batch, alphas,
                                  beta, order, loss_config, objective)
    self._step = jax.jit(step)

  @property
  def theta(self) -> list:
    return self.meta_params[:self._count]

  def step(self, batch: dict) -> dict:
    batch = {k: jnp.asarray(np.asarray(batch[k], np.float32))
             for k in maml.batch_keys(self.objective)}
    self.meta_params, self.adam_state, metrics = self._step(self.meta_params, self.adam_state,
                                                            batch)
    return {k: float(v) for k, v in metrics.items()}

  def get_state(self) -> dict:
    state = {f"m_{i}": np.asarray(m) for i, m in enumerate(self.adam_state.m)}
    state.update({f"v_{i}": np.asarray(v) for i, v in enumerate(self.adam_state.v)})
    state["count"] = np.asarray(self.adam_state.count)
    if self.objective.learn_step_sizes:
      state["log_scales"] = np.asarray(self.meta_params[-1])
    return state

  def set_state(self, state: dict) -> None:
    n = len(self.meta_params)
    self.adam_state = maml.AdamState(
        [jnp.asarray(state[f"m_{i}"]) for i in range(n)],
        [jnp.asarray(state[f"v_{i}"]) for i in range(n)],
        jnp.asarray(state["count"], jnp.float32))
    if self.objective.learn_step_sizes:
      self.meta_params[-1] = jnp.asarray(state["log_scales"], jnp.float32)

  def theta_numpy(self) -> list:
    return [np.asarray(t) for t in self.theta]

  def set_theta(self, values) -> None:
    self.meta_params[:self._count] = [jnp.asarray(v) for v in values]

  def step_sizes(self) -> np.ndarray | None:
    if not self.objective.learn_step_sizes:
      return None
    return np.asarray(maml.effective_step_sizes(self.alphas, self.meta_params[-1]))

  def write_to_model(self) -> None:
    for var, value in zip(self.model.trainable_variables, self.theta):
      var.assign(value)
