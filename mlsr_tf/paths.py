"""Where data and the project's own weights live; file checks and leftovers of killed writers."""

from __future__ import annotations

import os
import pathlib
import stat

PACKAGE_ROOT = pathlib.Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent
PRETRAINED_DIR = REPO_ROOT / "pretrained"


def data_root(explicit=None):
  """Returns the data root: ``explicit`` if given, else ``$MLSR_DATA``, else ``../shared``.

  ``../shared`` is resolved relative to the repository root (the checkout's sibling),
  so tools work from any current directory.
  """
  if explicit:
    return pathlib.Path(explicit).expanduser()
  env = os.environ.get("MLSR_DATA")
  if env:
    return pathlib.Path(env).expanduser()
  return (REPO_ROOT.parent / "shared").resolve()


def pid_alive(pid: int) -> bool:
  """Whether process ``pid`` exists (on this machine)."""
  if pid <= 0:
    return False
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except OSError:  # EPERM: it exists, owned by someone else.
    return True
  return True


def remove_stale_temporaries(directory, pattern, dead_writers_only: bool = True) -> list:
  """Removes what a killed writer left in ``directory``: names matching ``pattern``.

  ``pattern`` is a regular expression on the name whose group ``pid`` is the writer's
  process id (temporaries are named ``tmp-<pid>-...`` or ``.<name>.<pid>.xxxx``).  With
  ``dead_writers_only`` the entries of a live process are kept (another writer may be
  working beside us); without it (the caller holds the directory's lock) all are removed.
  Files and directories alike; returns the removed paths.
  """
  import re  # pylint: disable=g-import-not-at-top
  import shutil  # pylint: disable=g-import-not-at-top
  directory = pathlib.Path(directory)
  if not directory.is_dir():
    return []
  removed = []
  for entry in directory.iterdir():
    match = re.fullmatch(pattern, entry.name)
    if not match:
      continue
    pid = int(match.group("pid"))
    if pid == os.getpid() or (dead_writers_only and pid_alive(pid)):
      continue
    if entry.is_dir() and not entry.is_symlink():
      shutil.rmtree(entry, ignore_errors=True)
    else:
      entry.unlink(missing_ok=True)
    removed.append(entry)
  return removed


def check_input_file(path, what: str = "file", error=ValueError) -> pathlib.Path:
  """A non-empty regular file, or ``error`` (a ValueError class) naming it: missing,
  a directory, a dangling or looping symlink, a FIFO or device, empty."""
  path = pathlib.Path(path)
  try:
    status = path.stat()
  except OSError as e:  # Missing, dangling or looping symlink, too long a name, no access.
    if isinstance(e, FileNotFoundError):
      raise error(f"no such {what}: {str(path)!r}") from None
    raise error(f"cannot read {what} {str(path)!r}: {e.strerror or e}") from None
  if stat.S_ISDIR(status.st_mode):
    raise error(f"{what} {str(path)!r} is a directory, not a file")
  if not stat.S_ISREG(status.st_mode):
    raise error(f"{what} {str(path)!r} is not a regular file")
  if status.st_size == 0:
    raise error(f"{what} {str(path)!r} is empty")
  return path


def same_file(a, b) -> bool:
  """Whether two paths name the same file (never raises: symlink loops, missing files)."""
  try:
    if os.path.exists(a) and os.path.exists(b):
      return os.path.samefile(a, b)
  except OSError:
    pass
  return os.path.realpath(a) == os.path.realpath(b)


def check_memory(nbytes: float, what: str) -> None:
  """Refuses (ValueError naming ``what``) work that needs more than half of this machine's
  memory for one array, before allocating it (rather than being killed by the OOM killer)."""
  try:
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
  except (ValueError, OSError, AttributeError):
    return
  if nbytes > total / 2:
    raise ValueError(f"{what} needs {nbytes / 2**30:,.1f} GiB, more than half of this "
                     f"machine's {total / 2**30:.0f} GiB")
