"""Private helpers shared by modules: explicit broadcasting, memoised builders."""
from __future__ import annotations

import functools

import jax.numpy as jnp


def at_least_float32(x):
    """`x` in float32 if it is half precision (float16, bfloat16), else unchanged: for sums
    and clips that half precision cannot hold (Σw² of a float16 layer overflows at
    65504; `1 − 1e-7` rounds to 1)."""
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def at_least_int32(x):
    """Integer `x` narrower than 32 bits as int32, else unchanged: for indices that a narrow
    dtype cannot hold (uint8 has no class 300; int8 wraps 128 to −128)."""
    return x.astype(jnp.int32) if x.dtype.itemsize < 4 else x


def along_last(v, ndim: int):
    """Reshape a per-channel vector `(C,)` to `(1, ..., 1, C)` of rank `ndim`.

    fnn broadcasts explicitly, so it also runs under
    `jax.config.update("jax_numpy_rank_promotion", "raise")`.
    """
    return v.reshape((1,) * (ndim - 1) + v.shape)


@functools.lru_cache(maxsize=256)
def _memo(build, *args):
    return build(*args)


def memoized(build, *args):
    """`build(*args)`, memoised on `(build, *args)`: fnn's jitted programs (steps,
    initialisations, evaluation) are built once per model, loss, optimizer and
    shape, so repeated calls reuse the compiled program. Unhashable arguments
    (e.g. a model holding a list) just build anew."""
    try:
        return _memo(build, *args)
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        return build(*args)
