"""Reproduction of the MLSR paper's Tables 3, 4 and 5 and its adaptation curves.

``run_table(table_config(3 | 4 | 5, "cpu" | "paper"), workdir, out_dir)`` runs a
table end to end and writes ``table.md``, ``table.csv``, ``per_image.csv``,
``curves.csv``, ``curves.png`` (where the table has adaptation curves) and the
exact ``config.json`` into ``out_dir``.  ``tools/reproduce.py`` is its command line.

Pipeline (data flows one way): HR benchmark images (optionally a subset and a
centre crop) -> degradation (bicubic, or one unseen 5x5 test kernel per image from
``kernel_split('test')``; the ``cpu-val`` screen draws from ``kernel_split('validation')``)
-> meta-training with :func:`mlsr_tf.training.meta_train.run` (resumable; skipped when
the run is complete or when weights are given) -> adaptation with
:func:`mlsr_tf.meta.adaptation.adapt_at_steps` (one run per image, read out at every step
count of the table and of the curve) -> PSNR/SSIM on Y
(BT.601, ``scale`` border pixels shaved) -> writers.

Methods (rows of a table) are :class:`Method` entries: ``base`` (the imported
network, no adaptation), ``finetune`` (the imported network adapted with the same
SGD loop: the paper's naive "Finetune" baseline), ``meta`` (a meta-trained network,
MLSR), ``bicubic`` and ``zssr`` (:mod:`mlsr_tf.evaluation.zssr`).  Pixel values are [0, 1];
step sizes are for that range (``paper.alpha_for_pixel_range`` converts the
paper's 0..255 values).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import pathlib
import platform
import time
from typing import Any, Callable, Sequence

import numpy as np

from mlsr_tf import metrics
from mlsr_tf import paths
from mlsr_tf.data import datasets as datasets_lib
from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.data import image_io
from mlsr_tf.data import imresize as imresize_lib
from mlsr_tf.evaluation import compare
from mlsr_tf.meta import paper

TABLES = (3, 4, 5)
PRESETS = ("cpu", "cpu-full", "cpu-val", "paper")
METHOD_KINDS = ("bicubic", "base", "finetune", "meta", "idn_protocol", "zssr")
# Kinds read out after several adaptation step counts (the others have one column, 0).
ADAPTING_KINDS = ("finetune", "meta", "idn_protocol")
EVAL_DEGRADATIONS = ("bicubic", "random5x5_test", "random5x5_validation")
DEFAULT_WEIGHTS = "{data_root}/weights/idn_caffe/IDN_x2.caffemodel"
STAGE1_WEIGHTS = "{repo}/pretrained/idn_x2.weights.h5"  # The shipped default (stage-1 IDN).


# ----------------------------------------------------------------------------- configs


def _is_count(value, least: int = 0) -> bool:
  """An int (not a bool) of at least ``least``: step counts, sizes, iterations."""
  return isinstance(value, int) and not isinstance(value, bool) and value >= least


@dataclasses.dataclass
class ImageSet:
  """Images of a benchmark: ``first..last`` (1-based, inclusive, file order; 0 = end)."""
  name: str
  first: int = 1
  last: int = 0

  @property
  def label(self) -> str:
    if self.first == 1 and self.last == 0:
      return self.name
    return f"{self.name}[{self.first:03d}-{self.last:03d}]" if self.last else \
        f"{self.name}[{self.first:03d}-]"


@dataclasses.dataclass
class MetaRun:
  """One meta-training run (fields of ``MetaTrainConfig``; ``data`` may be an ImageSet)."""
  name: str
  data: Any = "train291"  # A training set name, a folder, or an ImageSet (linked folder).
  validation: Any = ""  # Same forms; "" = none.
  degradation: str = "bicubic"
  patch: int = 64
  batch: int = 4
  inner_steps: int = 5
  beta: float = 1e-5
  iterations: int = 100
  validate_every: int = 0
  validation_images: int = 0
  validation_size: int = 128
  seed: int = 0
  # The recipe options of tools/meta_train.py (WORKSPACE.md section 10); defaults are the
  # paper's plain Algorithm 1.
  alpha: float | None = None  # Inner step size (None: the table's alpha).
  weights: str = ""  # Start weights ("": the table's network weights).
  validation_degradations: tuple = ()
  anchor_data: str | None = None
  anchor_weight: float = 0.0
  anchor_degradation: str = "bicubic"
  mixture_weights: str | None = None  # For degradation "mixed" (bicubic,random5x5,gaussian).
  sigma_max: float = 3.0  # Largest Gaussian sigma of "gaussian" / "mixed" tasks.
  learn_step_sizes: bool = False
  step_size_learning_rate: float = 1e-2
  checkpoint_every: int = 20
  parallel_tasks: bool = False  # Speed only (mlsr_tf.meta.cpu_threads).


@dataclasses.dataclass
class Method:
  """A row group of a table.

  ``kind``: one of METHOD_KINDS; ``steps``: adaptation step counts reported (rows);
  ``meta_run``: name of the MetaRun whose weights a ``meta`` method uses (with its learned
  step sizes, when the run learned them); a ``meta`` method without one names a finished
  meta-trained checkpoint in ``weights`` instead (e.g. a shipped model, with the learned
  step sizes saved beside it); ``alpha``: this method's test-time step size
  (None: the table's); ``model``/``weights``: another network than the table's (e.g. the
  imported IDN-Caffe for ``idn_protocol``, scored under the IDN authors' protocol,
  :mod:`mlsr_tf.evaluation.idn_protocol`); ``max_curve_step``: the table's curve is read
  out only up to this step count for this method (0: the whole curve), for rows whose
  longest read-outs would cost more than they tell.
  """
  label: str
  kind: str
  steps: tuple = (0,)
  meta_run: str = ""
  alpha: float | None = None
  model: str = ""
  weights: str = ""
  optimizer: str = "sgd"  # Test-time optimizer of adapting methods: "sgd" or "adam".
  max_curve_step: int = 0


@dataclasses.dataclass
class TableConfig:
  """Everything one table run depends on (written out as ``config.json``)."""
  table: int
  preset: str
  caption: str
  model: str = "idn_caffe"
  weights: str = DEFAULT_WEIGHTS
  scale: int = 2
  image_sets: tuple = ()
  crop: int = 0  # Centre-crop HR to at most crop x crop (0: whole images).
  degradation: str = "bicubic"  # One of EVAL_DEGRADATIONS.
  alpha: float = 0.1
  methods: tuple = ()
  meta_runs: tuple = ()
  curve_steps: tuple = ()  # Extra read-outs for curves (mean PSNR per step count).
  zssr: dict = dataclasses.field(default_factory=dict)  # ZSSRConfig fields.
  zssr_images: int = 0  # ZSSR on the first N images of each set (0: all).
  data_root: str | None = None
  seed: int = 0

  def validate(self) -> None:
    """Raises ValueError (repeating the value) for inconsistent settings."""
    if self.table not in TABLES:
      raise ValueError(f"unknown table {self.table!r}; expected one of {TABLES}")
    if self.preset not in PRESETS:
      raise ValueError(f"unknown config {self.preset!r}; expected one of {PRESETS}")
    if self.degradation not in EVAL_DEGRADATIONS:
      raise ValueError(f"unknown degradation {self.degradation!r}; expected one of "
                       f"{EVAL_DEGRADATIONS}")
    if not _is_count(self.crop):
      raise ValueError(f"crop must be a non-negative integer, got {self.crop!r}")
    if self.crop and self.crop % self.scale:
      raise ValueError(f"crop {self.crop} must be a multiple of the scale {self.scale}")
    if not np.isfinite(self.alpha) or self.alpha < 0:
      raise ValueError(f"alpha must be finite and >= 0, got {self.alpha!r}")
    if not self.image_sets:
      raise ValueError(f"no image sets in table {self.table} config")
    for image_set in self.image_sets:
      if image_set.name not in datasets_lib.BENCHMARKS:
        raise ValueError(f"unknown dataset {image_set.name!r}; expected one of "
                         f"{datasets_lib.BENCHMARKS}")
      if image_set.first < 1 or image_set.last < 0 or \
          (image_set.last and image_set.last < image_set.first):
        raise ValueError(f"bad image range {image_set.first}..{image_set.last} for "
                         f"{image_set.name!r}")
    if not self.methods:
      raise ValueError(f"no methods in table {self.table} config")
    run_names = [r.name for r in self.meta_runs]
    if len(set(run_names)) != len(run_names):
      raise ValueError(f"duplicate meta-run names {run_names!r}")
    labels = [m.label for m in self.methods]
    if len(set(labels)) != len(labels):
      raise ValueError(f"duplicate method labels {labels!r}")
    for method in self.methods:
      if method.kind not in METHOD_KINDS:
        raise ValueError(f"unknown method kind {method.kind!r}; expected one of "
                         f"{METHOD_KINDS}")
      if not method.steps or not all(_is_count(s) for s in method.steps):
        raise ValueError(f"method {method.label!r}: steps must be non-negative integers, "
                         f"got {method.steps!r}")
      if method.optimizer not in ("sgd", "adam"):
        raise ValueError(f"method {method.label!r}: unknown optimizer {method.optimizer!r}; "
                         f"expected 'sgd' or 'adam'")
      if method.alpha is not None and not (np.isfinite(method.alpha) and method.alpha >= 0):
        raise ValueError(f"method {method.label!r}: alpha must be finite and >= 0, got "
                         f"{method.alpha!r}")
      if method.optimizer == "adam" and method.alpha is None:
        raise ValueError(f"method {method.label!r}: Adam needs its own learning rate "
                         f"(alpha), got alpha={method.alpha!r}")
      # A meta row scores a run of this table, or (no run) a finished checkpoint.
      if method.kind == "meta" and not (method.meta_run in run_names or
                                        (not method.meta_run and method.weights)):
        raise ValueError(f"method {method.label!r} uses meta run {method.meta_run!r}, "
                         f"not one of {run_names!r} (or no run and its own weights)")
      if not _is_count(method.max_curve_step):
        raise ValueError(f"method {method.label!r}: max_curve_step must be a non-negative "
                         f"integer, got {method.max_curve_step!r}")
    for run in self.meta_runs:
      from mlsr_tf.data import tasks  # pylint: disable=g-import-not-at-top
      if run.degradation not in tasks.DEGRADATION_KINDS:
        raise ValueError(f"meta run {run.name!r}: unknown degradation {run.degradation!r}")
      for name in ("patch", "batch", "inner_steps", "iterations"):
        value = getattr(run, name)
        if not _is_count(value, 1):
          raise ValueError(f"meta run {run.name!r}: {name} must be a positive integer, "
                           f"got {value!r}")
    if not all(_is_count(s) for s in self.curve_steps):
      raise ValueError(f"curve_steps must be non-negative integers, got {self.curve_steps!r}")
    from mlsr_tf.evaluation import zssr as zssr_lib  # pylint: disable=g-import-not-at-top
    try:
      zssr_lib.ZSSRConfig(**self.zssr).validate()
    except TypeError as e:
      raise ValueError(f"bad zssr settings {self.zssr!r}: {e}") from e

  def to_json(self) -> dict:
    return dataclasses.asdict(self)


def _all_sets(count: int = 0) -> tuple:
  return tuple(ImageSet(name, 1, count if count and name != "Set5" else 0)
               for name in datasets_lib.BENCHMARKS)


def table_config(table: int, preset: str) -> TableConfig:
  """The predefined configuration of ``table`` (3, 4, 5) for ``preset`` (cpu, paper).

  ``cpu`` configs end in about an hour on 2 CPU cores (all three tables): few images,
  centre crops, 100 meta-iterations on 64-pixel patches.  ``paper`` configs follow the
  paper's settings (whole images, all test images, alpha/beta of the paper) for a GPU.
  """
  if table not in TABLES:
    raise ValueError(f"unknown table {table!r}; expected one of {TABLES}")
  if preset not in PRESETS:
    raise ValueError(f"unknown config {preset!r}; expected one of {PRESETS}")
  if preset == "cpu-full":
    return _cpu_full_config(table)
  if preset == "cpu-val":
    if table != 5:
      raise ValueError(f"config 'cpu-val' (held-out kernels and images for choosing a kernel "
                       f"meta-training run) exists for table 5 only, got table {table!r}")
    return _cpu_val_blur_config()
  cpu = preset == "cpu"
  # cpu: alpha 0.1 (naive SGD fine-tuning of IDN-Caffe diverges at 0.3 on [0, 1] pixels,
  # WORKSPACE.md section 6); paper: 1e-5 at 0..255 = 0.65025 for [0, 1] pixels, beta 1e-6.
  alpha = 0.1 if cpu else paper.PAPER_ALPHA
  meta_common = (dict(patch=64, batch=4, inner_steps=5, beta=1e-5, iterations=100) if cpu
                 else dict(patch=128, batch=16, inner_steps=5, beta=paper.PAPER_BETA,
                           iterations=100_000, validate_every=1000, validation_images=0,
                           validation_size=0))
  crop = 128 if cpu else 0
  steps = (0, 5, 20, 100)
  curve = (0, 1, 2, 3, 5, 10, 20, 30, 50, 75, 100)
  scale_note = ("NOT paper scale: " if cpu else "")
  if table == 3:
    sets = _all_sets(5) if cpu else _all_sets()
    return TableConfig(
        table=3, preset=preset, alpha=alpha, crop=crop, image_sets=sets,
        degradation="bicubic", curve_steps=curve,
        caption=(f"Table 3 (bicubic x2): IDN (imported IDN-Caffe, Y only) without "
                 f"adaptation, and IDN-ML (meta-trained on train291, bicubic tasks) after "
                 f"0/5/20/100 SGD steps (alpha {alpha:g}). " + scale_note +
                 ("Set5 all 5 images, Set14/B100/Urban100 the first 5 images each, HR "
                  "centre-cropped to 128x128; meta-training 100 iterations, patch 64, "
                  "batch 4, k 5, beta 1e-5." if cpu else "whole images, all test images.")),
        meta_runs=(MetaRun("bicubic_train291", "train291", degradation="bicubic",
                           **meta_common),),
        methods=(Method("Bicubic", "bicubic"),
                 Method("IDN", "base"),
                 Method("IDN-ML", "meta", steps, "bicubic_train291")))
  if table == 4:
    train, validation = ImageSet("Urban100", 51, 100), ImageSet("Urban100", 41, 50)
    urban_meta = dict(meta_common)
    if cpu:
      urban_meta.update(validate_every=100, validation_images=10, validation_size=128)
    return TableConfig(
        table=4, preset=preset, alpha=alpha, crop=crop,
        image_sets=(ImageSet("Urban100", 1, 40),), degradation="bicubic",
        caption=(f"Table 4 (bicubic x2, Urban100 img001-040): IDN-ML meta-trained on "
                 f"train291 vs on Urban100 img051-100 (img041-050 validation), before and "
                 f"after 5 SGD steps (alpha {alpha:g}). " + scale_note +
                 ("HR centre-cropped to 128x128; each meta-training 100 iterations, patch "
                  "64, batch 4, k 5, beta 1e-5." if cpu else "whole images.")),
        meta_runs=(MetaRun("bicubic_train291", "train291", degradation="bicubic",
                           **meta_common),
                   MetaRun("bicubic_urban100", train, validation=validation,
                           degradation="bicubic", **urban_meta)),
        methods=(Method("IDN", "base"),
                 Method("IDN-ML (train291)", "meta", (0, 5), "bicubic_train291"),
                 Method("IDN-ML (Urban100 051-100)", "meta", (0, 5), "bicubic_urban100")))
  # Table 5: unseen random 5x5 kernels.
  sets = (ImageSet("Set5"), ImageSet("Urban100", 1, 3)) if cpu else _all_sets()
  zssr = (dict(max_iters=300, min_iters=100, crop_size=64, run_test_every=20,
               slope_range=100, policy_check_every=20) if cpu else {})
  finetune_steps = steps if cpu else steps + (1000,)
  return TableConfig(
      table=5, preset=preset, alpha=alpha, crop=crop, image_sets=sets,
      degradation="random5x5_test", curve_steps=curve, zssr=zssr,
      zssr_images=0,
      caption=(f"Table 5 (x2, unseen 5x5 test kernels, one per image, kernel known): "
               f"IDN (imported IDN-Caffe), naive fine-tuning of it (IDN-Finetune, SGD, "
               f"alpha {alpha:g}) and IDN-ML (meta-trained on train291 with the 38k training "
               f"kernels) after 0/5/20/100 steps, and ZSSR. " + scale_note +
               ("Set5 (5 images) and Urban100 img001-003, HR centre-cropped to 128x128; "
                "meta-training 100 iterations, patch 64, batch 4, k 5, beta 1e-5; ZSSR at "
                "most 300 iterations on 64-pixel crops (paper: up to 3,000)."
                if cpu else "whole images; IDN-Finetune also at 1,000 steps (Table 2).")),
      meta_runs=(MetaRun("random5x5_train291", "train291", degradation="random5x5",
                         **meta_common),),
      methods=(Method("Bicubic", "bicubic"),
               Method("IDN", "base"),
               Method("IDN-Finetune", "finetune", finetune_steps),
               Method("IDN-ML", "meta", steps, "random5x5_train291"),
               Method("ZSSR", "zssr")))


def _select(config: TableConfig, sets: Sequence[str] | None,
            methods: Sequence[str] | None) -> TableConfig:
  """``config`` restricted to the named image sets and method labels (None: all)."""
  if sets is not None:
    known = [s.label for s in config.image_sets]
    unknown = [n for n in sets if not any(n in (s.name, s.label) for s in config.image_sets)]
    if not sets or unknown:
      raise ValueError(f"unknown image sets {list(unknown or sets)!r} for table "
                       f"{config.table}; it has {known!r}")
    config = dataclasses.replace(config, image_sets=tuple(
        s for s in config.image_sets if s.name in sets or s.label in sets))
    config.caption += f" Image sets: {', '.join(s.label for s in config.image_sets)} only."
  if methods is not None:
    known = [m.label for m in config.methods]
    unknown = [n for n in methods if n not in known]
    if not methods or unknown:
      raise ValueError(f"unknown methods {list(unknown or methods)!r} for table "
                       f"{config.table}; it has {known!r}")
    config = dataclasses.replace(config, methods=tuple(
        m for m in config.methods if m.label in methods))
    config.caption += f" Methods: {', '.join(m.label for m in config.methods)} only."
  return config


CPU_FULL_STEPS = (0, 5, 20, 100)
CPU_FULL_CURVE = (0, 1, 2, 3, 5, 10, 20, 30, 50, 75, 100)


def _recipe_run(name: str, data) -> MetaRun:
  """The best CPU meta-training recipe (WORKSPACE.md section 10, run r5) on ``data`` tasks.

  From the stage-1 IDN: bicubic tasks of one 128-pixel HR patch, 4 per meta-batch, k = 5,
  learned per-step, per-tensor inner step sizes starting at alpha 0.3, a train291
  supervised anchor of weight 4, Adam beta 5e-6, 450 iterations (r5's best validated
  snapshot), validated every 150 on Set5 and Urban100 img041-050 (whole images).
  """
  return MetaRun(name, data, validation=(ImageSet("Set5"), ImageSet("Urban100", 41, 50)),
                 degradation="bicubic", patch=128, batch=4, inner_steps=5, beta=5e-6,
                 iterations=450, validate_every=150, validation_images=0, validation_size=0,
                 alpha=0.3, validation_degradations=("bicubic",), anchor_data="train291",
                 anchor_weight=4.0, learn_step_sizes=True, step_size_learning_rate=1e-2,
                 checkpoint_every=50, parallel_tasks=True)


# The kernel-aware IDN (the stage-1 IDN fine-tuned on Gaussian-blurred LR; shipped as
# idn_x2_blur until session 7, when its kernel meta-trained successor replaced it): Table 5's
# conventionally trained network and the kernel recipe's starting point.
BLUR_WEIGHTS = "{repo}/results/meta_runs/kernel_aware_base/model.weights.h5"
# The blur model shipped now (its learned step sizes beside it); the sha256 of both keys the
# cached scores, so shipping another model recomputes its row.
SHIPPED_BLUR_WEIGHTS = "{repo}/pretrained/idn_x2_blur.weights.h5"
# The idn_x2_blur networks shipped before (the same files as then, kept with their step sizes),
# by the session that shipped them: each keeps its Table 5 row, "IDN-ML (idn_x2_blur, session
# N)", for comparison with its successors.  Replacing idn_x2_blur adds one line here.
EARLIER_BLUR_WEIGHTS = (
    ("26", "{repo}/results/meta_runs/fixed_alpha_s26/model.weights.h5"),  # sessions 26-30
    ("31", "{repo}/results/meta_runs/anchor_s31/model.weights.h5"),
    ("32", "{repo}/results/meta_runs/anchor010_s32/model.weights.h5"),
)
CPU_FULL_BLUR_STEPS = (0, 5, 20, 100)
CPU_FULL_FINETUNE_STEPS = (0, 5, 20, 100, 350)  # 350: Figure 6's "5 ML steps ~ 350 naive".


def _kernel_recipe_run() -> MetaRun:
  """Issue 13's kernel meta-training, from the kernel-aware ``idn_x2_blur``: the r5 recipe
  on unseen-kernel tasks (random 5x5 kernels and anisotropic Gaussians, sigma 0.2-4, blur
  then direct subsampling, half each), its inner steps starting at alpha 0.3 (on 128-pixel
  tasks idn_x2_blur's whole-image alpha 1.0 raises the support loss; 0.3 lowers it most,
  WORKSPACE.md section 11), anchored on train291 patches blurred the same way, validated
  on Set5 at g^d_2.0.
  """
  return dataclasses.replace(
      _recipe_run("recipe_kernels", "train291"), validation=(ImageSet("Set5"),),
      degradation="mixed", mixture_weights="0,1,1", sigma_max=4.0, iterations=900, alpha=0.3,
      validation_degradations=("gaussian:2.0,2.0,0",), anchor_degradation="mixed")


def _cpu_full_blur_config() -> TableConfig:
  """Table 5 (and Table 2's naive fine-tuning) on whole images with the kernel-aware IDN."""
  run = _kernel_recipe_run()
  return TableConfig(
      table=5, preset="cpu-full", model="idn", weights=BLUR_WEIGHTS, crop=0, alpha=1.0,
      degradation="random5x5_test", curve_steps=CPU_FULL_CURVE + (200, 350),
      image_sets=(ImageSet("Set5"), ImageSet("Set14"), ImageSet("B100", 1, 20),
                  ImageSet("Urban100", 1, 20)),
      caption=("Table 5 (x2, one unseen 5x5 test kernel per image, kernel known), whole "
               "images: the kernel-aware IDN (session 2's idn_x2_blur, labelled so; "
               "results/meta_runs/kernel_aware_base) adapted naively (SGD alpha 1.0 and Adam "
               "1e-4, up to 350 steps: Table 2 and Figure 6), IDN-ML meta-trained from it on "
               "unseen-kernel tasks (recipe_kernels, 900 iterations; shipped as idn_x2_blur "
               "in sessions 7-23) with its learned step sizes, the shipped idn_x2_blur "
               "(meta-trained longer, pretrained/MODEL_CARD.md; since session 33) and the ones "
               "shipped in sessions 26-30, 31 and 32 (results/meta_runs/fixed_alpha_s26, "
               "anchor_s31 and anchor010_s32), each with its learned step sizes (curves to 100 "
               "steps), the bicubic stage-1 default adapted naively, and ZSSR at its full "
               "budget (up to 3,000 iterations). Set5 "
               "and Set14 whole, B100 and Urban100 their first 20 images."),
      meta_runs=(run,),
      methods=(Method("Bicubic", "bicubic"),
               # Issue 13's naive baseline "from the stage-1 default" (bicubic-trained).
               Method("IDN (stage-1 default) + SGD", "finetune", CPU_FULL_FINETUNE_STEPS,
                      weights=STAGE1_WEIGHTS),
               Method("IDN (stage-1 default) + Adam", "finetune", CPU_FULL_FINETUNE_STEPS,
                      alpha=1e-4, optimizer="adam", weights=STAGE1_WEIGHTS),
               Method("IDN (idn_x2_blur) + SGD", "finetune", CPU_FULL_FINETUNE_STEPS),
               Method("IDN (idn_x2_blur) + Adam", "finetune", CPU_FULL_FINETUNE_STEPS,
                      alpha=1e-4, optimizer="adam"),
               Method("IDN-ML (kernels)", "meta", CPU_FULL_BLUR_STEPS, run.name),
               # The same network adapted with plain Adam (session 8's test-time rule for
               # g^d_2.0, lr 1e-4 as chosen there) instead of its learned SGD steps.
               Method("IDN-ML (kernels) + Adam", "meta", CPU_FULL_BLUR_STEPS, run.name,
                      alpha=1e-4, optimizer="adam"),
               Method("IDN-ML (shipped idn_x2_blur)", "meta", CPU_FULL_BLUR_STEPS,
                      weights=SHIPPED_BLUR_WEIGHTS, max_curve_step=CPU_FULL_BLUR_STEPS[-1]),
               *(Method(f"IDN-ML (idn_x2_blur, session {session})", "meta",
                        CPU_FULL_BLUR_STEPS, weights=weights,
                        max_curve_step=CPU_FULL_BLUR_STEPS[-1])
                 for session, weights in EARLIER_BLUR_WEIGHTS),
               Method("ZSSR", "zssr")))


def _cpu_val_blur_config() -> TableConfig:
  """A screen for choosing among kernel meta-training runs without touching Table 5's test data.

  The ``cpu-full`` Table 5 protocol (whole images, x2, kernel known, learned step sizes) on
  held-out data only: B100 and Urban100 images 021-030 (Table 5 tests 001-020) and one kernel
  per image from the 1k validation split (Table 5 draws from the test split).  Give the
  candidate with ``--meta_weights recipe_kernels=WEIGHTS`` (its step sizes beside it; a
  candidate without them is adapted by plain SGD at Table 5's alpha).
  """
  full = _cpu_full_blur_config()
  steps = (0, 5, 10)  # The targets are at 5 and 10 steps.
  return dataclasses.replace(
      full, preset="cpu-val", degradation="random5x5_validation", curve_steps=steps,
      image_sets=(ImageSet("B100", 21, 30), ImageSet("Urban100", 21, 30)),
      methods=(Method("IDN-ML (kernels)", "meta", steps, full.meta_runs[0].name),),
      caption=("Validation screen for kernel meta-training (not a paper table): x2, one "
               "random 5x5 kernel per image from the 1k validation split, kernel known, "
               "whole images of B100 and Urban100 img021-030 (outside Table 5's test "
               "images); the candidate given as recipe_kernels, adapted with its learned "
               f"step sizes (step_sizes.json beside its weights; plain SGD at alpha "
               f"{full.alpha} when it has none)."))


def _cpu_full_config(table: int) -> TableConfig:
  """Whole-image tables with the project's own networks (issues 12 and 13's ``cpu-full``).

  Tables 3 and 4: the network is the shipped stage-1 IDN (RGB, trained here from random
  initialisation); naive fine-tuning is its SGD adaptation at alpha 0.3 (its best alpha for
  5 whole-image steps, WORKSPACE.md section 10); IDN-ML is meta-trained from it with the r5
  recipe (:func:`_recipe_run`) and adapted with its learned step sizes.  Table 5: see
  :func:`_cpu_full_blur_config`.
  """
  if table == 5:
    return _cpu_full_blur_config()
  common = dict(preset="cpu-full", model="idn", weights=STAGE1_WEIGHTS, crop=0, alpha=0.3,
                degradation="bicubic", curve_steps=CPU_FULL_CURVE)
  train291_run = _recipe_run("recipe_train291", "train291")
  finetune = Method("IDN (stage-1) + SGD", "finetune", CPU_FULL_STEPS)
  if table == 3:
    return TableConfig(
        table=3, **common,
        image_sets=(ImageSet("Set5"), ImageSet("Set14"), ImageSet("B100", 1, 40),
                    ImageSet("Urban100", 1, 40)),
        caption=("Table 3 (bicubic x2), whole images: the stage-1 IDN adapted naively (SGD, "
                 "alpha 0.3), the imported IDN-Caffe under its authors' protocol (Y, float "
                 "LR; SGD alpha 0.1), and IDN-ML meta-trained on train291 bicubic tasks (r5 "
                 "recipe, 450 iterations) with its learned step sizes, after 0/5/20/100 "
                 "steps. Set5 and Set14 whole, B100 and Urban100 their first 40 images."),
        meta_runs=(train291_run,),
        methods=(Method("Bicubic", "bicubic"),
                 Method("IDN-Caffe (authors' protocol) + SGD", "idn_protocol",
                        CPU_FULL_STEPS, alpha=0.1, model="idn_caffe",
                        weights=DEFAULT_WEIGHTS),
                 finetune,
                 Method("IDN-ML (train291)", "meta", CPU_FULL_STEPS, train291_run.name)))
  urban_run = _recipe_run("recipe_urban100", ImageSet("Urban100", 51, 100))
  return TableConfig(
      table=4, **common, image_sets=(ImageSet("Urban100", 1, 40),),
      caption=("Table 4 (bicubic x2, Urban100 img001-040 whole): the stage-1 IDN adapted "
               "naively (SGD, alpha 0.3), and IDN-ML meta-trained (r5 recipe, 450 "
               "iterations) on train291 or on Urban100 img051-100 (img041-050 validation), "
               "with learned step sizes, after 0/5/20/100 steps."),
      meta_runs=(train291_run, urban_run),
      methods=(finetune,
               Method("IDN-ML (train291)", "meta", CPU_FULL_STEPS, train291_run.name),
               Method("IDN-ML (Urban100 051-100)", "meta", CPU_FULL_STEPS, urban_run.name)))


# ----------------------------------------------------------------------------- data


def _resolve_weights(weights: str, data_root) -> str:
  return weights.replace("{data_root}", str(paths.data_root(data_root))).replace(
      "{repo}", str(paths.REPO_ROOT))


def select_files(image_set: ImageSet, data_root=None) -> list:
  files = datasets_lib.find_dataset(image_set.name, data_root)
  last = image_set.last or len(files)
  if last > len(files):
    raise ValueError(f"{image_set.label}: the set has only {len(files)} images")
  return files[image_set.first - 1:last]


def center_crop(image: np.ndarray, size: int, multiple: int) -> np.ndarray:
  """Centre crop to at most ``size`` (0: whole), both sides multiples of ``multiple``.

  The same crop as meta-training's validation images.
  """
  from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top
  return meta_train._center_crop(image, size, multiple)  # pylint: disable=protected-access


def eval_degradation(config: TableConfig, index: int) -> degradation_lib.Degradation:
  """The degradation of image ``index`` (fixed per config: seeded by the index); a random
  kernel comes from the split the config's degradation names (test, or validation)."""
  if config.degradation == "bicubic":
    return degradation_lib.bicubic(config.scale)
  split = config.degradation.removeprefix("random5x5_")  # "test" or "validation"
  kernels = degradation_lib.kernel_split(split)
  pick = int(np.random.default_rng([config.seed, 4099, index]).integers(0, len(kernels)))
  return degradation_lib.from_kernel(kernels[pick], config.scale,
                                     name=f"random5x5_{split}_{pick}")


def load_items(config: TableConfig, image_set: ImageSet) -> list:
  """``[(name, HR uint8, LR uint8, Degradation)]`` for one image set.

  RGB images stay RGB; a gray file (Set14's ``bridge``) stays one channel, so that it is
  scored as its own Y, the convention of ``tools/evaluate.py`` and of the IDN authors'
  protocol (repeating it into RGB would score ``16 + 0.859 * gray`` instead, +1.3 dB).
  The methods feed a gray LR to RGB networks as three equal channels.
  """
  items = []
  for index, path in enumerate(select_files(image_set, config.data_root)):
    hr = image_io.read_image(path)
    if hr.dtype != np.uint8:
      raise ValueError(f"benchmark image {str(path)!r} is not 8-bit")
    hr = hr[:, :, :3]
    hr = center_crop(hr, config.crop, config.scale)
    degradation = eval_degradation(config, index)
    items.append((path.stem, hr, degradation_lib.degrade(hr, degradation), degradation))
  return items


def link_image_set(image_set: ImageSet, folder: pathlib.Path, data_root=None) -> str:
  """A folder of symbolic links to ``image_set``'s files (meta-training reads folders)."""
  folder.mkdir(parents=True, exist_ok=True)
  files = select_files(image_set, data_root)
  for existing in folder.iterdir():
    existing.unlink()
  for path in files:
    (folder / path.name).symlink_to(path.resolve())
  return str(folder)


def score(hr: np.ndarray, sr: np.ndarray, shave: int) -> tuple:
  """(PSNR, SSIM) on Y of a uint8 SR (RGB or Y-only ``HW1``) against the HR.

  A gray HR (``HW1``) is its own Y; an RGB SR of it is scored by its channel mean.
  """
  if hr.shape[2] == 1 and sr.shape[2] != 1:
    sr = sr.mean(axis=2, keepdims=True)
  y_hr = metrics.rgb_to_y(hr)
  y_sr = sr[:, :, 0].astype(np.float64) if sr.shape[2] == 1 else metrics.rgb_to_y(sr)
  return metrics.psnr_y(y_sr, y_hr, shave), metrics.ssim_y(y_sr, y_hr, shave)


# ----------------------------------------------------------------------------- runners


def meta_train_config(config: TableConfig, run: MetaRun, workdir: pathlib.Path):
  """The ``MetaTrainConfig`` of ``run`` (ImageSets become folders of links)."""
  from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top
  run_dir = workdir / run.name

  def as_data(form, folder: str) -> str:
    if isinstance(form, ImageSet):
      return link_image_set(form, run_dir / folder, config.data_root)
    return form

  validation = run.validation
  if isinstance(validation, (tuple, list)):
    validation = ",".join(as_data(v, f"data_validation_{i}") for i, v in enumerate(validation))
  else:
    validation = as_data(validation, "data_validation")
  return meta_train.MetaTrainConfig(
      workdir=str(run_dir), model=config.model,
      weights=_resolve_weights(run.weights or config.weights, config.data_root),
      scale=config.scale, data=as_data(run.data, "data_train"), data_root=config.data_root,
      patch=run.patch, batch=run.batch, inner_steps=run.inner_steps,
      alpha=config.alpha if run.alpha is None else run.alpha, beta=run.beta,
      iterations=run.iterations, degradation=run.degradation, order="first",
      validate_every=run.validate_every, validation=validation or "Set5",
      validation_images=run.validation_images, validation_size=run.validation_size,
      validation_degradations=tuple(run.validation_degradations),
      keep_validated_weights=bool(run.validate_every),
      checkpoint_every=min(run.checkpoint_every, run.iterations), log_every=10, seed=run.seed,
      learn_step_sizes=run.learn_step_sizes,
      step_size_learning_rate=run.step_size_learning_rate, anchor_data=run.anchor_data,
      anchor_weight=run.anchor_weight, anchor_degradation=run.anchor_degradation,
      mixture_weights=run.mixture_weights, sigma_max=run.sigma_max,
      parallel_tasks=run.parallel_tasks)


class ImageCache:
  """Per-image results of one (method, image set), appended as JSON lines (resumable runs).

  Every line holds an image's entry and the fingerprint of everything that determines it
  (the method, the table's network, data and protocol settings, the weights' sha256);
  only lines whose fingerprint matches are reused, so a changed setting recomputes.  A
  line cut short by an interruption is ignored.
  """

  def __init__(self, path: pathlib.Path, fingerprint: dict):
    self.path = path
    self.key = hashlib.sha256(json.dumps(_jsonable(fingerprint), sort_keys=True)
                              .encode()).hexdigest()[:16]
    self.entries = {}
    if path.is_file():
      for line in path.read_text(encoding="utf-8").splitlines():
        try:
          record = json.loads(line)
        except json.JSONDecodeError:
          continue
        if isinstance(record, dict) and record.get("key") == self.key:
          entry = record["entry"]
          for metric in ("psnr", "ssim"):
            entry[metric] = {int(k): v for k, v in entry[metric].items()}
          self.entries[entry["name"]] = entry

  def get(self, name: str):
    return self.entries.get(name)

  def put(self, entry: dict) -> None:
    self.path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(_jsonable({"key": self.key, "entry": entry})) + "\n").encode()
    with open(self.path, "a+b") as f:  # Appends always go to the end, whatever was read.
      if f.seek(0, os.SEEK_END):
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":  # An interrupted write: start a new line after it.
          line = b"\n" + line
      f.write(line)
      f.flush()
      os.fsync(f.fileno())
    self.entries[entry["name"]] = entry


def _columns(items, compute: Callable, cache: ImageCache | None, log, label):
  """Per image ``{"name", "psnr": {count: v}, "ssim": {...}, "seconds", ...}``.

  ``compute(name, hr, lr, degradation) -> (psnr by count, ssim by count, extra)``; entries
  found in ``cache`` are reused, new ones are added to it as soon as they are done.
  """
  per_image = []
  for name, hr, lr, degradation in items:
    gray = hr.shape[2] == 1
    entry = cache.get(name) if cache is not None else None
    if entry is not None and gray and not entry.get("gray"):
      entry = None  # Scored before gray images were scored as their own Y: redo.
    if entry is None:
      began = time.perf_counter()
      psnr, ssim, extra = compute(name, hr, lr, degradation)
      entry = dict({"name": name, "psnr": psnr, "ssim": ssim,
                    "seconds": time.perf_counter() - began}, **extra)
      if gray:
        entry["gray"] = True
      if cache is not None:
        cache.put(entry)
      note = f"({entry['seconds']:.1f} s)"
    else:
      note = "(cached)"
    per_image.append(entry)
    log(f"  {label} {name}: " + ", ".join(
        f"{k}: {v:.2f}" for k, v in entry["psnr"].items()) + f" dB {note}")
  return per_image


def _adaptation_compute(model, steps, alpha, seed, optimizer="sgd"):
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top

  def compute(name, hr, lr, degradation):
    upscale = adaptation.adaptive_upscale_fn(model, degradation, steps, alpha,
                                             optimizer=optimizer, seed=seed)
    scores = {int(k): score(hr, sr, degradation.scale) for k, sr in upscale(lr, name).items()}
    return ({k: v[0] for k, v in scores.items()}, {k: v[1] for k, v in scores.items()}, {})
  return compute


def _protocol_compute(model, steps, alpha, seed, scale):
  from mlsr_tf.evaluation import idn_protocol  # pylint: disable=g-import-not-at-top

  def compute(name, hr, lr, degradation):
    del name, lr, degradation  # The protocol makes its own float LR from the HR.
    scores = idn_protocol.score_image(model, hr, scale, steps,
                                      {"alpha": alpha, "optimizer": "sgd", "seed": seed})
    return ({int(k): v for k, v in scores["psnr"].items()},
            {int(k): v for k, v in scores["ssim"].items()}, {})
  return compute


def _single_compute(upscale: Callable):
  def compute(name, hr, lr, degradation):
    del name
    sr, extra = upscale(lr, degradation)
    p, s = score(hr, sr, degradation.scale)
    return {0: p}, {0: s}, extra
  return compute


def meta_step_sizes_path(weights: str) -> pathlib.Path | None:
  """The learned step sizes saved with meta-trained ``weights``, if any.

  ``WORKDIR/model.weights.h5`` has ``WORKDIR/step_sizes.json``; a validated snapshot
  ``validated/iteration_N.weights.h5`` has ``validated/iteration_N.step_sizes.json``.
  """
  weights = pathlib.Path(weights)
  from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top
  candidates = [weights.with_name(weights.name.replace(".weights.h5", ".step_sizes.json"))]
  if weights.name == "model.weights.h5":
    candidates.insert(0, weights.with_name(meta_train.STEP_SIZES_FILE))
  return next((c for c in candidates if c.is_file()), None)


def _check_meta_weights(config: TableConfig, meta_weights: dict | None) -> dict:
  meta_weights = dict(meta_weights or {})
  unknown = set(meta_weights) - {r.name for r in config.meta_runs}
  if unknown:
    raise ValueError(f"meta weights given for unknown runs {sorted(unknown)!r}; this table "
                     f"has {[r.name for r in config.meta_runs]!r}")
  for path in meta_weights.values():
    if not os.path.isfile(path):
      raise ValueError(f"no such weights file: {str(path)!r}")
  return meta_weights


def run_table(config: TableConfig, workdir, out_dir, meta_weights: dict | None = None,
              log: Callable[[str], None] = print, cached_only: bool = False) -> dict:
  """Runs one table; writes its files into ``out_dir``; returns the results.

  Args:
    config: a validated :class:`TableConfig` (see :func:`table_config`).
    workdir: meta-training runs go to ``workdir/<run name>`` (resumed if present).
    out_dir: where the table files are written (created; files replaced atomically);
      ``out_dir/partial/`` keeps every image's scores (see :class:`ImageCache`).
    meta_weights: ``{run name: weights path}`` to evaluate given checkpoints instead
      of meta-training.
    cached_only: compute nothing; write the table of the images already scored in
      ``out_dir/partial/`` (a progress report of a long run; each cell counts its images).
      Meta runs are not trained; their ``workdir`` weights are used where they exist.

  Returns:
    ``{"config", "results": {method label: {set label: {"per_image", "psnr":
    {steps: mean}, "ssim": {...}, "seconds": mean, "images"}}}, "meta": {...}}``.
  """
  config.validate()
  meta_weights = _check_meta_weights(config, meta_weights)
  workdir = pathlib.Path(workdir)
  began = time.time()
  sets = {s.label: load_items(config, s) for s in config.image_sets}
  needed_runs = {m.meta_run for m in config.methods if m.kind == "meta"}
  meta_info = {}
  for run in config.meta_runs:
    if run.name not in needed_runs:
      continue
    trained = workdir / run.name / "model.weights.h5"
    if run.name not in meta_weights and cached_only and trained.is_file():
      meta_weights[run.name] = str(trained)
    if run.name in meta_weights or cached_only:
      meta_info[run.name] = {"weights": meta_weights.get(run.name), "trained_here": False}
      continue
    from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top
    log(f"meta-training {run.name} ({run.iterations} iterations) in {workdir / run.name}")
    run_began = time.time()
    summary = meta_train.run(meta_train_config(config, run, workdir), log=log)
    meta_weights[run.name] = str(trained)
    meta_info[run.name] = {"weights": meta_weights[run.name], "trained_here": True,
                           "seconds_this_call": time.time() - run_began,
                           "seconds_per_iteration": summary["seconds_per_iteration"],
                           "final_validation": summary["validation"]}
  # Image by image, every method on it before the next image: a run stopped at any point
  # (or read with cached_only) compares all methods on the same images.
  runners = {}
  models = {}  # (model, weights, channels) -> built model, shared by methods.
  for method in config.methods:
    if method.kind == "meta" and method.meta_run and method.meta_run not in meta_weights:
      log(f"{method.label}: no weights of meta run {method.meta_run!r} yet; skipped")
      continue
    runners[method.label] = _method_runner(config, method, meta_weights, models, log,
                                           build=not cached_only)
  per_image = {(label, set_label): [] for label in runners for set_label in sets}
  for set_label, items in sets.items():
    caches = {label: ImageCache(pathlib.Path(out_dir) / "partial" /
                                f"{_slug(label)}__{_slug(set_label)}.jsonl",
                                dict(fingerprint, set=set_label))
              for label, (fingerprint, _) in runners.items()}
    log(f"{set_label}: {len(items)} images, methods {', '.join(runners)}")
    for index, item in enumerate(items):
      for method in config.methods:
        if method.label not in runners:
          continue
        if method.kind == "zssr" and config.zssr_images and index >= config.zssr_images:
          continue
        cache = caches[method.label]
        if cached_only and cache.get(item[0]) is None:
          continue
        per_image[(method.label, set_label)] += _columns(
            [item], runners[method.label][1], cache, log,
            f"[{set_label} {index + 1}/{len(items)}] {method.label}")
  results = {label: {set_label: _summarize(per_image[(label, set_label)])
                     for set_label in sets if per_image[(label, set_label)]}
             for label in runners}
  output = {"config": config.to_json(), "results": results, "meta": meta_info,
            "seconds": time.time() - began, "machine": machine_description(),
            "cached_only": cached_only}
  write_outputs(config, output, out_dir)
  return output


# Method fields added after per-image caches existed: left out of the fingerprint at their
# default, so that the caches written before them stay valid.
_LATER_METHOD_FIELDS = {"optimizer": "sgd", "max_curve_step": 0}


def _method_fields(method: Method) -> dict:
  fields = dataclasses.asdict(method)
  for name, default in _LATER_METHOD_FIELDS.items():
    if fields[name] == default:
      del fields[name]
  return fields


def _method_runner(config: TableConfig, method: Method, meta_weights: dict, models: dict,
                   log, build: bool = True):
  """``(fingerprint, compute)`` of one method (``compute`` is None unless ``build``).

  The fingerprint holds everything that determines the method's per-image scores: its
  fields, the table's data and protocol settings, the sha256 of its weights and learned
  step sizes.  ``models`` caches built networks by (name, weights, channels).
  """
  curve = [c for c in config.curve_steps
           if not method.max_curve_step or c <= method.max_curve_step]
  reads = sorted(set(method.steps) | set(curve)) if method.kind in ADAPTING_KINDS else [0]
  alpha = config.alpha if method.alpha is None else method.alpha
  fingerprint = {"method": _method_fields(method), "scale": config.scale,
                 "crop": config.crop, "degradation": config.degradation, "alpha": alpha,
                 "seed": config.seed, "reads": reads}
  if method.kind == "bicubic":
    return fingerprint, _single_compute(lambda lr, d: (imresize_lib.imresize(lr, d.scale), {}))
  if method.kind == "zssr":
    from mlsr_tf.evaluation import zssr as zssr_lib  # pylint: disable=g-import-not-at-top
    # Every resolved setting (not only the overrides): a changed default recomputes.
    fingerprint.update(zssr=dataclasses.asdict(zssr_lib.ZSSRConfig(**config.zssr)))
    return fingerprint, (_single_compute(_zssr_upscaler(config, log)) if build else None)
  from mlsr_tf import pretrained  # pylint: disable=g-import-not-at-top
  name = method.model or config.model
  if method.kind == "meta" and method.meta_run:
    weights = meta_weights[method.meta_run]
  else:
    weights = _resolve_weights(method.weights or config.weights, config.data_root)
  fingerprint.update(model=name, weights_sha256=pretrained.sha256_of(weights))
  # Learned step sizes are SGD's (Algorithm 2); an Adam row uses its own learning rate.
  step_sizes_path = (meta_step_sizes_path(weights)
                     if method.kind == "meta" and method.optimizer == "sgd" else None)
  if step_sizes_path:
    fingerprint.update(alpha=None, step_sizes_sha256=pretrained.sha256_of(step_sizes_path))
  if not build:
    return fingerprint, None
  from mlsr_tf import models_io  # pylint: disable=g-import-not-at-top
  channels = 1 if method.kind == "idn_protocol" else None  # The protocol is Y only.
  if (name, weights, channels) not in models:
    models[(name, weights, channels)] = models_io.build_and_load(name, weights, config.scale,
                                                                 channels)
  model = models[(name, weights, channels)]
  if step_sizes_path:
    from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
    alpha = step_sizes_lib.load(step_sizes_path, model)
    log(f"{method.label}: learned step sizes from {step_sizes_path}")
  if method.kind == "idn_protocol":
    return fingerprint, _protocol_compute(model, reads, alpha, config.seed, config.scale)
  return fingerprint, _adaptation_compute(model, reads, alpha, config.seed, method.optimizer)


def _slug(text: str) -> str:
  return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip("_")


def _zssr_upscaler(config: TableConfig, log):
  from mlsr_tf.evaluation import zssr as zssr_lib  # pylint: disable=g-import-not-at-top
  zssr_config = zssr_lib.ZSSRConfig(**config.zssr)

  def upscale(lr, degradation):
    sr, record = zssr_lib.train_and_upscale(lr, degradation, zssr_config)
    return image_io.to_uint(sr), {"iterations": record["iterations"],
                                  "train_seconds": record["train_seconds"]}
  del log
  return upscale


def _summarize(per_image: list) -> dict:
  counts = list(per_image[0]["psnr"])
  summary = {metric: {c: float(np.mean([e[metric][c] for e in per_image])) for c in counts}
             for metric in ("psnr", "ssim")}
  summary.update(per_image=per_image, images=len(per_image),
                 seconds=float(np.mean([e["seconds"] for e in per_image])))
  if "iterations" in per_image[0]:
    summary["iterations"] = float(np.mean([e["iterations"] for e in per_image]))
  return summary


def machine_description() -> str:
  return f"{platform.machine()} {os.cpu_count()} CPUs, {platform.system()}, Python " \
         f"{platform.python_version()}"


# ----------------------------------------------------------------------------- writers


def table_rows(config: TableConfig, results: dict) -> list:
  """Flat rows: ``{"method", "row", "steps", "set", "images", "psnr", "ssim", "seconds"}``."""
  rows = []
  for method in config.methods:
    per_set = results.get(method.label, {})  # Absent: not scored yet (cached_only).
    for steps in method.steps:
      row_label = method.label if method.kind not in ADAPTING_KINDS else \
          f"{method.label}/{steps}"
      for set_label, summary in per_set.items():
        rows.append({"method": method.label, "kind": method.kind, "row": row_label,
                     "steps": steps, "set": set_label, "images": summary["images"],
                     "psnr": summary["psnr"][steps], "ssim": summary["ssim"][steps],
                     "seconds_per_image": summary["seconds"],
                     "zssr_iterations": summary.get("iterations", "")})
  return rows


def format_markdown(config: TableConfig, results: dict) -> str:
  """The table: one row per method/steps, one column per image set, ``PSNR / SSIM``."""
  rows = table_rows(config, results)
  set_labels = [s.label for s in config.image_sets]
  ordered = list(dict.fromkeys(r["row"] for r in rows))
  cells = {(r["row"], r["set"]): r for r in rows}
  images = {}
  for r in rows:
    images[r["set"]] = max(images.get(r["set"], 0), r["images"])
  lines = [f"**{config.caption}**", "",
           "| Method | " + " | ".join(f"{s} ({images.get(s, 0)} img)" for s in set_labels)
           + " |",
           "|---|" + "---|" * len(set_labels)]
  for row in ordered:
    values = []
    for s in set_labels:
      cell = cells.get((row, s))
      if cell is None:
        values.append("—")
      else:  # A cell of fewer images than its column (a partial run) says how many.
        count = "" if cell["images"] == images[s] else f" ({cell['images']} img)"
        values.append(f"{cell['psnr']:.2f} / {cell['ssim']:.4f}{count}")
    lines.append(f"| {row} | " + " | ".join(values) + " |")
  zssr_rows = [r for r in rows if r["kind"] == "zssr"]
  if zssr_rows:
    lines += ["", "ZSSR cost: " + "; ".join(
        f"{r['set']}: {r['seconds_per_image']:.1f} s per image "
        f"({r['zssr_iterations']:.0f} iterations)" for r in zssr_rows)]
  adapted = [r for r in rows if r["kind"] in ADAPTING_KINDS and r["steps"] ==
             max(m.steps[-1] for m in config.methods if m.kind in ADAPTING_KINDS)]
  if adapted:
    lines += ["", "Adaptation cost (all read-outs of one run): " + "; ".join(
        f"{r['method']} on {r['set']}: {r['seconds_per_image']:.1f} s per image"
        for r in adapted)]
  matches = naive_steps_to_match(config, results)
  if matches:
    lines += ["", f"Naive steps that reach the meta-trained network's {MATCH_STEPS}-step mean "
              "(the paper's Figures 3 and 6; over the images both have, linear between "
              "read-outs, first crossing):"]
    for set_label, meta in dict.fromkeys((m["set"], m["meta"]) for m in matches):
      group = [m for m in matches if (m["set"], m["meta"]) == (set_label, meta)]
      lines.append(f"- {set_label}, {meta} at {MATCH_STEPS} steps: " + "; ".join(
          f"{m['naive']} "
          + (f"about {m['naive_steps']:.0f}" if m["naive_steps"] is not None
             else f"not within {m['last_read_out']}")
          + f" ({m['images']} img, {m['target']:.2f} dB)" for m in group))
  lines += ["", "PSNR (dB) / SSIM on Y (BT.601), border = scale shaved."]
  return "\n".join(lines) + "\n"


MATCH_STEPS = 5  # The paper's test-time step count: Figures 3 and 6 compare naive curves to it.


def naive_steps_to_match(config: TableConfig, results: dict, meta_steps: int = MATCH_STEPS) -> list:
  """Per set, meta method and naive method: the naive steps that reach the meta method's mean.

  Over the images both have (a partial run may have scored more of one), with
  :func:`compare.mean_curve` (every step count the images were read out at: the table's and
  the curve's) and :func:`compare.steps_to_reach` (linear between read-outs, first crossing;
  None if the last read-out falls short).
  """
  metas = [m for m in config.methods if m.kind == "meta" and meta_steps in m.steps]
  naives = [m for m in config.methods if m.kind == "finetune" and len(m.steps) > 1]
  matches = []
  for image_set in config.image_sets:
    for meta in metas:
      meta_summary = results.get(meta.label, {}).get(image_set.label)
      if meta_summary is None:
        continue
      targets = {e["name"]: e["psnr"][meta_steps] for e in meta_summary["per_image"]}
      for naive in naives:
        naive_summary = results.get(naive.label, {}).get(image_set.label)
        if naive_summary is None:
          continue
        shared = [e for e in naive_summary["per_image"] if e["name"] in targets]
        if not shared:
          continue
        target = float(np.mean([targets[e["name"]] for e in shared]))
        curve = compare.mean_curve([e["psnr"] for e in shared])
        matches.append({"set": image_set.label, "meta": meta.label, "naive": naive.label,
                        "images": len(shared), "target": target,
                        "naive_steps": compare.steps_to_reach(curve, target),
                        "last_read_out": max(curve)})
  return matches


def format_csv(rows: list) -> str:
  buffer = io.StringIO()
  if rows:
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
      writer.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()})
  return buffer.getvalue()


def per_image_rows(results: dict) -> list:
  rows = []
  for method, per_set in results.items():
    for set_label, summary in per_set.items():
      for entry in summary["per_image"]:
        for steps in entry["psnr"]:
          rows.append({"method": method, "set": set_label, "image": entry["name"],
                       "steps": steps, "psnr": entry["psnr"][steps],
                       "ssim": entry["ssim"][steps], "seconds": entry["seconds"]})
  return rows


def curve_rows(config: TableConfig, results: dict) -> list:
  """Mean PSNR per step count for each adapted method and set (the curves' data)."""
  rows = []
  for method in config.methods:
    if method.kind not in ADAPTING_KINDS:
      continue
    for set_label, summary in results.get(method.label, {}).items():
      for steps, value in sorted(summary["psnr"].items()):
        rows.append({"method": method.label, "set": set_label, "steps": steps,
                     "psnr": value})
  return rows


def _atomic_write(path: pathlib.Path, data: bytes) -> None:
  tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
  tmp.write_bytes(data)
  os.replace(tmp, path)


def plot_curves(rows: list, path, title: str = "") -> bool:
  """PSNR vs adaptation steps per method (one panel per set) as PNG; False without matplotlib."""
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  sets = list(dict.fromkeys(r["set"] for r in rows))
  if not sets:
    return False
  figure, axes = plt.subplots(1, len(sets), figsize=(4.5 * len(sets), 3.6), squeeze=False)
  for axis, set_label in zip(axes[0], sets):
    for method in dict.fromkeys(r["method"] for r in rows):
      points = [(r["steps"], r["psnr"]) for r in rows
                if r["set"] == set_label and r["method"] == method]
      if points:
        x, y = zip(*points)
        axis.plot(x, y, marker="o", markersize=3, label=method)
    axis.set_title(set_label)
    axis.set_xlabel("adaptation steps")
    axis.set_ylabel("PSNR (dB, Y)")
    axis.grid(alpha=0.3)
    axis.legend()
  if title:
    figure.suptitle(title, fontsize=9)
  figure.tight_layout()
  path = pathlib.Path(path)
  tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}.png")
  figure.savefig(tmp, dpi=100)
  plt.close(figure)
  os.replace(tmp, path)
  return True


def _jsonable(value):
  if isinstance(value, dict):
    return {str(k): _jsonable(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_jsonable(v) for v in value]
  if isinstance(value, (np.floating, np.integer)):
    return value.item()
  return value


def write_outputs(config: TableConfig, output: dict, out_dir) -> list:
  """Writes table.md, table.csv, per_image.csv, curves.csv/.png, config.json, results.json."""
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  results = output["results"]
  written = []

  def put(name, text):
    _atomic_write(out_dir / name, text.encode())
    written.append(out_dir / name)

  put("table.md", format_markdown(config, results))
  put("table.csv", format_csv(table_rows(config, results)))
  put("per_image.csv", format_csv(per_image_rows(results)))
  put("config.json", json.dumps(_jsonable(config.to_json()), indent=1) + "\n")
  summary = {k: v for k, v in output.items() if k != "results"}
  summary["results"] = {m: {s: {k: v for k, v in r.items() if k != "per_image"}
                            for s, r in per_set.items()} for m, per_set in results.items()}
  put("results.json", json.dumps(_jsonable(summary), indent=1) + "\n")
  curves = curve_rows(config, results)
  if config.curve_steps and curves:
    put("curves.csv", format_csv(curves))
    if plot_curves(curves, out_dir / "curves.png",
                   f"Table {config.table} ({config.preset}): PSNR vs adaptation steps"):
      written.append(out_dir / "curves.png")
  return written


def run(table: int, preset: str, workdir, out_dir=None, meta_weights: dict | None = None,
        meta_iterations: int | None = None, data_root=None, dry_run: bool = False,
        alpha: float | None = None, log: Callable[[str], None] = print,
        cached_only: bool = False, steps: Sequence[int] | None = None,
        sets: Sequence[str] | None = None, methods: Sequence[str] | None = None) -> dict:
  """What ``tools/reproduce.py`` calls: the predefined config, optional overrides, the run.

  Args:
    table, preset: see :func:`table_config`.
    workdir: parent of the meta-training runs.
    out_dir: output folder (default ``results/table<N>/<preset>`` in the repository).
    meta_weights: ``{run name: weights}`` to evaluate given checkpoints.
    meta_iterations: overrides every meta run's iteration count (recorded in config).
    data_root: data root (default ``$MLSR_DATA`` or ``../shared``).
    dry_run: only validate and write ``config.json``.
    alpha: overrides the step size of meta-training and of every test-time loop
      (recorded in config; the caption says so).
    cached_only: see :func:`run_table` (a report of what a long run has scored so far).
    steps: overrides the step counts of every adapting method; the curve keeps its counts
      up to the largest (recorded in config; the caption says so).
    sets: only these image sets (names such as ``Set5`` or labels such as
      ``Urban100[001-040]``); methods: only these method labels.  Part of a table, e.g.
      the cheap methods first; the scores are cached as in the whole table, so a later run
      of the whole table reuses them.
  """
  config = table_config(table, preset)
  config = _select(config, sets, methods)
  if meta_iterations is not None:
    if not _is_count(meta_iterations, 1):
      raise ValueError(f"meta_iterations must be a positive integer, got {meta_iterations!r}")
    config.meta_runs = tuple(dataclasses.replace(r, iterations=meta_iterations)
                             for r in config.meta_runs)
  if alpha is not None:
    config.caption = config.caption.replace(f"alpha {config.alpha:g}", f"alpha {alpha:g}")
    config.caption += f" Step size overridden: alpha {alpha:g} (meta-training and tests)."
    config.alpha = alpha
  if steps is not None:
    steps = tuple(steps)
    if not steps or not all(_is_count(c) for c in steps):
      raise ValueError(f"steps must be non-negative integers, got {list(steps)!r}")
    steps = tuple(sorted(set(steps)))
    config.methods = tuple(dataclasses.replace(m, steps=steps) if m.kind in ADAPTING_KINDS
                           else m for m in config.methods)
    config.curve_steps = tuple(c for c in config.curve_steps if c <= steps[-1])
    config.caption += (f" Step counts overridden: {'/'.join(map(str, steps))} (curve up to "
                       f"{steps[-1]}).")
  config.data_root = str(data_root) if data_root else None
  config.validate()
  out_dir = pathlib.Path(out_dir) if out_dir else \
      paths.REPO_ROOT / "results" / f"table{table}" / preset
  if dry_run:
    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic_write(out_dir / "config.json",
                  (json.dumps(_jsonable(config.to_json()), indent=1) + "\n").encode())
    log(f"wrote {out_dir / 'config.json'}")
    return {"config": config.to_json()}
  for image_set in config.image_sets:
    select_files(image_set, config.data_root)  # Fail before any work.
  _check_meta_weights(config, meta_weights)
  weights = _resolve_weights(config.weights, config.data_root)
  if not os.path.isfile(weights):
    raise ValueError(f"no such weights file: {weights!r}")
  output = run_table(config, workdir, out_dir, meta_weights, log, cached_only)
  log(format_markdown(config, output["results"]))
  log(f"wrote {out_dir}")
  return output
