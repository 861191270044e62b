"""`Upsample`: resize every spatial axis by a scale factor, nearest or (multi)linear.

On an axis of `n` cells scaled by `s`, the output has `m = ⌊n·s⌋` cells; output cell
`i` reads the input at a source coordinate computed with `r = 1/s` (in float32, as
PyTorch computes it):

- `"nearest"`: cell `min(⌊i·r⌋, n − 1)`;
- `"bilinear"`: `u = max(r·(i + ½) − ½, 0)`, `i₀ = ⌊u⌋`, `i₁ = min(i₀ + 1, n − 1)`,
  `λ = u − i₀`: `y_i = (1 − λ)·x_{i₀} + λ·x_{i₁}` (half-pixel centres,
  `align_corners=False`).

"bilinear" is applied on every spatial axis in turn (the interpolation is
separable), so it is linear interpolation on `(N, L, C)` and trilinear on
`(N, D, H, W, C)`: = torch `interpolate(scale_factor=s, mode="linear" | "bilinear" |
"trilinear", align_corners=False)` on the channels-first input. The source indices
and weights depend on the shapes only, so they are constants of the traced program.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fnn._array_checks import example_shape, require_array, require_floating, require_key_and_train
from fnn._checks import BadType, BadValue, is_int, named, shape_str
from fnn.core import Layer

__all__ = ["Upsample", "METHODS"]

METHODS = ("nearest", "bilinear")


def _scale_form(scale):
    """A positive number or a tuple of them (one per spatial axis) -> tuple of floats."""
    values = scale if isinstance(scale, (tuple, list)) else (scale,)
    ok = len(values) > 0 and all(
        (is_int(v) or isinstance(v, float)) and not isinstance(v, bool) for v in values)
    if not ok:
        raise BadType(f"scale must be a positive number or a tuple of them (one per spatial "
                      f"axis), got {scale!r}.")
    if min(values) <= 0 or not all(np.isfinite(values)):
        raise BadValue(f"scale must be > 0 (and finite), got {scale!r}.")
    return tuple(float(v) for v in values)


def _nearest(n: int, m: int, s: float):
    """(indices,) of output cells on one axis."""
    if m == n:
        return (np.arange(n),)
    r = np.float32(1.0) / np.float32(s)
    src = np.floor(np.arange(m, dtype=np.float32) * r).astype(np.int64)
    return (np.minimum(src, n - 1),)


def _linear(n: int, m: int, s: float):
    """(i₀, i₁, λ) of output cells on one axis."""
    if m == n:
        i = np.arange(n)
        return i, i, np.zeros(n, np.float32)
    r = np.float32(1.0) / np.float32(s)
    u = np.maximum(r * (np.arange(m, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5),
                   np.float32(0))
    i0 = u.astype(np.int64)
    i1 = np.minimum(i0 + 1, n - 1)
    lam = np.clip(u - i0.astype(np.float32), 0, 1).astype(np.float32)
    return i0, i1, lam


@named("Upsample")
def Upsample(scale, method: str = "nearest") -> Layer:
    """Resize the spatial axes by `scale`: `(N, *spatial, C) -> (N, *⌊spatial·scale⌋, C)`.

    **Arguments:**
    - `scale`: a positive number (every spatial axis) or one per spatial axis, e.g.
      `2` or `(2, 3)`; non-integer scales are allowed (output size `⌊n·s⌋`).
    - `method`: `"nearest"` or `"bilinear"` (linear on every spatial axis; see
      `help(fnn.layers.upsample)` for the equations, those of PyTorch's
      `interpolate(..., align_corners=False)`).

    **Shapes:** any rank >= 3, batch first and channels last: `(N, L, C)`,
    `(N, H, W, C)` or `(N, D, H, W, C)`.
    """
    scales = _scale_form(scale)
    if not isinstance(method, str) or method not in METHODS:
        raise BadValue(f"unknown method {method!r}; expected one of {METHODS}.")

    def out_spatial(spatial, x_shape):
        per_axis = scales * len(spatial) if len(scales) == 1 else scales
        if len(per_axis) != len(spatial):
            raise BadValue(f"scale {scale!r} gives {len(scales)} factors, but the input "
                           f"{shape_str(x_shape)} has {len(spatial)} spatial axes.")
        out = tuple(int(np.floor(n * s)) for n, s in zip(spatial, per_axis, strict=True))
        if not all(spatial) or min(out) < 1:
            raise BadValue(f"scale {scale!r} makes an empty output {shape_str(out)} from the "
                           f"spatial size {shape_str(spatial)} of the input {shape_str(x_shape)}.")
        return out, per_axis

    @named("Upsample")
    def init(key, input_shape):
        del key
        shape = example_shape(input_shape, "(*spatial, C), e.g. (H, W, C)", min_rank=2)
        out_spatial(shape[:-1], shape)
        return {}, {}

    @named("Upsample")
    def check(x, key, train):
        require_key_and_train(key, train)
        require_array(x)
        if x.ndim < 3:
            raise BadValue(f"expected an input (N, *spatial, C) of rank >= 3, got shape "
                           f"{shape_str(x.shape)} (rank {x.ndim}).")
        require_floating(x)
        return out_spatial(x.shape[1:-1], x.shape)

    def apply(params, state, x, *, key=None, train=False):
        del params
        out, per_axis = check(x, key, train)
        for axis, (n, m, s) in enumerate(zip(x.shape[1:-1], out, per_axis), start=1):
            if method == "nearest":
                (idx,) = _nearest(n, m, s)
                x = jnp.take(x, idx, axis=axis)
                continue
            i0, i1, lam = _linear(n, m, s)
            lam = jnp.asarray(lam, x.dtype).reshape(
                (1,) * axis + (-1,) + (1,) * (x.ndim - 1 - axis))
            x = jnp.take(x, i0, axis=axis) * (1 - lam) + jnp.take(x, i1, axis=axis) * lam
        return x, state

    return Layer(init, apply, "Upsample")
