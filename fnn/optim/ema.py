"""An exponential moving average of the parameters beside any optimizer."""
from __future__ import annotations

import collections
import functools
from typing import Any

import jax
import jax.numpy as jnp

from fnn._checks import UNIT, BadType, checked, named
from fnn.optim.base import Optimizer, an_optimizer, make, name_of

__all__ = [
    "ema_state_class", "ema", "ema_params",
]


@functools.cache
def ema_state_class(inner: type) -> type:
    """The state class of `ema` around an optimizer whose state class is `inner`: the
    same fields, then `ema` (a pytree like `params`)."""
    cls = collections.namedtuple(f"{inner.__name__}WithEMA", (*inner._fields, "ema"))
    cls.inner = inner
    return cls


@checked("ema", optimizer=an_optimizer, decay=UNIT)
def ema(optimizer: Optimizer, decay: float = 0.999) -> Optimizer:
    """Keep an exponential moving average of the parameters beside `optimizer`.

        params ← the wrapped update
        ema    ← decay·ema + (1 − decay)·params        (ema starts as the initial params)

    Read it with `fnn.optim.ema_params(state)`; evaluate and export those rather than
    `state.params` (standard for diffusion and self-supervised models). After `n`
    updates the initial params still weigh `decay^n`: with 0.999 the average needs a
    few thousand updates to forget them.

    **Arguments:**
    - `optimizer`: the `Optimizer` to wrap.
    - `decay`: in [0, 1). Default 0.999. It is fixed when built (the wrapped optimizer's
      hyperparameters stay in the state, `fnn.optim.set_hyperparams`).

    The state is the wrapped optimizer's state with one more field, `ema`, so
    `current_lr`, `set_lr_scale` and `set_hyperparams` work on it unchanged. Put `ema`
    outermost (`ema(masked(adam(...), mask))`): inside `masked` or `partition` it
    would average only its group's leaves.

    PyTorch: `torch.optim.swa_utils.AveragedModel(model,
    multi_avg_fn=get_ema_multi_avg_fn(decay))` with `update_parameters` called once
    before training and after every step; Optax: `optax.ema(decay, debias=False)`
    applied to the params; Keras: `use_ema=True, ema_momentum=decay` (with
    `ema_overwrite_frequency=None`).
    """
    name = f"ema({name_of(optimizer)})"

    @named(f"{name}.init")
    def init(params):
        state = optimizer.init(params)
        return ema_state_class(type(state))(*state, jax.tree.map(jnp.copy, state.params))

    @named(f"{name}.update")
    def update(state, grads):
        inner = getattr(type(state), "inner", None)
        if inner is None or type(state) is not ema_state_class(inner):
            raise BadType(f"expected the state from {name}.init (a state with an `ema` "
                          f"field), got {type(state).__name__}.")
        new, params = optimizer.update(inner(*state[:-1]), grads)
        average = jax.tree.map(lambda e, p: (decay * e + (1 - decay) * p).astype(e.dtype),
                               state.ema, params)
        new_state = ema_state_class(type(new))(*new, average)
        return new_state, new_state.params

    return make(name, init, update)


@named("ema_params")
def ema_params(state: Any) -> Any:
    """The moving average of the parameters held by the state of an `ema` optimizer."""
    if not hasattr(state, "ema"):
        raise BadType(f"expected the state of a fnn.optim.ema optimizer (a NamedTuple with "
                      f"an `ema` field), got {type(state).__name__}.")
    return state.ema
