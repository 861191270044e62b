"""The Adam family: Adam, AdamW (both with AMSGrad), NAdam, RAdam and Adamax.

Defaults and update rules follow `torch.optim`; each docstring says where Optax
and Keras differ. Terms that depend only on the step (the bias corrections
`1 − b^t`, NAdam's momentum schedule, RAdam's rectification) are computed once
per update, not once per leaf.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, POSITIVE, UNIT, checked, flag
from fnn.optim.base import Optimizer, build, decay_hyper
from fnn.optim.trees import bool_tree

__all__ = [
    "AdamState", "NAdamState", "AdamaxState", "adam", "adamw", "nadam", "radam", "adamax",
]


class AdamState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied (t of the last update)
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    m: Any  # pytree like params: first moment (moving average of g), starts at zeros
    v: Any  # pytree like params: second moment (moving average of g²), starts at zeros
    v_max: Any = None  # amsgrad=True: running maximum of v, starts at zeros; else None


class NAdamState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    mu_product: jax.Array  # scalar: μ_1·…·μ_t, the product of the momentum coefficients
    m: Any  # pytree like params: first moment, starts at zeros
    v: Any  # pytree like params: second moment, starts at zeros


class AdamaxState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    m: Any  # pytree like params: first moment, starts at zeros
    u: Any  # pytree like params: exponentially weighted infinity norm, starts at zeros


_MOMENTS = ("one_minus_b1", "one_minus_b2", "log_b1", "log_b2")


def _one_minus_power(log_b, t):
    """1 − b^t as −expm1(t·log b): computing b^t and subtracting it from 1 loses ~1e-5
    relative accuracy in float32 when b = 0.999. `log b` is computed on the host in
    float64 (`fnn.optim.hyperparams`); b = 0 gives log b = −inf and exactly 1."""
    return -jnp.expm1(t * log_b)


def _corrections(t, h):
    """The bias corrections `c1 = 1 − b1^t`, `c2 = 1 − b2^t`, once per update."""
    return {"c1": _one_minus_power(h["log_b1"], t), "c2": _one_minus_power(h["log_b2"], t)}


def _moments(h, g, m, v):
    return h["b1"] * m + h["one_minus_b1"] * g, h["b2"] * v + h["one_minus_b2"] * g * g


def _adam_rule(amsgrad: bool, decoupled: bool):
    def rule(h, p, g, m, v, *v_max):
        m, v = _moments(h, g, m, v)
        m_hat = m / h["c1"]
        if amsgrad:
            v_max = (jnp.maximum(v_max[0], v),)
        v_hat = (v_max[0] if amsgrad else v) / h["c2"]
        u = m_hat / (jnp.sqrt(v_hat) + h["eps"])
        if decoupled and "weight_decay" in h:   # AdamW (adam's decay is coupled, in build)
            u = u + h["weight_decay"] * p
        return p - h["lr"] * u, m, v, *v_max

    return rule


def _adam_slots(amsgrad: bool) -> dict:
    return {"m": jnp.zeros_like, "v": jnp.zeros_like,
            **({"v_max": jnp.zeros_like} if amsgrad else {})}


@checked("adam", b1=UNIT, b2=UNIT, eps=POSITIVE, weight_decay=NON_NEGATIVE, amsgrad=flag)
def adam(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         weight_decay: float = 0.0, amsgrad: bool = False) -> Optimizer:
    """Adam (Kingma & Ba, 2015), PyTorch convention.

        g ← g + wd·p                                 (weight_decay > 0 only)
        m ← b1·m + (1−b1)·g
        v ← b2·v + (1−b2)·g²
        m̂ = m / (1 − b1^t),  v̂ = v / (1 − b2^t)     (t = 1 on the first update)
        p ← p − lr·m̂ / (√v̂ + eps)

    With `amsgrad=True` (Reddi et al., 2018), `v̂ = v_max / (1 − b2^t)` where
    `v_max ← max(v_max, v)` keeps the largest second moment seen.
    The first update is `p − lr·g / (|g| + eps)`, about `p − lr·sign(g)`.

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1e-3.
    - `b1`, `b2`: moment decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0, added outside the root to the bias-corrected √v̂. Default 1e-8.
    - `weight_decay`: wd >= 0, coupled L2 decay (the gradient of `wd/2·‖p‖²` added
      to g). Default 0.0 (built without the term).
    - `amsgrad`: keep the running maximum `v_max`. Default False.

    Matches `torch.optim.Adam` (`weight_decay`, `amsgrad` included) and `optax.adam`
    (with `eps_root=0`). Keras's `Adam` defaults to `epsilon=1e-7` and adds it to the
    *uncorrected* √v (the paper's "epsilon hat"), i.e. `p − lr·√(1−b2^t)/(1−b1^t) ·
    m/(√v + eps)`, which differs from this rule while `√v` is small. Coupled weight
    decay (as an L2 term in the loss) is rescaled by `1/√v̂`; use `adamw` for
    decoupled weight decay.
    """
    return build("adam", learning_rate, AdamState, _adam_slots(amsgrad),
                 _adam_rule(amsgrad, decoupled=False),
                 hyper={"b1": b1, "b2": b2, "eps": eps, **decay_hyper(weight_decay)},
                 derived=_MOMENTS, per_step=_corrections, coupled_decay=True)


def _decay_mask(name: str, mask: Any) -> Any:
    """None, a function `params -> bool tree`, or a bool tree (checked now)."""
    return mask if mask is None or callable(mask) else bool_tree(name, mask, "True = decay")


@checked("adamw", b1=UNIT, b2=UNIT, eps=POSITIVE, weight_decay=NON_NEGATIVE, amsgrad=flag,
         mask=_decay_mask)
def adamw(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          weight_decay: float = 0.01, amsgrad: bool = False, mask: Any = None) -> Optimizer:
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay.

        m, v, m̂, v̂ as in `adam` (amsgrad too)
        p ← p − lr·(m̂ / (√v̂ + eps) + wd·p)     (leaves where mask is False: wd = 0)

    The decay uses the parameters before the update and is scaled by the
    learning rate (not by `1/√v̂`, which is what an L2 term in the loss would
    give with `adam`). With `weight_decay=0` this is exactly `adam`.

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1e-3.
    - `b1`, `b2`: moment decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0. Default 1e-8.
    - `weight_decay`: wd >= 0. Default 0.01 (PyTorch's).
    - `amsgrad`: as in `adam`. Default False.
    - `mask`: which leaves decay: None (all, the default), a pytree of Python bools like
      the params, or a function `params -> such a tree`, e.g. `fnn.optim.decay_mask`
      (weight matrices and kernels only: no biases, no norm parameters).

    Matches `torch.optim.AdamW` (which applies `p ← p·(1 − lr·wd)` before the Adam
    step: the same value; a mask is PyTorch's parameter group with `weight_decay=0`).
    `optax.adamw` uses the same rule with default `weight_decay=1e-4` and the same
    `mask` argument; Keras's `AdamW` uses `weight_decay=0.004`, `epsilon=1e-7` and
    Keras's "epsilon hat" placement (see `adam`).
    """
    return build("adamw", learning_rate, AdamState, _adam_slots(amsgrad),
                 _adam_rule(amsgrad, decoupled=True),
                 hyper={"b1": b1, "b2": b2, "eps": eps, "weight_decay": weight_decay},
                 derived=_MOMENTS, per_step=_corrections, decay_mask=mask)


@checked("nadam", b1=UNIT, b2=UNIT, eps=POSITIVE, momentum_decay=NON_NEGATIVE)
def nadam(learning_rate=2e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          momentum_decay: float = 4e-3) -> Optimizer:
    """NAdam (Dozat, 2016): Adam with Nesterov momentum, PyTorch convention.

        μ_t = b1·(1 − ½·0.96^(t·ψ))           (ψ = momentum_decay)
        m ← b1·m + (1−b1)·g;  v ← b2·v + (1−b2)·g²;  v̂ = v / (1 − b2^t)
        p ← p − lr·[ (1−μ_t)/(1 − Π_{i≤t} μ_i) · g  +  μ_{t+1}/(1 − Π_{i≤t+1} μ_i) · m ]
                   / (√v̂ + eps)

    The state carries the product `Π μ_i` (`mu_product`).

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 2e-3.
    - `b1`, `b2`: moment decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0. Default 1e-8.
    - `momentum_decay`: ψ >= 0. Default 4e-3.

    Matches `torch.optim.NAdam` (without weight decay). `optax.nadam` and Keras's
    `Nadam` use a constant μ = b1 (no momentum schedule) and other bias corrections.
    """
    def per_step(t, h, mu_product):
        psi = h["momentum_decay"]
        mu = h["b1"] * (1 - 0.5 * jnp.power(0.96, t * psi))
        mu_next = h["b1"] * (1 - 0.5 * jnp.power(0.96, (t + 1) * psi))
        mu_product = mu_product * mu
        return {"c2": _one_minus_power(h["log_b2"], t), "mu_product": mu_product,
                "cg": (1 - mu) / (1 - mu_product),
                "cm": mu_next / (1 - mu_product * mu_next)}

    def rule(h, p, g, m, v):
        m, v = _moments(h, g, m, v)
        a = jnp.sqrt(v / h["c2"]) + h["eps"]
        return p - h["lr"] * (h["cg"] * g + h["cm"] * m) / a, m, v

    return build("nadam", learning_rate, NAdamState, _adam_slots(False), rule,
                 hyper={"b1": b1, "b2": b2, "eps": eps, "momentum_decay": momentum_decay},
                 derived=_MOMENTS, per_step=per_step, carry={"mu_product": 1.0})


@checked("radam", b1=UNIT, b2=UNIT, eps=POSITIVE)
def radam(learning_rate=1e-3, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> Optimizer:
    """RAdam (Liu et al., 2020): Adam with the variance of its adaptive rate rectified.

        m, v as in `adam`;  m̂ = m / (1 − b1^t)
        ρ∞ = 2/(1−b2) − 1;   ρ_t = ρ∞ − 2t·b2^t / (1 − b2^t)
        ρ_t > 5:  r = √((ρ_t−4)(ρ_t−2)ρ∞ / ((ρ∞−4)(ρ∞−2)ρ_t))
                  p ← p − lr·m̂·r·√(1 − b2^t) / (√v + eps)
        else:     p ← p − lr·m̂                (momentum SGD while v is unreliable)

    (eps is added to the uncorrected √v, as PyTorch does.)

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1e-3.
    - `b1`, `b2`: moment decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0. Default 1e-8.

    Matches `torch.optim.RAdam` (without weight decay). `optax.radam` uses the
    threshold ρ_t ≥ 5 and puts eps on the corrected √v̂.
    """
    def per_step(t, h):
        c2 = _one_minus_power(h["log_b2"], t)
        rho_inf = 2 / h["one_minus_b2"] - 1
        rho_t = rho_inf - 2 * t * jnp.exp(t * h["log_b2"]) / c2
        rectified = rho_t > 5
        r2 = (rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)
        # r·√(1 − b2^t) while rectified, else 0 (r > 0 whenever ρ_t > 5)
        rect = jnp.sqrt(jnp.where(rectified, r2, 0.0)) * jnp.sqrt(c2)
        return {"c1": _one_minus_power(h["log_b1"], t), "rect": rect}

    def rule(h, p, g, m, v):
        m, v = _moments(h, g, m, v)
        m_hat = m / h["c1"]
        u = jnp.where(h["rect"] > 0, m_hat * h["rect"] / (jnp.sqrt(v) + h["eps"]), m_hat)
        return p - h["lr"] * u, m, v

    return build("radam", learning_rate, AdamState, _adam_slots(False), rule,
                 hyper={"b1": b1, "b2": b2, "eps": eps}, derived=_MOMENTS, per_step=per_step)


@checked("adamax", b1=UNIT, b2=UNIT, eps=POSITIVE)
def adamax(learning_rate=2e-3, b1: float = 0.9, b2: float = 0.999,
           eps: float = 1e-8) -> Optimizer:
    """Adamax (Kingma & Ba, 2015, section 7.1): Adam with the infinity norm.

        m ← b1·m + (1−b1)·g
        u ← max(b2·u, |g| + eps)
        p ← p − lr/(1 − b1^t) · m/u

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 2e-3.
    - `b1`, `b2`: decay rates in [0, 1). Defaults 0.9, 0.999.
    - `eps`: > 0, added to |g| inside the maximum. Default 1e-8.

    Matches `torch.optim.Adamax` (without weight decay). `optax.adamax` adds eps
    outside the maximum (`m / (u + eps)`); Keras's `Adamax` too, with `epsilon=1e-7`.
    """
    def rule(h, p, g, m, u):
        m = h["b1"] * m + h["one_minus_b1"] * g
        u = jnp.maximum(h["b2"] * u, jnp.abs(g) + h["eps"])
        return p - h["lr"] / h["c1"] * (m / u), m, u

    return build("adamax", learning_rate, AdamaxState, {"m": jnp.zeros_like, "u": jnp.zeros_like},
                 rule, hyper={"b1": b1, "b2": b2, "eps": eps}, derived=_MOMENTS,
                 per_step=_corrections)
