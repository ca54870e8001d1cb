"""Supervised pretraining of an SR network (stage (a) of MLSR), on any Keras backend.

MLSR starts meta-training from a conventionally trained network.  This module trains one
from random initialisation (or fine-tunes given weights) on HR training images:

  HR patches (``PatchSampler``) -> LR = degrade(HR) (quantized to uint8, like real LR files)
  -> model(LR) vs HR, L1 or L2, Adam with cosine decay over ``decay_steps`` iterations
  (its own setting, not ``iterations``: a run resumed with a larger ``iterations`` follows
  the same schedule as one started with it; after ``decay_steps`` the rate stays at its
  final value).

It runs unchanged on the TensorFlow backend (this project's product path) and on the JAX
backend (the GPU machines, which have no TensorFlow): only NumPy, Keras and
``mlsr_tf.data`` are used, and checkpoints are backend-neutral files:

  workdir/ckpt/model.weights.h5   weights at the last checkpoint
  workdir/ckpt/optimizer.npz      optimizer variables (Adam moments, iteration count)
  workdir/ckpt/state.json         {"iteration": i, ...}
  workdir/model.weights.h5        the latest weights (what other tools load)
  workdir/log.jsonl               one JSON line per log / validation event

Data order is a pure function of ``(seed, iteration)``, so an interrupted run resumed from
its checkpoint continues exactly as the uninterrupted run would have (bit for bit on the
same machine; tested).  The work directory is opened with
``checkpoint.workdir_session``: weights without a readable state are refused unless
``overwrite``, and resuming with a different value of a :data:`RESULT_FIELDS` field is
refused, naming it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pathlib
import sys
import time
from concurrent import futures
from typing import Callable, Optional

import numpy as np

from mlsr_tf.training import checkpoint
from mlsr_tf import paths
from mlsr_tf.data import datasets  # noqa
from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import sampling



@dataclasses.dataclass
class TrainConfig:
  """Everything that defines a supervised training run (the flags of ``tools/train.py``)."""
  model: str = "idn"
  model_kwargs: dict = dataclasses.field(default_factory=dict)
  scale: int = 2
  channels: int = 3
  weights: Optional[str] = None          # initial weights (any importable format), or None
  data: str = "train291"                 # dataset name under the data root, or a folder
  data_root: Optional[str] = None
  patch: int = 96                        # HR patch side
  batch: int = 16
  iterations: int = 1000
  learning_rate: float = 2e-4
  final_learning_rate_fraction: float = 0.05   # cosine decay ends at lr * this
  decay_steps: int = 20000               # length of the cosine decay (not tied to iterations)
  loss: str = "l1"                       # l1 | l2
  degradation: str = "bicubic"           # bicubic | a degradation-distribution spec
  pool_size: int = 4096                  # HR/LR patch pairs prepared up front
  workers: int = 0                       # processes preparing the pool (0 = os.cpu_count())
  workdir: str = "runs/train"
  checkpoint_every: int = 500
  validate_every: int = 1000
  validation: str = "Set5"
  log_every: int = 100
  seed: int = 0
  jit_compile: bool = True
  # Keras dtype policy of the layers: float32, or mixed_float16 (GPU; compile() wraps Adam in
  # a dynamic LossScaleOptimizer, whose scale restarts on resume) / mixed_bfloat16 (compute in
  # 16 bits); variables and saved weights stay float32 either way.
  precision: str = "float32"
  max_seconds: Optional[float] = None    # stop (after a checkpoint) once this much time passed
  # With max_seconds: after two log periods, measure the speed and shorten `iterations` (and
  # the cosine schedule) so that the run *finishes* its schedule within max_seconds.
  fit_iterations_to_time: bool = False
  overwrite: bool = False                # discard what workdir holds and start again

  def validate(self) -> None:
    if self.scale not in (2, 3, 4):
      raise ValueError(f"scale must be 2, 3 or 4, got {self.scale!r}")
    if self.channels not in (1, 3):
      raise ValueError(f"channels must be 1 or 3, got {self.channels!r}")
    if self.loss not in ("l1", "l2"):
      raise ValueError(f"loss must be 'l1' or 'l2', got {self.loss!r}")
    for name in ("patch", "batch", "pool_size", "checkpoint_every", "validate_every",
                 "log_every", "decay_steps"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name} must be positive, got {getattr(self, name)!r}")
    if self.iterations < 0:
      raise ValueError(f"iterations must be >= 0, got {self.iterations!r}")
    if self.patch % self.scale:
      raise ValueError(f"patch ({self.patch}) must be a multiple of scale ({self.scale})")
    if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
      raise ValueError(f"learning_rate must be a positive number, got {self.learning_rate!r}")
    if not 0 <= self.final_learning_rate_fraction <= 1:
      raise ValueError(f"final_learning_rate_fraction must be in [0, 1], got "
                       f"{self.final_learning_rate_fraction!r}")
    if self.max_seconds is not None and not self.max_seconds > 0:
      raise ValueError(f"max_seconds must be a positive number, got {self.max_seconds!r}")
    from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
    registry.check_precision(self.precision)
    pair = self.patch ** 2 * self.channels * (1 + 1 / self.scale ** 2)  # HR + LR values.
    paths.check_memory(self.pool_size * pair, f"pool_size {self.pool_size} of "
                       f"{self.patch}x{self.patch} patches")
    paths.check_memory(self.batch * pair * 4, f"batch {self.batch} of {self.patch}x"
                       f"{self.patch} patches")


# Fields that change the result: a run may be resumed only with the values it started with.
# The others (iterations, workdir, data_root, workers, jit_compile, how often to log,
# checkpoint and validate, max_seconds, ...) may differ.
RESULT_FIELDS = ("model", "model_kwargs", "scale", "channels", "weights", "data", "patch",
                 "batch", "learning_rate", "final_learning_rate_fraction", "decay_steps",
                 "loss", "degradation", "pool_size", "seed", "precision")
# The work directory's outputs besides ckpt/ (the weights first).
OUTPUTS = ("model.weights.h5", "log.jsonl")


# ----------------------------------------------------------------------------- data


def degradation_sampler(spec: str, scale: int) -> Callable[[np.random.Generator],
                                                           degradation_lib.Degradation]:
  """Returns ``rng -> Degradation`` for ``spec``.

  A distribution name of ``mlsr_tf.data.tasks.DEGRADATION_KINDS`` other than ``bicubic``
  (``random5x5``, ``gaussian``, ``mixed``) draws one degradation per patch; anything else is
  a fixed degradation as ``parse_degradation`` reads it (``bicubic``, ``gaussian:SX,SY,THETA``,
  a kernel file).
  """
  from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
  if spec in tasks.DEGRADATION_KINDS and spec != "bicubic":
    return tasks.DegradationDistribution(spec, scale).sample
  fixed = degradation_lib.parse_degradation(spec, scale)
  return lambda rng: fixed


# What the pool workers need; set before forking so that closures need no pickling.
_POOL_SOURCE = {}


def _make_pair(args):
  """Worker: one chunk of (LR, HR) uint8 pairs; a pure function of its arguments."""
  seed, chunk, count = args
  sampler, sample_degradation = _POOL_SOURCE["sampler"], _POOL_SOURCE["degradation"]
  rng = np.random.default_rng([seed, 1_000_003, chunk])
  hr = np.stack([sampler.sample(rng) for _ in range(count)])
  lr = np.stack([degradation_lib.degrade(patch, sample_degradation(rng)) for patch in hr])
  return lr, hr


def build_pool(sampler: sampling.PatchSampler, sample_degradation, size: int, seed: int,
               workers: int = 0, chunk: int = 256):
  """Prepares ``size`` (LR, HR) uint8 patch pairs; deterministic for a given seed.

  Work is split in fixed chunks (each seeded by its index), so the result does not depend on
  the number of worker processes.
  """
  counts = [min(chunk, size - start) for start in range(0, size, chunk)]
  jobs = [(seed, i, c) for i, c in enumerate(counts)]
  workers = workers or os.cpu_count() or 1
  _POOL_SOURCE.update(sampler=sampler, degradation=sample_degradation)
  try:
    if workers > 1 and len(jobs) > 1:
      import multiprocessing  # pylint: disable=g-import-not-at-top
      # Forked workers inherit _POOL_SOURCE: the sampler's images are not pickled per job.
      context = multiprocessing.get_context("fork")
      with futures.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parts = list(pool.map(_make_pair, jobs))
    else:
      parts = [_make_pair(job) for job in jobs]
  finally:
    _POOL_SOURCE.clear()
  return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


def pool_batch(pool_lr: np.ndarray, pool_hr: np.ndarray, seed: int, iteration: int,
               batch: int):
  """Float32 [0, 1] batch for ``iteration``: random pool entries, random dihedral transform."""
  rng = np.random.default_rng([seed, 2_000_003, iteration])
  index = rng.integers(0, len(pool_lr), size=batch)
  transforms = rng.integers(0, sampling.NUM_DIHEDRAL, size=batch)
  lr = np.stack([sampling.dihedral(pool_lr[i], t) for i, t in zip(index, transforms)])
  hr = np.stack([sampling.dihedral(pool_hr[i], t) for i, t in zip(index, transforms)])
  return lr.astype(np.float32) / 255.0, hr.astype(np.float32) / 255.0


# ----------------------------------------------------------------------------- validation


def validate_psnr(model, scale: int, channels: int, names, root) -> dict:
  """Mean PSNR (Y, shave = scale) of ``model`` on benchmark sets, bicubic LR."""
  from mlsr_tf import metrics  # pylint: disable=g-import-not-at-top
  result = {}
  for set_name in names:
    values = []
    for _, hr, lr in datasets.load_benchmark(set_name, scale, root=root):
      lr_in = sampling.to_channels(lr, channels)
      hr_ref = sampling.to_channels(hr, channels)
      sr = model.predict_on_batch(lr_in[None].astype(np.float32) / 255.0)[0]
      sr = np.clip(np.round(np.asarray(sr, np.float64) * 255.0), 0, 255).astype(np.uint8)
      values.append(metrics.psnr(sr, hr_ref, shave=scale))
    result[set_name] = float(np.mean(values))
  return result


# ----------------------------------------------------------------------------- training


def build(config: TrainConfig):
  """Builds the model (and loads initial weights) for ``config``.

  Layers take ``config.precision`` as their dtype policy; the weights stay float32, so the
  saved files do not depend on it.
  """
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  model = registry.build_model(config.model, scale=config.scale, channels=config.channels,
                               precision=config.precision, **config.model_kwargs)
  if config.weights:
    from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top
    models_io.load_weights_into(model, config.weights)
  return model


def run(config: TrainConfig, log: Callable[[str], None] = print) -> dict:
  """Trains (or resumes) according to ``config``; returns the final state dictionary."""
  config.validate()
  with checkpoint.workdir_session(config.workdir, "ckpt", overwrite=config.overwrite,
                                  outputs=OUTPUTS) as session:
    state = session.state
    if state is not None:
      saved = state["config"]
      checkpoint.check_same_run(
          saved, dataclasses.asdict(config), RESULT_FIELDS, session.workdir,
          # Older versions decayed over --iterations: the recorded run's is the best guess.
          defaults={"decay_steps": saved.get("iterations")})
    return _train(config, log, session.workdir, state)


def _train(config: TrainConfig, log: Callable[[str], None], workdir: pathlib.Path,
           state: Optional[dict]) -> dict:
  """The training loop of :func:`run`, in an open work directory."""
  import keras  # pylint: disable=g-import-not-at-top
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  root = paths.data_root(config.data_root)
  image_paths = datasets.list_training_images(config.data, root=root)
  sampler = sampling.PatchSampler.from_paths(
      image_paths, config.patch, channels=config.channels, seed=config.seed,
      augment=True, multiple_of=config.scale)
  started = time.time()
  pool_lr, pool_hr = build_pool(sampler, degradation_sampler(config.degradation, config.scale),
                                config.pool_size, config.seed, config.workers)
  log(f"pool: {len(pool_lr)} pairs LR {pool_lr.shape[1:]} HR {pool_hr.shape[1:]} "
      f"from {len(image_paths)} images in {time.time() - started:.1f}s")

  keras.utils.set_random_seed(config.seed)  # Same initialisation for the same seed.
  model = build(config)
  # The decay length a resumed run keeps is the one its checkpoint recorded (it differs
  # from config.decay_steps when fit_iterations_to_time shortened it).
  decay_steps = state.get("decay_steps", config.decay_steps) if state else config.decay_steps
  schedule = keras.optimizers.schedules.CosineDecay(
      config.learning_rate, decay_steps=decay_steps, alpha=config.final_learning_rate_fraction)
  optimizer = keras.optimizers.Adam(learning_rate=schedule)
  loss = "mean_absolute_error" if config.loss == "l1" else "mean_squared_error"
  model.compile(optimizer=optimizer, loss=loss, jit_compile=config.jit_compile)
  optimizer.build(model.trainable_variables)

  if state is not None:
    state = checkpoint.restore(workdir / "ckpt", model, optimizer)
  start = state["iteration"] if state else 0
  if start:
    log(f"resumed from iteration {start}")
  history = list(state.get("history", [])) if state else []

  def batches(first, count):
    for it in range(first, first + count):
      yield pool_batch(pool_lr, pool_hr, config.seed, it, config.batch)

  def save(iteration):
    checkpoint.save(workdir / "ckpt", model, optimizer,
                    {"iteration": iteration, "history": history,
                     "decay_steps": int(schedule.decay_steps),
                     "config": dataclasses.asdict(config)})
    keras_h5.save(model, workdir / "model.weights.h5")

  iteration = start
  loop_started = time.time()
  stop_reason = "done"
  while iteration < config.iterations:
    # Run up to the next log / checkpoint / validation boundary in one fit() call.
    boundary = min(config.iterations,
                   _next_multiple(iteration, config.log_every),
                   _next_multiple(iteration, config.checkpoint_every),
                   _next_multiple(iteration, config.validate_every))
    count = boundary - iteration
    period_started = time.time()
    fit = model.fit(batches(iteration, count), steps_per_epoch=count, epochs=1, verbose=0,
                    shuffle=False)
    iteration = boundary
    elapsed = time.time() - loop_started
    if (config.fit_iterations_to_time and config.max_seconds and not state
        and iteration == start + 2 * config.log_every):
      rate = count / max(time.time() - period_started, 1e-9)
      _fit_schedule_to_time(config, model, schedule, rate, time.time() - started, iteration,
                            log)
    rate = (iteration - start) / max(elapsed, 1e-9)
    eta = (config.iterations - iteration) / max(rate, 1e-9)
    event = {"iteration": iteration, "loss": float(fit.history["loss"][-1]),
             "learning_rate": float(schedule(iteration - 1)),
             "seconds": round(time.time() - started, 1)}
    validation_sets = [name for name in config.validation.split(",") if name]
    if validation_sets and (iteration % config.validate_every == 0
                            or iteration == config.iterations):
      event["validation_psnr"] = validate_psnr(model, config.scale, config.channels,
                                               validation_sets, root)
    history.append(event)
    _append_jsonl(workdir / "log.jsonl", event)
    log(f"[{iteration}/{config.iterations}] loss {event['loss']:.5f} "
        f"lr {event['learning_rate']:.2e} {rate:.1f} it/s ETA {eta / 60:.1f} min"
        + (f" val {event['validation_psnr']}" if "validation_psnr" in event else ""))
    timed_out = config.max_seconds is not None and time.time() - started > config.max_seconds
    if (iteration % config.checkpoint_every == 0 or iteration == config.iterations
        or timed_out):
      save(iteration)
    if timed_out and iteration < config.iterations:
      stop_reason = "max_seconds"
      log(f"stopping at iteration {iteration}: max_seconds={config.max_seconds} reached "
          "(rerun with the same workdir to resume)")
      break
  if state is None and iteration == 0:  # --iterations 0: the initial weights, resumable.
    save(0)
  elif start >= config.iterations:
    log(f"nothing to do: iteration {start} >= --iterations {config.iterations}")
  return {"iteration": iteration, "history": history, "stop_reason": stop_reason}


def _fit_schedule_to_time(config, model, schedule, rate, elapsed, iteration, log) -> None:
  """Shortens config.iterations to what fits in max_seconds at ``rate`` iterations/s."""
  # Keep ~8% for validations, checkpoints and one recompilation.
  remaining = config.max_seconds * 0.92 - elapsed
  planned = iteration + int(rate * max(remaining, 0.0))
  planned = max(iteration, planned // config.log_every * config.log_every)
  if planned < config.iterations:
    log(f"fitting schedule to time: {rate:.1f} it/s -> {planned} iterations "
        f"instead of {config.iterations}")
    config.iterations = planned
    schedule.decay_steps = max(planned, 1)
    model.make_train_function(force=True)  # The schedule is traced into the train step.


def _next_multiple(value: int, step: int) -> int:
  return (value // step + 1) * step


def _append_jsonl(path: pathlib.Path, event: dict) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(event) + "\n")
    f.flush()
  sys.stdout.flush()
