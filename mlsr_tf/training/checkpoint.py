"""Backend-neutral training checkpoints (work on Keras' TensorFlow and JAX backends alike).

A checkpoint is a directory holding

  model.weights.h5   the model's weights (Keras' own format)
  optimizer.npz      the optimizer's variables, in ``optimizer.variables`` order
  state.json         a JSON dictionary: ``iteration``, ``config`` (and history, ...)

It is written to ``<dir>.tmp`` and then renamed over ``<dir>``, so an interruption at any
moment leaves either the previous checkpoint or the new one, never a half-written one.

A run's work directory is opened with :func:`workdir_session`, which makes sure that no
work is ever lost or mixed:

* one run at a time per work directory (an advisory lock, released even by ``kill -9``);
* what a killed writer left is cleaned up (``tmp-<pid>-*`` files, an incomplete
  ``<dir>.tmp``) or recovered (a complete ``<dir>.tmp`` whose rename did not happen, a
  ``<dir>.old`` left between the two renames), so the newest complete checkpoint is used;
* a directory with weights but no readable checkpoint state is refused, not overwritten,
  unless ``overwrite`` (which discards the run's outputs and starts again);
* :func:`check_same_run` refuses to resume with a configuration that changes the result;
* a corrupt checkpoint file is a :class:`CheckpointError` (a ValueError), one line naming it;
* a start that fails before writing anything leaves no (empty) work directory behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import shutil
from typing import Optional, Sequence

import numpy as np

from mlsr_tf import paths

_WEIGHTS = "model.weights.h5"
_OPTIMIZER = "optimizer.npz"
_STATE = "state.json"
# Temporaries of a killed writer inside a work directory (weights, step sizes, ...).
TEMPORARY_PATTERN = r"tmp-(?P<pid>\d+)-.+"


class CheckpointError(ValueError):
  """A work directory or checkpoint that cannot be used as it is; the message names it."""


def save(directory, model, optimizer=None, state: Optional[dict] = None,
         optimizer_arrays: Optional[dict] = None) -> None:
  """Writes ``model`` (and ``optimizer``, ``state``) atomically to ``directory``.

  ``optimizer_arrays`` is for optimizers that are not Keras objects (the functional Adam
  of meta-training): a dictionary of arrays written as ``optimizer.npz`` as it is.
  """
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  directory = pathlib.Path(directory)
  tmp = directory.with_name(directory.name + ".tmp")
  old = directory.with_name(directory.name + ".old")
  shutil.rmtree(tmp, ignore_errors=True)
  tmp.mkdir(parents=True)
  keras_h5.save(model, tmp / _WEIGHTS)
  if optimizer is not None:
    optimizer_arrays = {f"v{i:05d}": np.asarray(v) for i, v in enumerate(optimizer.variables)}
  if optimizer_arrays is not None:
    np.savez(tmp / _OPTIMIZER, **optimizer_arrays)
  with open(tmp / _STATE, "w", encoding="utf-8") as f:
    json.dump(state or {}, f, indent=1)
  shutil.rmtree(old, ignore_errors=True)
  if directory.exists():
    os.replace(directory, old)
  os.replace(tmp, directory)
  shutil.rmtree(old, ignore_errors=True)


def latest(directory) -> Optional[pathlib.Path]:
  """The complete checkpoint directory to read (``directory``, or the ``.old`` copy left by
  an interruption between the two renames of :func:`save`), or None if there is none."""
  directory = pathlib.Path(directory)
  for candidate in (directory, directory.with_name(directory.name + ".old")):
    if (candidate / _STATE).exists():
      return candidate
  return None


def read_state(directory) -> dict:
  """The ``state.json`` of a checkpoint directory, checked: ``iteration`` and ``config``.

  Raises:
    CheckpointError: unreadable, not JSON, or without a non-negative integer ``iteration``
      and a ``config`` object (one line naming the file).
  """
  path = pathlib.Path(directory) / _STATE
  try:
    state = json.loads(path.read_text(encoding="utf-8"))
  except (OSError, ValueError) as e:  # ValueError: bad JSON or bad UTF-8.
    raise CheckpointError(f"checkpoint state {str(path)!r} is unreadable: {e}") from None
  if not isinstance(state, dict):
    raise CheckpointError(f"checkpoint state {str(path)!r} is not a JSON object")
  iteration = state.get("iteration")
  if isinstance(iteration, bool) or not isinstance(iteration, int) or iteration < 0:
    raise CheckpointError(f"checkpoint state {str(path)!r} has no valid 'iteration' "
                          f"(got {iteration!r})")
  if not isinstance(state.get("config"), dict):
    raise CheckpointError(f"checkpoint state {str(path)!r} has no 'config' object")
  return state


def load_arrays(path) -> dict:
  """The arrays of an ``.npz`` checkpoint file (CheckpointError naming it if corrupt)."""
  path = pathlib.Path(path)
  try:
    # Opened here: np.load(path) leaves its own file open when it refuses a corrupt file.
    with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
      return {key: np.asarray(data[key]) for key in data.files}
  except Exception as e:  # BadZipFile, EOFError, OSError, ValueError, zlib.error, ...
    raise CheckpointError(f"checkpoint file {str(path)!r} is corrupt or unreadable "
                          f"({type(e).__name__}: {' '.join(str(e).split())[:160]})") from None


def restore(directory, model, optimizer=None) -> Optional[dict]:
  """Loads a checkpoint written by :func:`save`; returns its state, or None if there is none.

  The optimizer must already be built (``optimizer.build(model.trainable_variables)``) so
  that its variables exist; a mismatch in their number or shapes raises ``ValueError``.
  Every unreadable file is a :class:`CheckpointError` naming it.
  """
  from mlsr_tf.weights import keras_h5  # pylint: disable=g-import-not-at-top
  directory = latest(directory)
  if directory is None:
    return None
  state = read_state(directory)
  keras_h5.load(model, directory / _WEIGHTS, "checkpoint weights")
  if optimizer is not None and (directory / _OPTIMIZER).exists():
    arrays = load_arrays(directory / _OPTIMIZER)
    values = [arrays[k] for k in sorted(arrays)]
    variables = list(optimizer.variables)
    if len(values) != len(variables):
      raise CheckpointError(f"checkpoint {str(directory)!r} has {len(values)} optimizer "
                            f"variables, the optimizer has {len(variables)}")
    for variable, value in zip(variables, values):
      if tuple(variable.shape) != value.shape:
        raise CheckpointError(
            f"optimizer variable {variable.path} has shape {tuple(variable.shape)}, "
            f"checkpoint {str(directory)!r} has {value.shape}")
      variable.assign(value)
  return state


def check_same_run(saved: dict, config: dict, fields: Sequence[str], workdir,
                   defaults: Optional[dict] = None) -> None:
  """Refuses to resume a run whose configuration differs in a field that changes the result.

  Args:
    saved: the configuration recorded in the checkpoint state.
    config: the configuration now (``dataclasses.asdict``).
    fields: the fields that change the result (others, such as the number of iterations
      or how often to log, may differ).
    workdir: the run's work directory, for the message.
    defaults: values of fields a state written by an older version lacks (those runs
      behaved as with these values).

  Raises:
    CheckpointError: naming every differing field with both values.
  """
  normal = lambda value: json.loads(json.dumps(value))  # Tuples -> lists, as saved.
  defaults = defaults or {}
  differing = []
  for field in fields:
    before = saved[field] if field in saved else defaults.get(field, "<not recorded>")
    now = normal(config.get(field))
    if normal(before) != now:
      differing.append(f"{field} {before!r} -> {now!r}")
  if differing:
    raise CheckpointError(
        f"cannot resume the run in {str(workdir)!r} with a "
        f"different configuration: {', '.join(differing)} (these change the result; pass "
        f"the recorded values, another --workdir, or --overwrite to start again)")


@dataclasses.dataclass
class WorkdirSession:
  """An open work directory: ``state`` is the checked state of its checkpoint (or None)."""
  workdir: pathlib.Path
  checkpoint: pathlib.Path
  state: Optional[dict]


def _lock(workdir: pathlib.Path) -> int:
  import fcntl  # pylint: disable=g-import-not-at-top
  fd = os.open(workdir, os.O_RDONLY)
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except OSError:
    os.close(fd)
    raise CheckpointError(f"workdir {str(workdir)!r} is in use by another run "
                          "(one run per work directory)") from None
  return fd


def _complete(directory: pathlib.Path) -> bool:
  """Whether a checkpoint directory's state (written last) is there and readable."""
  try:
    read_state(directory)
  except CheckpointError:
    return False
  return True


def _clean(workdir: pathlib.Path, checkpoint: pathlib.Path, subdirectories) -> None:
  """Removes a killed writer's leftovers (we hold the lock: every temporary is stale) and
  keeps the newest complete checkpoint: ``<dir>.tmp`` if its state was written (a kill
  before its rename), else ``<dir>``, else the ``<dir>.old`` of a kill between the renames."""
  for directory in (workdir, *[workdir / name for name in subdirectories]):
    paths.remove_stale_temporaries(directory, TEMPORARY_PATTERN, dead_writers_only=False)
  (workdir / "model.weights.h5.tmp.weights.h5").unlink(missing_ok=True)  # Older versions.
  tmp = checkpoint.with_name(checkpoint.name + ".tmp")
  old = checkpoint.with_name(checkpoint.name + ".old")
  for newer in (tmp, old):
    if newer.is_dir() and _complete(newer) and (newer is tmp or not _complete(checkpoint)):
      shutil.rmtree(checkpoint, ignore_errors=True)
      os.replace(newer, checkpoint)
      break
  shutil.rmtree(tmp, ignore_errors=True)
  shutil.rmtree(old, ignore_errors=True)


def _discard(workdir: pathlib.Path, checkpoint: pathlib.Path, outputs) -> None:
  for path in (checkpoint, *[workdir / name for name in outputs]):
    if path.is_dir() and not path.is_symlink():
      shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
      path.unlink()


@contextlib.contextmanager
def workdir_session(workdir, checkpoint_name: str, *, overwrite: bool = False,
                    outputs: Sequence[str] = ("model.weights.h5",),
                    subdirectories: Sequence[str] = ()):
  """Opens a run's work directory for a training tool (see the module docstring).

  Args:
    workdir: the work directory (created if missing, with its parents).
    checkpoint_name: the checkpoint directory inside it.
    overwrite: discard the checkpoint and ``outputs`` and start again (also when the
      state is missing or unreadable).
    outputs: what the tool writes besides the checkpoint (files or directories); the
      first one is the weights file whose presence without a state is refused.
    subdirectories: directories whose temporaries are cleaned too.

  Yields:
    A :class:`WorkdirSession`.

  Raises:
    CheckpointError: the directory is a file or in use; weights without a readable state
      (and no ``overwrite``); an unreadable state.
  """
  workdir = pathlib.Path(workdir)
  if workdir.exists() and not workdir.is_dir():
    raise CheckpointError(f"workdir {str(workdir)!r} exists and is not a directory")
  created = []  # Directories this call creates, outermost first.
  missing = workdir.absolute()
  while not missing.exists():
    created.insert(0, missing)
    missing = missing.parent
  workdir.mkdir(parents=True, exist_ok=True)
  fd = None
  try:
    fd = _lock(workdir)
    checkpoint = workdir / checkpoint_name
    _clean(workdir, checkpoint, subdirectories)
    state = None
    directory = latest(checkpoint)
    try:
      if directory is not None:
        state = read_state(directory)
      elif (workdir / outputs[0]).exists() or checkpoint.exists():
        raise CheckpointError(
            f"workdir {str(workdir)!r} holds weights but no readable checkpoint state "
            f"({str(checkpoint / _STATE)!r} is missing)")
    except CheckpointError as e:
      if not overwrite:
        raise CheckpointError(f"{e}; refusing to overwrite them: pass --overwrite to start "
                              "again, or use another --workdir") from None
    if overwrite:
      _discard(workdir, checkpoint, outputs)
      state = None
    yield WorkdirSession(workdir, checkpoint, state)
  except BaseException:
    for directory in reversed(created):  # A failed start leaves no empty directories.
      with contextlib.suppress(OSError):
        directory.rmdir()
    raise
  finally:
    if fd is not None:
      os.close(fd)
