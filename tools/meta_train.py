r"""Meta-trains an SR network with MLSR (Algorithm 1), resumable.

Usage:
  python tools/meta_train.py --model idn_caffe \
      --weights ../shared/weights/idn_caffe/IDN_x2.caffemodel --data train291 \
      --patch 64 --batch 2 --inner_steps 2 --iterations 2 --workdir runs/meta
  python tools/meta_train.py --model idn --weights pretrained/idn_x2.weights.h5 \
      --degradation bicubic --data urban_train/ --anchor_data train291 --anchor_weight 4 \
      --alpha 0.3 --beta 5e-6 --learn_step_sizes --validation Set5,urban_val/ \
      --validation_size 0 --validation_degradation bicubic --keep_validated_weights \
      --iterations 600 --validate_every 150 --workdir runs/meta_idn   # WORKSPACE.md §10, r5
  # add --parallel_tasks on a CPU: tasks run side by side (faster meta-iterations)

Rerun with the same --workdir and a larger --iterations: it resumes where it stopped,
with the same data order.  Resuming with flags that change the result (--seed, --batch,
--patch, --degradation, --alpha, ...) is refused, naming them; a workdir with weights but no
readable checkpoint is refused unless --overwrite (which starts again).  The latest
meta-trained weights are written to WORKDIR/model.weights.h5 (accepted by every tool's
--weights).  --backend jax runs the same algorithm on Keras' JAX backend (no TensorFlow
needed).

Step sizes are for pixels in [0, 1] (default --alpha 0.65025 = the paper's 1e-5 at
0..255 for the L2 loss; --beta 1e-6 as in the paper, Adam is scale invariant); with
--pixel_range 255 pass the paper's values unchanged.  See mlsr_tf/meta/maml.py.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tools import _cli  # pylint: disable=g-import-not-at-top

flags.DEFINE_enum("backend", None, ["tensorflow", "jax"],
                  "Keras backend (default: $KERAS_BACKEND, else tensorflow).")
flags.DEFINE_string("model", "idn_caffe", "Registered model name.")
flags.DEFINE_string("model_kwargs", "{}", "JSON dict of extra model constructor arguments.")
flags.DEFINE_string("weights", None, "Initial weights (any importable format).")
flags.DEFINE_integer("scale", 2, "Upscaling factor.")
flags.DEFINE_integer("channels", None, "1 (Y) or 3 (RGB); default: the model's.")
flags.DEFINE_string("data", "train291", "Training set name under the data root, or a folder.")
flags.DEFINE_string("data_root", None, "Data root (default $MLSR_DATA, else ../shared).")
flags.DEFINE_integer("patch", 128, "HR patch size (a multiple of scale^2).")
flags.DEFINE_integer("batch", 4, "Tasks per meta-batch (one degradation each).")
flags.DEFINE_integer("patches_per_task", 1, "HR patches per task.")
flags.DEFINE_integer("inner_steps", 5, "Inner SGD steps k.")
flags.DEFINE_float("alpha", 0.65025, "Inner SGD step size (for --pixel_range).")
flags.DEFINE_float("beta", 1e-6, "Outer Adam step size.")
flags.DEFINE_integer("iterations", 1000, "Total number of meta-iterations.")
flags.DEFINE_enum("degradation", "mixed", ["bicubic", "random5x5", "gaussian", "mixed"],
                  "Distribution of per-task degradations.")
flags.DEFINE_string("mixture_weights", None,
                    "For --degradation mixed: weights of bicubic,random5x5,gaussian, e.g. 2,1,1 "
                    "(default: uniform).")
flags.DEFINE_float("sigma_min", 0.2, "Smallest Gaussian sigma of the tasks (gaussian / mixed; "
                   "the anchor keeps 0.2).")
flags.DEFINE_float("sigma_max", 3.0, "Largest Gaussian sigma (gaussian / mixed).")
flags.DEFINE_enum("order", "first", ["first", "second"], "Meta-gradient order.")
flags.DEFINE_enum("loss", "l2", ["l2", "l1"], "Pixel loss.")
flags.DEFINE_float("pixel_range", 1.0, "Loss computed on pixels scaled to 0..pixel_range.")
flags.DEFINE_string("workdir", "runs/meta", "Output and checkpoint directory.")
flags.DEFINE_bool("overwrite", False,
                  "Discard what --workdir holds (weights, checkpoint, metrics) and start again.")
flags.DEFINE_integer("validate_every", 100, "Validation period (0: never; also none if --iterations is smaller).")
flags.DEFINE_string("validation", "Set5", "Comma-separated validation sets (names or folders).")
flags.DEFINE_integer("validation_images", 0, "Use the first N images of each set (0: all).")
flags.DEFINE_integer("validation_size", 128,
                     "Centre-crop validation HR to this size (0: whole image).")
flags.DEFINE_integer("validation_steps", 5, "Adaptation steps at validation.")
flags.DEFINE_multi_string("validation_degradation", [],
                          "Validate with this fixed degradation on every image (repeatable; "
                          "bicubic, gaussian:SX,SY,THETA, .mat/.npy); default: drawn like "
                          "the training tasks.")
flags.DEFINE_bool("keep_validated_weights", False,
                  "Also keep the weights of every validation in WORKDIR/validated/.")
flags.DEFINE_integer("checkpoint_every", 100, "Checkpoint period (iterations).")
flags.DEFINE_integer("log_every", 10, "Progress line period (iterations).")
flags.DEFINE_integer("seed", 0, "Seed of task sampling.")
flags.DEFINE_bool("jit_compile", False, "XLA-compile the TensorFlow meta-step.")
flags.DEFINE_list("query_weights", [],
                  "k+1 weights of the outer (query) loss after 0..k inner steps, e.g. "
                  "0.5,0,0,0,0,1: index 0 keeps the supervised loss of the un-adapted network "
                  "(an anchor), middle entries are MAML++'s multi-step loss (default: the "
                  "paper's final step only).")
flags.DEFINE_bool("learn_step_sizes", False,
                  "Learn one inner step size per step and per weight tensor (MAML++ LSLR), "
                  "starting at --alpha; saved as WORKDIR/step_sizes.json.")
flags.DEFINE_float("step_size_learning_rate", 1e-2,
                   "Adam step size of the learned step sizes' log-scales.")
flags.DEFINE_float("max_step_size", None,
                   "With --learn_step_sizes: upper bound on every learned step size (they are "
                   "reused for adaptation steps past --inner_steps, where an unbounded one can "
                   "diverge).  Default: unbounded.")
flags.DEFINE_string("anchor_data", None,
                    "Training set (name or folder) of a supervised anchor loss: each iteration "
                    "adds --anchor_weight x L(f(LR), HR) on --batch bicubic patches of it, "
                    "keeping the un-adapted network where it was trained while the tasks come "
                    "from --data.")
flags.DEFINE_float("anchor_weight", 0.0, "Weight of the --anchor_data loss (0: no anchor).")
flags.DEFINE_enum("anchor_degradation", "bicubic", ["bicubic", "random5x5", "gaussian", "mixed"],
                  "How the anchor's LR patches are made: bicubic for a bicubic network, the "
                  "blurs it was trained on for a kernel-aware one (--sigma_max and "
                  "--mixture_weights as for the tasks).")
flags.DEFINE_enum("precision", "float32", ["float32", "mixed_bfloat16", "mixed_float16"],
                  "Layer dtype policy: mixed_bfloat16 computes in bfloat16 (AMX CPUs, GPUs); "
                  "theta, Adam state and saved weights stay float32.")
flags.DEFINE_bool("quantize_lr", False,
                  "Round the LR of tasks, anchor and validation to 8-bit levels, as LR files "
                  "are at test time (float LR otherwise, as in earlier runs).")
flags.DEFINE_string("initial_step_sizes", None,
                    "With --learn_step_sizes: start the step sizes from this step_sizes.json "
                    "(an earlier run's, for the same network and --inner_steps) instead of "
                    "--alpha.")
flags.DEFINE_bool("parallel_tasks", False,
                  "CPU: run the meta-batch's tasks side by side, one thread each "
                  "(meta-iterations 1.3-1.8x faster on 2 cores, validation slower; "
                  "WORKSPACE.md section 9).")

FLAGS = flags.FLAGS


def _floats(name: str) -> list:
  try:
    return [float(v) for v in getattr(FLAGS, name)]
  except ValueError:
    _cli.fail(f"--{name} must be comma-separated numbers, got {getattr(FLAGS, name)!r}")


def main(argv):
  del argv
  if FLAGS.backend:
    os.environ["KERAS_BACKEND"] = FLAGS.backend
  backend = os.environ.get("KERAS_BACKEND", "tensorflow")
  from mlsr_tf.training import meta_train  # pylint: disable=g-import-not-at-top  (after KERAS_BACKEND)
  try:
    config = meta_train.MetaTrainConfig(
        workdir=FLAGS.workdir, overwrite=FLAGS.overwrite, model=FLAGS.model, weights=FLAGS.weights,
        model_kwargs=_cli.json_object("model_kwargs"), scale=FLAGS.scale,
        channels=FLAGS.channels, data=FLAGS.data, data_root=FLAGS.data_root, patch=FLAGS.patch,
        batch=FLAGS.batch, patches_per_task=FLAGS.patches_per_task,
        inner_steps=FLAGS.inner_steps, alpha=FLAGS.alpha, beta=FLAGS.beta,
        iterations=FLAGS.iterations, degradation=FLAGS.degradation,
        mixture_weights=FLAGS.mixture_weights, sigma_min=FLAGS.sigma_min,
        sigma_max=FLAGS.sigma_max,
        order=FLAGS.order, loss=FLAGS.loss, pixel_range=FLAGS.pixel_range,
        validate_every=FLAGS.validate_every, validation=FLAGS.validation,
        validation_images=FLAGS.validation_images, validation_size=FLAGS.validation_size,
        validation_steps=FLAGS.validation_steps,
        validation_degradations=tuple(FLAGS.validation_degradation),
        keep_validated_weights=FLAGS.keep_validated_weights,
        checkpoint_every=FLAGS.checkpoint_every,
        log_every=FLAGS.log_every, seed=FLAGS.seed, backend=backend,
        jit_compile=FLAGS.jit_compile, precision=FLAGS.precision,
        parallel_tasks=FLAGS.parallel_tasks, anchor_degradation=FLAGS.anchor_degradation,
        query_weights=tuple(_floats("query_weights")),
        learn_step_sizes=FLAGS.learn_step_sizes,
        step_size_learning_rate=FLAGS.step_size_learning_rate,
        max_step_size=FLAGS.max_step_size, initial_step_sizes=FLAGS.initial_step_sizes,
        quantize_lr=FLAGS.quantize_lr,
        anchor_data=FLAGS.anchor_data, anchor_weight=FLAGS.anchor_weight)
    result = meta_train.run(config, log=lambda line: print(line, flush=True))
  except KeyboardInterrupt:
    _cli.interrupted(FLAGS.workdir)
  except (ValueError, OSError) as error:
    _cli.fail(error)
  print(json.dumps(result))


if __name__ == "__main__":
  app.run(main, flags_parser=_cli.parse_flags_or_exit)
