"""The meta-training step under tf.distribute equals the single-device step."""

import os
import subprocess
import sys
import textwrap

import pytest

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh process: logical devices must be configured before TF initialises.
_SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, %(root)r)
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from mlsr_tf.meta import backend_tf, testing

    rng = np.random.default_rng(0)
    hr = rng.uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    lr = hr.reshape(4, 8, 2, 8, 2, 1).mean(axis=(2, 4))
    batch = {"hr": hr, "lr": lr, "lr_down": lr.reshape(4, 4, 2, 4, 2, 1).mean(axis=(2, 4))}

    def train(strategy):
      model = testing.tiny_sr_net()
      trainer = backend_tf.MetaTrainer(model, [0.5, 0.5], 1e-3, %(order)r, strategy=strategy)
      losses = [trainer.step(batch)["meta_loss"] for _ in range(2)]
      return losses, trainer.theta_numpy()

    strategy = %(strategy)s
    assert strategy.num_replicas_in_sync == %(replicas)d, strategy.num_replicas_in_sync
    single_losses, single = train(None)
    dist_losses, dist = train(strategy)
    np.testing.assert_allclose(dist_losses, single_losses, rtol=1e-5)
    for a, b in zip(dist, single):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    print("OK", dist_losses)
    """)


@pytest.mark.parametrize("order", ["first", "second"])
def test_mirrored_strategy_equals_single_device(order):
  script = _SCRIPT % dict(root=REPO_ROOT, order=order, replicas=2,
                          strategy='tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])')
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=300, check=False)
  assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]


def test_multi_worker_mirrored_strategy_single_worker_equals_single_device():
  """One worker (no TF_CONFIG): the collective-ops code path, same result."""
  script = _SCRIPT % dict(root=REPO_ROOT, order="first", replicas=1,
                          strategy="tf.distribute.MultiWorkerMirroredStrategy()")
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                        timeout=300, check=False, env=env)
  assert done.returncode == 0 and "OK" in done.stdout, done.stderr[-3000:]
