"""SRCNN (Dong, Loy, He, Tang, TPAMI 2016), the 9-5-5 variant.

C. Dong, C. C. Loy, K. He, X. Tang, "Image Super-Resolution Using Deep
Convolutional Networks", TPAMI 2016 (ECCV 2014).  Works on the bicubic upscale
of the input (computed inside the model, MATLAB-exact): ``conv1`` 9x9 with
``filters[0]`` (64) features, ReLU; ``conv2`` 5x5 with ``filters[1]`` (32),
ReLU; ``conv3`` 5x5 to the image channels.  Unlike the paper's valid
convolutions, padding is 'same' so the output has the full s*H x s*W size.
Layer names: ``conv1`` .. ``conv{len(filters)+1}``.  ``residual=True`` adds the
bicubic image to the output (VDSR-style; the paper's SRCNN predicts the image).

Small variants for tests: ``build_model("srcnn", filters=(8, 4))``.
"""

from typing import Sequence

import keras

from mlsr_tf.models import blocks
from mlsr_tf.models import registry


@registry.register("srcnn", default_channels=3)
def build_srcnn(scale: int = 2, channels: int = 3,
                filters: Sequence[int] = (64, 32),
                kernel_sizes: Sequence[int] = (9, 5, 5),
                activation: str = "relu",
                residual: bool = False) -> registry.SRModel:
  """SRCNN on the bicubic upscale.

  Args:
    scale: upscale factor (1 = input already upscaled).
    channels: image channels.
    filters: widths of the hidden layers ((64, 32)).
    kernel_sizes: one kernel size per layer, len(filters) + 1 ((9, 5, 5)).
    activation: hidden activation ("relu").
    residual: add the bicubic upscale to the output.
  """
  filters = blocks.check_positive_ints("filters", filters)
  kernel_sizes = blocks.check_positive_ints("kernel_sizes", kernel_sizes)
  if len(kernel_sizes) != len(filters) + 1:
    raise ValueError(f"kernel_sizes needs len(filters) + 1 = "
                     f"{len(filters) + 1} entries, got {kernel_sizes!r}")
  inputs = keras.Input((None, None, channels), name="lr")
  upscaled = blocks.BicubicUpsample(scale, name="bicubic", dtype=blocks.OUTPUT_DTYPE)(inputs)
  x = upscaled
  for k, width in enumerate(filters):
    x = blocks.conv(width, f"conv{k + 1}", kernel_size=kernel_sizes[k])(x)
    x = blocks.get_activation(activation)(x)
  outputs = blocks.conv(channels, f"conv{len(filters) + 1}",
                        kernel_size=kernel_sizes[-1])(x)
  if residual:
    outputs = keras.layers.Add(name="sr", dtype=blocks.OUTPUT_DTYPE)([outputs, upscaled])
  return registry.make_model(inputs, outputs, "srcnn", dict(
      scale=scale, channels=channels, filters=list(filters),
      kernel_sizes=list(kernel_sizes), activation=activation,
      residual=bool(residual)))
