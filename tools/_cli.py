"""Shared command-line plumbing for tools/*.py (not part of the library).

``app.run(main, flags_parser=parse_flags_or_exit)`` turns absl's multi-line
flag errors (exit code 1) into the project's convention: one ``error: ...``
line on stderr and exit code 2.  ``fail(message)`` does the same for errors
found later.
"""

import sys

from absl import flags


def fail(message) -> None:
  """Prints ``error: <message>`` (one line) to stderr and exits with code 2."""
  text = " ".join(str(message).split())
  print(f"error: {text}", file=sys.stderr)
  sys.exit(2)


def parse_flags_or_exit(argv):
  """absl ``flags_parser``: parses ``argv``; bad flags or extra arguments -> exit 2."""
  try:
    rest = flags.FLAGS(argv)
  except flags.Error as e:
    fail(e)
  if len(rest) > 1:
    fail(f"unexpected arguments {rest[1:]}")
  return rest
