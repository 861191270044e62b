"""Private helpers that turn user mistakes into clear errors at trace time.

Every message names the function or layer, what it expected and what it got,
so that a user never has to decode a raw XLA shape error.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class ArgumentError(Exception):
    """An error raised by a helper that does not know which public function it serves.

    Helpers raise `BadValue` / `BadType` with the message alone ("epochs must be a
    positive int, got 0."); the public function, decorated with `named(where)`, adds
    its own name once ("fit: epochs must be ..."), so no helper takes a `where`
    argument only to label its messages.
    """

    public: type = Exception   # the plain error it becomes once named


class BadValue(ArgumentError, ValueError):
    """A ValueError still to be named by the public function (see `named`)."""

    public = ValueError


class BadType(ArgumentError, TypeError):
    """A TypeError still to be named by the public function (see `named`)."""

    public = TypeError


def named(where: str) -> Callable[[Callable], Callable]:
    """Decorator for a public function: `BadValue`/`BadType` raised inside it (at any
    depth, also while tracing under `jit`) come out as plain `ValueError`/`TypeError`
    whose message starts with `"{where}: "`. Errors already named pass unchanged."""
    def decorate(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def public(*args, **kwargs):
            return labelled(where, fn, *args, **kwargs)
        return public
    return decorate


def labelled(where: str, helper: Callable, *args, **kwargs):
    """`helper(*args, **kwargs)` with its `BadValue`/`BadType` named `where`: `named` for
    one call (e.g. a layer's `init` key, named `"Dense.init"` where the rest of its init
    is named `"Dense"`)."""
    try:
        return helper(*args, **kwargs)
    except ArgumentError as err:   # a cause the helper chained stays chained
        raise err.public(f"{where}: {err}") from err.__cause__


def within(part: str, helper: Callable, *args, **kwargs):
    """`helper(*args, **kwargs)` with `part` put before its message, still to be named: for
    the check of one part of an argument ("carry.h: expected a floating-point input")."""
    try:
        return helper(*args, **kwargs)
    except ArgumentError as err:
        raise type(err)(f"{part}: {err}") from err.__cause__


def lookup(get: Callable, value):
    """`get(value)` of a registry (`fnn.initializers.get`, `fnn.activations.get`), its
    ValueError for an unknown name passed on as a `BadValue` for the caller to name
    ("Dense: fnn.initializers.get: unknown initializer ...")."""
    try:
        return get(value)
    except ValueError as err:
        raise BadValue(str(err)) from None


def checked(where: str, **table: Callable | dict) -> Callable[[Callable], Callable]:
    """Decorator for a public function with a table of argument checks, so that its body
    starts with its maths: `@checked("adam", b1=UNIT, eps=POSITIVE)`.

    Before the body runs, each argument named in `table` (in table order) is replaced
    by `rule(name, value)`, a function that returns the value checked (e.g. as a float)
    or raises `BadValue`/`BadType`; a dict of bounds stands for `hyper(name, value,
    **bounds)` (a number inside the bounds; a traced value passes). Errors raised by the
    rules or the body are named `where`, as with `named`. A call that does not fit the
    signature (a misspelt keyword) gets Python's own TypeError.
    """
    rules = {name: functools.partial(hyper, **rule) if isinstance(rule, dict) else rule
             for name, rule in table.items()}

    def decorate(fn: Callable) -> Callable:
        if not rules:
            return named(where)(fn)
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def public(*args, **kwargs):
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return fn(*args, **kwargs)   # raises Python's message, naming fn
            bound.apply_defaults()
            for name, rule in rules.items():
                bound.arguments[name] = rule(name, bound.arguments[name])
            return fn(*bound.args, **bound.kwargs)
        return named(where)(public)
    return decorate


def shape_str(shape) -> str:
    """`(3, 4)` -> "(3, 4)" with a trailing comma only for rank 1, like Python."""
    return str(tuple(int(s) for s in shape))


def require_array(x) -> None:
    """`BadType` unless `x` is an array (a `jax.Array`, tracer or NumPy array): layers
    read `x.shape` and `x.dtype`, so a Python list must be converted first."""
    if not (hasattr(x, "shape") and hasattr(x, "dtype")):
        raise BadType(f"expected an array (a jax.Array or numpy.ndarray), got a "
                      f"{type(x).__name__}; convert it with jnp.asarray(x).")


def check_array(where: str, x) -> None:
    labelled(where, require_array, x)


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


def check_rank(where: str, x, rank: int | tuple[int, ...], layout: str) -> None:
    labelled(where, require_rank, x, rank, layout)


def check_min_rank(where: str, x, min_rank: int, layout: str) -> None:
    labelled(where, require_min_rank, x, min_rank, layout)


def check_axis_size(where: str, x, axis: int, expected: int, what: str) -> None:
    labelled(where, require_axis_size, x, axis, expected, what)


def check_floating(where: str, x) -> None:
    labelled(where, require_floating, x)


def as_dtype(where: str, dtype: Any, kind: str = "a dtype such as jnp.float32 or 'int32'"):
    return labelled(where, to_dtype, dtype, kind)


def concrete_range(x) -> tuple[int, int] | None:
    """`(min, max)` of a concrete, non-empty integer array (labels, ids, lengths);
    None under `jit`/`vmap` (the values are traced, so they cannot be checked) or
    when `x` is empty."""
    if isinstance(x, jax.core.Tracer) or not np.size(x):
        return None
    v = np.asarray(x)
    return int(v.min()), int(v.max())


def positive_int(name: str, value: Any) -> int:
    """`value` as a positive int (`BadType` for a float or bool, `BadValue` for <= 0)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise BadType(f"{name} must be a positive int, got {value!r}.")
    value = int(value)
    if value <= 0:
        raise BadValue(f"{name} must be a positive int, got {value}.")
    return value


def check_positive_int(where: str, name: str, value: Any) -> int:
    return labelled(where, positive_int, name, value)


def number(name: str, value: Any, *, low: float | None = None, high: float | None = None,
           low_open: bool = False, high_open: bool = False) -> float:
    """A Python scalar hyperparameter as a float, finite and inside [low, high]
    (`low_open` / `high_open` exclude the end points); else `BadType`/`BadValue`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        hasattr(value, "shape") and value.shape == ()
    ):
        raise BadType(f"{name} must be a number, got {value!r}.")
    v = float(value)
    if not math.isfinite(v):
        raise BadValue(f"{name} must be finite, got {v}.")
    lo_bad = low is not None and (v <= low if low_open else v < low)
    hi_bad = high is not None and (v >= high if high_open else v > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        if low is None:
            rng = f"<{'' if high_open else '='} {high}"
        elif high is None:
            rng = f">{'' if low_open else '='} {low}"
        else:
            rng = f"in {lo}{hi}"
        raise BadValue(f"{name} must be {rng}, got {v}.")
    return v


def check_number(where: str, name: str, value: Any, **bounds) -> float:
    return labelled(where, number, name, value, **bounds)


def hyper(name: str, value: Any, **bounds) -> Any:
    """`number` for a hyperparameter; a traced value (e.g. under a vmap over learning
    rates, or a loss's `delta` under `jit`) cannot be checked and passes unchanged."""
    return value if isinstance(value, jax.core.Tracer) else number(name, value, **bounds)


#: Bounds of common hyperparameters, for `hyper` and the tables of `checked`.
POSITIVE = {"low": 0.0, "low_open": True}                        # > 0
NON_NEGATIVE = {"low": 0.0}                                      # >= 0
UNIT = {"low": 0.0, "high": 1.0, "high_open": True}              # in [0, 1)


def is_int(value: Any) -> bool:
    """A Python or NumPy integer; bools are not ints here."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(name: str, value: Any) -> int:
    """`value` as an int, negative ones too (an axis); a float or bool is a `BadType`."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise BadType(f"{name} must be an int, got {value!r}.")
    return int(value)


def int_pair(name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints -> a pair of ints (kernel sizes, strides); NumPy integers
    count as ints, bools do not (`BadType`)."""
    if is_int(value):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(map(is_int, value)):
        return (int(value[0]), int(value[1]))
    raise BadType(f"{name} must be an int or a pair of ints, got {value!r}.")


def pair(where: str, name: str, value: Any) -> tuple[int, int]:
    return labelled(where, int_pair, name, value)


def from_table(kind: str, value, table: dict, callable_form: str):
    """A callable as is, or the entry of `table` named by the string `value` (else
    `BadValue`: "unknown {kind} ...")."""
    if callable(value):
        return value
    if isinstance(value, str) and value in table:
        return table[value]
    raise BadValue(f"unknown {kind} {value!r}; expected {callable_form} or one of {sorted(table)}.")


# ---------------------------------------------------------------------------
# the arguments every layer takes: input_shape, key, params/state, train


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
    (a sentence with a leading space) follows a rank error.
    """
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


def check_input_shape(where: str, input_shape: Any, layout: str, **rank) -> tuple[int, ...]:
    return labelled(where, example_shape, input_shape, layout, **rank)


def keys_str(tree: Mapping) -> str:
    """"a dict with keys ['a', 'b']" or "an empty dict", for messages."""
    return f"a dict with keys {sorted(map(str, tree))}" if tree else "an empty dict"


def describe_value(value: Any) -> str:
    """A short description of a bad argument: the repr of a scalar, dtype/shape of an array."""
    if isinstance(value, (jax.Array, np.ndarray)):
        return f"an array of dtype {value.dtype} and shape {shape_str(np.shape(value))}"
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__}"


def require_key(key: Any) -> None:
    """Raise unless `key` is ONE PRNG key: `jax.random.key(seed)` (a typed key array of
    shape `()`) or `jax.random.PRNGKey(seed)` (raw `uint32` data of rank 1).

    `None` is a `BadValue` (a key is missing); any other value a `BadType`. Only
    dtype and shape are read, so it is free under `jit` and `vmap`.
    """
    how = "a PRNG key from jax.random.key(seed) (or jax.random.PRNGKey(seed))"
    if key is None:
        raise BadValue(f"key must be {how}, got None.")
    dtype = getattr(key, "dtype", None)
    shape = tuple(getattr(key, "shape", ()))
    if dtype is not None and isinstance(key, (jax.Array, np.ndarray)):
        if jnp.issubdtype(dtype, jax.dtypes.prng_key):
            if shape == ():
                return
            raise BadType(f"key must be {how}, got a batch of keys of shape "
                          f"{shape_str(shape)}; pass one key, e.g. keys[0].")
        if dtype == np.uint32 and len(shape) == 1:
            return
    raise BadType(f"key must be {how}, got {describe_value(key)}. Make one with "
                  "key = jax.random.key(0) and split it for each use.")


def check_key(where: str, key: Any) -> None:
    labelled(where, require_key, key)


def prng_key(name: str, key: Any) -> Any:
    """`key` if it is one PRNG key (`require_key`): a table rule of `checked`."""
    require_key(key)
    return key


def optional(rule: Callable) -> Callable:
    """The table rule `rule` of `checked` for an argument that may also be None."""
    return lambda name, value: None if value is None else rule(name, value)


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


def check_params(where: str, params: Any, keys, *, what: str = "params") -> dict:
    return labelled(where, require_params, params, keys, where.split(".")[0], what=what)


def flag(name: str, value: Any) -> bool:
    """A constructor's on/off option (`use_bias`, `return_sequences`) as a Python bool;
    anything else (`"no"`, `0`, None) is a `BadType` rather than a guess at its truth."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise BadType(f"{name} must be True or False, got {value!r}.")


def check_flag(where: str, name: str, value: Any) -> bool:
    return labelled(where, flag, name, value)


def require_key_and_train(key: Any, train: Any) -> None:
    """An apply's `key` (None or one PRNG key) and `train` (a bool), for layers that do not
    read them and combinators that pass them on. A traced `train` passes: only the
    layers that branch on it (BatchNorm, Dropout) need it static, and they say so."""
    if key is not None:
        require_key(key)
    if not isinstance(train, jax.core.Tracer):
        train_flag(train)


def check_key_and_train(where: str, key: Any, train: Any) -> None:
    labelled(where, require_key_and_train, key, train)


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


def check_train(where: str, train: Any) -> bool:
    return labelled(where, train_flag, train)
