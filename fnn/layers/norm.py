"""Normalisation layers."""
from __future__ import annotations

import jax.numpy as jnp

from fnn._checks import check_axis_size, check_min_rank, check_number
from fnn.core import Layer


def LayerNorm(*, eps: float = 1e-5) -> Layer:
    """Layer normalisation (Ba et al. 2016) over the last axis.

    `y = (x − μ) / √(σ² + eps) · scale + bias`, with μ and the biased variance σ²
    taken over the last axis of each example (as PyTorch `nn.LayerNorm(C)`).

    **Params:** `scale: (C,)` (ones), `bias: (C,)` (zeros). **Shapes:** unchanged.
    """
    eps = check_number("LayerNorm", "eps", eps, low=0.0, low_open=True)

    def init(key, input_shape):
        del key
        c = int(input_shape[-1])
        return {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32)}, {}

    def apply(params, state, x, *, key=None, train=False):
        del key, train
        check_min_rank("LayerNorm", x, 2, "(N, ..., C)")
        check_axis_size("LayerNorm", x, -1, params["scale"].shape[0], "features (last axis)")
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jnp.reciprocal(jnp.sqrt(var + eps)) * params["scale"] + params["bias"], state

    return Layer(init, apply, "LayerNorm")
