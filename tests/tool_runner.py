"""Runs many command lines of one tool in one Python process (one TensorFlow import).

``run_cases("degrade.py", [argv, ...], watch=folder)`` starts ``python tool_runner.py``,
which loads ``tools/<tool>`` as ``app.run`` would (its ``from tools import _cli`` first),
then for each argv resets the flags, parses them with ``_cli.parse_flags_or_exit`` and calls
the tool's ``main``, with file descriptors 1 and 2 captured (so C++ and OpenCV output is
seen too).  Each result is ``{"argv", "code", "stdout", "stderr", "changed", "seconds"}``:
``code`` is the exit status (``"traceback"`` for an uncaught exception, whose traceback is
in ``stderr``), ``changed`` lists the files under ``watch`` that the case created, changed or
removed, ``seconds`` is its duration.  Not a test module.
"""

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def snapshot(folder) -> dict:
  """``{relative path: (size, mtime_ns)}`` of everything under ``folder`` (links not followed)."""
  result = {}
  folder = pathlib.Path(folder)
  for root, dirs, files in os.walk(folder):
    for name in dirs + files:
      path = pathlib.Path(root) / name
      info = path.lstat()
      # A directory's own mtime changes when an entry comes and goes again: not a change.
      result[str(path.relative_to(folder))] = (
          (info.st_size, info.st_mtime_ns) if path.is_file() and not path.is_symlink()
          else "directory" if path.is_dir() and not path.is_symlink() else "link")
  return result


def _changes(before: dict, after: dict) -> list:
  return sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))


def run_cases(tool: str, cases, watch, env=None, timeout: float = 900) -> list:
  """Runs ``cases`` (lists of arguments) of ``tools/<tool>``; see the module docstring."""
  with tempfile.TemporaryDirectory() as scratch:
    request, answer = pathlib.Path(scratch) / "cases.json", pathlib.Path(scratch) / "out.json"
    request.write_text(json.dumps({"tool": tool, "cases": [list(map(str, c)) for c in cases],
                                   "watch": str(watch)}))
    done = subprocess.run([sys.executable, __file__, str(request), str(answer)],
                          capture_output=True, text=True, cwd=str(REPO), timeout=timeout,
                          env=env, check=False)
    if not answer.exists():
      raise AssertionError(f"tool runner failed: {done.stderr[-3000:]}")
    return json.loads(answer.read_text())


def _capture(function):
  """Runs ``function()`` with fds 1 and 2 redirected; returns (code, stdout, stderr)."""
  import traceback  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    try:
      function()
      code = 0
    except SystemExit as e:
      code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:  # pylint: disable=broad-except
      traceback.print_exc()
      code = "traceback"
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      os.dup2(saved[0], 1)
      os.dup2(saved[1], 2)
      os.close(saved[0])
      os.close(saved[1])
    out.seek(0)
    err.seek(0)
    return code, out.read().decode(errors="replace"), err.read().decode(errors="replace")


def _main(request_path: str, answer_path: str) -> None:
  import importlib.util  # pylint: disable=g-import-not-at-top
  request = json.loads(pathlib.Path(request_path).read_text())
  sys.path.insert(0, str(REPO))
  tool_path = REPO / "tools" / request["tool"]
  spec = importlib.util.spec_from_file_location("tool_under_test", tool_path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)  # Defines the flags; imports tools._cli first.
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  from tools import _cli  # pylint: disable=g-import-not-at-top
  results = []
  before = snapshot(request["watch"])
  for argv in request["cases"]:
    flags.FLAGS.unparse_flags()

    def call(argv=argv):
      rest = app._run_init([str(tool_path)] + argv, _cli.parse_flags_or_exit)  # pylint: disable=protected-access
      sys.exit(module.main(rest))
    started = time.perf_counter()
    code, stdout, stderr = _capture(call)
    after = snapshot(request["watch"])
    results.append({"argv": argv, "code": code, "stdout": stdout, "stderr": stderr,
                    "changed": _changes(before, after),
                    "seconds": round(time.perf_counter() - started, 2)})
    before = after
  pathlib.Path(answer_path).write_text(json.dumps(results))


if __name__ == "__main__":
  _main(sys.argv[1], sys.argv[2])
