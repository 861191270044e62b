"""Rules: everything that acts between steps or between epochs, as one protocol.

A rule is shaped like an optimizer: a NamedTuple of pure functions with its own
state pytree,

    state                 = rule.init(train_state)
    state, train_state, info = rule.update(state, train_state, info)

- `every="step"`: the rule runs inside the compiled step, after the update,
  once per step; `info` is a `StepInfo` (the step's gradients and metrics). Its
  state lives in `TrainState.rules`, so it is jitted, donated and checkpointed
  with the train state. Its functions must be traceable (`jnp`, no Python
  branching on values).
- `every="epoch"` (default): the rule runs on the host after every epoch, in
  the order given; `info` is an `EpochInfo` (the epoch's logs, the history so
  far, ...). Its state is any pytree of arrays and Python scalars with a fixed
  structure; `init` returning `None` means the rule keeps no state.

A rule changes training through what it returns: a new `train_state` (e.g. a
lower learning rate, `fnn.optim.set_lr_scale(train_state.opt_state, s)`), and
`info._replace(stop=True)` to stop training (a per-step rule's stop takes effect
at the end of the epoch, so that epochs stay whole), `info._replace(logs=...)` to
add entries to the epoch's record (the history). `fit(..., rules=[...])`
checkpoints every rule's state with the train state (`checkpoint`), so every
rule, a user's own included, survives a resume bit for bit.

Optional fields: `name` (the rule's key in a checkpoint; names must be unique),
`monitor` (the history key it reads: `fit` checks up front that it is
recorded), `final(state, train_state) -> train_state` (applied when `fit`
returns, e.g. restoring the best params) and `restore(like, config) -> Resumed`
(a saved run to resume from; `checkpoint` has one).

This module holds the protocol and the small rules (`callback`,
`write_history`); `EarlyStopping`, `reduce_on_plateau` and `checkpoint` have
their own modules. Anything with an `as_rule()` method (`EarlyStopping`,
`ReduceOnPlateau`) may stand in a rule list.
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from fnn._atomic import atomic_file
from fnn._checks import BadType, BadValue, named

__all__ = [
    "EVERY", "StepInfo", "EpochInfo", "Resumed", "Rule", "as_rule", "step_rules", "unique_names",
    "resolve_mode", "monitored", "append_record", "callback", "write_history",
]

EVERY = ("epoch", "step")


class StepInfo(NamedTuple):
    """What a per-step rule sees (and may pass on changed)."""

    grads: Any       # pytree like params: the gradient of this step's objective
    metrics: dict    # the step's metrics: "loss", "accuracy", "objective" (device scalars)
    stop: jax.Array  # bool scalar: a rule asked to stop training (at the end of the epoch)


class EpochInfo(NamedTuple):
    """What a per-epoch rule sees (and may pass on changed: `stop`, `logs`)."""

    epoch: int       # epochs completed, this one included (its 1-based number)
    epochs: int      # the run's total
    logs: dict       # this epoch's record so far: metric name -> float
    history: dict    # the records of the epochs before this one: name -> list of floats
    stop: bool       # an earlier rule (or a per-step rule this epoch) asked to stop
    states: dict     # rule name -> state, as this epoch has left them so far
    config: dict     # the run's settings (saved with a checkpoint; a resume must match)
    started: float   # time.perf_counter() when the epoch started
    position: Any = None  # streamed train_data: the data position at the epoch's end


class Resumed(NamedTuple):
    """A saved run (`Rule.restore`): the tree, its history and whether it had stopped."""

    tree: Any        # {"train_state": ..., rule name: state, ...}, or None: nothing saved yet
    history: dict    # name -> list of floats, one entry per saved epoch
    stopped: bool    # a rule had stopped the run
    source: str      # where it was saved (for messages)
    position: Any = None  # streamed train_data: the saved data position (fnn.train.streaming)


class Rule(NamedTuple):
    """One rule (see `help(fnn.train.rules)`)."""

    init: Callable                     # init(train_state) -> state (None: no state)
    update: Callable                   # update(state, train_state, info) -> same triple
    every: str = "epoch"               # "epoch": on the host; "step": inside the step
    name: str = "rule"                 # its key in checkpoints (unique within a run)
    monitor: str | None = None         # the history key it reads, checked by fit
    final: Callable | None = None      # final(state, train_state) -> train_state
    restore: Callable | None = None    # restore(like, config) -> Resumed
    every_steps: int | None = None     # a saver's mid-epoch saves (streamed train_data) ...
    save: Callable | None = None       # ... save(train_state, states, history, config, position)


def as_rule(rule) -> Rule:
    """`rule` as a `Rule`: a `Rule` as is, an `EarlyStopping` or `ReduceOnPlateau` (or
    anything with an `as_rule()` method) converted; `BadType`/`BadValue` otherwise."""
    if hasattr(rule, "as_rule") and not isinstance(rule, Rule):
        rule = rule.as_rule()
    if not isinstance(rule, Rule):
        raise BadType(f"rules must be fnn.train.Rule values (or EarlyStopping, "
                      f"reduce_on_plateau(...)), got {type(rule).__name__}.")
    if rule.every not in EVERY or not callable(rule.init) or not callable(rule.update):
        raise BadValue(f"rule {rule.name!r} needs callable init and update and every in "
                       f"{list(EVERY)}, got every={rule.every!r}.")
    return rule


def step_rules(rules) -> tuple[Rule, ...]:
    """The per-step rules of `rules`, which must all be per-step (`make_train_step`)."""
    rules = tuple(as_rule(r) for r in rules)
    for r in rules:
        if r.every != "step":
            raise BadValue(f"rule {r.name!r} acts every epoch; pass it to fit(rules=...), "
                           "and only per-step rules (every='step') to the step.")
    return rules


def unique_names(rules: tuple[Rule, ...]) -> None:
    """`BadValue` if two rules share a name (their states would share a checkpoint key)."""
    names = [r.name for r in rules]
    for name in names:
        if names.count(name) > 1:
            raise BadValue(f"two rules are named {name!r}; give each its own name "
                           "(rule._replace(name=...)): a checkpoint keys their states by name.")


def resolve_mode(monitor: str, mode: str) -> str:
    """`"min"` or `"max"`: `"auto"` maximises accuracies and minimises anything else."""
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise BadValue(f"mode must be 'auto', 'min' or 'max', got {mode!r}.")
    return mode


def monitored(logs: dict, monitor: str) -> float:
    """The value of `monitor` in an epoch's logs."""
    if monitor not in logs:
        raise BadValue(f"the monitored metric {monitor!r} is not recorded (recorded: "
                       f"{sorted(logs)}); add it to metrics= or monitor another one.")
    return float(logs[monitor])


def append_record(history: dict, logs: dict, epoch: int, source) -> dict:
    """`history` with this epoch's `logs` appended to its lists (a new dict); a resumed
    history (from `source`) must have the same keys, so every list stays one entry per
    epoch."""
    if history and set(logs) != set(history):  # e.g. resumed with another kind of loss
        raise BadValue(
            f"epoch {epoch} records {sorted(logs)}, but the history resumed from {source} "
            f"has {sorted(history)}; resume with the same loss, metrics and val_data as the "
            "run that wrote it, or use a new checkpoint_dir. Nothing was saved for this epoch.")
    return {**{k: list(v) for k, v in history.items()},
            **{k: [*history.get(k, []), float(v)] for k, v in logs.items()}}


# ---------------------------------------------------------------------------
# small rules


@named("callback")
def callback(fn: Callable, *, name: str = "callback") -> Rule:
    """A rule that calls `fn(epoch, logs)` after every epoch: the 1-based epoch number and
    that epoch's record plus `"time"` (seconds since the epoch started). `fn` returning
    `True` stops training. Keeps no state (a resumed run calls it from the next epoch on)."""
    if not callable(fn):
        raise BadType(f"fn must be a callable fn(epoch, logs), got {fn!r}.")

    def update(state, ts, info: EpochInfo):
        stop = fn(info.epoch, dict(info.logs, time=time.perf_counter() - info.started))
        return state, ts, info._replace(stop=info.stop or stop is True)

    return Rule(lambda ts: None, update, name=name)


@named("write_history")
def write_history(path, *, name: str = "write_history") -> Rule:
    """A rule that writes the history (every epoch's record so far, this one included)
    as JSON to `path` after every epoch, atomically (the file holds the previous or the
    new history, never a part). Keeps no state."""
    if not isinstance(path, (str, os.PathLike)):
        raise BadType(f"path must be a file path (a str or os.PathLike), got {path!r}.")
    path = os.fspath(path)

    def update(state, ts, info: EpochInfo):
        text = json.dumps(append_record(info.history, info.logs, info.epoch, path), indent=2)
        with atomic_file(path, "write_history") as f:
            f.write((text + "\n").encode())
        return state, ts, info

    return Rule(lambda ts: None, update, name=name)
