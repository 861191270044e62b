"""Pooling layers on `jax.lax.reduce_window`: `MaxPool`, `AvgPool` (2-D), `MaxPool1D`,
`AvgPool1D`, `MaxPool3D`, `AvgPool3D`, `GlobalAvgPool`, `GlobalMaxPool`.

Inputs are channels-last, `(N, L, C)`, NHWC `(N, H, W, C)` or `(N, D, H, W, C)`;
windows slide over the spatial axes, one channel at a time. `padding` takes the
same forms as the convolutions (`"SAME"`, `"VALID"`, an int, one `(before, after)`
pair per spatial axis); output sizes follow `fnn.conv_output_size`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import example_shape, require_array, require_floating, require_key_and_train
from fnn._checks import BadValue, named, shape_str
from fnn._util import at_least_float32
from fnn.core import Layer
from fnn.layers.conv import (
    EXAMPLE_LAYOUTS,
    padding_form,
    positive_tuple,
    require_batch,
    window_output,
)

__all__ = [
    "MaxPool", "AvgPool", "GlobalAvgPool", "MaxPool1D", "AvgPool1D", "MaxPool3D", "AvgPool3D",
    "GlobalMaxPool",
]


def _explicit_pads(spatial, window, strides, pad):
    if isinstance(pad, str):
        return tuple(jax.lax.padtype_to_pads(tuple(spatial), window, strides, pad))
    return pad


def _require_pads_inside_window(pad, window, padding, window_arg, fill: str) -> None:
    """Every explicit pad must be smaller than the window along its axis (else `BadValue`).

    A pad `p >= k` on one side lets a window cover padding only (its output would
    be `fill`). Conversely, with every pad `< k` no window can: the first window
    starts at the first cell and reaches real cells after at most `lo < k` pads,
    and a window inside the trailing pad would need `hi >= k` cells of it.
    "SAME" pads at most `k − 1` in total on an axis, so it always passes;
    "VALID" pads nothing. PyTorch's rule (`pad <= k/2`) is stricter.
    """
    if isinstance(pad, str):
        return
    names = ("L",) if len(window) == 1 else "DHW"[3 - len(window):]
    for axis, (lo, hi), k in zip(names, pad, window, strict=True):
        if max(lo, hi) >= k:
            raise BadValue(
                f"padding {padding!r} must be smaller than the window {window_arg!r} on every "
                f"side (got a pad of {max(lo, hi)} on the {axis} axis, where the window is {k}); "
                f"a window made only of padding would give {fill}. Use a pad of at most "
                f"{k - 1}, or padding=\"SAME\".")


def _pool(name: str, window, stride, padding, reduce, fill: str, ndim: int = 2) -> Layer:
    """The pooling layer `name` over `ndim` spatial axes: `reduce` over each window; `fill`
    is what a window of padding only would give (the reason explicit pads must be smaller
    than the window)."""
    window_arg = window
    window = positive_tuple("window", window, ndim)
    strides = window if stride is None else positive_tuple("stride", stride, ndim)
    pad = padding_form("padding", padding, ndim)
    _require_pads_inside_window(pad, window, padding, window_arg, fill)
    ones = (1,) * ndim

    @named(name)
    def init(key, input_shape):
        del key
        input_shape = example_shape(input_shape, EXAMPLE_LAYOUTS[ndim], rank=ndim + 1)
        window_output(input_shape[:ndim], window, strides, pad, ones, x_shape=input_shape,
                      kernel_shape=window, what="window")
        return {}, {}

    @named(name)
    def check(x, key, train) -> None:
        require_key_and_train(key, train)
        require_batch(x, ndim)
        window_output(x.shape[1:-1], window, strides, pad, ones, x_shape=x.shape,
                      kernel_shape=window, what="window")

    def apply(params, state, x, *, key=None, train=False):
        del params
        check(x, key, train)
        pads = ((0, 0), *_explicit_pads(x.shape[1:-1], window, strides, pad), (0, 0))
        return reduce(x, (1, *window, 1), (1, *strides, 1), pads), state

    return Layer(init, apply, name)


# The init values are concrete numpy scalars so that `reduce_window` recognises the
# max/sum monoids and uses its differentiable primitives (also under `jit`).


def _max(x, dims, strides, pads):
    return jax.lax.reduce_window(x, np.asarray(-np.inf, x.dtype), jax.lax.max, dims, strides,
                                 pads)


def _avg(x, dims, strides, pads):
    # Half precision sums in float32: a float16 window of values near 65504 would
    # overflow to inf though its mean is representable (the result is cast back).
    acc = at_least_float32(x)
    zero = np.asarray(0, acc.dtype)
    total = jax.lax.reduce_window(acc, zero, jax.lax.add, dims, strides, pads)
    if not any(lo or hi for lo, hi in pads):  # every window is full: one constant divisor
        return (total * np.asarray(1.0 / np.prod(dims), acc.dtype)).astype(x.dtype)
    count = jax.lax.reduce_window(np.ones((1, *x.shape[1:-1], 1), acc.dtype), zero,
                                  jax.lax.add, dims, strides, pads)
    return (total / count).astype(x.dtype)


@named("MaxPool")
def MaxPool(window, stride=None, padding="VALID") -> Layer:
    """Max pooling: the maximum over each `window` of every channel.

    **Arguments:**
    - `window`: an int or a pair `(h, w)`.
    - `stride`: an int or a pair; defaults to `window` (non-overlapping windows).
    - `padding`: as in `Conv2D`; padded cells hold −∞, so they never win. An
      explicit pad must be smaller than the window on every side (else a window
      could hold only padding); `"SAME"` always satisfies this.

    **Shapes:** `(N, H, W, C) -> (N, H', W', C)` with
    `H' = conv_output_size(H, window_h, stride_h, padding)`.
    """
    return _pool("MaxPool", window, stride, padding, _max, "-inf")


@named("AvgPool")
def AvgPool(window, stride=None, padding="VALID") -> Layer:
    """Average pooling: the mean over each `window` of every channel.

    Padded cells are excluded from the average (each output is divided by the
    number of real input cells under its window, as `count_include_pad=False`
    in PyTorch and `"SAME"` average pooling in TensorFlow; PyTorch's default,
    `count_include_pad=True`, divides by the full window size instead).
    Half-precision inputs are summed in float32; the output keeps the input's dtype.

    **Arguments:** as `MaxPool`. **Shapes:** as `MaxPool`.
    """
    return _pool("AvgPool", window, stride, padding, _avg, "NaN (0/0)")


def _pool_doc(kind: str, ndim: int) -> str:
    layout = {1: "(N, L, C) -> (N, L', C)", 3: "(N, D, H, W, C) -> (N, D', H', W', C)"}[ndim]
    shape = "an int" if ndim == 1 else "an int or a triple `(d, h, w)`"
    return (f"{kind} pooling over {ndim} spatial axis{'es' if ndim > 1 else ''}: "
            f"`{layout}`, as `{kind}Pool` (2-D).\n\n"
            f"    **Arguments:** `window`, `stride` (default `window`): {shape}; `padding`: "
            f'`"SAME"`, `"VALID"`, an int or {ndim} `(before, after)` pair(s), each pad '
            "smaller than the window.\n\n"
            "    **Shapes:** each spatial size follows `conv_output_size` on its axis.\n")


def _named_pool(name: str, kind: str, ndim: int, reduce, fill: str):
    @named(name)
    def constructor(window, stride=None, padding="VALID") -> Layer:
        return _pool(name, window, stride, padding, reduce, fill, ndim)
    constructor.__name__ = constructor.__qualname__ = name
    constructor.__doc__ = _pool_doc(kind, ndim)
    return constructor


MaxPool1D = _named_pool("MaxPool1D", "Max", 1, _max, "-inf")
AvgPool1D = _named_pool("AvgPool1D", "Avg", 1, _avg, "NaN (0/0)")
MaxPool3D = _named_pool("MaxPool3D", "Max", 3, _max, "-inf")
AvgPool3D = _named_pool("AvgPool3D", "Avg", 3, _avg, "NaN (0/0)")


def _global(name: str, reduce, what: str) -> Layer:
    """`reduce(x, axis=spatial axes)`: `(N, *spatial, C) -> (N, C)`; `what` names the
    result of a reduction over no positions."""

    def require_positions(spatial, where) -> None:
        if not all(spatial):
            raise BadValue(f"{where} has an empty spatial axis (a size 0 between the batch and "
                           f"channel axes); the {what} over no positions is undefined.")

    @named(name)
    def init(key, input_shape):
        del key
        shape = example_shape(input_shape, "(H, W, C)", min_rank=2)
        require_positions(shape[:-1], f"input_shape {shape_str(shape)}")
        return {}, {}

    @named(name)
    def check(x, key, train) -> None:
        require_key_and_train(key, train)
        require_array(x)
        if x.ndim < 3:
            raise BadValue(f"expected an input (N, H, W, C), got shape {shape_str(x.shape)} "
                           f"(rank {x.ndim}).")
        require_floating(x)
        require_positions(x.shape[1:-1], f"the input of shape {shape_str(x.shape)}")

    def apply(params, state, x, *, key=None, train=False):
        del params
        check(x, key, train)
        return reduce(x, axis=tuple(range(1, x.ndim - 1))), state

    return Layer(init, apply, name)


def GlobalAvgPool() -> Layer:
    """Mean over all spatial positions: `(N, H, W, C) -> (N, C)`.

    Any input of rank >= 3 is accepted: the mean runs over every axis between
    the batch axis and the channel (last) axis, e.g. `(N, T, C) -> (N, C)`.
    """
    return _global("GlobalAvgPool", jnp.mean, "mean")


def GlobalMaxPool() -> Layer:
    """Maximum over all spatial positions: `(N, H, W, C) -> (N, C)`.

    Any input of rank >= 3 is accepted: the maximum runs over every axis between the
    batch axis and the channel (last) axis (`(N, L, C)`, `(N, D, H, W, C)`). Its
    gradient goes to the maximal cell (split evenly between ties, as `jnp.max`).
    """
    return _global("GlobalMaxPool", jnp.max, "maximum")
