"""Download the classic data sets, verified by SHA-256, written atomically.

    folder = fnn.datasets.download("mnist", "data")     # -> "data/mnist"
    x, y = fnn.datasets.mnist("train", data_dir=folder)

| name | files | into |
|---|---|---|
| `"mnist"` | the four official gzipped IDX files | `DATA_DIR/mnist/` |
| `"cifar10"` | `cifar-10-binary.tar.gz`; its six `.bin` batches extracted | `DATA_DIR/cifar10/` |

The SHA-256 digests and sizes below are those of the official files (MNIST: the
files Yann LeCun published, as mirrored by TensorFlow's and PyTorch's buckets;
CIFAR-10: Alex Krizhevsky's binary tarball). Every download is streamed to a
hidden temporary file in the target folder, hashed, and only `os.replace`d into
place when the digest matches; a file already present with the right digest is
not downloaded again. Mirrors are tried in order.
"""
from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import urllib.error
import urllib.request
from typing import NamedTuple

from fnn._atomic import atomic_file

__all__ = ["download", "RESOURCES", "DigestMismatch"]


class _File(NamedTuple):
    name: str
    sha256: str
    size: int


class _Resource(NamedTuple):
    folder: str          # subfolder of data_dir
    mirrors: tuple       # base URLs, tried in order
    files: tuple         # _File entries
    extract: tuple = ()  # member basenames to extract from a tarball (cifar10)


RESOURCES = {
    "mnist": _Resource(
        folder="mnist",
        mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/",
                 "http://yann.lecun.com/exdb/mnist/"),
        files=(
            _File("train-images-idx3-ubyte.gz",
                  "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
            _File("train-labels-idx1-ubyte.gz",
                  "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
            _File("t10k-images-idx3-ubyte.gz",
                  "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
            _File("t10k-labels-idx1-ubyte.gz",
                  "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
        ),
    ),
    "cifar10": _Resource(
        folder="cifar10",
        mirrors=("https://www.cs.toronto.edu/~kriz/",),
        files=(_File("cifar-10-binary.tar.gz",
                     "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
                     170052171),),
        extract=tuple(f"data_batch_{i}.bin" for i in range(1, 6))
        + ("test_batch.bin", "batches.meta.txt"),
    ),
}
_ALIASES = {"cifar-10": "cifar10", "cifar_10": "cifar10"}
_CHUNK = 1 << 20


class DigestMismatch(ValueError):
    """A downloaded file's SHA-256 differs from the known digest."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _fetch(url: str, dest: str, expected: _File, timeout: float) -> None:
    """Stream `url` into `dest` (atomically) if its SHA-256 is `expected.sha256`."""
    h = hashlib.sha256()
    with atomic_file(dest) as f, urllib.request.urlopen(url, timeout=timeout) as response:
        total = 0
        while chunk := response.read(_CHUNK):
            total += len(chunk)
            if total > expected.size:  # a wrong file; never fill the disk
                break
            h.update(chunk)
            f.write(chunk)
        digest = h.hexdigest()
        if total != expected.size or digest != expected.sha256:
            got = f"more than {expected.size} bytes" if total > expected.size else (
                f"{total} bytes, SHA-256 {digest}")
            raise DigestMismatch(  # atomic_file discards what was written
                f"download: {expected.name} from {url} failed verification: expected "
                f"{expected.size} bytes with SHA-256 {expected.sha256}, got {got}. The file was "
                "discarded."
            )


def _extract(archive: str, folder: str, members: tuple) -> None:
    """Copy the named members (by basename) out of a tarball; never uses extractall."""
    found = set()
    with tarfile.open(archive, "r:*") as tar:
        for member in tar:
            base = posixpath.basename(member.name)
            if base in members and member.isfile() and base not in found:
                source = tar.extractfile(member)
                with atomic_file(os.path.join(folder, base)) as f:
                    shutil.copyfileobj(source, f, _CHUNK)
                found.add(base)
    missing = sorted(set(members) - found)
    if missing:
        raise ValueError(f"download: {archive} does not contain {missing}.")


def download(name: str, data_dir=None, *, timeout: float = 60.0) -> str:
    """Download data set `name` into `data_dir/<name>/`, verify it, return that folder.

    **Arguments:**
    - `name`: `"mnist"` or `"cifar10"` (see `RESOURCES` for URLs and digests).
    - `data_dir`: the root data folder; defaults to `$FNN_DATA_DIR`.
    - `timeout`: seconds per network operation.

    **Raises** `ValueError` (a `DigestMismatch`) when a download's size or SHA-256
    differs from the official file (nothing is kept), and `ConnectionError` when
    no mirror could be reached (offline), with instructions to copy the files by hand.
    """
    key = _ALIASES.get(name, name)
    if key not in RESOURCES:
        raise ValueError(f"download: unknown data set {name!r}; known: {sorted(RESOURCES)}.")
    if data_dir is None:
        data_dir = os.environ.get("FNN_DATA_DIR")
        if not data_dir:
            raise ValueError("download: give data_dir or set the FNN_DATA_DIR environment "
                             "variable.")
    resource = RESOURCES[key]
    folder = os.path.join(os.fspath(data_dir), resource.folder)
    os.makedirs(folder, exist_ok=True)
    for file in resource.files:
        dest = os.path.join(folder, file.name)
        if os.path.isfile(dest) and _sha256(dest) == file.sha256:
            continue
        errors, mismatch = [], None
        for base in resource.mirrors:
            url = base + file.name
            try:
                _fetch(url, dest, file, timeout)
                break
            except DigestMismatch as e:
                mismatch = e
                errors.append(f"{url}: {e}")
            except (urllib.error.URLError, OSError, ValueError) as e:
                errors.append(f"{url}: {type(e).__name__}: {e}")
        else:
            if mismatch is not None:
                raise DigestMismatch(
                    f"{mismatch} Tried: {'; '.join(errors)}") from None
            raise ConnectionError(
                f"download: could not fetch {file.name} ({'; '.join(errors)}). If this machine is "
                f"offline, download {resource.mirrors[0]}{file.name} elsewhere (SHA-256 "
                f"{file.sha256}) and copy it into {folder}."
            )
    if resource.extract:
        if not all(os.path.isfile(os.path.join(folder, m)) for m in resource.extract):
            _extract(os.path.join(folder, resource.files[0].name), folder, resource.extract)
    return folder
