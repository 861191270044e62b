"""Fully connected layers: `Dense`, `Maxout`, and the reshaping `Flatten`."""
from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnn import initializers
from fnn._array_checks import (
    example_shape,
    require_features,
    require_key_and_train,
    require_min_rank,
    require_params,
)
from fnn._checks import checked, flag, labelled, lookup, named, positive_int, require_key
from fnn._util import along_last
from fnn.core import Layer

__all__ = [
    "Dense", "Maxout", "Flatten",
]

_IN_FEATURES = "(..., in_features)"


def _affine_checks(name: str, param_shapes: dict) -> tuple[Callable, Callable]:
    """`(in_features(key, input_shape), check(params, x, key, train))` of a layer named
    `name` computing `x @ w + b`: a shape `(..., in)` and a key at init; at apply, key and
    train, params of `param_shapes` and a floating input `(N, ..., in)`, `in` from `w`."""

    @named(name)
    def in_features(key, input_shape) -> int:
        shape = example_shape(input_shape, _IN_FEATURES, min_rank=1)
        labelled(f"{name}.init", require_key, key)
        return shape[-1]

    @named(name)
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, param_shapes, name)
        size = params["w"].shape[0]
        require_features(x, size, f"(N, ..., {size})", "input features (last axis)")

    return in_features, check


@checked("Dense", features=positive_int, use_bias=flag)
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
    w_init, b_init = lookup(initializers.get, w_init), lookup(initializers.get, b_init)
    param_shapes = {"w": ("in", features), "b": (features,)} if use_bias else {
        "w": ("in", features)}
    in_features, check = _affine_checks("Dense", param_shapes)

    def init(key, input_shape):
        n_in = in_features(key, input_shape)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (n_in, features))}
        if use_bias:
            params["b"] = b_init(kb, (features,))
        return params, {}

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        y = x @ params["w"]
        if use_bias:
            y = y + along_last(params["b"], y.ndim)
        return y, state

    return Layer(init, apply, "Dense")


@checked("Maxout", features=positive_int, pieces=positive_int)
def Maxout(features: int, pieces: int = 2, *, w_init=initializers.lecun_normal,
           b_init=initializers.zeros) -> Layer:
    """Maxout unit (Goodfellow et al. 2013): the max over `pieces` affine maps.

    `z = x @ w + b`, then `y_j = max_p z[j*pieces + p]`: piece `p` of feature `j`
    is column `j*pieces + p`. With two pieces, one fixed at zero, it is ReLU.

    **Params:** `w: (in, features*pieces)`, `b: (features*pieces,)`.
    **Shapes:** `(N, ..., in) -> (N, ..., features)`.
    """
    w_init, b_init = lookup(initializers.get, w_init), lookup(initializers.get, b_init)
    width = features * pieces
    in_features, check = _affine_checks("Maxout", {"w": ("in", width), "b": (width,)})

    def init(key, input_shape):
        n_in = in_features(key, input_shape)
        kw, kb = jax.random.split(key)
        return {"w": w_init(kw, (n_in, width)), "b": b_init(kb, (width,))}, {}

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        z = x @ params["w"]
        z = z + along_last(params["b"], z.ndim)
        return jnp.max(z.reshape(*z.shape[:-1], features, pieces), axis=-1), state

    return Layer(init, apply, "Maxout")


def Flatten() -> Layer:
    """Flatten all axes but the batch axis: `(N, d1, d2, ...) -> (N, d1·d2·...)`."""

    @named("Flatten")
    def init(key, input_shape):
        del key
        example_shape(input_shape, "(d1, d2, ...)")
        return {}, {}

    @named("Flatten")
    def check(x, key, train) -> None:
        require_key_and_train(key, train)
        require_min_rank(x, 1, "(N, ...)")

    def apply(params, state, x, *, key=None, train=False):
        del params
        check(x, key, train)
        return x.reshape(x.shape[0], math.prod(x.shape[1:])), state

    return Layer(init, apply, "Flatten")
