"""Regression losses: element-wise, the mean over ALL elements of `(N, ...)`.

Every one also takes `weights=None` (broadcast to the predictions' shape) and
`reduction="mean"` (`"sum"`, `"none"`: the per-element losses); see `fnn.losses`.

`mse`, `mae`, `msle`, `mape`, `huber`, `smooth_l1` (equations in `fnn.losses`). None
of them has an accuracy (`fit` and `evaluate` report the loss alone).
"""
from __future__ import annotations

import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, POSITIVE
from fnn.losses._inputs import elementwise_args, named_loss
from fnn.losses._reduce import reduced
from fnn.metrics import declare_accuracy

__all__ = ["mse", "mae", "msle", "mape", "huber", "smooth_l1"]

#: Lower bound inside the logs of `msle` and the denominators of `mape` (API.md).
_REGRESSION_EPS = 1e-5


def _abs(x):
    """|x| whose derivative at 0 is 0 (sign(x)), as PyTorch's abs; jnp.abs gives 1 there."""
    return x * jnp.sign(x)


@declare_accuracy(None)
@named_loss()
def mse(pred, y, *, weights=None, reduction: str = "mean"):
    """Mean squared error: `mean((pred − y)²)` over all elements.

    **Arguments:**
    - `pred`: predictions, float, any shape `(N, ...)`.
    - `y`: targets, the same shape as `pred`.

    **Returns:** a scalar. Equals PyTorch's `MSELoss()` and Keras's
    `MeanSquaredError`; `optax.squared_error` is the same per element without
    the mean, and `optax.l2_loss` is HALF of it (`½(pred − y)²`).

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    pred, y = elementwise_args(pred, y)
    return reduced(jnp.square(pred - y), weights, reduction)


@declare_accuracy(None)
@named_loss()
def mae(pred, y, *, weights=None, reduction: str = "mean"):
    """Mean absolute error: `mean(|pred − y|)` over all elements.

    The gradient at `pred == y` is 0 (subgradient `sign(0) = 0`, as PyTorch's
    `L1Loss`). **Shapes:** `pred` and `y` the same shape `(N, ...)`; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    pred, y = elementwise_args(pred, y)
    return reduced(_abs(pred - y), weights, reduction)


@declare_accuracy(None)
@named_loss()
def msle(pred, y, *, weights=None, reduction: str = "mean"):
    """Mean squared logarithmic error.

    `mean((log(1 + max(pred, ε)) − log(1 + max(y, ε)))²)` with `ε = 1e-5`, over
    all elements; meant for non-negative targets (counts, prices): values below
    ε are clipped to ε, so negative predictions get a zero gradient.

    Keras's `MeanSquaredLogarithmicError` clips at its epsilon 1e-7 instead of
    1e-5 (the results differ only for values in `[0, 1e-5)`); PyTorch has no
    MSLE. **Shapes:** `pred` and `y` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    pred, y = elementwise_args(pred, y)
    d = jnp.log1p(jnp.maximum(pred, _REGRESSION_EPS)) - jnp.log1p(jnp.maximum(y, _REGRESSION_EPS))
    return reduced(jnp.square(d), weights, reduction)


@declare_accuracy(None)
@named_loss()
def mape(pred, y, *, weights=None, reduction: str = "mean"):
    """Mean absolute percentage error, in percent.

    `100 · mean(|pred − y| / max(|y|, ε))` with `ε = 1e-5`, over all elements
    (targets near 0 make it explode: that is MAPE's nature, ε only avoids a
    division by zero). Keras's `MeanAbsolutePercentageError` uses ε = 1e-7.
    **Shapes:** `pred` and `y` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    pred, y = elementwise_args(pred, y)
    return reduced(100.0 * _abs(pred - y) / jnp.maximum(_abs(y), _REGRESSION_EPS), weights,
                   reduction)


@declare_accuracy(None)
@named_loss(delta=POSITIVE)
def huber(pred, y, delta: float = 1.0, *, weights=None, reduction: str = "mean"):
    """Huber loss, exactly PyTorch's `huber_loss(pred, y, delta=delta)` (mean reduction).

    With `d = pred − y`, per element:

        ½ d²               if |d| < δ
        δ (|d| − ½ δ)      otherwise

    then the mean over all elements. Quadratic near the target, linear (slope
    δ) beyond it, continuous with a continuous first derivative at `|d| = δ`.
    `optax.huber_loss` and Keras's `Huber` use the same formula (optax without
    the mean). `huber(p, y, δ) = δ · smooth_l1(p, y, beta=δ)`.

    **Arguments:** `delta > 0` (checked when concrete; may be traced, e.g. under `vmap`).
    **Shapes:** `pred` and `y` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    pred, y = elementwise_args(pred, y)
    d = pred - y
    a = _abs(d)
    return reduced(jnp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)), weights,
                   reduction)


@declare_accuracy(None)
@named_loss(beta=NON_NEGATIVE)
def smooth_l1(pred, y, beta: float = 1.0, *, weights=None, reduction: str = "mean"):
    """Smooth L1 loss, exactly PyTorch's `smooth_l1_loss(pred, y, beta=beta)` (mean reduction).

    With `d = pred − y`, per element:

        ½ d² / β           if |d| < β
        |d| − ½ β          otherwise

    then the mean over all elements. `beta = 0` is the plain L1 loss (`mae`),
    as in PyTorch. Differs from `huber` by the factor β: the linear part has
    slope 1 here, δ in Huber.

    **Arguments:** `beta >= 0` (checked when concrete; may be traced, e.g. under `vmap`).
    **Shapes:** `pred` and `y` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    pred, y = elementwise_args(pred, y)
    d = pred - y
    a = _abs(d)
    safe_beta = jnp.where(beta > 0, beta, 1.0)  # beta = 0: the first branch is never taken
    return reduced(jnp.where(a < beta, 0.5 * d * d / safe_beta, a - 0.5 * beta), weights,
                   reduction)
