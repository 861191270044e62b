"""The checkpoint codec: a pytree as a JSON description plus one NumPy array per leaf.

One table, `KINDS`, drives it: for each kind of node, which Python values it holds,
how a leaf becomes an array and back, how a container names its children and how
the node reads in an error message. The JSON node of each kind (format version 1):

    none        {"type": "none"}                               None
    key         {"type", "entry", "impl", "shape"}             typed PRNG keys (entry: key_data)
    array       {"type", "entry", "dtype", "shape",            jax.Array, np.ndarray, NumPy scalars
                 "array_type": jax|numpy|numpy_scalar,
                 "weak_type" (jax only)}
    bool, int,  {"type", "entry"}                              Python scalars, stored as 0-d
    float, complex                                             bool/int64/float64/complex128
    dict        {"type", "keys", "children"}                   dict, OrderedDict, defaultdict
    namedtuple  {"type", "name", "fields", "children"}         NamedTuples
    list, tuple {"type", "children"}                           list, tuple

A leaf's entry is its path, `tree/params/0_Dense/w`: dict keys (characters outside
`[A-Za-z0-9_.-]` written `%XX`, UTF-8), NamedTuple fields and indices joined by `/`.
Extension dtypes (bfloat16, float8, int4, ...) are stored as unsigned ints of their width.

`encode(tree) -> (node, {entry: array})`. `decode(node, arrays)` accepts only what
`encode` gives for the tree it decodes to (JSON key order aside), so one comparison
checks every field. `restore(tree, like)` gives the leaves their final types, as
saved or as in the template `like`. Errors: `BadType`/`BadValue` (cannot be saved),
`Corrupt` (not a valid checkpoint), `Mismatch` (not like `like`).
"""
from __future__ import annotations

import collections
import functools
import json
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-.")
_NATIVE = frozenset(["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                     "uint64", "float16", "float32", "float64", "complex64", "complex128"])
_EXTENSION = {name: np.dtype(getattr(jnp, name)) for name in (  # JAX's, from ml_dtypes
    "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
    "float8_e4m3b11fnuz", "float8_e3m4", "float8_e4m3", "float8_e8m0fnu", "float4_e2m1fn",
    "int4", "uint4", "int2", "uint2") if hasattr(jnp, name)}
_FREE = object()  # `restore` without a template


class Corrupt(Exception):
    """Not a valid checkpoint; the message says why."""


class Mismatch(Exception):
    """The saved tree does not match `like`: `args = (leaf path, expected, found)`."""


class Stored:
    """A decoded array leaf with how it was saved (`array_type`, `weak_type`)."""

    __slots__ = ("array", "array_type", "weak_type")
    dtype = property(lambda self: self.array.dtype)
    shape = property(lambda self: self.array.shape)

    def __init__(self, array: np.ndarray, array_type: str, weak_type: bool):
        self.array, self.array_type, self.weak_type = array, array_type, weak_type

    def __array__(self, dtype=None, copy=None):
        return self.array


def keystr(path) -> str:
    """A leaf path in `jax.tree_util.keystr` style: `['params']['w']`, `[0]`, `.mu`."""
    return "".join(f".{k}" if step == "field" else f"[{k!r}]" if step == "key" else f"[{k}]"
                   for step, k in path) or "(the root)"


def _escape(key: str) -> str:
    """Injective, zip-safe spelling of one dict key."""
    if key == "" or set(key) <= {"."}:
        return "%2E" * len(key) or "%"
    return "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode(
        "utf-8", "surrogatepass")) for c in key)


# ---------------------------------------------------------------------------
# leaves: encode(x, where) -> (JSON fields, array or None); decode(node, where, take)


def _storage(name: str) -> np.dtype:
    return np.dtype(f"uint{8 * _EXTENSION[name].itemsize}" if name in _EXTENSION else name)


def _encode_array(x, where: str):
    array = np.asarray(x)
    dtype, name = array.dtype, array.dtype.name
    if dtype.hasobject:
        raise BadType(f"leaf {where} is an object array (dtype object); checkpoints hold only "
                      "numeric arrays and never pickle. Convert it to a numeric array.")
    if not (name in _EXTENSION and dtype == _EXTENSION[name] or name in _NATIVE
            and dtype.kind in "biufc" and np.dtype(name) == dtype.newbyteorder("=")):
        raise BadType(f"leaf {where} has unsupported dtype {dtype}; supported: "
                      f"{sorted(_NATIVE | set(_EXTENSION))}.")
    array = array.astype(dtype.newbyteorder("="), copy=False).view(_storage(name))
    kind = getattr(x, "array_type", None) or (
        "jax" if isinstance(x, jax.Array) else "numpy_scalar" if isinstance(x, np.generic)
        else "numpy")
    fields = {"dtype": name, "shape": list(array.shape), "array_type": kind}
    if kind == "jax":
        fields["weak_type"] = bool(getattr(x, "weak_type", False))
    return fields, array


def _decode_array(node, where: str, take):
    array, name, kind = take(), node["dtype"], node["array_type"]
    if kind not in ("jax", "numpy", "numpy_scalar") or kind == "numpy_scalar" and array.shape:
        raise Corrupt(f"leaf {where}: bad array_type {kind!r} for shape {list(array.shape)}")
    if name in _EXTENSION and array.dtype == _storage(name):
        array = array.view(_EXTENSION[name])
    return Stored(array, kind, node.get("weak_type", False))


def _scalar(pytype: type, storage: str) -> tuple[Callable, Callable]:
    """(encode, decode) of a Python scalar stored as a 0-d array."""
    def encode(x, where: str):
        try:
            return {}, np.asarray(x, dtype=storage)
        except OverflowError:
            raise BadValue(f"Python int {x} at {where} does not fit in int64.") from None

    return encode, lambda node, where, take: pytype(take().item())


# ---------------------------------------------------------------------------
# the table


class Kind(NamedTuple):
    """A node kind: `test(x)`, does a Python value (or a `like` leaf) have it; a leaf
    kind has `encode`/`decode`, a container kind `step`, how a child is named in a
    path (`key`, `field`, `index`); `describe(x)` is its text in error messages."""

    test: Callable[[Any], bool]
    describe: Callable[[Any], str]
    encode: Callable | None = None
    decode: Callable | None = None
    step: str = ""


def _python(pytype: type) -> Callable[[Any], bool]:
    return lambda x: isinstance(x, pytype) and (pytype is bool or not isinstance(x, bool))


KINDS: dict[str, Kind] = {  # first match wins: NumPy scalars are arrays, bools no ints
    "none": Kind(lambda x: x is None, lambda x: "None", lambda x, where: ({}, None),
                 lambda node, where, take: None),
    "key": Kind(lambda x: isinstance(x, (jax.Array, jax.ShapeDtypeStruct))
                and jnp.issubdtype(x.dtype, jax.dtypes.prng_key),
                lambda x: f"PRNG key array {x.dtype} of shape {tuple(x.shape)}",
                lambda x, where: ({"impl": str(jax.random.key_impl(x)), "shape": list(x.shape)},
                                  np.asarray(jax.random.key_data(x))),
                lambda node, where, take: jax.random.wrap_key_data(jnp.asarray(take()),
                                                                   impl=node["impl"])),
    "array": Kind(lambda x: isinstance(x, (jax.Array, np.ndarray, np.generic,
                                           jax.ShapeDtypeStruct, Stored)),
                  lambda x: f"{np.dtype(x.dtype).newbyteorder('=')} array of shape "
                            f"{tuple(x.shape)}",
                  _encode_array, _decode_array),
    **{name: Kind(_python(pytype), lambda x: f"a Python {type(x).__name__}",
                  *_scalar(pytype, storage))
       for name, pytype, storage in [("bool", bool, "bool"), ("int", int, "int64"),
                                     ("float", float, "float64"),
                                     ("complex", complex, "complex128")]},
    "dict": Kind(lambda x: type(x) in (dict, collections.OrderedDict, collections.defaultdict),
                 lambda x: f"a dict with keys {sorted(x)}", step="key"),
    "namedtuple": Kind(lambda x: isinstance(x, tuple) and hasattr(type(x), "_fields"),
                       lambda x: f"NamedTuple {type(x).__name__}({', '.join(type(x)._fields)})",
                       step="field"),
    "list": Kind(lambda x: type(x) is list, lambda x: f"a list of length {len(x)}",
                 step="index"),
    "tuple": Kind(lambda x: type(x) is tuple, lambda x: f"a tuple of length {len(x)}",
                  step="index"),
}


def kind_of(x) -> str | None:
    """The name of `x`'s kind in `KINDS`; None for a value no checkpoint holds."""
    return next((name for name, kind in KINDS.items() if kind.test(x)), None)


def describe(x) -> str:
    """`x` in an error message: "float32 array of shape (2, 3)", "a dict with keys [...]"."""
    name = kind_of(x)
    return repr(x) if name is None else KINDS[name].describe(x)


def _children(name: str, x) -> dict:
    """A container's children by dict key, NamedTuple field or index."""
    if name == "dict":
        return dict(x)
    return dict(zip(map(str, type(x)._fields), x) if name == "namedtuple" else enumerate(x))


@functools.lru_cache(maxsize=256)
def _namedtuple_class(name: str, fields: tuple):
    return collections.namedtuple(name, fields)


# ---------------------------------------------------------------------------
# encode, decode, restore


def encode(tree) -> tuple[dict, dict]:
    """`(node, {entry: array})`: the JSON description of `tree` and its leaf arrays."""
    arrays: dict[str, np.ndarray] = {}

    def walk(x, path: tuple, entry: str) -> dict:
        where = keystr(path)
        if isinstance(x, jax.core.Tracer):
            raise BadType(f"leaf {where} is a traced value ({x}); save concrete arrays outside "
                          "jax.jit/grad/vmap.")
        name = kind_of(x)
        if name is None or isinstance(x, jax.ShapeDtypeStruct):
            raise BadType(
                f"unsupported value of type {type(x).__qualname__} at {where}. Checkpoints hold "
                "dicts (str keys), lists, tuples, NamedTuples, None, numeric arrays, Python "
                "bool/int/float/complex and PRNG keys; put other information (strings, "
                "configs) in `metadata`.")
        kind, node = KINDS[name], {"type": name}
        if not kind.step:
            fields, array = kind.encode(x, where)
            if array is not None:
                if entry in arrays:  # cannot happen with _escape; be loud if it does
                    raise BadValue(f"two leaves map to the entry {entry!r}.")
                node["entry"], arrays[entry] = entry, array
            return {**node, **fields}
        children = _children(name, x)
        if name == "dict":
            for k in children:
                if not isinstance(k, str):
                    raise BadType(f"dict at {where} has a non-string key {k!r}; checkpoint "
                                  "dict keys must be str.")
            node["keys"] = list(children)
        elif name == "namedtuple":
            node.update(name=type(x).__name__, fields=list(children))
        node["children"] = [walk(v, (*path, (kind.step, k)),
                                 f"{entry}/{_escape(k) if name == 'dict' else k}")
                            for k, v in children.items()]
        return node

    return walk(tree, (), "tree"), arrays


def decode(node, arrays: dict):
    """The tree `node` describes, with `Stored` array leaves. Valid means canonical:
    `encode` of that tree gives `node` back (JSON key order aside) and exactly the
    entries of `arrays`, with their dtypes and shapes; else `Corrupt` says where not."""
    def take(node, where):
        if node["entry"] not in arrays:
            raise Corrupt(f"leaf {where}: its entry {node['entry']!r} is missing from the archive")
        return arrays[node["entry"]]

    def walk(node, path: tuple):
        name, where = node["type"], keystr(path)
        kind = KINDS[name]
        if not kind.step:
            return kind.decode(node, where, lambda: take(node, where))
        names = node["keys"] if name == "dict" else node["fields"] if name == "namedtuple" \
            else range(len(node["children"]))
        children = [walk(c, (*path, (kind.step, n))) for n, c in zip(names, node["children"])]
        if name == "namedtuple":
            return _namedtuple_class(node["name"], tuple(names))(*children)
        return dict(zip(names, children)) if name == "dict" else \
            children if name == "list" else tuple(children)

    try:
        tree = walk(node, ())
        again, entries = encode(tree)
    except Corrupt:
        raise
    except Exception as e:  # noqa: BLE001 - any failure on hostile JSON means a bad file
        raise Corrupt(f"malformed tree description ({type(e).__name__}: {e})") from None
    if not _same(again, node):
        raise Corrupt(_difference(again, node))
    extra = sorted(arrays.keys() - entries.keys())
    if extra:
        raise Corrupt(f"entries not described by the metadata: {extra[:5]}")
    for entry, array in entries.items():
        found = arrays[entry]
        if (found.dtype, found.shape) != (array.dtype, array.shape):
            raise Corrupt(f"entry {entry!r} holds {found.dtype}{list(found.shape)}, metadata "
                          f"says {array.dtype}{list(array.shape)}")
    return tree


def _same(a, b) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _difference(canonical: dict, node: dict, path: tuple = ()) -> str:
    """Where a decodable description first differs from the one `encode` gives."""
    def own(n: dict) -> str:
        return json.dumps({k: v for k, v in n.items() if k != "children"}, sort_keys=True)

    children = canonical.get("children", ())
    if own(canonical) == own(node) and len(children) == len(node["children"]):
        names = canonical.get("keys", canonical.get("fields", range(len(children))))
        for k, a, b in zip(names, children, node["children"]):
            if not _same(a, b):
                return _difference(a, b, (*path, (KINDS[canonical["type"]].step, k)))
    return f"node at {keystr(path)} is {own(node)}, fnn.checkpoint.save writes {own(canonical)}"


def to_jax(array: np.ndarray, weak_type: bool):
    """`array` as a `jax.Array` (weakly typed if asked and JAX has a weak type of its
    dtype), or as is when JAX's mode would change its dtype (64-bit without x64)."""
    if jax.dtypes.canonicalize_dtype(array.dtype) != array.dtype:
        return array
    out = jnp.asarray(array)
    if weak_type:  # no public constructor; `x.at[...].set(y)` keeps x's (weak) type
        zero = jnp.asarray(array.dtype.type(0).item())  # weak for Python int/float/complex
        if zero.weak_type and zero.dtype == out.dtype:
            out = jnp.broadcast_to(zero, out.shape).at[...].set(out)
    return out


def restore(x, like=_FREE, path: tuple = ()):
    """The decoded tree `x` with its final leaves: as saved (NamedTuples rebuilt from
    their saved names), or with `like`'s container and leaf types once `x` is checked
    to match it; the first mismatch in jax's leaf order raises `Mismatch`."""
    name, free = kind_of(x), like is _FREE
    if not free:
        like_name = kind_of(like)
        if like_name is None:
            raise BadType(f"`like` holds an unsupported value of type "
                          f"{type(like).__qualname__} at {keystr(path)}.")
        if like_name != name or not _fits(name, x, like):
            raise Mismatch(keystr(path), describe(like), describe(x))
    kind, template = KINDS[name], x if free else like
    if name == "array":
        out = x.array_type if free else ("numpy" if isinstance(like, np.ndarray) else
                                         "numpy_scalar" if isinstance(like, np.generic) else "jax")
        if out == "jax":
            return to_jax(x.array, x.weak_type if free else bool(getattr(like, "weak_type", 0)))
        return x.array[()] if out == "numpy_scalar" else x.array
    if not kind.step:
        return x
    saved, wanted = _children(name, x), _children(name, template)
    out = {}
    for k in sorted(saved.keys() | wanted.keys()) if name == "dict" else saved:
        sub = (*path, (kind.step, k))
        if k not in saved or k not in wanted:
            raise Mismatch(keystr(sub), describe(wanted[k]) if k in wanted else "nothing",
                           describe(saved[k]) if k in saved else "nothing")
        out[k] = restore(saved[k], _FREE if free else wanted[k], sub)
    values = [out[k] for k in wanted]
    if name == "dict":
        items = zip(wanted, values)
        return (collections.defaultdict(template.default_factory, items)
                if type(template) is collections.defaultdict else type(template)(items))
    return type(template)(*values) if name == "namedtuple" else type(template)(values)


def _fits(name: str, x, like) -> bool:
    """Whether the saved `x` and the template `like`, both of kind `name`, agree: the
    same NamedTuple fields (any class name); leaves and sequences that read the same
    in a message (dtype and shape, length); dicts are compared key by key."""
    if name == "namedtuple":
        return type(x)._fields == type(like)._fields
    return name == "dict" or describe(x) == describe(like)
