"""Files written whole or not at all, with their own mode, never through a planted symlink."""

from __future__ import annotations

import os
import stat

import pytest

from spri_dspy.runtime.files import atomic_file, write_atomic


def test_a_file_is_written_with_its_own_mode_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left


def test_a_planted_symlink_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "summary.json.tmp").symlink_to(victim)  # where the old code wrote first
    (tmp_path / "out" / "report.html").symlink_to(victim)  # the target itself a link
    write_atomic(tmp_path / "out" / "summary.json", "new")
    write_atomic(tmp_path / "out" / "report.html", "page")
    assert victim.read_text() == "untouched"
    assert (tmp_path / "out" / "summary.json").read_text() == "new"
    assert not (tmp_path / "out" / "report.html").is_symlink() and (tmp_path / "out" / "report.html").read_text() == "page"


def test_a_failed_write_leaves_the_old_file_whole(tmp_path):
    target = tmp_path / "run.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_file(target) as temporary:
            temporary.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["run.json"]
