"""Early stopping: stop when the monitored metric has not improved for `patience` epochs.

    rules=[fnn.train.EarlyStopping(patience=3)]     # or fit(..., early_stopping=...)

The rule, after every epoch (mode "min"; "max" mirrors it):

    improved = value < best - min_delta              (a non-finite value never improves)
    if improved: best, best_epoch, wait = value, epoch, 0; keep a copy of the params
    else:        wait = wait + 1; stop if wait >= patience

Its state (a dict: `best` float64, `best_epoch` and `wait` int32, the best
epoch's `params` and `model_state`) is checkpointed with the run, so a resumed
run stops where the uninterrupted one did.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, flag, named, number
from fnn.train.rules import EpochInfo, Rule, monitored, resolve_mode
from fnn.train.state import fresh

__all__ = [
    "EarlyStopping", "early_stopping",
]


class EarlyStopping(NamedTuple):
    """Stop when the monitored metric has not improved for `patience` epochs.

    **Fields:**
    - `patience`: epochs without improvement before stopping (0: stop at the
      first epoch that does not improve).
    - `min_delta`: an improvement must beat the best value by more than this.
    - `monitor`: a history key: `"val_loss"` (default; needs `val_data`),
      `"val_accuracy"`, `"loss"`, `"accuracy"`.
    - `mode`: `"auto"` (max for accuracies, min for losses), `"min"` or `"max"`.
    - `restore_best`: when `fit` returns, the params and model state are those
      of the best epoch (the optimizer slots stay those of the last epoch).

    Keras's `EarlyStopping(restore_best_weights=True)` restores only when it
    stops early; here the best epoch is restored whenever `fit` returns.
    `as_rule()` is the rule (`early_stopping(*fields)`).
    """

    patience: int = 10
    min_delta: float = 0.0
    monitor: str = "val_loss"
    mode: str = "auto"
    restore_best: bool = True

    def as_rule(self) -> Rule:
        """The rule `fit` runs for these settings."""
        return early_stopping(*self)


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


@named("EarlyStopping")
def early_stopping(patience: int = 10, min_delta: float = 0.0, monitor: str = "val_loss",
                   mode: str = "auto", restore_best: bool = True) -> Rule:
    """The early-stopping rule (see `help(fnn.train.stopping)` and `EarlyStopping`)."""
    if not isinstance(monitor, str):
        raise BadType(f"monitor must be a history key such as 'val_loss', got {monitor!r}.")
    if isinstance(patience, bool) or not isinstance(patience, (int, np.integer)) or patience < 0:
        raise BadValue(f"patience must be an int >= 0, got {patience!r}.")
    min_delta = number("min_delta", min_delta, low=0.0)
    restore_best = flag("restore_best", restore_best)
    mode = resolve_mode(monitor, mode)

    def best_so_far(ts, value, epoch: int) -> dict:
        return {"best": np.asarray(value), "best_epoch": np.asarray(epoch, np.int32),
                "wait": np.asarray(0, np.int32), "params": fresh(ts.opt_state.params),
                "model_state": fresh(ts.model_state)}

    def init(ts) -> dict:
        return best_so_far(ts, np.inf if mode == "min" else -np.inf, 0)

    def update(state: dict, ts, info: EpochInfo):
        value = monitored(info.logs, monitor)
        if _improved(value, float(state["best"]), mode, min_delta):
            return best_so_far(ts, value, info.epoch), ts, info
        wait = int(state["wait"]) + 1
        stop = info.stop or wait >= patience
        return dict(state, wait=np.asarray(wait, np.int32)), ts, info._replace(stop=stop)

    def final(state: dict, ts):
        if not restore_best or int(state["best_epoch"]) == 0:
            return ts
        params = jax.tree.map(jnp.asarray, state["params"])
        return ts._replace(opt_state=ts.opt_state._replace(params=params),
                           model_state=jax.tree.map(jnp.asarray, state["model_state"]))

    return Rule(init, update, name="early_stopping", monitor=monitor, final=final)
