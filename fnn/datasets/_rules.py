"""Argument rules the data sets share, for the tables of `fnn._checks.checked`.

Each rule is `rule(name, value) -> value`, the value checked (and normalised), or a
`BadValue`/`BadType` whose message the public function names ("mnist: split must be ...").
"""
from __future__ import annotations

import os
from typing import Any

from fnn._checks import BadType, BadValue, require_key


def a_key(name: str, key: Any) -> Any:
    """One PRNG key (`jax.random.key(seed)` or `jax.random.PRNGKey(seed)`)."""
    require_key(key)
    return key


def a_split(name: str, split: Any) -> str:
    """`"train"` or `"test"`."""
    if split not in ("train", "test"):
        raise BadValue(f"{name} must be 'train' or 'test', got {split!r}.")
    return split


def a_folder(name: str, folder: Any) -> str | None:
    """None, or a folder path (a str or `os.PathLike`) as a str."""
    if folder is None:
        return None
    if not isinstance(folder, (str, os.PathLike)):
        raise BadType(f"{name} must be None or a folder path (a str or os.PathLike), "
                      f"got {folder!r}.")
    return os.fspath(folder)
