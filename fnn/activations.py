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

Bad arguments are caught while tracing (Python checks of types and shapes only,
free under `jit`), with errors naming the function: `x` must be a numeric array
or a Python/NumPy scalar (a list is a TypeError: convert it with `jnp.asarray`,
as for the layers); `alpha` must be a number; `axis` must name an axis of `x`.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import as_inexact, require_array
from fnn._checks import BadType, BadValue, checked, from_table, named, shape_str

__all__ = [
    "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax", "log_softmax", "identity", "get",
]


def _numeric(name: str, x):
    """`x` unless it is neither a numeric (or boolean) array — a `jax.Array`, tracer or
    NumPy array — nor a Python/NumPy scalar, as `jnp` functions take (`BadType`).

    A list is a TypeError, not converted: `jnp.tanh` refuses lists too, and so do
    the layers. Reads only the type and dtype, so it costs nothing under `jit`.
    """
    if isinstance(x, (int, float, complex)):
        return x
    require_array(x)
    if not jnp.issubdtype(x.dtype, jnp.number) and x.dtype != bool:
        raise BadType(f"expected a numeric array, got dtype {x.dtype}.")
    return x


def _axis_of(x, axis) -> None:
    """`BadType`/`BadValue` unless `axis` (an int, or a tuple of ints) names axes of `x`:
    [-rank, rank - 1]."""
    axes = tuple(axis) if isinstance(axis, (tuple, list)) else (axis,)
    if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in axes):
        raise BadType(f"axis must be an int, got {axis!r}.")
    rank = np.ndim(x)
    if not all(-rank <= a < rank for a in axes):
        fix = f"; use an axis in [-{rank}, {rank - 1}]" if rank else ""
        raise BadValue(f"axis={axis} is out of range for an input of shape "
                       f"{shape_str(np.shape(x))} (rank {rank}){fix}.")


def _activation(**table):
    """Decorator of a public activation: its errors are named "fnn.activations.<name>";
    `x` is checked first (`_numeric`), then the arguments in `table` (see `checked`)."""
    return lambda fn: checked(f"fnn.activations.{fn.__name__}", x=_numeric, **table)(fn)


# `sigmoid` and `tanh` write their derivative through their output y and
# compute it from the tangent side, `dy = u − u·y` with `u = dx·y` (sigmoid) and
# `dy = dx − (dx·y)·y` (tanh), so reverse mode keeps y alone for the backward
# pass. JAX's own rules keep y and y(1 − y) (or 1 − y²): inside `lax.scan` each
# kept array is one more stacked (T, ...) buffer; an LSTM step keeps fewer and runs
# faster (benchmarks/RESULTS.md item 4.1).
#
# `sigmoid` and `tanh` check their input, then call the custom_jvp functions
# below: the check must run before `custom_jvp` binds its arguments (which fails
# with an opaque error for a list or a string).


@jax.custom_jvp
def _sigmoid(x):
    return jax.nn.sigmoid(as_inexact(x))  # jax.nn.sigmoid refuses ints


@_sigmoid.defjvp
def _sigmoid_jvp(primals, tangents):
    y = jax.nn.sigmoid(as_inexact(primals[0]))
    u = tangents[0] * y
    return y, u - u * y


@jax.custom_jvp
def _tanh(x):
    return jnp.tanh(x)


@_tanh.defjvp
def _tanh_jvp(primals, tangents):
    y = jnp.tanh(primals[0])
    dx = tangents[0]
    return y, dx - (dx * y) * y


@_activation()
def sigmoid(x):
    """Logistic sigmoid σ(x) = 1 / (1 + e^{-x}), stable for large |x|."""
    return _sigmoid(x)


@_activation()
def tanh(x):
    """Hyperbolic tangent; tanh(x) = 2σ(2x) − 1."""
    return _tanh(x)


@_activation()
def relu(x):
    """max(0, x); the derivative at 0 is 0 (as in PyTorch and jax.nn.relu)."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


@_activation(alpha={})
def leaky_relu(x, alpha: float = 0.01):
    """x for x > 0, αx otherwise (α = 0.01 as in PyTorch's default negative slope).

    `alpha` is a number (or a traced scalar); anything else is a TypeError."""
    return jnp.where(x > 0, x, alpha * x)


@_activation(alpha={})
def elu(x, alpha: float = 1.0):
    """x for x > 0, α(e^x − 1) otherwise; the exp only sees x <= 0, so it never overflows.

    `alpha` is a number (or a traced scalar); anything else is a TypeError."""
    return jnp.where(x > 0, x, alpha * jnp.expm1(jnp.where(x > 0, 0.0, x)))


@_activation()
def softmax(x, axis: int = -1):
    """e^{x_i} / Σ_j e^{x_j} along `axis`; rows sum to 1; invariant to adding a constant.

    An `axis` outside `[-rank, rank - 1]` is a ValueError, a non-int one a TypeError."""
    _axis_of(x, axis)
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    e = jnp.exp(shifted)
    return e / jnp.sum(e, axis=axis, keepdims=True)


@_activation()
def log_softmax(x, axis: int = -1):
    """x_i − log Σ_j e^{x_j} along `axis`, via the log-sum-exp trick.

    An `axis` outside `[-rank, rank - 1]` is a ValueError, a non-int one a TypeError."""
    _axis_of(x, axis)
    shifted = x - jax.lax.stop_gradient(jnp.max(x, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


@_activation()
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


@named("fnn.activations.get")
def get(activation: str | Callable) -> Callable:
    """Resolve an activation given by name (`"relu"`) or as a callable."""
    return from_table("activation", activation, _BY_NAME, "a callable")
