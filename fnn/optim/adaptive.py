"""Optimizers with per-coordinate step sizes: Adagrad, Adadelta, RMSprop, Adam, AdamW.

Defaults and update rules follow `torch.optim`; each docstring says where Optax
and Keras differ (mostly: where `eps` sits and the default values).
"""
from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, POSITIVE, UNIT, checked
from fnn.optim.base import Optimizer, build


class AdagradState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    params: Any  # pytree: the current parameters
    s: Any  # pytree like params: running sum of g², starts at initial_accumulator


class AdadeltaState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    params: Any  # pytree: the current parameters
    s: Any  # pytree like params: moving average of g², starts at zeros
    u: Any  # pytree like params: moving average of squared steps d², starts at zeros


class RMSpropState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    params: Any  # pytree: the current parameters
    s: Any  # pytree like params: moving average of g², starts at zeros


class AdamState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied (t of the last update)
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    params: Any  # pytree: the current parameters
    m: Any  # pytree like params: first moment (moving average of g), starts at zeros
    v: Any  # pytree like params: second moment (moving average of g²), starts at zeros


@checked("adagrad", eps=POSITIVE, initial_accumulator=NON_NEGATIVE)
def adagrad(learning_rate=0.01, eps: float = 1e-10, initial_accumulator: float = 0.0) -> Optimizer:
    """Adagrad (Duchi et al., 2011), PyTorch convention.

        s ← s + g²
        p ← p − lr·g / (√s + eps)

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 0.01.
    - `eps`: > 0, added outside the square root. Default 1e-10.
    - `initial_accumulator`: >= 0, the starting value of `s`. Default 0.0.

    Matches `torch.optim.Adagrad` (with `lr_decay=0`). Optax's `adagrad` puts eps
    inside the root, `g / √(s + eps)`, with `initial_accumulator_value=0.1` and
    `eps=1e-7`; Keras does the same (`g / √(s + eps)`, 0.1, 1e-7, lr 0.001).
    """
    def rule(t, lr, p, g, s):
        s = s + g * g
        return p - lr * g / (jnp.sqrt(s) + eps), s

    return build("adagrad", learning_rate, AdagradState,
                 lambda p: (jnp.full_like(p, initial_accumulator),), rule)


@checked("adadelta", rho=UNIT, eps=POSITIVE)
def adadelta(learning_rate=1.0, rho: float = 0.9, eps: float = 1e-6) -> Optimizer:
    """Adadelta (Zeiler, 2012), PyTorch convention (eps inside both roots).

        s ← ρ·s + (1−ρ)·g²
        d = √(u + eps) / √(s + eps) · g
        u ← ρ·u + (1−ρ)·d²
        p ← p − lr·d

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1.0
      (the paper's method has no learning rate; 1.0 recovers it).
    - `rho`: decay of both moving averages, in [0, 1). Default 0.9.
    - `eps`: > 0. Default 1e-6.

    Matches `torch.optim.Adadelta` and `optax.adadelta` (same defaults). Keras's
    `Adadelta` uses the same rule with `learning_rate=0.001, rho=0.95, epsilon=1e-7`.
    """
    def rule(t, lr, p, g, s, u):
        s = rho * s + (1 - rho) * g * g
        d = jnp.sqrt(u + eps) / jnp.sqrt(s + eps) * g
        u = rho * u + (1 - rho) * d * d
        return p - lr * d, s, u

    zeros2 = lambda p: (jnp.zeros_like(p), jnp.zeros_like(p))
    return build("adadelta", learning_rate, AdadeltaState, zeros2, rule)


@checked("rmsprop", decay=UNIT, eps=POSITIVE)
def rmsprop(learning_rate=0.01, decay: float = 0.99, eps: float = 1e-8) -> Optimizer:
    """RMSprop (Tieleman & Hinton, 2012), PyTorch convention (eps outside the root).

        s ← ρ·s + (1−ρ)·g²        (ρ = decay)
        p ← p − lr·g / (√s + eps)

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 0.01.
    - `decay`: ρ, the moving-average coefficient, in [0, 1). Default 0.99
      (PyTorch's `alpha`).
    - `eps`: > 0. Default 1e-8.

    Matches `torch.optim.RMSprop(lr, alpha=decay, eps=eps)` (not centred, no
    momentum). Optax's `rmsprop` defaults to `decay=0.9` and puts eps inside the
    root, `g / √(s + eps)` (`eps_in_sqrt=True`; pass `eps_in_sqrt=False` to get
    this rule). Keras's `RMSprop` also puts eps inside the root, with
    `learning_rate=0.001, rho=0.9, epsilon=1e-7`.
    """
    def rule(t, lr, p, g, s):
        s = decay * s + (1 - decay) * g * g
        return p - lr * g / (jnp.sqrt(s) + eps), s

    return build("rmsprop", learning_rate, RMSpropState, lambda p: (jnp.zeros_like(p),), rule)


def _one_minus_power(b, t):
    """1 − b^t as −expm1(t·log b), with log b in float64: computing b^t in float32
    and subtracting from 1 loses ~1e-5 relative accuracy when b = 0.999."""
    if isinstance(b, float):
        return 1.0 if b == 0.0 else -jnp.expm1(t * math.log(b))
    return 1 - b**t  # a traced hyperparameter


def _adam_corrections(b1, b2):
    """The bias corrections `(1 − b1^t, 1 − b2^t)`, once per update."""
    return lambda t: (_one_minus_power(b1, t), _one_minus_power(b2, t))


def _adam_rule(b1, b2, eps, weight_decay):
    def rule(corrections, lr, p, g, m, v):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / corrections[0]
        v_hat = v / corrections[1]
        u = m_hat / (jnp.sqrt(v_hat) + eps)
        if weight_decay is not None:
            u = u + weight_decay * p
        return p - lr * u, m, v

    return rule


def _zeros2(p):
    return jnp.zeros_like(p), jnp.zeros_like(p)


@checked("adam", b1=UNIT, b2=UNIT, eps=POSITIVE)
def adam(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """Adam (Kingma & Ba, 2015), PyTorch convention.

        m ← b1·m + (1−b1)·g
        v ← b2·v + (1−b2)·g²
        m̂ = m / (1 − b1^t),  v̂ = v / (1 − b2^t)     (t = 1 on the first update)
        p ← p − lr·m̂ / (√v̂ + eps)

    The first update is `p − lr·g / (|g| + eps)`, about `p − lr·sign(g)`.

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1e-3.
    - `b1`, `b2`: moment decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0, added outside the root to the bias-corrected √v̂. Default 1e-8.

    Matches `torch.optim.Adam` and `optax.adam` (with `eps_root=0`). Keras's `Adam`
    defaults to `epsilon=1e-7` and adds it to the *uncorrected* √v (the paper's
    "epsilon hat"), i.e. `p − lr·√(1−b2^t)/(1−b1^t) · m/(√v + eps)`, which differs
    from this rule while `√v` is small. Adam with an L2 penalty in the loss is not
    AdamW: the penalty's gradient is rescaled by `1/√v̂`; use `adamw` for
    decoupled weight decay.
    """
    return build("adam", learning_rate, AdamState, _zeros2, _adam_rule(b1, b2, eps, None),
                 per_step=_adam_corrections(b1, b2))


@checked("adamw", b1=UNIT, b2=UNIT, eps=POSITIVE, weight_decay=NON_NEGATIVE)
def adamw(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 0.01) -> Optimizer:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

        m, v, m̂, v̂ as in `adam`
        p ← p − lr·(m̂ / (√v̂ + eps) + wd·p)

    The decay uses the parameters before the update and is scaled by the
    learning rate (not by `1/√v̂`, which is what an L2 term in the loss would
    give with `adam`). With `weight_decay=0` this is exactly `adam`.

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1e-3.
    - `b1`, `b2`: moment decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0. Default 1e-8.
    - `weight_decay`: wd >= 0. Default 0.01 (PyTorch's).

    Matches `torch.optim.AdamW` (which applies `p ← p·(1 − lr·wd)` before the Adam
    step: the same value). `optax.adamw` uses the same rule with default
    `weight_decay=1e-4`; Keras's `AdamW` uses `weight_decay=0.004`, `epsilon=1e-7`
    and Keras's "epsilon hat" placement (see `adam`). Decay applies to every
    leaf, biases included; wrap with `masked` to exempt some.
    """
    return build("adamw", learning_rate, AdamState, _zeros2,
                 _adam_rule(b1, b2, eps, weight_decay),
                 per_step=_adam_corrections(b1, b2))
