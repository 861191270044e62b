"""`fit` over streamed `train_data`: the epochs of an iterable of batches, prefetched,
and the data position that checkpoints save so that a resumed run continues exactly.

What `train_data` may be and how a batch becomes the step's `(x, y)`: `fnn.train.feed`.

**The data position**, saved with every checkpoint of a streamed run (its metadata's
`"data"`):

    {"epoch": e, "step": i, "total": t, "drawn": d, "sums": {...}, "state": s}

`e` is the epoch in progress (0-based), `i` the steps done in it, `t` the steps of the
whole run, `d` the batches drawn from the epoch's iterator (dropped ragged ones
included), `sums` the epoch's metric sums so far, `s` the iterator's `get_state()`
(grain's iterators have one; `fnn.sources.loader`'s too), JSON-encoded, or None.
A run resumed mid-epoch (`checkpoint(..., every_steps=N)`) continues from there:

- an iterator with `get_state()/set_state()`: the epoch's iterator is opened and set to
  the saved state: the run continues bit for bit as the uninterrupted one;
- a per-epoch source without state: the epoch restarts, its first `d` batches are
  drawn and skipped (a `RuntimeWarning` says so): exact when the source yields the same
  batches for the same epoch (seeded by the epoch);
- a one-shot iterator without state: the new iterator is read from where it stands (a
  `RuntimeWarning` says the position is lost).
"""
from __future__ import annotations

import base64
import json
import sys
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from fnn import distributed
from fnn._checks import BadValue, labelled, positive_int
from fnn.data import batch_size_for, num_examples
from fnn.optim import ema_params
from fnn.train.evaluation import (
    eval_batch_size,
    evaluate_batches,
    evaluate_stream,
    loss_model,
)
from fnn.train.feed import (
    Prefetch,
    Stream,
    batch_format,
    dict_target_loss,
    is_arrays,
    masked_loss,
    place,
    stream_of,
)
from fnn.train.guards import all_finite, nan_message, record_step
from fnn.train.options import METRICS, data_pair, streaming_of
from fnn.train.rules import EpochInfo, append_record
from fnn.train.state import next_epoch

__all__ = [
    "Feed", "training_input", "validation_input", "open_feed", "evaluate_val", "train_epochs",
    "encode_state", "decode_state",
]


def encode_state(state) -> Any:
    """An iterator's `get_state()` as JSON (bytes as base64); `BadValue` if it is not."""
    if isinstance(state, bytes):
        return {"base64": base64.b64encode(state).decode("ascii")}
    try:
        json.dumps(state)
    except (TypeError, ValueError):
        raise BadValue(f"the state of train_data's iterator (get_state()) must be JSON or "
                       f"bytes to be checkpointed, got {type(state).__name__}.") from None
    return {"json": state}


def decode_state(saved) -> Any:
    """The inverse of `encode_state`."""
    return base64.b64decode(saved["base64"]) if "base64" in saved else saved["json"]


class Feed:
    """The streamed `train_data` of one `fit` call: opened once, read epoch by epoch."""

    def __init__(self, name: str, data, epochs: int, batch_size, opts):
        self.opts, self.mesh = opts, opts.mesh
        self.stream = stream_of(name, data, epochs, opts.steps_per_epoch)
        it = self.stream.open(0)
        first = next(it, None)
        if first is None:
            raise BadValue(f"{name} ({self.stream.what}) yielded no batch.")
        self.pending = (it, first, it.get_state() if hasattr(it, "get_state") else None)
        self.format = batch_format(first, batch_size, opts.input_key, opts.target_key, name)
        self.x, self.y, _ = self.format.split(first, f"{name}'s first batch")
        self.shared = it if self.stream.one_shot else None
        self.resume_at: dict | None = None
        self.total = 0     # steps of the whole run so far

    @property
    def batch_size(self) -> int:
        return self.format.batch_size

    def step_loss(self, loss):
        """The loss the step differentiates: on a dict for `target_key=None`
        (`feed.dict_target_loss`), masked for `ragged="pad"` (`feed.masked_loss`)."""
        loss = dict_target_loss(loss) if self.opts.target_key is None else loss
        return masked_loss(loss) if self.opts.ragged == "pad" else loss

    def resume(self, position: dict | None) -> None:
        """Continue from `position` (a checkpoint's `"data"`; None: from the start)."""
        self.resume_at = position
        if position is not None:
            self.total = position["total"]
            if not self.stream.one_shot:  # the peeked epoch-0 iterator is not where it resumes
                self.pending = None

    def _iterator(self, epoch: int, pos: dict | None):
        """`(iterator, batches drawn ahead with their states, batches drawn before)` of the
        epoch, at the saved position `pos` (None: its start)."""
        ahead = []
        if self.pending is not None:
            it, first, state = self.pending
            self.pending, ahead = None, [(first, state)]
        else:
            it = self.shared if self.stream.one_shot else self.stream.open(epoch)
        if pos is None:
            return it, ahead, 0
        if pos["state"] is not None and callable(getattr(it, "set_state", None)):
            it.set_state(decode_state(pos["state"]))
            return it, [], pos["drawn"]
        if self.stream.one_shot:
            if pos["total"]:
                warnings.warn(f"fit: train_data ({self.stream.what}) has no get_state(), so "
                              f"its position (epoch {epoch + 1}, step {pos['step']}) was not "
                              "saved; the run reads on from where the new iterator stands.",
                              RuntimeWarning, stacklevel=4)
            return it, ahead, pos["drawn"]
        warnings.warn(f"fit: train_data ({self.stream.what}) has no get_state(): epoch "
                      f"{epoch + 1} restarts and its first {pos['drawn']} batches are "
                      "skipped (exact only if the source yields the same batches for "
                      "the same epoch).", RuntimeWarning, stacklevel=4)
        for _ in range(pos["drawn"]):
            if next(it, None) is None:
                raise BadValue(f"train_data ended while skipping the {pos['drawn']} "
                               f"batches of epoch {epoch + 1} already trained on.")
        return it, [], pos["drawn"]

    def epoch(self, run, step_fn, ts, bar, epoch: int, started: float, save=None,
              every: int | None = None):
        """One epoch: `(train_state, metric sums, a rule asked to stop, steps, position at
        its end)`. `save(ts, position)` writes a mid-epoch checkpoint after every `every`
        steps of the run (None: none)."""
        saved = self.resume_at if self.resume_at and self.resume_at["epoch"] == epoch else None
        self.resume_at = None
        mid = saved is not None and bool(saved["step"] or saved["drawn"])
        if not mid:   # a new epoch: its key split (a mid-epoch checkpoint holds it done)
            ts, _ = next_epoch(ts)
        pos = saved if mid or (saved is not None and self.stream.one_shot) else None
        limit = self.opts.steps_per_epoch
        i, total = (saved["step"], self.total) if mid else (0, self.total)
        sums = dict(saved["sums"]) if mid else {}
        it, ahead, drawn = self._iterator(epoch, pos)
        what = f"train_data ({self.stream.what}), epoch {epoch + 1}"
        bs, ragged = self.batch_size, self.opts.ragged

        def prepare(raw, step):
            x, y, n = self.format.split(raw, f"{what}, batch {step + 1}")
            return place(x, y, n, bs, ragged, self.mesh, f"{what}, batch {step + 1}")

        source = _Drawn(it, ahead)
        feed = Prefetch(source, prepare, self.opts.prefetch,
                        None if limit is None else limit - i, where=what)
        stop, pending, state = False, None, None

        def consume(call):
            nonlocal stop
            m, k = jax.device_get(call[0]), call[1]
            steps = "?" if limit is None else limit
            stop = record_step(m, sums, epoch, run.epochs, k, steps, run.source,
                               run.check_finite) or stop
            if bar is not None:
                bar.update(1)
                rate = (k + 1) * bs / max(time.perf_counter() - started, 1e-9)
                bar.set_postfix_str(f"loss {sums['loss'] / (k + 1):.4f}, {rate:,.0f} ex/s",
                                    refresh=False)

        try:
            for (x, y), (state, n_drawn) in feed:
                ts, m = self._step(step_fn, ts, x, y)
                if pending is not None:   # read the previous step while this one runs
                    consume(pending)
                pending, i, total = (m, i), i + 1, total + 1
                if every and total % every == 0:
                    consume(pending)
                    pending = None
                    save(ts, self._position(epoch, i, total, drawn + n_drawn, sums, state))
            if pending is not None:
                consume(pending)
        finally:
            feed.close()
        if i == 0:
            raise BadValue(f"{what} yielded no batch"
                           + (" of full size (ragged='drop' dropped them)." if source.count
                              else " (an iterator that ends early?)."))
        if limit is not None and i < limit:
            raise BadValue(f"{what} ended after {i} of steps_per_epoch={limit} batches.")
        self.total = total
        end = self._position(epoch + 1, 0, total, 0, {},
                             state if self.stream.one_shot else None)
        return ts, sums, stop, i, end

    def _step(self, step_fn, ts, x, y):
        """`step_fn(ts, x, y)`; a key the loss reads from a dict batch (`target_key=None`)
        that the batch lacks is named with the keys it has (the step is traced here)."""
        try:
            return step_fn(ts, x, y)
        except KeyError as e:
            if self.format.target_key is None and isinstance(y, dict):
                raise BadValue(f"the loss reads the key {e.args[0]!r} of the batch, which has "
                               f"{sorted(y)} besides the model's input "
                               f"{self.format.input_key!r}.") from None
            raise

    @staticmethod
    def _position(epoch, step, total, drawn, sums, state) -> dict:
        return {"epoch": epoch, "step": step, "total": total, "drawn": drawn,
                "sums": dict(sums), "state": None if state is None else encode_state(state)}


class _Drawn:
    """`ahead` (batches already drawn, with their states), then `it`; its `get_state()`
    is `(it's state or None, batches drawn so far)`, which `Prefetch` hands on."""

    def __init__(self, it, ahead: list):
        self.it, self.ahead, self.count, self.state = it, list(ahead), 0, None
        self.stateful = callable(getattr(it, "get_state", None))

    def __iter__(self):
        return self

    def __next__(self):
        if self.ahead:
            batch, self.state = self.ahead.pop(0)
        else:
            batch = next(self.it)
            self.state = self.it.get_state() if self.stateful else None
        self.count += 1
        return batch

    def get_state(self):
        return self.state, self.count


def evaluate_val(model, params, model_state, loss, val_data, val_bs, epoch: int, opts,
                 metrics: tuple = ()) -> dict:
    """`fit`'s validation pass: over `(x, y)` arrays or a `Stream` of batches (its epoch
    `epoch`), with the streaming `metrics` (`fnn.metrics.streaming.Metric`s)."""
    if isinstance(val_data, Stream):
        loss = dict_target_loss(loss) if opts.target_key is None else loss
        return evaluate_stream(model, params, model_state, loss, val_data.open(epoch),
                               metrics=metrics, input_key=opts.input_key,
                               target_key=opts.target_key)
    return evaluate_batches(model, params, model_state, loss, val_data[0], val_data[1], val_bs,
                            metrics)


def training_input(train_data, epochs: int, batch_size, opts):
    """`fit`'s `(x, y, n, batch_size, feed)`: `(x, y)` arrays with their `n` examples and
    no feed, or a streamed `train_data`'s first batch, `n = None` and its `Feed`."""
    if is_arrays(train_data):
        x, y = data_pair("train_data", train_data)
        n = labelled("fit (train_data)", num_examples, (x, y))
        return x, y, n, batch_size_for(batch_size, n), None
    feed = open_feed(train_data, epochs, batch_size, opts)
    return feed.x, feed.y, None, feed.batch_size, feed


def validation_input(val_data, epochs: int, opts):
    """`fit`'s `(val_data, eval batch size)`: checked `(x, y)` arrays, or a `Stream` of
    batches (any iterable but a tuple, which stands for `(x, y)`), or `(None, None)`."""
    if val_data is None:
        return None, None
    if not (is_arrays(val_data) or isinstance(val_data, (tuple, str, dict))
            or hasattr(val_data, "shape")):
        return stream_of("val_data", val_data, epochs, None), None
    val_data = data_pair("val_data", val_data)
    return val_data, eval_batch_size("eval_batch_size", opts.eval_batch_size,
                                     labelled("fit (val_data)", num_examples, val_data))


def open_feed(train_data, epochs: int, batch_size, opts) -> Feed:
    """`fit`'s `Feed` for a streamed `train_data`, its options checked."""
    if batch_size is not None:
        batch_size = positive_int("batch_size", batch_size)
    if opts.steps_per_call > 1:
        raise BadValue(f"steps_per_call={opts.steps_per_call} needs (x, y) arrays; streamed "
                       "train_data runs one step per call.")
    for name, on in (("check_finite=True", opts.check_finite),
                     (f"accumulate={opts.accumulate}", opts.accumulate > 1)):
        if on and (opts.ragged == "pad" or opts.target_key is None):
            raise BadValue(f"{name} needs array targets: not with ragged='pad' or "
                           "target_key=None.")
    return Feed("train_data", train_data, epochs, batch_size, opts)


def train_epochs(feed: Feed, run, step_fn, ts, val_data, val_bs, metrics, epoch_rules, states: dict,
           history: dict, stopped: bool, config: dict, progress, progress_bar):
    """`fit`'s epochs over streamed data: `(train_state, history, rule states)` (as
    `fnn.train.loop`'s in-memory epochs, with the data position in every checkpoint)."""
    opts = run.opts
    if opts.mesh is not None:
        ts = distributed.shard_model(opts.mesh, ts)
    show = progress if progress and sys.stderr.isatty() else False
    saver = next((r for r in epoch_rules if r.restore is not None), None)
    every = None if saver is None else saver.every_steps

    def save(ts, position):
        saver.save(ts, dict(states), history, config, position)

    epoch = int(ts.epoch)
    while epoch < run.epochs and not stopped:
        started = time.perf_counter()
        bar = progress_bar(show, opts.steps_per_epoch, f"epoch {epoch + 1}/{run.epochs}")
        try:
            ts, sums, stop, steps, end = feed.epoch(run, step_fn, ts, bar, epoch, started,
                                                    save if every else None, every)
            if not bool(all_finite((ts.opt_state.params, ts.model_state))):
                raise FloatingPointError(nan_message(
                    "a parameter or model-state value became non-finite", epoch, run.epochs,
                    steps - 1, steps, run.source, run.check_finite))
            logs = {k: sums[k] / steps for k in METRICS if k in sums and k in metrics}
            if val_data is not None:
                params = (ema_params(ts.opt_state) if hasattr(ts.opt_state, "ema")
                          else ts.opt_state.params)
                val = evaluate_val(loss_model(run.model, run.precision), params,
                                   ts.model_state, run.loss, val_data,
                                   val_bs, epoch, opts, streaming_of(metrics))
                logs.update({f"val_{k}": v for k, v in val.items()
                             if k in metrics or k not in METRICS})
            epoch += 1
            ts = ts._replace(epoch=jnp.asarray(epoch, jnp.int32))
        finally:
            if bar is not None:
                bar.close()
        lr = getattr(ts.opt_state, "lr", None)
        if lr is not None:  # the learning rate of the epoch's last update
            logs["lr"] = float(lr)
        info = EpochInfo(epoch, run.epochs, logs, history, stop, dict(states), config, started,
                         end)
        for r in epoch_rules:
            states[r.name], ts, info = r.update(states[r.name], ts,
                                                info._replace(states=dict(states)))
        history = append_record(history, info.logs, epoch, run.source)
        stopped = info.stop
    return ts, history, states

