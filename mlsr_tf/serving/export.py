"""SavedModel export with a test-time adaptation signature (for TF Serving).

:func:`export_savedmodel` writes, with ``keras.export.ExportArchive`` (a Keras 3 model
saved with plain ``tf.saved_model.save`` does not restore in the TF1/C++ loader that TF
Serving uses), a SavedModel with two signatures:

``serving_default``: plain super-resolution.
  * input ``lr``: ``[N, H, W, C]`` (any N, H, W);
  * output ``sr``: ``[N, s*H, s*W, C]``.

``adapt_learned`` (only for a model shipped with learned step sizes,
:mod:`mlsr_tf.meta.step_sizes`): the same as ``adapt`` without ``learning_rate``: step ``i``
uses the learned per-tensor step sizes of row ``min(i, k - 1)``; when they are banded by
kernel width, of the band the request's ``kernel`` falls in (``kernel_sigma``, computed in
the graph; the empty bicubic kernel uses the first matrix).

``adapt``: MLSR's Algorithm 2 inside the graph, then super-resolution.
  * ``lr``: ``[1, H, W, C]`` (one image: the network is adapted to it);
  * ``steps``: int32 scalar, number of SGD steps (0: same as ``serving_default``);
  * ``learning_rate``: float32 scalar, the SGD step size for pixels in [0, 1] with the L2
    loss (the paper's 1e-5 at 0..255 is 0.65025 here; see ``mlsr_tf.meta.maml``);
  * ``kernel``: float32 ``[k, k]``, the blur kernel of the degradation that made the LR
    (normalised to sum 1 inside; centre at ``k // 2``; then subsampling by s, see
    ``mlsr_tf.data.degradation``).  **An empty ``[0, 0]`` kernel means MATLAB bicubic.**
  * output ``sr``: ``[1, s*H, s*W, C]``.

  LR_down is made in the graph (``degrade_tf`` / ``imresize_tf``) from the LR, then ``steps``
  SGD steps (as ``mlsr_tf.adapt``) run in a ``tf.while_loop`` over parameter *tensors* (the step is ``mlsr_tf.meta.adaptation.make_sgd_step``, i.e.
  ``model.stateless_call`` under a ``GradientTape``); the stored variables are only read,
  never assigned, so every request starts from the same weights.  Bad values (negative
  steps, a non-finite learning rate, a kernel summing to <= 0, a batch other than 1) fail
  the request.

Pixel formats (chosen at export, ``input_dtype``):
  * ``"float32"`` (default): ``lr`` float32 in [0, 1]; ``sr`` float32 clipped to [0, 1];
  * ``"uint8"``: ``lr`` uint8 0..255; ``sr`` uint8 (rounded).  Both cost the same in the
    graph; uint8 halves nothing on the wire for JSON but matches image files directly.
  Channels: RGB (or Y for a 1-channel model), as the network was trained.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import shutil
import tempfile
from typing import Optional

from mlsr_tf import paths

INPUT_DTYPES = ("float32", "uint8")
SIGNATURES = ("serving_default", "adapt")
LEARNED_SIGNATURE = "adapt_learned"  # Only with learned step sizes.


def _check_input_dtype(input_dtype: str) -> str:
  if input_dtype not in INPUT_DTYPES:
    raise ValueError(f"unknown input_dtype {input_dtype!r}; expected one of {INPUT_DTYPES}")
  return input_dtype


def make_signature_functions(model, scale: int, input_dtype: str = "float32",
                             step_sizes=None):
  """The signature functions and their input specs: ``{name: (fn, [TensorSpec])}``.

  ``step_sizes``: a learned ``[k, P]`` matrix, or a ``step_sizes.KernelSigmaBands``, adds
  the ``adapt_learned`` signature.
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import degradation as degradation_lib  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import imresize as imresize_lib  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import maml  # pylint: disable=g-import-not-at-top

  _check_input_dtype(input_dtype)
  channels = int(model.inputs[0].shape[-1])
  dtype = tf.uint8 if input_dtype == "uint8" else tf.float32

  def to_float(lr):
    lr = tf.cast(lr, tf.float32)
    return lr / 255.0 if input_dtype == "uint8" else lr

  def from_float(sr):
    sr = tf.clip_by_value(sr, 0.0, 1.0)
    if input_dtype == "uint8":
      return tf.cast(tf.round(sr * 255.0), tf.uint8)
    return sr

  def current_params():
    return [tf.identity(v.value) for v in model.trainable_variables]

  def serve(lr):
    apply_fn = maml.make_apply_fn(model)
    return {"sr": from_float(apply_fn(current_params(), to_float(lr)))}

  def adapted_sr(lr, steps, kernel, step_size, finite_check):
    """Algorithm 2 in the graph; ``step_size(i)`` is step i's size (scalar or [P])."""
    x = to_float(lr)
    checks = [
        tf.debugging.assert_equal(tf.shape(x)[0], 1, message="adapt takes one image: lr "
                                  "must be [1, H, W, C]"),
        tf.debugging.assert_non_negative(steps, message="steps must be >= 0"),
        # The checks of mlsr_tf.data.degradation.check_kernel / check_fits, in the graph
        # (values first, so that a NaN kernel is not reported as a bad sum).
        tf.debugging.Assert(
            tf.logical_and(tf.reduce_all(tf.math.is_finite(kernel)),
                           tf.reduce_all(kernel >= 0)),
            ["kernel must be finite and non-negative"]),
        tf.debugging.Assert(
            tf.reduce_all(tf.shape(kernel) <= tf.minimum(
                tf.shape(x)[1:3], degradation_lib.MAX_KERNEL_SIZE)),
            [f"kernel must be at most {degradation_lib.MAX_KERNEL_SIZE} and at most the "
             "image size per side"]),
    ] + finite_check
    with tf.control_dependencies(checks):
      checks.append(tf.debugging.Assert(
          tf.logical_or(tf.equal(tf.size(kernel), 0), tf.reduce_sum(kernel) > 0),
          ["kernel must be empty (bicubic) or have a positive sum"]))
    with tf.control_dependencies(checks):
      x = tf.identity(x)
    lr_down = tf.cond(
        tf.size(kernel) > 0,
        lambda: degradation_lib.degrade_tf(x, kernel / tf.reduce_sum(kernel), scale),
        lambda: imresize_lib.imresize_tf(x, 1.0 / scale))
    step = adaptation.make_sgd_step(model)

    def body(i, *params):
      new_params, _ = step(list(params), lr_down, x, step_size(i))
      return (i + 1, *new_params)

    params = tf.while_loop(lambda i, *_: i < steps, body,
                           (tf.constant(0, tf.int32), *current_params()))[1:]
    return {"sr": from_float(maml.make_apply_fn(model)(list(params), x))}

  def adapt(lr, steps, learning_rate, kernel):
    return adapted_sr(lr, steps, kernel, lambda i: learning_rate,
                      [tf.debugging.assert_all_finite(learning_rate,
                                                      "learning_rate must be finite")])

  image_spec = tf.TensorSpec([1, None, None, channels], dtype, name="lr")
  steps_spec = tf.TensorSpec([], tf.int32, name="steps")
  kernel_spec = tf.TensorSpec([None, None], tf.float32, name="kernel")
  functions = {
      "serving_default": (serve, [tf.TensorSpec([None, None, None, channels], dtype,
                                                name="lr")]),
      "adapt": (adapt, [image_spec, steps_spec,
                        tf.TensorSpec([], tf.float32, name="learning_rate"), kernel_spec]),
  }
  if step_sizes is not None:
    from mlsr_tf.meta import step_sizes as step_sizes_lib  # pylint: disable=g-import-not-at-top
    if isinstance(step_sizes, step_sizes_lib.KernelSigmaBands):
      base, bands = step_sizes.base, step_sizes.bands
    else:
      base, bands = step_sizes, ()
    matrices = [tf.constant(np.asarray(m, np.float32)) for m in [base] + [m for _, m in bands]]

    def row(matrix, i):  # Step i uses row min(i, k - 1).
      return matrix[tf.minimum(i, int(matrix.shape[0]) - 1)]

    def adapt_learned(lr, steps, kernel):
      # The kernel's width only matters to banded step sizes.
      sigma = degradation_lib.kernel_sigma_tf(kernel) if bands else None

      def step_size(i):
        chosen = row(matrices[0], i)
        for (low, _), matrix in zip(bands, matrices[1:]):
          chosen = tf.where(sigma >= low, row(matrix, i), chosen)
        return chosen
      return adapted_sr(lr, steps, kernel, step_size, [])

    functions[LEARNED_SIGNATURE] = (adapt_learned, [image_spec, steps_spec, kernel_spec])
  return functions


def staging_pattern(name: str) -> str:
  """Names of the staging directories of exports to ``<parent>/<name>`` (group ``pid``)."""
  return rf"\.{re.escape(name)}\.(?P<pid>\d+)\.[A-Za-z0-9_]+"


def export_savedmodel(model, output_dir, scale: int, input_dtype: str = "float32",
                      step_sizes=None) -> str:
  """Writes the SavedModel (all signatures) to ``output_dir``; returns its path.

  ``step_sizes``: the model's learned ``[k, P]`` step sizes, if any (``adapt_learned``).

  The directory is written next to the target (``.<name>.<pid>.xxxxxxxx/``, removed at the
  next export into the same parent if this process was killed) and renamed into place, so
  a failure leaves no half-written model; an existing ``output_dir`` is an error (never
  overwritten).  For TF Serving use ``<base>/<name>/<version>``, e.g. ``export/mlsr/1``.
  """
  import keras  # pylint: disable=g-import-not-at-top

  output_dir = pathlib.Path(output_dir)
  if output_dir.exists() or output_dir.is_symlink():
    raise ValueError(f"export directory {str(output_dir)!r} already exists")
  parent = output_dir.parent
  parent.mkdir(parents=True, exist_ok=True)
  paths.remove_stale_temporaries(parent, staging_pattern(output_dir.name))
  archive = keras.export.ExportArchive()
  archive.track(model)
  for name, (fn, specs) in make_signature_functions(model, scale, input_dtype,
                                                    step_sizes).items():
    archive.add_endpoint(name=name, fn=fn, input_signature=specs)
  staging = pathlib.Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.{os.getpid()}.",
                                          dir=parent))
  try:
    archive.write_out(str(staging / "model"), verbose=False)
    os.replace(staging / "model", output_dir)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  return str(output_dir)


@dataclasses.dataclass
class ExportConfig:
  """What ``tools/export_savedmodel.py`` needs: output dir, model (as in adapt_image)."""
  output: str
  model: str = "default"
  weights: Optional[str] = None
  scale: Optional[int] = None
  input_dtype: str = "float32"


def signature_names(step_sizes=None) -> tuple:
  """The signatures an export has: :data:`SIGNATURES`, plus ``adapt_learned`` with learned
  step sizes."""
  return SIGNATURES + ((LEARNED_SIGNATURE,) if step_sizes is not None else ())


def run(config: ExportConfig) -> tuple:
  """Loads the model (see ``mlsr_tf.serving.adapt_image.load_inference_model``) and exports it.

  Returns ``(path, signature names)``.
  """
  from mlsr_tf.serving import adapt_image  # pylint: disable=g-import-not-at-top
  _check_input_dtype(config.input_dtype)
  if pathlib.Path(config.output).exists():
    raise ValueError(f"export directory {config.output!r} already exists")
  loaded = adapt_image.load_inference_model(config.model, config.weights, config.scale)
  path = export_savedmodel(loaded.model, config.output, loaded.scale, config.input_dtype,
                          loaded.step_sizes)
  return path, signature_names(loaded.step_sizes)


@dataclasses.dataclass
class BenchConfig:
  """What ``tools/bench_export.py`` measures (see its docstring)."""
  model: str = "default"
  weights: Optional[str] = None
  sizes: tuple = (256, 512)
  steps: tuple = (5, 20)
  crops: int = 4
  crop_size: int = 64
  compare_size: int = 256
  compare_steps: int = 5
  learning_rate: float = 0.1
  workdir: Optional[str] = None
  skip_cli: bool = False


def _check_bench_config(config: BenchConfig) -> None:
  """Raises ValueError, repeating the value, for sizes, step counts or rates out of range."""
  import math  # pylint: disable=g-import-not-at-top
  for name, values, low in (("sizes", config.sizes, 8), ("steps", config.steps, 0),
                            ("crops", (config.crops,), 1), ("crop_size", (config.crop_size,), 1),
                            ("compare_size", (config.compare_size,), 8),
                            ("compare_steps", (config.compare_steps,), 0)):
    if any(isinstance(v, bool) or not isinstance(v, int) or v < low for v in values):
      raise ValueError(f"{name} must be integers >= {low}, got {values!r}")
  if not (math.isfinite(config.learning_rate) and config.learning_rate >= 0):
    raise ValueError(f"learning_rate must be finite and >= 0, got {config.learning_rate!r}")


def _time(fn) -> float:
  import time  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def benchmark(config: BenchConfig, log=print) -> list:
  """End-to-end CLI seconds (whole image vs crops) and SavedModel ``adapt`` vs Python.

  CLI rows run ``tools/adapt_image.py`` as a fresh process (start-up, model load, adaptation,
  forward, PNG write: what a user waits for) on a synthetic LR of each size.  The SavedModel
  row exports the model, then times one ``adapt`` call against ``mlsr_tf.adapt`` (both
  after a warm-up call, same LR, steps and step size).
  Returns one dict per measurement (also passed to ``log`` as it is made).
  """
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top

  import numpy as np  # pylint: disable=g-import-not-at-top

  from mlsr_tf.serving import adapt_image  # pylint: disable=g-import-not-at-top
  from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import image_io  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import synthetic  # pylint: disable=g-import-not-at-top

  _check_bench_config(config)
  loaded = adapt_image.load_inference_model(config.model, config.weights)  # Checked first.
  workdir = pathlib.Path(config.workdir or tempfile.mkdtemp(prefix="bench_export."))
  workdir.mkdir(parents=True, exist_ok=True)
  model_flags = ["--model", config.model] + (["--weights", config.weights]
                                             if config.weights else [])
  rows = []

  def record(row):
    rows.append(row)
    log(row)

  for size in config.sizes:
    lr_path = workdir / f"lr_{size}.png"
    image_io.write_png(lr_path, synthetic.demo_image(size, size))
    if config.skip_cli:
      continue
    for steps in config.steps:
      for mode, extra in (("whole", []), ("crops", ["--crops", str(config.crops),
                                                    "--crop_size", str(config.crop_size)])):
        command = [sys.executable, str(paths.REPO_ROOT / "tools" / "adapt_image.py"),
                   "--input", str(lr_path), "--output", str(workdir / "sr.png"), "--steps",
                   str(steps), "--alpha", str(config.learning_rate), "--quiet",
                   *model_flags, *extra]
        proc = None

        def call():
          nonlocal proc
          proc = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = _time(call)
        if proc.returncode != 0:
          raise ValueError(f"adapt_image failed: {proc.stderr.strip().splitlines()[-1:]}")
        record({"what": "cli", "lr": f"{size}x{size}", "steps": steps, "mode": mode,
                "seconds": round(seconds, 2)})
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import degradation as degradation_lib  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import adaptation  # pylint: disable=g-import-not-at-top
  export_dir = workdir / "savedmodel"
  shutil.rmtree(export_dir, ignore_errors=True)
  export_savedmodel(loaded.model, export_dir, loaded.scale)
  served = tf.saved_model.load(str(export_dir)).signatures["adapt"]
  size, steps, rate = config.compare_size, config.compare_steps, config.learning_rate
  lr = synthetic.demo_image(size, size)
  if loaded.channels == 1:
    lr = (adapt_image.rgb_to_ycbcr(lr / 255.0)[:, :, :1] * 255).round().astype(np.uint8)
  lr = image_io.to_float(lr)
  feeds = dict(lr=tf.constant(lr[None]), steps=tf.constant(steps, tf.int32),
               learning_rate=tf.constant(rate, tf.float32), kernel=tf.zeros([0, 0]))

  def python_adapt():
    return adaptation.adapt(loaded.model, lr, degradation_lib.bicubic(loaded.scale), steps,
                            rate)

  served(**feeds)  # Warm-up (first call pays for graph set-up).
  python_adapt()
  results = {}
  saved_seconds = _time(lambda: results.update(saved=served(**feeds)["sr"].numpy()[0]))
  python_seconds = _time(lambda: results.update(python=python_adapt()))
  difference = float(np.abs(results["saved"] - results["python"]).max())
  record({"what": "savedmodel_vs_python", "lr": f"{size}x{size}", "steps": steps,
          "savedmodel_seconds": round(saved_seconds, 3),
          "python_seconds": round(python_seconds, 3),
          "max_abs_difference": difference})
  return rows
