"""Weight initialisers: `init(key, shape, dtype=float32) -> array`.

`fan_in` is the product of all axes but the last (Dense `(in, out)`: `in`;
Conv2D HWIO `(kh, kw, cin, cout)`: `kh·kw·cin`). `fan_out` is the last axis
times the receptive field (all axes but the last two): `out` or `kh·kw·cout`.

| initialiser | distribution |
|---|---|
| `zeros`, `ones`, `constant(v)` | the constant |
| `normal(stddev)` | N(0, stddev²) |
| `small_random` | N(0, 0.01²): the classic `0.01 * randn` rule (signals vanish in deep nets) |
| `lecun_normal` | N(0, 1/fan_in) |
| `he_normal` | N(0, 2/fan_in) (for ReLU nets) |
| `he_uniform` | U(−√(6/fan_in), √(6/fan_in)) (variance 2/fan_in) |
| `glorot_normal` | N(0, 2/(fan_in + fan_out)) |
| `glorot_uniform` | U(−√(6/(fan_in+fan_out)), +√(...)) |
| `orthogonal` | a (fan_in × out) matrix with orthonormal columns (or rows), reshaped |
| `truncated_normal(stddev)` | N(0, stddev²) cut to (−2·stddev, 2·stddev) |
| `variance_scaling(scale, mode, distribution)` | std √(scale/n), n = fan_in, fan_out, ... |

Every initialiser checks its arguments at trace time and raises an error naming
it: `key` must be one PRNG key (the constant initialisers ignore it, so any value,
None included, is fine there); `shape` a tuple or list of non-negative ints (zero
sizes give empty arrays), or one int `n`, read as `(n,)` as `jax.random.normal`
and `jax.nn.initializers` read it; `dtype` a floating-point dtype for the random
initialisers, any dtype (integers and bool included) for the constant ones.

Unlike `jax.nn.initializers`, stax, Flax and Keras, whose `lecun_normal`/`he_normal`/
`glorot_normal` draw from a *truncated* normal rescaled to the target std, fnn draws
from the plain normal: the std is exactly the one in the table. For their behaviour
use `variance_scaling(scale, mode, "truncated_normal")` (each `*_normal` says which).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import to_dtype
from fnn._checks import (
    POSITIVE,
    BadType,
    BadValue,
    checked,
    from_table,
    is_int,
    named,
    number,
    prng_key,
    shape_str,
)

__all__ = [
    "fan_in_fan_out", "zeros", "ones", "constant", "normal", "truncated_normal", "small_random",
    "variance_scaling", "lecun_normal", "he_normal", "he_uniform", "glorot_normal",
    "glorot_uniform", "orthogonal", "get",
]

_PREFIX = "fnn.initializers."


def _shape(name: str, shape) -> tuple[int, ...]:
    """`shape` as a tuple of ints: a tuple, list or 1-D NumPy array of non-negative ints
    (NumPy ints count, bools do not; zero sizes give empty arrays), or one int `n`
    for `(n,)`, as `jax.random.normal` and `jax.nn.initializers` take it. Anything
    else is a `BadType`, a negative size a `BadValue`."""
    if is_int(shape):
        shape = (shape,)
    is_sequence = isinstance(shape, (tuple, list)) or (
        isinstance(shape, np.ndarray) and shape.ndim == 1)
    if not is_sequence or not all(map(is_int, shape)):
        raise BadType(f"shape must be a tuple of ints such as (64, 32), got {shape!r}.")
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise BadValue(f"shape sizes must be >= 0, got {shape_str(shape)}.")
    return shape


def _any_dtype(name: str, dtype):
    """`dtype` as JAX makes it (int64 is int32 without `jax_enable_x64`), any kind."""
    return jax.dtypes.canonicalize_dtype(to_dtype(dtype))


def _float_dtype(name: str, dtype):
    """`dtype` unchanged if it names a floating-point dtype (None: JAX's default float),
    else `BadType`."""
    kind = "a floating-point dtype such as jnp.float32"
    if not jnp.issubdtype(to_dtype(dtype, kind), jnp.floating):
        raise BadType(f"dtype must be {kind}, got {to_dtype(dtype).name}.")
    return dtype


def _random(name: str):
    """Decorator of a random initialiser `init(key, shape, dtype)`: errors are named
    "fnn.initializers.<name>"; `key` must be one PRNG key, `shape` is made a tuple
    (`_shape`) and `dtype` must be floating."""
    return checked(_PREFIX + name, key=prng_key, shape=_shape, dtype=_float_dtype)


def _constant(name: str):
    """Decorator of a constant initialiser: as `_random`, but `key` is not used (any value,
    None included) and `dtype` may be any dtype, integers and bool included, as in
    `jax.nn.initializers`."""
    return checked(_PREFIX + name, shape=_shape, dtype=_any_dtype)


def fan_in_fan_out(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape` as defined above."""
    shape = tuple(shape)
    if not shape:
        return 1, 1
    fan_in = math.prod(shape[:-1])
    fan_out = shape[-1] * math.prod(shape[:-2]) if len(shape) >= 2 else shape[-1]
    return max(fan_in, 1), max(fan_out, 1)


@_constant("zeros")
def zeros(key, shape, dtype=jnp.float32):
    """All zeros (the default bias initialiser), in any dtype. `key` is not used (None is
    fine)."""
    return jnp.zeros(shape, dtype)


@_constant("ones")
def ones(key, shape, dtype=jnp.float32):
    """All ones (BatchNorm/LayerNorm scale), in any dtype. `key` is not used (None is fine)."""
    return jnp.ones(shape, dtype)


@checked(_PREFIX + "constant", value=number)
def constant(value: float) -> Callable:
    """An initialiser filling every entry with `value` (a finite number), in any dtype
    (`value` cast to it, as `jnp.full` and `jax.nn.initializers.constant` do: 0.5 is 0 in
    an integer dtype). Its `key` is not used."""
    @_constant("constant")
    def init(key, shape, dtype=jnp.float32):
        return jnp.full(shape, value, dtype)

    return init


@checked(_PREFIX + "normal", stddev={"low": 0.0})
def normal(stddev: float) -> Callable:
    """An initialiser drawing from N(0, stddev²)."""
    @_random("normal")
    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, shape, dtype)

    return init


@_random("small_random")
def small_random(key, shape, dtype=jnp.float32):
    """N(0, 0.01²): `0.01 * randn(shape)`, the CS231n "small random numbers" rule."""
    return 0.01 * jax.random.normal(key, shape, dtype)


def _named(init, name: str, doc: str):
    init.__name__ = init.__qualname__ = name
    init.__doc__ = doc
    return init


@checked(_PREFIX + "truncated_normal", stddev={"low": 0.0})
def truncated_normal(stddev: float = 1e-2) -> Callable:
    """An initialiser drawing from N(0, stddev²) truncated to (−2·stddev, 2·stddev), as
    `jax.nn.initializers.truncated_normal(stddev)` (the same key gives the same values).

    `stddev` is the std of the normal BEFORE truncation; the draws' std is
    `0.8796…·stddev`. For a truncated normal of a given std use `variance_scaling`.
    """
    @_random("truncated_normal")
    def init(key, shape, dtype=jnp.float32):
        return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * jnp.asarray(
            stddev, dtype)

    return init


#: `n` of each `mode` of `variance_scaling`, from (fan_in, fan_out).
_FANS = {
    "fan_in": lambda fi, fo: fi,
    "fan_out": lambda fi, fo: fo,
    "fan_avg": lambda fi, fo: (fi + fo) / 2,
    "fan_geo_avg": lambda fi, fo: math.sqrt(fi * fo),
}

#: The std of N(0, 1) truncated to (−2, 2).
_TRUNCATED_STD = 0.87962566103423978


def _draw_normal(key, shape, dtype, scale, n):
    return jnp.asarray(math.sqrt(scale / n), dtype) * jax.random.normal(key, shape, dtype)


def _draw_truncated(key, shape, dtype, scale, n):
    std = math.sqrt(scale / n) / _TRUNCATED_STD   # the std once cut to ±2 is √(scale/n)
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * jnp.asarray(std, dtype)


def _draw_uniform(key, shape, dtype, scale, n):
    limit = math.sqrt(3.0 * scale / n)             # U(−a, a) has variance a²/3
    return jax.random.uniform(key, shape, dtype, -limit, limit)


_DRAWS = {"normal": _draw_normal, "truncated_normal": _draw_truncated, "uniform": _draw_uniform}


def _one_of(table: dict):
    """A table rule of `checked`: a string naming an entry of `table`."""
    def rule(name, value):
        if isinstance(value, str) and value in table:
            return value
        raise BadValue(f"{name} must be one of {list(table)}, got {value!r}.")
    return rule


def _variance_scaled(name: str, scale: float, mode: str, distribution: str, doc: str):
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fan_in_fan_out(shape)
        return _DRAWS[distribution](key, shape, dtype, scale, _FANS[mode](fan_in, fan_out))
    return _random(name)(_named(init, name, doc))


@checked(_PREFIX + "variance_scaling", scale=POSITIVE, mode=_one_of(_FANS),
         distribution=_one_of(_DRAWS))
def variance_scaling(scale: float, mode: str, distribution: str) -> Callable:
    """An initialiser of std `√(scale / n)`, `jax.nn.initializers.variance_scaling`'s rule.

    `n` is, for `mode`: `"fan_in"`, `"fan_out"`, `"fan_avg"` ((fan_in + fan_out)/2) or
    `"fan_geo_avg"` (√(fan_in·fan_out)), with the fans of `help(fnn.initializers)` (the
    same as JAX's for weights of rank >= 2; JAX rejects rank 0 and 1, fnn reads them
    as fan_in = 1). `distribution`:

    - `"truncated_normal"`: N(0, σ²) cut to (−2σ, 2σ), σ = √(scale/n) / 0.8796…, so the
      std after truncation is √(scale/n);
    - `"normal"`: N(0, scale/n);
    - `"uniform"`: U(−a, a) with a = √(3·scale/n).

    The same key gives JAX's values up to float rounding (the std is computed in
    float64, then cast). JAX's named initialisers are special cases:
    `jax.nn.initializers.lecun_normal()` is `variance_scaling(1.0, "fan_in",
    "truncated_normal")`, `he_normal()` `(2.0, "fan_in", "truncated_normal")`,
    `glorot_normal()` `(1.0, "fan_avg", "truncated_normal")`.
    """
    return _variance_scaled("variance_scaling", scale, mode, distribution,
                            f"variance_scaling({scale}, {mode!r}, {distribution!r}).")


lecun_normal = _variance_scaled(
    "lecun_normal", 1.0, "fan_in", "normal",
    "N(0, 1/fan_in): std 1/√fan_in (the 'calibrated variance' rule), a plain normal. "
    "JAX's lecun_normal (truncated): variance_scaling(1.0, 'fan_in', 'truncated_normal').")
he_normal = _variance_scaled(
    "he_normal", 2.0, "fan_in", "normal",
    "N(0, 2/fan_in): std √(2/fan_in), He et al. 2015 for ReLU networks, a plain normal. "
    "JAX's he_normal (truncated): variance_scaling(2.0, 'fan_in', 'truncated_normal').")
glorot_normal = _variance_scaled(
    "glorot_normal", 1.0, "fan_avg", "normal",
    "N(0, 2/(fan_in+fan_out)), Glorot & Bengio 2010, a plain normal. JAX's glorot_normal "
    "(truncated): variance_scaling(1.0, 'fan_avg', 'truncated_normal').")
he_uniform = _variance_scaled(
    "he_uniform", 2.0, "fan_in", "uniform",
    "U(−√(6/fan_in), √(6/fan_in)): variance 2/fan_in.")
glorot_uniform = _variance_scaled(
    "glorot_uniform", 1.0, "fan_avg", "uniform",
    "U(−√(6/(fan_in+fan_out)), √(6/(fan_in+fan_out))), Glorot & Bengio 2010.")


@_random("orthogonal")
def orthogonal(key, shape, dtype=jnp.float32):
    """A random orthogonal matrix (Saxe et al. 2014), reshaped to `shape`.

    The weight is viewed as a `(fan_in, shape[-1])` matrix; its columns (when
    fan_in >= out) or rows are orthonormal. Drawn as the Q of a QR decomposition
    of a Gaussian matrix, with signs fixed by diag(R) so the draw is uniform.
    """
    if len(shape) < 2:
        raise BadValue(f"expected a shape of rank >= 2, got {shape_str(shape)}.")
    rows, cols = math.prod(shape[:-1]), shape[-1]
    a = jax.random.normal(key, (max(rows, cols), min(rows, cols)), jnp.float32)
    q, r = jnp.linalg.qr(a)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    if rows < cols:
        q = q.T
    return q.reshape(shape).astype(dtype)


_BY_NAME = {
    "zeros": zeros, "ones": ones, "small_random": small_random,
    "lecun_normal": lecun_normal, "he_normal": he_normal, "he_uniform": he_uniform,
    "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform,
    "orthogonal": orthogonal,
}


@named(_PREFIX + "get")
def get(initializer: str | Callable) -> Callable:
    """Resolve an initialiser given by name (`"he_normal"`) or as a callable."""
    return from_table("initializer", initializer, _BY_NAME, "a callable init(key, shape, dtype)")
