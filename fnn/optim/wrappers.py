"""Gradient clipping: the tree functions `global_norm` and `clip_tree_by_global_norm`, and
the optimizer wrappers `clip_by_global_norm` and `clip_by_value`.

Each wrapper returns an `Optimizer` whose state is the wrapped optimizer's
state, unchanged in layout, so `current_lr`, checkpoints and nesting all work.
The tree functions are pure, so under `jax.vmap` over per-example gradients
(`fnn.per_example_grads`) they clip each example by its own norm (DP-SGD; see
examples/dp_sgd.py).
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from fnn._checks import POSITIVE, checked, named
from fnn._util import at_least_float32
from fnn.optim.base import Optimizer, an_optimizer, make, name_of
from fnn.optim.trees import require_like_params

__all__ = ["global_norm", "clip_tree_by_global_norm", "clip_by_global_norm", "clip_by_value"]


def global_norm(tree: Any) -> jax.Array:
    """`‖tree‖₂ = √(Σ over all leaves of Σ x²)`, the L2 norm of all leaves together.

    A float32 scalar, float64 if a leaf is float64; half-precision leaves are squared and
    summed in float32 (Σx² of float16 overflows at 65504). A tree without leaves has
    norm 0. Same as `optax.global_norm`. Under `jax.vmap` it gives one norm per mapped
    tree, e.g. `jax.vmap(global_norm)(per_example_grads)` is `(N,)`.
    """
    squares = (jnp.sum(jnp.square(at_least_float32(jnp.asarray(x))))
               for x in jax.tree.leaves(tree))
    return jnp.sqrt(sum(squares, jnp.zeros((), jnp.float32)))   # float64 terms promote


@checked("clip_tree_by_global_norm", max_norm=POSITIVE)
def clip_tree_by_global_norm(tree: Any, max_norm: float) -> Any:
    """`tree · min(1, max_norm / ‖tree‖₂)`: the tree rescaled so that its `global_norm`
    is at most `max_norm`; a tree with norm <= `max_norm` (zero included) is returned
    unchanged in value. Each leaf keeps its dtype.

    The rule of `clip_by_global_norm` (which calls this) and of
    `optax.clip_by_global_norm`; PyTorch's `clip_grad_norm_` divides by `norm + 1e-6`.
    `max_norm` > 0, a Python number or a traced scalar. Per-example clipping:

        g = fnn.per_example_grads(loss_fn, params, x, y)         # leaves (N, ...)
        g = jax.vmap(lambda t: clip_tree_by_global_norm(t, 1.0))(g)
    """
    norm = global_norm(tree)
    scale = jnp.where(norm > max_norm, max_norm / jnp.where(norm > 0, norm, 1.0), 1.0)
    return jax.tree.map(lambda g: (g * scale.astype(g.dtype)).astype(g.dtype), tree)


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
        return optimizer.update(state, clip_tree_by_global_norm(grads, max_norm))

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
