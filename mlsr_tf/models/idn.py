"""IDN: Information Distillation Network (Hui, Wang, Gao, CVPR 2018).

Z. Hui, X. Wang, X. Gao, "Fast and Accurate Single Image Super-Resolution via
Information Distillation Network", CVPR 2018.  MLSR (Park et al., ECCV 2020)
meta-trains from the official IDN TensorFlow x2 checkpoint.

Two variants, both with the same feature extractor and four distillation blocks
(LeakyReLU with slope 0.05 after every convolution of the trunk):

``idn`` -- the official TensorFlow release (RGB; 579,276 parameters at x2).
  Layer names (Keras weights ``<layer>/kernel``, ``<layer>/bias``) and the
  checkpoint variables they correspond to:

  ======================  =================================================
  Keras layer             IDN-TF checkpoint variable
  ======================  =================================================
  conv1, conv2            IDN/conv1/{kernel,bias}, IDN/conv2/...
  distill_{i}_conv{j}     IDN/distill/{i}/conv{j}/{kernel,bias}, j != 2, 5
  distill_{i}_conv2, 5    IDN/distill/{i}/conv{j}/{W,b}: 4-group convs,
                          Keras Conv2D(groups=4) kernels (3,3,12,32) and
                          (3,3,16,48); the TF release splits inputs and
                          W's output axis into 4 consecutive groups, which
                          is exactly Keras' grouping, so W maps unchanged.
  upsample_conv1          IDN/{scale}/conv2d/...      (64 -> 64, linear)
  upsample_conv2          IDN/{scale}/conv2d_1/...    (64 -> 3*s*s, linear)
  ======================  =================================================

  then a channel-major pixel shuffle (the release's ``PS(x, s, color=True)``,
  see `blocks.pixel_shuffle`) and + the bicubic upscale of the input
  (computed here with MATLAB-exact `blocks.bicubic_upsample`).

``idn_caffe`` -- the official Caffe release (Y only; 552,769 parameters).
  Layer names are the Caffe layer names of ``IDN_x{s}_deploy.prototxt``:
  ``conv1``, ``conv2``, ``conv{3+i}_{1..6}`` and ``down{i+1}`` for block i,
  and ``upsample`` (Deconvolution 17x17, stride s, pad 8, one output).
  Caffe blobs map as: conv (out, in/groups, kh, kw) -> Keras kernel
  transpose(2, 3, 1, 0); deconvolution (in, out, kh, kw) -> Keras
  Conv2DTranspose kernel (kh, kw, out, in), also transpose(2, 3, 1, 0).
  The deconvolution yields s*(H-1)+1 pixels aligned with HR pixel s-1 onward
  (the authors' test_IDN.m adds it to ``im_b(s:end, s:end)``); here the same
  transposed convolution is evaluated over all s*H positions (VALID transpose,
  then a crop), so output pixel (y, x) equals the Caffe output at
  (y-s+1, x-s+1) wherever that exists; the extra first s-1 rows/columns are
  inside the border the authors shave.  The bicubic image is an external input
  in Caffe (MATLAB ``imresize`` on the float LR); here it is computed with
  `blocks.bicubic_upsample`, which matches that.

Distillation block (both variants; paper Fig. 3, prototxt ``conv3_*``): with
``f`` features and ``d`` distilled channels (64 and 16), convs of widths
f-d, f-2d (grouped), f, then the first d channels are concatenated AFTER the
block input ([input, slice] -> f+d channels), the remaining f-d pass through
convs of widths f, f-d (grouped), f+d, the two are summed and a 1x1 conv
compresses back to f.
"""

import keras

from mlsr_tf.models import blocks
from mlsr_tf.models import registry


def _check_idn_args(scale, channels, filters, distill_channels, num_blocks,
                    groups):
  blocks.check_positive_ints("num_blocks", [num_blocks])
  blocks.check_positive_ints("filters/distill_channels/groups",
                             [filters, distill_channels, groups])
  widths = (filters - distill_channels, filters - 2 * distill_channels)
  if min(widths) < 1 or any(w % groups for w in widths + (filters,)):
    raise ValueError(
        f"IDN needs filters - 2*distill_channels >= 1 and filters, "
        f"filters - distill_channels, filters - 2*distill_channels divisible "
        f"by groups; got filters={filters!r}, "
        f"distill_channels={distill_channels!r}, groups={groups!r}")
  if scale < 2:
    raise ValueError(f"IDN needs scale >= 2, got {scale!r}")
  del channels


def _distillation_block(x, names, filters, distill_channels, groups,
                        negative_slope):
  """One enhancement unit + compression; `names` lists its 7 layer names."""
  d = distill_channels
  act = lambda: blocks.get_activation("leaky_relu", negative_slope)
  widths = (filters - d, filters - 2 * d, filters, filters, filters - d,
            filters + d)
  group_counts = (1, groups, 1, 1, groups, 1)
  y = x
  for k in range(3):
    y = act()(blocks.conv(widths[k], names[k], groups=group_counts[k])(y))
  distilled, remaining = y[..., :d], y[..., d:]
  for k in range(3, 6):
    remaining = act()(blocks.conv(widths[k], names[k],
                                  groups=group_counts[k])(remaining))
  merged = keras.layers.Concatenate(axis=-1)([x, distilled])
  merged = keras.layers.Add()([merged, remaining])
  return act()(blocks.conv(filters, names[6], kernel_size=1)(merged))


def _trunk(x, filters, distill_channels, num_blocks, groups, negative_slope,
           block_names):
  """conv1, conv2 and the distillation blocks."""
  for name in ("conv1", "conv2"):
    x = blocks.conv(filters, name)(x)
    x = blocks.get_activation("leaky_relu", negative_slope)(x)
  for i in range(num_blocks):
    x = _distillation_block(x, block_names(i), filters, distill_channels,
                            groups, negative_slope)
  return x


@registry.register("idn", default_channels=3)
def build_idn(scale: int = 2, channels: int = 3, filters: int = 64,
              distill_channels: int = 16, num_blocks: int = 4, groups: int = 4,
              negative_slope: float = 0.05) -> registry.SRModel:
  """IDN as in the official TensorFlow release (see module docstring).

  Args:
    scale: upscale factor (>= 2).
    channels: image channels (3 in the release).
    filters: trunk width D3 (64 in the paper).
    distill_channels: channels kept by each distillation, D3/s (16).
    num_blocks: distillation blocks (4).
    groups: groups of the grouped convolutions (4).
    negative_slope: LeakyReLU slope (0.05).
  """
  _check_idn_args(scale, channels, filters, distill_channels, num_blocks,
                  groups)
  inputs = keras.Input((None, None, channels), name="lr")
  features = _trunk(
      inputs, filters, distill_channels, num_blocks, groups, negative_slope,
      lambda i: [f"distill_{i}_conv{j}" for j in range(1, 8)])
  features = blocks.conv(filters, "upsample_conv1")(features)
  features = blocks.conv(channels * scale * scale, "upsample_conv2")(features)
  residual = blocks.PixelShuffle(scale, name="pixel_shuffle")(features)
  upscaled = blocks.BicubicUpsample(scale, name="bicubic", dtype=blocks.OUTPUT_DTYPE)(inputs)
  outputs = keras.layers.Add(name="sr", dtype=blocks.OUTPUT_DTYPE)([residual, upscaled])
  return registry.make_model(inputs, outputs, "idn", dict(
      scale=scale, channels=channels, filters=filters,
      distill_channels=distill_channels, num_blocks=num_blocks, groups=groups,
      negative_slope=negative_slope))


@registry.register("idn_caffe", default_channels=1)
def build_idn_caffe(scale: int = 2, channels: int = 1, filters: int = 64,
                    distill_channels: int = 16, num_blocks: int = 4,
                    groups: int = 4, negative_slope: float = 0.05,
                    upsample_kernel: int = 17) -> registry.SRModel:
  """IDN as in the official Caffe release (see module docstring).

  Args are those of `build_idn`, plus `upsample_kernel`: the odd size of the
  stride-`scale` transposed convolution (17; Caffe pad = (k-1)/2).
  """
  _check_idn_args(scale, channels, filters, distill_channels, num_blocks,
                  groups)
  pad = (upsample_kernel - 1) // 2
  if upsample_kernel % 2 != 1 or pad + 1 < scale:
    raise ValueError(f"upsample_kernel must be odd and >= 2*scale-1, got "
                     f"{upsample_kernel!r} for scale {scale!r}")
  inputs = keras.Input((None, None, channels), name="lr")
  features = _trunk(
      inputs, filters, distill_channels, num_blocks, groups, negative_slope,
      lambda i: [f"conv{3 + i}_{j}" for j in range(1, 7)] + [f"down{i + 1}"])
  residual = keras.layers.Conv2DTranspose(
      channels, upsample_kernel, strides=scale, padding="valid",
      name="upsample")(features)
  # VALID transpose has s*(H-1)+k rows; Caffe's row o (HR row o+s-1) is VALID
  # row o+pad, so HR rows 0..sH-1 are VALID rows pad+1-s .. pad+sH-s.
  crop = ((pad + 1 - scale, upsample_kernel - pad - 1),) * 2
  residual = keras.layers.Cropping2D(crop, name="upsample_crop")(residual)
  upscaled = blocks.BicubicUpsample(scale, name="bicubic", dtype=blocks.OUTPUT_DTYPE)(inputs)
  outputs = keras.layers.Add(name="sr", dtype=blocks.OUTPUT_DTYPE)([residual, upscaled])
  return registry.make_model(inputs, outputs, "idn_caffe", dict(
      scale=scale, channels=channels, filters=filters,
      distill_channels=distill_channels, num_blocks=num_blocks, groups=groups,
      negative_slope=negative_slope, upsample_kernel=upsample_kernel))
