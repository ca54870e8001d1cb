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
import math
from typing import Any, Callable, NamedTuple, Sequence

import keras
from keras import ops

# The paper's constants live in a module without Keras, so that configuration code (e.g.
# reproduce --dry_run) runs without importing a deep-learning framework.
from mlsr_tf.meta.paper import LOSSES, PAPER_ALPHA, PAPER_ALPHA_255, PAPER_BETA  # pylint: disable=unused-import
from mlsr_tf.meta.paper import alpha_for_pixel_range  # pylint: disable=unused-import
ORDERS = ("first", "second")
BACKENDS = ("tensorflow", "jax")


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

  def divergence_limit(self, initial_loss: float, headroom: float = 1.0) -> float:
    """The largest loss that is not an explosion, for a run that started at ``initial_loss``.

    The loss of an output off by the whole pixel range everywhere, or ten times the
    starting loss if that is larger (an untrained network may start beyond the range),
    times ``headroom``.  A larger or non-finite loss means the network diverged (too large
    a step size).
    """
    whole_range = self.pixel_range ** (2 if self.kind == "l2" else 1)
    if not math.isfinite(initial_loss):
      return headroom * whole_range
    return headroom * max(whole_range, 10.0 * initial_loss)


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
  # At least float32 even when the network computes in 16 bits (a mixed dtype policy).
  dtype = keras.backend.standardize_dtype(prediction.dtype)
  if dtype in ("float16", "bfloat16"):
    dtype = "float32"
  diff = (ops.cast(prediction, dtype) - ops.cast(target, dtype)) * config.pixel_range
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


def per_parameter(alpha, count: int) -> list:
  """One step's size for each of ``count`` parameter tensors.

  ``alpha`` is a number (every tensor), a sequence of ``count`` numbers, or a 1-D tensor of
  ``count`` entries (learned per-layer step sizes, MAML++'s LSLR / Meta-SGD per tensor).
  """
  shape = getattr(alpha, "shape", None)
  if isinstance(alpha, (list, tuple)) or (shape is not None and len(shape) == 1):
    size = len(alpha) if isinstance(alpha, (list, tuple)) else shape[0]
    if size is not None and size != count:
      raise ValueError(f"got {size} per-parameter step sizes for {count} parameters")
    return [alpha[j] for j in range(count)]
  return [alpha] * count


def sgd_step(backend: GradientBackend, apply_fn, params, x, y, alpha,
             loss_config: LossConfig = LossConfig()):
  """One inner SGD step on ``L(f_params(x), y)``; returns ``(new_params, loss)``.

  ``alpha``: a step size, or one per parameter tensor (see :func:`per_parameter`).
  Usable inside ``tf.function`` / ``tf.while_loop`` / ``jax.jit`` (pure tensor code).
  """
  new_params, loss, _ = _sgd_step_with_grads(backend, apply_fn, params, x, y, alpha,
                                             loss_config)
  return new_params, loss


def _sgd_step_with_grads(backend, apply_fn, params, x, y, alpha, loss_config):
  params = list(params)
  loss, grads = backend.value_and_grad(
      lambda p: pixel_loss(apply_fn(p, x), y, loss_config), params)
  alphas = per_parameter(alpha, len(params))
  return [p - a * g for p, g, a in zip(params, grads, alphas)], loss, grads


def inner_loop(backend: GradientBackend, apply_fn, params, x, y, alphas: Sequence,
               loss_config: LossConfig = LossConfig()):
  """``len(alphas)`` SGD steps (unrolled); returns ``(adapted_params, [support losses])``.

  Each entry of ``alphas`` is one step's size: a number or one per parameter tensor.
  Called inside an outer ``value_and_grad`` this is differentiated through (second
  order): every inner gradient is itself recorded by the outer one.
  """
  params = list(params)
  losses = []
  for alpha in alphas:
    params, loss = sgd_step(backend, apply_fn, params, x, y, alpha, loss_config)
    losses.append(loss)
  return params, losses


# ----------------------------------------------------------------------------- objective


@dataclasses.dataclass(frozen=True)
class MetaObjective:
  """What the outer update optimises, beyond the paper's plain Algorithm 1.

  Attributes:
    query_weights: ``k + 1`` weights ``w_t`` of the query loss ``L(f_theta_t(LR), HR)``
      after ``t`` inner steps; the outer objective is ``sum_t w_t L_t``.  Empty: the
      paper's ``(0, ..., 0, 1)``.  ``w_0 > 0`` keeps the supervised LR -> HR loss of the
      un-adapted network in the objective (an anchor against drifting, as MZSR keeps its
      large-scale loss); weights on intermediate steps are MAML++'s multi-step loss.
    learn_step_sizes: learn one inner step size per step and per parameter tensor
      (MAML++'s LSLR; Meta-SGD per tensor), as ``alpha_s * exp(log_scale[s, j])``
      with ``log_scale`` a meta-parameter starting at 0 (so at the given ``alpha``).
    step_size_learning_rate: Adam step size of ``log_scale`` (theta keeps ``beta``).
    max_step_size: with ``learn_step_sizes``, an upper bound on every learned step size
      (None: unbounded).  After each update the log-scales are projected onto
      ``alpha_s * exp(log_scale) <= max_step_size``: step sizes learned for k steps are
      reused for steps past k, where an unbounded one can make the adaptation diverge.
    anchor_weight: weight of a supervised ``L(f_theta(LR), HR)`` term on a separate anchor
      batch (``anchor_lr``, ``anchor_hr`` in the meta-batch), e.g. patches of the data the
      base network was trained on: it holds the un-adapted network where it was while the
      meta term sees other data (``w_0`` anchors on the tasks' own images instead).
  """
  query_weights: tuple = ()
  learn_step_sizes: bool = False
  step_size_learning_rate: float = 1e-2
  anchor_weight: float = 0.0
  max_step_size: float | None = None

  def weights(self, inner_steps: int) -> tuple:
    if not self.query_weights:
      return (0.0,) * inner_steps + (1.0,)
    if len(self.query_weights) != inner_steps + 1:
      raise ValueError(f"query_weights needs inner_steps + 1 = {inner_steps + 1} entries "
                       f"(index 0: before adaptation), got {list(self.query_weights)!r}")
    return tuple(float(w) for w in self.query_weights)

  def validate(self, inner_steps: int) -> None:
    weights = self.weights(inner_steps)
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(weights):
      raise ValueError(f"query_weights must be finite, >= 0 and not all 0, got "
                       f"{list(weights)!r}")
    if not (math.isfinite(self.step_size_learning_rate) and self.step_size_learning_rate >= 0):
      raise ValueError(f"step_size_learning_rate must be finite and >= 0, got "
                       f"{self.step_size_learning_rate!r}")
    if not (math.isfinite(self.anchor_weight) and self.anchor_weight >= 0):
      raise ValueError(f"anchor_weight must be finite and >= 0, got {self.anchor_weight!r}")
    bound = self.max_step_size
    if bound is not None:
      if isinstance(bound, bool) or not isinstance(bound, (int, float)) or not 0 < bound < math.inf:
        raise ValueError(f"max_step_size must be finite and > 0, got {bound!r}")
      if not self.learn_step_sizes:
        raise ValueError(f"max_step_size {bound!r} bounds learned step sizes; it needs "
                         "learn_step_sizes")

  def total_weight(self, inner_steps: int) -> float:
    """Sum of all loss weights (the scale of the meta loss relative to one pixel loss)."""
    return sum(self.weights(inner_steps)) + self.anchor_weight


def batch_keys(objective: MetaObjective) -> tuple:
  """The arrays a meta-batch needs under ``objective``."""
  keys = ("lr_down", "lr", "hr")
  return keys + (("anchor_lr", "anchor_hr") if objective.anchor_weight else ())


def effective_step_sizes(alphas: Sequence[float], log_scales):
  """``[k, P]`` step sizes ``alphas[s] * exp(log_scales[s, j])``."""
  log_scales = ops.convert_to_tensor(log_scales)
  dtype = keras.backend.standardize_dtype(log_scales.dtype)
  base = ops.reshape(ops.convert_to_tensor([float(a) for a in alphas], dtype), (-1, 1))
  return base * ops.exp(log_scales)


def log_scale_bounds(alphas: Sequence[float], max_step_size: float) -> list:
  """Upper bounds ``log(max_step_size / alpha_s)`` of each step's log-scales (+inf for a
  step with ``alpha_s = 0``, which no scale can move)."""
  return [math.log(float(max_step_size) / float(a)) if float(a) > 0 else math.inf
          for a in alphas]


def project_log_scales(alphas: Sequence[float], log_scales, max_step_size: float | None):
  """``log_scales`` with every effective step size ``alpha_s * exp(log_scale)`` brought down
  to at most ``max_step_size`` (unchanged when it is None)."""
  if max_step_size is None:
    return log_scales
  log_scales = ops.convert_to_tensor(log_scales)
  bounds = ops.convert_to_tensor(log_scale_bounds(alphas, max_step_size),
                                 keras.backend.standardize_dtype(log_scales.dtype))
  return ops.minimum(log_scales, ops.reshape(bounds, (-1, 1)))


def task_meta_gradient(backend: GradientBackend, apply_fn, theta, lr_down, lr, hr,
                       alphas: Sequence, order: str = "first",
                       loss_config: LossConfig = LossConfig(), *,
                       query_weights: Sequence[float] | None = None, log_scales=None):
  """Meta loss and meta-gradient of one task (Algorithm 1, lines 5-8).

  Args:
    backend: the gradient backend.
    apply_fn: ``(params, x) -> f_params(x)``.
    theta: the meta-parameters (list of tensors).
    lr_down, lr, hr: ``[B, h, w, C]`` tensors of one task (one degradation).
    alphas: inner step sizes, one per inner step (each a number or one per tensor).
    order: "first" (gradients at the adapted weights, inner gradients held constant) or
      "second" (exact, through the inner gradients).
    loss_config: pixel loss.
    query_weights: ``k + 1`` weights of the query loss after 0..k steps (see
      :class:`MetaObjective`); None: the paper's final-step loss only.
    log_scales: learned step sizes: a ``[k, P]`` tensor, step ``s`` of tensor ``j`` being
      ``alphas[s] * exp(log_scales[s, j])`` (``alphas`` must then be numbers).

  Returns:
    ``(meta_loss, meta_grads, support_losses)``: ``meta_loss`` is ``sum_t w_t L_t``;
    ``meta_grads`` has one entry per theta tensor, plus, with ``log_scales``, a last
    ``[k, P]`` entry for them; ``support_losses`` has ``k + 1`` entries: before each
    inner step, and after the last one.
  """
  if order not in ORDERS:
    raise ValueError(f"unknown order {order!r}; expected one of {ORDERS}")
  theta = list(theta)
  k, count = len(alphas), len(theta)
  weights = MetaObjective(tuple(query_weights or ())).weights(k)

  def support_loss(params):
    return pixel_loss(apply_fn(params, lr_down), lr, loss_config)

  def query_loss(params):
    return pixel_loss(apply_fn(params, lr), hr, loss_config)

  def step_alphas(scales):
    if scales is None:
      return list(alphas)
    matrix = effective_step_sizes(alphas, scales)
    return [[matrix[s, j] for j in range(count)] for s in range(k)]

  if order == "second":
    def objective(params):
      point = params[:count]
      scales = params[count] if log_scales is not None else None
      total, support = 0.0, []
      for t, alpha in enumerate(step_alphas(scales) + [None]):
        if weights[t]:
          total = total + weights[t] * query_loss(point)
        if alpha is None:
          break
        point, loss = sgd_step(backend, apply_fn, point, lr_down, lr, alpha, loss_config)
        support.append(loss)
      return total, (point, support)

    params = theta + ([log_scales] if log_scales is not None else [])
    (meta_loss, (adapted, support)), grads = backend.value_and_grad(
        objective, params, has_aux=True)
  else:
    # First order: theta_t = theta - sum_{s<t} alpha_s g_s with the inner gradients g_s held
    # constant, so dL_t/dtheta = dL_t/dtheta_t and dL_t/dalpha_{s,j} = -<dL_t/dtheta_t,j, g_s,j>.
    alpha_rows = step_alphas(log_scales)
    points, inner_grads, support = [theta], [], []
    for alpha in alpha_rows:
      point, loss, grads = _sgd_step_with_grads(backend, apply_fn, points[-1], lr_down, lr,
                                                alpha, loss_config)
      points.append(point)
      inner_grads.append(grads)
      support.append(loss)
    adapted = points[-1]
    meta_loss, grads = 0.0, None
    alpha_grads = [[0.0] * count for _ in range(k)]
    for t, weight in enumerate(weights):
      if not weight:
        continue
      loss, point_grads = backend.value_and_grad(query_loss, points[t])
      meta_loss = meta_loss + weight * loss
      weighted = [weight * g for g in point_grads]
      grads = weighted if grads is None else [a + b for a, b in zip(grads, weighted)]
      if log_scales is not None:
        for s in range(t):
          for j in range(count):
            alpha_grads[s][j] = alpha_grads[s][j] - ops.sum(weighted[j] * inner_grads[s][j])
    if log_scales is not None:
      matrix = effective_step_sizes(alphas, log_scales)
      dtype = keras.backend.standardize_dtype(matrix.dtype)
      d_alpha = ops.stack([ops.stack([ops.cast(ops.convert_to_tensor(v), dtype) for v in row])
                           for row in alpha_grads])
      grads = list(grads) + [d_alpha * matrix]  # d/dlog_scale = d/dalpha * alpha.
  final_support = support_loss(adapted)
  return meta_loss, list(grads), list(support) + [final_support]


def meta_gradient(backend: GradientBackend, apply_fn, theta, batch: dict, alphas: Sequence,
                  order: str = "first", loss_config: LossConfig = LossConfig(), *,
                  query_weights: Sequence[float] | None = None, log_scales=None,
                  anchor_weight: float = 0.0):
  """Mean meta loss and meta-gradient over the tasks of a meta-batch.

  Args:
    batch: dict with ``lr_down``, ``lr``, ``hr``: ``[T, h, w, C]`` (one patch per task)
      or ``[T, B, h, w, C]`` (B patches per task, all with the task's degradation); with
      ``anchor_weight`` also ``anchor_lr``, ``anchor_hr`` (``[N, h, w, C]``, one batch).
    query_weights, log_scales: see :func:`task_meta_gradient` (with ``log_scales`` the
      gradients end with one for them).
    anchor_weight: adds ``anchor_weight * L(f_theta(anchor_lr), anchor_hr)`` to the meta
      loss (see :class:`MetaObjective`); it does not depend on the step sizes.

  Returns:
    ``(meta_loss, grads, metrics)``; ``metrics`` has ``support_loss_before`` and
    ``support_loss_after`` (mean over tasks; the inner loop's progress), and
    ``anchor_loss`` with an anchor.
  """
  num_tasks = batch["hr"].shape[0]
  per_task = len(batch["hr"].shape) == 5
  total_loss, total_grads = 0.0, None
  before, after = 0.0, 0.0
  for t in range(num_tasks):
    pick = (lambda a, t=t: a[t]) if per_task else (lambda a, t=t: a[t:t + 1])
    loss, grads, support = task_meta_gradient(
        backend, apply_fn, theta, pick(batch["lr_down"]), pick(batch["lr"]),
        pick(batch["hr"]), alphas, order, loss_config, query_weights=query_weights,
        log_scales=log_scales)
    total_loss = total_loss + loss
    before = before + support[0]
    after = after + support[-1]
    total_grads = grads if total_grads is None else [a + g for a, g in zip(total_grads, grads)]
  scale = 1.0 / num_tasks
  metrics = {"support_loss_before": before * scale, "support_loss_after": after * scale}
  total_loss, total_grads = total_loss * scale, [g * scale for g in total_grads]
  if anchor_weight:
    if "anchor_lr" not in batch or "anchor_hr" not in batch:
      raise ValueError(f"anchor_weight {anchor_weight!r} needs anchor_lr and anchor_hr in the "
                       f"batch, got keys {sorted(batch)!r}")
    anchor_loss, anchor_grads = backend.value_and_grad(
        lambda p: pixel_loss(apply_fn(p, batch["anchor_lr"]), batch["anchor_hr"], loss_config),
        list(theta))
    total_loss = total_loss + anchor_weight * anchor_loss
    total_grads = ([g + anchor_weight * a for g, a in zip(total_grads, anchor_grads)]
                   + total_grads[len(anchor_grads):])  # The step sizes' gradient is unchanged.
    metrics["anchor_loss"] = anchor_loss
  return total_loss, total_grads, metrics


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

  ``learning_rate``: one for all, or one per parameter tensor.
  The same formula as ``keras.optimizers.Adam`` (``epsilon`` added to ``sqrt(v)``
  before the bias correction is folded into the step size), written functionally so
  the whole meta-iteration is one compiled function on both backends and its state is
  plain arrays (backend-neutral checkpoints).
  """
  count = state.count + 1.0
  correction = ops.sqrt(1.0 - ops.power(beta_2, count)) / (1.0 - ops.power(beta_1, count))
  rates = per_parameter(learning_rate, len(params))
  new_params, new_m, new_v = [], [], []
  for p, g, m, v, rate in zip(params, grads, state.m, state.v, rates):
    g = ops.cast(g, p.dtype)
    m = m + (g - m) * (1.0 - beta_1)
    v = v + (ops.square(g) - v) * (1.0 - beta_2)
    step_size = ops.cast(rate * correction, p.dtype)
    new_params.append(p - step_size * m / (ops.sqrt(v) + epsilon))
    new_m.append(m)
    new_v.append(v)
  return new_params, AdamState(new_m, new_v, count)


def meta_train_step(backend: GradientBackend, apply_fn, meta_params, adam_state: AdamState,
                    batch: dict, alphas: Sequence, beta, order: str = "first",
                    loss_config: LossConfig = LossConfig(),
                    objective: MetaObjective = MetaObjective()):
  """One whole meta-iteration (pure): ``(meta_params, adam_state, metrics)`` after the update.

  ``meta_params`` is theta (a list of tensors), followed, when ``objective`` learns the
  step sizes, by their ``[k, P]`` log-scales; Adam updates theta with ``beta`` and the
  log-scales with ``objective.step_size_learning_rate``.
  """
  meta_params = list(meta_params)
  log_scales = meta_params[-1] if objective.learn_step_sizes else None
  theta = meta_params[:-1] if objective.learn_step_sizes else meta_params
  meta_loss, grads, metrics = meta_gradient(
      backend, apply_fn, theta, batch, alphas, order, loss_config,
      query_weights=objective.query_weights, log_scales=log_scales,
      anchor_weight=objective.anchor_weight)
  rates = [beta] * len(theta)
  if objective.learn_step_sizes:
    rates.append(objective.step_size_learning_rate)
  meta_params, adam_state = adam_update(meta_params, grads, adam_state, rates)
  if objective.learn_step_sizes:
    meta_params[-1] = project_log_scales(alphas, meta_params[-1], objective.max_step_size)
  metrics = dict(metrics, meta_loss=meta_loss)
  return meta_params, adam_state, metrics
