"""Data larger than memory: random-access sources over files on disk, and a loader that
batches them for `fnn.train.fit`, reshuffled every epoch by the run's key.

    src = fnn.sources.npy_source("x.npy", "y.npy")          # memory-mapped, nothing read yet
    train = fnn.sources.loader(src, batch_size=128, key=jax.random.key(0))
    fit(model, opt, loss, train, epochs=10, batch_size=128, key=key)

A source is a grain `RandomAccessDataSource` (`__len__`, `__getitem__`): `src[i]`
is the tuple of example `i`, and `src[idx]` for an int array `idx` reads those
rows in one call (a batch). Only the rows read are paged in from the files, so
the data may be far larger than the memory.

`loader(src, batch_size, *, key, shuffle=True, drop_remainder=True, backend="auto")`
is a callable `epoch -> iterable of batches` (`fit`'s per-epoch protocol,
`fnn.train.feed`). Epoch `e` visits the examples in the order
`permutation(fold_in(key, e), N)` (`jax.random`), batch `b` is rows
`order[b·B:(b+1)·B]`. `backend="grain"` builds each epoch as a grain
`MapDataset` (`range(num_batches).map(read batch)`, iterated with grain's
`get_state()/set_state()`); `"fnn"` uses fnn's own iterator (`LoaderIterator`, with
the same state protocol); `"auto"` takes grain when it is installed. Both give the
same batches, and both let a checkpoint save the position inside an epoch
(`fnn.train.checkpoint(..., every_steps=N)`), so a killed run resumes exactly.
"""
from __future__ import annotations

import math
import os
import struct

import jax
import numpy as np

from fnn._checks import BadType, BadValue, flag, named, positive_int, require_key
from fnn.datasets import read_idx

__all__ = [
    "ArraySource", "npy_source", "idx_source", "open_idx", "loader", "epoch_order",
    "LoaderIterator", "BACKENDS",
]

BACKENDS = ("auto", "grain", "fnn")
# IDX type codes (the third byte of the magic number) -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class ArraySource:
    """Random access to the examples of arrays sharing their first axis (numpy arrays or
    `np.memmap`s): `src[i] -> (a[i], b[i], ...)`, `src[idx] -> (a[idx], ...)` for an int
    array `idx`, `len(src) = N`. Reads are sorted by row before they touch the files
    (sequential pages), then put back in the order asked."""

    def __init__(self, *arrays):
        if not arrays:
            raise BadValue("ArraySource: expected at least one array, got none.")
        for i, a in enumerate(arrays):
            if not isinstance(a, np.ndarray) or a.ndim == 0:
                raise BadType(f"ArraySource: argument {i} must be a numpy array (or memmap) "
                              f"with a batch axis first, got {type(a).__name__}"
                              + (" of shape ()" if isinstance(a, np.ndarray) else "") + ".")
        sizes = [len(a) for a in arrays]
        if len(set(sizes)) != 1:
            raise BadValue(f"ArraySource: all arrays must have the same first dimension, got "
                           f"{sizes}.")
        self.arrays = tuple(arrays)

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return tuple(np.asarray(a[index]) for a in self.arrays)
        index = np.asarray(index)
        order = np.argsort(index, kind="stable")
        back = np.empty_like(order)
        back[order] = np.arange(len(order))
        rows = index[order]
        return tuple(np.asarray(a[rows])[back] for a in self.arrays)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.arrays)
        return f"ArraySource({shapes})"


@named("npy_source")
def npy_source(*paths) -> ArraySource:
    """An `ArraySource` over `.npy` files, memory-mapped read-only (`np.load(path,
    mmap_mode="r")`): e.g. `npy_source("x.npy", "y.npy")`."""
    arrays = []
    for p in paths:
        if not isinstance(p, (str, os.PathLike)):
            raise BadType(f"paths must be .npy file paths, got {p!r}.")
        arrays.append(np.load(os.fspath(p), mmap_mode="r", allow_pickle=False))
    return ArraySource(*arrays)


@named("open_idx")
def open_idx(path) -> np.ndarray:
    """An IDX file (the MNIST format) as a read-only array: memory-mapped when it is
    uncompressed (only its header is read here), read whole with
    `fnn.datasets.read_idx` when gzipped. Big-endian data keeps its big-endian dtype
    (converted row by row when read)."""
    if not isinstance(path, (str, os.PathLike)):
        raise BadType(f"path must be an IDX file path, got {path!r}.")
    path = os.fspath(path)
    with open(path, "rb") as f:
        head = f.read(4)
        if head[:2] == b"\x1f\x8b":     # gzip: no random access into it
            return read_idx(path)
        if len(head) < 4 or head[:2] != b"\0\0" or head[2] not in _IDX_DTYPES or head[3] == 0:
            raise BadValue(f"{path} is not an IDX file: magic number 0x{head.hex()}, expected "
                           "0x0000TTDD (e.g. 0x00000803 for MNIST images).")
        ndim = head[3]
        dims_raw = f.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise BadValue(f"{path} is truncated inside its IDX header.")
    dims = struct.unpack(f">{ndim}I", dims_raw)
    dtype = np.dtype(_IDX_DTYPES[head[2]])
    offset = 4 + 4 * ndim
    need = offset + math.prod(dims) * dtype.itemsize
    if os.path.getsize(path) != need:
        raise BadValue(f"{path} holds {os.path.getsize(path)} bytes, its IDX header (shape "
                       f"{dims} of {dtype.name}) needs {need}.")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=dims)


@named("idx_source")
def idx_source(*paths) -> ArraySource:
    """An `ArraySource` over IDX files (`open_idx`), e.g. `idx_source(images, labels)`."""
    return ArraySource(*(open_idx(p) for p in paths))


def epoch_order(key, epoch: int, n: int) -> np.ndarray:
    """The order in which `loader` visits `n` examples in `epoch`:
    `jax.random.permutation(fold_in(key, epoch), n)`."""
    return np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))


class LoaderIterator:
    """fnn's iterator over one epoch's batches, with grain's state protocol:
    `get_state() -> {"next_index": b}` (the next batch), `set_state(state)`."""

    def __init__(self, read, num_batches: int):
        self._read, self._n, self._next = read, num_batches, 0

    def __iter__(self):
        return self

    def __next__(self):
        if self._next >= self._n:
            raise StopIteration
        self._next += 1
        return self._read(self._next - 1)

    def get_state(self) -> dict:
        return {"next_index": self._next}

    def set_state(self, state: dict) -> None:
        self._next = int(state["next_index"])


class _Batches:
    """Batch `b` of an epoch: the source's rows `order[b·B:(b+1)·B]` (picklable, for
    grain's workers)."""

    def __init__(self, source, order: np.ndarray, batch_size: int):
        self.source, self.order, self.batch_size = source, order, batch_size

    def __call__(self, b: int):
        return self.source[self.order[b * self.batch_size:(b + 1) * self.batch_size]]


@named("loader")
def loader(source, batch_size: int, *, key, shuffle: bool = True, drop_remainder: bool = True,
           backend: str = "auto"):
    """Batches of `source` per epoch: a callable `epoch -> iterable of batch tuples`
    (see `help(fnn.sources)`). `shuffle=False` keeps the source's order."""
    if not hasattr(source, "__len__") or not hasattr(source, "__getitem__"):
        raise BadType(f"source must be a random-access source (__len__, __getitem__), got "
                      f"{type(source).__name__}.")
    n = len(source)
    batch_size = positive_int("batch_size", batch_size)
    shuffle, drop_remainder = flag("shuffle", shuffle), flag("drop_remainder", drop_remainder)
    if backend not in BACKENDS:
        raise BadValue(f"backend must be one of {list(BACKENDS)}, got {backend!r}.")
    if shuffle:
        require_key(key)
    num = n // batch_size if drop_remainder else -(-n // batch_size)
    if num == 0:
        raise BadValue(f"batch_size={batch_size} is larger than the source ({n} examples) "
                       "and drop_remainder=True leaves no batch.")
    grain = None
    if backend != "fnn":
        try:
            import grain
        except ImportError:
            if backend == "grain":
                raise BadValue("backend='grain' needs grain: pip install grain (or "
                               "pip install fnn[data]).") from None

    def epoch_batches(epoch: int):
        order = epoch_order(key, epoch, n) if shuffle else np.arange(n)
        read = _Batches(source, order, batch_size)
        if grain is None:
            return LoaderIterator(read, num)
        # grain reads ahead on 16 threads into a 500-element buffer by default: 500
        # batches is memory the larger-than-memory case lacks; fit prefetches anyway
        options = grain.ReadOptions(num_threads=2, prefetch_buffer_size=2)
        return grain.MapDataset.range(num).map(read).to_iter_dataset(options)

    return epoch_batches
