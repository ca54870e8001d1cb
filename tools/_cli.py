"""Shared command-line plumbing for tools/*.py (not part of the library).

``app.run(main, flags_parser=parse_flags_or_exit)`` turns absl's multi-line
flag errors (exit code 1) into the project's convention: one ``error: ...``
line on stderr and exit code 2.  ``fail(message)`` does the same for errors
found later.

Importing this module (every tool does, before anything that imports TensorFlow) keeps
TensorFlow's C++ start-up chatter off the user's terminal: oneDNN notices, CUDA probing
on a CPU-only machine, grappler's "remapper failed".  Those lines are written by C++
straight to file descriptor 2 before Python's logging exists, so they are silenced at the
descriptor while ``tensorflow`` is imported, and TF's later C++ log lines are limited to
fatal ones (``TF_CPP_MIN_LOG_LEVEL=3``).  TensorFlow's Python warnings (e.g. "triggered
tf.function retracing" when whole images of different sizes are adapted one after another,
which is expected) are limited to errors.  Python errors and tracebacks are unaffected.
Set ``MLSR_TF_VERBOSE=1`` to see everything (e.g. to debug a GPU set-up).

Parsing a tool's flags also makes sure a Ctrl-C is never lost (``keep_interrupts``): a
``KeyboardInterrupt`` that lands inside a garbage-collector callback is swallowed by Python
and the run would go on.
"""

import contextlib
import importlib.abc
import logging
import os
import signal
import sys
import threading

from absl import flags


def fail(message) -> None:
  """Prints ``error: <message>`` (one line) to stderr and exits with code 2."""
  text = " ".join(str(message).split())
  print(f"error: {text}", file=sys.stderr)
  sys.exit(2)


def interrupted(workdir: str) -> None:
  """Ctrl-C in a resumable job: one line saying how to resume (not a traceback), exit 130."""
  print(f"interrupted; the last checkpoint is kept in {workdir}: rerun the same command to "
        "resume from it", file=sys.stderr)
  sys.exit(130)


def json_object(flag_name: str) -> dict:
  """The value of a JSON-object flag (e.g. --model_kwargs), or exit 2 repeating it."""
  import json  # pylint: disable=g-import-not-at-top
  text = getattr(flags.FLAGS, flag_name)
  try:
    value = json.loads(text)
  except ValueError:
    value = None
  if not isinstance(value, dict):
    fail(f"--{flag_name} must be a JSON object such as '{{\"filters\": 32}}', got {text!r}")
  return value


def keep_interrupts() -> None:
  """Sends SIGINT again when Python swallowed the ``KeyboardInterrupt`` of a Ctrl-C.

  JAX registers a garbage-collector callback, and TensorFlow imports JAX whenever it is
  installed (from ``tensorflow.lite.python``). A signal that arrives while that callback
  runs raises ``KeyboardInterrupt`` inside it; Python reports it as "Exception ignored in
  ..." and discards it, so a training run ignored the Ctrl-C (seen as a hung test). Such an
  interrupt goes through ``sys.unraisablehook``: there it is re-sent to this process a
  moment later from a timer thread (its handler then runs in the main thread, outside the
  callback), and nothing is printed. Idempotent.
  """
  if getattr(sys.unraisablehook, "keeps_interrupts", False):
    return
  previous = sys.unraisablehook

  def hook(unraisable):
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
      threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGINT)).start()
      return
    previous(unraisable)

  hook.keeps_interrupts = True
  sys.unraisablehook = hook


def parse_flags_or_exit(argv):
  """absl ``flags_parser``: parses ``argv``; bad flags or extra arguments -> exit 2."""
  keep_interrupts()
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    fail(e)
  if len(rest) > 1:
    fail(f"unexpected arguments {rest[1:]}")
  return rest


@contextlib.contextmanager
def _stderr_descriptor_silenced():
  """Points file descriptor 2 at /dev/null inside the block (C++ writes go there too)."""
  sys.stderr.flush()
  saved = os.dup(2)
  try:
    with open(os.devnull, "wb") as devnull:
      os.dup2(devnull.fileno(), 2)
    yield
  finally:
    os.dup2(saved, 2)
    os.close(saved)


class _QuietLoader(importlib.abc.Loader):
  """Runs the real loader of ``tensorflow`` with file descriptor 2 silenced."""

  def __init__(self, loader):
    self._loader = loader

  def create_module(self, spec):
    return self._loader.create_module(spec)

  def exec_module(self, module):
    with _stderr_descriptor_silenced():
      self._loader.exec_module(module)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


class _QuietTensorFlowFinder(importlib.abc.MetaPathFinder):
  """Finds ``tensorflow`` with the other finders and wraps its loader (once)."""

  def find_spec(self, name, path, target=None):
    if name != "tensorflow":
      return None
    sys.meta_path.remove(self)
    for finder in sys.meta_path:
      spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
      if spec is not None and spec.loader is not None:
        spec.loader = _QuietLoader(spec.loader)
        return spec
    return None


def quiet_tensorflow() -> None:
  """Installs the silencing described in the module docstring (idempotent)."""
  if os.environ.get("MLSR_TF_VERBOSE", "") not in ("", "0"):
    return
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  if "tensorflow" in sys.modules or any(
      isinstance(f, _QuietTensorFlowFinder) for f in sys.meta_path):
    return
  sys.meta_path.insert(0, _QuietTensorFlowFinder())


quiet_tensorflow()
