"""take_lock: one holder at a time, named by its pid, released when its descriptor closes."""

import os

import pytest

from spri_dspy.locks import LockHeld, take_lock


def test_a_held_lock_names_its_holder_and_frees_when_closed(tmp_path):
    path = tmp_path / "x.lock"
    fd = take_lock(path)
    assert path.read_text() == str(os.getpid())
    with pytest.raises(LockHeld) as held:  # flock: a second open file description conflicts, even in this process
        take_lock(path)
    assert held.value.holder == str(os.getpid()) and str(held.value) == f"held by pid {os.getpid()}"
    os.close(fd)
    os.close(take_lock(path))  # free again
