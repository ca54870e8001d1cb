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


def run(config: BenchConfig, model=None, log: Callable[[str], None] = print) -> dict:
  """Returns milliseconds and overhead ratios (see the keys); logs one line each."""
  from mlsr_tf import meta_train  # pylint: disable=g-import-not-at-top
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
