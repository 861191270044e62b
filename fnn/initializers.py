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

Unlike Flax and Keras, whose `lecun_normal`/`he_normal`/`glorot_normal` draw from a
*truncated* normal rescaled to the target std, fnn draws from the plain normal:
the std is exactly the one in the table.
"""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnn._checks import check_number, resolve


def fan_in_fan_out(shape) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight of `shape` as defined above."""
    shape = tuple(shape)
    if not shape:
        return 1, 1
    fan_in = math.prod(shape[:-1])
    fan_out = shape[-1] * math.prod(shape[:-2]) if len(shape) >= 2 else shape[-1]
    return max(fan_in, 1), max(fan_out, 1)


def zeros(key, shape, dtype=jnp.float32):
    """All zeros (the default bias initialiser)."""
    del key
    return jnp.zeros(shape, dtype)


def ones(key, shape, dtype=jnp.float32):
    """All ones (BatchNorm/LayerNorm scale)."""
    del key
    return jnp.ones(shape, dtype)


def constant(value: float) -> Callable:
    """An initialiser filling every entry with `value`."""
    value = check_number("fnn.initializers.constant", "value", value)

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.full(shape, value, dtype)

    return init


def normal(stddev: float) -> Callable:
    """An initialiser drawing from N(0, stddev²)."""
    stddev = check_number("fnn.initializers.normal", "stddev", stddev, low=0.0)

    def init(key, shape, dtype=jnp.float32):
        return stddev * jax.random.normal(key, shape, dtype)

    return init


def small_random(key, shape, dtype=jnp.float32):
    """N(0, 0.01²): `0.01 * randn(shape)`, the CS231n "small random numbers" rule."""
    return 0.01 * jax.random.normal(key, shape, dtype)


def _scaled_normal(scale_fn):
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fan_in_fan_out(shape)
        return jnp.asarray(scale_fn(fan_in, fan_out), dtype) * jax.random.normal(key, shape, dtype)
    return init


def _scaled_uniform(limit_fn):
    def init(key, shape, dtype=jnp.float32):
        fan_in, fan_out = fan_in_fan_out(shape)
        limit = limit_fn(fan_in, fan_out)
        return jax.random.uniform(key, shape, dtype, -limit, limit)
    return init


lecun_normal = _scaled_normal(lambda fi, fo: math.sqrt(1.0 / fi))
lecun_normal.__doc__ = "N(0, 1/fan_in): std 1/√fan_in (the 'calibrated variance' rule)."
lecun_normal.__name__ = "lecun_normal"

he_normal = _scaled_normal(lambda fi, fo: math.sqrt(2.0 / fi))
he_normal.__doc__ = "N(0, 2/fan_in): std √(2/fan_in), He et al. 2015 for ReLU networks."
he_normal.__name__ = "he_normal"

glorot_normal = _scaled_normal(lambda fi, fo: math.sqrt(2.0 / (fi + fo)))
glorot_normal.__doc__ = "N(0, 2/(fan_in+fan_out)), Glorot & Bengio 2010."
glorot_normal.__name__ = "glorot_normal"

he_uniform = _scaled_uniform(lambda fi, fo: math.sqrt(6.0 / fi))
he_uniform.__doc__ = "U(−√(6/fan_in), √(6/fan_in)): variance 2/fan_in."
he_uniform.__name__ = "he_uniform"

glorot_uniform = _scaled_uniform(lambda fi, fo: math.sqrt(6.0 / (fi + fo)))
glorot_uniform.__doc__ = "U(−√(6/(fan_in+fan_out)), √(6/(fan_in+fan_out))), Glorot & Bengio 2010."
glorot_uniform.__name__ = "glorot_uniform"


def orthogonal(key, shape, dtype=jnp.float32):
    """A random orthogonal matrix (Saxe et al. 2014), reshaped to `shape`.

    The weight is viewed as a `(fan_in, shape[-1])` matrix; its columns (when
    fan_in >= out) or rows are orthonormal. Drawn as the Q of a QR decomposition
    of a Gaussian matrix, with signs fixed by diag(R) so the draw is uniform.
    """
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(
            f"fnn.initializers.orthogonal: expected a shape of rank >= 2, got {shape}."
        )
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
