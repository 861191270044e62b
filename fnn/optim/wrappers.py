"""Optimizer wrappers: gradient clipping.

Each wrapper returns an `Optimizer` whose state is the wrapped optimizer's
state, unchanged in layout, so `current_lr`, checkpoints and nesting all work.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fnn._checks import POSITIVE, checked, named
from fnn._util import at_least_float32
from fnn.optim.base import Optimizer, an_optimizer, make, name_of
from fnn.optim.trees import require_like_params


def global_norm(tree: Any) -> jax.Array:
    """‖tree‖₂ over all leaves together: a float32 scalar, float64 if a leaf is float64
    (half-precision leaves are summed in float32)."""
    squares = (jnp.sum(jnp.square(at_least_float32(jnp.asarray(x))))
               for x in jax.tree.leaves(tree))
    return jnp.sqrt(sum(squares, jnp.zeros((), jnp.float32)))   # float64 terms promote


@checked("clip_by_global_norm", optimizer=an_optimizer, max_norm=POSITIVE)
def clip_by_global_norm(optimizer: Optimizer, max_norm: float) -> Optimizer:
    """Rescale the gradients so that their global L2 norm is at most `max_norm`.

        n = √(Σ over all leaves of Σ g²)
        g ← g · min(1, max_norm / n)

    then apply `optimizer`. Gradients with `n <= max_norm` (zero included) pass
    unchanged. This is the rule of `torch.nn.utils.clip_grad_norm_` except that
    PyTorch divides by `n + 1e-6` (a relative difference below 1e-6/n), and the
    same as `optax.clip_by_global_norm`. Under `vmap` over an ensemble, each
    model's gradients are clipped by their own norm.

    **Arguments:**
    - `optimizer`: the `Optimizer` to wrap; the state is its state.
    - `max_norm`: > 0.
    """
    name = f"clip_by_global_norm({name_of(optimizer)})"

    @named(f"{name}.update")
    def update(state, grads):
        require_like_params(state.params, grads)
        norm = global_norm(grads)
        scale = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1.0), 1.0)
        grads = jax.tree.map(lambda g: (g * scale.astype(g.dtype)).astype(g.dtype), grads)
        return optimizer.update(state, grads)

    return make(name, optimizer.init, update)


@checked("clip_by_value", optimizer=an_optimizer, limit=POSITIVE)
def clip_by_value(optimizer: Optimizer, limit: float) -> Optimizer:
    """Clip every gradient element to `[−limit, limit]`, then apply `optimizer`.

    Same as `torch.nn.utils.clip_grad_value_(clip_value=limit)` and
    `optax.clip(limit)`.

    **Arguments:**
    - `optimizer`: the `Optimizer` to wrap; the state is its state.
    - `limit`: > 0.
    """
    name = f"clip_by_value({name_of(optimizer)})"

    @named(f"{name}.update")
    def update(state, grads):
        require_like_params(state.params, grads)
        return optimizer.update(state, jax.tree.map(lambda g: jnp.clip(g, -limit, limit), grads))

    return make(name, optimizer.init, update)
