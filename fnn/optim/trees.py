"""Pytrees like the params: checking params, gradients and masks against them, and
mapping a per-leaf function over several of them.

A wrapper that hands an optimizer only some of the leaves (`masked`, `partition`)
replaces the others by None, an empty subtree: every helper here accepts params with
such holes.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, shape_str

__all__ = [
    "as_params", "require_like_params", "map_leaves", "bool_tree", "is_none", "like_params",
    "decay_flags",
]


def _dtype_of(x: Any):
    """The dtype of an array or a Python number, or None for anything else (a string,
    an object). Reads no values, so it is free under `jit`."""
    if isinstance(x, (bool, int, float, complex)):
        return jnp.result_type(x)
    dtype = getattr(x, "dtype", None)
    return np.dtype(dtype) if dtype is not None and hasattr(x, "shape") else None


def _what(x: Any, dtype) -> str:
    """'dtype int32' for an array or number, "a str ('a')" for anything else."""
    return f"dtype {dtype}" if dtype is not None else f"a {type(x).__name__} ({x!r:.40})"


def as_params(params: Any) -> Any:
    """Params as a pytree of floating arrays (Python floats become float32 arrays)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        dtype = _dtype_of(leaf)
        if dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise BadType(
                f"parameters must be floating-point arrays, got {_what(leaf, dtype)} at "
                f"{jax.tree_util.keystr(path) or 'the root'}. Convert with .astype(jnp.float32).")
    # an explicit dtype drops JAX's weak typing, so the state's dtypes are fixed
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.result_type(x)), params)


def require_like_params(params: Any, tree: Any, what: str = "grads",
                        check_shapes: bool = True) -> None:
    """`BadValue` unless `tree` has the pytree structure (and, with `check_shapes`,
    the leaf shapes) of `params`; with `check_shapes`, a leaf that is not a real
    floating-point array (a string, an integer, bool or complex array) is a `BadType`.

    Runs at trace time (dtypes and shapes only). A structure mismatch names the
    leaf paths that `tree` lacks or has in excess (compared by path, not by
    position) and shows both tree structures; a dtype or shape mismatch names
    the first leaf that differs. Floating dtypes may differ from the params'
    (e.g. bfloat16 gradients for float32 params): the update casts back.
    """
    p_leaves, p_def = jax.tree_util.tree_flatten_with_path(params)
    t_leaves, t_def = jax.tree_util.tree_flatten_with_path(tree)
    if p_def != t_def:
        raise BadValue(
            f"{what} must have the same pytree structure as params; "
            f"{_structure_difference(p_leaves, t_leaves, what)}.\n"
            f"  params: {p_def}\n  {what}: {t_def}")
    for (path, p), (_, t) in zip(p_leaves, t_leaves, strict=True) if check_shapes else ():
        leaf = f"{what} leaf {jax.tree_util.keystr(path) or '(root)'}"
        dtype = _dtype_of(t)
        if dtype is None:
            raise BadType(f"{leaf} must be a floating-point array, got {_what(t, None)}.")
        if not jnp.issubdtype(dtype, jnp.floating):
            why = ("real parameters need real gradients (the imaginary part would be dropped)"
                   if jnp.issubdtype(dtype, jnp.complexfloating) else
                   f"{what} must be floating-point arrays")
            raise BadType(f"{leaf} has dtype {dtype} but the parameter has dtype "
                          f"{_dtype_of(p)}; {why}.")
        if jnp.shape(p) != jnp.shape(t):
            raise BadValue(f"{leaf} has shape {shape_str(jnp.shape(t))} but the parameter has "
                           f"shape {shape_str(jnp.shape(p))}.")


def _structure_difference(p_leaves, t_leaves, what: str) -> str:
    """Which leaf paths one tree has and the other lacks (by path, not by position)."""
    def paths(leaves):
        return [jax.tree_util.keystr(k) or "(the root)" for k, _ in leaves]

    p_paths, t_paths = paths(p_leaves), paths(t_leaves)
    p_set, t_set = set(p_paths), set(t_paths)
    missing = [p for p in p_paths if p not in t_set]
    extra = [t for t in t_paths if t not in p_set]
    if missing and extra:
        return f"{what} has {', '.join(extra)} where params has {', '.join(missing)}"
    if missing:
        return f"{what} lacks {', '.join(missing)}, which params has"
    if extra:
        return f"{what} has {', '.join(extra)}, which params lacks"
    return "the leaf paths agree but the container types differ"


def map_leaves(fn: Callable, n_out: int, params: Any, *trees: Any) -> tuple:
    """Apply `fn(p, *others) -> tuple of n_out leaves` leaf by leaf; return n_out trees.

    The other trees must have the structure of `params` (checked beforehand).
    """
    leaves, treedef = jax.tree.flatten(params)
    others = [treedef.flatten_up_to(t) for t in trees]
    outs = [fn(*args) for args in zip(leaves, *others, strict=True)]
    columns = list(zip(*outs, strict=True)) if outs else [()] * n_out
    return tuple(treedef.unflatten(list(col)) for col in columns)


# ---------------------------------------------------------------------------
# masks: pytrees of Python bools like the params


def bool_tree(name: str, tree: Any, meaning: str) -> Any:
    """`tree` with every leaf a Python bool (NumPy and concrete scalar bools converted);
    any other leaf is a `BadType` that says what True means (`meaning`)."""
    def leaf(path, x):
        if isinstance(x, (bool, np.bool_)):
            return bool(x)
        if isinstance(x, (np.ndarray, jax.Array)) and x.shape == () and x.dtype == bool and (
                not isinstance(x, jax.core.Tracer)):
            return bool(x)
        raise BadType(f"{name} leaves must be Python bools ({meaning}), "
                      f"got {x!r} at {jax.tree_util.keystr(path) or 'the root'}.")

    return jax.tree_util.tree_map_with_path(leaf, tree)


def is_none(x: Any) -> bool:
    return x is None


def like_params(params: Any, tree: Any, what: str) -> Any:
    """`tree` (a mask or labels with one leaf per parameter) cut to `params`: `BadValue`
    unless it has the structure of the params; where a wrapper left a leaf out of
    `params` (None, see `masked` and `partition`), the result holds None too."""
    if jax.tree.structure(params, is_leaf=is_none) != jax.tree.structure(tree):
        require_like_params(params, tree, what=what, check_shapes=False)
    return jax.tree.map(lambda p, m: None if p is None else m, params, tree, is_leaf=is_none)


def decay_flags(mask: Any, params: Any) -> Any:
    """The weight-decay mask (a bool tree, or a function of the params) for `params`."""
    tree = mask(params) if callable(mask) else mask
    return like_params(params, bool_tree("mask", tree, "True = decay"), "mask")
