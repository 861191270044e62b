"""Optimizers with per-coordinate step sizes: Adagrad, Adadelta, RMSprop.

Defaults and update rules follow `torch.optim`; each docstring says where Optax
and Keras differ (mostly: where `eps` sits and the default values). The Adam
family is in `fnn.optim.adam`.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, POSITIVE, UNIT, checked, flag
from fnn.optim.base import Optimizer, build, decay_hyper, switched_on

__all__ = [
    "AdagradState", "AdadeltaState", "RMSpropState", "adagrad", "adadelta", "rmsprop",
]


class AdagradState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    s: Any  # pytree like params: running sum of g², starts at initial_accumulator


class AdadeltaState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    s: Any  # pytree like params: moving average of g², starts at zeros
    u: Any  # pytree like params: moving average of squared steps d², starts at zeros


class RMSpropState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    s: Any  # pytree like params: moving average of g², starts at zeros
    g_avg: Any = None  # centered=True: moving average of g, starts at zeros; else None
    buf: Any = None  # momentum > 0: momentum buffer, starts at zeros; else None


@checked("adagrad", eps=POSITIVE, initial_accumulator=NON_NEGATIVE, weight_decay=NON_NEGATIVE)
def adagrad(learning_rate=0.01, eps: float = 1e-10, initial_accumulator: float = 0.0,
            weight_decay: float = 0.0) -> Optimizer:
    """Adagrad (Duchi et al., 2011), PyTorch convention.

        g ← g + wd·p              (weight_decay > 0 only)
        s ← s + g²
        p ← p − lr·g / (√s + eps)

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 0.01.
    - `eps`: > 0, added outside the square root. Default 1e-10.
    - `initial_accumulator`: >= 0, the starting value of `s`. Default 0.0.
    - `weight_decay`: wd >= 0, coupled L2 decay. Default 0.0 (built without the term).

    Matches `torch.optim.Adagrad` (with `lr_decay=0`). Optax's `adagrad` puts eps
    inside the root, `g / √(s + eps)`, with `initial_accumulator_value=0.1` and
    `eps=1e-7`; Keras does the same (`g / √(s + eps)`, 0.1, 1e-7, lr 0.001).
    """
    def rule(h, p, g, s):
        s = s + g * g
        return p - h["lr"] * g / (jnp.sqrt(s) + h["eps"]), s

    return build("adagrad", learning_rate, AdagradState,
                 {"s": lambda p: jnp.full_like(p, initial_accumulator)}, rule,
                 hyper={"eps": eps, **decay_hyper(weight_decay)}, coupled_decay=True)


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
    def rule(h, p, g, s, u):
        rho, eps = h["rho"], h["eps"]
        s = rho * s + h["one_minus_rho"] * g * g
        d = jnp.sqrt(u + eps) / jnp.sqrt(s + eps) * g
        u = rho * u + h["one_minus_rho"] * d * d
        return p - h["lr"] * d, s, u

    return build("adadelta", learning_rate, AdadeltaState,
                 {"s": jnp.zeros_like, "u": jnp.zeros_like}, rule,
                 hyper={"rho": rho, "eps": eps}, derived=("one_minus_rho",))


@checked("rmsprop", decay=UNIT, eps=POSITIVE, momentum=UNIT, centered=flag,
         weight_decay=NON_NEGATIVE)
def rmsprop(learning_rate=0.01, decay: float = 0.99, eps: float = 1e-8, momentum: float = 0.0,
            centered: bool = False, weight_decay: float = 0.0) -> Optimizer:
    """RMSprop (Tieleman & Hinton, 2012), PyTorch convention (eps outside the root).

        g ← g + wd·p                  (weight_decay > 0 only)
        s ← ρ·s + (1−ρ)·g²            (ρ = decay)
        a = √s + eps                  (centered: g̅ ← ρ·g̅ + (1−ρ)·g, a = √(s − g̅²) + eps)
        p ← p − lr·g / a              (momentum = 0)
        b ← μ·b + g / a;  p ← p − lr·b    (momentum μ > 0)

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 0.01.
    - `decay`: ρ, the moving-average coefficient, in [0, 1). Default 0.99
      (PyTorch's `alpha`).
    - `eps`: > 0. Default 1e-8.
    - `momentum`: μ in [0, 1). Default 0.0 (built without the buffer `b`).
    - `centered`: divide by an estimate of the gradient's standard deviation rather
      than its root mean square (slot `g̅`). Default False.
    - `weight_decay`: wd >= 0, coupled L2 decay. Default 0.0 (built without the term).

    Matches `torch.optim.RMSprop(lr, alpha=decay, eps=eps, momentum=momentum,
    centered=centered, weight_decay=wd)`. Optax's `rmsprop` defaults to `decay=0.9` and
    puts eps inside the root, `g / √(s + eps)` (`eps_in_sqrt=True`; pass
    `eps_in_sqrt=False` to get this rule). Keras's `RMSprop` also puts eps inside the
    root, with `learning_rate=0.001, rho=0.9, epsilon=1e-7`.
    """
    with_momentum = switched_on(momentum)

    def rule(h, p, g, s, *extra):
        s = h["decay"] * s + h["one_minus_decay"] * g * g
        new = [s]
        if centered:
            g_avg = h["decay"] * extra[0] + h["one_minus_decay"] * g
            a = jnp.sqrt(s - g_avg * g_avg) + h["eps"]
            new.append(g_avg)
        else:
            a = jnp.sqrt(s) + h["eps"]
        if with_momentum:
            b = h["momentum"] * extra[-1] + g / a
            return p - h["lr"] * b, *new, b
        return p - h["lr"] * g / a, *new

    slots = {"s": jnp.zeros_like, **({"g_avg": jnp.zeros_like} if centered else {}),
             **({"buf": jnp.zeros_like} if with_momentum else {})}
    return build("rmsprop", learning_rate, RMSpropState, slots, rule,
                 hyper={"decay": decay, "eps": eps, **decay_hyper(weight_decay),
                        **({"momentum": momentum} if with_momentum else {})},
                 derived=("one_minus_decay",), coupled_decay=True)
