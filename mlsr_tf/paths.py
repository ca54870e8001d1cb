"""Where data and the project's own weights live."""

import os
import pathlib

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
