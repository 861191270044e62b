"""Reduce-on-plateau: lower the learning rate when the monitored metric stalls.

    rules=[fnn.train.reduce_on_plateau(factor=0.5, patience=2)]   # or fit(..., reduce_lr=...)

`reduce_on_plateau(...)` is a pure transform of its own state (jittable), as
Optax's schedules are; `ReduceOnPlateau.as_rule()` is the rule `fit` runs, which
feeds it `history[monitor]` after every epoch and sets the optimizer state's
learning-rate scale (`fnn.optim.set_lr_scale`): the next updates use
`lr = schedule(step) · scale`, where the rate is used, for every optimizer.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import BadValue, named
from fnn.optim.base import set_lr_scale
from fnn.train.rules import EpochInfo, Rule, monitored, resolve_mode

__all__ = [
    "PlateauState", "ReduceOnPlateau", "reduce_on_plateau",
]


class PlateauState(NamedTuple):
    """State of `reduce_on_plateau`.

    - `best`: float32 scalar, best monitored value so far (+inf / -inf at start).
    - `wait`: int32 scalar, epochs since the last improvement (or reduction).
    - `scale`: float32 scalar, the factor multiplying the learning rate.
    """

    best: jax.Array
    wait: jax.Array
    scale: jax.Array


class ReduceOnPlateau(NamedTuple):
    """A plateau transform: `init() -> PlateauState`, `update(state, metric) -> state`.

    `monitor` names the history entry the rule (`as_rule()`) feeds to `update`
    each epoch.
    """

    init: Callable
    update: Callable
    monitor: str

    def as_rule(self) -> Rule:
        """The rule: after every epoch, `state = update(state, history[monitor][-1])`, then
        the optimizer state's learning-rate scale := `state.scale` (recorded in the
        history as `"lr_scale"`)."""
        def update(state: PlateauState, ts, info: EpochInfo):
            state = self.update(state, monitored(info.logs, self.monitor))
            # a copy: the train state is donated to the next step, the rule's state is not
            opt_state = set_lr_scale(ts.opt_state, jnp.array(state.scale, copy=True))
            logs = dict(info.logs, lr_scale=float(state.scale))
            return state, ts._replace(opt_state=opt_state), info._replace(logs=logs)

        return Rule(lambda ts: self.init(), update, name="reduce_lr", monitor=self.monitor)


@named("reduce_on_plateau")
def reduce_on_plateau(factor: float = 0.1, patience: int = 10, min_delta: float = 0.0, *,
                      min_scale: float = 0.0, monitor: str = "val_loss",
                      mode: str = "auto") -> ReduceOnPlateau:
    """Multiply the learning rate by `factor` after `patience` epochs without improvement.

    A pure transform (jittable): `state = rule.update(state, metric)` once per
    epoch; `state.scale` is the learning-rate multiplier, starting at 1.0:

        improved = metric < best - min_delta        (mode "min"; "max" mirrors it)
        best     = metric if improved else best
        wait     = 0 if improved else wait + 1
        if wait >= patience: scale = max(scale * factor, min_scale); wait = 0

    **How the scale reaches the learning rate.** The rule (`fit(...,
    reduce_lr=rule)` or `rules=[rule]`) sets the optimizer state's `lr_scale` to
    `state.scale` (`fnn.optim.set_lr_scale`), and every fnn optimizer updates with
    `lr = schedule(step) · lr_scale`, whatever schedule produced the rate; the
    optimizer's slots are untouched. (Keras's `ReduceLROnPlateau` with
    `cooldown=0` behaves the same way.)
    """
    factor = float(factor)
    if not 0.0 < factor < 1.0:
        raise BadValue(f"factor must be in (0, 1), got {factor}.")
    if isinstance(patience, bool) or int(patience) != patience or patience < 0:
        raise BadValue(f"patience must be an int >= 0, got {patience!r}.")
    if min_delta < 0 or min_scale < 0:
        raise BadValue(f"min_delta and min_scale must be >= 0, got {min_delta} and "
                       f"{min_scale}.")
    sign = 1.0 if resolve_mode(monitor, mode) == "min" else -1.0
    patience = int(patience)

    def init() -> PlateauState:
        return PlateauState(jnp.asarray(jnp.inf, jnp.float32), jnp.zeros((), jnp.int32),
                            jnp.ones((), jnp.float32))

    def update(state: PlateauState, metric) -> PlateauState:
        v = sign * jnp.asarray(metric, jnp.float32)
        improved = v < state.best - min_delta
        best = jnp.where(improved, v, state.best)
        wait = jnp.where(improved, 0, state.wait + 1).astype(jnp.int32)
        reduce = wait >= patience
        scale = jnp.where(reduce, jnp.maximum(state.scale * factor, min_scale), state.scale)
        wait = jnp.where(reduce, 0, wait).astype(jnp.int32)
        return PlateauState(best, wait, scale.astype(jnp.float32))

    return ReduceOnPlateau(init, update, monitor)
