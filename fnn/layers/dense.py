"""Fully connected layers: `Dense`, `Maxout`, and the reshaping `Flatten`."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from fnn import initializers
from fnn._checks import (
    check_axis_size,
    check_flag,
    check_floating,
    check_input_shape,
    check_key,
    check_key_and_train,
    check_min_rank,
    check_params,
    check_positive_int,
)
from fnn._util import along_last
from fnn.core import Layer


def _weight_init(where, w_init, b_init):
    try:
        return initializers.get(w_init), initializers.get(b_init)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _check_features_input(where, x, in_features):
    check_min_rank(where, x, 2, f"(N, ..., {in_features})")
    check_floating(where, x)
    check_axis_size(where, x, -1, in_features, "input features (last axis)")


def Dense(features: int, *, use_bias: bool = True, w_init=initializers.lecun_normal,
          b_init=initializers.zeros) -> Layer:
    """Fully connected layer: `y = x @ w + b` on the last axis.

    **Arguments:**
    - `features`: output size.
    - `use_bias`: add `b` (default True).
    - `w_init`, `b_init`: initialisers or their names (`"he_normal"`).

    **Params:** `w: (in, features)`, `b: (features,)`.
    **Shapes:** `(N, ..., in) -> (N, ..., features)`.
    """
    features = check_positive_int("Dense", "features", features)
    use_bias = check_flag("Dense", "use_bias", use_bias)
    w_init, b_init = _weight_init("Dense", w_init, b_init)

    param_shapes = {"w": ("in", features), "b": (features,)}
    if not use_bias:
        del param_shapes["b"]

    def init(key, input_shape):
        input_shape = check_input_shape("Dense", input_shape, "(..., in_features)", min_rank=1)
        check_key("Dense.init", key)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (input_shape[-1], features))}
        if use_bias:
            params["b"] = b_init(kb, (features,))
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        check_key_and_train("Dense", key, train)
        check_params("Dense", params, param_shapes)
        _check_features_input("Dense", x, params["w"].shape[0])
        y = x @ params["w"]
        if use_bias:
            y = y + along_last(params["b"], y.ndim)
        return y, state

    return Layer(init, apply, "Dense")


def Maxout(features: int, pieces: int = 2, *, w_init=initializers.lecun_normal,
           b_init=initializers.zeros) -> Layer:
    """Maxout unit (Goodfellow et al. 2013): the max over `pieces` affine maps.

    `z = x @ w + b`, then `y_j = max_p z[j*pieces + p]`: piece `p` of feature `j`
    is column `j*pieces + p`. With two pieces, one fixed at zero, it is ReLU.

    **Params:** `w: (in, features*pieces)`, `b: (features*pieces,)`.
    **Shapes:** `(N, ..., in) -> (N, ..., features)`.
    """
    features = check_positive_int("Maxout", "features", features)
    pieces = check_positive_int("Maxout", "pieces", pieces)
    w_init, b_init = _weight_init("Maxout", w_init, b_init)

    def init(key, input_shape):
        input_shape = check_input_shape("Maxout", input_shape, "(..., in_features)", min_rank=1)
        check_key("Maxout.init", key)
        width = features * pieces
        kw, kb = jax.random.split(key)
        return {"w": w_init(kw, (input_shape[-1], width)), "b": b_init(kb, (width,))}, {}

    def apply(params, state, x, *, key=None, train=False):
        check_key_and_train("Maxout", key, train)
        width = features * pieces
        check_params("Maxout", params, {"w": ("in", width), "b": (width,)})
        _check_features_input("Maxout", x, params["w"].shape[0])
        z = x @ params["w"]
        z = z + along_last(params["b"], z.ndim)
        return jnp.max(z.reshape(*z.shape[:-1], features, pieces), axis=-1), state

    return Layer(init, apply, "Maxout")


def Flatten() -> Layer:
    """Flatten all axes but the batch axis: `(N, d1, d2, ...) -> (N, d1·d2·...)`."""

    def init(key, input_shape):
        del key
        check_input_shape("Flatten", input_shape, "(d1, d2, ...)")
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params
        check_key_and_train("Flatten", key, train)
        check_min_rank("Flatten", x, 1, "(N, ...)")
        return x.reshape(x.shape[0], math.prod(x.shape[1:])), state

    return Layer(init, apply, "Flatten")
