"""Writing a file whole or not at all, safely in a folder others can write to.

:func:`atomic_file` writes to a temporary file of its own (a fresh, unique name beside the target, created
exclusively, so a symlink planted at a predictable ``*.tmp`` name is never followed), sets the mode
explicitly (never the umask's world-writable bits), syncs it, then renames it over the target (a rename
replaces a symlink at the target rather than writing through it). A crash leaves the old file whole.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

MODE = 0o644
"""The mode of every file written here: the owner writes, everyone reads."""


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: int = MODE) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path`` to write; on success it becomes ``path`` (mode ``mode``),
    on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(temporary)
        os.chmod(temporary, mode)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def write_atomic(path: str | os.PathLike, text: str, mode: int = MODE) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (see :func:`atomic_file`)."""
    with atomic_file(path, mode) as temporary:
        temporary.write_text(text, encoding="utf-8")
