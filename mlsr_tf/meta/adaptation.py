"""Test-time adaptation (Algorithm 2 of the paper) and the naive fine-tuning baseline.

``adapt(model, lr, degradation, steps, alpha)``:

1. ``LR_down = make_lr_down(LR, degradation)`` (the input degraded once more, with the
   degradation the LR is believed to have);
2. ``steps`` gradient steps on ``L(f_theta(LR_down), LR)``, on the whole image or on
   random crops of the (LR_down, LR) pair, over *copies* of the parameters (the model's
   variables are never changed);
3. ``SR = f_theta'(LR)``.

From meta-trained weights this is MLSR; from ordinary pretrained weights it is the
paper's "Finetune" baseline (SGD or Adam, any step count), with the same code.

The pieces are public so that evaluation can read the result at several step counts
from one adaptation run (:func:`adapt_at_steps`) and the SavedModel export can reuse
the graph code (:func:`make_sgd_step`, a pure tensor function usable inside
``tf.while_loop``).
"""

from __future__ import annotations

import weakref
from typing import Callable, Iterable, Sequence

import keras
import numpy as np
from keras import ops

from mlsr_tf.meta import maml
from mlsr_tf.meta import step_sizes as step_sizes_lib

OPTIMIZERS = ("sgd", "adam")
# Largest crops * crop_size^2 per adaptation step (a 4096 x 4096 image's worth).
MAX_CROP_PIXELS = 1 << 24

# Per-model compiled step functions: (model) -> {key: fn}.  Weak so models can be freed.
_COMPILED = weakref.WeakKeyDictionary()


def trainable_values(model: keras.Model) -> list:
  """The model's current trainable weights as backend tensors (copies are not needed:
  adaptation never assigns to them)."""
  return [ops.convert_to_tensor(v.value) for v in model.trainable_variables]


def model_channels(model: keras.Model) -> int:
  shape = model.inputs[0].shape if getattr(model, "inputs", None) else model.input_shape
  return int(shape[-1])


def as_float_image(image, channels: int | None = None, what: str = "image") -> np.ndarray:
  """HWC uint8/uint16 or float [0, 1] -> float32 HWC in [0, 1] (checked)."""
  image = np.asarray(image)
  if image.ndim == 2:
    image = image[:, :, None]
  if image.ndim != 3:
    raise ValueError(f"{what}: expected an HWC image, got shape {image.shape}")
  if image.dtype == np.uint8:
    image = image.astype(np.float32) / 255.0
  elif image.dtype == np.uint16:
    image = image.astype(np.float32) / 65535.0
  elif np.issubdtype(image.dtype, np.floating):
    image = image.astype(np.float32)
    if not np.all(np.isfinite(image)):
      raise ValueError(f"{what}: contains non-finite values")
  else:
    raise ValueError(f"{what}: unsupported dtype {image.dtype}")
  if channels is not None and image.shape[-1] != channels:
    raise ValueError(
        f"{what}: the model takes {channels} channel(s), got an image of shape {image.shape}")
  return image


def make_lr_down(lr: np.ndarray, degradation) -> np.ndarray:
  """LR_down from a float LR image.

  Args:
    lr: float32 HWC in [0, 1].
    degradation: a ``mlsr_tf.data.degradation.Degradation``, a spec string for
      ``parse_degradation`` (then ``scale`` must be inferable: pass a Degradation
      instead), or a callable ``lr -> lr_down`` (float HWC in, float HWC out).
  """
  if callable(degradation) and not hasattr(degradation, "scale"):
    return np.asarray(degradation(lr), np.float32)
  from mlsr_tf.data import degradation as degradation_lib  # pylint: disable=g-import-not-at-top
  if isinstance(degradation, str):
    raise ValueError(
        f"degradation spec {degradation!r} needs a scale; pass "
        "mlsr_tf.data.degradation.parse_degradation(spec, scale)")
  return np.asarray(degradation_lib.make_lr_down(lr, degradation), np.float32)


def _compiled(model: keras.Model, key: str, builder: Callable[[], Callable]) -> Callable:
  per_model = _COMPILED.setdefault(model, {})
  if key not in per_model:
    per_model[key] = builder()
  return per_model[key]


def make_sgd_step(model: keras.Model, loss_config: maml.LossConfig = maml.LossConfig(),
                  backend: maml.GradientBackend | None = None) -> Callable:
  """Pure ``(params, x, y, alpha) -> (new_params, loss)``: one SGD step, not compiled.

  On TensorFlow it is plain graph code: call it inside ``tf.function`` or as the body
  of a ``tf.while_loop`` over the parameter tensors (the SavedModel export does).
  """
  backend = backend or maml.get_backend()
  apply_fn = maml.make_apply_fn(model)

  def step(params, x, y, alpha):
    return maml.sgd_step(backend, apply_fn, params, x, y, alpha, loss_config)
  return step


def make_adam_step(model: keras.Model, loss_config: maml.LossConfig = maml.LossConfig(),
                   backend: maml.GradientBackend | None = None) -> Callable:
  """Pure ``(params, adam_state, x, y, learning_rate) -> (params, adam_state, loss)``."""
  backend = backend or maml.get_backend()
  apply_fn = maml.make_apply_fn(model)

  def step(params, state, x, y, learning_rate):
    loss, grads = backend.value_and_grad(
        lambda p: maml.pixel_loss(apply_fn(p, x), y, loss_config), list(params))
    params, state = maml.adam_update(list(params), grads, state, learning_rate)
    return params, state, loss
  return step


class AdaptationDivergedError(ValueError):
  """The adaptation loss became non-finite or exploded (the step size is too large)."""


def _check_loss(loss: float, done: int, steps: int, limit: float) -> None:
  """Stops at a non-finite loss, or one above ``limit`` (``LossConfig.divergence_limit``)."""
  if not loss <= limit:  # Also NaN.
    raise AdaptationDivergedError(
        f"adaptation diverged: the loss after {done} of {steps} steps is {loss:.4g} "
        f"(limit {limit:g}); lower the step size alpha")


def _crop_pairs(lr_down: np.ndarray, lr: np.ndarray, scale: int, crops: int, crop_size: int,
                rng: np.random.Generator):
  """``crops`` aligned random crops: LR crops of ``crop_size``, LR_down of crop_size/scale.

  LR_down may have ceil(h / scale) rows, one more than fit in the LR; positions are
  drawn so that both crops lie fully inside their images.
  """
  down = crop_size // scale
  max_top = min(lr_down.shape[0] - down, (lr.shape[0] - crop_size) // scale)
  max_left = min(lr_down.shape[1] - down, (lr.shape[1] - crop_size) // scale)
  if down < 1 or max_top < 0 or max_left < 0:
    raise ValueError(
        f"crop_size {crop_size} does not fit LR_down of shape {lr_down.shape} and LR of "
        f"shape {lr.shape} at scale {scale}")
  tops = rng.integers(0, max_top + 1, size=crops)
  lefts = rng.integers(0, max_left + 1, size=crops)
  x = np.stack([lr_down[t:t + down, l:l + down] for t, l in zip(tops, lefts)])
  y = np.stack([lr[t * scale:t * scale + crop_size, l * scale:l * scale + crop_size]
                for t, l in zip(tops, lefts)])
  return x, y


def infer_scale(model: keras.Model, lr_down_shape: Sequence[int],
                lr_shape: Sequence[int]) -> int:
  """The SR factor: the model's output size over its input size, else LR over LR_down.

  The model is asked first (``compute_output_shape`` on an 8x8 input): rounding
  ``LR height / LR_down height`` is wrong for tiny images (17 rows at x4 give a
  5-row LR_down and 17 / 5 -> 3).
  """
  try:
    out = model.compute_output_shape((1, 8, 8, model_channels(model)))
    if isinstance(out, list):
      out = out[0]
    if isinstance(out[1], int) and out[1] % 8 == 0 and out[1] >= 8:
      return out[1] // 8
  except Exception:  # pylint: disable=broad-except  # Subclassed models may not say.
    pass
  return max(1, int(round(lr_shape[0] / lr_down_shape[0])))


def adapt_parameters(model: keras.Model, lr_down, lr, steps: int, alpha, *,
                     crops: int | None = None, crop_size: int | None = None,
                     optimizer: str = "sgd", seed: int = 0,
                     loss: str = "l2", pixel_range: float = 1.0,
                     progress: Callable[[int, int, float], None] | None = None,
                     callback: Callable[[int, list], None] | None = None,
                     params: Sequence | None = None, scale: int | None = None) -> list:
  """Runs the adaptation loop on an explicit (LR_down, LR) pair; returns adapted weights.

  Args:
    model: the SR network (never modified).
    lr_down: LR_down image, HWC uint8/uint16 or float [0, 1].
    lr: LR image (the target of the adaptation loss), same format.
    steps: number of gradient steps (0 returns the model's weights).
    alpha: step size: a number, one per step, or (SGD) a learned ``[k, P]`` matrix of
      per-step, per-tensor step sizes (:mod:`mlsr_tf.meta.step_sizes`; step i uses row
      ``min(i, k - 1)``).
    crops: if set, each step uses this many random aligned crops instead of the whole
      image; ``crop_size`` is their size in LR pixels (a multiple of the scale).
    optimizer: "sgd" (the paper) or "adam" (fine-tuning baseline).
    seed: seeds the crop positions.
    loss, pixel_range: see :class:`maml.LossConfig`.
    progress: called as ``progress(step, steps, loss)`` after each step.
    callback: called as ``callback(step, params)`` after each step (and with step 0
      before the first), e.g. to read the result at several step counts.
    params: start from these trainable values instead of the model's.
    scale: the SR factor (aligns the crops); None: :func:`infer_scale` (from the
      model's output shape).  Only crops use it.

  Returns:
    The adapted trainable values (backend tensors), in ``model.trainable_variables``
    order.
  """
  if optimizer not in OPTIMIZERS:
    raise ValueError(f"unknown optimizer {optimizer!r}; expected one of {OPTIMIZERS}")
  if not isinstance(steps, (int, np.integer)) or steps < 0:
    raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
  count = len(model.trainable_variables)
  alphas = step_sizes_lib.schedule(alpha, int(steps), count)
  if optimizer == "adam" and any(np.ndim(a) for a in alphas):
    raise ValueError("learned per-tensor step sizes are for SGD, not the adam baseline")
  if (crops is None) != (crop_size is None):
    raise ValueError(f"crops and crop_size go together, got crops={crops!r}, "
                     f"crop_size={crop_size!r}")
  channels = model_channels(model)
  lr_down = as_float_image(lr_down, channels, "lr_down")
  lr = as_float_image(lr, channels, "lr")
  if lr_down.shape[0] > lr.shape[0] or lr_down.shape[1] > lr.shape[1]:
    raise ValueError(f"LR_down {lr_down.shape} is larger than LR {lr.shape}")
  if scale is None:
    scale = infer_scale(model, lr_down.shape, lr.shape)
  elif isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
    raise ValueError(f"scale must be a positive integer, got {scale!r}")
  scale = int(scale)
  if crops is not None and (crops < 1 or crop_size < scale or crop_size % scale):
    raise ValueError(f"need crops >= 1 and crop_size a positive multiple of the scale "
                     f"{scale}, got crops={crops!r}, crop_size={crop_size!r}")
  if crops is not None and crops * crop_size ** 2 > MAX_CROP_PIXELS:  # Before allocating.
    raise ValueError(f"crops={crops!r} of crop_size={crop_size!r} are "
                     f"{crops * crop_size ** 2:,} pixels per step, more than the limit of "
                     f"{MAX_CROP_PIXELS:,}")
  backend = maml.get_backend()
  loss_config = maml.LossConfig(loss, pixel_range)
  params = list(params) if params is not None else trainable_values(model)
  if callback is not None:
    callback(0, params)
  if steps == 0:
    return params
  key = f"{optimizer}/{loss_config}"
  if optimizer == "sgd":
    # Not built when every step is zero (they only compute the loss, below).
    if any(np.any(a) for a in alphas):
      step_fn = _compiled(model, key, lambda: backend.compile(make_sgd_step(model, loss_config)))
  else:
    step_fn = _compiled(model, key, lambda: backend.compile(make_adam_step(model, loss_config)))
    adam_state = maml.adam_init(params)
  loss_fn = _compiled(model, f"loss/{loss_config}", lambda: backend.compile(
      lambda p, a, b: maml.pixel_loss(maml.make_apply_fn(model)(p, a), b, loss_config)))
  rng = np.random.default_rng(seed)
  whole_x = backend.convert(lr_down[None])
  whole_y = backend.convert(lr[None])
  for i, step_alpha in enumerate(alphas):
    if crops is None:
      x, y = whole_x, whole_y
    else:
      x, y = _crop_pairs(lr_down, lr, scale, crops, crop_size, rng)
      x, y = backend.convert(x), backend.convert(y)
    if optimizer == "sgd" and not np.any(step_alpha):
      # A zero step (e.g. a kernel-width band that switches adaptation off) leaves the
      # weights as they are: only the loss is computed, for progress and the divergence check.
      loss_value = loss_fn(params, x, y)
    elif optimizer == "sgd":
      # Always a [P] vector: one compiled step serves scalar and learned step sizes.
      step_alpha = backend.convert(np.broadcast_to(np.float32(step_alpha), (count,)).copy())
      params, loss_value = step_fn(params, x, y, step_alpha)
    else:
      step_alpha = backend.convert(np.float32(step_alpha))
      params, adam_state, loss_value = step_fn(params, adam_state, x, y, step_alpha)
    params = list(params)
    if i == 0:  # The starting network's loss.
      limit = loss_config.divergence_limit(float(loss_value))
    _check_loss(float(loss_value), i, steps, limit)  # The loss before this step.
    if progress is not None:
      progress(i + 1, steps, float(loss_value))
    if callback is not None:
      callback(i + 1, params)
  _check_loss(float(loss_fn(params, x, y)), steps, steps, limit)
  return params


def predict(model: keras.Model, params: Sequence | None, lr) -> np.ndarray:
  """``f_params(LR)`` as float32 HWC clipped to [0, 1] (``params=None``: model's weights)."""
  lr = as_float_image(lr, model_channels(model), "lr")
  backend = maml.get_backend()
  params = list(params) if params is not None else trainable_values(model)
  forward = _compiled(model, "predict",
                      lambda: backend.compile(maml.make_apply_fn(model)))
  sr = backend.to_numpy(forward(params, backend.convert(lr[None])))[0]
  return np.clip(sr, 0.0, 1.0).astype(np.float32)


def adapt_at_steps(model: keras.Model, lr_image, degradation, steps: Iterable[int] = (0, 5),
                   alpha=maml.PAPER_ALPHA, **kwargs) -> dict:
  """One adaptation run, the SR read after each count in ``steps``: ``{count: sr}``.

  ``kwargs`` are those of :func:`adapt_parameters` (crops, optimizer, seed, ...).
  """
  counts = sorted({int(s) for s in steps})
  if not counts or counts[0] < 0:
    raise ValueError(f"steps must be non-negative integers, got {steps!r}")
  lr = as_float_image(lr_image, model_channels(model), "lr_image")
  lr_down = make_lr_down(lr, degradation)
  if kwargs.get("scale") is None:
    kwargs["scale"] = getattr(degradation, "scale", None)
  results = {}

  def read_out(step, params):
    if step in counts:
      results[step] = predict(model, params, lr)

  adapt_parameters(model, lr_down, lr, counts[-1],
                   step_sizes_lib.for_degradation(alpha, degradation), callback=read_out,
                   **kwargs)
  return results


def adapt(model: keras.Model, lr_image, degradation, steps: int, alpha=maml.PAPER_ALPHA, *,
          crops: int | None = None, crop_size: int | None = None, optimizer: str = "sgd",
          seed: int = 0, progress: Callable[[int, int, float], None] | None = None,
          loss: str = "l2", pixel_range: float = 1.0, scale: int | None = None) -> np.ndarray:
  """Algorithm 2: adapts a copy of the weights to ``lr_image`` and super-resolves it.

  Args:
    model: the SR network (its variables are never changed).
    lr_image: HWC uint8/uint16, or float32 in [0, 1]; the model's channel count.
    degradation: the degradation used to make LR_down from the LR (a
      ``Degradation`` or a callable ``lr -> lr_down``), see :func:`make_lr_down`.
    steps: number of gradient steps (0: plain super-resolution).
    alpha: step size for [0, 1] pixels (default: the paper's 1e-5 at 0..255, L2 ->
      0.65025; see :mod:`mlsr_tf.meta.maml`); a number, one per step, a learned ``[k, P]``
      matrix, or step sizes banded by kernel width (chosen for ``degradation``).
    crops, crop_size: adapt on ``crops`` random crops of ``crop_size`` LR pixels per
      step instead of the whole image.
    optimizer: "sgd" (MLSR) or "adam" (fine-tuning baseline).
    seed: crop positions.
    progress: ``progress(step, steps, loss)`` after each step.
    loss, pixel_range: see :class:`maml.LossConfig`.
    scale: the SR factor for the crops (None: the degradation's ``scale``, else
      :func:`infer_scale`).

  Returns:
    The SR image, float32 HWC in [0, 1].
  """
  lr = as_float_image(lr_image, model_channels(model), "lr_image")
  lr_down = make_lr_down(lr, degradation)
  params = adapt_parameters(model, lr_down, lr, steps,
                            step_sizes_lib.for_degradation(alpha, degradation), crops=crops,
                            crop_size=crop_size, optimizer=optimizer, seed=seed,
                            loss=loss, pixel_range=pixel_range, progress=progress,
                            scale=scale if scale is not None else getattr(degradation, "scale",
                                                                          None))
  return predict(model, params, lr)


def _model_input(lr: np.ndarray, channels: int) -> np.ndarray:
  """uint8 HWC LR -> the model's float input (Y / 255 for Y-only models)."""
  from mlsr_tf import metrics  # pylint: disable=g-import-not-at-top
  if channels == 1 and lr.shape[2] != 1:
    return (metrics.rgb_to_y(lr) / 255.0).astype(np.float32)[:, :, None]
  x = as_float_image(lr)
  if lr.shape[2] == 1 and channels != 1:
    x = np.repeat(x, channels, axis=2)
  return x


def adaptive_upscale_fn(model: keras.Model, degradation, steps: Iterable[int] = (0, 5),
                        alpha=maml.PAPER_ALPHA, **kwargs) -> Callable:
  """An upscaler for ``mlsr_tf.evaluation.evaluate.evaluate``: ``{"<steps>": uint8 SR}`` per image.

  One adaptation run per image; the SR is read after each step count (column per
  count).  ``degradation`` makes LR_down from the LR (the LR's own degradation, as
  in the paper's known-kernel setting).  ``kwargs``: see :func:`adapt_parameters`
  (``optimizer="adam"`` for the fine-tuning baseline, crops, seed, ...).
  Y-only models adapt and predict Y (scored against the HR's Y).
  """
  from mlsr_tf.data import image_io  # pylint: disable=g-import-not-at-top
  channels = model_channels(model)
  counts = sorted({int(s) for s in steps})

  def upscale(lr: np.ndarray, name: str) -> dict:
    del name
    x = _model_input(lr, channels)
    results = adapt_at_steps(model, x, degradation, counts, alpha, **kwargs)
    out = {}
    for count in counts:
      sr = results[count]
      if lr.shape[2] == 1 and channels != 1:
        sr = sr.mean(axis=2, keepdims=True)
      out[str(count)] = image_io.to_uint(sr)
    return out
  return upscale


def eval_upscaler_factory(config, degradation) -> Callable:
  """``mlsr_tf.evaluation.evaluate`` upscaler factory: the network of ``config`` with adaptation.

  Reads ``config.options``: ``adapt_steps`` (list of counts), ``alpha``, ``step_sizes``
  (a learned step-size file, used instead of ``alpha``), ``finetune`` ("sgd" | "adam"),
  ``crops``, ``crop_size``, ``seed``.
  """
  from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top
  if not config.weights:
    raise ValueError(f"model {config.model!r} needs weights (--weights), got none")
  options = dict(config.options)
  model = models_io.build_and_load(config.model, config.weights, config.scale, None,
                                   precision=config.precision)
  alpha = options.get("alpha", maml.PAPER_ALPHA)
  if options.get("step_sizes"):
    from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
    alpha = step_sizes_lib.load(options["step_sizes"], model)
  return adaptive_upscale_fn(
      model, degradation, steps=options.get("adapt_steps", (0, 5)),
      alpha=alpha, optimizer=options.get("finetune", "sgd"),
      crops=options.get("crops"), crop_size=options.get("crop_size"),
      seed=options.get("seed", 0))
