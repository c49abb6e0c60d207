"""take_lock: one holder at a time, named by its pid, released when its descriptor closes."""

import os

import pytest

from spri_dspy.runtime.locks import LockHeld, take_lock


def test_a_held_lock_names_its_holder_and_frees_when_closed(tmp_path):
    path = tmp_path / "x.lock"
    fd = take_lock(path)
    assert path.read_text() == str(os.getpid())
    with pytest.raises(LockHeld) as held:  # flock: a second open file description conflicts, even in this process
        take_lock(path)
    assert held.value.holder == str(os.getpid()) and str(held.value) == f"held by pid {os.getpid()}"
    os.close(fd)
    os.close(take_lock(path))  # free again


def test_the_lock_file_holds_exactly_this_pid(tmp_path):
    """An older holder's longer pid must not leave digits behind (the file is truncated first)."""
    import os

    from spri_dspy.runtime.locks import take_lock

    path = tmp_path / ".lock"
    path.write_text("99999999999999")
    fd = take_lock(path)
    try:
        assert path.read_text() == str(os.getpid())
    finally:
        os.close(fd)
