"""Per-example gradients with `vmap(grad)`: one gradient per example, in one pass.

    g = fnn.per_example_grads(loss_fn, params, x, y)   # leaves (N, *leaf.shape)
    norms = fnn.per_example.per_example_grad_norms(loss_fn, params, x, y)   # (N,)

Uses: gradient-norm outliers (mislabelled or hard examples), gradient noise
and its scale, per-example clipping (DP-SGD), influence estimates.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnn._checks import BadType, BadValue, named, shape_str
from fnn.gradcheck import leaf_paths

__all__ = ["per_example_grads", "per_example_grad_norms"]


def _batch_size(batch, call: str) -> int:
    """N, the leading axis every array of `batch` shares (`call` shows a right call)."""
    if not batch:
        raise BadValue(f"expected at least one batched array after params, e.g. {call}.")
    sizes = [jnp.shape(b)[0] if jnp.ndim(b) else None for b in batch]
    if None in sizes or len(set(sizes)) != 1:
        shapes = ", ".join(shape_str(jnp.shape(b)) for b in batch)
        raise BadValue(f"every batch array needs the same leading (batch) axis; got shapes "
                       f"{shapes}.")
    return int(sizes[0])


@named("per_example_grads")
def per_example_grads(loss_fn: Callable, params, *batch):
    """Gradients of `loss_fn` for each example separately: `vmap(grad)`.

    `loss_fn(params, *example_batch) -> scalar` is called on a batch of ONE
    example (every array in `batch` is sliced to `(1, ...)`), so an ordinary
    batch-mean loss works unchanged:

        def loss_fn(params, x, y):
            logits, _ = model.apply(params, state, x)
            return fnn.losses.softmax_cross_entropy(logits, y)

    **Returns:** a pytree like `params` whose leaves have a leading axis `N`:
    leaf `[i]` is `∂ loss_fn(params, x[i:i+1], y[i:i+1]) / ∂ params`. For a
    batch-mean loss, the mean over `N` equals the batch gradient.

    A model whose output for one example depends on the others (BatchNorm in
    training mode) has no per-example gradient in this sense: each example is
    normalised with its own (single-example) statistics.
    """
    if not callable(loss_fn):
        raise BadType(f"loss_fn must be a function loss_fn(params, *batch) -> scalar, got "
                      f"{loss_fn!r}.")
    bad = [p for p, leaf in leaf_paths(params)
           if not jnp.issubdtype(jnp.result_type(leaf), jnp.inexact)]
    if bad:
        raise BadType(f"params must be a pytree of floating arrays (the leaves differentiated); "
                      f"non-floating leaves: {bad}.")
    for i, b in enumerate(batch):
        if b is None or isinstance(b, (str, bytes)):
            raise BadType(f"batch argument {i} must be an array with a leading batch axis, "
                          f"got {b!r}.")
    batch = tuple(jnp.asarray(b) for b in batch)  # nested lists too: vmap maps arrays only
    _batch_size(batch, "per_example_grads(loss_fn, params, x, y)")

    def one(p, *example):
        example = tuple(e[None] for e in example)
        _require_scalar_loss(jax.eval_shape(loss_fn, p, *example))
        return jax.grad(loss_fn)(p, *example)

    return jax.vmap(one, in_axes=(None,) + (0,) * len(batch))(params, *batch)


def _require_scalar_loss(value) -> None:
    """`value`, the abstract result of the loss for one example, is a floating scalar."""
    if not isinstance(value, jax.ShapeDtypeStruct):
        raise BadType(f"loss_fn must return a scalar array (the loss of the batch), got a "
                      f"{type(value).__name__}.")
    if value.shape != ():
        raise BadValue(f"loss_fn must return a scalar (the loss of the batch), got shape "
                       f"{shape_str(value.shape)} for one example.")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise BadType(f"loss_fn must return a floating-point scalar, got dtype {value.dtype}.")


@named("per_example_grad_norms")
def per_example_grad_norms(loss_fn: Callable, params, *batch):
    """The global L2 norm of each example's gradient, `(N,)`:
    `‖g_i‖ = sqrt(Σ_leaves Σ g_i²)` with `g_i` from `per_example_grads`."""
    grads = per_example_grads(loss_fn, params, *batch)
    n = _batch_size(tuple(jnp.asarray(b) for b in batch),
                    "per_example_grad_norms(loss_fn, params, x, y)")
    leaves = jax.tree.leaves(grads)
    squares = jnp.zeros((n,), jnp.result_type(*leaves) if leaves else jnp.float32)
    for g in leaves:  # params without leaves: every norm is 0
        squares = squares + jnp.sum(jnp.square(g), axis=tuple(range(1, g.ndim)))
    return jnp.sqrt(squares)
