"""Tests for the Caffe wire-format reader and the Caffe -> Keras importer."""

import pathlib
import re
import struct

import keras
import numpy as np
import pytest

from mlsr_tf import paths
from mlsr_tf.weights import caffe
from mlsr_tf.weights import mapping

IDN_CAFFE_DIR = paths.data_root() / "weights" / "idn_caffe"


# --- A minimal protobuf encoder, to write synthetic .caffemodel files. ---
def _varint(value: int) -> bytes:
  out = bytearray()
  while True:
    byte = value & 0x7F
    value >>= 7
    if value:
      out.append(byte | 0x80)
    else:
      out.append(byte)
      return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
  return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint_field(number: int, value: int) -> bytes:
  return _varint(number << 3) + _varint(value)


def _blob(array: np.ndarray, legacy: bool = False, packed: bool = True) -> bytes:
  if legacy:  # num/channels/height/width, as written by old Caffe versions.
    dims = (1,) * (4 - array.ndim) + array.shape
    header = b"".join(_varint_field(n, d) for n, d in zip((1, 2, 3, 4), dims))
  else:
    header = _field(7, _field(1, b"".join(_varint(d) for d in array.shape)))
  values = array.astype("<f4").ravel()
  if packed:
    data = _field(5, values.tobytes())
  else:  # Unpacked repeated float: one fixed32 field per value.
    data = b"".join(_varint(5 << 3 | 5) + struct.pack("<f", v) for v in values)
  return header + data


def _layer(name: str, layer_type: str, blobs: list[bytes]) -> bytes:
  body = _field(1, name.encode()) + _field(2, layer_type.encode())
  return _field(100, body + b"".join(_field(7, b) for b in blobs))


def _v1_layer(name: str, type_enum: int, blobs: list[bytes]) -> bytes:
  body = _field(4, name.encode()) + _varint_field(5, type_enum)
  return _field(2, body + b"".join(_field(6, b) for b in blobs))


def test_parses_v2_v1_packed_unpacked_and_legacy_blobs(tmp_path):
  rng = np.random.default_rng(0)
  w1 = rng.standard_normal((4, 2, 3, 3)).astype(np.float32)
  b1 = rng.standard_normal(4).astype(np.float32)
  w2 = rng.standard_normal((3, 5)).astype(np.float32)
  net = (_field(1, b"toy")
         + _layer("data", "Input", [])
         + _layer("conv", "Convolution", [_blob(w1), _blob(b1, packed=False)])
         + _v1_layer("fc", 14, [_blob(w2, legacy=True)]))
  path = tmp_path / "toy.caffemodel"
  path.write_bytes(net)
  layers = caffe.read_caffemodel(path)
  assert [(l.name, l.type) for l in layers] == [
      ("data", "Input"), ("conv", "Convolution"), ("fc", "InnerProduct")]
  np.testing.assert_array_equal(layers[1].blobs[0], w1)
  np.testing.assert_array_equal(layers[1].blobs[1], b1)
  assert layers[2].blobs[0].shape == (1, 1, 3, 5)  # Legacy blobs are always 4-D.
  np.testing.assert_array_equal(layers[2].blobs[0].reshape(3, 5), w2)
  assert list(caffe.caffe_weights(path)) == ["conv", "fc"]


@pytest.mark.parametrize("payload", [b"", b"\x0a\xff\x01ab", b"\x0f\x00", b"\xff" * 12])
def test_garbage_is_a_clear_value_error(tmp_path, payload):
  path = tmp_path / "bad.caffemodel"
  path.write_bytes(payload)
  with pytest.raises(ValueError, match="bad.caffemodel"):
    caffe.read_caffemodel(path)


def test_missing_file_is_os_error(tmp_path):
  with pytest.raises(OSError):
    caffe.read_caffemodel(tmp_path / "absent.caffemodel")


def _numpy_caffe_conv(x, w, b, pad, group):
  """Caffe convolution, NCHW single image: x (C, H, W), w (O, C/g, k, k), stride 1."""
  c, h, width = x.shape
  out_channels, _, k, _ = w.shape
  xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
  oh, ow = h + 2 * pad - k + 1, width + 2 * pad - k + 1
  y = np.zeros((out_channels, oh, ow))
  cin_g, cout_g = c // group, out_channels // group
  for o in range(out_channels):
    g = o // cout_g
    for ci in range(cin_g):
      for dy in range(k):
        for dx in range(k):
          y[o] += w[o, ci, dy, dx] * xp[g * cin_g + ci, dy:dy + oh, dx:dx + ow]
  return y + b[:, None, None]


def _numpy_caffe_deconv(x, w, b, stride, pad):
  """Caffe Deconvolution (group 1): w (C_in, C_out, k, k); x[i] * w[k] lands at i*s + k - pad."""
  c_in, h, width = x.shape
  _, c_out, k, _ = w.shape
  full = np.zeros((c_out, (h - 1) * stride + k, (width - 1) * stride + k))
  for ci in range(c_in):
    for i in range(h):
      for j in range(width):
        full[:, i * stride:i * stride + k, j * stride:j * stride + k] += x[ci, i, j] * w[ci]
  out_h, out_w = full.shape[1] - 2 * pad, full.shape[2] - 2 * pad
  return full[:, pad:pad + out_h, pad:pad + out_w] + b[:, None, None]


def test_imported_conv_grouped_conv_and_deconv_match_caffe_numerics(tmp_path):
  """Kernel layout and deconvolution convention, against a direct NumPy Caffe forward."""
  rng = np.random.default_rng(1)
  k, stride, pad = 5, 2, 2
  w_conv = rng.standard_normal((8, 2, 3, 3)).astype(np.float32)
  b_conv = rng.standard_normal(8).astype(np.float32)
  w_group = rng.standard_normal((4, 4, 3, 3)).astype(np.float32)  # group=2: 8 -> 4.
  b_group = rng.standard_normal(4).astype(np.float32)
  w_deconv = rng.standard_normal((4, 1, k, k)).astype(np.float32)  # (in, out, kh, kw)
  b_deconv = rng.standard_normal(1).astype(np.float32)
  net = (_layer("conv_a", "Convolution", [_blob(w_conv), _blob(b_conv, legacy=True)])
         + _layer("conv_b", "Convolution", [_blob(w_group), _blob(b_group)])
         + _layer("up", "Deconvolution", [_blob(w_deconv), _blob(b_deconv)]))
  path = tmp_path / "net.caffemodel"
  path.write_bytes(net)

  inputs = keras.Input((None, None, 2))
  x = keras.layers.Conv2D(8, 3, padding="same", name="conv_a")(inputs)
  x = keras.layers.Conv2D(4, 3, padding="same", groups=2, name="conv_b")(x)
  x = keras.layers.Conv2DTranspose(1, k, strides=stride, padding="valid", name="up")(x)
  model = keras.Model(inputs, x)
  assigned = caffe.load_caffemodel(model, path)
  assert len(assigned) == 6

  image = rng.standard_normal((2, 6, 7)).astype(np.float32)  # CHW
  ref = _numpy_caffe_conv(image, w_conv, b_conv, pad=1, group=1)
  ref = _numpy_caffe_conv(ref, w_group, b_group, pad=1, group=2)
  ref = _numpy_caffe_deconv(ref, w_deconv, b_deconv, stride, pad)
  out = model.predict(image.transpose(1, 2, 0)[None], verbose=0)[0]
  # Keras' "valid" transposed conv is Caffe's deconvolution before it drops `pad` per side.
  out = out[pad:out.shape[0] - pad, pad:out.shape[1] - pad].transpose(2, 0, 1)
  assert out.shape == ref.shape == (1, (6 - 1) * stride + k - 2 * pad, (7 - 1) * stride + k - 2 * pad)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)


def test_mismatch_lists_missing_unexpected_and_misshaped(tmp_path):
  rng = np.random.default_rng(2)
  net = (_layer("conv_a", "Convolution", [_blob(rng.standard_normal((8, 2, 3, 3))),
                                          _blob(np.zeros(8))])
         + _layer("extra", "Convolution", [_blob(np.zeros((1, 1, 1, 1))), _blob(np.zeros(1))]))
  path = tmp_path / "net.caffemodel"
  path.write_bytes(net)
  inputs = keras.Input((None, None, 2))
  x = keras.layers.Conv2D(4, 3, name="conv_a")(inputs)
  x = keras.layers.Conv2D(1, 1, name="other")(x)
  model = keras.Model(inputs, x)
  before = [v.numpy().copy() for v in model.weights]
  with pytest.raises(mapping.WeightMismatchError) as info:
    caffe.load_caffemodel(model, path)
  message = str(info.value)
  assert "other/kernel" in message and "other/bias" in message  # missing
  assert "extra/0" in message and "extra/1" in message  # unexpected
  assert "conv_a/kernel model (3, 3, 2, 4) vs source (3, 3, 2, 8)" in message
  assert "conv_a/bias" in message
  for variable, value in zip(model.weights, before):  # Nothing half-assigned.
    np.testing.assert_array_equal(variable.numpy(), value)


def _prototxt_layers(path: pathlib.Path) -> dict[str, str]:
  text = path.read_text().replace("\r", "\n")
  pairs = re.findall(r'layer\s*\{\s*name:\s*"([^"]+)"\s*type:\s*"([^"]+)"', text)
  return dict(pairs)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_real_idn_caffemodels_parse_with_prototxt_names(scale):
  model_path = IDN_CAFFE_DIR / f"IDN_x{scale}.caffemodel"
  if not model_path.exists():
    pytest.skip(f"{model_path} not available")
  layers = caffe.caffe_weights(model_path)
  assert sum(b.size for l in layers.values() for b in l.blobs) == 552_769
  deploy = _prototxt_layers(IDN_CAFFE_DIR / f"IDN_x{scale}_deploy.prototxt")
  with_weights = {n for n, t in deploy.items() if t in ("Convolution", "Deconvolution")}
  assert set(layers) == with_weights
  assert layers["upsample"].type == "Deconvolution"
  assert layers["upsample"].blobs[0].shape == (64, 1, 17, 17)
  assert layers["conv3_2"].blobs[0].shape == (32, 12, 3, 3)  # group 4: 48 / 4 inputs.
  assert np.all(np.isfinite(layers["conv1"].blobs[0]))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_recorded_geometry_of_the_real_idn_caffemodels(scale):
  path = paths.data_root() / "weights" / "idn_caffe" / f"IDN_x{scale}.caffemodel"
  if not path.exists():
    pytest.skip("shared weights not available")
  assert caffe.recorded_geometry(caffe.caffe_weights(path)) == {"scale": scale, "channels": 1}
