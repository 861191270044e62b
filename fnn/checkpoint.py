"""Checkpoints: pytrees of arrays in one `.npz` file, written atomically, never pickled.

    fnn.checkpoint.save(path, tree, *, metadata=None)
    tree = fnn.checkpoint.load(path, like=None)
    meta = fnn.checkpoint.load_metadata(path)
    manager = fnn.checkpoint.CheckpointManager(directory, keep=3)

**What can be saved.** Any pytree built from `dict` (string keys; also
`OrderedDict`/`defaultdict`), `list`, `tuple`, `NamedTuple` (e.g. optimizer
states) and `None`, whose leaves are numeric arrays (`jax.Array`, `np.ndarray`,
NumPy scalars; bool, int, uint, float, complex and JAX's extra dtypes such as
bfloat16), Python `bool`/`int`/`float`/`complex` scalars, typed PRNG keys
(`jax.random.key`) and raw `uint32` keys (`jax.random.PRNGKey`, plain arrays).
Anything else (object arrays, strings, traced values, other classes) raises
`TypeError` naming the leaf path: a checkpoint never holds Python objects.

**On-disk format (version 1).** A standard uncompressed `.npz` (zip) archive
readable with `np.load(path, allow_pickle=False)`:

- `__fnn_meta__.npy`: a 0-d unicode array holding JSON
  `{"format": "fnn.checkpoint", "version": 1, "tree": NODE, "metadata": {...}}`.
  `NODE` describes the tree: `{"type": "dict", "keys": [...], "children": [...]}`,
  `{"type": "list"|"tuple", "children": [...]}`,
  `{"type": "namedtuple", "name": "AdamState", "fields": [...], "children": [...]}`,
  `{"type": "none"}`, or a leaf `{"type": "array", "entry", "dtype", "shape",
  "array_type": "jax"|"numpy"|"numpy_scalar", "weak_type"}`,
  `{"type": "key", "entry", "impl", "shape"}` (typed PRNG key; the entry holds
  `jax.random.key_data`), `{"type": "int"|"float"|"bool"|"complex", "entry"}`
  (Python scalars, stored as 0-d int64/float64/bool/complex128 arrays).
  `metadata` is the caller's JSON object (a trainer's config and step).
- one `<entry>.npy` per leaf, named by its pytree path: `tree/params/0_Dense/w`
  (dict keys, sequence indices and NamedTuple field names joined by `/`; any
  character outside `[A-Za-z0-9_.-]` in a key is written `%XX` (UTF-8)).
  Extension dtypes (bfloat16, float8, int4, ...) are stored as the unsigned
  integers of the same width and viewed back on load.

**Reading is defensive.** `load` checks every zip CRC, refuses compressed,
encrypted, duplicated, missing and extra entries, checks every `.npy` header
(dtype, shape and byte count against the metadata) before reading the data, and
loads arrays with `np.load(..., allow_pickle=False)`: nothing in a file is ever
executed. Any defect raises `ValueError("fnn.checkpoint.load: <path> is not a
valid fnn checkpoint: <reason>")`; a missing file raises `FileNotFoundError`.

**Writing is atomic.** `save` writes a temporary file `.<name>.<random>.tmp` (the
name cut to 48 characters) in the target's folder, flushes and `os.fsync`s it,
`os.replace`s it onto the target and fsyncs the folder. A crash before the replace
leaves the previous file untouched (a killed process may leave the hidden `.tmp`
file behind; it is never mistaken for a checkpoint; an exception removes it).
Identical trees give byte-identical files.
"""
from __future__ import annotations

import collections
import functools
import io
import json
import math
import os
import re
import zipfile

import jax
import jax.numpy as jnp
import numpy as np

from fnn._atomic import atomic_file
from fnn._checks import describe_value

__all__ = ["save", "load", "load_metadata", "CheckpointManager", "FORMAT_VERSION"]

FORMAT_NAME = "fnn.checkpoint"
FORMAT_VERSION = 1
_META = "__fnn_meta__"
_ROOT = "tree"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")

_NATIVE_DTYPES = frozenset([
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
])
# JAX's extension dtypes (from ml_dtypes): stored as unsigned ints of the same width.
_EXTENSION_DTYPES = {
    name: np.dtype(getattr(jnp, name))
    for name in ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz",
                 "float8_e5m2fnuz", "float8_e4m3b11fnuz", "float8_e3m4", "float8_e4m3",
                 "float8_e8m0fnu", "float4_e2m1fn", "int4", "uint4", "int2", "uint2")
    if hasattr(jnp, name)
}
_SCALARS = {"bool": (bool, "bool"), "int": (int, "int64"), "float": (float, "float64"),
            "complex": (complex, "complex128")}


# ---------------------------------------------------------------------------
# paths


def _as_path(where: str, path, name: str = "path", hint: str = "") -> str:
    """A file or folder argument (str, bytes or os.PathLike) as a non-empty str."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{where}: {name} must be a str or os.PathLike (e.g. pathlib.Path), "
                        f"got {describe_value(path)}.{hint}")
    path = os.fsdecode(path)
    if not path:
        raise ValueError(f"{where}: {name} must not be empty.")
    return path


def _keystr(path) -> str:
    """A leaf path in `jax.tree_util.keystr` style: `['params']['w']`, `[0]`, `.mu`."""
    parts = []
    for kind, k in path:
        parts.append(f".{k}" if kind == "field" else f"[{k!r}]" if kind == "key" else f"[{k}]")
    return "".join(parts) or "(the root)"


def _escape(key: str) -> str:
    """Injective, zip-safe spelling of one dict key."""
    if key == "":
        return "%"
    if set(key) <= {"."}:
        return "".join("%2E" for _ in key)
    return "".join(
        c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
        for c in key
    )


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def _is_key_dtype(dtype) -> bool:
    try:
        return jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)
    except TypeError:
        return False


# ---------------------------------------------------------------------------
# save


def _dtype_name(where: str, dtype: np.dtype) -> str:
    if dtype.hasobject:
        raise TypeError(
            f"fnn.checkpoint.save: leaf {where} is an object array (dtype object); checkpoints "
            "hold only numeric arrays and never pickle. Convert it to a numeric array."
        )
    name = dtype.name
    if name in _EXTENSION_DTYPES and dtype == _EXTENSION_DTYPES[name]:
        return name
    if dtype.kind in "biufc" and np.dtype(name) == dtype.newbyteorder("="):
        if name in _NATIVE_DTYPES:
            return name
    raise TypeError(
        f"fnn.checkpoint.save: leaf {where} has unsupported dtype {dtype}; supported: "
        f"{sorted(_NATIVE_DTYPES | set(_EXTENSION_DTYPES))}."
    )


def _storage_dtype(name: str) -> np.dtype:
    if name in _EXTENSION_DTYPES:
        return np.dtype(f"uint{8 * _EXTENSION_DTYPES[name].itemsize}")
    return np.dtype(name)


class _Encoder:
    """Walks a pytree, returning its JSON description and collecting leaf arrays."""

    def __init__(self):
        self.arrays: dict[str, np.ndarray] = {}

    def _add(self, entry: str, array: np.ndarray) -> str:
        if entry in self.arrays:  # cannot happen with the escaping above; be loud if it does
            raise ValueError(f"fnn.checkpoint.save: two leaves map to the entry {entry!r}.")
        self.arrays[entry] = array
        return entry

    def node(self, x, path: tuple, entry: str) -> dict:
        where = _keystr(path)
        if x is None:
            return {"type": "none"}
        if isinstance(x, jax.core.Tracer):
            raise TypeError(
                f"fnn.checkpoint.save: leaf {where} is a traced value ({x}); save concrete "
                "arrays outside jax.jit/grad/vmap."
            )
        dtype = getattr(x, "dtype", None)
        if isinstance(x, jax.Array) and _is_key_dtype(dtype):
            data = np.asarray(jax.random.key_data(x))
            return {"type": "key", "entry": self._add(entry, data),
                    "impl": str(jax.random.key_impl(x)), "shape": list(x.shape)}
        if isinstance(x, (jax.Array, np.ndarray, np.generic)):
            array = np.asarray(x)
            name = _dtype_name(where, array.dtype)
            if not array.dtype.isnative:
                array = array.astype(array.dtype.newbyteorder("="))
            if name in _EXTENSION_DTYPES:
                array = array.view(_storage_dtype(name))
            array_type = ("jax" if isinstance(x, jax.Array)
                          else "numpy_scalar" if isinstance(x, np.generic) else "numpy")
            spec = {"type": "array", "entry": self._add(entry, array), "dtype": name,
                    "shape": list(array.shape), "array_type": array_type}
            if array_type == "jax":
                spec["weak_type"] = bool(getattr(x, "weak_type", False))
            return spec
        for kind, (pytype, storage) in _SCALARS.items():
            if isinstance(x, pytype) and (kind == "bool" or not isinstance(x, bool)):
                try:
                    value = np.asarray(x, dtype=storage)
                except OverflowError:
                    raise ValueError(
                        f"fnn.checkpoint.save: Python int {x} at {where} does not fit in int64."
                    ) from None
                return {"type": kind, "entry": self._add(entry, value)}
        if isinstance(x, dict) and type(x) in (dict, collections.OrderedDict,
                                               collections.defaultdict):
            keys = list(x)
            for k in keys:
                if not isinstance(k, str):
                    raise TypeError(
                        f"fnn.checkpoint.save: dict at {where} has a non-string key {k!r}; "
                        "checkpoint dict keys must be str."
                    )
            children = [self.node(x[k], (*path, ("key", k)), f"{entry}/{_escape(k)}")
                        for k in keys]
            return {"type": "dict", "keys": keys, "children": children}
        if _is_namedtuple(x):
            fields = [str(f) for f in type(x)._fields]
            children = [self.node(v, (*path, ("field", f)), f"{entry}/{f}")
                        for f, v in zip(fields, x, strict=True)]
            return {"type": "namedtuple", "name": type(x).__name__, "fields": fields,
                    "children": children}
        if type(x) in (list, tuple):
            children = [self.node(v, (*path, ("index", i)), f"{entry}/{i}")
                        for i, v in enumerate(x)]
            return {"type": type(x).__name__, "children": children}
        raise TypeError(
            f"fnn.checkpoint.save: unsupported value of type {type(x).__qualname__} at {where}. "
            "Checkpoints hold dicts (str keys), lists, tuples, NamedTuples, None, numeric "
            "arrays, Python bool/int/float/complex and PRNG keys; put other information "
            "(strings, configs) in `metadata`."
        )


def _write_npz(fileobj, arrays: dict[str, np.ndarray]) -> None:
    with zipfile.ZipFile(fileobj, mode="w", compression=zipfile.ZIP_STORED,
                         allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(name + ".npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.external_attr = 0o644 << 16
            with zf.open(info, mode="w", force_zip64=True) as f:
                np.lib.format.write_array(f, array, allow_pickle=False)


def save(path, tree, *, metadata: dict | None = None) -> str:
    """Write `tree` to `path` (one `.npz`, atomically) and return the path as a string.

    **Arguments:**
    - `path`: the file to write, a str or `os.PathLike` (used as given; no `.npz` is
      appended). Its folder must exist (it is not created: a missing folder is more
      often a typo than a wish; `CheckpointManager` creates its own folder).
    - `tree`: a pytree of arrays and Python scalars (see the module docstring).
    - `metadata`: an optional JSON-serialisable dict stored beside the tree (e.g. a
      trainer's `{"step": 12, "config": {...}}`); read it back with `load_metadata`.

    Raises `TypeError` for unsupported leaves or containers (object arrays, strings,
    traced values), naming the leaf path, for metadata JSON cannot encode and for a
    `path` that is not a str or `os.PathLike`; `IsADirectoryError` when `path` is a
    folder and `FileNotFoundError` when its folder does not exist, naming `path`. On
    any failure the file at `path` is untouched and no temporary file is left behind.
    """
    where = "fnn.checkpoint.save"
    swapped = isinstance(tree, (str, os.PathLike)) and not isinstance(path, (str, os.PathLike))
    path = _as_path(where, path, hint=" The arguments are save(path, tree)." if swapped else "")
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"fnn.checkpoint.save: metadata must be a dict or None, got {metadata!r}.")
    # atomic_file checks the target before the (possibly slow) encoding; an encoding
    # error removes its temporary file and passes through unchanged
    with atomic_file(path, where) as f:
        encoder = _Encoder()
        spec = encoder.node(tree, (), _ROOT)
        header = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "tree": spec,
                  "metadata": dict(metadata or {})}
        try:
            text = json.dumps(header, ensure_ascii=True)
        except (TypeError, ValueError) as e:
            raise TypeError(f"fnn.checkpoint.save: metadata must be JSON-serialisable: {e}") from e
        arrays = {_META: np.asarray(text)}
        arrays.update(encoder.arrays)
        _write_npz(f, arrays)
    return path


# ---------------------------------------------------------------------------
# load: read and validate the archive


class _Corrupt(Exception):
    """Internal: the file is not a valid checkpoint (becomes ValueError)."""


def _invalid(path: str, reason: str) -> ValueError:
    return ValueError(f"fnn.checkpoint.load: {path} is not a valid fnn checkpoint: {reason}")


def _read_npy(name: str, data: bytes) -> np.ndarray:
    """Parse one `.npy` entry, checking its header before touching the data."""
    bio = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(bio)
    except ValueError:
        raise _Corrupt(f"entry {name!r} is not a .npy array") from None
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(bio)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(bio)
    else:
        raise _Corrupt(f"entry {name!r} has unsupported .npy version {version}")
    if dtype.hasobject:
        raise _Corrupt(f"entry {name!r} holds an object array (pickled Python objects); "
                       "fnn never unpickles")
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - bio.tell() != expected:
        raise _Corrupt(f"entry {name!r} holds {len(data) - bio.tell()} data bytes, its header "
                       f"({dtype}, shape {shape}) needs {expected}")
    bio.seek(0)
    return np.load(bio, allow_pickle=False)


def _open_archive(path: str, only_meta: bool = False):
    """Return (header dict, {entry: array}) or raise _Corrupt / OSError."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(4)
        if not head.startswith(b"PK"):
            what = ("a raw pickle" if head[:1] == b"\x80" else
                    "a single .npy array" if head[:1] == b"\x93" else "not a zip archive")
            raise _Corrupt(f"{what} (an fnn checkpoint is an .npz zip archive)")
        f.seek(0)
        try:
            zf = zipfile.ZipFile(f)
        except zipfile.BadZipFile as e:
            raise _Corrupt(f"damaged or truncated zip archive ({e})") from None
        with zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise _Corrupt("duplicate entries in the archive")
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:
                    raise _Corrupt(f"entry {info.filename!r} is compressed or encrypted; "
                                   "fnn writes plain stored entries")
                if info.file_size != info.compress_size:
                    raise _Corrupt(f"entry {info.filename!r} has inconsistent sizes")
                if not info.filename.endswith(".npy"):
                    raise _Corrupt(f"unexpected entry {info.filename!r}")
            if sum(i.file_size for i in infos) > size:
                raise _Corrupt("entry sizes exceed the file size")
            if _META + ".npy" not in names:
                raise _Corrupt(f"no {_META} entry (not written by fnn.checkpoint.save)")
            wanted = [_META + ".npy"] if only_meta else names
            arrays = {}
            for name in wanted:
                try:
                    data = zf.read(name)  # checks the CRC-32
                except (zipfile.BadZipFile, EOFError) as e:
                    raise _Corrupt(f"entry {name!r} is damaged ({e})") from None
                arrays[name[:-4]] = _read_npy(name, data)
    meta = arrays.pop(_META)
    if meta.shape != () or meta.dtype.kind != "U":
        raise _Corrupt(f"{_META} must be a 0-d unicode array, got {meta.dtype} {meta.shape}")
    try:
        header = json.loads(str(meta[()]))
    except (ValueError, RecursionError) as e:
        raise _Corrupt(f"{_META} is not valid JSON ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
        raise _Corrupt(f"{_META} does not describe an {FORMAT_NAME} file")
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise _Corrupt(f"format version must be an int, got {version!r}")
    if version > FORMAT_VERSION:
        raise _Corrupt(f"written in format version {version}; this fnn reads up to "
                       f"version {FORMAT_VERSION} (upgrade fnn)")
    if version < 1:
        raise _Corrupt(f"unknown format version {version}")
    if set(header) != {"format", "version", "tree", "metadata"}:
        raise _Corrupt(f"unexpected header fields {sorted(header)}")
    if not isinstance(header["metadata"], dict):
        raise _Corrupt("metadata must be a JSON object")
    return header, arrays


# ---------------------------------------------------------------------------
# load: decode the tree description into validated nodes


class _Node:
    __slots__ = ("type", "names", "children", "name")

    def __init__(self, type_, children=(), names=None, name=None):
        self.type, self.children, self.names, self.name = type_, list(children), names, name


class _Leaf:
    __slots__ = ("type", "value", "array_type", "weak_type")

    def __init__(self, type_, value, array_type=None, weak_type=False):
        self.type, self.value, self.array_type, self.weak_type = type_, value, array_type, weak_type


def _expect_fields(spec: dict, fields: set, where: str) -> None:
    if set(spec) != fields:
        raise _Corrupt(f"node at {where} has fields {sorted(spec)}, expected {sorted(fields)}")


def _expect_shape(value, where: str) -> tuple:
    if not isinstance(value, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in value
    ):
        raise _Corrupt(f"shape at {where} must be a list of non-negative ints, got {value!r}")
    return tuple(value)


def _str_list(value, what: str, where: str) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Corrupt(f"{what} at {where} must be a list of strings")
    if len(set(value)) != len(value):
        raise _Corrupt(f"{what} at {where} has duplicates")
    return value


@functools.lru_cache(maxsize=256)
def _namedtuple_class(name: str, fields: tuple):
    return collections.namedtuple(name, fields)


class _Decoder:
    def __init__(self, arrays: dict):
        self.arrays = arrays
        self.used: set[str] = set()

    def _take(self, spec: dict, where: str, dtype: np.dtype, shape: tuple) -> np.ndarray:
        entry = spec.get("entry")
        if not isinstance(entry, str) or entry not in self.arrays:
            raise _Corrupt(f"leaf {where}: its entry {entry!r} is missing from the archive")
        if entry in self.used:
            raise _Corrupt(f"leaf {where}: entry {entry!r} is used twice")
        self.used.add(entry)
        array = self.arrays[entry]
        if array.dtype != dtype or array.shape != shape:
            raise _Corrupt(f"leaf {where}: entry {entry!r} holds {array.dtype}{list(array.shape)}, "
                           f"metadata says {dtype}{list(shape)}")
        return array

    def node(self, spec, path: tuple):
        where = _keystr(path)
        if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
            raise _Corrupt(f"node at {where} is not a typed JSON object")
        t = spec["type"]
        if t == "none":
            _expect_fields(spec, {"type"}, where)
            return _Node("none")
        if t in ("list", "tuple"):
            _expect_fields(spec, {"type", "children"}, where)
            children = spec["children"]
            if not isinstance(children, list):
                raise _Corrupt(f"children at {where} must be a list")
            return _Node(t, [self.node(c, (*path, ("index", i))) for i, c in enumerate(children)])
        if t in ("dict", "namedtuple"):
            names_field = "keys" if t == "dict" else "fields"
            extra = {"name"} if t == "namedtuple" else set()
            _expect_fields(spec, {"type", names_field, "children"} | extra, where)
            names = _str_list(spec[names_field], names_field, where)
            children = spec["children"]
            if not isinstance(children, list) or len(children) != len(names):
                raise _Corrupt(f"{names_field} and children at {where} differ in length")
            name = None
            if t == "namedtuple":
                name = spec["name"]
                if not isinstance(name, str):
                    raise _Corrupt(f"namedtuple name at {where} must be a string")
                try:
                    _namedtuple_class(name, tuple(names))
                except (ValueError, TypeError) as e:
                    raise _Corrupt(f"invalid namedtuple at {where}: {e}") from None
            kind = "key" if t == "dict" else "field"
            kids = [self.node(c, (*path, (kind, k))) for k, c in zip(names, children, strict=True)]
            return _Node(t, kids, names=names, name=name)
        if t == "array":
            _expect_fields(spec, {"type", "entry", "dtype", "shape", "array_type"}
                           | ({"weak_type"} if "weak_type" in spec else set()), where)
            name = spec["dtype"]
            if name not in _NATIVE_DTYPES and name not in _EXTENSION_DTYPES:
                raise _Corrupt(f"leaf {where}: unsupported dtype {name!r}")
            array_type, weak = spec["array_type"], spec.get("weak_type", False)
            if array_type not in ("jax", "numpy", "numpy_scalar") or not isinstance(weak, bool):
                raise _Corrupt(f"leaf {where}: bad array_type/weak_type")
            shape = _expect_shape(spec["shape"], where)
            if array_type == "numpy_scalar" and shape != ():
                raise _Corrupt(f"leaf {where}: a NumPy scalar must have shape []")
            array = self._take(spec, where, _storage_dtype(name), shape)
            if name in _EXTENSION_DTYPES:
                array = array.view(_EXTENSION_DTYPES[name])
            return _Leaf("array", array, array_type, weak)
        if t == "key":
            _expect_fields(spec, {"type", "entry", "impl", "shape"}, where)
            shape, impl = _expect_shape(spec["shape"], where), spec["impl"]
            entry = spec.get("entry")
            data = self.arrays.get(entry) if isinstance(entry, str) else None
            if not isinstance(impl, str) or data is None or data.shape[:len(shape)] != shape:
                raise _Corrupt(f"leaf {where}: bad PRNG key description")
            data = self._take(spec, where, np.dtype("uint32"), data.shape)
            try:
                key = jax.random.wrap_key_data(jnp.asarray(data), impl=impl)
            except Exception as e:  # noqa: BLE001 - any failure means bad key data
                raise _Corrupt(f"leaf {where}: cannot rebuild a {impl!r} PRNG key ({e})") from None
            if key.shape != shape:
                raise _Corrupt(f"leaf {where}: key data do not match shape {list(shape)}")
            return _Leaf("key", key)
        if t in _SCALARS:
            _expect_fields(spec, {"type", "entry"}, where)
            pytype, storage = _SCALARS[t]
            return _Leaf(t, pytype(self._take(spec, where, np.dtype(storage), ())[()]))
        raise _Corrupt(f"node at {where} has unknown type {t!r}")


def _decode(header: dict, arrays: dict):
    decoder = _Decoder(arrays)
    root = decoder.node(header["tree"], ())
    extra = sorted(set(arrays) - decoder.used)
    if extra:
        raise _Corrupt(f"entries not described by the metadata: {extra[:5]}")
    return root


# ---------------------------------------------------------------------------
# load: build the output tree


def _to_jax(array: np.ndarray, weak_type: bool):
    """A jax array, unless JAX's current mode would change the dtype (64-bit without x64)."""
    if jax.dtypes.canonicalize_dtype(array.dtype) != array.dtype:
        return array
    out = jnp.asarray(array)
    if weak_type:
        try:  # no public API creates a weakly typed array; fall back to a strong one
            from jax._src.lax.lax import _convert_element_type
            out = _convert_element_type(out, np.dtype(out.dtype), weak_type=True)
        except Exception:  # noqa: BLE001
            pass
    return out


def _leaf_value(leaf: _Leaf):
    if leaf.type != "array":
        return leaf.value
    if leaf.array_type == "numpy":
        return leaf.value
    if leaf.array_type == "numpy_scalar":
        return leaf.value[()]
    return _to_jax(leaf.value, leaf.weak_type)


def _build(node):
    if isinstance(node, _Leaf):
        return _leaf_value(node)
    if node.type == "none":
        return None
    children = [_build(c) for c in node.children]
    if node.type == "dict":
        return dict(zip(node.names, children, strict=True))
    if node.type == "list":
        return children
    if node.type == "tuple":
        return tuple(children)
    return _namedtuple_class(node.name, tuple(node.names))(*children)


def _describe(node) -> str:
    if isinstance(node, _Leaf):
        if node.type == "array":
            return f"{node.value.dtype} array of shape {tuple(node.value.shape)}"
        if node.type == "key":
            return f"PRNG key array {node.value.dtype} of shape {tuple(node.value.shape)}"
        return f"a Python {node.type}"
    if node.type == "none":
        return "None"
    if node.type == "dict":
        return f"a dict with keys {sorted(node.names)}"
    if node.type == "namedtuple":
        return f"NamedTuple {node.name}({', '.join(node.names)})"
    return f"a {node.type} of length {len(node.children)}"


def _is_python_scalar(x) -> bool:
    """bool/int/float/complex, but not NumPy's float64/complex128 (subclasses of float/complex)."""
    return isinstance(x, (bool, int, float, complex)) and not isinstance(x, np.generic)


def _describe_like(x) -> str:
    if x is None:
        return "None"
    if _is_python_scalar(x):
        return f"a Python {type(x).__name__}"
    if hasattr(x, "dtype") and hasattr(x, "shape"):
        kind = "PRNG key array" if _is_key_dtype(x.dtype) else "array"
        if kind == "array":
            return f"{np.dtype(x.dtype)} array of shape {tuple(x.shape)}"
        return f"{kind} {x.dtype} of shape {tuple(x.shape)}"
    if isinstance(x, dict):
        return f"a dict with keys {sorted(x)}"
    if _is_namedtuple(x):
        return f"NamedTuple {type(x).__name__}({', '.join(type(x)._fields)})"
    return f"a {type(x).__name__} of length {len(x)}" if isinstance(x, (list, tuple)) else repr(x)


class _Mismatch(Exception):
    def __init__(self, path, expected: str, found: str):
        super().__init__(_keystr(path), expected, found)


def _match(node, like, path: tuple):
    """Rebuild `node` with the container and leaf types of `like`, or raise _Mismatch."""
    def fail():
        raise _Mismatch(path, _describe_like(like), _describe(node))

    if like is None:
        if isinstance(node, _Leaf) or node.type != "none":
            fail()
        return None
    if _is_python_scalar(like):
        kind = next(k for k, (t, _) in _SCALARS.items()
                    if isinstance(like, t) and (k == "bool" or not isinstance(like, bool)))
        if not isinstance(node, _Leaf) or node.type != kind:
            fail()
        return node.value
    if isinstance(like, (jax.Array, np.ndarray, np.generic, jax.ShapeDtypeStruct)):
        if not isinstance(node, _Leaf):
            fail()
        if _is_key_dtype(like.dtype):
            if node.type != "key" or node.value.dtype != like.dtype or \
                    node.value.shape != tuple(like.shape):
                fail()
            return node.value
        like_dtype = np.dtype(like.dtype)
        if not like_dtype.isnative:  # saved arrays are stored in native byte order
            like_dtype = like_dtype.newbyteorder("=")
        if node.type != "array" or node.value.dtype != like_dtype or \
                node.value.shape != tuple(like.shape):
            fail()
        if isinstance(like, np.ndarray):
            return node.value
        if isinstance(like, np.generic):
            return node.value[()]
        return _to_jax(node.value, bool(getattr(like, "weak_type", False)))
    if isinstance(like, dict) and type(like) in (dict, collections.OrderedDict,
                                                 collections.defaultdict):
        if isinstance(node, _Leaf) or node.type != "dict":
            fail()
        found = dict(zip(node.names, node.children, strict=True))
        values = {}
        for k in sorted(set(like) | set(found)):  # jax's leaf order: sorted keys
            if k not in found:
                raise _Mismatch((*path, ("key", k)), _describe_like(like[k]), "nothing")
            if k not in like:
                raise _Mismatch((*path, ("key", k)), "nothing", _describe(found[k]))
            values[k] = _match(found[k], like[k], (*path, ("key", k)))
        items = [(k, values[k]) for k in like]
        if type(like) is collections.defaultdict:
            return collections.defaultdict(like.default_factory, items)
        return type(like)(items)
    if _is_namedtuple(like):
        fields = list(type(like)._fields)
        if isinstance(node, _Leaf) or node.type != "namedtuple" or node.names != fields:
            fail()
        return type(like)(*[_match(c, v, (*path, ("field", f)))
                            for c, v, f in zip(node.children, like, fields, strict=True)])
    if type(like) in (list, tuple):
        if isinstance(node, _Leaf) or node.type != type(like).__name__ or \
                len(node.children) != len(like):
            fail()
        out = [_match(c, v, (*path, ("index", i)))
               for i, (c, v) in enumerate(zip(node.children, like, strict=True))]
        return out if type(like) is list else tuple(out)
    raise TypeError(
        f"fnn.checkpoint.load: `like` holds an unsupported value of type "
        f"{type(like).__qualname__} at {_keystr(path)}."
    )


def _read(path: str, where: str, only_meta: bool = False):
    try:
        header, arrays = _open_archive(path, only_meta)
        root = None if only_meta else _decode(header, arrays)
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: {path} does not exist.") from None
    except IsADirectoryError:
        raise IsADirectoryError(
            f"{where}: {path} is a folder, not a checkpoint file; for a folder of numbered "
            "checkpoints use fnn.checkpoint.CheckpointManager(folder).restore()."
        ) from None
    except (NotADirectoryError, PermissionError) as e:
        raise type(e)(f"{where}: cannot read {path}: {e.strerror or e}.") from None
    except _Corrupt as e:
        raise _invalid(path, str(e)) from None
    except Exception as e:  # noqa: BLE001 - hostile input may fail anywhere in the parsers
        raise _invalid(path, f"{type(e).__name__}: {e}") from e
    return header, root


def load(path, like=None):
    """Read a checkpoint written by `save`.

    **Arguments:**
    - `path`: the `.npz` file.
    - `like`: an optional pytree with the expected structure (arrays or
      `jax.ShapeDtypeStruct`s as leaves, e.g. a freshly initialised train state).

    **Returns** the tree. With `like`, the result has exactly `like`'s container
    types (its `NamedTuple` classes, dict key order) and leaf types: a `jax.Array`
    or `ShapeDtypeStruct` leaf gives a `jax.Array`, an `np.ndarray` leaf an
    `np.ndarray`, a Python scalar a Python scalar. Without `like`, dicts, lists,
    tuples and `None` come back as saved; a NamedTuple comes back as a
    `collections.namedtuple` built from the saved class name and field names (a
    different class from the original: pass `like` to get the original class);
    leaves come back as saved (jax arrays as jax arrays, NumPy as NumPy, Python
    scalars as Python scalars, typed keys as typed keys). A 64-bit array saved
    from JAX with x64 enabled comes back as a NumPy array when x64 is disabled,
    rather than being silently truncated.

    **Raises** `ValueError` when the file is not a valid checkpoint (truncated,
    damaged, foreign, pickled, ...: "... is not a valid fnn checkpoint: <reason>")
    and when it does not match `like`, naming the first mismatching leaf path (in
    `jax.tree_util` leaf order) with what was expected and what was found;
    `FileNotFoundError` when the file does not exist, `IsADirectoryError` when
    `path` is a folder and `TypeError` when it is not a str or `os.PathLike`.
    """
    where = "fnn.checkpoint.load"
    path = _as_path(where, path)
    _, root = _read(path, where)
    if like is None:
        return _build(root)
    try:
        return _match(root, like, ())
    except _Mismatch as e:
        where, expected, found = e.args
        raise ValueError(
            f"fnn.checkpoint.load: {path} does not match `like` at {where}: expected "
            f"{expected} (from like), found {found} in the checkpoint."
        ) from None


def load_metadata(path) -> dict:
    """The `metadata` dict stored by `save` (e.g. `{"step": 12, "config": {...}}`).

    Reads and validates only the metadata entry (cheap, does not load the arrays).
    Raises `ValueError` for an invalid file and `OSError`s for a bad path, like `load`.
    """
    where = "fnn.checkpoint.load_metadata"
    path = _as_path(where, path)
    header, _ = _read(path, where, only_meta=True)
    return header["metadata"]


# ---------------------------------------------------------------------------
# a folder of numbered checkpoints


_CKPT_RE = re.compile(r"ckpt_(\d{8,})\.npz")


class CheckpointManager:
    """A folder of numbered checkpoints `ckpt_00000012.npz`, keeping the newest `keep`.

    **Arguments:**
    - `directory`: the folder, a str or `os.PathLike` (created if missing, with its
      parents; an existing file there is a `NotADirectoryError`).
    - `keep`: how many checkpoints to keep (the highest steps); `None` keeps all.

    `save(step, tree, metadata=None)` writes atomically, then deletes the oldest
    checkpoints beyond `keep`. The stored metadata is `{"step": step, **metadata}`.
    Files that do not match `ckpt_<digits>.npz` exactly (such as the hidden
    temporary files of an interrupted save) are ignored.
    """

    def __init__(self, directory, keep: int | None = 3):
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(
                f"CheckpointManager: keep must be a positive int or None, got {keep!r}.")
        self.directory = _as_path("CheckpointManager", directory, "directory")
        self.keep = keep
        if os.path.exists(self.directory) and not os.path.isdir(self.directory):
            raise NotADirectoryError(
                f"CheckpointManager: {self.directory} is a file; expected a folder for the "
                "numbered checkpoints (to load one file, use fnn.checkpoint.load).")
        try:
            os.makedirs(self.directory, exist_ok=True)
        except OSError as e:  # a parent is a file, no permission, ...
            raise type(e)(f"CheckpointManager: cannot create the folder {self.directory}: "
                          f"{e.strerror or e}.") from None

    def path(self, step: int) -> str:
        """The file name used for `step`."""
        return os.path.join(self.directory, f"ckpt_{self._check_step(step):08d}.npz")

    @staticmethod
    def _check_step(step) -> int:
        if isinstance(step, bool) or not hasattr(step, "__index__") or int(step) < 0:
            raise ValueError(f"CheckpointManager: step must be a non-negative int, got {step!r}.")
        return int(step)

    def all_steps(self) -> list[int]:
        """The steps of the checkpoints on disk, ascending."""
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(int(m.group(1)) for m in map(_CKPT_RE.fullmatch, names) if m)

    def latest(self) -> int | None:
        """The newest step on disk, or `None` when there is none."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, tree, metadata: dict | None = None) -> str:
        """Save `tree` as checkpoint `step` (atomically), prune to `keep`; return its path."""
        step = self._check_step(step)
        if metadata is not None and not isinstance(metadata, dict):
            raise TypeError(f"CheckpointManager.save: metadata must be a dict, got {metadata!r}.")
        meta = dict(metadata or {})
        if meta.get("step", step) != step:
            raise ValueError(f"CheckpointManager.save: metadata['step']={meta['step']!r} "
                             f"differs from step={step}.")
        meta["step"] = step
        path = save(self.path(step), tree, metadata=meta)
        if self.keep is not None:
            for old in self.all_steps()[:-self.keep]:
                try:
                    os.remove(self.path(old))
                except FileNotFoundError:
                    pass
        return path

    def _resolve(self, step) -> str:
        steps = self.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"CheckpointManager: no checkpoints in {self.directory}.")
            step = steps[-1]
        path = self.path(step)
        if not os.path.exists(path):
            raise FileNotFoundError(f"CheckpointManager: no checkpoint for step {step} in "
                                    f"{self.directory}; available steps: {steps}.")
        return path

    def restore(self, step: int | None = None, like=None):
        """Load checkpoint `step` (default: the latest); see `load` for `like`."""
        return load(self._resolve(step), like=like)

    def load_metadata(self, step: int | None = None) -> dict:
        """The metadata of checkpoint `step` (default: the latest), including `"step"`."""
        return load_metadata(self._resolve(step))

    def __repr__(self) -> str:
        return f"CheckpointManager({self.directory!r}, keep={self.keep})"
