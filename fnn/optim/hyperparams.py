"""Hyperparameters held in the optimizer state, so that changing them reuses the compiled step.

Every optimizer built by `fnn.optim` keeps its numeric hyperparameters in the state's
`hyper` field, a dict name → scalar array in the default float dtype (float32; float64
under `jax_enable_x64`):

    opt = fnn.optim.adam(1e-3)
    step = jax.jit(train_step)                  # takes and returns the optimizer state
    for lr in (1e-4, 3e-4, 1e-3, 3e-3):         # one compilation for the whole sweep
        state = fnn.optim.set_hyperparams(opt.init(params), learning_rate=lr)
        for batch in batches:
            state = step(state, batch)

What is a hyperparameter: the learning rate when it is a number (a schedule `step -> lr`
is code, fixed when built: scale it with `set_lr_scale`), and each constructor's numeric
arguments (`b1`, `b2`, `eps`, `beta`, `decay`, `rho`, `momentum`, `weight_decay`, ...)
except `initial_accumulator` (used by `init` only). A `weight_decay` or `momentum` of 0.0
given to the constructor (`adamw` aside) builds the update without that term, so it is not
in the state; flags (`nesterov`, `amsgrad`, `centered`) and masks are structure, fixed too.

**Derived terms.** Where an update rule uses `1 − b` or `log b` of a hyperparameter `b`,
the state also holds `one_minus_b` and `log_b`, computed on the host in float64 and then
rounded once, exactly as Python constants folded into the step would be: with the
hyperparameters as state, a float32 update is bit-identical to one with the constants
compiled in. `set_hyperparams` recomputes them; `hyperparams` leaves them out.
"""
from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, POSITIVE, UNIT, BadType, BadValue, hyper, named, shape_str

__all__ = [
    "BOUNDS", "hyper_state", "hyperparams", "set_hyperparams", "copy_hyperparams",
]

#: The valid range of every hyperparameter name (the constructors' tables use the same).
BOUNDS = {
    "learning_rate": NON_NEGATIVE, "weight_decay": NON_NEGATIVE, "eps": POSITIVE,
    "b1": UNIT, "b2": UNIT, "beta": UNIT, "decay": UNIT, "rho": UNIT, "momentum": UNIT,
    "momentum_decay": NON_NEGATIVE,
}

_DERIVED = {  # prefix -> (host rule on a float, traced rule on an array)
    "one_minus_": (lambda b: 1.0 - b, lambda b: 1 - b),
    "log_": (lambda b: math.log(b) if b > 0 else -math.inf, jnp.log),
}


def _base_of(key: str) -> tuple[str, str] | None:
    """("one_minus_", "b1") for "one_minus_b1"; None for a hyperparameter itself."""
    for prefix in _DERIVED:
        if key.startswith(prefix) and key[len(prefix):] in BOUNDS:
            return prefix, key[len(prefix):]
    return None


def _derive(prefix: str, value: Any) -> Any:
    host, traced = _DERIVED[prefix]
    return host(value) if isinstance(value, float) else traced(value)


def hyper_state(values: dict, derived: tuple = ()) -> dict:
    """The `hyper` field of a fresh state: `values` (checked numbers, or traced scalars) and
    the `derived` terms (e.g. `"one_minus_b1"`), each a scalar of the default float dtype."""
    dtype = jnp.result_type(float)
    out = {name: jnp.asarray(value, dtype) for name, value in values.items()}
    for key in derived:
        prefix, name = _base_of(key)
        out[key] = jnp.asarray(_derive(prefix, values[name]), dtype)
    return out


def _hyper_of(state: Any) -> dict:
    hyper_field = getattr(state, "hyper", None)
    if not isinstance(hyper_field, dict):
        raise BadType(f"expected the state of a fnn.optim optimizer (a NamedTuple with a "
                      f"`hyper` field), got {type(state).__name__}.")
    return hyper_field


def _groups_of(state: Any) -> dict | None:
    """The per-group states of a `partition` state, else None."""
    groups = getattr(state, "groups", None)
    return groups if hasattr(state, "_fields") and isinstance(groups, dict) else None


@named("hyperparams")
def hyperparams(state: Any) -> dict:
    """The hyperparameters held in `state`: a dict name → scalar array (derived terms left
    out); for a `partition` state, a dict label → that group's dict."""
    groups = _groups_of(state)
    if groups is not None:
        return {label: hyperparams(group) for label, group in groups.items()}
    return {k: v for k, v in _hyper_of(state).items() if _base_of(k) is None}


@named("set_hyperparams")
def set_hyperparams(state: Any, **values: Any) -> Any:
    """`state` with the hyperparameters `values` replaced, e.g.
    `set_hyperparams(state, learning_rate=3e-4, b2=0.99)`.

    The arrays keep their dtype and shape, so a jitted step that takes the state
    reuses its compilation. Each value is checked against the range its constructor
    accepts (a traced value, set under `jit`, passes unchecked, and its derived terms
    are then computed in the state's precision). Works on the state of every fnn
    optimizer, wrapped or not; for a `partition` state, pass one dict per group:
    `set_hyperparams(state, backbone={"learning_rate": 1e-5})`.

    The next updates use the new values; `step` and the slots are unchanged (Adam's
    bias corrections go on counting from the state's step).
    """
    groups = _groups_of(state)
    if groups is not None:
        updated = {}
        for label, value in values.items():
            group, group_values = _group_values(groups, label, value)
            updated[label] = set_hyperparams(group, **group_values)
        return state._replace(groups={**groups, **updated})
    old = _hyper_of(state)
    new = dict(old)
    for name, value in values.items():
        if name not in old or _base_of(name) is not None:
            raise BadValue(
                f"the state has no hyperparameter {name!r}; it has "
                f"{sorted(hyperparams(state))}. A learning rate given as a schedule is not "
                f"one (scale it with set_lr_scale), nor is a weight_decay or momentum built "
                f"as 0.0 (build the optimizer with a value > 0 to change it later).")
        value = hyper(name, value, **BOUNDS[name])
        if jnp.shape(value) != ():
            raise BadValue(f"{name} must be a scalar, got shape {shape_str(jnp.shape(value))}.")
        new[name] = jnp.asarray(value, old[name].dtype)
        for key in old:
            if _base_of(key) is not None and _base_of(key)[1] == name:
                new[key] = jnp.asarray(_derive(_base_of(key)[0], value), old[key].dtype)
    return state._replace(hyper=new)


def _group_values(groups: dict, label: Any, value: Any) -> tuple:
    """The group `label`'s state and its values, checked."""
    if label not in groups:
        raise BadValue(f"the partition has no group {label!r}; its groups are "
                       f"{sorted(map(str, groups))}.")
    if not isinstance(value, dict):
        raise BadType(f"a partition's hyperparameters are set per group, as a dict: "
                      f"{label}={{'learning_rate': ...}}, got {label}={value!r}.")
    return groups[label], value


@named("copy_hyperparams")
def copy_hyperparams(state: Any, source: Any) -> Any:
    """`state` with the hyperparameters of `source`, a state of the same optimizer (e.g. a
    fresh `init`), derived terms included: the next updates are bit-identical to those of
    `source`'s optimizer.

    `fit` resumes a checkpoint this way: the optimizer passed to the call decides the
    hyperparameters, the checkpoint gives the step, the slots, the params and the
    learning-rate scale. Works on every fnn optimizer's state, a `partition`'s included.
    """
    groups, source_groups = _groups_of(state), _groups_of(source)
    if groups is not None and source_groups is not None and set(groups) == set(source_groups):
        return state._replace(groups={label: copy_hyperparams(group, source_groups[label])
                                      for label, group in groups.items()})
    old, new = _hyper_of(state), _hyper_of(source)
    if {k: (v.shape, v.dtype) for k, v in old.items()} != {
            k: (v.shape, v.dtype) for k, v in new.items()}:
        raise BadValue(f"source must be a state of the same optimizer as state; its "
                       f"hyperparameters are {sorted(new)}, the state's {sorted(old)}.")
    return state._replace(hyper=dict(new))
