"""Tests of the SavedModel export (tools/export_savedmodel.py, mlsr_tf.serving.export), tiny model."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from mlsr_tf.serving import export
from mlsr_tf import paths
from mlsr_tf.data import degradation as deg
from mlsr_tf.meta import adaptation
from mlsr_tf.models import registry

REPO = paths.REPO_ROOT
STEPS, RATE = 3, 0.1


def _run(args, **kwargs):
  return subprocess.run(args, capture_output=True, text=True, cwd=str(REPO), timeout=240,
                        **kwargs)


@pytest.fixture(name="exported", scope="module")
def fixture_exported(tmp_path_factory):
  """(model, export dir): a tiny model exported by the tool, from a spec JSON."""
  work = tmp_path_factory.mktemp("export")
  model = registry.build_model("tiny", scale=2)
  model.save_weights(str(work / "tiny.weights.h5"))
  (work / "tiny.json").write_text(json.dumps(
      {"model": "tiny", "scale": 2, "channels": 3, "weights": "tiny.weights.h5"}))
  target = work / "mlsr" / "1"
  proc = _run([sys.executable, "tools/export_savedmodel.py", "--output", str(target),
               "--model", str(work / "tiny.json")])
  assert proc.returncode == 0, proc.stderr
  assert "wrote SavedModel" in proc.stdout
  # Exporting again would overwrite: refused, one line, exit 2.
  again = _run([sys.executable, "tools/export_savedmodel.py", "--output", str(target),
                "--model", str(work / "tiny.json")])
  assert again.returncode == 2 and "already exists" in again.stderr.splitlines()[-1]
  return model, target


@pytest.fixture(name="inputs", scope="module")
def fixture_inputs():
  rng = np.random.default_rng(0)
  lr = rng.random((1, 21, 26, 3)).astype(np.float32)  # Odd height.
  kernel = deg.gaussian_kernel(7, 1.2, 0.8, 0.3).astype(np.float32)
  return lr, kernel


@pytest.fixture(name="loaded", scope="module")
def fixture_loaded(exported):
  return tf.saved_model.load(str(exported[1]))


def _adapt(loaded, lr, steps, kernel=None):
  kernel = np.zeros((0, 0), np.float32) if kernel is None else kernel
  return loaded.signatures["adapt"](
      lr=tf.constant(lr), steps=tf.constant(steps, tf.int32),
      learning_rate=tf.constant(RATE, tf.float32), kernel=tf.constant(kernel))["sr"].numpy()


def _python_adapt(model, lr, degradation):
  """mlsr_tf.adapt (the Python path) on the same image."""
  return adaptation.adapt(model, lr[0], degradation, STEPS, RATE)


def test_signatures_named_and_dynamic(loaded):
  assert set(loaded.signatures) == set(export.SIGNATURES)
  _, adapt_inputs = loaded.signatures["adapt"].structured_input_signature
  assert sorted(adapt_inputs) == ["kernel", "learning_rate", "lr", "steps"]
  assert adapt_inputs["lr"].shape.as_list() == [1, None, None, 3]
  assert adapt_inputs["steps"].dtype == tf.int32 and adapt_inputs["kernel"].shape.rank == 2
  _, serve_inputs = loaded.signatures["serving_default"].structured_input_signature
  assert serve_inputs["lr"].shape.as_list() == [None, None, None, 3]
  assert list(loaded.signatures["adapt"].structured_outputs) == ["sr"]


def test_zero_steps_equals_serving_default(loaded, inputs):
  lr, _ = inputs
  served = loaded.signatures["serving_default"](lr=tf.constant(lr))["sr"].numpy()
  assert served.shape == (1, 42, 52, 3)
  np.testing.assert_array_equal(_adapt(loaded, lr, 0), served)


def test_adapt_equals_python_adapt(exported, loaded, inputs):
  model, _ = exported
  lr, kernel = inputs
  bicubic = _adapt(loaded, lr, STEPS)
  np.testing.assert_allclose(bicubic[0], _python_adapt(model, lr, deg.bicubic(2)), atol=1e-4)
  blurred = _adapt(loaded, lr, STEPS, kernel)
  np.testing.assert_allclose(blurred[0], _python_adapt(model, lr, deg.from_kernel(kernel, 2)),
                             atol=1e-4)
  assert np.abs(bicubic - _adapt(loaded, lr, 0)).max() > 1e-3  # Steps did something.
  assert np.abs(bicubic - blurred).max() > 1e-5  # The kernel is used.
  even = lr[:, :20]  # And on an even size.
  np.testing.assert_allclose(_adapt(loaded, even, STEPS)[0],
                             _python_adapt(model, even, deg.bicubic(2)), atol=1e-4)


def test_no_hidden_state(loaded, inputs):
  lr, _ = inputs
  variables = [v.numpy().copy() for v in loaded.variables]
  first = _adapt(loaded, lr, STEPS)
  np.testing.assert_array_equal(_adapt(loaded, lr, STEPS), first)
  for variable, value in zip(loaded.variables, variables):
    np.testing.assert_array_equal(variable.numpy(), value)


def test_bad_request_values_fail(loaded, inputs):
  lr, _ = inputs
  with pytest.raises(tf.errors.InvalidArgumentError, match="steps must be >= 0"):
    _adapt(loaded, lr, -1)
  with pytest.raises(tf.errors.InvalidArgumentError, match="positive sum"):
    _adapt(loaded, lr, 1, np.zeros((3, 3), np.float32))
  negative = np.full((3, 3), -0.1, np.float32)
  negative[1, 1] = 2.0
  for kernel in (negative, np.full((3, 3), np.nan, np.float32)):
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite and non-negative"):
      _adapt(loaded, lr, 1, kernel)
  with pytest.raises(tf.errors.InvalidArgumentError, match="at most the image size"):
    _adapt(loaded, lr, 1, np.ones((23, 3), np.float32))  # lr is 21 x 26.
  with pytest.raises((ValueError, TypeError, tf.errors.InvalidArgumentError)):
    _adapt(loaded, np.concatenate([lr, lr]), 1)  # adapt takes [1, H, W, C].


def test_no_python_ops_in_graph(exported):
  from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=g-import-not-at-top
  proto = saved_model_pb2.SavedModel()
  proto.ParseFromString((exported[1] / "saved_model.pb").read_bytes())
  ops = set()
  for meta_graph in proto.meta_graphs:
    ops.update(node.op for node in meta_graph.graph_def.node)
    for function in meta_graph.graph_def.library.function:
      ops.update(node.op for node in function.node_def)
  assert not ops & {"PyFunc", "EagerPyFunc", "PyFuncStateless"}, ops
  assert ops & {"While", "StatelessWhile"}  # The SGD loop is in the graph.


_FRESH_PROCESS = textwrap.dedent("""
    import sys
    import numpy as np
    import tensorflow as tf
    path, work = sys.argv[1], sys.argv[2]
    feeds = {name: np.load(f"{work}/{name}.npy")
             for name in ("lr", "steps", "learning_rate", "kernel")}
    # TF2 loader.
    loaded = tf.saved_model.load(path)
    np.save(f"{work}/tf2_serve.npy", loaded.signatures["serving_default"](
        lr=tf.constant(feeds["lr"]))["sr"].numpy())
    np.save(f"{work}/tf2_adapt.npy", loaded.signatures["adapt"](
        **{k: tf.constant(v) for k, v in feeds.items()})["sr"].numpy())
    # TF1 session loader (what TF Serving's C++ loader does).
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
      meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
      for name in ("serving_default", "adapt"):
        signature = meta.signature_def[name]
        feed = {signature.inputs[k].name: feeds[k] for k in signature.inputs}
        out = session.run(signature.outputs["sr"].name, feed_dict=feed)
        np.save(f"{work}/tf1_{name}.npy", out)
    """)


def _write_feeds(work, lr, steps, kernel):
  np.save(work / "lr.npy", lr)
  np.save(work / "steps.npy", np.int32(steps))
  np.save(work / "learning_rate.npy", np.float32(RATE))
  np.save(work / "kernel.npy", kernel)


@pytest.mark.slow
def test_fresh_process_tf2_and_tf1_loaders(exported, loaded, inputs, tmp_path):
  lr, kernel = inputs
  _write_feeds(tmp_path, lr, STEPS, kernel)
  proc = _run([sys.executable, "-c", _FRESH_PROCESS, str(exported[1]), str(tmp_path)])
  assert proc.returncode == 0, proc.stderr[-3000:]
  served = loaded.signatures["serving_default"](lr=tf.constant(lr))["sr"].numpy()
  adapted = _adapt(loaded, lr, STEPS, kernel)
  np.testing.assert_allclose(np.load(tmp_path / "tf2_serve.npy"), served, atol=1e-6)
  np.testing.assert_allclose(np.load(tmp_path / "tf1_serving_default.npy"), served, atol=1e-6)
  np.testing.assert_allclose(np.load(tmp_path / "tf2_adapt.npy"), adapted, atol=1e-5)
  np.testing.assert_allclose(np.load(tmp_path / "tf1_adapt.npy"), adapted, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("saved_model_cli") is None, reason="no saved_model_cli")
def test_saved_model_cli_runs_both_signatures(exported, loaded, inputs, tmp_path):
  lr, _ = inputs
  _write_feeds(tmp_path, lr, STEPS, np.zeros((0, 0), np.float32))
  expected = {"serving_default": loaded.signatures["serving_default"](
      lr=tf.constant(lr))["sr"].numpy(), "adapt": _adapt(loaded, lr, STEPS)}
  for name, feeds in (("serving_default", ["lr"]),
                      ("adapt", ["lr", "steps", "learning_rate", "kernel"])):
    outdir = tmp_path / name
    proc = _run(["saved_model_cli", "run", "--dir", str(exported[1]), "--tag_set", "serve",
                 "--signature_def", name, "--outdir", str(outdir), "--inputs",
                 ";".join(f"{k}={tmp_path / k}.npy" for k in feeds)],
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    np.testing.assert_allclose(np.load(outdir / "sr.npy"), expected[name], atol=1e-5)


def test_uint8_export(tmp_path, inputs):
  model = registry.build_model("tiny", scale=2)
  path = export.export_savedmodel(model, tmp_path / "u8", 2, input_dtype="uint8")
  loaded = tf.saved_model.load(path)
  lr8 = np.round(inputs[0] * 255).astype(np.uint8)
  sr8 = loaded.signatures["serving_default"](lr=tf.constant(lr8))["sr"].numpy()
  assert sr8.dtype == np.uint8
  expected = np.clip(model(lr8.astype(np.float32) / 255.0).numpy(), 0, 1) * 255
  assert np.abs(sr8.astype(np.float64) - expected).max() <= 0.5 + 1e-3
  assert loaded.signatures["adapt"](
      lr=tf.constant(lr8), steps=tf.constant(1), learning_rate=tf.constant(RATE),
      kernel=tf.zeros([0, 0]))["sr"].dtype == tf.uint8
  with pytest.raises(ValueError, match="'int16'"):
    export.export_savedmodel(model, tmp_path / "bad", 2, input_dtype="int16")
  with pytest.raises(ValueError, match="already exists"):
    export.export_savedmodel(model, tmp_path / "u8", 2)


def test_benchmark_savedmodel_row(tmp_path):
  model = registry.build_model("tiny", scale=2)
  model.save_weights(str(tmp_path / "tiny.weights.h5"))
  rows = export.benchmark(export.BenchConfig(
      model="tiny", weights=str(tmp_path / "tiny.weights.h5"), sizes=(), skip_cli=True,
      compare_size=24, compare_steps=2, workdir=str(tmp_path / "work")), log=lambda row: None)
  assert rows[-1]["what"] == "savedmodel_vs_python"
  assert rows[-1]["max_abs_difference"] < 1e-4 and rows[-1]["savedmodel_seconds"] > 0


def test_adapt_learned_signature_uses_the_learned_step_sizes(tmp_path, inputs):
  """A model with learned step sizes exports ``adapt_learned``; step i uses row
  min(i, k - 1), as mlsr_tf.meta.adaptation does."""
  model = registry.build_model("tiny", scale=2)
  count = len(model.trainable_variables)
  learned = np.full((2, count), 0.05, np.float32)
  learned[1, :] = 0.2
  target = export.export_savedmodel(model, tmp_path / "m" / "1", 2, step_sizes=learned)
  loaded = tf.saved_model.load(target)
  assert set(loaded.signatures) == set(export.SIGNATURES) | {export.LEARNED_SIGNATURE}
  assert set(export.signature_names(learned)) == set(loaded.signatures)  # What the tool prints.
  assert export.signature_names(None) == export.SIGNATURES
  lr, _ = inputs
  served = loaded.signatures["adapt_learned"](
      lr=tf.constant(lr), steps=tf.constant(3, tf.int32),
      kernel=tf.zeros((0, 0), tf.float32))["sr"].numpy()
  expected = adaptation.adapt(model, lr[0], deg.bicubic(2), 3, learned)
  np.testing.assert_allclose(served[0], expected, atol=1e-4)
  uniform = adaptation.adapt(model, lr[0], deg.bicubic(2), 3, 0.05)
  assert np.abs(expected - uniform).max() > 1e-4  # The rows differ in effect.


def test_adapt_learned_chooses_banded_step_sizes_by_the_request_kernel(tmp_path, inputs):
  """Step sizes banded by kernel width: the signature computes the kernel's width in the
  graph and uses the band's matrix, as the library does (bicubic: the base matrix)."""
  import keras  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import step_sizes  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)  # A fixed tiny network (an unlucky one diverges at 0.3).
  model = registry.build_model("tiny", scale=2)
  count = len(model.trainable_variables)
  step_sizes.save(tmp_path / "b.json", model, np.full((2, count), 0.05), bands=[
      (1.35, np.full((1, count), 0.3))])
  banded = step_sizes.load(tmp_path / "b.json", model)
  target = export.export_savedmodel(model, tmp_path / "m" / "1", 2, step_sizes=banded)
  loaded = tf.saved_model.load(target)
  assert export.LEARNED_SIGNATURE in loaded.signatures
  lr, _ = inputs
  narrow, wide = deg.gaussian_kernel(7, 1.0), deg.gaussian_kernel(13, 2.0)
  for kernel, degradation, matrix in [
      (np.zeros((0, 0)), deg.bicubic(2), banded.base),
      (narrow, deg.from_kernel(narrow, 2), banded.base),
      (wide, deg.from_kernel(wide, 2), banded.bands[0][1])]:
    served = loaded.signatures["adapt_learned"](
        lr=tf.constant(lr), steps=tf.constant(3, tf.int32),
        kernel=tf.constant(kernel, tf.float32))["sr"].numpy()
    np.testing.assert_allclose(served[0], adaptation.adapt(model, lr[0], degradation, 3, matrix),
                               atol=1e-4)
  wide_degradation = deg.from_kernel(wide, 2)
  assert np.abs(adaptation.adapt(model, lr[0], wide_degradation, 3, banded.base)
                - adaptation.adapt(model, lr[0], wide_degradation, 3,
                                   banded.bands[0][1])).max() > 1e-3


def test_kill_during_export_leaves_staging_that_the_next_export_removes(exported, tmp_path):
  """SIGKILL after the SavedModel is written but before its rename into place."""
  import fault_injection  # pylint: disable=g-import-not-at-top
  spec = exported[1].parent.parent / "tiny.json"
  config = export.ExportConfig(output=str(tmp_path / "mlsr" / "1"), model=str(spec))
  fault_injection.run_until_killed("model:1", "mlsr_tf.serving.export", "ExportConfig", config)
  staged = list((tmp_path / "mlsr").iterdir())
  assert [p.name.startswith(".1.") for p in staged] == [True]  # Only a staging directory.
  live = tmp_path / "mlsr" / f".1.{os.getpid()}.keepme"  # A live writer's: kept.
  live.mkdir()
  assert export.run(config) == (str(tmp_path / "mlsr" / "1"), export.SIGNATURES)
  assert sorted(p.name for p in (tmp_path / "mlsr").iterdir()) == [live.name, "1"]
  assert tf.saved_model.load(str(tmp_path / "mlsr" / "1")).signatures["adapt"] is not None


def test_export_bad_inputs_write_nothing(exported, tmp_path):
  spec = exported[1].parent.parent / "tiny.json"
  (tmp_path / "file").write_text("x")
  (tmp_path / "bad.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\ncut")
  cases = [
      (dict(output=str(exported[1]), model=str(spec)), "already exists"),
      (dict(output=str(tmp_path / "out" / "1"), model="tiny",
            weights=str(tmp_path / "bad.weights.h5")), "bad.weights.h5"),
      (dict(output=str(tmp_path / "out" / "1"), model="tiny",
            weights=str(tmp_path / "missing.weights.h5")), "missing.weights.h5"),
      (dict(output=str(tmp_path / "out" / "1"), model=str(spec), input_dtype="int7"), "int7"),
      (dict(output=str(tmp_path / "out" / "1"), model=str(spec), scale=3), "conflicts"),
  ]
  for kwargs, pattern in cases:
    with pytest.raises(ValueError, match=pattern):
      export.run(export.ExportConfig(**kwargs))
  with pytest.raises(OSError):
    export.run(export.ExportConfig(output=str(tmp_path / "file" / "1"), model=str(spec)))
  assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.weights.h5", "file"]
