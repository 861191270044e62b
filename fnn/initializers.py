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

Every initialiser checks its arguments at trace time and raises an error naming
it: `key` must be one PRNG key (the constant initialisers ignore it, so any value,
None included, is fine there); `shape` a tuple or list of non-negative ints (zero
sizes give empty arrays), or one int `n`, read as `(n,)` as `jax.random.normal`
and `jax.nn.initializers` read it; `dtype` a floating-point dtype.

Unlike Flax and Keras, whose `lecun_normal`/`he_normal`/`glorot_normal` draw from a
*truncated* normal rescaled to the target std, fnn draws from the plain normal:
the std is exactly the one in the table.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import as_dtype, check_key, check_number, is_int, resolve, shape_str

_PREFIX = "fnn.initializers."


def _check_shape(where: str, shape) -> tuple[int, ...]:
    """`shape` as a tuple of ints: a tuple, list or 1-D NumPy array of non-negative ints
    (NumPy ints count, bools do not; zero sizes give empty arrays), or one int `n`
    for `(n,)`, as `jax.random.normal` and `jax.nn.initializers` take it. Anything
    else is a TypeError, a negative size a ValueError."""
    if is_int(shape):
        shape = (shape,)
    is_sequence = isinstance(shape, (tuple, list)) or (
        isinstance(shape, np.ndarray) and shape.ndim == 1)
    if not is_sequence or not all(map(is_int, shape)):
        raise TypeError(f"{where}: shape must be a tuple of ints such as (64, 32), got {shape!r}.")
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError(f"{where}: shape sizes must be >= 0, got {shape_str(shape)}.")
    return shape


def _check_dtype(where: str, dtype) -> None:
    """Raise TypeError unless `dtype` names a floating-point dtype (None: JAX's default float)."""
    kind = "a floating-point dtype such as jnp.float32"
    dt = as_dtype(where, dtype, kind)
    if not jnp.issubdtype(dt, jnp.floating):
        raise TypeError(f"{where}: dtype must be {kind}, got {dt.name}.")


def _check_args(where: str, key, shape, dtype, *, uses_key: bool = True) -> tuple[int, ...]:
    """The checks every initialiser runs (trace time, no values read): `key` is one PRNG
    key (`check_key`; not checked by the constant initialisers, which ignore it, as in
    `jax.nn.initializers`), `shape` as in `_check_shape` (returned as a tuple), and
    `dtype` a floating dtype. Errors name the initialiser."""
    if uses_key:
        check_key(where, key)
    shape = _check_shape(where, shape)
    _check_dtype(where, dtype)
    return shape


def fan_in_fan_out(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape` as defined above."""
    shape = tuple(shape)
    if not shape:
        return 1, 1
    fan_in = math.prod(shape[:-1])
    fan_out = shape[-1] * math.prod(shape[:-2]) if len(shape) >= 2 else shape[-1]
    return max(fan_in, 1), max(fan_out, 1)


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (the default bias initialiser). `key` is not used (None is fine)."""
    shape = _check_args(_PREFIX + "zeros", key, shape, dtype, uses_key=False)
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype=jnp.float32):
    """All ones (BatchNorm/LayerNorm scale). `key` is not used (None is fine)."""
    shape = _check_args(_PREFIX + "ones", key, shape, dtype, uses_key=False)
    return jnp.ones(shape, dtype)


def constant(value: float) -> Callable:
    """An initialiser filling every entry with `value` (its `key` is not used)."""
    where = _PREFIX + "constant"
    value = check_number(where, "value", value)

    def init(key, shape, dtype=jnp.float32):
        shape = _check_args(where, key, shape, dtype, uses_key=False)
        return jnp.full(shape, value, dtype)

    return init


def normal(stddev: float) -> Callable:
    """An initialiser drawing from N(0, stddev²)."""
    where = _PREFIX + "normal"
    stddev = check_number(where, "stddev", stddev, low=0.0)

    def init(key, shape, dtype=jnp.float32):
        shape = _check_args(where, key, shape, dtype)
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def small_random(key, shape, dtype=jnp.float32):
    """N(0, 0.01²): `0.01 * randn(shape)`, the CS231n "small random numbers" rule."""
    shape = _check_args(_PREFIX + "small_random", key, shape, dtype)
    return 0.01 * jax.random.normal(key, shape, dtype)


def _named(init, name: str, doc: str):
    init.__name__ = init.__qualname__ = name
    init.__doc__ = doc
    return init


def _scaled_normal(name: str, scale_fn, doc: str):
    where = _PREFIX + name

    def init(key, shape, dtype=jnp.float32):
        shape = _check_args(where, key, shape, dtype)
        fan_in, fan_out = fan_in_fan_out(shape)
        return jnp.asarray(scale_fn(fan_in, fan_out), dtype) * jax.random.normal(key, shape, dtype)
    return _named(init, name, doc)


def _scaled_uniform(name: str, limit_fn, doc: str):
    where = _PREFIX + name

    def init(key, shape, dtype=jnp.float32):
        shape = _check_args(where, key, shape, dtype)
        fan_in, fan_out = fan_in_fan_out(shape)
        limit = limit_fn(fan_in, fan_out)
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    return _named(init, name, doc)


lecun_normal = _scaled_normal(
    "lecun_normal", lambda fi, fo: math.sqrt(1.0 / fi),
    "N(0, 1/fan_in): std 1/√fan_in (the 'calibrated variance' rule).")
he_normal = _scaled_normal(
    "he_normal", lambda fi, fo: math.sqrt(2.0 / fi),
    "N(0, 2/fan_in): std √(2/fan_in), He et al. 2015 for ReLU networks.")
glorot_normal = _scaled_normal(
    "glorot_normal", lambda fi, fo: math.sqrt(2.0 / (fi + fo)),
    "N(0, 2/(fan_in+fan_out)), Glorot & Bengio 2010.")
he_uniform = _scaled_uniform(
    "he_uniform", lambda fi, fo: math.sqrt(6.0 / fi),
    "U(−√(6/fan_in), √(6/fan_in)): variance 2/fan_in.")
glorot_uniform = _scaled_uniform(
    "glorot_uniform", lambda fi, fo: math.sqrt(6.0 / (fi + fo)),
    "U(−√(6/(fan_in+fan_out)), √(6/(fan_in+fan_out))), Glorot & Bengio 2010.")


def orthogonal(key, shape, dtype=jnp.float32):
    """A random orthogonal matrix (Saxe et al. 2014), reshaped to `shape`.

    The weight is viewed as a `(fan_in, shape[-1])` matrix; its columns (when
    fan_in >= out) or rows are orthonormal. Drawn as the Q of a QR decomposition
    of a Gaussian matrix, with signs fixed by diag(R) so the draw is uniform.
    """
    where = _PREFIX + "orthogonal"
    shape = _check_args(where, key, shape, dtype)
    if len(shape) < 2:
        raise ValueError(f"{where}: expected a shape of rank >= 2, got {shape_str(shape)}.")
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


def get(initializer: str | Callable) -> Callable:
    """Resolve an initialiser given by name (`"he_normal"`) or as a callable."""
    return resolve("fnn.initializers.get", "initializer", initializer, _BY_NAME,
                   "a callable init(key, shape, dtype)")
