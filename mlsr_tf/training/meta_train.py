"""Meta-training (the paper's Algorithm 1) of any registered SR network, resumable.

``run(MetaTrainConfig(...))`` is the library behind ``tools/meta_train.py``.  It works
on both Keras backends (``config.backend`` must equal Keras' active backend, chosen
by ``KERAS_BACKEND`` before keras is imported); on JAX nothing imports TensorFlow
except the optional TensorBoard writer (skipped when TensorFlow is absent).

Workdir layout (backend-neutral, so a run can resume on the other backend):

* ``model.weights.h5``: the latest meta-trained weights (what other tools read);
* ``checkpoint/model.weights.h5``, ``checkpoint/optimizer.npz`` (Adam moments and
  count), ``checkpoint/state.json`` (iteration, config): written atomically, the
  state file last;
* ``metrics.jsonl``: one JSON line per log/validation event; ``tensorboard/``.

Data order is a pure function of ``(seed, iteration)`` (see
:mod:`mlsr_tf.data.tasks`), so a run resumed at iteration i sees the same tasks as an
uninterrupted one and ends with the same weights.

Validation (at iteration 0 and every ``validate_every`` iterations; none when
``iterations < validate_every``), per image set, HR centre-cropped to
``validation_size``:
each HR image is degraded with a fixed degradation drawn (seeded by the image index)
from the same kind of distribution on the *validation* kernel split; reported are
the PSNR of bicubic upscaling, of the current network without adaptation ("base")
and after ``validation_steps`` adaptation steps ("adapted"), as in the authors' code.
With ``validation_degradations`` (``parse_degradation`` specs such as ``bicubic`` or
``gaussian:2.0,2.0,0``) every image is instead degraded with each listed degradation,
reported as ``"SET/SPEC"``: this tracks the targets one ships a model for (e.g. bicubic
without adaptation and a given blur after adaptation).  ``keep_validated_weights`` keeps
the weights of every validation in ``validated/iteration_NNNNNN.weights.h5`` so a
snapshot can be chosen afterwards.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import time
from typing import Callable

import numpy as np

from mlsr_tf.training import checkpoint as checkpoint_lib
from mlsr_tf.meta import maml


@dataclasses.dataclass
class MetaTrainConfig:
  """Everything ``tools/meta_train.py`` can set (see its flags for the meaning)."""
  workdir: str
  overwrite: bool = False  # Discard what workdir holds and start again.
  model: str = "idn_caffe"
  weights: str | None = None
  model_kwargs: dict = dataclasses.field(default_factory=dict)
  scale: int = 2
  channels: int | None = None  # None: the model's default (1 for idn_caffe).
  data: str = "train291"
  data_root: str | None = None
  patch: int = 128
  batch: int = 4  # Tasks per meta-batch.
  patches_per_task: int = 1
  inner_steps: int = 5
  alpha: float = maml.PAPER_ALPHA
  beta: float = maml.PAPER_BETA
  iterations: int = 1000
  degradation: str = "mixed"
  mixture_weights: str | None = None  # "bicubic,random5x5,gaussian" weights for "mixed".
  # Gaussian sigma range of the tasks (HR pixels).  A larger sigma_min aims the tasks at heavy
  # blur; the anchor and the random 5x5 pool keep their own ranges (tasks.DEFAULT_SIGMA_RANGE
  # starts at 0.2), so the un-adapted network stays trained on every blur.
  sigma_min: float = 0.2
  sigma_max: float = 3.0
  order: str = "first"
  loss: str = "l2"
  pixel_range: float = 1.0
  validate_every: int = 100
  validation: str = "Set5"
  validation_images: int = 0  # 0: all images of each set.
  validation_size: int = 128  # Centre-crop validation HR to at most this size (0: whole).
  validation_steps: int = 5
  validation_degradations: tuple = ()  # parse_degradation specs; (): drawn as in training.
  keep_validated_weights: bool = False
  checkpoint_every: int = 100
  log_every: int = 10
  seed: int = 0
  backend: str = "tensorflow"
  jit_compile: bool = False
  # Layer dtype policy (mlsr_tf.models.registry.PRECISIONS): "mixed_bfloat16" computes in
  # bfloat16 (AMX on CPUs that have it); theta, Adam state and saved weights stay float32.
  precision: str = "float32"
  # Run the meta-batch's tasks side by side, one thread each (mlsr_tf.meta.cpu_threads):
  # faster meta-iterations on CPU, slower whole-image validation.  Speed only.
  parallel_tasks: bool = False
  # Outer objective (maml.MetaObjective): query-loss weights after 0..k inner steps (empty:
  # the paper's final step only; index 0 > 0 anchors the un-adapted network to the
  # supervised LR -> HR loss), and learned per-step, per-tensor inner step sizes.
  query_weights: tuple = ()
  learn_step_sizes: bool = False
  step_size_learning_rate: float = 1e-2
  # Upper bound on every learned step size (None: unbounded); see maml.MetaObjective.
  max_step_size: float | None = None
  # A step-size file (mlsr_tf.meta.step_sizes) to start the learned step sizes from instead
  # of `alpha` (to continue an earlier run's learning in a new work directory).
  initial_step_sizes: str | None = None
  # A supervised (bicubic LR -> HR) loss on `batch` patches of `anchor_data` per iteration,
  # weighted by `anchor_weight`: keeps the un-adapted network on the data it was trained on
  # while the tasks come from `data`.
  anchor_data: str | None = None
  anchor_weight: float = 0.0
  # How the anchor's LR patches are made (a tasks.DEGRADATION_KINDS kind, with the tasks'
  # sigma range and mixture weights): "bicubic" for a bicubic network; for a kernel-aware
  # network, the blurs it was trained on ("gaussian", "random5x5", "mixed").
  anchor_degradation: str = "bicubic"
  # Round every LR (tasks, anchor, validation) to 8-bit levels, as the LR files of test time
  # are; off by default so that earlier runs replay their tasks.
  quantize_lr: bool = False

  def objective(self) -> maml.MetaObjective:
    return maml.MetaObjective(tuple(self.query_weights), self.learn_step_sizes,
                              self.step_size_learning_rate, self.anchor_weight,
                              self.max_step_size)

  def validate(self) -> None:
    """Raises ValueError (repeating the value) for inconsistent settings."""
    positive = ("scale", "patch", "batch", "patches_per_task", "iterations", "log_every",
                "checkpoint_every")
    for name in positive:
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    for name in ("inner_steps", "validate_every", "validation_images", "validation_size",
                 "validation_steps"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    for name in ("alpha", "beta", "pixel_range", "sigma_max"):
      value = getattr(self, name)
      if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if not 0 < self.sigma_min <= self.sigma_max:
      raise ValueError(f"sigma_min must satisfy 0 < sigma_min <= sigma_max = {self.sigma_max!r}, "
                       f"got {self.sigma_min!r}")
    if self.patch % (self.scale * self.scale):
      raise ValueError(f"patch {self.patch} must be a multiple of scale^2 = "
                       f"{self.scale * self.scale}")
    if self.order not in maml.ORDERS:
      raise ValueError(f"unknown order {self.order!r}; expected one of {maml.ORDERS}")
    if self.backend not in maml.BACKENDS:
      raise ValueError(f"unknown backend {self.backend!r}; expected one of {maml.BACKENDS}")
    if self.initial_step_sizes and not self.learn_step_sizes:
      raise ValueError(f"initial step sizes {self.initial_step_sizes!r} need learned step "
                       "sizes (--learn_step_sizes)")
    from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
    if self.degradation not in tasks.DEGRADATION_KINDS:
      raise ValueError(f"unknown degradation {self.degradation!r}; expected one of "
                       f"{tasks.DEGRADATION_KINDS}")
    tasks.parse_mixture_weights(self.mixture_weights, self.degradation)
    if isinstance(self.validation_degradations, str):
      raise ValueError("validation_degradations must be a sequence of specs, got the string "
                       f"{self.validation_degradations!r}")
    from mlsr_tf.data import degradation as degradation_lib  # pylint: disable=g-import-not-at-top
    for spec in self.validation_degradations:
      degradation_lib.parse_degradation(spec, self.scale)
    maml.LossConfig(self.loss, self.pixel_range)
    from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
    registry.check_precision(self.precision)
    from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
    paths.check_memory(  # HR, LR and LR_down float32 patches of one meta-batch.
        self.batch * self.patches_per_task * self.patch ** 2 * (self.channels or 3) * 4
        * (1 + self.scale ** -2 + self.scale ** -4),
        f"batch {self.batch} x patches_per_task {self.patches_per_task} of "
        f"{self.patch}x{self.patch} patches")
    self.objective().validate(self.inner_steps)
    from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
    if self.anchor_degradation not in tasks.DEGRADATION_KINDS:
      raise ValueError(f"unknown anchor_degradation {self.anchor_degradation!r}; expected one "
                       f"of {tasks.DEGRADATION_KINDS}")
    if bool(self.anchor_data) != bool(self.anchor_weight):
      raise ValueError(f"anchor_data and anchor_weight go together, got anchor_data "
                       f"{self.anchor_data!r} and anchor_weight {self.anchor_weight!r}")


# ----------------------------------------------------------------------------- pieces


def build_model(config: MetaTrainConfig):
  """The registered network with its initial weights (any importable format).

  Native Keras weights (``.weights.h5``) and no weights bypass the importers
  (``mlsr_tf.models_io`` imports TensorFlow for TF1 checkpoints, and the JAX GPU
  machines have none): import a ``.caffemodel`` / checkpoint once with
  ``tools/import_weights.py`` and meta-train from the ``.weights.h5`` there.
  """
  weights = config.weights
  if weights is None or str(weights).endswith(".weights.h5"):
    from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
    model = registry.build_model(config.model, scale=config.scale, channels=config.channels,
                                 precision=config.precision, **config.model_kwargs)
    if weights is not None:
      from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
      keras_h5.load(model, weights, "initial weights")
    return model
  from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top
  return models_io.build_and_load(config.model, config.weights, scale=config.scale,
                                  channels=config.channels, precision=config.precision,
                                  **config.model_kwargs)


def make_trainer(model, config: MetaTrainConfig, strategy=None):
  """The backend's meta-trainer (``backend_tf.MetaTrainer`` / ``backend_jax.MetaTrainer``)."""
  backend = maml.get_backend(config.backend)
  alphas = maml.step_sizes(config.alpha, config.inner_steps)
  loss_config = maml.LossConfig(config.loss, config.pixel_range)
  objective = config.objective()
  if backend.name == "tensorflow":
    from mlsr_tf.meta import backend_tf  # pylint: disable=g-import-not-at-top
    return backend_tf.MetaTrainer(model, alphas, config.beta, config.order, loss_config,
                                  jit_compile=config.jit_compile, strategy=strategy,
                                  objective=objective)
  from mlsr_tf.meta import backend_jax  # pylint: disable=g-import-not-at-top
  return backend_jax.MetaTrainer(model, alphas, config.beta, config.order, loss_config,
                                 objective=objective)


def make_task_sampler(config: MetaTrainConfig, channels: int):
  from mlsr_tf.data import datasets  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
  from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
  files = datasets.list_training_images(config.data, paths.data_root(config.data_root))
  return tasks.TaskSampler.from_paths(
      files, config.patch, config.scale, kind=config.degradation, channels=channels,
      seed=config.seed, patches_per_task=config.patches_per_task,
      quantize_lr=config.quantize_lr, sigma_range=(config.sigma_min, config.sigma_max),
      mixture_weights=config.mixture_weights)


# Offset of the anchor patches' seed, so that they never repeat the tasks' patches.
ANCHOR_SEED_OFFSET = 104729


def make_anchor_sampler(config: MetaTrainConfig, channels: int):
  """(LR, HR) patches of ``config.anchor_data`` made with ``config.anchor_degradation``
  (None without an anchor)."""
  if not config.anchor_weight:
    return None
  from mlsr_tf.data import datasets  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
  from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
  files = datasets.list_training_images(config.anchor_data, paths.data_root(config.data_root))
  mixture = config.mixture_weights if config.anchor_degradation == "mixed" else None
  return tasks.TaskSampler.from_paths(
      files, config.patch, config.scale, kind=config.anchor_degradation, channels=channels,
      seed=config.seed + ANCHOR_SEED_OFFSET, quantize_lr=config.quantize_lr,
      sigma_range=(tasks.DEFAULT_SIGMA_RANGE[0], config.sigma_max), mixture_weights=mixture)


def sample_batch(sampler, anchor_sampler, iteration: int, config: MetaTrainConfig) -> dict:
  """The meta-batch of ``iteration``: tasks, plus the anchor patches when there is an anchor."""
  batch = sampler.sample(iteration, config.batch)
  if anchor_sampler is not None:
    anchor = anchor_sampler.sample(iteration, config.batch)
    batch = dict(batch, anchor_lr=anchor["lr"], anchor_hr=anchor["hr"])
  return batch


def _center_crop(image: np.ndarray, size: int, multiple: int) -> np.ndarray:
  h, w = image.shape[:2]
  if size:
    h, w = min(h, size), min(w, size)
  h, w = h - h % multiple, w - w % multiple
  top, left = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
  return image[top:top + h, left:left + w]


def validation_set(config: MetaTrainConfig, channels: int) -> dict:
  """``{key: [(image name, HR uint8, LR float, Degradation)]}``, fixed per config.

  The key is the set name, or ``"SET/SPEC"`` for each of ``validation_degradations``.
  """
  from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import datasets  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import degradation as degradation_lib  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import image_io  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import sampling  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
  root = paths.data_root(config.data_root)
  distribution = tasks.DegradationDistribution(
      config.degradation, config.scale, split="validation",
      sigma_range=(config.sigma_min, config.sigma_max),
      mixture_weights=config.mixture_weights)
  fixed = {spec: degradation_lib.parse_degradation(spec, config.scale)
           for spec in config.validation_degradations}
  result = {}
  for set_name in [s for s in config.validation.split(",") if s]:
    files = datasets.list_training_images(set_name, root)
    if config.validation_images:
      files = files[:config.validation_images]
    items = {}
    for index, path in enumerate(files):
      hr = image_io.read_image(path)
      if hr.dtype != np.uint8:
        raise ValueError(f"validation image {str(path)!r} is not 8-bit")
      hr = _center_crop(sampling.to_channels(hr, channels), config.validation_size,
                        config.scale)
      if fixed:
        degradations = fixed
      else:
        degradations = {None: distribution.sample(
            np.random.default_rng([config.seed, 7919, index]))}
      for spec, deg in degradations.items():
        lr = tasks.make_lr(image_io.to_float(hr), deg, config.quantize_lr)
        key = set_name if spec is None else f"{set_name}/{spec}"
        items.setdefault(key, []).append((path.stem, hr, lr, deg))
    result.update(items)
  return result


def validate(model, validation: dict, config: MetaTrainConfig, step_sizes=None) -> dict:
  """Mean PSNR per set: ``{set: {"bicubic", "base", "adapted"}}`` (Y, shave = scale).

  ``step_sizes``: learned ``[k, P]`` step sizes to adapt with (default: ``config.alpha``).
  """
  from mlsr_tf import metrics  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import image_io  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import imresize  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  result = {}
  for set_name, items in validation.items():
    scores = {"bicubic": [], "base": [], "adapted": []}
    for _, hr, lr, deg in items:
      bicubic = np.clip(imresize.imresize(lr, config.scale), 0, 1)
      outputs = adaptation.adapt_at_steps(
          model, lr, deg, steps=(0, config.validation_steps),
          alpha=config.alpha if step_sizes is None else step_sizes,
          loss=config.loss, pixel_range=config.pixel_range, seed=config.seed)
      for key, sr in (("bicubic", bicubic), ("base", outputs[0]),
                      ("adapted", outputs[config.validation_steps])):
        sr = image_io.to_uint(sr[:hr.shape[0], :hr.shape[1]])
        scores[key].append(metrics.psnr(sr, hr[:sr.shape[0], :sr.shape[1]],
                                        shave=config.scale))
    result[set_name] = {k: float(np.mean(v)) for k, v in scores.items()}
  return result


# ----------------------------------------------------------------------------- checkpoints


def save_weights(model, path: pathlib.Path) -> None:
  """``model.save_weights`` to a temporary file, then renamed (never half-written)."""
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  path.parent.mkdir(parents=True, exist_ok=True)
  keras_h5.save(model, path)


def save_checkpoint(workdir: pathlib.Path, trainer, iteration: int,
                    config: MetaTrainConfig) -> None:
  """Weights, outer-optimizer state and iteration as one atomic checkpoint directory."""
  trainer.write_to_model()
  checkpoint_lib.save(workdir / "checkpoint", trainer.model,
                      state={"iteration": iteration, "config": dataclasses.asdict(config)},
                      optimizer_arrays=trainer.get_state())
  save_weights(trainer.model, workdir / "model.weights.h5")
  save_step_sizes(trainer, workdir / STEP_SIZES_FILE)


STEP_SIZES_FILE = "step_sizes.json"


def save_step_sizes(trainer, path: pathlib.Path) -> None:
  """The learned step sizes beside the weights (nothing when they are not learned)."""
  matrix = trainer.step_sizes()
  if matrix is not None:
    from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
    path.parent.mkdir(parents=True, exist_ok=True)
    step_sizes_lib.save(path, trainer.model, matrix)


# Fields that change the result: a run resumes only with the values it started with (the
# others -- iterations, workdir, data_root, backend, jit_compile, logging, checkpoint and
# validation settings -- may differ).
RESULT_FIELDS = ("model", "weights", "model_kwargs", "scale", "channels", "data", "patch",
                 "batch", "patches_per_task", "inner_steps", "alpha", "beta", "degradation",
                 "mixture_weights", "sigma_min", "sigma_max", "order", "loss", "pixel_range",
                 "seed", "precision", "query_weights", "learn_step_sizes",
                 "step_size_learning_rate", "max_step_size", "initial_step_sizes", "anchor_data",
                 "anchor_weight", "anchor_degradation", "quantize_lr")
# The work directory's outputs besides checkpoint/ (the weights first).
OUTPUTS = ("model.weights.h5", "metrics.jsonl", STEP_SIZES_FILE, "validated", "tensorboard")


def set_initial_step_sizes(trainer, config: MetaTrainConfig) -> None:
  """Starts ``trainer``'s learned step sizes at ``config.initial_step_sizes`` (a step-size file
  of this network with one row per inner step and positive entries; ValueError naming the
  file otherwise).  They are stored as log-scales of the base ``alpha``, so the file's
  values are reproduced exactly up to float32 rounding."""
  from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
  path = config.initial_step_sizes
  matrix = step_sizes_lib.load(path, trainer.model)
  if isinstance(matrix, step_sizes_lib.KernelSigmaBands):
    raise ValueError(f"step-size file {str(path)!r} has bands by kernel width; a run starts "
                     "from one matrix (a file without kernel_sigma_bands)")
  matrix = matrix.astype(np.float64)
  if matrix.shape[0] != config.inner_steps:
    raise ValueError(f"step-size file {str(path)!r} has {matrix.shape[0]} steps, but the run "
                     f"takes {config.inner_steps} inner steps")
  alphas = np.asarray(maml.step_sizes(config.alpha, config.inner_steps), np.float64)
  if np.any(matrix <= 0) or np.any(alphas <= 0):
    raise ValueError(f"step-size file {str(path)!r}: learned step sizes start from positive "
                     f"values and a positive --alpha (got alpha {config.alpha!r})")
  state = trainer.get_state()
  state["log_scales"] = np.asarray(maml.project_log_scales(
      alphas, np.log(matrix / alphas[:, None]).astype(np.float32), config.max_step_size))
  trainer.set_state(state)


def restore_checkpoint(workdir: pathlib.Path, trainer, config: MetaTrainConfig) -> int:
  """Loads the checkpoint into ``trainer`` if there is one; returns its iteration (or 0).

  Raises:
    checkpoint.CheckpointError: a configuration that differs in a :data:`RESULT_FIELDS`
      field (all named), or a corrupt checkpoint file (named).
  """
  directory = checkpoint_lib.latest(workdir / "checkpoint")
  if directory is None:
    return 0
  state = checkpoint_lib.read_state(directory)
  defaults = {field.name: field.default for field in dataclasses.fields(MetaTrainConfig)
              if field.default is not dataclasses.MISSING}
  checkpoint_lib.check_same_run(state["config"], dataclasses.asdict(config), RESULT_FIELDS,
                                workdir, defaults)
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  keras_h5.load(trainer.model, directory / "model.weights.h5", "checkpoint weights")
  import keras  # pylint: disable=g-import-not-at-top
  trainer.set_theta([keras.ops.convert_to_numpy(v.value)
                     for v in trainer.model.trainable_variables])
  optimizer = directory / "optimizer.npz"
  try:
    trainer.set_state(checkpoint_lib.load_arrays(optimizer))
  except (KeyError, ValueError, TypeError) as e:
    raise checkpoint_lib.CheckpointError(
        f"checkpoint file {str(optimizer)!r} does not fit this run's optimizer "
        f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None
  return state["iteration"]


def _summary_writer(workdir: pathlib.Path, backend: str):
  """A TensorBoard writer when TensorFlow is importable (the JAX machines may lack it)."""
  if backend == "jax":
    return None  # Keep TensorFlow (and its GPU memory grab) out of JAX runs.
  import importlib.util  # pylint: disable=g-import-not-at-top
  if importlib.util.find_spec("tensorboard") is None:
    return None  # tf.summary.scalar needs the tensorboard package; metrics.jsonl has all.
  try:
    import tensorflow  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return None
  return _LazySummaryWriter(workdir / "tensorboard")


class _LazySummaryWriter:
  """``tf.summary`` file writer created at its first use: a run that fails before writing
  any summary leaves no event file (and so no non-empty work directory) behind."""

  def __init__(self, path: pathlib.Path):
    self._path, self._writer = path, None

  def as_default(self, step: int):
    if self._writer is None:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      self._writer = tf.summary.create_file_writer(str(self._path))
    return self._writer.as_default(step=step)

  def flush(self) -> None:
    if self._writer is not None:
      self._writer.flush()


def _write_summaries(writer, iteration: int, values: dict) -> None:
  if writer is None:
    return
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  with writer.as_default(step=iteration):
    for name, value in values.items():
      tf.summary.scalar(name, value)
  writer.flush()


def _append_jsonl(path: pathlib.Path, event: dict) -> None:
  with open(path, "a", encoding="utf-8") as f:
    f.write(json.dumps(event) + "\n")


def _format_seconds(seconds: float) -> str:
  seconds = int(round(seconds))
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
      f"{seconds // 60}m{seconds % 60:02d}s"


# ----------------------------------------------------------------------------- run


class DivergedError(ValueError):
  """The meta loss became non-finite (too large a step size); nothing was saved after it."""


def run(config: MetaTrainConfig, log: Callable[[str], None] = print, strategy=None) -> dict:
  """Meta-trains (or resumes) according to ``config``.

  The work directory is opened with ``checkpoint.workdir_session`` (one run at a time,
  leftovers of a killed run cleaned, weights without a readable state refused unless
  ``overwrite``, no empty directory left by a failed start).

  Returns:
    ``{"iteration": last iteration, "validation": last validation (or None),
    "seconds_per_iteration": mean over this call's iterations (or None)}``.
  """
  config.validate()
  import keras  # pylint: disable=g-import-not-at-top
  if keras.backend.backend() != config.backend:
    raise ValueError(f"backend {config.backend!r} requested but Keras runs on "
                     f"{keras.backend.backend()!r}; set KERAS_BACKEND={config.backend} "
                     "before keras is imported")
  if config.parallel_tasks:
    from mlsr_tf.meta import cpu_threads  # pylint: disable=g-import-not-at-top
    log("task-parallel threads: " + ", ".join(
        f"{k} {v}" for k, v in cpu_threads.use_task_parallel_threads().items()))
  with checkpoint_lib.workdir_session(config.workdir, "checkpoint", overwrite=config.overwrite,
                                      outputs=OUTPUTS, subdirectories=("validated",)):
    return _run(config, log, strategy)


def _run(config: MetaTrainConfig, log: Callable[[str], None], strategy) -> dict:
  """The body of :func:`run`, in an open work directory."""
  workdir = pathlib.Path(config.workdir)
  model = build_model(config)
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  channels = adaptation.model_channels(model)
  if config.channels is None:
    config = dataclasses.replace(config, channels=channels)
  trainer = make_trainer(model, config, strategy)
  if config.initial_step_sizes:
    set_initial_step_sizes(trainer, config)
  start = restore_checkpoint(workdir, trainer, config)
  if start:
    log(f"resuming from iteration {start} in {workdir}")
  if start >= config.iterations:
    log(f"nothing to do: iteration {start} >= --iterations {config.iterations}")
    return {"iteration": start, "validation": None, "seconds_per_iteration": None}
  sampler = make_task_sampler(config, channels)
  anchor_sampler = make_anchor_sampler(config, channels)
  # No validation for runs shorter than one period (smoke tests stay fast).
  validate_now = bool(config.validate_every) and config.iterations >= config.validate_every
  validation = validation_set(config, channels) if validate_now else {}
  writer = _summary_writer(workdir, config.backend)
  if writer is None:
    log("TensorBoard summaries off (needs tensorflow + tensorboard); see metrics.jsonl")
  metrics_path = workdir / "metrics.jsonl"
  last_validation = None

  def run_validation(iteration):
    nonlocal last_validation
    trainer.write_to_model()
    began = time.time()
    last_validation = validate(model, validation, config, trainer.step_sizes())
    for set_name, scores in last_validation.items():
      log(f"validation {iteration}: {set_name} bicubic {scores['bicubic']:.3f} dB, "
          f"base {scores['base']:.3f} dB, adapted ({config.validation_steps} steps) "
          f"{scores['adapted']:.3f} dB [{time.time() - began:.1f} s]")
      _write_summaries(writer, iteration, {f"validation/{set_name}/{k}": v
                                           for k, v in scores.items()})
    _append_jsonl(metrics_path, {"iteration": iteration, "validation": last_validation})
    if config.keep_validated_weights:
      save_weights(model, workdir / "validated" / f"iteration_{iteration:06d}.weights.h5")
      save_step_sizes(trainer, workdir / "validated" / f"iteration_{iteration:06d}.step_sizes.json")

  if validation and start == 0:
    run_validation(0)
  began = time.time()
  window = []
  last_saved = start
  # From this run's first iteration (LossConfig.divergence_limit); the meta loss may well
  # overshoot while the outer loop learns, so only a thousandfold explosion stops the run.
  divergence_limit = None
  for iteration in range(start, config.iterations):
    step_began = time.time()
    metrics = trainer.step(sample_batch(sampler, anchor_sampler, iteration, config))
    done = iteration + 1
    meta_loss = float(metrics["meta_loss"])
    if divergence_limit is None:
      divergence_limit = config.objective().total_weight(config.inner_steps) * maml.LossConfig(
          config.loss, config.pixel_range).divergence_limit(
              float(metrics["support_loss_before"]), headroom=1e3)
    if not meta_loss <= divergence_limit:  # Non-finite, or exploded.
      # Saving now would overwrite the last good weights with NaNs.
      raise DivergedError(
          f"meta-training diverged at iteration {done}: meta loss {meta_loss:.4g} (limit "
          f"{divergence_limit:g}); the weights of iteration {last_saved} are kept in "
          f"{workdir}; lower --alpha (inner step) or --beta")
    window.append(time.time() - step_began)
    if done % config.log_every == 0 or done == config.iterations:
      per_iteration = float(np.mean(window[-config.log_every:]))
      eta = per_iteration * (config.iterations - done)
      learned = trainer.step_sizes()
      if learned is not None:
        metrics = dict(metrics, step_size_mean=float(learned.mean()),
                       step_size_min=float(learned.min()), step_size_max=float(learned.max()))
      log(f"iteration {done}/{config.iterations}: meta loss {metrics['meta_loss']:.6g}, "
          f"support loss {metrics['support_loss_before']:.6g} -> "
          f"{metrics['support_loss_after']:.6g}, "
          + (f"anchor loss {metrics['anchor_loss']:.6g}, " if "anchor_loss" in metrics else "")
          + f"{per_iteration:.2f} s/it, "
          f"ETA {_format_seconds(eta)}"
          + ("" if learned is None else
             f", step sizes {learned.min():.3g}..{learned.max():.3g} "
             f"(mean {learned.mean():.3g})"))
      _write_summaries(writer, done, {f"train/{k}": v for k, v in metrics.items()})
      _append_jsonl(metrics_path, dict(metrics, iteration=done, seconds=per_iteration))
    if done % config.checkpoint_every == 0 or done == config.iterations:
      save_checkpoint(workdir, trainer, done, config)
      last_saved = done
    if validation and done % config.validate_every == 0:
      run_validation(done)
  elapsed = time.time() - began
  return {"iteration": config.iterations, "validation": last_validation,
          "seconds_per_iteration": elapsed / (config.iterations - start)}
