"""Activation functions: element-wise maps (softmax/log_softmax over an axis).

Each works on any shape and under `jit`/`grad`/`vmap`; each can be placed
directly in `fnn.serial` as a parameter-free layer. Derivatives (what
`jax.grad` gives):

| function | f(x) | f'(x) |
|---|---|---|
| `sigmoid` | 1 / (1 + e^{-x}) | σ(x)(1 − σ(x)) |
| `tanh` | (e^x − e^{-x}) / (e^x + e^{-x}) = 2σ(2x) − 1 | 1 − tanh²(x) |
| `relu` | max(0, x) | 1 if x > 0 else 0 (0 at x = 0) |
| `leaky_relu` | x if x > 0 else αx (α = 0.01) | 1 if x > 0 else α |
| `elu` | x if x > 0 else α(e^x − 1) (α = 1) | 1 if x > 0 else αe^x |
| `softmax` | e^{x_i} / Σ_j e^{x_j} (shift-invariant; computed as e^{x−max}) | |
| `log_softmax` | x_i − log Σ_j e^{x_j} (log-sum-exp, stable) | |
| `identity` | x | 1 |
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnn._checks import as_inexact, resolve

# `sigmoid` and `tanh` write their derivative through their output y and
# compute it from the tangent side, `dy = u − u·y` with `u = dx·y` (sigmoid) and
# `dy = dx − (dx·y)·y` (tanh), so reverse mode keeps y alone for the backward
# pass. JAX's own rules keep y and y(1 − y) (or 1 − y²): inside `lax.scan` each
# kept array is one more stacked (T, ...) buffer; an LSTM step keeps 7 instead of
# 12 and runs 4 % faster on CPU (benchmarks/RESULTS.md item 4.1).


@jax.custom_jvp
def sigmoid(x):
    """Logistic sigmoid σ(x) = 1 / (1 + e^{-x}), stable for large |x|."""
    return jax.nn.sigmoid(as_inexact(x))  # jax.nn.sigmoid refuses ints


@sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    y = jax.nn.sigmoid(as_inexact(primals[0]))
    u = tangents[0] * y
    return y, u - u * y


@jax.custom_jvp
def tanh(x):
    """Hyperbolic tangent; tanh(x) = 2σ(2x) − 1."""
    return jnp.tanh(x)


@tanh.defjvp
def _tanh_jvp(primals, tangents):
    y = jnp.tanh(primals[0])
    dx = tangents[0]
    return y, dx - (dx * y) * y


def relu(x):
    """max(0, x); the derivative at 0 is 0 (as in PyTorch and jax.nn.relu)."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


def leaky_relu(x, alpha: float = 0.01):
    """x for x > 0, αx otherwise (α = 0.01 as in PyTorch's default negative slope)."""
    return jnp.where(x > 0, x, alpha * x)


def elu(x, alpha: float = 1.0):
    """x for x > 0, α(e^x − 1) otherwise; the exp only sees x <= 0, so it never overflows."""
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, 0.0, x)))


def softmax(x, axis: int = -1):
    """e^{x_i} / Σ_j e^{x_j} along `axis`; rows sum to 1; invariant to adding a constant."""
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return e / jnp.sum(e, axis=axis, keepdims=True)


def log_softmax(x, axis: int = -1):
    """x_i − log Σ_j e^{x_j} along `axis`, via the log-sum-exp trick."""
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


def identity(x):
    """x unchanged (a linear output layer)."""
    return x


_BY_NAME: dict[str, Callable] = {
    "sigmoid": sigmoid,
    "tanh": tanh,
    "relu": relu,
    "leaky_relu": leaky_relu,
    "elu": elu,
    "softmax": softmax,
    "log_softmax": log_softmax,
    "identity": identity,
    "linear": identity,
}


def get(activation: str | Callable) -> Callable:
    """Resolve an activation given by name (`"relu"`) or as a callable."""
    return resolve("fnn.activations.get", "activation", activation, _BY_NAME, "a callable")
