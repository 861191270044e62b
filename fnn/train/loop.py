"""`fit`: the training loop (API.md §4).

One epoch, from the train state `ts` (everything random comes from `ts.key`,
see `fnn.train.state`):

    ts, shuffle_key = next_epoch(ts)
    xb, yb          = epoch_batches(shuffle_key, (x, y), batch_size)   # on the device
    for each batch: ts, metrics = step(ts, xb[i], yb[i])               # per-step rules inside
    logs            = mean step metrics, validation metrics, "lr"
    for each epoch rule, in order: state, ts, info = rule.update(state, ts, info)
    history        += logs

Everything else is a rule (`fnn.train.rules`): early stopping, the plateau,
checkpoints, callbacks. `fit`'s own keyword arguments `early_stopping`,
`checkpoint_dir`, `reduce_lr`, `keep_checkpoints` and `on_epoch_end` are
shorthands for the matching rules; `accumulate`, `check_finite`,
`input_shape`, `eval_batch_size`, `mesh`, `steps_per_call` and `fused_form` are
shorthands for the fields of a `FitOptions` (and `augment`, a data augmentation run
inside the compiled step: `fnn.augment`).
"""
from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import distributed, fused
from fnn import precision as precision_lib
from fnn._array_checks import example_shape
from fnn._checks import BadType, BadValue, flag, labelled, named
from fnn._util import memoized
from fnn.core import Layer
from fnn.data import epoch_batches
from fnn.optim import ema_params
from fnn.optim.base import an_optimizer
from fnn.train.evaluation import (
    accuracy_applies,
    class_ids_in_range,
    loss_model,
    model_output,
)
from fnn.train.feed import Stream
from fnn.train.guards import all_finite, first_nonfinite, nan_message, record_step
from fnn.train.options import (
    METRICS,
    RULE_SHORTHANDS,
    FitOptions,
    metric_config,
    metric_names,
    monitors_recorded,
    options_from,
    rules_from,
    saved_before,
    streaming_of,
)
from fnn.train.progress import clock, format_logs, progress_bar
from fnn.train.rules import EpochInfo, Resumed, append_record
from fnn.train.state import fresh, init_program, init_train_state, next_epoch, raw_key
from fnn.train.step import compile_step, require_callables, require_scalar, train_step
from fnn.train.stopping import EarlyStopping
from fnn.train.streaming import evaluate_val, train_epochs, training_input, validation_input


def validation_params(opt_state):
    """The params the validation pass uses: the moving average when the optimizer is
    `fnn.optim.ema(...)` (its state has an `ema` field; Keras's `use_ema`), else the params."""
    return ema_params(opt_state) if hasattr(opt_state, "ema") else opt_state.params


__all__ = [
    "fit", "compiled_step", "auto_form", "validation_params",
]


@named("fit")
def fit(model: Layer, optimizer, loss: Callable, train_data, *, epochs: int,
        batch_size: int | None, key, val_data=None, metrics=METRICS,
        regularizer: Callable | None = None, early_stopping: EarlyStopping | None = None,
        checkpoint_dir=None, progress: bool | str = True, rules=(),
        options: FitOptions | None = None, precision=None, **settings):
    """Train `model` with `optimizer` on `train_data = (x, y)`; returns `(train_state, history)`.

    **Arguments:**
    - `model`: a `fnn.Layer`; new params come from `model.init(init_key, input_shape)`
      with `input_shape = x.shape[1:]` unless given.
    - `optimizer`: a `fnn.optim.Optimizer`; `loss(pred, y) -> scalar` (`fnn.losses`).
    - `train_data`: `(x, y)` arrays, or any iterable of batches (a callable
      `epoch -> iterable`, a list, a DataLoader, a grain dataset, a generator with
      `steps_per_epoch`), tuples `(x, y)` or dicts; see `help(fnn.train.feed)` and
      `help(fnn.train.streaming)` (prefetch, ragged batches, exact resume).
    - `epochs`: the total number of epochs of the run (a resumed run continues
      up to it; a run already past it is returned as saved).
    - `batch_size`: `None` = the whole set per step (batch gradient descent),
      `1` = SGD, `n` = mini-batches of `n`. Each epoch is reshuffled on the
      device and the ragged last `N % n` examples are dropped (a different tail
      each epoch), so the jitted step is traced once for the whole run.
    - `key`: PRNG key of the run (ignored when resuming from a checkpoint).
    - `val_data`: `(x_val, y_val)`, evaluated after every epoch with `train=False`
      (with the moving average of the params when `optimizer` is `fnn.optim.ema(...)`;
      the average is checkpointed with the optimizer state).
    - `metrics`: which of `"loss"`, `"accuracy"` go into the history (accuracy
      only where the loss's rule applies, `fnn.metrics`: the argmax of scores
      `(N, C)` against int ids or one-hot targets, or for fnn's binary losses the
      side of the threshold per label). Int class ids in `y` (and `val_data`'s)
      are checked against the model's outputs before training, for losses that
      declare class ids. Also streaming metrics, computed on `val_data` after every
      epoch and recorded as `"val_<name>"`: names such as `"top5_accuracy"`, or
      `fnn.metrics.streaming.Metric` objects (e.g. `precision_recall_f1(10)` records
      `"val_macro_precision"`, `"val_macro_recall"`, `"val_macro_f1"`).
    - `regularizer(params) -> scalar`: added to the loss that is differentiated;
      the reported `"loss"` is the data loss alone.
    - `rules`: rules (`fnn.train.rules`): per-step ones run inside the step,
      per-epoch ones after every epoch, in the order given, before those below.
    - `early_stopping`: an `EarlyStopping` (shorthand for the rule).
    - `checkpoint_dir`: shorthand for the rule `checkpoint(checkpoint_dir,
      keep_checkpoints)`: save the train state, every rule's state, the history
      and the config there after every epoch (the last `keep_checkpoints`, default
      3, kept; None keeps all) and, if it already holds checkpoints, resume from
      the latest: the result is bit-identical to an uninterrupted run. A resume
      must keep the model, the optimizer's kind (its state layout), `batch_size`,
      `accumulate`, the rules, `metrics`, `val_data` (given or not) and kind of
      loss, so that every history list stays one entry per epoch (`ValueError`
      otherwise). The optimizer's hyperparameters may change (e.g. a lower learning
      rate to fine-tune); the run then continues with the new ones.
    - `progress`: show a tqdm bar per epoch on stderr (step, the epoch's time
      left, running loss, examples/s, the whole run's time left estimated from
      this epoch's pace; at the end of the epoch its metrics); it stays off when stderr
      is not a terminal or tqdm is not installed. `"transient"` erases each
      bar when its epoch ends (for callers that print their own epoch line).
    - `options`: a `FitOptions` (accumulation, NaN checks, the input shape, the
      validation batch, a mesh, fused steps); each of its fields may also be
      given as a keyword argument (`fit(..., accumulate=4)`).
    - `augment`: `fn(key, x) -> x` or `fn(key, x, y) -> (x, y)` (`fnn.augment`, e.g.
      `fnn.augment.chain(random_crop, random_flip)`), applied on the device to each
      training batch inside the compiled step, its key drawn from the run's key
      stream (so a resume stays exact); validation data are not augmented.
    - `precision`: a `fnn.precision.Policy` or its name (`"mixed_bfloat16"`, ...):
      the step and the validation run under it (`make_train_step(..., precision=)`);
      the optimizer keeps the params in its `param_dtype` (float32 master params
      for the mixed policies), which is what checkpoints hold, so a run may resume
      under another policy with the same `param_dtype` and loss scaling (or none).
      With loss scaling the history has `"skipped_steps"` per epoch.
    - `reduce_lr`: a `reduce_on_plateau(...)` (shorthand for its rule), fed
      `history[rule.monitor]`. `on_epoch_end(epoch, logs)`: shorthand for
      `callback(on_epoch_end)`, called after each epoch (after the checkpoint) with
      the 1-based epoch number and that epoch's metrics plus `"time"` in seconds.

    **History** maps `"loss"`, `"accuracy"`, `"val_loss"`, `"val_accuracy"` (as
    requested and applicable) to per-epoch lists of Python floats; `"loss"` and
    `"accuracy"` are averages over the epoch's training steps (`train=True`).
    `"lr"` records the learning rate of each epoch's last update (scale included)
    and `"lr_scale"` appears with a `reduce_lr` rule.

    **Errors.** If the training loss (or, after an epoch, any parameter) becomes
    NaN or infinite, `fit` raises `FloatingPointError` naming the epoch and
    step; nothing is saved for that epoch, so the last checkpoint stays the last
    good one.
    """
    for name in settings:
        if name not in FitOptions._fields and name not in RULE_SHORTHANDS:
            raise TypeError(f"fit() got an unexpected keyword argument {name!r}")
    if not isinstance(model, Layer):
        raise BadType(f"model must be a fnn.Layer, got {type(model).__name__}.")
    an_optimizer("optimizer", optimizer)
    require_callables(loss, regularizer)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise BadValue(f"epochs must be a positive int, got {epochs!r}.")
    opts = options_from(options, settings)
    x, y, n, bs, feed = training_input(train_data, epochs, batch_size, opts)  # feed: streamed
    if bs % opts.accumulate:
        raise BadValue(f"accumulate must be a positive divisor of the batch size {bs}, got "
                       f"{opts.accumulate}.")
    if opts.mesh is not None:
        labelled("fit (mesh)", distributed.mesh_of, opts.mesh)
        labelled("fit (batch_size)", distributed.global_batch, opts.mesh, bs)
    metrics = metric_names(metrics)
    check_finite = flag("check_finite", opts.check_finite)
    if progress not in (True, False, "transient"):
        raise BadValue(f"progress must be True, False or 'transient', got {progress!r}.")
    val_data, val_bs = validation_input(val_data, epochs, opts)   # (x, y) or a Stream
    rules = rules_from(rules, early_stopping, checkpoint_dir, settings)
    monitors_recorded(rules, metrics, val_data)
    if check_finite and feed is None and not isinstance(val_data, Stream):
        for name, a in (("train_data x", x), ("train_data y", y),
                        *(() if val_data is None else (("val_data x", val_data[0]),
                                                       ("val_data y", val_data[1])))):
            first_nonfinite(name, a)

    shape = tuple(x.shape[1:]) if opts.input_shape is None else example_shape(
        opts.input_shape, "(d1, ..., dk)")
    if key is None:
        raise BadValue("a key is required, e.g. fit(..., key=jax.random.key(0)).")
    step_rules = tuple(r for r in rules if r.every == "step")
    epoch_rules = tuple(r for r in rules if r.every == "epoch")
    if precision is not None:
        precision = precision_lib.as_policy(precision)
    ts = init_train_state(model, optimizer, raw_key(key), shape, rules=step_rules,
                          precision=precision)
    if regularizer is not None:  # before tracing the step, so the error names fit
        require_scalar("regularizer", jax.eval_shape(regularizer, ts.opt_state.params))
    pred = model_output(model, ts.opt_state.params, ts.model_state, x)
    if hasattr(y, "ndim"):   # streamed: the first batch's labels
        class_ids_in_range("train_data's y", loss, pred, y)
    if val_data is not None and not isinstance(val_data, Stream):
        class_ids_in_range("val_data's y", loss, pred, val_data[1])
    for r in rules:
        if r.monitor is not None and r.monitor.endswith("accuracy") and hasattr(y, "shape"):
            accuracy_applies(f"{r.name} monitors {r.monitor!r}", loss, pred, y)
    # metrics and val_data decide the history's keys: a resume must keep them (aligned lists)
    config = {"batch_size": bs, "steps_per_epoch": opts.steps_per_epoch if feed else n // bs,
              "num_examples": n,
              "accumulate": opts.accumulate, "input_shape": list(shape),
              "metrics": metric_config(metrics),
              "val_data": None if val_data is None else "(x, y)",
              **({} if feed is None else {"train_data": "stream"})}
    states = {r.name: r.init(ts) for r in epoch_rules}
    saved_before(epoch_rules, states)
    ts, states, saved = _resume(epoch_rules, ts, states, config)
    if feed is not None:
        feed.resume(saved.position)
    elif any(r.every_steps for r in epoch_rules):
        raise BadValue("checkpoint(every_steps=...) saves mid-epoch positions of streamed "
                       "train_data; with (x, y) arrays checkpoints are saved per epoch.")

    run = _Run(model, loss, optimizer, regularizer, opts, check_finite, step_rules, epochs,
               None if feed else n // bs, bs, saved.source, feed, precision)
    ts, history, states = run.train(ts, x, y, val_data, val_bs, metrics, epoch_rules, states,
                                    saved.history, saved.stopped, config, progress)
    for i, r in enumerate(step_rules):
        ts = ts if r.final is None else r.final(ts.rules[i], ts)
    for r in epoch_rules:
        ts = ts if r.final is None else r.final(states[r.name], ts)
    return ts, history


def _resume(rules, ts, states: dict, config: dict):
    """`(train_state, rule states, Resumed)`: those of the run the first rule with a
    `restore` (a checkpoint rule) saved, or the fresh ones when it saved none."""
    saver = next((r for r in rules if r.restore is not None), None)
    if saver is None:
        return ts, states, Resumed(None, {}, False, None)
    like = {"train_state": ts, **{k: s for k, s in states.items() if s is not None}}
    saved = saver.restore(like, config)
    if saved.tree is None:
        return ts, states, saved
    states = {k: s if s is None else saved.tree[k] for k, s in states.items()}
    return fresh(saved.tree["train_state"]), states, saved


def compiled_step(model, loss, optimizer, regularizer, accumulate, check_finite, rules,
                  mesh=None, form="single", augment=None, precision=None):
    """The compiled step `fit` runs: single (`form="single"`) or `K` steps per call
    (`"scan"`/`"unroll"`, `fnn.fused`), on one device or data-parallel on `mesh`."""
    step = train_step(model, loss, optimizer, regularizer, accumulate=accumulate,
                      check_finite=check_finite, rules=rules, augment=augment,
                      precision=precision)
    if form == "single":
        return compile_step(step, mesh)
    if mesh is not None:
        return distributed.data_parallel(fused.fuse(step, form), mesh, stacked=True)
    return fused.make_fused_step(step, form)


def auto_form(model, loss, optimizer, regularizer, accumulate, check_finite, rules, x, y,
              augment=None, precision=None):
    """`fused.choose_form` for this step on batches shaped like `x`, `y`
    (`ShapeDtypeStruct`s): traced once per model, settings and batch shape."""
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    ts = jax.eval_shape(init_program(model, optimizer, tuple(x.shape[1:]), rules, precision),
                        key)
    step = train_step(model, loss, optimizer, regularizer, accumulate=accumulate,
                      check_finite=check_finite, rules=rules, augment=augment,
                      precision=precision)
    return fused.choose_form(step, ts, x, y)


class _Run(NamedTuple):
    """The settings of one `fit` call that its epochs share."""

    model: Layer
    loss: Callable
    optimizer: Any
    regularizer: Callable | None
    opts: FitOptions
    check_finite: bool
    step_rules: tuple
    epochs: int
    steps: int
    bs: int
    source: Any    # where a checkpoint rule saves the run (for messages), or None
    feed: Any = None   # streamed train_data (fnn.train.streaming.Feed), or None
    precision: Any = None   # a fnn.precision.Policy, or None

    def train(self, ts, x, y, val_data, val_bs, metrics, epoch_rules, states, history,
              stopped, config, progress):
        """The epochs: `(train_state, history, rule states)`."""
        opts, mesh = self.opts, self.opts.mesh
        step_key = (self.model, self.loss if self.feed is None else self.feed.step_loss(self.loss),
                    self.optimizer, self.regularizer, opts.accumulate, self.check_finite,
                    self.step_rules)
        step_fn = memoized(compiled_step, *step_key, mesh, "single", opts.augment,
                           self.precision)
        if self.feed is not None:
            return train_epochs(self.feed, self, step_fn, ts, val_data, val_bs, metrics,
                                epoch_rules, states, history, stopped, config, progress,
                                progress_bar)
        x_dev, y_dev = jnp.asarray(x), jnp.asarray(y)
        fused_fn, form = None, "single"
        if opts.steps_per_call > 1:
            form = opts.fused_form
            if form == "auto":
                batch = [jax.ShapeDtypeStruct((self.bs, *a.shape[1:]), a.dtype)
                         for a in (x_dev, y_dev)]
                form = memoized(auto_form, *step_key, *batch, opts.augment, self.precision)
            if form != "single":
                fused_fn = memoized(compiled_step, *step_key, mesh, form, opts.augment,
                                    self.precision)
        config = dict(config, fused_form=form)
        if mesh is not None:  # state replicated (or split on a "model" axis), data replicated
            ts = distributed.shard_model(mesh, ts)
            x_dev, y_dev = distributed.replicate(mesh, (x_dev, y_dev))
        show = progress if progress and sys.stderr.isatty() else False

        epoch = int(ts.epoch)
        while epoch < self.epochs and not stopped:
            started = time.perf_counter()
            ts, shuffle_key = next_epoch(ts)
            bar = progress_bar(show, self.steps, f"epoch {epoch + 1}/{self.epochs}")
            try:
                xb, yb = epoch_batches(shuffle_key, (x_dev, y_dev), self.bs)
                if mesh is not None:  # every batch split along "data"
                    xb, yb = distributed.shard_stacked(mesh, (xb, yb))
                ts, sums, stop = self.epoch(step_fn, fused_fn, ts, xb, yb, bar, epoch, started)
                del xb, yb
                if not bool(all_finite((ts.opt_state.params, ts.model_state))):
                    raise FloatingPointError(nan_message(
                        "a parameter or model-state value became non-finite", epoch,
                        self.epochs, self.steps - 1, self.steps, self.source, self.check_finite))
                logs = {k: sums[k] / self.steps for k in METRICS if k in sums and k in metrics}
                if "skipped" in sums:  # loss scaling: the steps skipped this epoch
                    logs["skipped_steps"] = sums["skipped"]
                if val_data is not None:
                    val = evaluate_val(loss_model(self.model, self.precision),
                                       validation_params(ts.opt_state),
                                       ts.model_state, self.loss, val_data, val_bs, epoch, opts,
                                       streaming_of(metrics))
                    logs.update({f"val_{k}": v for k, v in val.items()
                                 if k in metrics or k not in METRICS})
                epoch += 1
                ts = ts._replace(epoch=jnp.asarray(epoch, jnp.int32))
                if bar is not None:  # the bar's last state is the epoch's record
                    bar.set_postfix_str(format_logs(logs), refresh=False)
            except FloatingPointError as e:
                if not np.issubdtype(x.dtype, np.integer):
                    raise
                raise FloatingPointError(
                    f"{e} Also: x holds integer ids, and inside the jitted step an id outside an "
                    f"Embedding's vocabulary gives NaN instead of an error (x ranges from "
                    f"{int(np.min(x))} to {int(np.max(x))})."
                ) from None
            finally:
                if bar is not None:
                    bar.close()

            lr = getattr(ts.opt_state, "lr", None)
            if lr is not None:  # the learning rate of the epoch's last update
                logs["lr"] = float(lr)
            info = EpochInfo(epoch, self.epochs, logs, history, stop, dict(states), config,
                             started)
            for r in epoch_rules:
                states[r.name], ts, info = r.update(states[r.name], ts,
                                                    info._replace(states=dict(states)))
            history = append_record(history, info.logs, epoch, self.source)
            stopped = info.stop
        return ts, history, states

    def epoch(self, step_fn, fused_fn, ts, xb, yb, bar, epoch: int, started: float):
        """Run one epoch of steps: `(train_state, summed step metrics, a rule asked to stop)`.

        With `fused_fn`, `steps_per_call` steps per call, the remainder one by one
        with `step_fn`. Each call's metrics are read while the next call runs (one
        call of lag), so the host never stalls the device; the loss of every step is
        checked.
        """
        sums: dict[str, float] = {}
        stop = False
        k, steps = self.opts.steps_per_call, self.steps

        def consume_one(m, i):
            nonlocal stop
            stop = record_step(m, sums, epoch, self.epochs, i, steps, self.source,
                               self.check_finite) or stop
            if bar is not None:
                done = i + 1
                bar.update(1)
                elapsed = max(time.perf_counter() - started, 1e-9)
                left = (steps - done + (self.epochs - epoch - 1) * steps) * elapsed / done
                bar.set_postfix_str(f"loss {sums['loss'] / done:.4f}, "
                                    f"{done * self.bs / elapsed:,.0f} ex/s, "
                                    f"run {clock(left)} left", refresh=False)

        def consume(call):
            m, first, count = call
            m = jax.device_get(m)
            if count == 1:
                consume_one(m, first)
                return
            for j in range(count):
                consume_one(jax.tree.map(lambda a, j=j: a[j], m), first + j)

        pending, i = None, 0
        while i < steps:
            if fused_fn is not None and i + k <= steps:
                ts, m = fused_fn(ts, xb[i:i + k], yb[i:i + k])
                count = k
            else:
                ts, m = step_fn(ts, xb[i], yb[i])
                count = 1
            if pending is not None:  # read the previous call while this one runs
                consume(pending)
            pending = (m, i, count)
            i += count
        consume(pending)
        return ts, sums, stop
