"""Stochastic gradient descent, plain and with (Nesterov) momentum."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import UNIT, BadType, checked, named
from fnn.optim.base import Optimizer, build


class SGDState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    params: Any  # pytree: the current parameters


class MomentumState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    params: Any  # pytree: the current parameters
    v: Any  # pytree like params: velocity (momentum buffer), starts at zeros


@named("sgd")
def sgd(learning_rate) -> Optimizer:
    """Plain gradient descent: `p ← p − lr·g`.

    **Arguments:**
    - `learning_rate`: a float >= 0, or a schedule `step -> lr` evaluated at the
      number of updates applied before this one (0 for the first update).

    Same as `torch.optim.SGD(lr=lr)`, `optax.sgd(lr)` and `keras.optimizers.SGD(lr)`.

    >>> opt = sgd(0.1)
    >>> state = opt.init({"w": jnp.ones(2)})
    >>> state, params = opt.update(state, {"w": jnp.ones(2)})
    >>> params["w"]
    Array([0.9, 0.9], dtype=float32)
    """
    return build("sgd", learning_rate, SGDState, lambda p: (),
                 lambda t, lr, p, g: (p - lr * g,))


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadType(f"{name} must be a bool, got {value!r}.")
    return value


@checked("momentum", beta=UNIT, nesterov=_bool)
def momentum(learning_rate, beta: float = 0.9, nesterov: bool = False) -> Optimizer:
    """Gradient descent with heavy-ball or Nesterov momentum (PyTorch convention).

        v ← β·v + g
        p ← p − lr·v              (nesterov=False)
        p ← p − lr·(g + β·v)      (nesterov=True, with the new v)

    `v` starts at zeros, so the first step is `p − lr·g` (`p − lr·(1+β)·g` with Nesterov).

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`.
    - `beta`: momentum coefficient in [0, 1). Default 0.9.
    - `nesterov`: use Nesterov's look-ahead form. Default False.

    Matches `torch.optim.SGD(lr, momentum=beta, nesterov=nesterov)` (dampening 0)
    and `optax.sgd(lr, momentum=beta, nesterov=nesterov)` (optax's `trace`). Keras
    differs: `keras.optimizers.SGD` keeps `v ← β·v − lr·g; p ← p + v`, i.e. the
    learning rate inside the velocity, which gives the same trajectory for a
    constant learning rate but not under a schedule.
    """
    def rule(t, lr, p, g, v):
        v = beta * v + g
        return p - lr * (g + beta * v if nesterov else v), v

    return build("momentum", learning_rate, MomentumState,
                 lambda p: (jnp.zeros_like(p),), rule)
