"""Activation layers with parameters: `PReLU`."""
from __future__ import annotations

import jax.numpy as jnp

from fnn._array_checks import example_shape, require_features, require_key_and_train, require_params
from fnn._checks import checked, named, number
from fnn._util import along_last
from fnn.core import Layer

__all__ = [
    "PReLU",
]


@checked("PReLU", init=number)
def PReLU(init: float = 0.25) -> Layer:
    """Parametric ReLU (He et al. 2015): `y = x` if `x > 0` else `alpha_c · x`.

    One learnable slope per channel (the last axis), initialised to `init`
    (0.25, as in the paper and PyTorch).

    **Params:** `alpha: (C,)`. **Shapes:** `(N, ..., C) -> (N, ..., C)`.
    """
    init_value = init

    @named("PReLU")
    def init_fn(key, input_shape):
        del key
        channels = example_shape(input_shape, "(..., C)", min_rank=1)[-1]
        return {"alpha": jnp.full((channels,), init_value, jnp.float32)}, {}

    @named("PReLU")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, {"alpha": ("C",)}, "PReLU")
        require_features(x, params["alpha"].shape[0], "(N, ..., C)", "channels (last axis)")

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        return jnp.where(x > 0, x, along_last(params["alpha"], x.ndim) * x), state

    return Layer(init_fn, apply, "PReLU")
