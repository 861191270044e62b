"""CIFAR-10 from the official *binary* version (never the pickled Python version).

The "python version" batches are pickles; fnn refuses them rather than parse the
pickle protocol (even a reader restricted to its data records is an unpickler, and
the binary version holds the same bytes), and its error says how to convert them.

The binary tarball `cifar-10-binary.tar.gz` unpacks to `cifar-10-batches-bin/`
with `data_batch_1.bin` … `data_batch_5.bin` (training, 10,000 images each) and
`test_batch.bin` (10,000). Each file is a sequence of 3,073-byte records: one
label byte (0–9), then the 32×32 image as 1,024 red, 1,024 green and 1,024 blue
bytes, each plane row-major (channels-first). `cifar10` returns NHWC.

Where `cifar10(split, data_dir=None)` looks: `data_dir`, `data_dir/cifar-10-batches-bin`,
`data_dir/cifar10`, `data_dir/cifar10/cifar-10-batches-bin`; with no `data_dir`,
the same under `$FNN_DATA_DIR`. Get the files with
`fnn.datasets.download("cifar10", DIR)` (which extracts the `.bin` files into
`DIR/cifar10`) or by hand from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz.
"""
from __future__ import annotations

import os

import numpy as np

from fnn._checks import checked
from fnn.datasets._rules import a_folder, a_split

__all__ = ["cifar10", "read_cifar_batch", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
_RECORD = 1 + 3 * 32 * 32
_FILES = {"train": tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
          "test": ("test_batch.bin",)}
_HOW_TO_GET = (
    "Get the binary version with fnn.datasets.download('cifar10', DIR) (needs a network) or "
    "by hand from https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (unpack it), then "
    "pass data_dir=DIR or set FNN_DATA_DIR."
)


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 binary batch file into `(images, labels)`.

    **Returns** `images` uint8 of shape `(N, 32, 32, 3)` (NHWC, converted from the
    file's CHW records) and `labels` int32 of shape `(N,)`.

    Raises `ValueError` when the size is not a positive multiple of 3,073 bytes
    (truncated, or not a CIFAR-10 binary batch) or a label is above 9 (e.g. a
    CIFAR-100 file, whose records have two label bytes).
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) == 0 or len(raw) % _RECORD:
        raise ValueError(
            f"cifar10: {path} has {len(raw)} bytes, not a positive multiple of the {_RECORD}-byte "
            "record (1 label byte + 3072 image bytes): truncated, or not a CIFAR-10 binary batch."
        )
    records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _RECORD)
    labels = records[:, 0].astype(np.int32)
    if labels.max() > 9:
        raise ValueError(f"cifar10: {path} has label {labels.max()} (expected 0..9); is it a "
                         "CIFAR-100 file or not a CIFAR-10 binary batch?")
    images = records[:, 1:].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _folder(data_dir: str | None, split: str) -> str:
    root = data_dir if data_dir is not None else os.environ.get("FNN_DATA_DIR")
    if data_dir is None and not root:  # an explicit data_dir, even "", is searched
        raise FileNotFoundError(f"cifar10: give data_dir or set FNN_DATA_DIR. {_HOW_TO_GET}")
    candidates = [root, os.path.join(root, "cifar-10-batches-bin"), os.path.join(root, "cifar10"),
                  os.path.join(root, "cifar10", "cifar-10-batches-bin")]
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, name)) for name in _FILES[split]):
            return folder
    pickled = any(os.path.exists(os.path.join(c, "data_batch_1")) or
                  os.path.isdir(os.path.join(c, "cifar-10-batches-py")) for c in candidates)
    hint = (" Found the pickled Python version, which fnn never reads (unpickling can run "
            "code, and a restricted unpickler is still an unpickler); use the binary version, "
            "or convert each batch once, in your own Python, if you trust the file: "
            "d = pickle.load(open(name, 'rb'), encoding='bytes'); numpy.column_stack("
            "[d[b'labels'], d[b'data']]).astype('uint8').tofile(name + '.bin') "
            "(data_batch_1 -> data_batch_1.bin, ..., test_batch -> test_batch.bin)."
            if pickled else "")
    raise FileNotFoundError(
        f"cifar10: no CIFAR-10 {split} files ({', '.join(_FILES[split])}) in {root} or its "
        f"cifar-10-batches-bin/ or cifar10/ subfolders.{hint} {_HOW_TO_GET}"
    )


@checked("cifar10", split=a_split, data_dir=a_folder)
def cifar10(split: str = "train", data_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10 as `(x, y)`: float32 NHWC images `(N, 32, 32, 3)` in [0, 1], int32 labels.

    **Arguments:**
    - `split`: `"train"` (50,000 images from the five data batches) or `"test"` (10,000).
    - `data_dir`: the folder with the binary batch files (see `help(fnn.datasets.cifar)`).

    Class names are in `CIFAR10_CLASSES`.
    """
    folder = _folder(data_dir, split)
    parts = [read_cifar_batch(os.path.join(folder, name)) for name in _FILES[split]]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    return images.astype(np.float32) / np.float32(255.0), labels
