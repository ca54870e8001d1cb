"""Tests of test-time adaptation (Algorithm 2) and the fine-tuning baseline."""

import numpy as np
import pytest
import tensorflow as tf

from mlsr_tf.meta import adaptation
from mlsr_tf.meta import maml
from mlsr_tf.meta import testing


def _box_down(image, scale=2):
  """Stand-in degradation for LR -> LR_down (box filter + subsampling), float HWC."""
  h, w = image.shape[0] // scale, image.shape[1] // scale
  image = image[:h * scale, :w * scale]
  return image.reshape(h, scale, w, scale, -1).mean(axis=(1, 3))


@pytest.fixture(name="lr")
def fixture_lr():
  rng = np.random.default_rng(0)
  base = rng.uniform(0, 1, (6, 6, 1))
  smooth = np.kron(base, np.ones((4, 4, 1)))  # Structured, so adaptation has work to do.
  return (np.clip(smooth + 0.05 * rng.standard_normal(smooth.shape), 0, 1) * 255).astype(np.uint8)


def test_model_variables_unchanged_after_adapt(lr):
  model = testing.tiny_sr_net()
  before = [v.numpy().copy() for v in model.trainable_variables]
  sr = adaptation.adapt(model, lr, _box_down, steps=5, alpha=0.5)
  assert sr.shape == (48, 48, 1) and sr.dtype == np.float32
  assert sr.min() >= 0.0 and sr.max() <= 1.0
  for v, b in zip(model.trainable_variables, before):
    np.testing.assert_array_equal(v.numpy(), b)
  # Adaptation changed the output (it did something).
  plain = adaptation.adapt(model, lr, _box_down, steps=0, alpha=0.5)
  assert np.abs(sr - plain).max() > 1e-4


def test_zero_steps_is_plain_forward(lr):
  model = testing.tiny_sr_net()
  sr = adaptation.adapt(model, lr, _box_down, steps=0)
  expected = np.clip(model(lr[None].astype(np.float32) / 255.0).numpy()[0], 0, 1)
  np.testing.assert_allclose(sr, expected, atol=1e-6)


def test_support_loss_falls_and_progress_reports(lr):
  model = testing.tiny_sr_net()
  seen = []
  adaptation.adapt(model, lr, _box_down, steps=6, alpha=0.5,
                   progress=lambda i, n, loss: seen.append((i, n, loss)))
  assert [s[0] for s in seen] == list(range(1, 7)) and all(s[1] == 6 for s in seen)
  losses = [s[2] for s in seen]
  assert all(b < a for a, b in zip(losses, losses[1:])), losses


def test_adapt_at_steps_equals_separate_runs(lr):
  model = testing.tiny_sr_net()
  results = adaptation.adapt_at_steps(model, lr, _box_down, steps=(0, 2, 5), alpha=0.5)
  assert sorted(results) == [0, 2, 5]
  for steps, sr in results.items():
    np.testing.assert_allclose(sr, adaptation.adapt(model, lr, _box_down, steps, 0.5),
                               atol=1e-6)


def test_crops_are_seeded_and_adam_differs_from_sgd(lr):
  model = testing.tiny_sr_net()
  kwargs = dict(steps=3, alpha=0.5, crops=2, crop_size=8)
  a = adaptation.adapt(model, lr, _box_down, seed=1, **kwargs)
  b = adaptation.adapt(model, lr, _box_down, seed=1, **kwargs)
  c = adaptation.adapt(model, lr, _box_down, seed=2, **kwargs)
  np.testing.assert_array_equal(a, b)
  assert np.abs(a - c).max() > 0
  adam = adaptation.adapt(model, lr, _box_down, steps=3, alpha=1e-3, optimizer="adam")
  sgd = adaptation.adapt(model, lr, _box_down, steps=3, alpha=1e-3)
  assert np.abs(adam - sgd).max() > 1e-5


def test_sgd_step_inside_tf_while_loop(lr):
  """The graph code the SavedModel export reuses gives adapt_parameters' weights."""
  model = testing.tiny_sr_net()
  lr_float = lr.astype(np.float32) / 255.0
  lr_down = _box_down(lr_float).astype(np.float32)
  expected = adaptation.adapt_parameters(model, lr_down, lr_float, 4, 0.5)
  step = adaptation.make_sgd_step(model)

  @tf.function
  def loop(x, y, steps, alpha):
    params = adaptation.trainable_values(model)

    def body(i, *params):
      new_params, _ = step(list(params), x, y, alpha)
      return (i + 1, *new_params)
    out = tf.while_loop(lambda i, *_: i < steps, body, (tf.constant(0), *params))
    return out[1:]

  got = loop(tf.constant(lr_down[None]), tf.constant(lr_float[None]), tf.constant(4),
             tf.constant(0.5))
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g.numpy(), np.asarray(e), rtol=1e-5, atol=1e-6)


def test_per_step_alphas(lr):
  model = testing.tiny_sr_net()
  lr_float = lr.astype(np.float32) / 255.0
  lr_down = _box_down(lr_float).astype(np.float32)
  a = adaptation.adapt_parameters(model, lr_down, lr_float, 2, [0.5, 0.0])
  b = adaptation.adapt_parameters(model, lr_down, lr_float, 1, 0.5)
  for x, y in zip(a, b):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)


def test_zero_step_sizes_skip_the_gradient_and_keep_the_weights(lr, monkeypatch):
  """A zero matrix (idn_x2_blur's heavy-blur band) runs no gradient step, yet reports every
  step, and a zero row among others only skips its own step."""
  model = testing.tiny_sr_net()
  lr_float = lr.astype(np.float32) / 255.0
  lr_down = _box_down(lr_float).astype(np.float32)
  count = len(model.trainable_variables)
  half = adaptation.adapt_parameters(model, lr_down, lr_float, 2,
                                     np.array([[0.5] * count, [0.0] * count]))
  once = adaptation.adapt_parameters(model, lr_down, lr_float, 1, 0.5)
  for x, y in zip(half, once):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6, atol=1e-7)
  fresh = testing.tiny_sr_net()

  def no_gradient(*args, **kwargs):
    raise AssertionError("a zero step ran the gradient step")
  monkeypatch.setattr(adaptation, "make_sgd_step", no_gradient)
  seen = []
  params = adaptation.adapt_parameters(fresh, lr_down, lr_float, 3, np.zeros((2, count)),
                                       progress=lambda i, n, loss: seen.append((i, loss)))
  assert [i for i, _ in seen] == [1, 2, 3] and len({loss for _, loss in seen}) == 1
  for x, v in zip(params, fresh.trainable_variables):
    np.testing.assert_array_equal(np.asarray(x), v.numpy())


def test_bad_arguments_raise_with_value(lr):
  model = testing.tiny_sr_net()
  with pytest.raises(ValueError, match="-1"):
    adaptation.adapt(model, lr, _box_down, steps=-1)
  with pytest.raises(ValueError, match="nan"):
    adaptation.adapt(model, lr, _box_down, steps=1, alpha=float("nan"))
  with pytest.raises(ValueError, match="'rmsprop'"):
    adaptation.adapt(model, lr, _box_down, steps=1, optimizer="rmsprop")
  with pytest.raises(ValueError, match=r"\(8, 8, 3\)"):
    adaptation.adapt(model, np.zeros((8, 8, 3), np.uint8), _box_down, steps=1)
  with pytest.raises(ValueError, match="crop_size=None"):
    adaptation.adapt(model, lr, _box_down, steps=1, crops=2)
  with pytest.raises(ValueError, match="3 per-step"):
    adaptation.adapt(model, lr, _box_down, steps=2, alpha=[0.1, 0.1, 0.1])


def test_paper_alpha_is_default():
  import inspect  # pylint: disable=g-import-not-at-top
  assert inspect.signature(adaptation.adapt).parameters["alpha"].default == maml.PAPER_ALPHA


def test_adaptive_upscale_fn_columns_for_y_and_gray(lr):
  model = testing.tiny_sr_net(channels=1)
  upscale = adaptation.adaptive_upscale_fn(model, _box_down, steps=(2, 0), alpha=0.5)
  rgb = np.repeat(lr, 3, axis=2)
  out = upscale(rgb, "x")
  assert list(out) == ["0", "2"]
  assert all(v.dtype == np.uint8 and v.shape == (48, 48, 1) for v in out.values())
  np.testing.assert_array_equal(  # Y of a gray RGB image is the gray level (scaled).
      out["2"], upscale(rgb, "y")["2"])
  gray_model = testing.tiny_sr_net(channels=3)
  out = adaptation.adaptive_upscale_fn(gray_model, _box_down, steps=(1,), alpha=0.5)(lr, "g")
  assert out["1"].shape == (48, 48, 1)


@pytest.mark.parametrize("shape", [(13, 15, 1), (12, 14, 1), (11, 10, 1)])
def test_adapt_on_sizes_not_multiple_of_scale_and_after_other_sizes(shape):
  """Regression: LR_down has ceil(h/s) rows, so the output can exceed the LR target; the
  loss must crop with dynamic shapes (a retraced tf.function has no static ones)."""
  from mlsr_tf.data import degradation  # pylint: disable=g-import-not-at-top
  model = testing.tiny_sr_net()
  image = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
  for size in (shape, (shape[0] + 3, shape[1] + 1, 1)):  # A second size reuses the trace.
    crop = image if size == shape else np.pad(image, ((0, 3), (0, 1), (0, 0)), "reflect")
    sr = adaptation.adapt(model, crop, degradation.bicubic(2), steps=2, alpha=0.1)
    assert sr.shape == (2 * size[0], 2 * size[1], 1)
    assert np.isfinite(sr).all()


def test_crops_use_the_true_scale_on_tiny_images_at_x4():
  """Regression: 17 LR rows at x4 give a 5-row LR_down; rounding 17 / 5 said scale 3."""
  from mlsr_tf.data import degradation  # pylint: disable=g-import-not-at-top
  model = testing.tiny_sr_net(scale=4)
  lr = np.random.default_rng(3).uniform(0, 1, (17, 17, 1)).astype(np.float32)
  lr_down = lr[::4, ::4]  # 5x5: LR_down[i, j] is LR[4 i, 4 j], so aligned crops agree.
  assert round(17 / 5) == 3
  assert adaptation.infer_scale(model, lr_down.shape, lr.shape) == 4
  for seed in range(20):  # Every drawn position fits (LR_down row 4 has no full LR block).
    x, y = adaptation._crop_pairs(lr_down, lr, 4, 3, 4, np.random.default_rng(seed))  # pylint: disable=protected-access
    assert x.shape == (3, 1, 1, 1) and y.shape == (3, 4, 4, 1)
    np.testing.assert_array_equal(x[:, 0, 0], y[:, 0, 0])
  kwargs = dict(crops=3, crop_size=4, seed=5)
  inferred = adaptation.adapt_parameters(model, lr_down, lr, 2, 0.1, **kwargs)
  explicit = adaptation.adapt_parameters(model, lr_down, lr, 2, 0.1, scale=4, **kwargs)
  for a, b in zip(inferred, explicit):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  # adapt() takes the scale from the degradation (bicubic x4: 17 -> 5 rows).
  sr = adaptation.adapt(model, lr, degradation.bicubic(4), steps=2, alpha=0.1, **kwargs)
  assert sr.shape == (68, 68, 1) and np.isfinite(sr).all()
  with pytest.raises(ValueError, match="scale must be a positive integer, got 0"):
    adaptation.adapt_parameters(model, lr_down, lr, 1, 0.1, scale=0, **kwargs)
  with pytest.raises(ValueError, match="crop_size 20 does not fit"):
    adaptation.adapt_parameters(model, lr_down, lr, 1, 0.1, crops=1, crop_size=20)


@pytest.mark.parametrize("steps,alpha,optimizer,loss", [
    (2, 1e6, "sgd", "l2"), (1, 1e6, "sgd", "l2"), (3, 1e30, "sgd", "l1"),
    (2, 1e4, "adam", "l2")])
def test_divergence_stops_with_one_line_and_leaves_the_model_alone(lr, steps, alpha,
                                                                   optimizer, loss):
  model = testing.tiny_sr_net()
  before = [v.numpy().copy() for v in model.trainable_variables]
  with pytest.raises(adaptation.AdaptationDivergedError,
                     match=rf"adaptation diverged: the loss after \d of {steps} steps is "
                           r"(nan|inf|[0-9.e+]+) \(limit [0-9.e+]+\); lower the step size alpha$"):
    adaptation.adapt(model, lr, _box_down, steps=steps, alpha=alpha, optimizer=optimizer,
                     loss=loss)
  assert issubclass(adaptation.AdaptationDivergedError, ValueError)
  for v, b in zip(model.trainable_variables, before):
    np.testing.assert_array_equal(v.numpy(), b)


def test_divergence_limit_follows_the_pixel_range_and_the_starting_loss(lr):
  """The paper's 0..255 pixels: losses up to 255^2 are those of outputs in range."""
  model = testing.tiny_sr_net()
  sr = adaptation.adapt(model, lr, _box_down, steps=2, alpha=1e-6, pixel_range=255.0)
  assert np.isfinite(sr).all()
  with pytest.raises(adaptation.AdaptationDivergedError, match="after 1 of 2 steps"):
    adaptation.adapt(model, lr, _box_down, steps=2, alpha=1.0, pixel_range=255.0)
  assert maml.LossConfig("l2", 255.0).divergence_limit(1.0) == 65025.0
  config = maml.LossConfig("l1", 2.0)
  assert config.divergence_limit(0.01) == 2.0  # Outputs off by the whole range.
  assert config.divergence_limit(3.0) == 30.0  # An untrained start: ten times its loss.
  assert config.divergence_limit(float("nan")) == 2.0
  assert config.divergence_limit(3.0, headroom=1e3) == 30000.0
