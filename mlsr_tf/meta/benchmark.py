"""Timing of adaptation steps and meta-iterations against a plain forward+backward.

Backend-neutral (the library behind ``tools/bench_adapt.py``); every timed function
is compiled and warmed up first; times are medians over ``repeats``.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from mlsr_tf.meta import adaptation
from mlsr_tf.meta import cpu_threads
from mlsr_tf.meta import maml


@dataclasses.dataclass
class BenchConfig:
  model: str = "idn_caffe"
  weights: str | None = None
  scale: int = 2
  lr_size: int = 128  # Adaptation: LR image side (LR_down is lr_size / scale).
  adapt_steps: int = 5
  patch: int = 64  # Meta-iteration: HR patch side.
  batch: int = 2
  inner_steps: int = 2
  repeats: int = 3
  orders: tuple = ("first", "second")


def _median_seconds(fn: Callable[[], object], repeats: int) -> float:
  fn()  # Warm-up (compilation).
  times = []
  for _ in range(repeats):
    began = time.perf_counter()
    fn()
    times.append(time.perf_counter() - began)
  return float(np.median(times))


def _check_orders(orders) -> None:
  """Before any timing: an unknown order would fail only after minutes of work."""
  for order in orders:
    if order not in maml.ORDERS:
      raise ValueError(f"unknown order {order!r}; expected one of {maml.ORDERS}")


def run(config: BenchConfig, model=None, log: Callable[[str], None] = print) -> dict:
  """Returns milliseconds and overhead ratios (see the keys); logs one line each."""
  _check_orders(config.orders)
  from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  if model is None:
    model = meta_train.build_model(meta_train.MetaTrainConfig(
        workdir="", model=config.model, weights=config.weights, scale=config.scale))
  backend = maml.get_backend()
  channels = adaptation.model_channels(model)
  rng = np.random.default_rng(0)
  s = config.scale
  lr = rng.uniform(0, 1, (1, config.lr_size, config.lr_size, channels)).astype(np.float32)
  lr_down = lr[:, ::s, ::s]
  params = adaptation.trainable_values(model)
  apply_fn = maml.make_apply_fn(model)
  grad_fn = backend.compile(lambda p, x, y: backend.value_and_grad(
      lambda q: maml.pixel_loss(apply_fn(q, x), y), p))
  x, y = backend.convert(lr_down), backend.convert(lr)
  result = {}
  result["forward_backward_ms"] = 1e3 * _median_seconds(
      lambda: keras.ops.convert_to_numpy(grad_fn(params, x, y)[0]), config.repeats)
  steps = max(config.adapt_steps, 1)
  result["adapt_step_ms"] = 1e3 * _median_seconds(
      lambda: adaptation.adapt_parameters(model, lr_down[0], lr[0], steps, 1e-3), config.repeats
  ) / steps
  result["adapt_step_over_forward_backward"] = (result["adapt_step_ms"]
                                                / result["forward_backward_ms"])
  log(f"LR {config.lr_size}x{config.lr_size}: forward+backward "
      f"{result['forward_backward_ms']:.1f} ms, adaptation step {result['adapt_step_ms']:.1f} ms "
      f"(x{result['adapt_step_over_forward_backward']:.2f})")
  hr = rng.uniform(0, 1, (config.batch, config.patch, config.patch, channels)).astype(np.float32)
  batch = {"hr": hr, "lr": hr[:, ::s, ::s], "lr_down": hr[:, ::s * s, ::s * s]}
  bx, by = backend.convert(batch["lr"]), backend.convert(batch["hr"])
  reference = 1e3 * _median_seconds(
      lambda: keras.ops.convert_to_numpy(grad_fn(params, bx, by)[0]), config.repeats)
  result["meta_reference_forward_backward_ms"] = reference
  for order in config.orders:
    trainer = meta_train.make_trainer(model, meta_train.MetaTrainConfig(
        workdir="", model=config.model, inner_steps=config.inner_steps, order=order,
        backend=backend.name, alpha=1e-3, beta=1e-7))
    ms = 1e3 * _median_seconds(lambda: trainer.step(batch), config.repeats)
    result[f"meta_iteration_{order}_ms"] = ms
    result[f"meta_iteration_{order}_over_forward_backward"] = ms / reference
    log(f"meta-iteration ({order} order, {config.batch} tasks, patch {config.patch}, "
        f"k={config.inner_steps}): {ms:.1f} ms = x{ms / reference:.2f} a forward+backward "
        f"of the meta-batch ({reference:.1f} ms)")
  return result


# ----------------------------------------------------------------------------- speed vs roofline


@dataclasses.dataclass
class SpeedConfig:
  """What ``tools/bench_speed.py`` times (see :func:`run_speed`)."""
  model: str = "idn"
  scale: int = 2
  precisions: tuple = ("float32", "mixed_bfloat16")
  batch: int = 16          # Forward / forward+backward: batch of lr_patch x lr_patch LR.
  lr_patch: int = 48
  adapt_lr_size: int = 256  # Adaptation: whole-image step on an LR of this side...
  adapt_crops: int = 4      # ...and a step on this many crops of adapt_crop_size LR pixels.
  adapt_crop_size: int = 96
  adapt_steps: int = 3      # Steps per timed adaptation call (the time is per step).
  meta_tasks: int = 4       # Meta-iteration: tasks of one meta_patch HR patch each...
  meta_patch: int = 128
  inner_steps: int = 5      # ...with k inner steps.
  orders: tuple = ("first", "second")
  roofline_convs: int = 6   # Dense 3x3 64->64 convs of the roofline stack.
  repeats: int = 3
  parallel_tasks: bool = False  # cpu_threads.use_task_parallel_threads() first.


def conv_macs_per_pixel(model) -> float:
  """Multiply-accumulates per *input* pixel of the model's convolutions.

  Each ``Conv2D`` / ``Conv2DTranspose`` contributes ``kernel.size`` MACs per output pixel
  (the kernel stores ``in/groups`` input channels, so grouping is counted exactly), times
  its output pixels per input pixel, read from the model's static shapes at a 16x16 input.
  """
  import keras  # pylint: disable=g-import-not-at-top
  layers = [l for l in model.layers
            if isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose))]
  probe = keras.Model(model.inputs, [l.output for l in layers])
  shapes = probe.compute_output_shape((1, 16, 16, model.inputs[0].shape[-1]))
  total = 0.0
  for layer, shape in zip(layers, shapes):
    total += float(np.prod(layer.kernel.shape)) * shape[1] * shape[2] / 256.0
  return total


def _roofline_model(convs: int, precision: str):
  import keras  # pylint: disable=g-import-not-at-top
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  with registry.dtype_policy(precision):
    inputs = keras.Input((None, None, 64))
    x = inputs
    for i in range(convs):
      x = keras.layers.Conv2D(64, 3, padding="same", name=f"dense_{i}")(x)
    return keras.Model(inputs, x)


def _timed_gradient(model, backend, x, y, repeats):
  """Seconds of one compiled forward and one forward+backward of ``model`` on ``x``."""
  import keras  # pylint: disable=g-import-not-at-top
  apply_fn = maml.make_apply_fn(model)
  params = adaptation.trainable_values(model)
  forward = backend.compile(apply_fn)
  grad_fn = backend.compile(lambda p, a, b: backend.value_and_grad(
      lambda q: maml.pixel_loss(apply_fn(q, a), b), p))
  x, y = backend.convert(x), backend.convert(y)
  fwd = _median_seconds(lambda: keras.ops.convert_to_numpy(forward(params, x)), repeats)
  both = _median_seconds(lambda: keras.ops.convert_to_numpy(grad_fn(params, x, y)[0]), repeats)
  return fwd, both


def run_speed(config: SpeedConfig, log: Callable[[str], None] = print) -> dict:
  """Times the IDN workloads against a dense-conv roofline, per precision.

  Reported per precision (keys ``"<precision>/<what>"``):

  * ``roofline``: forward+backward of ``roofline_convs`` dense 3x3 64->64 convs on the
    forward batch (the fastest convolution work these cores do);
  * ``forward``, ``forward_backward``: the model on ``batch`` LR patches;
  * ``adapt_step_whole`` / ``adapt_step_crops``: one SGD adaptation step through
    :func:`adaptation.adapt_parameters` (whole LR_down -> LR, or crops), per step;
  * ``meta_iteration_<order>``: one meta-iteration of ``meta_tasks`` tasks, k inner steps.

  Each entry has ``ms``; where the work is known, ``gflops`` (convolution FLOPs: 2 per MAC;
  backward counted as twice the forward) and ``of_roofline`` (its GFLOP/s over the
  roofline's); forward+backward also has ``param_pixels_per_s_of_roofline`` (parameters x
  pixels per second over the roofline's), the issue's throughput measure.  Second-order
  meta-iterations report FLOPs of the first-order work they contain (a lower bound).
  """
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top
  _check_orders(config.orders)
  for precision in config.precisions:
    registry.check_precision(precision)
  threads = cpu_threads.use_task_parallel_threads() if config.parallel_tasks else {}
  backend = maml.get_backend()
  rng = np.random.default_rng(0)
  s = config.scale
  result = {"config": dataclasses.asdict(config), "backend": backend.name, "threads": threads}

  def record(key, seconds, flops=None, roof=None):
    entry = {"ms": round(1e3 * seconds, 2)}
    if flops is not None:
      entry["gflops"] = round(flops / seconds / 1e9, 1)
      if roof:
        entry["of_roofline"] = round(entry["gflops"] / roof, 3)
    result[key] = entry
    log(f"{key}: {entry}")
    return entry

  for precision in config.precisions:
    model = registry.build_model(config.model, scale=s, precision=precision)
    channels = adaptation.model_channels(model)
    macs = conv_macs_per_pixel(model)  # Per input pixel.
    params = float(model.count_params())
    n, p = config.batch, config.lr_patch
    pixels = n * p * p

    roof_model = _roofline_model(config.roofline_convs, precision)
    roof_macs = 64 * 64 * 9 * config.roofline_convs
    feats = rng.uniform(0, 1, (n, p, p, 64)).astype(np.float32)
    _, roof_s = _timed_gradient(roof_model, backend, feats, feats, config.repeats)
    roof = record(f"{precision}/roofline", roof_s, 3 * 2 * roof_macs * pixels)["gflops"]
    roof_param_pixels = roof_model.count_params() * pixels / roof_s

    x = rng.uniform(0, 1, (n, p, p, channels)).astype(np.float32)
    y = rng.uniform(0, 1, (n, s * p, s * p, channels)).astype(np.float32)
    fwd_s, both_s = _timed_gradient(model, backend, x, y, config.repeats)
    record(f"{precision}/forward", fwd_s, 2 * macs * pixels, roof)
    entry = record(f"{precision}/forward_backward", both_s, 3 * 2 * macs * pixels, roof)
    entry["param_pixels_per_s_of_roofline"] = round(
        params * pixels / both_s / roof_param_pixels, 3)
    log(f"{precision}/forward_backward params x pixels / s of the roofline's: "
        f"{entry['param_pixels_per_s_of_roofline']}")

    size = config.adapt_lr_size
    lr = rng.uniform(0, 1, (size, size, channels)).astype(np.float32)
    lr_down = lr[::s, ::s]
    steps = config.adapt_steps
    step_flops = 3 * 2 * macs * lr_down.shape[0] * lr_down.shape[1]
    record(f"{precision}/adapt_step_whole", _median_seconds(
        lambda: adaptation.adapt_parameters(model, lr_down, lr, steps, 1e-3), config.repeats)
        / steps, step_flops, roof)
    crop = config.adapt_crop_size
    crop_flops = 3 * 2 * macs * config.adapt_crops * (crop // s) ** 2
    record(f"{precision}/adapt_step_crops", _median_seconds(
        lambda: adaptation.adapt_parameters(model, lr_down, lr, steps, 1e-3,
                                            crops=config.adapt_crops, crop_size=crop,
                                            scale=s), config.repeats) / steps,
           crop_flops, roof)

    hr_side = config.meta_patch
    hr = rng.uniform(0, 1, (config.meta_tasks, hr_side, hr_side, channels)).astype(np.float32)
    batch = {"hr": hr, "lr": hr[:, ::s, ::s], "lr_down": hr[:, ::s * s, ::s * s]}
    lr_px, down_px = (hr_side // s) ** 2, (hr_side // (s * s)) ** 2
    # k inner forward+backward on LR_down, the meta forward+backward on LR, and the
    # support-loss forward after adaptation (a logged metric).
    meta_flops = config.meta_tasks * 2 * macs * (
        3 * config.inner_steps * down_px + 3 * lr_px + down_px)
    for order in config.orders:
      trainer = meta_train.make_trainer(model, meta_train.MetaTrainConfig(
          workdir="", model=config.model, inner_steps=config.inner_steps, order=order,
          backend=backend.name, alpha=1e-3, beta=1e-7, precision=precision))
      record(f"{precision}/meta_iteration_{order}",
             _median_seconds(lambda: trainer.step(batch), config.repeats), meta_flops, roof)
  return result
