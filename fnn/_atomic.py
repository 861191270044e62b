"""Crash-safe file writes: nothing a user saved is ever half-written or lost."""
from __future__ import annotations

import contextlib
import os
import uuid

_SEPARATORS = tuple(s for s in (os.sep, os.altsep) if s)


def temporary_path(path: str) -> str:
    """A hidden, unique sibling of `path` (`.<name>.<hex>.tmp`), in the same folder so
    that `os.replace` is an atomic rename on the same file system. The name is cut to
    48 characters, so that the temporary name stays within the file system's limit
    (255 bytes) for any name the target itself may have."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name[:48]}.{uuid.uuid4().hex[:12]}.tmp")


def check_target(where: str | None, path: str) -> None:
    """Raise an `OSError` naming `path` (never the temporary file) unless a file can be
    written there: `IsADirectoryError` when `path` is a folder (or ends with a path
    separator), `FileNotFoundError` / `NotADirectoryError` when its folder is missing
    or is a file. Folders are never created here: a missing one may be a typo.
    `where` (the caller, e.g. "fnn.checkpoint.save") starts the message."""
    prefix = f"{where}: " if where else ""
    if os.path.isdir(path) or path.endswith(_SEPARATORS):
        raise IsADirectoryError(f"{prefix}{path} is a folder; expected the path of a file "
                                "to write.")
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(folder):
        return
    if os.path.exists(folder):
        raise NotADirectoryError(f"{prefix}cannot write {path}: {folder} is a file, not a folder.")
    raise FileNotFoundError(
        f"{prefix}cannot write {path}: the folder {folder} does not exist; create it first "
        "(os.makedirs(folder, exist_ok=True))."
    )


def _naming(where: str | None, path: str, error: OSError) -> OSError:
    """`error` (raised for the temporary file) as the same type, naming `path` instead."""
    prefix = f"{where}: " if where else ""
    return type(error)(f"{prefix}cannot write {path}: {error.strerror or error}.")


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
def atomic_file(path: str, where: str | None = None):
    """Open a temporary sibling of `path` for binary writing; commit it on success.

    On a normal exit the file is flushed, fsync-ed, `os.replace`d onto `path` and
    the folder is fsync-ed. On any exception (including one raised by the caller to
    reject what it wrote) the temporary file is removed and `path` is untouched.
    A `path` that cannot be written (see `check_target`), or an `OSError` from
    creating the temporary file or renaming it, raises an `OSError` of the same
    type naming `path` (and `where`, the caller); an exception
    raised by the caller's own code passes through unchanged.
    """
    check_target(where, path)
    tmp = temporary_path(path)
    try:
        f = open(tmp, "xb")
    except OSError as e:
        raise _naming(where, path, e) from None
    try:
        with f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as e:
            raise _naming(where, path, e) from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))
