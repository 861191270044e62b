"""How every loss turns its unreduced values into what it returns: `weights` and `reduction`.

    reduced(l, weights, reduction)
        "none": w · l            (l's shape; w = 1 without weights)
        "sum":  Σ w · l
        "mean": Σ w · l / Σ w    (mean(l) without weights)

`l` is the unreduced loss: per element for the element-wise losses (the
predictions' shape), per label for the class losses (the labels' shape, e.g.
`(N,)` or `(N, T)`). `weights` broadcast to `l`'s shape by NumPy's rules
(trailing axes aligned), explicitly, so `(N,)` weights against `(N, K)` losses
are an error that shows the fix `weights[:, None]`, not a silent `(N, N)`.
A weight of 0 drops its value altogether (also an inf or NaN one, e.g. at a
padding position), as PyTorch's `ignore_index`; all weights 0 make the mean NaN
(0/0), as in PyTorch.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, shape_str
from fnn.losses._inputs import asarray

__all__ = ["loss_weights", "reduced"]


def loss_weights(weights, shape: tuple, dtype):
    """`weights` as an array of `shape` (broadcast) and `dtype`, checked."""
    w = asarray(weights, "weights")
    if not (jnp.issubdtype(w.dtype, jnp.number) or w.dtype == jnp.bool_):
        raise BadType(f"weights must be numeric, got dtype {w.dtype}.")
    try:
        fits = np.broadcast_shapes(w.shape, shape) == tuple(shape)
    except ValueError:
        fits = False
    if not fits:
        hint = ""
        if w.ndim < len(shape) and w.shape == tuple(shape[:w.ndim]):
            index = ", ".join([":"] * w.ndim + ["None"] * (len(shape) - w.ndim))
            hint = (f" Weights per example: add the trailing axes, weights[{index}] "
                    "(broadcasting aligns the last axes).")
        raise BadValue(f"weights of shape {shape_str(w.shape)} do not broadcast to the "
                       f"unreduced loss's shape {shape_str(shape)}.{hint}")
    return jnp.broadcast_to(w.astype(dtype), shape)


def reduced(values, weights, reduction: str):
    """The unreduced loss `values` (`l`) weighted and reduced (see the module docstring);
    `reduction` already checked."""
    l = values  # noqa: E741 (the docstrings' symbol)
    if weights is not None:
        w = loss_weights(weights, l.shape, l.dtype)
        # a weight of 0 drops its value, even an inf or NaN one (a padding position)
        wl = jnp.where(w == 0, jnp.zeros_like(l), w * l)
    if reduction == "none":
        return l if weights is None else wl
    if reduction == "sum":
        return jnp.sum(l if weights is None else wl)
    if weights is None:
        return jnp.mean(l)
    return jnp.sum(wl) / jnp.sum(w)
