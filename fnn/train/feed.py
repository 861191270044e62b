"""Batches from anywhere for `fit`: what an iterable `train_data` is, how each batch
becomes the step's `(x, y)`, and the thread that moves batches to the device ahead of
the step.

**What `train_data` may be** (besides `(x, y)` arrays, `fit`'s in-memory path):

- a callable `f(epoch) -> iterable`: epoch `e` (0-based) reads `iter(f(e))`, e.g. a
  grain dataset reshuffled per epoch;
- a re-iterable (has `__iter__`, no `__next__`): `iter(train_data)` once per epoch: a
  list of batches, a PyTorch `DataLoader`, a grain `MapDataset` or `DataLoader`;
- an iterator (has `__next__`: a generator, `tf.data`'s `as_numpy_iterator()`): one
  stream for the whole run, `steps_per_epoch` batches per epoch (needed when `epochs > 1`).

With `steps_per_epoch=None` an epoch ends where its iterator ends; with `N`, an
epoch is the next `N` batches (a per-epoch iterator must hold at least `N`).

**A batch** is a tuple `(x, y)` or a dict of arrays (numpy, JAX, or anything
`np.asarray` takes, e.g. CPU torch tensors), batch axis first. From a dict, the
model gets `batch[input_key]` (default `"x"`) and the loss `batch[target_key]`
(default `"y"`); `target_key=None` gives the loss the dict without the input,
`loss(pred, {"y": ..., "w": ...})`, for losses that read several entries. Every
batch must have the first batch's structure, keys, dtypes and example shapes.

**The ragged batch** (fewer than `batch_size` examples, usually the last):
`ragged="drop"` (default, as the in-memory path) skips it; `"pad"` pads it to
`batch_size` by repeating its last example and passes the loss a mask, so padded
examples count neither in the loss nor in the accuracy; every step then runs the
masked loss, `Σ_i w_i·loss(pred_i, y_i) / Σ_i w_i` (one trace for the run; layers
that use batch statistics, BatchNorm, still see the repeated examples);
`"error"` raises.
"""
from __future__ import annotations

import functools
import queue
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import distributed
from fnn._checks import BadType, BadValue, positive_int
from fnn.metrics import AccuracyRule, accuracy_rule

__all__ = [
    "RAGGED", "is_arrays", "Stream", "stream_of", "check_stream_options", "BatchFormat",
    "batch_format", "pad", "place", "dict_target_loss", "masked_loss", "Prefetch",
]

RAGGED = ("drop", "pad", "error")


def is_arrays(data) -> bool:
    """`data` is `(x, y)` (or `[x, y]`) of arrays: `fit`'s in-memory path."""
    return (isinstance(data, (tuple, list)) and len(data) == 2
            and all(hasattr(a, "shape") and hasattr(a, "dtype") for a in data))


class Stream(NamedTuple):
    """How a run reads an iterable `train_data`."""

    open: Callable[[int], Iterator]   # epoch -> a new iterator of batches (per-epoch sources)
    one_shot: bool                    # True: one iterator for the whole run (`open` ignores epoch)
    what: str                         # for messages: "a callable", "a re-iterable", ...


def stream_of(name: str, data, epochs: int, steps_per_epoch) -> Stream:
    """The `Stream` of an iterable `data` (see `help(fnn.train.feed)`)."""
    if hasattr(data, "shape"):    # one array iterates over its rows: not batches
        raise BadType(f"{name} must be a pair (x, y), got {type(data).__name__} of shape "
                      f"{tuple(data.shape)} (or an iterable of batches (x, y)).")
    if hasattr(data, "__next__"):
        if steps_per_epoch is None and epochs > 1:
            raise BadValue(
                f"{name} is a one-shot iterator ({type(data).__name__}), which cannot restart "
                f"for epoch 2 of {epochs}; pass a callable epoch -> iterable, a re-iterable "
                "(a list, a DataLoader, a grain dataset: iter() is called once per epoch), "
                "or steps_per_epoch=N to read N batches per epoch from the one stream.")
        return Stream(lambda epoch: data, True, "an iterator")
    if hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
        return Stream(lambda epoch: iter(data), False, "a re-iterable")
    if callable(data):
        def open_epoch(epoch: int):
            got = data(epoch)
            if not hasattr(got, "__iter__"):
                raise BadType(f"{name}({epoch}) must return an iterable of batches, got "
                              f"{type(got).__name__}.")
            return iter(got)
        return Stream(open_epoch, False, "a callable")
    raise BadType(f"{name} must be a pair (x, y) of arrays, an iterable of batches or a "
                  f"callable epoch -> iterable of batches, got {type(data).__name__}.")


def check_stream_options(opts) -> None:
    """The `FitOptions` fields of streamed `train_data`: `BadValue`/`BadType` if wrong."""
    positive_int("prefetch", opts.prefetch)
    if opts.ragged not in RAGGED:
        raise BadValue(f"ragged must be one of {list(RAGGED)}, got {opts.ragged!r}.")
    if opts.steps_per_epoch is not None:
        positive_int("steps_per_epoch", opts.steps_per_epoch)
    if not isinstance(opts.input_key, str):
        raise BadType(f"input_key must be a str (the dict batch's model input), got "
                      f"{opts.input_key!r}.")
    if opts.target_key is not None and not isinstance(opts.target_key, str):
        raise BadType(f"target_key must be a str or None (the loss gets the batch without "
                      f"input_key), got {opts.target_key!r}.")


def _leaf(where: str, a):
    if isinstance(a, jax.Array):
        return a
    if not hasattr(a, "shape") or not hasattr(a, "__array__"):
        raise BadType(f"{where} must be an array (numpy, JAX, or a CPU torch tensor), got "
                      f"{type(a).__name__}.")
    return np.asarray(a)


class BatchFormat(NamedTuple):
    """The structure of a stream's batches, read from its first batch."""

    keys: tuple | None        # a dict batch's keys (sorted), None for (x, y) tuples
    input_key: str
    target_key: str | None
    specs: dict               # leaf name -> (example shape, dtype)
    batch_size: int

    def split(self, batch, where: str) -> tuple:
        """`(x, y, n)` of one batch, checked against the format (`n`: its examples)."""
        if self.keys is None:
            if not isinstance(batch, (tuple, list)) or len(batch) != 2:
                raise BadType(f"{where} must be a tuple (x, y) like the first batch, got "
                              f"{type(batch).__name__}.")
            leaves = {"x": batch[0], "y": batch[1]}
        else:
            if not isinstance(batch, dict) or tuple(sorted(batch)) != self.keys:
                got = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
                raise BadValue(f"{where} has keys {got}, the first batch had "
                               f"{list(self.keys)}.")
            leaves = dict(batch)
        leaves = {k: _leaf(f"{where}[{k!r}]", a) for k, a in leaves.items()}
        sizes = set()
        for k, a in leaves.items():
            shape, dtype = self.specs[k]
            if a.ndim == 0 or tuple(a.shape[1:]) != shape or a.dtype != dtype:
                raise BadValue(f"{where}: {k!r} has shape {tuple(a.shape)} {a.dtype}, the "
                               f"first batch's has examples of shape {shape} {dtype}; every "
                               "batch must keep the structure, example shapes and dtypes.")
            sizes.add(int(a.shape[0]))
        if len(sizes) != 1:
            raise BadValue(f"{where}: its entries have different batch sizes "
                           f"{ {k: int(a.shape[0]) for k, a in leaves.items()} }.")
        n = sizes.pop()
        if n > self.batch_size:
            raise BadValue(f"{where} has {n} examples, more than batch_size={self.batch_size}.")
        if self.keys is None:
            return leaves["x"], leaves["y"], n
        x = leaves.pop(self.input_key)
        return x, (leaves if self.target_key is None else leaves[self.target_key]), n


def batch_format(first, batch_size, input_key: str, target_key: str | None,
                 name: str) -> BatchFormat:
    """The `BatchFormat` of a stream whose first batch is `first`; `batch_size=None`
    takes its size. A dict batch must hold `input_key` (and `target_key`)."""
    where = f"{name}'s first batch"
    if isinstance(first, dict):
        keys = tuple(sorted(first))
        for k in (input_key, target_key):
            if k is not None and k not in first:
                role = "the model's input" if k == input_key else "the loss's target"
                raise BadValue(f"{where} has no key {k!r} ({role}); its keys are "
                               f"{list(keys)} (set input_key= / target_key=).")
        if target_key is None and len(keys) < 2:
            raise BadValue(f"{where} holds only {list(keys)}: nothing for the loss.")
        leaves = dict(first)
    elif isinstance(first, (tuple, list)) and len(first) == 2:
        keys, leaves = None, {"x": first[0], "y": first[1]}
    else:
        raise BadType(f"{where} must be a tuple (x, y) or a dict of arrays, got "
                      f"{type(first).__name__}"
                      + (f" of length {len(first)}" if isinstance(first, (tuple, list)) else "")
                      + ".")
    leaves = {k: _leaf(f"{where}[{k!r}]", a) for k, a in leaves.items()}
    for k, a in leaves.items():
        if a.ndim == 0:
            raise BadValue(f"{where}[{k!r}] is a scalar; batches need a batch axis first.")
    n = int(leaves[input_key if keys else "x"].shape[0])
    bs = n if batch_size is None else batch_size
    if bs < 1:
        raise BadValue(f"{where} is empty (0 examples).")
    specs = {k: (tuple(a.shape[1:]), a.dtype) for k, a in leaves.items()}
    return BatchFormat(keys, input_key, target_key, specs, bs)


def pad(tree, n: int, bs: int):
    """Every leaf padded from `n` to `bs` rows by repeating row `n - 1`."""
    idx = np.minimum(np.arange(bs), n - 1)
    return jax.tree.map(lambda a: a[idx], tree)


def place(x, y, n: int, bs: int, ragged: str, mesh, where: str):
    """The step's `(x, y)` on the device, or None for a ragged batch that is dropped.
    With `ragged="pad"` `y` becomes `(y, mask)` for `masked_loss`."""
    if ragged == "pad":
        if n < bs:
            x, y = pad(x, n, bs), pad(y, n, bs)
        y = (y, np.arange(bs) < n)
    elif n < bs:
        if ragged == "error":
            raise BadValue(f"{where} has {n} examples, not batch_size={bs} (a ragged batch); "
                           "pass ragged='drop' or ragged='pad'.")
        return None
    if mesh is None:
        return jax.device_put((x, y))
    return jax.device_put((x, y), distributed.batch_sharding(mesh))


@functools.cache
def dict_target_loss(loss: Callable) -> Callable:
    """`loss` for `target_key=None` (it gets a dict of the batch's other entries): the
    same function, with no accuracy unless `loss` declares one itself (`fnn.metrics`'s
    default rule reads class ids, not a dict)."""
    def on_dict(pred, batch):
        return loss(pred, batch)

    on_dict.accuracy = getattr(getattr(loss, "func", loss), "accuracy", None)
    on_dict.__name__ = getattr(getattr(loss, "func", loss), "__name__", "loss")
    return on_dict


@functools.cache
def masked_loss(loss: Callable) -> Callable:
    """`loss` over a padded batch: `masked(pred, (y, mask)) = Σ_i w_i·l_i / Σ_i w_i` with
    `l_i = loss(pred[i:i+1], y[i:i+1])`, and its accuracy rule masked the same way (the
    step's mean of `correct` becomes the mean over the real examples). One wrapper per
    loss, so that the compiled step is reused."""
    rule = accuracy_rule(loss)

    def per_example(pred, y):
        return jax.vmap(lambda p, t: loss(p[None], jax.tree.map(lambda a: a[None], t)))(pred, y)

    def masked(pred, target):
        y, mask = target
        w = mask.astype(jnp.float32)
        return jnp.sum(per_example(pred, y).astype(jnp.float32) * w) / jnp.maximum(
            jnp.sum(w), 1.0)

    def correct(pred, target):
        y, mask = target
        c = rule.correct(pred, y)
        if c is None:
            return None
        w = mask.astype(jnp.float32)
        return c * w * (w.shape[0] / jnp.maximum(jnp.sum(w), 1.0))

    masked.accuracy = None if rule is None else AccuracyRule(correct, rule.class_ids)
    masked.__name__ = f"masked_{getattr(getattr(loss, 'func', loss), '__name__', 'loss')}"
    return masked


class _End(NamedTuple):
    pass


class _Failure(NamedTuple):
    error: BaseException
    step: int
    in_iterator: bool    # raised by the iterator itself (else by the checks of its batch)


class Prefetch:
    """Iterate `prepare(next(it), i)` (`i`: the batch's 0-based index) computed on a
    background thread, `depth` items ahead, skipping those `prepare` returns as None, up
    to `limit` items. Yields `(item, state)`: `state` is `it.get_state()` right after
    the batch was drawn (None for an iterator without one): the position after it.

    The thread stops when the iterator ends, when `prepare` or the iterator raises (the
    error is raised in the caller by `__next__`, with the step it happened at), and on
    `close()` (early stop, an error or KeyboardInterrupt in the caller): `close` unblocks
    and joins it.
    """

    def __init__(self, it: Iterator, prepare: Callable, depth: int, limit: int | None = None,
                 where: str = "the iterator"):
        self._it, self._prepare, self._limit, self._where = it, prepare, limit, where
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._stateful = callable(getattr(it, "get_state", None))
        self._thread = threading.Thread(target=self._run, name="fnn-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        drawn, steps, in_iterator = 0, 0, True
        try:
            while self._limit is None or steps < self._limit:
                in_iterator = True
                try:
                    raw = next(self._it)
                except StopIteration:
                    break
                state = self._it.get_state() if self._stateful else None
                in_iterator = False
                item = self._prepare(raw, drawn)
                drawn += 1
                if item is None:          # a batch the caller skips (a dropped ragged one)
                    continue
                if not self._put((item, state)):
                    return
                steps += 1
            self._put(_End())
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            self._put(_Failure(e, drawn, in_iterator))

    def __iter__(self):
        return self

    def __next__(self):
        item = self._queue.get()
        if isinstance(item, _End):
            raise StopIteration
        if isinstance(item, _Failure):
            self.close()
            if not item.in_iterator:
                raise item.error
            raise RuntimeError(f"{self._where} raised {type(item.error).__name__} at step "
                               f"{item.step + 1}: {item.error}") from item.error
        return item

    def close(self, wait: float = 10.0) -> None:
        """Stop the thread: unblock it and join it (for at most `wait` seconds: a thread
        stuck inside the iterator's `next` is left to finish on its own, as a daemon)."""
        self._stop.set()
        for _ in range(int(wait / 0.05)):
            if not self._thread.is_alive():
                return
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
            self._thread.join(timeout=0.01)
