"""Batching: the three classic modes, train/validation splits, and on-device epochs.

Two paths over the same shuffle:

- `batches(key, *arrays, batch_size, shuffle=True, drop_last=False)` is a plain
  Python iterator of tuples, for hand-written loops. `batch_size=None` is the whole
  data set (batch gradient descent), `1` is stochastic gradient descent, `n` is
  mini-batch.
- `epoch_batches(key, arrays, batch_size)` shuffles with `jax.random.permutation`
  and gathers every batch of an epoch on the device in one call, returning arrays
  stacked as `(num_batches, batch_size, ...)`. The ragged tail is dropped, so a
  training step sees one shape and never recompiles. `fnn.train.fit` uses this.
- `padded_batches(arrays, batch_size)` is the evaluation counterpart: it pads the
  last batch (repeating the last example) and returns a `(num_batches, batch_size)`
  mask, so every example counts exactly once and the shape stays fixed.

Both shuffling paths draw the same permutation for the same key:
`jax.random.permutation(key, N)`; the order depends on the key only.
"""
from __future__ import annotations

import numbers
from collections.abc import Iterator
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, flag, named, require_key

__all__ = [
    "batches", "num_batches", "train_val_split", "epoch_batches", "padded_batches",
    "iter_padded_batches", "num_examples", "batch_size_for",
]


def num_examples(arrays, *, unpack_hint: bool = False) -> int:
    """The common, non-zero first axis `N` of a non-empty tuple of arrays (`BadValue` /
    `BadType` otherwise). `unpack_hint`: a tuple passed where arrays go gets the fix
    `batches(key, *arrays, ...)`."""
    if not arrays:
        raise BadValue("expected at least one array, got none.")
    sizes = []
    for i, a in enumerate(arrays):
        shape = getattr(a, "shape", None)
        if shape is None:
            hint = ("; unpack a tuple of arrays: batches(key, *arrays, ...)"
                    if unpack_hint and isinstance(a, (tuple, list)) else "")
            raise BadType(f"argument {i} must be an array (numpy or jax), got "
                          f"{type(a).__name__}{hint}.")
        if len(shape) == 0:
            raise BadValue(f"argument {i} is a scalar; arrays must have a batch axis first.")
        sizes.append(int(shape[0]))
    if len(set(sizes)) != 1:
        raise BadValue(f"all arrays must have the same first (batch) dimension, "
                       f"got first dimensions {sizes}.")
    if sizes[0] == 0:
        raise BadValue("the arrays are empty (first dimension 0).")
    return sizes[0]


def batch_size_for(batch_size, n: int) -> int:
    """A batch size for `n` examples: `None` -> n; otherwise an int in [1, n]."""
    if batch_size is None:
        return n
    if isinstance(batch_size, bool) or not hasattr(batch_size, "__index__"):
        raise BadType(f"batch_size must be None (whole data set), 1 (SGD) or a positive int, "
                      f"got {batch_size!r}.")
    batch_size = int(batch_size)
    if not 1 <= batch_size <= n:
        raise BadValue(f"batch_size must be in [1, {n}] for {n} examples, got {batch_size}; "
                       "use batch_size=None for the whole data set.")
    return batch_size


def _as_tuple(arrays) -> tuple:
    """`arrays` (a tuple or list of arrays) as a tuple. One bare array is refused: a tuple
    of its rows would be batched as if each row were a data set."""
    if hasattr(arrays, "shape") or not isinstance(arrays, (tuple, list)):
        raise BadType(
            f"arrays must be a tuple of arrays such as (x, y), got {type(arrays).__name__}"
            + (f" of shape {tuple(arrays.shape)}; for one array pass (x,)."
               if hasattr(arrays, "shape") else ".")
        )
    return tuple(arrays)


@named("num_batches")
def num_batches(n: int, batch_size: int | None, drop_last: bool = False) -> int:
    """Number of batches `batches` yields for `n` examples."""
    if isinstance(n, bool) or not hasattr(n, "__index__") or int(n) < 1:
        raise BadValue(f"n must be a positive int (the number of examples), got {n!r}.")
    n = int(n)
    batch_size = batch_size_for(batch_size, n)
    drop_last = flag("drop_last", drop_last)
    return n // batch_size if drop_last else -(-n // batch_size)


def _permutation(key, n: int) -> np.ndarray:
    return np.asarray(jax.random.permutation(key, n))


@named("batches")
def batches(key, *arrays, batch_size: int | None, shuffle: bool = True,
            drop_last: bool = False) -> Iterator[tuple]:
    """Iterate over one epoch of `arrays` in batches; yields tuples of batches.

    **Arguments:**
    - `key`: a PRNG key for the shuffle (`jax.random.key(seed)`); may be `None`
      when `shuffle=False`.
    - `*arrays`: numpy or jax arrays sharing their first axis `N` (e.g. `x, y`).
    - `batch_size`: `None` for the whole data set in one batch (batch gradient
      descent), `1` for stochastic gradient descent, `n` for mini-batches of `n`.
    - `shuffle`: visit examples in the order `jax.random.permutation(key, N)`.
    - `drop_last`: drop the final batch when it has fewer than `batch_size` examples.

    Every example appears exactly once per epoch (`N // batch_size` full batches
    plus a ragged one of `N % batch_size` unless `drop_last`). Batches keep the
    array type given (numpy in, numpy out). Arguments are validated on the call,
    not on the first `next`.
    """
    n = num_examples(arrays, unpack_hint=True)
    bs = batch_size_for(batch_size, n)
    shuffle, drop_last = flag("shuffle", shuffle), flag("drop_last", drop_last)
    if shuffle and key is None:
        raise BadValue("shuffle=True needs a key, e.g. batches(jax.random.key(0), x, y, "
                       "batch_size=32); pass shuffle=False for a fixed order.")
    if shuffle:
        require_key(key)
    order = _permutation(key, n) if shuffle else None
    stop = n - n % bs if drop_last else n

    def generate():
        for start in range(0, stop, bs):
            end = min(start + bs, n)
            if order is None:
                yield tuple(a[start:end] for a in arrays)
            else:
                idx = order[start:end]
                yield tuple(a[idx] for a in arrays)

    return generate()


@named("train_val_split")
def train_val_split(key, *arrays, val_fraction: float):
    """Shuffle and split arrays into a training and a validation part.

    Returns `(train, val)`, two tuples with one entry per input array:
    `(x_tr, y_tr), (x_va, y_va) = train_val_split(key, x, y, val_fraction=0.1)`.
    The validation part has `round(N * val_fraction)` examples (at least one, and
    at least one is left for training); the split depends only on `key`.
    """
    n = num_examples(arrays)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, numbers.Real):
        raise BadType(f"val_fraction must be a number, got {val_fraction!r}.")
    if not 0.0 < float(val_fraction) < 1.0:
        raise BadValue(f"val_fraction must be in (0, 1), got {val_fraction}.")
    if n < 2:
        raise BadValue(f"need at least 2 examples to split, got {n}.")
    n_val = min(max(int(round(n * float(val_fraction))), 1), n - 1)
    require_key(key)
    order = _permutation(key, n)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return tuple(a[train_idx] for a in arrays), tuple(a[val_idx] for a in arrays)


@partial(jax.jit, static_argnames=("batch_size",))
def _epoch_batches(key, arrays, batch_size):
    n = arrays[0].shape[0]
    nb = n // batch_size
    if key is None:
        idx = jnp.arange(nb * batch_size)
    else:
        idx = jax.random.permutation(key, n)[: nb * batch_size]
    idx = idx.reshape(nb, batch_size)
    return tuple(jnp.take(a, idx, axis=0) for a in arrays)


@named("epoch_batches")
def epoch_batches(key, arrays, batch_size: int | None):
    """One shuffled epoch gathered on the device: arrays stacked `(num_batches, batch, ...)`.

    `arrays` is a tuple (e.g. `(x, y)`); the result is a tuple of the same length
    whose `i`-th batch is `out[j][i]`. The order is `jax.random.permutation(key, N)`
    (the same order as `batches(key, ...)`; `key=None` keeps the data order) and
    the ragged tail (`N % batch_size` examples) is dropped so every batch has one
    shape; it is a different tail each epoch, so no example is left out for good.
    Jitted: a small data set stays on the device for the whole run.
    """
    arrays = _as_tuple(arrays)
    bs = batch_size_for(batch_size, num_examples(arrays))
    if key is not None:
        require_key(key)
    return _epoch_batches(key, tuple(jnp.asarray(a) for a in arrays), bs)


@named("padded_batches")
def padded_batches(arrays, batch_size: int | None):
    """Fixed-shape evaluation batches: `(stacked_arrays, mask)`.

    Each array becomes `(num_batches, batch_size, ...)` with
    `num_batches = ceil(N / batch_size)`; the last batch is padded by repeating
    the last example (so padded rows hold valid values for any loss), and
    `mask` is a bool `(num_batches, batch_size)` array that is True exactly on
    the `N` real examples, in data order. `batch_size=None` gives one batch of `N`.
    """
    arrays = _as_tuple(arrays)
    n = num_examples(arrays)
    bs = batch_size_for(batch_size, n)
    nb = -(-n // bs)
    idx = np.minimum(np.arange(nb * bs), n - 1).reshape(nb, bs)
    mask = (np.arange(nb * bs) < n).reshape(nb, bs)
    return tuple(jnp.take(jnp.asarray(a), idx, axis=0) for a in arrays), jnp.asarray(mask)


@named("iter_padded_batches")
def iter_padded_batches(arrays, batch_size: int | None):
    """Like `padded_batches`, one batch at a time: yields `(batch_tuple, mask)`.

    Slices the arrays as they are (no copy of the whole set); only the last,
    ragged batch is padded (repeating the last example). Used by
    `fnn.train.evaluate` and `predict`.
    """
    arrays = _as_tuple(arrays)
    n = num_examples(arrays)
    bs = batch_size_for(batch_size, n)

    def generate():
        for start in range(0, n, bs):
            end = min(start + bs, n)
            if end - start == bs:
                yield tuple(a[start:end] for a in arrays), jnp.ones((bs,), bool)
            else:
                idx = np.minimum(np.arange(start, start + bs), n - 1)
                yield (tuple(jnp.take(jnp.asarray(a), idx, axis=0) for a in arrays),
                       jnp.asarray(np.arange(start, start + bs) < n))

    return generate()
