"""Private helpers that turn user mistakes into clear errors: the error classes, the
naming of errors by the public function (`named`, `labelled`, `checked`), and the rules
for scalar arguments (ints, numbers, flags, PRNG keys, names in a table).

Every message names the function or layer, what it expected and what it got,
so that a user never has to decode a raw XLA shape error. The checks of array
arguments (ranks, dtypes, `input_shape`, params/state) are in `fnn._array_checks`.
"""
from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
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
    """`(3, 4)` -> "(3, 4)" with a trailing comma only for rank 1, like Python; a symbolic
    size (`jax.export`'s batch `N`) is written as its name."""
    return str(tuple(_size(s) for s in shape))


def _size(s):
    try:
        return int(s)
    except (TypeError, jax.errors.InconclusiveDimensionOperation):
        return _Symbol(str(s))


class _Symbol(str):
    def __repr__(self) -> str:
        return str(self)


def positive_int(name: str, value: Any) -> int:
    """`value` as a positive int (`BadType` for a float or bool, `BadValue` for <= 0)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise BadType(f"{name} must be a positive int, got {value!r}.")
    value = int(value)
    if value <= 0:
        raise BadValue(f"{name} must be a positive int, got {value}.")
    return value


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


def from_table(kind: str, value, table: dict, callable_form: str):
    """A callable as is, or the entry of `table` named by the string `value` (else
    `BadValue`: "unknown {kind} ...")."""
    if callable(value):
        return value
    if isinstance(value, str) and value in table:
        return table[value]
    raise BadValue(f"unknown {kind} {value!r}; expected {callable_form} or one of {sorted(table)}.")


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


def prng_key(name: str, key: Any) -> Any:
    """`key` if it is one PRNG key (`require_key`): a table rule of `checked`."""
    require_key(key)
    return key


def optional(rule: Callable) -> Callable:
    """The table rule `rule` of `checked` for an argument that may also be None."""
    return lambda name, value: None if value is None else rule(name, value)


def flag(name: str, value: Any) -> bool:
    """A constructor's on/off option (`use_bias`, `return_sequences`) as a Python bool;
    anything else (`"no"`, `0`, None) is a `BadType` rather than a guess at its truth."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise BadType(f"{name} must be True or False, got {value!r}.")
