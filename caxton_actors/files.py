"""Files written whole or not at all: the one way this node replaces a file it keeps."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomically(path: Path, data: bytes, *, sync_directory: bool = False) -> None:
    """Replace ``path`` with ``data``: a crash leaves the old file or the new, whole.

    The temporary file is created 0o600 (``mkstemp``), flushed and fsynced, then renamed
    over ``path``; ``sync_directory`` also makes the rename itself survive a power loss.
    An ``OSError`` propagates, and ``path`` is then untouched.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    if sync_directory:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
