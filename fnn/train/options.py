"""`fit`'s arguments: the options object, the shorthands that stand for rules, and their
checks (each message names `fit`, which raises them).

`fit(model, optimizer, loss, train_data, *, epochs, batch_size, key, val_data,
metrics, regularizer, rules, progress, options)` takes everything else as a rule
(`fnn.train.rules`) or as a field of `FitOptions`; the keyword arguments of fnn 0.1
stay as shorthands:

| keyword | stands for |
|---|---|
| `early_stopping=EarlyStopping(...)` | the rule `EarlyStopping(...).as_rule()` |
| `reduce_lr=reduce_on_plateau(...)` | the rule `reduce_on_plateau(...).as_rule()` |
| `checkpoint_dir=d, keep_checkpoints=k` | the rule `checkpoint(d, keep=k)` |
| `on_epoch_end=fn` | the rule `callback(fn)` |
| `accumulate`, `check_finite`, `input_shape`, `eval_batch_size`, | the `FitOptions` |
| `mesh`, `steps_per_call`, `fused_form`, `augment` | field of that name |

The rules run in this order: `rules` as given, then early stopping, the plateau,
the checkpoint, the callback (so that the checkpoint saves the states the rules
before it left, and the callback runs once the epoch is saved).
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax

from fnn import fused
from fnn._checks import BadType, BadValue, positive_int
from fnn.augment import takes_labels
from fnn.metrics import streaming
from fnn.train.checkpointing import checkpoint
from fnn.train.feed import check_stream_options
from fnn.train.plateau import ReduceOnPlateau
from fnn.train.rules import Rule, as_rule, callback, unique_names
from fnn.train.stopping import EarlyStopping

__all__ = [
    "METRICS", "FitOptions", "RULE_SHORTHANDS", "options_from", "rules_from", "monitors_recorded",
    "metric_names", "streaming_of", "recorded_names", "metric_config", "data_pair",
    "saved_before",
]

METRICS = ("loss", "accuracy")


class FitOptions(NamedTuple):
    """How `fit` runs its steps. Each field is also a keyword argument of `fit`.

    - `accumulate`: gradient accumulation over this many micro-batches per step
      (a divisor of the batch size; `make_train_step`).
    - `check_finite`: check the data for NaN/Inf before training (naming the
      first bad example) and every step's inputs, loss and gradients (naming
      the first non-finite gradient leaf). Off by default: it adds a reduction
      per gradient leaf to every step. Without it, a non-finite loss still stops
      training.
    - `input_shape`: the shape `model.init` gets (default: `x.shape[1:]`).
    - `eval_batch_size`: batch size of the validation pass.
    - `mesh`: a `jax.sharding.Mesh` from `fnn.distributed.make_mesh()`: train
      data-parallel on its devices (each batch split along `"data"`, params and
      optimizer state replicated, gradients all-reduced by XLA). The results equal
      those without a mesh up to float32 rounding, and checkpoints are
      interchangeable. `batch_size` is the global batch and must be a multiple of
      the number of devices on `"data"`. Validation runs replicated on every device.
    - `steps_per_call`: run this many training steps per compiled call
      (`fnn.fused`), which saves a Python dispatch per step; an epoch's last
      `steps % steps_per_call` steps run one by one. The results equal single
      steps up to float rounding (data-parallel too with `mesh`).
    - `fused_form`: `"auto"` (`fnn.fused.choose_form`: single steps when the step
      contains a convolution on the CPU backend, `lax.scan` otherwise), `"scan"`,
      `"unroll"` or `"single"`; recorded in the checkpoint config as `"fused_form"`.
    - `augment`: a data augmentation applied on the device to each training batch
      inside the compiled step (`fnn.augment`: `fn(key, x) -> x` or
      `fn(key, x, y) -> (x, y)`, e.g. `chain(random_crop, random_flip)`), its key
      drawn from the run's key stream (`make_train_step(augment=)`), so a resume
      stays exact. Validation data are never augmented.
    - Streamed `train_data` (an iterable of batches, `fnn.train.feed`): `prefetch`,
      the batches moved to the device ahead of the step on a background thread;
      `ragged`, what a batch smaller than `batch_size` does: `"drop"`, `"pad"` (padded
      and masked out of the loss and accuracy) or `"error"`; `steps_per_epoch`, the
      batches per epoch (None: until the epoch's iterator ends; needed for a one-shot
      iterator and `epochs > 1`); `input_key` / `target_key`, the entries of a dict
      batch the model and the loss get (`target_key=None`: the loss gets the dict
      without `input_key`).
    """

    accumulate: int = 1
    check_finite: bool = False
    input_shape: Any = None
    eval_batch_size: int = 256
    mesh: Any = None
    steps_per_call: int = 1
    fused_form: str = "auto"
    augment: Any = None
    prefetch: int = 2
    ragged: str = "drop"
    steps_per_epoch: int | None = None
    input_key: str = "x"
    target_key: str | None = "y"


RULE_SHORTHANDS = ("reduce_lr", "keep_checkpoints", "on_epoch_end")


def options_from(options, settings: dict) -> FitOptions:
    """`options` (default `FitOptions()`) with the keyword shorthands, checked."""
    if options is None:
        options = FitOptions()
    if not isinstance(options, FitOptions):
        raise BadType(f"options must be None or a fnn.train.FitOptions, got "
                      f"{type(options).__name__}.")
    options = options._replace(**{k: v for k, v in settings.items() if k in FitOptions._fields})
    options = options._replace(accumulate=positive_int("accumulate", options.accumulate),
                               steps_per_call=positive_int("steps_per_call",
                                                           options.steps_per_call))
    if options.augment is not None:
        takes_labels(options.augment)   # a callable of (key, x) or (key, x, y)
    if options.fused_form not in fused.FORMS:
        raise BadValue(f"unknown fused_form {options.fused_form!r}; expected one of "
                       f"{list(fused.FORMS)}.")
    check_stream_options(options)
    return options


def rules_from(rules, early_stopping, checkpoint_dir, settings: dict) -> tuple[Rule, ...]:
    """`rules` and the rules the keyword shorthands stand for, in the order they run."""
    reduce_lr, on_epoch_end = settings.get("reduce_lr"), settings.get("on_epoch_end")
    keep = settings.get("keep_checkpoints", 3)
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise BadType(f"on_epoch_end must be None or a callable on_epoch_end(epoch, logs), "
                      f"got {on_epoch_end!r}.")
    if early_stopping is not None and not isinstance(early_stopping, EarlyStopping):
        raise BadType(f"early_stopping must be a fnn.train.EarlyStopping, got "
                      f"{type(early_stopping).__name__}.")
    if reduce_lr is not None and not isinstance(reduce_lr, ReduceOnPlateau):
        raise BadType(f"reduce_lr must be a fnn.train.reduce_on_plateau(...) rule, got "
                      f"{type(reduce_lr).__name__}.")
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise BadType(f"checkpoint_dir must be None or a folder path (a str or os.PathLike), "
                      f"got {checkpoint_dir!r}.")
    if keep is not None:      # None keeps them all (CheckpointManager's keep)
        keep = positive_int("keep_checkpoints", keep)
    if isinstance(rules, str) or hasattr(rules, "_fields"):   # one rule, not a list
        raise BadType(f"rules must be a list of rules, got {type(rules).__name__}.")
    listed = [*rules, early_stopping, reduce_lr,
              None if checkpoint_dir is None else checkpoint(checkpoint_dir, keep),
              None if on_epoch_end is None else callback(on_epoch_end)]
    out = tuple(as_rule(r) for r in listed if r is not None)
    unique_names(out)
    return out


def monitors_recorded(rules, metrics: tuple, val_data) -> None:
    """Every rule's `monitor` is a metric this run records (`metrics` from `metric_names`),
    and the streaming metrics, which run on the validation set, have `val_data`."""
    extra = streaming_of(metrics)
    if extra and val_data is None:
        raise BadValue(f"metric {extra[0].name!r} is computed on the validation set after "
                       "every epoch, but no val_data was given; pass val_data=(x_val, y_val).")
    names = [m for m in METRICS if m in metrics] + recorded_names(extra)
    for r in rules:
        mon = r.monitor
        if mon is None:
            continue
        if mon.startswith("val_") and val_data is None:
            raise BadValue(f"{r.name} monitors {mon!r} but no val_data was given; pass "
                           f"val_data=(x_val, y_val) or monitor='{mon[4:]}'.")
        base, extra_names = mon.removeprefix("val_"), recorded_names(extra)
        shown = tuple(m for m in metrics if isinstance(m, str))
        if base not in extra_names and streaming.is_metric_name(base):
            raise BadValue(f"{r.name} monitors {mon!r} but metrics={shown} does not record "
                           f"it; add {base!r} to metrics.")
        if base not in METRICS and base not in extra_names:
            raise BadValue(f"{r.name} monitors unknown metric {mon!r}; expected one of "
                           "'loss', 'accuracy', 'val_loss', 'val_accuracy'"
                           + "".join(f", 'val_{n}'" for n in extra_names) + ".")
        if base in extra_names and not mon.startswith("val_"):
            raise BadValue(f"{r.name} monitors {mon!r}, but that metric is computed on the "
                           f"validation set only; monitor 'val_{mon}'.")
        if base not in names:
            raise BadValue(f"{r.name} monitors {mon!r} but metrics={shown} does not record it.")


def metric_names(metrics) -> tuple:
    """`fit`'s `metrics`: the names `"loss"`, `"accuracy"` as they are, other names
    (`"top5_accuracy"`) and `fnn.metrics.streaming.Metric` objects as `Metric`s."""
    if isinstance(metrics, (str, streaming.Metric)):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise BadType(f"metrics must be a metric name or a sequence of them from "
                      f"{list(METRICS)} (or 'top5_accuracy', or fnn.metrics.streaming.Metric "
                      f"objects), got {metrics!r}.") from None
    for m in metrics:
        if not isinstance(m, (str, streaming.Metric)):
            raise BadType(f"a metric must be a name from {list(METRICS)}, a name such as "
                          f"'top5_accuracy', or a fnn.metrics.streaming.Metric, got {m!r}.")
        if isinstance(m, str) and m not in METRICS and not streaming.is_metric_name(m):
            raise BadValue(f"unknown metric {m!r}; expected some of {list(METRICS)}, a name "
                           "such as 'top5_accuracy', or fnn.metrics.streaming.Metric objects.")
    out = tuple(m if m in METRICS else streaming.from_name(m) if isinstance(m, str) else m
                for m in metrics)
    extra = streaming_of(out)
    taken = [m for m in out if isinstance(m, str)] + [m.name for m in extra]
    twice = sorted({n for n in taken if taken.count(n) > 1})
    if twice:
        raise BadValue(f"metrics name {twice[0]!r} twice; give each metric its own name "
                       "(metric._replace(name=...)).")
    for m in extra:
        if m.name in METRICS:   # fit's own "loss" and "accuracy" (train and validation)
            raise BadValue(f"the streaming metric named {m.name!r} would shadow fit's own "
                           f"{m.name!r}; pass the name {m.name!r} instead, or rename it "
                           "(metric._replace(name=...)).")
        value = jax.eval_shape(m.result, m.init())
        leaves = jax.tree.leaves(value)
        if not leaves or any(v.shape != () for v in leaves):
            raise BadValue(f"metric {m.name!r} gives a result of shape "
                           f"{[tuple(v.shape) for v in leaves]}, but the history records "
                           "numbers; compute it with fnn.train.evaluate(..., metrics=[...]).")
    return out


def streaming_of(metrics: tuple) -> tuple:
    """The `Metric` objects among `metric_names`'s result."""
    return tuple(m for m in metrics if isinstance(m, streaming.Metric))


def recorded_names(extra: tuple) -> list:
    """The history names (without `val_`) that the streaming metrics `extra` record."""
    out = []
    for m in extra:
        if m.name in METRICS:   # fit's own "loss" and "accuracy" (train and validation)
            raise BadValue(f"the streaming metric named {m.name!r} would shadow fit's own "
                           f"{m.name!r}; pass the name {m.name!r} instead, or rename it "
                           "(metric._replace(name=...)).")
        value = jax.eval_shape(m.result, m.init())
        out += [f"{m.name}_{k}" for k in value] if isinstance(value, dict) else [m.name]
    return out


def metric_config(metrics: tuple) -> list:
    """The names of `metric_names`'s result, for the checkpoint config (a resume keeps them)."""
    return [m for m in METRICS if m in metrics] + recorded_names(streaming_of(metrics))


def data_pair(name: str, data):
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise BadType(f"{name} must be a pair (x, y), got {type(data).__name__}."
                      if name == "train_data" else f"{name} must be a pair (x, y) or None.")
    return tuple(data)


def saved_before(rules, states: dict) -> None:
    """A checkpoint rule saves the states the rules before it left; a rule after it must
    keep no state (its state would be saved before its update)."""
    saver = next((r for r in rules if r.restore is not None), None)
    if saver is None:
        return
    for r in rules[rules.index(saver) + 1:]:
        if states[r.name] is not None:
            raise BadValue(f"rule {r.name!r} keeps a state but comes after the rule "
                           f"{saver.name!r}, which saves the run; list it before.")
