"""Per-example normalisation over groups of channels: `GroupNorm`, `InstanceNorm`.

Both normalise each example on its own (no batch statistics, no state), over the
positions of a channels-last input `(N, ..., C)` and the channels of a group. Dtypes
follow `fnn.layers.norm`: statistics in at least float32, the output in the dtype of
`x` and the params promoted together.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import (
    example_shape,
    require_features,
    require_key_and_train,
    require_min_rank,
    require_params,
)
from fnn._checks import POSITIVE, BadValue, checked, named, positive_int, shape_str
from fnn._util import along_last, at_least_float32
from fnn.core import Layer

__all__ = [
    "GroupNorm", "InstanceNorm",
]


def _group_normalise(x, groups: int, eps: float, scale, bias):
    """`(x − μ_g) / √(σ²_g + eps) · scale + bias` for `x: (N, ..., C)`, with the mean and
    biased variance of each example over its positions and the `C // groups` channels of
    each group (computed from centred values, in at least float32)."""
    xf = at_least_float32(x)
    n, c = x.shape[0], x.shape[-1]
    g = xf.reshape(n, -1, groups, c // groups)          # (N, positions, groups, C/groups)
    mean = jnp.mean(g, axis=(1, 3), keepdims=True)
    var = jnp.mean(jnp.square(g - mean), axis=(1, 3), keepdims=True)
    y = ((g - mean) * jax.lax.rsqrt(var + eps)).reshape(xf.shape)
    y = y * along_last(scale, x.ndim) + along_last(bias, x.ndim)
    return y.astype(jnp.result_type(x, scale, bias))


def _affine(c: int) -> dict:
    return {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32)}


@checked("GroupNorm", groups=positive_int, eps=POSITIVE)
def GroupNorm(groups: int, *, eps: float = 1e-5) -> Layer:
    """Group normalisation (Wu & He 2018) on channels-last input.

    The `C` channels are split into `groups` consecutive groups of `C // groups`; each
    example is normalised per group over its positions and the group's channels:
    `y = (x − μ_g) / √(σ²_g + eps) · scale + bias` (biased variance), as PyTorch
    `F.group_norm(x_nchw, groups, weight=scale, bias=bias, eps=eps)` on the input moved
    to channels-first. `groups=1` normalises over all of an example (LayerNorm over
    positions and channels with a per-channel affine); `groups=C` is `InstanceNorm`.

    **Arguments:**
    - `groups`: the number of groups, a positive int dividing `C` (checked at init).
    - `eps`: added to the variance, > 0.

    Any rank: `(N, C)`, `(N, L, C)`, `(N, H, W, C)`, `(N, D, H, W, C)`.

    **Params:** `scale: (C,)` (ones), `bias: (C,)` (zeros). **Shapes:** unchanged.
    """

    def require_groups(c: int, shape: str) -> None:
        if c % groups:
            raise BadValue(f"channels (last axis) {c} must be divisible by groups={groups}, "
                           f"got input shape {shape}; choose groups among the divisors of {c}.")

    @named("GroupNorm")
    def init(key, input_shape):
        del key
        shape = example_shape(input_shape, "(..., C)", min_rank=1)
        require_groups(shape[-1], shape_str(shape))
        return _affine(shape[-1]), {}

    @named("GroupNorm")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        c = require_params(params, {"scale": ("C",), "bias": ("C",)}, "GroupNorm")["C"]
        require_features(x, c, "(N, ..., C)", "channels (last axis)")
        require_groups(c, shape_str(x.shape))

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        return _group_normalise(jnp.asarray(x), groups, eps, params["scale"],
                               params["bias"]), state

    return Layer(init, apply, "GroupNorm")


@checked("InstanceNorm", eps=POSITIVE)
def InstanceNorm(*, eps: float = 1e-5) -> Layer:
    """Instance normalisation (Ulyanov et al. 2016): each channel of each example
    normalised over its positions, then scaled and shifted per channel.

    `y = (x − μ_{n,c}) / √(σ²_{n,c} + eps) · scale + bias`, μ and the biased σ² over the
    positions of `x[n, ..., c]`: `GroupNorm(groups=C)`, and PyTorch
    `nn.InstanceNorm2d(C, affine=True)` (which keeps no running statistics by default,
    like this layer) on the input moved to channels-first.

    **Arguments:**
    - `eps`: added to the variance, > 0.

    The input needs at least one position axis: `(N, L, C)`, `(N, H, W, C)`, ... (an
    `(N, C)` input has one value per channel, which would normalise to 0).

    **Params:** `scale: (C,)` (ones), `bias: (C,)` (zeros). **Shapes:** unchanged.
    """

    @named("InstanceNorm")
    def init(key, input_shape):
        del key
        c = example_shape(input_shape, "(positions..., C), e.g. (H, W, C)", min_rank=2)[-1]
        return _affine(c), {}

    @named("InstanceNorm")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        c = require_params(params, {"scale": ("C",), "bias": ("C",)}, "InstanceNorm")["C"]
        require_min_rank(x, 3, "(N, positions..., C)")
        require_features(x, c, "(N, positions..., C)", "channels (last axis)")

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        x = jnp.asarray(x)
        return _group_normalise(x, x.shape[-1], eps, params["scale"], params["bias"]), state

    return Layer(init, apply, "InstanceNorm")
