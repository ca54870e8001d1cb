"""Reads Caffe `.caffemodel` files with a minimal protobuf wire-format decoder.

No dependency on Caffe or on generated protobuf code: a `.caffemodel` is a
serialized `caffe.NetParameter`, and only a handful of its fields matter for
importing weights. Field numbers follow `caffe.proto` (BVLC Caffe, 2017):

  NetParameter:    name = 1, layers (V1LayerParameter) = 2, layer (LayerParameter) = 100
  LayerParameter:  name = 1, type = 2 (string), blobs = 7
  V1LayerParameter: name = 4, type = 5 (enum), blobs = 6
  BlobProto:       num = 1, channels = 2, height = 3, width = 4 (legacy 4-D shape),
                   data = 5 (packed float), shape = 7 (BlobShape), double_data = 8
  BlobShape:       dim = 1 (packed int64)

Blobs keep Caffe's layout: convolution weights are (out, in / group, kh, kw),
deconvolution weights are (in, out / group, kh, kw); biases are (out,).
"""

import dataclasses
import os
import struct
from typing import Iterator

import numpy as np

from mlsr_tf.weights import mapping

# Wire types of the protobuf encoding.
_VARINT = 0
_FIXED64 = 1
_LENGTH_DELIMITED = 2
_FIXED32 = 5

# V1LayerParameter.LayerType values that carry weights (subset; others map to "V1:<n>").
_V1_LAYER_TYPES = {4: "Convolution", 39: "Deconvolution", 14: "InnerProduct"}


@dataclasses.dataclass
class CaffeLayer:
  """One layer of a Caffe net: its name, type string and weight blobs (Caffe layout)."""
  name: str
  type: str
  blobs: list[np.ndarray]
  stride: int | None = None  # convolution_param's stride, where the file records one.


def _read_varint(buffer: bytes, pos: int) -> tuple[int, int]:
  result = 0
  shift = 0
  while True:
    if pos >= len(buffer):
      raise ValueError(f"truncated varint at byte {pos}")
    byte = buffer[pos]
    pos += 1
    result |= (byte & 0x7F) << shift
    if not byte & 0x80:
      return result, pos
    shift += 7
    if shift > 63:
      raise ValueError(f"varint longer than 10 bytes at byte {pos}")


def iter_fields(buffer: bytes) -> Iterator[tuple[int, int, object]]:
  """Yields (field_number, wire_type, value) for each field of a serialized message.

  `value` is an int for varint/fixed fields and a `bytes` slice for
  length-delimited ones (sub-messages, strings, packed arrays).

  Raises:
    ValueError: on malformed input (truncation, unknown wire type).
  """
  pos = 0
  end = len(buffer)
  while pos < end:
    key, pos = _read_varint(buffer, pos)
    field, wire_type = key >> 3, key & 7
    if wire_type == _VARINT:
      value, pos = _read_varint(buffer, pos)
    elif wire_type == _FIXED64:
      value = buffer[pos:pos + 8]
      pos += 8
    elif wire_type == _LENGTH_DELIMITED:
      length, pos = _read_varint(buffer, pos)
      value = buffer[pos:pos + length]
      pos += length
    elif wire_type == _FIXED32:
      value = buffer[pos:pos + 4]
      pos += 4
    else:
      raise ValueError(f"unsupported protobuf wire type {wire_type} (field {field}) at byte {pos}")
    if pos > end:
      raise ValueError(f"field {field} runs past the end of the message ({pos} > {end})")
    yield field, wire_type, value


def _packed_or_single(values: list, wire_type: int, value, dtype: str, scalar_fmt: str) -> None:
  """Appends a repeated numeric field that may be packed or not (both are legal)."""
  if wire_type == _LENGTH_DELIMITED:
    values.extend(np.frombuffer(value, dtype=dtype).tolist() if dtype != "varint"
                  else _unpack_varints(value))
  elif wire_type in (_FIXED32, _FIXED64):
    values.append(struct.unpack(scalar_fmt, value)[0])
  else:
    values.append(value)


def _unpack_varints(buffer: bytes) -> list[int]:
  values = []
  pos = 0
  while pos < len(buffer):
    value, pos = _read_varint(buffer, pos)
    values.append(value)
  return values


def parse_blob(buffer: bytes) -> np.ndarray:
  """Decodes a BlobProto into a float32 array of its declared shape."""
  legacy_dims = {}
  shape = None
  data: list = []
  double_data: list = []
  for field, wire_type, value in iter_fields(buffer):
    if field in (1, 2, 3, 4) and wire_type == _VARINT:
      legacy_dims[field] = value
    elif field == 5:
      _packed_or_single(data, wire_type, value, "<f4", "<f")
    elif field == 8:
      _packed_or_single(double_data, wire_type, value, "<f8", "<d")
    elif field == 7:
      shape = []
      for dim_field, dim_wire, dim_value in iter_fields(value):
        if dim_field == 1:
          _packed_or_single(shape, dim_wire, dim_value, "varint", "")
  if shape is None:
    shape = [legacy_dims.get(f, 1) for f in (1, 2, 3, 4)]
  values = np.asarray(data if data else double_data, dtype=np.float32)
  if values.size != int(np.prod(shape)):
    raise ValueError(f"blob has {values.size} values but its shape is {shape}")
  return values.reshape(shape)


def _parse_stride(buffer: bytes) -> int | None:
  """ConvolutionParameter's stride (field 6, or stride_h = 13), None if absent."""
  strides: list = []
  for field, wire_type, value in iter_fields(buffer):
    if field in (6, 13):
      _packed_or_single(strides, wire_type, value, "varint", "")
  return int(strides[0]) if strides else None


def _parse_layer(buffer: bytes, v1: bool) -> CaffeLayer:
  name_field, type_field, blobs_field = (4, 5, 6) if v1 else (1, 2, 7)
  convolution_field = 10 if v1 else 106
  name, layer_type, blobs, stride = "", "", [], None
  for field, wire_type, value in iter_fields(buffer):
    if field == name_field and wire_type == _LENGTH_DELIMITED:
      name = value.decode("utf-8")
    elif field == type_field:
      if v1:
        layer_type = _V1_LAYER_TYPES.get(value, f"V1:{value}")
      else:
        layer_type = value.decode("utf-8")
    elif field == blobs_field:
      blobs.append(parse_blob(value))
    elif field == convolution_field and wire_type == _LENGTH_DELIMITED:
      stride = _parse_stride(value)
  return CaffeLayer(name=name, type=layer_type, blobs=blobs, stride=stride)


def parse_net(buffer: bytes) -> list[CaffeLayer]:
  """Decodes a serialized NetParameter into its layers (V2 `layer` and V1 `layers`)."""
  layers = []
  for field, wire_type, value in iter_fields(buffer):
    if wire_type != _LENGTH_DELIMITED:
      continue
    if field == 100:
      layers.append(_parse_layer(value, v1=False))
    elif field == 2:
      layers.append(_parse_layer(value, v1=True))
  return layers


def read_caffemodel(path: str | os.PathLike) -> list[CaffeLayer]:
  """Reads a `.caffemodel` file; returns its layers in file order (with and without blobs).

  Raises:
    OSError: if the file cannot be read.
    ValueError: if it is not a valid serialized NetParameter, or has no layers.
  """
  with open(path, "rb") as f:
    buffer = f.read()
  try:
    layers = parse_net(buffer)
  except (ValueError, IndexError, struct.error, UnicodeDecodeError) as e:
    raise ValueError(f"{os.fspath(path)!r} is not a readable .caffemodel: {e}") from e
  if not layers:
    raise ValueError(f"{os.fspath(path)!r} is not a readable .caffemodel: no layers found")
  return layers


def caffe_weights(path: str | os.PathLike) -> dict[str, CaffeLayer]:
  """Returns {layer name: CaffeLayer} for the layers of a `.caffemodel` that carry blobs."""
  return {layer.name: layer for layer in read_caffemodel(path) if layer.blobs}


def recorded_geometry(layers: dict[str, CaffeLayer]) -> dict:
  """What a net's weights say about the network: ``{"scale": s, "channels": c}`` (or less).

  The scale is the stride of the (one) Deconvolution layer, the upsampler of IDN-Caffe and
  similar nets; the channels are the input channels of the first convolution.
  """
  result = {}
  strides = {layer.stride for layer in layers.values()
             if layer.type == "Deconvolution" and layer.stride}
  if len(strides) == 1:
    result["scale"] = strides.pop()
  first = next((layer for layer in layers.values()
                if layer.type == "Convolution" and layer.blobs and layer.blobs[0].ndim == 4),
               None)
  if first is not None:
    result["channels"] = int(first.blobs[0].shape[1])
  return result


# Caffe blobs -> Keras: convolution (out, in/g, kh, kw) -> (kh, kw, in/g, out) and
# deconvolution (in, out/g, kh, kw) -> (kh, kw, out/g, in), i.e. Conv2DTranspose's
# kernel; both are the same permutation. Neither is flipped: Caffe's deconvolution
# scatters x[i] * w[k] to output i * stride + k - pad, as tf.nn.conv2d_transpose does.
_KERNEL_PERMUTATIONS = {4: (2, 3, 1, 0), 2: (1, 0)}


def caffe_name_map(layers: dict[str, CaffeLayer]) -> mapping.NameMap:
  """Name map from Caffe layers to Keras layers of the same names.

  Source names are `<layer>/<blob index>`: blob 0 is `<layer>/kernel`, blob 1
  (if any) `<layer>/bias`.
  """
  weights = {}
  for name, layer in layers.items():
    kernel = layer.blobs[0]
    permutation = _KERNEL_PERMUTATIONS.get(kernel.ndim)
    weights[f"{name}/kernel"] = mapping.WeightSpec(
        source=f"{name}/0", transpose=permutation)
    if len(layer.blobs) > 1:
      weights[f"{name}/bias"] = mapping.WeightSpec(source=f"{name}/1")
  return mapping.NameMap(weights=weights, description="Caffe layer names")


def caffe_tensors(layers: dict[str, CaffeLayer]) -> dict[str, np.ndarray]:
  """Flattens layers into {`<layer>/<blob index>`: blob}; bias blobs are made 1-D."""
  tensors = {}
  for name, layer in layers.items():
    for index, blob in enumerate(layer.blobs):
      # Old Caffe stores biases as (1, 1, 1, n) legacy 4-D blobs.
      tensors[f"{name}/{index}"] = blob.reshape(-1) if index == 1 else blob
  return tensors


def load_caffemodel(model, path: str | os.PathLike) -> list[str]:
  """Loads a `.caffemodel` into a Keras model whose layers carry the Caffe layer names.

  Raises:
    WeightMismatchError: listing missing, unexpected and mis-shaped names.
    ValueError / OSError: unreadable file.
  """
  layers = caffe_weights(path)
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  keras_h5.check_geometry(model, recorded_geometry(layers), path, "Caffe weights")
  tensors = caffe_tensors(layers)
  return mapping.apply_name_map(
      model, caffe_name_map(layers), {k: v.shape for k, v in tensors.items()},
      tensors.__getitem__, context=os.fspath(path))
