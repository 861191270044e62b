"""The `Optimizer` pair and the helpers every optimizer shares.

An optimizer is two pure functions (stax/optax style, but the state also holds
the parameters):

    init(params) -> state
    update(state, grads) -> (new_state, new_params)   # new_params is new_state.params

Every state is a small NamedTuple whose first five fields are the same for all
optimizers, followed by the optimizer's slots (pytrees shaped like `params`):

    step:     int32 scalar    number of updates applied so far
    lr:       float32 scalar  learning rate the most recent update used, scale
                              included (before any update: the rate for step 0)
    lr_scale: float32 scalar  factor on the learning rate, 1.0 at init: an update
                              uses `lr = schedule(step) · lr_scale`
    hyper:    dict            the hyperparameters as scalar arrays (a float learning
                              rate among them), see `fnn.optim.hyperparams`
    params:   pytree          the current parameters
    ...slots                  e.g. `m`, `v` for Adam, each a pytree like `params`
                              (None for an option that is off, e.g. `v_max`)

`set_lr_scale(state, s)` sets the scale (reduce-on-plateau, a user's rule): the
update rule then sees the scaled rate, so every optimizer, linear in its rate or
not, is scaled where the rate is used. With the scale 1.0 the rule sees exactly the
unscaled rate (a product with 1.0 is exact). `set_hyperparams(state, ...)` changes
the hyperparameters; both keep every array's dtype and shape, so a jitted step that
takes the state is not compiled again.

Wrappers keep the wrapped optimizer's fields (`clip_by_global_norm`, `clip_by_value`
and `masked` its state as is, `ema` adds one field), so `current_lr`, `set_lr_scale`,
`set_hyperparams` and checkpoints see the same layout; `partition` holds one state per
group.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import as_inexact
from fnn._checks import NON_NEGATIVE, BadType, BadValue, checked, hyper, named, shape_str
from fnn.optim.hyperparams import hyper_state
from fnn.optim.trees import as_params, decay_flags, map_leaves, require_like_params

__all__ = [
    "Optimizer", "name_of", "make", "an_optimizer", "learning_rate_fn", "current_lr",
    "set_lr_scale", "build", "switched_on", "decay_hyper",
]


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


# ---------------------------------------------------------------------------
# learning rates


def learning_rate_fn(learning_rate: Any) -> Callable | float:
    """A float learning rate, checked (finite, >= 0), or a schedule `step -> lr` wrapped
    to check its output: a real scalar, returned as an inexact array.

    A float goes into the state (`hyper["learning_rate"]`, see `fnn.optim.hyperparams`),
    where it keeps the default float dtype (float64 under `jax_enable_x64`, so float64
    parameters are updated with the exact rate). A schedule is evaluated at trace time
    on the step count before the update; the state records each rate used as float32
    (`current_lr`).
    """
    if not callable(learning_rate):
        number_like = isinstance(learning_rate, (int, float)) or (
            getattr(learning_rate, "shape", None) == ())
        if isinstance(learning_rate, bool) or not number_like:
            raise BadType(f"learning_rate must be a number or a schedule step -> lr, "
                          f"got {learning_rate!r}.")
        return hyper("learning_rate", learning_rate, **NON_NEGATIVE)

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


@named("current_lr")
def current_lr(state: Any) -> jax.Array:
    """The learning rate the most recent update used (float32 scalar), scale included.

    Before any update it is the learning rate for step 0. Works on the state of
    every fnn optimizer, wrapped or not (wrappers keep the wrapped state); for a
    `partition` it is the first group's rate.
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
    of every fnn optimizer, wrapped or not (a `partition`'s scales every group), and
    under `jit` (`scale` may be traced).
    """
    if not hasattr(state, "lr_scale"):
        raise BadType(f"expected the state of a fnn.optim optimizer (a NamedTuple with an "
                      f"`lr_scale` field), got {type(state).__name__}.")
    if jnp.shape(scale) != ():
        raise BadValue(f"scale must be a scalar, got shape {shape_str(jnp.shape(scale))}.")
    return state._replace(lr_scale=jnp.asarray(scale, jnp.float32))


# ---------------------------------------------------------------------------
# the one builder behind every optimizer


def build(name: str, learning_rate: Any, state_cls: type, slots: dict, rule: Callable, *,
          hyper: dict | None = None, derived: tuple = (), per_step: Callable | None = None,
          carry: dict | None = None, coupled_decay: bool = False,
          decay_mask: Any = None) -> Optimizer:
    """Assemble an `Optimizer` named `name` (in messages) from a per-leaf update rule.

    - `state_cls`: NamedTuple with fields `(step, lr, lr_scale, hyper, params, *carry,
      *slot fields)`; a slot field not in `slots` holds None (an option that is off, e.g.
      Adam's `v_max` without `amsgrad`).
    - `slots`: field → `init(p)`, the slot leaf for one parameter leaf; the rule takes and
      returns the slots in this order.
    - `rule(h, p, g, *slots) -> (new_p, *new_slots)` for one leaf. `h` maps each
      hyperparameter, each per-step term and `"lr"` (the learning rate,
      `schedule(step) · lr_scale`) to a scalar of the leaf's dtype.
    - `hyper`: the checked numeric hyperparameters (the learning rate joins them when it
      is a number) and `derived`: their derived terms (`fnn.optim.hyperparams`), held in
      the state's `hyper` field.
    - `per_step(t, h, **carry) -> dict`: terms that depend only on the step count `t`
      (1 for the first update) and the hyperparameters (e.g. Adam's bias corrections),
      computed once per update instead of once per leaf; an entry named like a `carry`
      field is that field's new value.
    - `carry`: field → initial value of a scalar the state carries from one update to
      the next (NAdam's product of momentum coefficients).
    - `coupled_decay`: `g ← g + wd·p` before the rule (where `h` has `"weight_decay"`).
    - `decay_mask`: a pytree of bools like params, or a function `params -> such a tree`:
      where it is False, `h` has no `"weight_decay"` (the rule then skips the decay).
    """
    lr_source = learning_rate_fn(learning_rate)
    schedule = named(name)(lr_source) if callable(lr_source) else None
    values = {**({} if schedule else {"learning_rate": lr_source}), **(hyper or {})}
    carry = carry or {}
    slot_fields = state_cls._fields[5 + len(carry):]
    active = tuple(slots)

    @named(f"{name}.init")
    def init(params):
        params = as_params(params)
        if decay_mask is not None:
            decay_flags(decay_mask, params)   # a mask that does not fit fails here already
        step = jnp.zeros((), jnp.int32)
        h = hyper_state(values, derived)
        lr = h["learning_rate"] if schedule is None else schedule(step)
        leaves = dict(zip(active, map_leaves(lambda p: tuple(f(p) for f in slots.values()),
                                             len(active), params), strict=True))
        return state_cls(step, lr.astype(jnp.float32), jnp.ones((), jnp.float32), h, params,
                         **{k: jnp.asarray(v, jnp.result_type(float)) for k, v in carry.items()},
                         **{f: leaves.get(f) for f in slot_fields})

    @named(f"{name}.update")
    def update(state, grads):
        if not (isinstance(state, state_cls) and isinstance(state.hyper, dict) and all(
                (getattr(state, f) is None) == (f not in active) for f in slot_fields)):
            raise BadType(
                f"expected the state from {name}.init ({state_cls.__name__}), got "
                f"{type(state).__name__}; each optimizer keeps its own state, so call "
                f"{name}'s init on the params first.")
        require_like_params(state.params, grads)
        lr = state.hyper["learning_rate"] if schedule is None else schedule(state.step)
        # a float64 rate (x64) stays float64 when scaled
        lr = lr * state.lr_scale.astype(jnp.promote_types(lr.dtype, jnp.float32))
        t = state.step + 1
        terms = {} if per_step is None else per_step(
            t, state.hyper, **{k: getattr(state, k) for k in carry})
        step_h = {**state.hyper, **terms, "lr": lr}
        flags = () if decay_mask is None else (decay_flags(decay_mask, state.params),)

        def leaf(p, g, *rest):
            decayed, slots_in = (rest[0], rest[1:]) if flags else (True, rest)
            h = {k: v.astype(p.dtype) for k, v in step_h.items()
                 if decayed or k != "weight_decay"}
            if coupled_decay and "weight_decay" in h:
                g = g + h["weight_decay"] * p
            new_p, *new_slots = rule(h, p, g, *slots_in)
            return (new_p.astype(p.dtype),
                    *(n.astype(o.dtype) for n, o in zip(new_slots, slots_in, strict=True)))

        params, *new = map_leaves(leaf, 1 + len(active), state.params, grads, *flags,
                                  *(getattr(state, f) for f in active))
        new_state = state._replace(
            step=t, lr=lr.astype(jnp.float32), params=params, **dict(zip(active, new)),
            **{k: terms[k].astype(getattr(state, k).dtype) for k in carry})
        return new_state, new_state.params

    return make(name, init, update)


def switched_on(value: Any) -> bool:
    """Whether a hyperparameter whose 0.0 turns its term off (`weight_decay`, `momentum`)
    is on: nonzero, or traced (its value unknown while building)."""
    return isinstance(value, jax.core.Tracer) or value != 0


def decay_hyper(weight_decay: Any) -> dict:
    """`{"weight_decay": wd}` when the decay is on, else `{}` (built without the term)."""
    return {"weight_decay": weight_decay} if switched_on(weight_decay) else {}
