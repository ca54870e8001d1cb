"""Tests for mlsr_tf.paths: file checks, leftovers of killed writers, memory guard."""

import os

import pytest

from mlsr_tf import paths


def test_check_input_file_names_every_kind_of_non_file(tmp_path):
  (tmp_path / "ok").write_text("x")
  (tmp_path / "empty").write_text("")
  (tmp_path / "dir").mkdir()
  (tmp_path / "loop").symlink_to(tmp_path / "loop")
  os.mkfifo(tmp_path / "fifo")
  assert paths.check_input_file(tmp_path / "ok") == tmp_path / "ok"
  for name, pattern in (("missing", "no such thing: .*missing"), ("empty", "empty' is empty"),
                        ("dir", "dir' is a directory"), ("loop", "cannot read thing .*loop"),
                        ("fifo", "fifo' is not a regular file")):
    with pytest.raises(KeyError, match=pattern):
      paths.check_input_file(tmp_path / name, "thing", KeyError)


def test_stale_temporaries_of_dead_writers_only(tmp_path):
  pattern = r"tmp-(?P<pid>\d+)-.*"
  dead, alive, mine = (tmp_path / f"tmp-{pid}-x" for pid in (999999999, 1, os.getpid()))
  for path in (dead, alive, mine, tmp_path / "other"):
    path.write_text("x")
  (tmp_path / "tmp-999999998-dir").mkdir()
  removed = paths.remove_stale_temporaries(tmp_path, pattern)
  assert sorted(p.name for p in removed) == ["tmp-999999998-dir", dead.name]
  assert alive.exists() and mine.exists()  # pid 1 is alive; ours is in progress.
  paths.remove_stale_temporaries(tmp_path, pattern, dead_writers_only=False)
  assert sorted(p.name for p in tmp_path.iterdir()) == ["other", mine.name]
  assert paths.remove_stale_temporaries(tmp_path / "absent", pattern) == []


def test_same_file_never_raises(tmp_path):
  (tmp_path / "a").write_text("x")
  (tmp_path / "link").symlink_to(tmp_path / "a")
  (tmp_path / "loop").symlink_to(tmp_path / "loop")
  assert paths.same_file(tmp_path / "a", tmp_path / "link")
  assert not paths.same_file(tmp_path / "a", tmp_path / "loop")
  assert paths.same_file(tmp_path / "loop", tmp_path / "loop")
  assert paths.same_file(tmp_path / "new", tmp_path / "." / "new")


def test_memory_guard():
  paths.check_memory(1 << 20, "a small array")
  with pytest.raises(ValueError, match="a huge array needs .* GiB, more than half"):
    paths.check_memory(1 << 60, "a huge array")
