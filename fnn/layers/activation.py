"""Activation layers with parameters: `PReLU`."""
from __future__ import annotations

import jax.numpy as jnp

from fnn._checks import (
    check_axis_size,
    check_floating,
    check_input_shape,
    check_key_and_train,
    check_min_rank,
    check_number,
    check_params,
)
from fnn._util import along_last
from fnn.core import Layer


def PReLU(init: float = 0.25) -> Layer:
    """Parametric ReLU (He et al. 2015): `y = x` if `x > 0` else `alpha_c · x`.

    One learnable slope per channel (the last axis), initialised to `init`
    (0.25, as in the paper and PyTorch).

    **Params:** `alpha: (C,)`. **Shapes:** `(N, ..., C) -> (N, ..., C)`.
    """
    init_value = check_number("PReLU", "init", init)

    def init_fn(key, input_shape):
        del key
        input_shape = check_input_shape("PReLU", input_shape, "(..., C)", min_rank=1)
        return {"alpha": jnp.full((input_shape[-1],), init_value, jnp.float32)}, {}

    def apply(params, state, x, *, key=None, train=False):
        check_key_and_train("PReLU", key, train)
        check_params("PReLU", params, {"alpha": ("C",)})
        check_min_rank("PReLU", x, 2, "(N, ..., C)")
        check_floating("PReLU", x)
        check_axis_size("PReLU", x, -1, params["alpha"].shape[0], "channels (last axis)")
        return jnp.where(x > 0, x, along_last(params["alpha"], x.ndim) * x), state

    return Layer(init_fn, apply, "PReLU")
