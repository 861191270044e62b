"""Fashion-MNIST (Xiao et al. 2017): 70,000 28×28 grey images of 10 kinds of clothing,
in MNIST's IDX format and file names.

Where `fashion_mnist(split, data_dir=None)` looks, in order (`fnn.datasets.locate`):
`data_dir` (the folder, `data_dir/fashion-mnist`, torchvision's
`data_dir/FashionMNIST/raw`; an explicit folder without the files is an error),
`$FNN_DATA_DIR` (the same places), `/usr/share/datasets/fashion-mnist` (Debian's
`fashion-mnist` package), Keras's cache `~/.keras/datasets/fashion-mnist/`. There is no
bundled fallback: without the files it raises `FileNotFoundError` saying where to get them.
"""
from __future__ import annotations

import numpy as np

from fnn._checks import checked
from fnn.datasets._rules import a_folder, a_split
from fnn.datasets.locate import FASHION_MNIST, describe, locate
from fnn.datasets.mnist import read_split

__all__ = ["fashion_mnist", "fashion_mnist_files", "FASHION_MNIST_CLASSES"]

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def _found(split: str, data_dir):
    found = locate(FASHION_MNIST, split, data_dir)
    if found is None:
        raise FileNotFoundError(f"fashion_mnist: no Fashion-MNIST {split} files found in "
                                f"$FNN_DATA_DIR, /usr/share/datasets/fashion-mnist or "
                                f"~/.keras/datasets/fashion-mnist. {FASHION_MNIST.how_to_get}")
    return found


@checked("fashion_mnist", split=a_split, data_dir=a_folder)
def fashion_mnist(split: str = "train", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST as `(x, y)`: float32 NHWC images `(N, 28, 28, 1)` in [0, 1] and int32
    labels 0–9 (names in `FASHION_MNIST_CLASSES`).

    **Arguments:**
    - `split`: `"train"` (60,000 images) or `"test"` (10,000).
    - `data_dir`: a folder with `train-images-idx3-ubyte[.gz]`,
      `train-labels-idx1-ubyte[.gz]`, `t10k-images-idx3-ubyte[.gz]`,
      `t10k-labels-idx1-ubyte[.gz]` (or its `fashion-mnist/` or `FashionMNIST/raw/`
      subfolder); None searches the places listed in `help(fnn.datasets.fashion)`.

    `fashion_mnist_files` says which files a call reads.
    """
    return read_split(FASHION_MNIST, _found(split, data_dir), split)


@checked("fashion_mnist", split=a_split, data_dir=a_folder)
def fashion_mnist_files(data_dir=None, split: str = "train") -> str:
    """In words, which files `fashion_mnist(split, data_dir)` reads and how they were found."""
    return describe(FASHION_MNIST, _found(split, data_dir))
