"""Normalisation layers: `LayerNorm`, `RMSNorm`, `BatchNorm` (`GroupNorm` and
`InstanceNorm` are in `fnn.layers.group_norm`).

Dtypes follow the rule of every fnn layer with params (Dense, Conv2D, the recurrent
layers): the output has the dtype of the input and the params promoted together,
`jnp.result_type(x, params)`, so a bfloat16 or float16 batch through float32 params
gives float32. Statistics of half-precision inputs are computed in float32.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnn._array_checks import (
    example_shape,
    require_axis_size,
    require_features,
    require_floating,
    require_key_and_train,
    require_min_rank,
    require_params,
    train_flag,
)
from fnn._checks import (
    POSITIVE,
    BadValue,
    checked,
    flag,
    integer,
    named,
    require_key,
    shape_str,
)
from fnn._util import along_last, at_least_float32
from fnn.core import Layer

__all__ = [
    "LayerNorm", "RMSNorm", "BatchNorm",
]


@checked("LayerNorm", eps=POSITIVE, use_scale=flag, use_bias=flag)
def LayerNorm(*, eps: float = 1e-5, use_scale: bool = True, use_bias: bool = True) -> Layer:
    """Layer normalisation (Ba et al. 2016) over the last axis.

    `y = (x − μ) / √(σ² + eps) · scale + bias`, with μ and the biased variance σ²
    taken over the last axis of each example (as PyTorch `nn.LayerNorm(C)`;
    `use_scale=False, use_bias=False` is `nn.LayerNorm(C, elementwise_affine=False)`).

    **Arguments:**
    - `eps`: added to the variance, > 0.
    - `use_scale`, `use_bias`: whether `scale` and `bias` exist. A switched-off one is
      absent from the params (not a constant leaf), so an optimizer never sees it;
      params of the old `LayerNorm()` (both present) still work with the defaults.

    Half-precision inputs (float16, bfloat16) are normalised in float32 and the
    result has the dtype of `x` and the params promoted together (float32 with the
    default float32 params; the dtype of `x` when there are no params).

    **Params:** `scale: (C,)` (ones), `bias: (C,)` (zeros), each when switched on.
    **Shapes:** unchanged.
    """
    names = tuple(n for n, on in (("scale", use_scale), ("bias", use_bias)) if on)

    @named("LayerNorm")
    def init(key, input_shape):
        del key
        c = example_shape(input_shape, "(..., C)", min_rank=1)[-1]
        make = {"scale": jnp.ones, "bias": jnp.zeros}
        return {n: make[n]((c,), jnp.float32) for n in names}, {}

    @named("LayerNorm")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_min_rank(x, 2, "(N, ..., C)")
        require_floating(x)
        sizes = require_params(params, {n: ("C",) for n in names}, "LayerNorm")
        if names:
            require_axis_size(x, -1, sizes["C"], "features (last axis)")

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        x = jnp.asarray(x)
        used = [params[n] for n in names]
        # Statistics in at least float32: in float16 the squares of deviations
        # above 256 overflow (var = inf, so every output is 0).
        xf = at_least_float32(x)
        mean = jnp.mean(xf, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(xf - mean), axis=-1, keepdims=True)
        y = (xf - mean) * jax.lax.rsqrt(var + eps)
        if use_scale:
            y = y * along_last(params["scale"], x.ndim)
        if use_bias:
            y = y + along_last(params["bias"], x.ndim)
        return y.astype(jnp.result_type(x, *used)), state

    return Layer(init, apply, "LayerNorm")


@checked("RMSNorm", eps=POSITIVE)
def RMSNorm(*, eps: float = 1e-6) -> Layer:
    """Root-mean-square normalisation (Zhang & Sennrich 2019) over the last axis.

    `y = x / √(mean(x², last axis) + eps) · scale`: no centring and no bias, as
    PyTorch `nn.RMSNorm(C, eps=eps)` (whose own default `eps=None` means the dtype's
    machine epsilon; pass `eps` to compare).

    **Arguments:**
    - `eps`: added to the mean square, > 0.

    Half-precision inputs are normalised in float32 (the mean of squares above 256
    overflows in float16) and the result has the dtype of `x` and `scale` promoted
    together.

    **Params:** `scale: (C,)` (ones). **Shapes:** unchanged, input `(N, ..., C)`.
    """

    @named("RMSNorm")
    def init(key, input_shape):
        del key
        c = example_shape(input_shape, "(..., C)", min_rank=1)[-1]
        return {"scale": jnp.ones((c,), jnp.float32)}, {}

    @named("RMSNorm")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, {"scale": ("C",)}, "RMSNorm")
        require_features(x, params["scale"].shape[0], "(N, ..., C)", "features (last axis)")

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        x = jnp.asarray(x)
        scale = params["scale"]
        xf = at_least_float32(x)
        y = xf * jax.lax.rsqrt(jnp.mean(jnp.square(xf), axis=-1, keepdims=True) + eps)
        return (y * along_last(scale, x.ndim)).astype(jnp.result_type(x, scale)), state

    return Layer(init, apply, "RMSNorm")


@checked("BatchNorm", decay={"low": 0.0, "high": 1.0}, eps=POSITIVE, axis=integer)
def BatchNorm(*, decay: float = 0.9, eps: float = 1e-5, axis: int = -1) -> Layer:
    """Batch normalisation (Ioffe & Szegedy 2015) with running statistics in `state`.

    Statistics are per channel (the `axis` of the batched input, default the
    last), taken over every other axis: the batch for `(N, C)`, batch and
    positions for images `(N, H, W, C)`.

    - `train=True`: with the batch mean `μ_B` and the BIASED batch variance
      `σ²_B = mean((x − μ_B)²)` (computed from the centred values, never as
      `E[x²] − E[x]²`), `y = (x − μ_B) / √(σ²_B + eps) · scale + bias`, and the
      returned state is
      `mean ← decay·mean + (1 − decay)·μ_B`,
      `var ← decay·var + (1 − decay)·σ²_B · m/(m − 1)` (the UNBIASED variance over
      the `m` values per channel). Needs `m >= 2`.
    - `train=False`: `y = (x − mean) / √(var + eps) · scale + bias` with the
      running statistics; the state is returned unchanged.

    `decay` is the weight kept on the old statistics. PyTorch's `momentum=0.1`
    is `decay=0.9` (`decay = 1 − momentum`), the default here and the same
    running-variance rule (unbiased); Keras/Flax `momentum=0.99` already means
    `decay=0.99`.

    Under `jit`, pass `train` as a Python bool (static), and thread the returned
    state into the next step.

    Half-precision inputs (float16, bfloat16) are normalised in float32, and the output
    has the dtype of `x`, `scale` and `bias` promoted together (float32 with the default
    float32 params), as in every layer with params; the state stays float32.

    **Params:** `scale: (C,)` (ones), `bias: (C,)` (zeros).
    **State:** `mean: (C,)` (zeros), `var: (C,)` (ones). **Shapes:** unchanged.
    """

    def channel_axis(rank: int, shape: str) -> int:
        ax = axis + rank if axis < 0 else axis
        if not 1 <= ax < rank:
            raise BadValue(f"axis={axis} must name a non-batch axis of the batched input "
                           f"(rank {rank}, shape {shape}); the default -1 is the channel axis.")
        return ax

    @named("BatchNorm")
    def init(key, input_shape):
        del key
        input_shape = example_shape(input_shape, "(..., C)", min_rank=1)
        batched = "(" + ", ".join(["N", *map(str, input_shape)]) + ")"
        c = input_shape[channel_axis(len(input_shape) + 1, batched) - 1]
        params = {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32)}
        return params, {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}

    @named("BatchNorm")
    def check(params, state, x, key, train) -> tuple[bool, int]:
        """`(train, channel axis)`; the key, unused, is still checked (a wrong one is a
        mistake)."""
        if key is not None:
            require_key(key)
        train = train_flag(train)
        c = require_params(params, {"scale": ("C",), "bias": ("C",)}, "BatchNorm")["C"]
        require_params(state, {"mean": (c,), "var": (c,)}, "BatchNorm", what="state")
        require_min_rank(x, 2, "(N, ..., C)")
        require_floating(x)
        ax = channel_axis(x.ndim, shape_str(x.shape))
        require_axis_size(x, ax, c, f"channels on axis {axis}")
        if train and math.prod(n for i, n in enumerate(x.shape) if i != ax) < 2:
            raise BadValue("train=True needs more than one value per channel to estimate a "
                           f"variance, got input of shape {shape_str(x.shape)}; use a batch of "
                           "2 or more, or train=False.")
        return train, ax

    def apply(params, state, x, *, key=None, train=False):
        train, ax = check(params, state, x, key, train)
        x = jnp.asarray(x)   # a NumPy float64 batch becomes JAX's default float, as in Dense
        dtype = jnp.result_type(x, params["scale"], params["bias"])
        x = at_least_float32(x)   # float16 squares of deviations above 256 overflow
        c = x.shape[ax]
        reduce = tuple(i for i in range(x.ndim) if i != ax)
        bshape = tuple(c if i == ax else 1 for i in range(x.ndim))
        if train:
            m = math.prod(x.shape[i] for i in reduce)
            mean = jnp.mean(x, axis=reduce, keepdims=True)
            var = jnp.mean(jnp.square(x - mean), axis=reduce, keepdims=True)
            batch_mean, batch_var = mean.reshape(c), var.reshape(c)
            new_state = {
                "mean": decay * state["mean"] + (1.0 - decay) * batch_mean,
                "var": decay * state["var"] + (1.0 - decay) * batch_var * (m / (m - 1)),
            }
        else:
            mean, var = state["mean"].reshape(bshape), state["var"].reshape(bshape)
            new_state = state
        inv = jnp.reciprocal(jnp.sqrt(var + eps)) * params["scale"].reshape(bshape)
        y = (x - mean) * inv + params["bias"].reshape(bshape)
        return y.astype(dtype), new_state

    return Layer(init, apply, "BatchNorm")
