"""safetensors files of nested dicts of arrays (fnn params and state).

A nested dict is stored flat, its keys joined with `/`:
`{"0_Conv2D": {"w": ..., "b": ...}}` ↔ tensors `"0_Conv2D/w"`, `"0_Conv2D/b"`. The
files are plain safetensors (readable by `safetensors.torch.load_file`, and any
safetensors file of tensors loads here), written atomically (`fnn/_atomic.py`).
`like=` checks the tree as `fnn.checkpoint.load` does, with the same checks (the
checkpoint codec's `restore`).
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping

import jax
import numpy as np

from fnn._atomic import atomic_file
from fnn._checks import BadType, BadValue, describe_value, named
from fnn._codec import Mismatch, Stored, restore

__all__ = ["save_safetensors", "load_safetensors", "flatten", "unflatten"]

_SEPARATOR = "/"
# safetensors dtype names (the format's header) <-> NumPy (JAX's extension types)
_DTYPES = {"BOOL": np.bool_, "U8": np.uint8, "I8": np.int8, "U16": np.uint16, "I16": np.int16,
           "U32": np.uint32, "I32": np.int32, "U64": np.uint64, "I64": np.int64,
           "F16": np.float16, "F32": np.float32, "F64": np.float64,
           "BF16": jax.numpy.bfloat16, "F8_E4M3": jax.numpy.float8_e4m3fn,
           "F8_E5M2": jax.numpy.float8_e5m2}


def _path(path, hint: str = "") -> str:
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise BadType(f"path must be a str or os.PathLike, got {describe_value(path)}.{hint}")
    path = os.fsdecode(path)
    if not path:
        raise BadValue("path must not be empty.")
    return path


def flatten(tree, prefix: str = "") -> dict[str, np.ndarray]:
    """`{"a": {"b": x}}` → `{"a/b": x}` (NumPy arrays); other containers and keys with `/`
    are a `BadType`/`BadValue` naming the path."""
    if not isinstance(tree, Mapping):
        raise BadType(f"expected a (nested) dict of arrays, got {describe_value(tree)}"
                      f"{f' at {prefix!r}' if prefix else ''}.")
    out: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        if not isinstance(key, str) or not key or _SEPARATOR in key:
            raise BadValue(f"keys must be non-empty strings without '{_SEPARATOR}' (it joins "
                           f"nested keys), got {key!r}{f' in {prefix!r}' if prefix else ''}.")
        name = f"{prefix}{_SEPARATOR}{key}" if prefix else key
        if isinstance(value, Mapping):
            out.update(flatten(value, name))
        elif isinstance(value, (jax.Array, np.ndarray, np.generic)) and not isinstance(
                value, jax.core.Tracer):
            array = np.asarray(value)
            if array.dtype.type not in _DTYPES.values():
                raise BadType(f"{name!r} has dtype {array.dtype}, which safetensors does not "
                              f"hold (it holds {', '.join(sorted(_DTYPES))}).")
            out[name] = np.array(array, order="C")
        else:
            raise BadType(f"{name!r} must be an array or a dict, got {describe_value(value)}.")
    return out


def unflatten(arrays: Mapping[str, np.ndarray]) -> dict:
    """The nested dict of `flatten`'s output (`"a/b"` → `{"a": {"b": ...}}`)."""
    tree: dict = {}
    for name, value in arrays.items():
        *outer, last = name.split(_SEPARATOR)
        node = tree
        for key in outer:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise BadValue(f"tensor {name!r} lies under {key!r}, which is itself a tensor.")
        if last in node:
            raise BadValue(f"tensor {name!r} clashes with a group of the same name.")
        node[last] = value
    return tree


@named("fnn.interop.save_safetensors")
def save_safetensors(path, tree) -> str:
    """Write a nested dict of arrays to a safetensors file, atomically; returns the path.

    **Arguments:**
    - `path`: the file (str or `os.PathLike`); its folder must exist.
    - `tree`: a nested dict with string keys (no `/`) and array leaves (`jax.Array`,
      NumPy; bool, ints, float16/32/64, bfloat16, float8), e.g. `params`. Nested keys
      are joined with `/`. Empty dicts are not stored.

    Needs the `safetensors` package (`pip install fnn[interop]`). On any failure the
    file at `path` is untouched.
    """
    swapped = isinstance(tree, (str, os.PathLike)) and not isinstance(path, (str, os.PathLike))
    path = _path(path, " The arguments are save_safetensors(path, tree)." if swapped else "")
    arrays = flatten(tree)
    import safetensors.numpy
    with atomic_file(path, "fnn.interop.save_safetensors") as f:
        f.write(safetensors.numpy.save(arrays))
    return path


def _read(path: str) -> dict[str, np.ndarray]:
    import safetensors
    with open(path, "rb") as f:
        data = f.read()
    try:
        entries = safetensors.deserialize(data)
    except Exception as e:  # noqa: BLE001 - the parser's own error type varies by version
        raise BadValue(f"{path} is not a valid safetensors file: {e}") from None
    out = {}
    for name, entry in entries:
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise BadValue(f"{path}: tensor {name!r} has dtype {entry['dtype']}, which fnn "
                           f"does not read (it reads {', '.join(sorted(_DTYPES))}).")
        array = np.frombuffer(bytes(entry["data"]), dtype)
        out[name] = array.reshape(entry["shape"]) if math.prod(entry["shape"]) else np.zeros(
            entry["shape"], dtype)
    return dict(sorted(out.items()))


@named("fnn.interop.load_safetensors")
def load_safetensors(path, like=None):
    """Read a safetensors file as a nested dict (names split at `/`).

    **Arguments:**
    - `path`: the file (written by `save_safetensors`, `safetensors.torch.save_file`, ...).
    - `like`: an optional nested dict with the expected structure (arrays or
      `jax.ShapeDtypeStruct`s), e.g. `model.init`'s params.

    **Returns** the nested dict of `jax.Array`s (sorted keys; 64-bit arrays stay NumPy
    when JAX's x64 is off). With `like`, its key order and leaf types (a NumPy leaf
    gives NumPy) after checking structure, dtypes and shapes as `fnn.checkpoint.load`
    does: a `ValueError` names the first mismatching leaf, what `like` expects and
    what the file holds. A missing file is a `FileNotFoundError`, a folder an
    `IsADirectoryError`, a damaged file a `ValueError`.
    """
    path = _path(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"fnn.interop.load_safetensors: {path} does not exist.")
    if os.path.isdir(path):
        raise IsADirectoryError(f"fnn.interop.load_safetensors: {path} is a folder; expected "
                                "a .safetensors file.")
    tree = unflatten({k: Stored(v, "jax", False) for k, v in _read(path).items()})
    if like is None:
        return restore(tree)
    try:
        return restore(tree, like)
    except Mismatch as e:
        where, expected, found = e.args
        raise BadValue(f"{path} does not match `like` at {where}: expected {expected} (from "
                       f"like), found {found} in the file.") from None
