"""MLSR's meta-learning algorithm, written once for every Keras backend.

Everything here works on *lists of parameter tensors* and evaluates the network only
through ``keras.Model.stateless_call``; the model's own variables are never read
during a step nor written by it.  The only backend-specific piece is a small
:class:`GradientBackend` (``value_and_grad``, ``compile``), implemented with
``tf.GradientTape`` in :mod:`mlsr_tf.meta.backend_tf` (the product path) and with
``jax.value_and_grad`` in :mod:`mlsr_tf.meta.backend_jax` (GPU machines without
TensorFlow).  Nothing in this module imports TensorFlow or JAX.

Algorithm 1 of the paper (one meta-iteration, a meta-batch of T tasks):

* inner loop, per task: ``theta_i <- theta_{i-1} - alpha_i * grad L(f_theta(LR_down), LR)``
  for ``i = 1..k`` (plain SGD; ``alpha_i`` may differ per step);
* meta loss, per task: ``L(f_theta_k(LR), HR)``;
* meta-gradient: first order (the paper's choice: the gradient of the meta loss at
  ``theta_k``, treating ``theta_k - theta`` as a constant) or second order (the exact
  gradient through all k inner steps, i.e. nested gradients);
* outer update: Adam with step ``beta`` on the mean meta-gradient over tasks.

Pixel range and step sizes
--------------------------
Pixels are in ``[0, 1]`` by default.  The paper's ``alpha = 1e-5`` and
``beta = 1e-6`` are for pixels in ``0..255``.  The loss here is
``mean((pixel_range * (f(x) - y))**2)`` (L2) or ``mean(|pixel_range * (f(x) - y)|)``
(L1), where the network always sees ``[0, 1]`` inputs; ``pixel_range = 255`` is the
paper's convention for the *same* weights (a network on 0..255 data has identical
conv weights and biases scaled by 255).  Hence:

* L2: ``loss_255 = 255**2 * loss_1``, so the SGD step ``alpha`` that moves the weights
  by the same amount is ``alpha_1 = 255**2 * alpha_255`` (1e-5 -> 0.65025);
  L1: ``alpha_1 = 255 * alpha_255`` (1e-5 -> 2.55e-3).
* Adam is invariant to the scale of the loss, so ``beta`` is unchanged (1e-6).

Either pass the converted ``alpha`` with ``pixel_range=1`` (default) or pass the
paper's values unchanged with ``pixel_range=255``: both give the same updates.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Sequence

import keras
from keras import ops

LOSSES = ("l2", "l1")
ORDERS = ("first", "second")
BACKENDS = ("tensorflow", "jax")

# The paper's step sizes (pixels in 0..255) and their [0, 1] equivalents for L2.
PAPER_ALPHA_255 = 1e-5
PAPER_BETA = 1e-6


def alpha_for_pixel_range(alpha_255: float, loss: str = "l2") -> float:
  """Converts an SGD step size for 0..255 pixels into the one for [0, 1] pixels."""
  if loss == "l2":
    return alpha_255 * 255.0**2
  if loss == "l1":
    return alpha_255 * 255.0
  raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


PAPER_ALPHA = alpha_for_pixel_range(PAPER_ALPHA_255)  # 0.65025 for [0, 1] pixels, L2.


class GradientBackend(NamedTuple):
  """The per-backend primitives the algorithm needs.

  Attributes:
    name: Keras backend name ("tensorflow" or "jax").
    value_and_grad: ``(fn, params, has_aux=False) -> (fn(params), d fn / d params)``;
      with ``has_aux`` fn returns ``(value, aux)`` and the result is
      ``((value, aux), grads)`` (aux is not differentiated).  Calls nest: the outer
      one differentiates through the inner one (second order).
    compile: ``(fn, jit_compile) -> compiled fn`` (``tf.function`` / ``jax.jit``).
    convert: NumPy array -> backend tensor.
    to_numpy: backend tensor -> NumPy array.
  """
  name: str
  value_and_grad: Callable[[Callable[[list], Any], list], tuple]
  compile: Callable[..., Callable]
  convert: Callable[[Any], Any]
  to_numpy: Callable[[Any], Any]


def get_backend(name: str | None = None) -> GradientBackend:
  """The gradient backend for ``name`` (default: Keras' active backend)."""
  active = keras.backend.backend()
  name = name or active
  if name not in BACKENDS:
    raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
  if name != active:
    raise ValueError(
        f"backend {name!r} requested but Keras runs on {active!r}; set "
        f"KERAS_BACKEND={name} before keras is imported")
  if name == "tensorflow":
    from mlsr_tf.meta import backend_tf  # pylint: disable=g-import-not-at-top
    return backend_tf.BACKEND
  from mlsr_tf.meta import backend_jax  # pylint: disable=g-import-not-at-top
  return backend_jax.BACKEND


@dataclasses.dataclass(frozen=True)
class LossConfig:
  """Pixel loss: ``kind`` in {"l2", "l1"}, computed on ``pixel_range``-scaled values."""
  kind: str = "l2"
  pixel_range: float = 1.0

  def __post_init__(self):
    if self.kind not in LOSSES:
      raise ValueError(f"unknown loss {self.kind!r}; expected one of {LOSSES}")
    if not self.pixel_range > 0:
      raise ValueError(f"pixel_range must be positive, got {self.pixel_range!r}")


def pixel_loss(prediction, target, config: LossConfig = LossConfig()):
  """Mean L2 or L1 loss over the common top-left region of ``prediction`` and ``target``.

  LR_down has ceil(h / s) rows, so the network's output (s * ceil(h / s)) can be a few
  pixels larger or smaller than the LR target; both are aligned at the top-left corner and
  cropped to the smaller size.  Sizes are read dynamically: under ``tf.function`` with
  relaxed shapes the static ones are unknown.
  """
  height = _smaller(ops.shape(prediction)[1], ops.shape(target)[1])
  width = _smaller(ops.shape(prediction)[2], ops.shape(target)[2])
  prediction = prediction[:, :height, :width, :]
  target = target[:, :height, :width, :]
  diff = (prediction - ops.cast(target, prediction.dtype)) * config.pixel_range
  if config.kind == "l2":
    return ops.mean(ops.square(diff))
  return ops.mean(ops.abs(diff))


def _smaller(a, b):
  if isinstance(a, int) and isinstance(b, int):
    return min(a, b)
  return ops.minimum(a, b)


def make_apply_fn(model: keras.Model, non_trainable_values: Sequence | None = None,
                  training: bool = False) -> Callable[[list, Any], Any]:
  """``(trainable_values, x) -> model output`` through ``stateless_call``.

  ``training=False`` by default: SR networks have no batch norm or dropout, and the
  paper adapts the network as it is used at test time.
  """
  if non_trainable_values is None:
    non_trainable_values = [v.value for v in model.non_trainable_variables]
  non_trainable_values = list(non_trainable_values)

  def apply_fn(trainable_values, x):
    outputs, _ = model.stateless_call(list(trainable_values), non_trainable_values, x,
                                      training=training)
    return outputs
  return apply_fn


def step_sizes(alpha, steps: int) -> list:
  """``alpha`` (a number or one per step) as a list of ``steps`` step sizes."""
  if steps < 0:
    raise ValueError(f"steps must be >= 0, got {steps!r}")
  if isinstance(alpha, (int, float)):
    return [float(alpha)] * steps
  alphas = list(alpha)
  if len(alphas) != steps:
    raise ValueError(f"got {len(alphas)} per-step step sizes {alphas!r} for {steps} steps")
  return alphas


def sgd_step(backend: GradientBackend, apply_fn, params, x, y, alpha,
             loss_config: LossConfig = LossConfig()):
  """One inner SGD step on ``L(f_params(x), y)``; returns ``(new_params, loss)``.

  Usable inside ``tf.function`` / ``tf.while_loop`` / ``jax.jit`` (pure tensor code).
  """
  loss, grads = backend.value_and_grad(
      lambda p: pixel_loss(apply_fn(p, x), y, loss_config), list(params))
  return [p - alpha * g for p, g in zip(params, grads)], loss


def inner_loop(backend: GradientBackend, apply_fn, params, x, y, alphas: Sequence,
               loss_config: LossConfig = LossConfig()):
  """``len(alphas)`` SGD steps (unrolled); returns ``(adapted_params, [support losses])``.

  Called inside an outer ``value_and_grad`` this is differentiated through (second
  order): every inner gradient is itself recorded by the outer one.
  """
  params = list(params)
  losses = []
  for alpha in alphas:
    params, loss = sgd_step(backend, apply_fn, params, x, y, alpha, loss_config)
    losses.append(loss)
  return params, losses


def task_meta_gradient(backend: GradientBackend, apply_fn, theta, lr_down, lr, hr,
                       alphas: Sequence, order: str = "first",
                       loss_config: LossConfig = LossConfig()):
  """Meta loss and meta-gradient of one task (Algorithm 1, lines 5-8).

  Args:
    backend: the gradient backend.
    apply_fn: ``(params, x) -> f_params(x)``.
    theta: the meta-parameters (list of tensors).
    lr_down, lr, hr: ``[B, h, w, C]`` tensors of one task (one degradation).
    alphas: inner step sizes, one per inner step.
    order: "first" (gradient at the adapted weights) or "second" (exact).
    loss_config: pixel loss.

  Returns:
    ``(meta_loss, meta_grads, support_losses)``; ``support_losses`` has ``k + 1``
    entries: before each inner step, and after the last one.
  """
  if order not in ORDERS:
    raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")

  def query_loss(params):
    return pixel_loss(apply_fn(params, lr), hr, loss_config)

  if order == "first":
    adapted, support = inner_loop(backend, apply_fn, theta, lr_down, lr, alphas, loss_config)
    meta_loss, grads = backend.value_and_grad(query_loss, adapted)
  else:
    def through_inner_loop(params):
      adapted, support_losses = inner_loop(backend, apply_fn, params, lr_down, lr, alphas,
                                           loss_config)
      return query_loss(adapted), (adapted, support_losses)

    (meta_loss, (adapted, support)), grads = backend.value_and_grad(
        through_inner_loop, list(theta), has_aux=True)
  final_support = pixel_loss(apply_fn(adapted, lr_down), lr, loss_config)
  return meta_loss, grads, list(support) + [final_support]


def meta_gradient(backend: GradientBackend, apply_fn, theta, batch: dict, alphas: Sequence,
                  order: str = "first", loss_config: LossConfig = LossConfig()):
  """Mean meta loss and meta-gradient over the tasks of a meta-batch.

  Args:
    batch: dict with ``lr_down``, ``lr``, ``hr``: ``[T, h, w, C]`` (one patch per task)
      or ``[T, B, h, w, C]`` (B patches per task, all with the task's degradation).

  Returns:
    ``(meta_loss, grads, metrics)``; ``metrics`` has ``support_loss_before`` and
    ``support_loss_after`` (mean over tasks; the inner loop's progress).
  """
  num_tasks = batch["hr"].shape[0]
  per_task = len(batch["hr"].shape) == 5
  total_loss, total_grads = 0.0, None
  before, after = 0.0, 0.0
  for t in range(num_tasks):
    pick = (lambda a, t=t: a[t]) if per_task else (lambda a, t=t: a[t:t + 1])
    loss, grads, support = task_meta_gradient(
        backend, apply_fn, theta, pick(batch["lr_down"]), pick(batch["lr"]),
        pick(batch["hr"]), alphas, order, loss_config)
    total_loss = total_loss + loss
    before = before + support[0]
    after = after + support[-1]
    total_grads = grads if total_grads is None else [a + g for a, g in zip(total_grads, grads)]
  scale = 1.0 / num_tasks
  metrics = {"support_loss_before": before * scale, "support_loss_after": after * scale}
  return total_loss * scale, [g * scale for g in total_grads], metrics


# ----------------------------------------------------------------------------- Adam
class AdamState(NamedTuple):
  """Functional Adam state: first/second moments (lists like the params) and step count."""
  m: list
  v: list
  count: Any


def adam_init(params) -> AdamState:
  return AdamState([ops.zeros_like(p) for p in params], [ops.zeros_like(p) for p in params],
                   ops.zeros((), dtype="float32"))


def adam_update(params, grads, state: AdamState, learning_rate, beta_1: float = 0.9,
                beta_2: float = 0.999, epsilon: float = 1e-8):
  """One Adam step; returns ``(params, state)``.

  The same formula as ``keras.optimizers.Adam`` (``epsilon`` added to ``sqrt(v)``
  before the bias correction is folded into the step size), written functionally so
  the whole meta-iteration is one compiled function on both backends and its state is
  plain arrays (backend-neutral checkpoints).
  """
  count = state.count + 1.0
  step_size = learning_rate * ops.sqrt(1.0 - ops.power(beta_2, count)) / (
      1.0 - ops.power(beta_1, count))
  new_params, new_m, new_v = [], [], []
  for p, g, m, v in zip(params, grads, state.m, state.v):
    g = ops.cast(g, p.dtype)
    m = m + (g - m) * (1.0 - beta_1)
    v = v + (ops.square(g) - v) * (1.0 - beta_2)
    new_params.append(p - ops.cast(step_size, p.dtype) * m / (ops.sqrt(v) + epsilon))
    new_m.append(m)
    new_v.append(v)
  return new_params, AdamState(new_m, new_v, count)


def meta_train_step(backend: GradientBackend, apply_fn, theta, adam_state: AdamState,
                    batch: dict, alphas: Sequence, beta, order: str = "first",
                    loss_config: LossConfig = LossConfig()):
  """One whole meta-iteration (pure): ``(theta, adam_state, metrics)`` after the update."""
  meta_loss, grads, metrics = meta_gradient(backend, apply_fn, theta, batch, alphas, order,
                                            loss_config)
  theta, adam_state = adam_update(theta, grads, adam_state, beta)
  metrics = dict(metrics, meta_loss=meta_loss)
  return theta, adam_state, metrics
