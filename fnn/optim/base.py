"""The `Optimizer` pair and the helpers every optimizer shares.

An optimizer is two pure functions (stax/optax style, but the state also holds
the parameters):

    init(params) -> state
    update(state, grads) -> (new_state, new_params)   # new_params is new_state.params

Every state is a small NamedTuple whose first four fields are the same for all
optimizers, followed by the optimizer's slots (pytrees shaped like `params`):

    step:     int32 scalar    number of updates applied so far
    lr:       float32 scalar  learning rate the most recent update used, scale
                              included (before any update: the rate for step 0)
    lr_scale: float32 scalar  factor on the learning rate, 1.0 at init: an update
                              uses `lr = schedule(step) · lr_scale`
    params:   pytree          the current parameters
    ...slots                  e.g. `m`, `v` for Adam, each a pytree like `params`

`set_lr_scale(state, s)` sets the scale (reduce-on-plateau, a user's rule): the
update rule then sees the scaled rate, so every optimizer, linear in its rate or
not, is scaled where the rate is used. With the scale 1.0 the rule sees exactly the
unscaled rate (a product with 1.0 is exact).

Wrappers (`clip_by_global_norm`, `clip_by_value`, `masked`) keep the wrapped
optimizer's state as is, so `current_lr`, `set_lr_scale` and checkpoints see the
same layout.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import (
    NON_NEGATIVE,
    BadType,
    BadValue,
    as_inexact,
    checked,
    hyper,
    labelled,
    named,
    shape_str,
)


class Optimizer(NamedTuple):
    """An optimizer: two pure functions over a pytree state.

    **Fields:**
    - `init(params) -> state`: `params` is a pytree (nested dicts) of float arrays;
      an empty pytree (`{}`, `None`, a model without parameters) gives a state
      whose updates only count steps.
    - `update(state, grads) -> (state, params)`: `grads` has the structure and
      leaf shapes of `params`, with floating-point leaves; returns the new state
      and the new parameters (the same object as `new_state.params`).

    Both are pure and work under `jax.jit`, `jax.vmap` (e.g. over an ensemble
    of stacked parameter sets) and `jax.lax.scan`.
    """

    init: Callable
    update: Callable


def name_of(optimizer: Optimizer) -> str:
    """A readable name for messages, e.g. "adam" or "masked(adam)"."""
    return getattr(optimizer.update, "_fnn_name", "optimizer")


def make(name: str, init: Callable, update: Callable) -> Optimizer:
    """Build an `Optimizer`, tagging its `update` with `name` for error messages."""
    update._fnn_name = name
    return Optimizer(init, update)


def an_optimizer(name: str, value: Any) -> Optimizer:
    """`value` if it is an `Optimizer`, else `BadType` (a table rule of `checked`)."""
    if not isinstance(value, Optimizer):
        raise BadType(f"expected a fnn.optim.Optimizer (e.g. fnn.optim.adam(1e-3)), got {value!r}.")
    return value


def check_optimizer(where: str, optimizer: Any) -> Optimizer:
    return labelled(where, an_optimizer, "optimizer", optimizer)


# ---------------------------------------------------------------------------
# learning rates


def learning_rate_fn(learning_rate: Any) -> Callable:
    """Turn a float or a schedule `step -> lr` into a function `step -> float scalar`.

    A float is validated here (finite, >= 0). A schedule is evaluated at trace
    time on the step count before the update; it must return a real scalar.

    The scalar keeps the precision it was given in (a Python float is float64
    under `jax_enable_x64`), so float64 parameters are updated with the exact
    rate; the state records it as float32 (`current_lr`).
    """
    if not callable(learning_rate):
        number_like = isinstance(learning_rate, (int, float)) or (
            getattr(learning_rate, "shape", None) == ())
        if isinstance(learning_rate, bool) or not number_like:
            raise BadType(f"learning_rate must be a number or a schedule step -> lr, "
                          f"got {learning_rate!r}.")
        value = hyper("learning_rate", learning_rate, **NON_NEGATIVE)
        return lambda step: as_inexact(value)

    def lr_at(step):
        lr = learning_rate(step)
        _require_rate(lr, learning_rate)
        return as_inexact(lr)

    return lr_at


def _require_rate(lr: Any, schedule: Callable) -> None:
    """`BadType`/`BadValue` unless the schedule's output `lr` is a real scalar."""
    got = f"from {schedule!r}"
    if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number, np.ndarray, jax.Array)):
        raise BadType(f"the learning_rate schedule must return a number (a float or a scalar "
                      f"array), got {lr!r} of type {type(lr).__name__} {got}.")
    if jnp.shape(lr) != ():
        raise BadValue(f"the learning_rate schedule must return a scalar, got shape "
                       f"{shape_str(jnp.shape(lr))} {got}.")
    dtype = jnp.result_type(lr)
    if not (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating)):
        raise BadType(f"the learning_rate schedule must return a real number, got dtype "
                      f"{dtype} {got}.")


# ---------------------------------------------------------------------------
# pytree helpers


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


@named("current_lr")
def current_lr(state: Any) -> jax.Array:
    """The learning rate the most recent update used (float32 scalar), scale included.

    Before any update it is the learning rate for step 0. Works on the state of
    every fnn optimizer, wrapped or not (wrappers keep the wrapped state).
    """
    if not hasattr(state, "lr"):
        raise BadType(f"expected the state of a fnn.optim optimizer (a NamedTuple with an "
                      f"`lr` field), got {type(state).__name__}.")
    return state.lr


@checked("set_lr_scale", scale=NON_NEGATIVE)
def set_lr_scale(state: Any, scale: Any) -> Any:
    """`state` with its learning-rate scale set to `scale` (a float32 scalar >= 0).

    The next updates use `lr = schedule(step) · scale` (the rule sees the scaled
    rate, and `current_lr` reports it after the next update). Works on the state
    of every fnn optimizer, wrapped or not, and under `jit` (`scale` may be traced).
    """
    if not hasattr(state, "lr_scale"):
        raise BadType(f"expected the state of a fnn.optim optimizer (a NamedTuple with an "
                      f"`lr_scale` field), got {type(state).__name__}.")
    if jnp.shape(scale) != ():
        raise BadValue(f"scale must be a scalar, got shape {shape_str(jnp.shape(scale))}.")
    return state._replace(lr_scale=jnp.asarray(scale, jnp.float32))


# ---------------------------------------------------------------------------
# the one builder behind every optimizer


def map_leaves(fn: Callable, n_out: int, params: Any, *trees: Any) -> tuple:
    """Apply `fn(p, *others) -> tuple of n_out leaves` leaf by leaf; return n_out trees.

    The other trees must have the structure of `params` (checked beforehand).
    """
    leaves, treedef = jax.tree.flatten(params)
    others = [treedef.flatten_up_to(t) for t in trees]
    outs = [fn(*args) for args in zip(leaves, *others, strict=True)]
    columns = list(zip(*outs, strict=True)) if outs else [()] * n_out
    return tuple(treedef.unflatten(list(col)) for col in columns)


def build(name: str, learning_rate: Any, state_cls: type, init_slots: Callable,
          rule: Callable, per_step: Callable | None = None) -> Optimizer:
    """Assemble an `Optimizer` named `name` (in messages) from a per-leaf update rule.

    - `state_cls`: NamedTuple with fields `(step, lr, lr_scale, params, *slots)`.
    - `init_slots(p) -> tuple of slot leaves` for one parameter leaf.
    - `rule(t, lr, p, g, *slots) -> (new_p, *new_slots)` for one leaf, where `t`
      is the step count after this update (1 for the first) and `lr` the
      learning rate, `schedule(step) · lr_scale`, cast to the leaf's dtype.
    - `per_step(t)`: optional; its result replaces `t` as the rule's first
      argument, so that terms that depend only on the step (Adam's bias
      corrections) are computed once per update instead of once per leaf.
    """
    lr_at = named(name)(learning_rate_fn(learning_rate))
    n_slots = len(state_cls._fields) - 4

    @named(f"{name}.init")
    def init(params):
        params = as_params(params)
        step = jnp.zeros((), jnp.int32)
        slots = map_leaves(lambda p: tuple(init_slots(p)), n_slots, params)
        return state_cls(step, lr_at(step).astype(jnp.float32), jnp.ones((), jnp.float32),
                         params, *slots)

    @named(f"{name}.update")
    def update(state, grads):
        if not isinstance(state, state_cls):
            raise BadType(
                f"expected the state from {name}.init ({state_cls.__name__}), got "
                f"{type(state).__name__}; each optimizer keeps its own state, so call "
                f"{name}'s init on the params first.")
        require_like_params(state.params, grads)
        lr = lr_at(state.step)  # a float64 rate (x64) stays float64 when scaled:
        lr = lr * state.lr_scale.astype(jnp.promote_types(lr.dtype, jnp.float32))
        t = state.step + 1
        step_terms = t if per_step is None else per_step(t)

        def leaf(p, g, *slots):
            new_p, *new_slots = rule(step_terms, lr.astype(p.dtype), p, g, *slots)
            return (new_p.astype(p.dtype),
                    *(n.astype(o.dtype) for n, o in zip(new_slots, slots, strict=True)))

        params, *slots = map_leaves(leaf, 1 + n_slots, state.params, grads, *state[4:])
        new_state = state_cls(t, lr.astype(jnp.float32), state.lr_scale, params, *slots)
        return new_state, new_state.params

    return make(name, init, update)
