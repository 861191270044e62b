"""Private checks of array arguments, raised as `BadValue`/`BadType` for the public
function to name (see `fnn._checks`): arrays and their rank, dtype and sizes, and the
arguments every layer takes (`input_shape`, `params`/`state`, `key` and `train`).

Only shapes and dtypes are read (values only where `concrete_range` says so), so the
checks hold, and cost nothing, under `jit`, `grad` and `vmap`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, describe_value, require_key, shape_str


def require_array(x) -> None:
    """`BadType` unless `x` is an array (a `jax.Array`, tracer or NumPy array): layers
    read `x.shape` and `x.dtype`, so a Python list must be converted first."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise BadType(f"expected an array (a jax.Array or numpy.ndarray), got a "
                      f"{type(x).__name__}; convert it with jnp.asarray(x).")


def as_inexact(x) -> jax.Array:
    """`x` as an array; integers in the default float dtype (float32, float64 under
    `jax_enable_x64`), as `jnp.tanh` takes them; floating and complex arrays unchanged."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.inexact) else x.astype(jnp.result_type(float))


def require_rank(x, rank: int | tuple[int, ...], layout: str) -> None:
    """`BadValue` unless the array `x` has rank `rank` (or one of several ranks)."""
    require_array(x)
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if x.ndim not in ranks:
        wanted = " or ".join(str(r) for r in ranks)
        raise BadValue(f"expected a rank-{wanted} input {layout}, "
                       f"got shape {shape_str(x.shape)} (rank {x.ndim}).")


def require_min_rank(x, min_rank: int, layout: str) -> None:
    """`BadValue` unless the array `x` has rank >= `min_rank` (with the batch-axis hint)."""
    require_array(x)
    if x.ndim < min_rank:
        raise BadValue(f"expected an input of rank >= {min_rank} {layout}, "
                       f"got shape {shape_str(x.shape)} (rank {x.ndim}). "
                       "Inputs are batch-first: add a batch axis with x[None] for one example.")


def require_axis_size(x, axis: int, expected: int, what: str) -> None:
    """`BadValue` unless `x.shape[axis]` is the size `expected` that init saw."""
    if x.shape[axis] != expected:
        raise BadValue(f"expected {what} {expected} (from init), got {x.shape[axis]} "
                       f"in input of shape {shape_str(x.shape)}.")


def require_floating(x) -> None:
    """`BadType` unless `x` is a floating-point array."""
    require_array(x)
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise BadType(f"expected a floating-point input, got dtype {x.dtype}. "
                      "Convert with x.astype(jnp.float32).")


def require_features(x, size: int, layout: str, what: str) -> None:
    """A floating batch `(N, ..., size)` (`layout`), `size` on the last axis as at init
    (`what` names that axis, e.g. "channels (last axis)")."""
    require_min_rank(x, 2, layout)
    require_floating(x)
    require_axis_size(x, -1, size, what)


def to_dtype(dtype: Any, kind: str = "a dtype such as jnp.float32 or 'int32'"):
    """`dtype` as a NumPy dtype (`jnp.dtype`); a name or object that is no dtype is a
    `BadType` (`kind` says what was expected)."""
    try:
        return jnp.dtype(dtype)
    except TypeError:
        raise BadType(f"dtype must be {kind}, got {dtype!r}.") from None


def concrete_range(x) -> tuple[int, int] | None:
    """`(min, max)` of a concrete, non-empty integer array (labels, ids, lengths);
    None under `jit`/`vmap` (the values are traced, so they cannot be checked) or
    when `x` is empty."""
    if isinstance(x, jax.core.Tracer) or not np.size(x):
        return None
    v = np.asarray(x)
    return int(v.min()), int(v.max())


def _quoted_list(names) -> str:
    """['w', 'b'] -> "'w' and 'b'"; ['a', 'b', 'c'] -> "'a', 'b' and 'c'"."""
    q = [repr(n) for n in names]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def example_shape(input_shape: Any, layout: str, *, rank: int | None = None,
                  min_rank: int = 0, hint: str = "") -> tuple[int, ...]:
    """`input_shape` (one example, no batch axis) as a tuple of ints, checked.

    - not a tuple/list of ints (e.g. the int `4`) -> BadType (for a layer on
      feature vectors, `min_rank=1`, showing the fix `(4,)`);
    - a negative size -> BadValue;
    - `rank` given and `len != rank`, or `len < min_rank` -> BadValue
      "expected input_shape {layout}, got (...).{hint}"

    `layout` reads like "(H, W, C) for one image" or "(..., in_features)"; `hint`
    (a sentence with a leading space) follows a rank error. A traced shape (the
    sizes passed as an argument of `jax.eval_shape`, `jit` or `vmap`) is a BadType
    showing how to keep it static.
    """
    if isinstance(input_shape, jax.core.Tracer) or isinstance(input_shape, (tuple, list)) and any(
            isinstance(s, jax.core.Tracer) for s in input_shape):
        raise BadType("input_shape must be static (a tuple of Python ints), got a traced value: "
                      "jax.eval_shape, jit and vmap trace their arguments. Close over the shape "
                      "instead: jax.eval_shape(lambda k: layer.init(k, input_shape), key).")
    is_sequence = isinstance(input_shape, (tuple, list)) or (
        isinstance(input_shape, np.ndarray) and input_shape.ndim == 1)
    if not is_sequence or any(
        isinstance(s, bool) or not hasattr(s, "__index__") for s in input_shape
    ):
        fix = ""
        if hasattr(input_shape, "__index__") and not isinstance(input_shape, bool) and (
            min_rank == 1 and rank in (None, 1)
        ):
            fix = f" such as ({int(input_shape)},)"  # the fix for the usual slip, 4 for (4,)
        raise BadType(f"input_shape must be a tuple {layout}{fix}, without the batch axis, "
                      f"got {input_shape!r}.")
    shape = tuple(int(s) for s in input_shape)
    if any(s < 0 for s in shape):
        raise BadValue(f"input_shape sizes must be >= 0, got {shape_str(shape)}.")
    if (rank is not None and len(shape) != rank) or len(shape) < min_rank:
        raise BadValue(f"expected input_shape {layout}, got {shape_str(shape)}.{hint}")
    return shape


def keys_str(tree: Mapping) -> str:
    """"a dict with keys ['a', 'b']" or "an empty dict", for messages."""
    return f"a dict with keys {sorted(map(str, tree))}" if tree else "an empty dict"


class MissingEntryError(ValueError):
    """A params/state dict lacks an entry the layer needs (so combinators can name the path)."""


class MissingEntry(BadValue):
    """A `MissingEntryError` still to be named (see `named`)."""

    public = MissingEntryError


def require_params(params: Any, keys, made_by: str, *, what: str = "params") -> dict:
    """Raise unless `params` is a dict holding every name in `keys` (extra names are fine).

    Not a dict -> `BadType` (a `(params, state)` pair passed as params gets its
    own hint); a missing name -> `MissingEntry` (a `MissingEntryError` once named).
    `what` is "params" or "state"; the messages say they come from `{made_by}.init`.
    Reads only the container and the leaves' shapes.

    `keys` may map each name to its expected shape, whose entries are sizes or
    names of sizes that must agree between leaves, e.g. `{"w": ("in", 3), "b": (3,)}`;
    a leaf of another shape is a ValueError (params from another layer, or from
    this layer built with other settings). Returns the sizes bound to names
    (`{"in": 4}`); `{}` without shapes.
    """
    wanted = f"a dict with {_quoted_list(tuple(keys))}" if keys else "a dict"
    layer = made_by
    if not isinstance(params, Mapping):
        hint = ""
        if isinstance(params, tuple) and len(params) == 2:
            hint = (" — did you pass the (params, state) pair from init? Unpack it: "
                    "params, state = layer.init(key, input_shape)")
        got = (f"a {type(params).__name__} of length {len(params)}"
               if isinstance(params, (tuple, list)) else describe_value(params))
        raise BadType(f"{what} must be {wanted} (as returned by {layer}.init), got {got}{hint}.")
    missing = [k for k in keys if k not in params]
    if missing:
        raise MissingEntry(
            f"{what} must be {wanted} (as returned by {layer}.init), got {keys_str(params)}; "
            f"{_quoted_list(missing)} {'is' if len(missing) == 1 else 'are'} missing.")
    sizes: dict = {}
    if not isinstance(keys, Mapping):
        return sizes
    for name, spec in keys.items():
        if not (hasattr(params[name], "shape") and hasattr(params[name], "dtype")):
            raise BadType(f"{what} '{name}' must be an array (as returned by {layer}.init), "
                          f"got {describe_value(params[name])}.")
        got = tuple(np.shape(params[name]))
        fits = len(got) == len(spec) and all(
            sizes.setdefault(s, g) == g if isinstance(s, str) else s == g
            for s, g in zip(spec, got))
        if not fits:
            expected = "(" + ", ".join(str(sizes.get(s, s)) for s in spec) + (
                ",)" if len(spec) == 1 else ")")
            raise BadValue(f"{what} '{name}' must have shape {expected}, got {shape_str(got)}; "
                           f"use the {what} {layer}.init returns for this layer (with the same "
                           "settings).")
    return sizes


def require_key_and_train(key: Any, train: Any) -> None:
    """An apply's `key` (None or one PRNG key) and `train` (a bool), for layers that do not
    read them and combinators that pass them on. A traced `train` passes: only the
    layers that branch on it (BatchNorm, Dropout) need it static, and they say so."""
    if key is not None:
        require_key(key)
    if not isinstance(train, jax.core.Tracer):
        train_flag(train)


def train_flag(train: Any) -> bool:
    """`train` as a Python bool; a traced value (train passed through `jit`) is a `BadType`."""
    if isinstance(train, (bool, np.bool_)):
        return bool(train)
    if isinstance(train, jax.core.Tracer):
        raise BadType("train must be a Python bool, got a traced value — under jit it must be "
                      "static: jax.jit(step, static_argnames='train'), or call apply with "
                      "train=True / train=False written in the jitted function.")
    if isinstance(train, (jax.Array, np.ndarray)) and train.shape == () and train.dtype == bool:
        return bool(train)
    raise BadType(f"train must be a Python bool, got {describe_value(train)}.")
