"""Private array helpers shared by layers."""
from __future__ import annotations


def along_last(v, ndim: int):
    """Reshape a per-channel vector `(C,)` to `(1, ..., 1, C)` of rank `ndim`.

    fnn broadcasts explicitly, so it also runs under
    `jax.config.update("jax_numpy_rank_promotion", "raise")`.
    """
    return v.reshape((1,) * (ndim - 1) + v.shape)
