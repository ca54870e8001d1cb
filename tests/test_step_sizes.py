"""Tests of learned step sizes (mlsr_tf.meta.step_sizes) and their use in adaptation."""

import json

import numpy as np
import pytest

from mlsr_tf.data import degradation as degradation_lib
from mlsr_tf.meta import adaptation
from mlsr_tf.meta import step_sizes
from mlsr_tf.meta import testing
from mlsr_tf.serving import adapt_image


def _box_down(image, scale=2):
  h, w = image.shape[0] // scale, image.shape[1] // scale
  return image[:h * scale, :w * scale].reshape(h, scale, w, scale, -1).mean(axis=(1, 3))


@pytest.fixture(name="lr")
def fixture_lr():
  rng = np.random.default_rng(0)
  return rng.uniform(0, 1, (24, 24, 1)).astype(np.float32)


def test_constant_matrix_equals_scalar_alpha_and_rows_beyond_k_repeat(lr):
  model = testing.tiny_sr_net()
  count = len(model.trainable_variables)
  scalar = adaptation.adapt(model, lr, _box_down, steps=3, alpha=0.3)
  matrix = adaptation.adapt(model, lr, _box_down, steps=3, alpha=np.full((1, count), 0.3))
  np.testing.assert_allclose(matrix, scalar, rtol=1e-6, atol=1e-6)
  # Per-tensor sizes act per tensor: zero for every tensor but the last changes less.
  only_last = np.zeros((2, count))
  only_last[:, -1] = 0.3
  partial = adaptation.adapt(model, lr, _box_down, steps=3, alpha=only_last)
  plain = adaptation.adapt(model, lr, _box_down, steps=0, alpha=0.3)
  assert 0 < np.abs(partial - plain).max() < np.abs(scalar - plain).max() + 1e-6
  per_step = [np.asarray(a) for a in step_sizes.schedule(only_last, 3, count)]
  np.testing.assert_allclose(per_step[2], only_last[1], rtol=1e-6)  # Step 3: the last row.
  with pytest.raises(ValueError, match="adam"):
    adaptation.adapt(model, lr, _box_down, steps=1, alpha=only_last, optimizer="adam")


def test_save_load_round_trip_and_refusals(tmp_path):
  model = testing.tiny_sr_net()
  count = len(model.trainable_variables)
  matrix = np.linspace(0.1, 0.5, 2 * count).reshape(2, count)
  path = tmp_path / "s.step_sizes.json"
  step_sizes.save(path, model, matrix)
  np.testing.assert_allclose(step_sizes.load(path, model), matrix, rtol=1e-6)
  assert not list(tmp_path.glob("tmp-*"))
  data = json.loads(path.read_text())
  for mutate, pattern in [
      (lambda d: d.update(step_sizes=[[float("nan")] * count]), "finite"),
      (lambda d: d.update(step_sizes=[[-0.1] * count]), "finite and >= 0"),
      (lambda d: d.update(step_sizes=[[0.1] * (count - 1)]), r"do not fit"),
      (lambda d: d.update(variables=d["variables"][::-1]), "other variables"),
      (lambda d: d.update(format="x"), "not a mlsr_tf.step_sizes/1 file")]:
    bad = json.loads(json.dumps(data))
    mutate(bad)
    bad_path = tmp_path / "bad.json"
    bad_path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=pattern) as error:
      step_sizes.load(bad_path, model)
    assert "bad.json" in str(error.value)
  (tmp_path / "garbage.json").write_text("{not json")
  with pytest.raises(ValueError, match="garbage.json.*not readable"):
    step_sizes.load(tmp_path / "garbage.json", model)
  with pytest.raises(ValueError, match="missing.json.*does not exist"):
    step_sizes.load(tmp_path / "missing.json", model)


def test_spec_with_step_sizes_is_used_by_adapt_image_unless_alpha_given(tmp_path, lr):
  import keras  # pylint: disable=g-import-not-at-top
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)  # A fixed tiny network (an unlucky one can diverge).
  model = registry.build_model("tiny", scale=2, channels=1)
  model.save_weights(str(tmp_path / "tiny.weights.h5"))
  count = len(model.trainable_variables)
  learned = np.full((2, count), 0.0)
  learned[:, 0] = 0.3
  step_sizes.save(tmp_path / "tiny.step_sizes.json", model, learned)
  (tmp_path / "tiny.json").write_text(json.dumps(
      {"model": "tiny", "scale": 2, "channels": 1, "weights": "tiny.weights.h5",
       "adaptation": {"steps": 2, "alpha": 0.05, "step_sizes": "tiny.step_sizes.json"}}))
  loaded = adapt_image.load_inference_model(str(tmp_path / "tiny.json"))
  np.testing.assert_allclose(loaded.step_sizes, learned)
  image = (lr * 255).astype(np.uint8)
  degradation = degradation_lib.bicubic(2)
  with_learned = adapt_image.super_resolve(
      loaded.model, image, degradation,
      adapt_image.AdaptOptions(steps=2, alpha=0.05, step_sizes=loaded.step_sizes))
  expected = adaptation.adapt(loaded.model, image, degradation, 2, learned)
  np.testing.assert_allclose(with_learned[..., 0] / 255.0, expected[..., 0], atol=1 / 255 + 1e-6)
  plain = adapt_image.super_resolve(loaded.model, image, degradation,
                                    adapt_image.AdaptOptions(steps=2, alpha=0.05))
  assert np.abs(plain.astype(int) - with_learned.astype(int)).max() > 0
  # A spec whose step sizes do not fit its network is refused, naming the file.
  (tmp_path / "tiny.step_sizes.json").write_text(json.dumps(
      {"format": step_sizes.FORMAT, "variables": ["x"], "step_sizes": [[0.1]]}))
  with pytest.raises(ValueError, match="tiny.step_sizes.json"):
    adapt_image.load_inference_model(str(tmp_path / "tiny.json"))


def test_evaluate_upscaler_adapts_with_a_step_size_file(tmp_path, lr):
  """evaluate --step_sizes: the file's sizes replace --alpha (a constant file equals that
  alpha; another file gives another result); the idn-caffe protocol refuses them."""
  import keras  # pylint: disable=g-import-not-at-top
  from mlsr_tf.evaluation import evaluate as evaluate_lib  # pylint: disable=g-import-not-at-top
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)  # A fixed tiny network (an unlucky one can diverge).
  model = registry.build_model("tiny", scale=2)
  weights = tmp_path / "tiny.weights.h5"
  keras_h5.save(model, weights)
  count = len(model.trainable_variables)
  constant, varied = tmp_path / "c.step_sizes.json", tmp_path / "v.step_sizes.json"
  step_sizes.save(constant, model, np.full((2, count), 0.1))
  step_sizes.save(varied, model, np.linspace(0.0, 0.2, 2 * count).reshape(2, count))
  bicubic = degradation_lib.bicubic(2)

  def upscale(**options):
    config = evaluate_lib.EvalConfig(model="tiny", weights=str(weights), datasets=["Set5"],
                                     options=dict(adapt_steps=[3], **options))
    return adaptation.eval_upscaler_factory(config, bicubic)(lr, "x")["3"].astype(np.float64)
  by_alpha = upscale(alpha=0.1)
  np.testing.assert_array_equal(upscale(alpha=5.0, step_sizes=str(constant)), by_alpha)
  assert np.abs(upscale(alpha=0.1, step_sizes=str(varied)) - by_alpha).max() >= 1
  with pytest.raises(ValueError, match="step sizes"):
    evaluate_lib.run(evaluate_lib.EvalConfig(
        model="tiny", weights=str(weights), datasets=["Set5"], protocol="idn-caffe",
        options=dict(adapt_steps=[0, 1], step_sizes=str(constant))))


# ------------------------------------------------- step sizes banded by kernel width


def _banded_files(tmp_path, model):
  """(base file, wide-kernel file, banded file at min_kernel_sigma 1.35) for ``model``."""
  count = len(model.trainable_variables)
  base, wide = np.full((2, count), 0.2), np.full((1, count), 0.02)
  step_sizes.save(tmp_path / "base.json", model, base)
  step_sizes.save(tmp_path / "wide.json", model, wide)
  step_sizes.combine_files(tmp_path / "base.json", [(1.35, tmp_path / "wide.json")],
                           tmp_path / "banded.json")
  return base, wide, tmp_path / "banded.json"


def test_banded_file_chooses_its_matrix_by_the_kernels_width(tmp_path, lr):
  model = testing.tiny_sr_net()
  base, wide, banded_path = _banded_files(tmp_path, model)
  banded = step_sizes.load(banded_path, model)
  assert isinstance(banded, step_sizes.KernelSigmaBands)
  narrow_kernel = degradation_lib.gaussian_kernel(9, 1.0)  # kernel_sigma 1.0
  wide_kernel = degradation_lib.gaussian_kernel(13, 1.6, 1.2, 0.4)  # sqrt((1.6² + 1.2²) / 2)
  for degradation, expected in [(degradation_lib.bicubic(2), base),
                                (degradation_lib.from_kernel(narrow_kernel, 2), base),
                                (degradation_lib.from_kernel(wide_kernel, 2), wide)]:
    np.testing.assert_allclose(step_sizes.for_degradation(banded, degradation), expected,
                               rtol=1e-6)
    # Adaptation resolves the bands itself: the same result as the chosen matrix.
    np.testing.assert_array_equal(
        adaptation.adapt(model, lr, degradation, 3, banded),
        adaptation.adapt(model, lr, degradation, 3, expected))
    got = adaptation.adapt_at_steps(model, lr, degradation, [3], banded)[3]
    np.testing.assert_array_equal(got, adaptation.adapt(model, lr, degradation, 3, expected))
  # The two matrices differ in effect, so the tests above can tell them apart.
  wide_degradation = degradation_lib.from_kernel(wide_kernel, 2)
  assert np.abs(adaptation.adapt(model, lr, wide_degradation, 3, base)
                - adaptation.adapt(model, lr, wide_degradation, 3, wide)).max() > 1e-4
  # Unresolved bands are never applied silently.
  with pytest.raises(ValueError, match="for_degradation"):
    adaptation.adapt_parameters(model, lr[::2, ::2], lr, 1, banded)
  # A plain file still loads as its matrix (every earlier file).
  assert isinstance(step_sizes.load(tmp_path / "base.json", model), np.ndarray)


def test_banded_file_refusals_name_the_file_and_the_value(tmp_path):
  model = testing.tiny_sr_net()
  count = len(model.trainable_variables)
  _, _, banded_path = _banded_files(tmp_path, model)
  data = json.loads(banded_path.read_text())
  for mutate, pattern in [
      (lambda d: d.update(kernel_sigma_bands=[]), "non-empty list"),
      (lambda d: d.update(kernel_sigma_bands=[{"min_kernel_sigma": 1.0}]), "non-empty list"),
      (lambda d: d["kernel_sigma_bands"][0].update(min_kernel_sigma=-1), "got -1"),
      (lambda d: d["kernel_sigma_bands"][0].update(min_kernel_sigma="1.5"), "got '1.5'"),
      (lambda d: d["kernel_sigma_bands"].append(dict(d["kernel_sigma_bands"][0])),
       r"increase from band to band, got \[1.35, 1.35\]"),
      (lambda d: d["kernel_sigma_bands"][0].update(step_sizes=[[0.1] * (count + 1)]),
       "do not fit")]:
    bad = json.loads(json.dumps(data))
    mutate(bad)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=pattern) as error:
      step_sizes.load(tmp_path / "bad.json", model)
    assert "bad.json" in str(error.value)
  # combine_files: inputs must be plain files of one network; the output never overwrites one.
  with pytest.raises(ValueError, match="banded.json.*already has kernel_sigma_bands"):
    step_sizes.combine_files(banded_path, [(2.0, tmp_path / "wide.json")], tmp_path / "x.json")
  renamed = json.loads((tmp_path / "wide.json").read_text())
  renamed["variables"] = renamed["variables"][::-1]
  (tmp_path / "renamed.json").write_text(json.dumps(renamed))
  with pytest.raises(ValueError, match="renamed.json.*other variables"):
    step_sizes.combine_files(tmp_path / "base.json", [(2.0, tmp_path / "renamed.json")],
                             tmp_path / "x.json")
  with pytest.raises(ValueError, match="one of the input files"):
    step_sizes.combine_files(tmp_path / "base.json", [(2.0, tmp_path / "wide.json")],
                             tmp_path / "wide.json")
  with pytest.raises(ValueError, match=r"increase from band to band, got \[2.0, 1.0\]"):
    step_sizes.combine_files(tmp_path / "base.json", [(2.0, tmp_path / "wide.json"),
                                                      (1.0, tmp_path / "wide.json")],
                             tmp_path / "x.json")
  assert not (tmp_path / "x.json").exists() and not list(tmp_path.glob("tmp-*"))


def test_band_step_sizes_tool_writes_the_file_and_refuses_bad_bands(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from mlsr_tf import paths  # pylint: disable=g-import-not-at-top
  model = testing.tiny_sr_net()
  _banded_files(tmp_path, model)
  tool = os.path.join(str(paths.REPO_ROOT), "tools", "band_step_sizes.py")

  def run(*band_flags):
    return subprocess.run([sys.executable, tool, "--base", str(tmp_path / "base.json"),
                           "--output", str(tmp_path / "out.json"), *band_flags],
                          capture_output=True, text=True, timeout=120, check=False)
  for flags, value in [(["--band", "wide=" + str(tmp_path / "wide.json")], "'wide="),
                       (["--band", "1.5"], "'1.5'"),
                       (["--band", "0=" + str(tmp_path / "wide.json")], "got 0.0"),
                       ([], "at least one --band")]:
    done = run(*flags)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error:") and value in last, last
    assert not (tmp_path / "out.json").exists()
  done = run("--band", "1.35=" + str(tmp_path / "wide.json"))
  assert done.returncode == 0, done.stderr
  assert (tmp_path / "out.json").read_bytes() == (tmp_path / "banded.json").read_bytes()


def test_adapt_image_uses_the_band_of_its_kernel_and_step_sizes_flag_overrides(tmp_path):
  """A spec naming a banded file: adapt_image adapts a wide-kernel LR with the band's matrix
  and a narrow-kernel LR with the base; --step_sizes replaces the spec's file."""
  import io  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import image_io  # pylint: disable=g-import-not-at-top
  from mlsr_tf.data import synthetic  # pylint: disable=g-import-not-at-top
  from mlsr_tf.models import registry  # pylint: disable=g-import-not-at-top
  keras.utils.set_random_seed(0)
  model = registry.build_model("tiny", scale=2)
  model.save_weights(str(tmp_path / "tiny.weights.h5"))
  _banded_files(tmp_path, model)
  (tmp_path / "tiny.json").write_text(json.dumps(
      {"model": "tiny", "scale": 2, "channels": 3, "weights": "tiny.weights.h5",
       "adaptation": {"steps": 3, "alpha": 0.05, "step_sizes": "banded.json"}}))
  hr = synthetic.demo_image(64, 80)

  def sr_png(kernel_spec, step_sizes_file=None):
    lr_path = tmp_path / "lr.png"
    image_io.write_png(lr_path, degradation_lib.degrade(
        hr, degradation_lib.parse_degradation(kernel_spec, 2)))
    out = tmp_path / "sr.png"
    adapt_image.run(adapt_image.AdaptImageConfig(
        input=str(lr_path), output=str(out), model=str(tmp_path / "tiny.json"),
        kernel=kernel_spec, step_sizes=step_sizes_file, quiet=True), io.StringIO(),
        io.StringIO())
    data = out.read_bytes()
    out.unlink()
    return data
  wide, narrow = "gaussian:2.0,2.0,0", "gaussian:1.0,1.0,0"
  base_file, wide_file = str(tmp_path / "base.json"), str(tmp_path / "wide.json")
  assert sr_png(wide) == sr_png(wide, wide_file) != sr_png(wide, base_file)
  assert sr_png(narrow) == sr_png(narrow, base_file) != sr_png(narrow, wide_file)
