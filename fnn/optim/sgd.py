"""Stochastic gradient descent, plain and with (Nesterov) momentum."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, UNIT, BadType, checked
from fnn.optim.base import Optimizer, build, decay_hyper

__all__ = [
    "SGDState", "MomentumState", "sgd", "momentum",
]


class SGDState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters


class MomentumState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    v: Any  # pytree like params: velocity (momentum buffer), starts at zeros


@checked("sgd", weight_decay=NON_NEGATIVE)
def sgd(learning_rate, weight_decay: float = 0.0) -> Optimizer:
    """Plain gradient descent: `p ← p − lr·g`.

    **Arguments:**
    - `learning_rate`: a float >= 0, or a schedule `step -> lr` evaluated at the
      number of updates applied before this one (0 for the first update).
    - `weight_decay`: wd >= 0, coupled L2 decay as in PyTorch: `g ← g + wd·p` before
      the rule. Default 0.0 (built without the term).

    Same as `torch.optim.SGD(lr=lr, weight_decay=wd)`, `optax.sgd(lr)` and
    `keras.optimizers.SGD(lr)`.

    >>> opt = sgd(0.1)
    >>> state = opt.init({"w": jnp.ones(2)})
    >>> state, params = opt.update(state, {"w": jnp.ones(2)})
    >>> params["w"]
    Array([0.9, 0.9], dtype=float32)
    """
    return build("sgd", learning_rate, SGDState, {}, lambda h, p, g: (p - h["lr"] * g,),
                 hyper=decay_hyper(weight_decay), coupled_decay=True)


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadType(f"{name} must be a bool, got {value!r}.")
    return value


@checked("momentum", beta=UNIT, nesterov=_bool, weight_decay=NON_NEGATIVE)
def momentum(learning_rate, beta: float = 0.9, nesterov: bool = False,
             weight_decay: float = 0.0) -> Optimizer:
    """Gradient descent with heavy-ball or Nesterov momentum (PyTorch convention).

        g ← g + wd·p              (weight_decay > 0 only)
        v ← β·v + g
        p ← p − lr·v              (nesterov=False)
        p ← p − lr·(g + β·v)      (nesterov=True, with the new v)

    `v` starts at zeros, so the first step is `p − lr·g` (`p − lr·(1+β)·g` with Nesterov).

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`.
    - `beta`: momentum coefficient in [0, 1). Default 0.9.
    - `nesterov`: use Nesterov's look-ahead form. Default False.
    - `weight_decay`: wd >= 0, coupled L2 decay. Default 0.0 (built without the term).

    Matches `torch.optim.SGD(lr, momentum=beta, nesterov=nesterov, weight_decay=wd)`
    (dampening 0) and `optax.sgd(lr, momentum=beta, nesterov=nesterov)` (optax's
    `trace`). Keras differs: `keras.optimizers.SGD` keeps `v ← β·v − lr·g; p ← p + v`,
    i.e. the learning rate inside the velocity, which gives the same trajectory for a
    constant learning rate but not under a schedule.
    """
    def rule(h, p, g, v):
        v = h["beta"] * v + g
        return p - h["lr"] * (g + h["beta"] * v if nesterov else v), v

    return build("momentum", learning_rate, MomentumState, {"v": jnp.zeros_like}, rule,
                 hyper={"beta": beta, **decay_hyper(weight_decay)}, coupled_decay=True)
