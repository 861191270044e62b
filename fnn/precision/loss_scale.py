"""Dynamic loss scaling, with the schedule of PyTorch's `torch.amp.GradScaler`.

float16 keeps ~3.3 significant digits between 6e-8 and 65504: small gradients
underflow to zero. Scaling the loss by `S` scales every gradient by `S` (the chain
rule is linear), lifting them into range; the optimizer then sees `grads / S`.
`S` is chosen on the fly:

    finite = all gradients of S·loss, divided by S, are finite
    if not finite:  S ← S · backoff_factor,  good ← 0        (the step is skipped)
    else:           good ← good + 1
                    if good = growth_interval:  S ← S · growth_factor (if finite),  good ← 0

The state lives in the optimizer state (`scaled(optimizer, loss_scale)` adds a
`loss_scale` field), so it is checkpointed with the run and a resumed run continues
with the same scale.
"""
from __future__ import annotations

import collections
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import POSITIVE, BadType, checked, named, number, positive_int
from fnn.optim.base import Optimizer, an_optimizer, make, name_of

__all__ = ["LossScaleState", "LossScale", "loss_scale", "scaled_state_class", "scaled"]


class LossScaleState(NamedTuple):
    """The loss scale's state (a pytree of scalars)."""

    scale: jax.Array        # float32 scalar: S, the factor on the loss
    good_steps: jax.Array   # int32 scalar: finite steps since S last changed (GradScaler's
                            # growth tracker)
    skipped: jax.Array      # int32 scalar: steps skipped so far (non-finite gradients)


class LossScale(NamedTuple):
    """The hyperparameters of dynamic loss scaling (`loss_scale(...)` builds it checked)."""

    init_scale: float
    growth_factor: float
    backoff_factor: float
    growth_interval: int

    def init(self) -> LossScaleState:
        """The state before the first step: `S = init_scale`."""
        return LossScaleState(jnp.asarray(self.init_scale, jnp.float32),
                              jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    def update(self, state: LossScaleState, finite) -> LossScaleState:
        """The state after a step whose unscaled gradients were `finite` (a bool scalar)."""
        good = state.good_steps + 1
        grow = good == self.growth_interval
        grown = state.scale * jnp.float32(self.growth_factor)
        scale = jnp.where(grow & jnp.isfinite(grown), grown, state.scale)
        scale = jnp.where(finite, scale, state.scale * jnp.float32(self.backoff_factor))
        good = jnp.where(finite & ~grow, good, 0).astype(jnp.int32)
        return LossScaleState(scale, good, state.skipped + (~finite).astype(jnp.int32))


def _greater_than_one(name: str, value) -> float:
    return number(name, value, low=1.0, low_open=True)


def _in_unit(name: str, value) -> float:
    return number(name, value, low=0.0, high=1.0, low_open=True, high_open=True)


@checked("fnn.precision.loss_scale", init_scale=POSITIVE, growth_factor=_greater_than_one,
         backoff_factor=_in_unit, growth_interval=positive_int)
def loss_scale(init_scale: float = 2.0**16, growth_factor: float = 2.0,
               backoff_factor: float = 0.5, growth_interval: int = 2000) -> LossScale:
    """Dynamic loss scaling with GradScaler's schedule (stated in `fnn/precision/loss_scale.py`).

    **Arguments** (PyTorch's `torch.amp.GradScaler` defaults and meanings):
    - `init_scale`: the first `S`, > 0 (default `2**16`).
    - `growth_factor`: > 1; `S` is multiplied by it after `growth_interval`
      consecutive finite steps (default 2).
    - `backoff_factor`: in (0, 1); `S` is multiplied by it after a step with
      non-finite gradients, which is skipped (default 0.5).
    - `growth_interval`: a positive int (default 2000).

    `make_train_step(..., precision=fnn.precision.Policy(..., loss_scale=loss_scale()))`
    uses it; `"mixed_float16"` has `loss_scale()`.
    """
    return LossScale(float(init_scale), growth_factor, backoff_factor, growth_interval)


@functools.cache
def scaled_state_class(inner: type) -> type:
    """The state class of `scaled` around an optimizer whose state class is `inner`: the
    same fields, then `loss_scale` (a `LossScaleState`)."""
    cls = collections.namedtuple(f"{inner.__name__}WithLossScale",
                                 (*inner._fields, "loss_scale"))
    cls.inner = inner
    return cls


@functools.cache
def _scaled(optimizer: Optimizer, scale: LossScale) -> Optimizer:
    name = f"scaled({name_of(optimizer)})"

    def init(params):
        state = optimizer.init(params)
        return scaled_state_class(type(state))(*state, scale.init())

    @named(f"{name}.update")
    def update(state, grads):
        inner = getattr(type(state), "inner", None)
        if inner is None or type(state) is not scaled_state_class(inner):
            raise BadType(f"expected the state from {name}.init (a state with a `loss_scale` "
                          f"field), got {type(state).__name__}; build the train state with "
                          "init_train_state(..., precision=the same policy).")
        old, ls = inner(*state[:-1]), state.loss_scale
        inv = 1.0 / ls.scale   # a power of two under the defaults: exact, as GradScaler's
        grads = jax.tree.map(lambda g: (g.astype(jnp.float32) * inv).astype(g.dtype), grads)
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(g)) for g in jax.tree.leaves(grads)]
                                   or [jnp.ones((), bool)]))
        new, _ = optimizer.update(old, grads)
        kept = jax.tree.map(lambda a, b: jnp.where(finite, a, b), new, old)
        new_state = scaled_state_class(type(kept))(*kept, scale.update(ls, finite))
        return new_state, new_state.params

    return make(name, init, update)


@named("fnn.precision.scaled")
def scaled(optimizer: Optimizer, scale: LossScale) -> Optimizer:
    """`optimizer` with dynamic loss scaling: its `update(state, grads)` takes the
    gradients of `S·loss` (`S = state.loss_scale.scale`), divides them by `S`, and
    applies the wrapped update only when they are all finite: a skipped step leaves
    the params, the step count and every slot bit-identical (GradScaler's
    `scaler.step(optimizer)` then `scaler.update()`). Built once per optimizer and
    loss scale, so compiled programs keyed on it are reused."""
    an_optimizer("optimizer", optimizer)
    if not isinstance(scale, LossScale):
        raise BadType(f"scale must be fnn.precision.loss_scale(...), got {scale!r}.")
    return _scaled(optimizer, scale)
