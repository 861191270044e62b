"""Crash-safe file writes: nothing a user saved is ever half-written or lost."""
from __future__ import annotations

import contextlib
import os
import uuid


def temporary_path(path: str) -> str:
    """A hidden, unique sibling of `path` (`.<name>.<hex>.tmp`), in the same folder so
    that `os.replace` is an atomic rename on the same file system."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:12]}.tmp")


def fsync_dir(directory: str) -> None:
    """Make a rename in `directory` durable (best effort where folders cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # e.g. Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_file(path: str):
    """Open a temporary sibling of `path` for binary writing; commit it on success.

    On a normal exit the file is flushed, fsync-ed, `os.replace`d onto `path` and
    the folder is fsync-ed. On any exception (including one raised by the caller to
    reject what it wrote) the temporary file is removed and `path` is untouched.
    """
    tmp = temporary_path(path)
    try:
        with open(tmp, "xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
