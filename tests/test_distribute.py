"""The meta-training step under tf.distribute equals the single-device step."""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
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


# One of two workers: TF_CONFIG names the cluster and this worker's index.  Each worker
# gets its half of the same global batch from experimental_distribute_dataset (saved, so
# the test can check the split) and all-reduces the meta-gradients with the other.
_WORKER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    sys.path.insert(0, %(root)r)
    import numpy as np
    import tensorflow as tf
    from mlsr_tf.meta import backend_tf, testing

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
    batch = {k: np.asarray(v, np.float32) for k, v in np.load(%(batch)r).items()}
    dataset = tf.data.Dataset.from_tensors(batch).unbatch().batch(len(batch["hr"]))
    share = next(iter(strategy.experimental_distribute_dataset(dataset)))
    saved = {"share_hr": strategy.experimental_local_results(share["hr"])[0].numpy()}
    for order in ("first", "second"):
      trainer = backend_tf.MetaTrainer(testing.tiny_sr_net(), [0.5, 0.5], 1e-3, order,
                                       strategy=strategy)
      saved[order + "_losses"] = np.array([trainer.step(batch)["meta_loss"]
                                           for _ in range(%(steps)d)])
      for i, theta in enumerate(trainer.theta_numpy()):
        saved[f"{order}_theta_{i}"] = theta
    task = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
    np.savez(os.path.join(%(out)r, f"worker{task}.npz"), **saved)
    print("OK", task)
    """)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _tiny_batch(tasks: int = 4) -> dict:
  rng = np.random.default_rng(0)
  hr = rng.uniform(0, 1, (tasks, 16, 16, 1)).astype(np.float32)
  lr = hr.reshape(tasks, 8, 2, 8, 2, 1).mean(axis=(2, 4))
  return {"hr": hr, "lr": lr, "lr_down": lr.reshape(tasks, 4, 2, 4, 2, 1).mean(axis=(2, 4))}


@pytest.mark.slow
def test_two_worker_multi_worker_mirrored_strategy_equals_single_device(tmp_path):
  """Two worker processes on localhost (gRPC collectives, CPU): same weights as one device.

  About 15 s on 2 cores (two TF start-ups, first and second order, 3 steps each).
  """
  steps = 3
  batch = _tiny_batch()
  np.savez(tmp_path / "batch.npz", **batch)
  script = _WORKER_SCRIPT % dict(root=REPO_ROOT, batch=str(tmp_path / "batch.npz"),
                                 out=str(tmp_path), steps=steps)
  cluster = {"worker": [f"localhost:{_free_port()}", f"localhost:{_free_port()}"]}
  workers = []
  for index in range(2):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}))
    workers.append(subprocess.Popen([sys.executable, "-c", script], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  try:
    outputs = [w.communicate(timeout=150) for w in workers]
  finally:
    for w in workers:  # A worker waiting for a dead peer would hang forever.
      if w.poll() is None:
        w.kill()
        w.communicate()
  for w, (stdout, stderr) in zip(workers, outputs):
    assert w.returncode == 0 and "OK" in stdout, stderr[-3000:]

  results = [dict(np.load(tmp_path / f"worker{i}.npz")) for i in range(2)]
  # Each worker computed on its own half of the global batch, together all of it.
  np.testing.assert_array_equal(
      np.concatenate([r["share_hr"] for r in results]), batch["hr"])

  from mlsr_tf.meta import backend_tf  # pylint: disable=g-import-not-at-top
  from mlsr_tf.meta import testing  # pylint: disable=g-import-not-at-top
  for order in ("first", "second"):
    single = backend_tf.MetaTrainer(testing.tiny_sr_net(), [0.5, 0.5], 1e-3, order)
    losses = [single.step(batch)["meta_loss"] for _ in range(steps)]
    for result in results:
      np.testing.assert_allclose(result[order + "_losses"], losses, rtol=1e-5)
    for i, theta in enumerate(single.theta_numpy()):
      initial = testing.tiny_sr_net().trainable_variables[i].numpy()
      assert np.abs(theta - initial).max() > 1e-4  # The steps moved the weights.
      for result in results:
        np.testing.assert_allclose(result[f"{order}_theta_{i}"], theta, rtol=1e-5, atol=1e-5)
