"""Optimizer wrappers: gradient clipping and masking.

Each wrapper returns an `Optimizer` whose state is the wrapped optimizer's
state, unchanged in layout, so `current_lr`, checkpoints and nesting all work.
"""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import POSITIVE, BadType, checked, named
from fnn._util import at_least_float32
from fnn.optim.base import Optimizer, an_optimizer, make, name_of, require_like_params


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


def _as_mask(name: str, mask: Any) -> Any:
    """A pytree of Python bools; any other leaf raises TypeError."""
    def leaf(path, x):
        if isinstance(x, (bool, np.bool_)):
            return bool(x)
        if isinstance(x, (np.ndarray, jax.Array)) and x.shape == () and x.dtype == bool and (
                not isinstance(x, jax.core.Tracer)):
            return bool(x)
        raise BadType(f"{name} leaves must be Python bools (True = train, False = freeze), "
                      f"got {x!r} at {jax.tree_util.keystr(path) or 'the root'}.")

    return jax.tree_util.tree_map_with_path(leaf, mask)


@checked("masked", optimizer=an_optimizer, mask=_as_mask)
def masked(optimizer: Optimizer, mask: Any) -> Optimizer:
    """Train only the parameters where `mask` is True; freeze the others.

    `mask` is a pytree of Python bools with exactly the structure of the params
    (e.g. `{"w": True, "b": False}`), checked at `init` and `update`. Frozen
    leaves stay bit-for-bit unchanged, and so do their optimizer slots (momentum,
    Adam moments, and no weight decay either). The trainable leaves follow the
    wrapped optimizer exactly as if the frozen leaves were absent; their
    gradients are zeroed before the wrapped update, so a `clip_by_global_norm`
    inside `masked` only counts trainable leaves. The shared `step` counter
    advances on every update.

    The state is the wrapped optimizer's state (slots exist for frozen leaves
    too, holding their initial values). To exclude biases from `adamw` decay,
    mask them out of a second, decay-free optimizer, or build the mask with
    `jax.tree_util.tree_map_with_path`.
    """
    name = f"masked({name_of(optimizer)})"

    @named(f"{name}.init")
    def init(params):
        require_like_params(params, mask, what="mask", check_shapes=False)
        return optimizer.init(params)

    def select(new, old):
        return jax.tree.map(lambda m, n, o: n if m else o, mask, new, old)

    @named(f"{name}.update")
    def update(state, grads):
        require_like_params(state.params, grads)
        require_like_params(state.params, mask, what="mask", check_shapes=False)
        grads = jax.tree.map(lambda m, g: g if m else jnp.zeros_like(g), mask, grads)
        new_state, _ = optimizer.update(state, grads)
        treedef = jax.tree.structure(state.params)
        fields = {
            f: select(getattr(new_state, f), getattr(state, f))
            for f in new_state._fields
            if f not in ("step", "lr", "lr_scale")
            and jax.tree.structure(getattr(state, f)) == treedef
        }
        new_state = new_state._replace(**fields)
        return new_state, new_state.params

    return make(name, init, update)
