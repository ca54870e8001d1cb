"""Fault injection for the tests: a library run SIGKILLed at a controlled point.

``run_until_killed(point, "mlsr_tf.training.train", "TrainConfig", config)`` runs
``module.run(ConfigClass(**config))`` in a fresh Python process whose ``os.replace`` sends
the process SIGKILL at the ``count``-th rename of a file matching ``point =
"<glob>:<count>"`` (renames are where atomic writers commit: that is the interesting
moment to die), and checks that it died of it.  Not a test module (no ``test_`` prefix).
"""

import dataclasses
import json
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]

_KILLER = r"""
import fnmatch, importlib, json, os, signal, sys
repo, point, module, config_class, config = sys.argv[1:6]
sys.path.insert(0, repo)
pattern, count = point.rsplit(":", 1)
real_replace, seen = os.replace, []

def replace(src, dst, **kwargs):
  if fnmatch.fnmatch(os.path.basename(str(src)), pattern):
    seen.append(src)
    if len(seen) == int(count):
      os.kill(os.getpid(), signal.SIGKILL)
  real_replace(src, dst, **kwargs)
os.replace = replace
import keras
keras.utils.set_random_seed(0)  # What the tests' in-process runs do first.
library = importlib.import_module(module)
library.run(getattr(library, config_class)(**json.loads(config)))
"""


def run_until_killed(point: str, module: str, config_class: str, config) -> None:
  """Runs ``module.run(config)`` in a subprocess that SIGKILLs itself at ``point``."""
  done = subprocess.run(
      [sys.executable, "-c", _KILLER, str(REPO), point, module, config_class,
       json.dumps(dataclasses.asdict(config))],
      capture_output=True, text=True, timeout=300, check=False)
  assert done.returncode == -9, (point, done.stderr[-2000:])
