"""Tests of the TF Serving request builder and tools/serving_client.py (tiny exported model).

The REST server is emulated in-process: it decodes the columnar ``inputs`` exactly as TF
Serving does (each value to a tensor of the signature's dtype) and runs the SavedModel.
"""

import http.server
import json
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

from mlsr_tf.serving import export
from mlsr_tf import paths
from mlsr_tf.serving import rest_client
from mlsr_tf.data import degradation as deg
from mlsr_tf.data import image_io
from mlsr_tf.models import registry

REPO = paths.REPO_ROOT


@pytest.fixture(name="loaded", scope="module")
def fixture_loaded(tmp_path_factory):
  path = export.export_savedmodel(registry.build_model("tiny", scale=2),
                                  tmp_path_factory.mktemp("serving") / "mlsr" / "1", 2)
  return tf.saved_model.load(path)


def _feeds(loaded, request):
  """What TF Serving does with a columnar request: tensors of the signature's specs."""
  function = loaded.signatures[request["signature_name"]]
  _, specs = function.structured_input_signature
  assert sorted(request["inputs"]) == sorted(specs)
  feeds = {}
  for name, value in request["inputs"].items():
    tensor = tf.constant(np.asarray(value, dtype=specs[name].dtype.as_numpy_dtype))
    assert specs[name].shape.is_compatible_with(tensor.shape), (name, tensor.shape)
    feeds[name] = tensor
  return function, feeds


def _predict(loaded, request):
  function, feeds = _feeds(loaded, request)
  return function(**feeds)["sr"].numpy()


@pytest.fixture(name="image", scope="module")
def fixture_image():
  return np.random.default_rng(0).integers(0, 256, (12, 14, 3)).astype(np.uint8)


def test_serving_default_request(loaded, image):
  request = rest_client.build_predict_request(image)
  assert request["signature_name"] == "serving_default"
  json.dumps(request)  # Serialisable.
  sr = _predict(loaded, request)
  direct = loaded.signatures["serving_default"](
      lr=tf.constant(image[None].astype(np.float32) / 255.0))["sr"].numpy()
  np.testing.assert_allclose(sr, direct, atol=1e-6)


def test_adapt_request_bicubic_and_kernel(loaded, image, tmp_path):
  request = rest_client.build_predict_request(image, "adapt", steps=2, learning_rate=0.1)
  assert request["inputs"]["kernel"] == [[]]
  lr = tf.constant(image[None].astype(np.float32) / 255.0)
  direct = loaded.signatures["adapt"](lr=lr, steps=tf.constant(2), learning_rate=tf.constant(
      0.1), kernel=tf.zeros([0, 0]))["sr"].numpy()
  np.testing.assert_allclose(_predict(loaded, request), direct, atol=1e-6)
  kernel = deg.gaussian_kernel(5, 1.0, 0.6, 0.4)
  np.save(tmp_path / "k.npy", 3.0 * kernel)  # Normalised on the way.
  request = rest_client.build_predict_request(image, "adapt", steps=2, learning_rate=0.1,
                                          kernel=str(tmp_path / "k.npy"))
  np.testing.assert_allclose(request["inputs"]["kernel"], kernel, atol=1e-7)
  with_kernel = loaded.signatures["adapt"](lr=lr, steps=tf.constant(2), learning_rate=tf.constant(
      0.1), kernel=tf.constant(kernel, tf.float32))["sr"].numpy()
  np.testing.assert_allclose(_predict(loaded, request), with_kernel, atol=1e-6)
  assert np.abs(with_kernel - direct).max() > 1e-6


def test_uint8_request_values():
  image = np.array([[[0, 128, 255]]], np.uint8)
  assert rest_client.build_predict_request(image, input_dtype="uint8")["inputs"]["lr"] == [
      [[[0, 128, 255]]]]
  request = rest_client.build_predict_request(image.astype(np.uint16) * 257)
  np.testing.assert_allclose(request["inputs"]["lr"], [[[[0, 128 / 255, 1]]]], atol=1e-7)


@pytest.mark.parametrize("kwargs,pattern", [
    (dict(signature="adapt", learning_rate=0.1), "steps"),
    (dict(signature="adapt", steps=-2, learning_rate=0.1), "-2"),
    (dict(signature="adapt", steps=2, learning_rate=float("inf")), "inf"),
    (dict(steps=2), "serving_default"),
    (dict(signature="predict"), "'predict'"),
    (dict(input_dtype="int8"), "'int8'"),
    (dict(signature="adapt_learned", steps=2, learning_rate=0.1), "learned step sizes"),
    (dict(signature="adapt_learned"), "steps"),
])
def test_bad_requests(image, kwargs, pattern):
  with pytest.raises(ValueError, match=pattern):
    rest_client.build_predict_request(image, **kwargs)


def test_adapt_learned_request_has_no_learning_rate(image):
  request = rest_client.build_predict_request(image, "adapt_learned", steps=3)
  assert request["signature_name"] == "adapt_learned"
  assert sorted(request["inputs"]) == ["kernel", "lr", "steps"]


def test_parse_predict_response():
  body = {"outputs": [[[[0.0, 0.5, 1.2]]]]}
  np.testing.assert_array_equal(rest_client.parse_predict_response(body), [[[0, 128, 255]]])
  np.testing.assert_array_equal(
      rest_client.parse_predict_response({"outputs": {"sr": [[[[0, 128, 255]]]]}}, np.uint16),
      [[[0, 32896, 65535]]])
  with pytest.raises(ValueError, match="not a TF Serving"):
    rest_client.parse_predict_response({"error": "bad"})
  with pytest.raises(ValueError, match="shape"):
    rest_client.parse_predict_response({"outputs": [[0.5]]})


class _FakeServing(http.server.BaseHTTPRequestHandler):
  """POST /v1/models/mlsr:predict with a columnar body -> {"outputs": sr}."""
  loaded = None

  def do_POST(self):  # pylint: disable=invalid-name
    request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
    try:
      if self.path != "/v1/models/mlsr:predict":
        answer, code = {"error": f"Servable not found for request: {self.path}"}, 404
      else:
        answer, code = {"outputs": _predict(self.loaded, request).tolist()}, 200
    except (tf.errors.InvalidArgumentError, AssertionError, ValueError) as e:
      answer, code = {"error": str(e).splitlines()[0]}, 400
    data = json.dumps(answer).encode()
    self.send_response(code)
    self.send_header("Content-Type", "application/json")
    self.send_header("Content-Length", str(len(data)))
    self.end_headers()
    self.wfile.write(data)

  def log_message(self, *args):
    del args


def _client(*args):
  return subprocess.run([sys.executable, str(REPO / "tools" / "serving_client.py"), *args],
                        capture_output=True, text=True, cwd=str(REPO), timeout=120)


def test_client_tool_against_emulated_server(loaded, image, tmp_path):
  _FakeServing.loaded = loaded
  server = http.server.HTTPServer(("127.0.0.1", 0), _FakeServing)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()
  url = f"http://127.0.0.1:{server.server_port}/v1/models/mlsr:predict"
  try:
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 200, np.uint8)], -1)
    image_io.write_png(tmp_path / "lr.png", rgba)
    proc = _client("--input", str(tmp_path / "lr.png"), "--output", str(tmp_path / "sr.png"),
                   "--url", url, "--signature", "adapt", "--steps", "2", "--learning_rate",
                   "0.1")
    assert proc.returncode == 0, proc.stderr
    sr = image_io.read_image(tmp_path / "sr.png")
    assert sr.shape == (24, 28, 4) and np.all(sr[:, :, 3] == 200)
    expected = rest_client.parse_predict_response({"outputs": _predict(
        loaded, rest_client.build_predict_request(image, "adapt", 2, 0.1)).tolist()})
    np.testing.assert_array_equal(sr[:, :, :3], expected)
    # Server-side failure: one line, exit 2, no output.
    proc = _client("--input", str(tmp_path / "lr.png"), "--output", str(tmp_path / "x.png"),
                   "--url", url.replace("mlsr", "nomodel"))
    assert proc.returncode == 2 and "HTTP 404" in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "x.png").exists()
  finally:
    server.shutdown()
    server.server_close()
  proc = _client("--input", str(tmp_path / "lr.png"), "--output", str(tmp_path / "y.png"),
                 "--url", url, "--timeout", "5")  # Server gone.
  assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error: ")
  assert not (tmp_path / "y.png").exists()
