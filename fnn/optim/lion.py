"""Lion (Chen et al., 2023): the sign of an interpolated momentum."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, UNIT, checked
from fnn.optim.base import Optimizer, build, decay_hyper

__all__ = [
    "LionState", "lion",
]


class LionState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: learning rate of the latest update, scale included
    lr_scale: jax.Array  # float32 scalar: factor on the schedule's rate, 1.0 at init
    hyper: dict  # hyperparameters as scalar arrays (fnn.optim.hyperparams)
    params: Any  # pytree: the current parameters
    m: Any  # pytree like params: momentum (moving average of g), starts at zeros


@checked("lion", b1=UNIT, b2=UNIT, weight_decay=NON_NEGATIVE)
def lion(learning_rate=1e-4, b1: float = 0.9, b2: float = 0.99,
         weight_decay: float = 0.0) -> Optimizer:
    """Lion, "EvoLved Sign Momentum" (Chen et al., 2023).

        u = sign(b1·m + (1−b1)·g)
        p ← p − lr·(u + wd·p)
        m ← b2·m + (1−b2)·g

    Every coordinate moves by ±lr (0 where the interpolation is exactly 0), so Lion
    wants a learning rate 3–10× smaller than AdamW's and a weight decay as many times
    larger (the paper's advice); it keeps one slot where Adam keeps two.

    **Arguments:**
    - `learning_rate`: a float >= 0 or a schedule `step -> lr`. Default 1e-4.
    - `b1`: interpolation between momentum and gradient for the sign, in [0, 1). Default 0.9.
    - `b2`: momentum decay, in [0, 1). Default 0.99.
    - `weight_decay`: wd >= 0, decoupled (scaled by lr, as AdamW's). Default 0.0 (built
      without the term).

    Same rule and defaults as `optax.lion` and Keras's `Lion`; PyTorch has no Lion.
    """
    def rule(h, p, g, m):
        u = jnp.sign(h["b1"] * m + h["one_minus_b1"] * g)
        if "weight_decay" in h:
            u = u + h["weight_decay"] * p
        return p - h["lr"] * u, h["b2"] * m + h["one_minus_b2"] * g

    return build("lion", learning_rate, LionState, {"m": jnp.zeros_like}, rule,
                 hyper={"b1": b1, "b2": b2, **decay_hyper(weight_decay)},
                 derived=("one_minus_b1", "one_minus_b2"))
