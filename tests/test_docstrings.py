"""Docstring cross-references lead somewhere a user can open (issue 29, point 8).

`help(fnn.datasets.mnist)` shows the function, which shadows its module, so "see the
module docstring" led nowhere. Every public docstring now names what it refers to
(`help(fnn.layers.recurrent)`), and every `fnn.a.b` it mentions resolves by attribute
access from `fnn` (`help(fnn.x)` to a module, not to a function that shadows it).
"""
import gzip
import importlib
import inspect
import pkgutil
import re
import struct
import types

import numpy as np
import pytest

import fnn


def _public_docstrings():
    names = {"fnn"} | {info.name for info in pkgutil.walk_packages(fnn.__path__, "fnn.")}
    for name in sorted(n for n in names if not any(p.startswith("_") for p in n.split("."))):
        module = importlib.import_module(name)
        yield name, inspect.getdoc(module) or ""
        for attr in getattr(module, "__all__", ()):
            obj = getattr(module, attr)
            if isinstance(obj, (types.FunctionType, type)) or callable(obj):
                yield f"{name}.{attr}", inspect.getdoc(obj) or ""


def _resolve(dotted: str):
    obj = fnn
    for part in dotted.split(".")[1:]:
        obj = getattr(obj, part)
    return obj


DOCS = dict(_public_docstrings())


@pytest.mark.parametrize("where", sorted(DOCS))
def test_cross_references_resolve(where):
    doc = DOCS[where]
    assert not re.search(r"the module doc", doc), f"{where}: says 'the module docstring'"
    for ref in re.findall(r"\bfnn(?:\.[A-Za-z_]\w*)+", doc):
        _resolve(ref)   # AttributeError names the reference that leads nowhere
    for ref in re.findall(r"help\((fnn(?:\.\w+)*)\)", doc):
        assert isinstance(_resolve(ref), types.ModuleType), f"{where}: help({ref}) is no module"


def _idx(path, array: np.ndarray, code: int = 0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(">u1").tobytes())


def test_mnist_reads_a_fashion_mnist_folder_as_its_docstring_says(tmp_path):
    assert "Fashion-MNIST" in fnn.datasets.mnist.__doc__
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 28, 28), dtype=np.uint8)
    labels = np.array([9, 0, 3, 7, 1, 5], np.uint8)   # T-shirt ... ankle boot: ids 0..9
    _idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    x, y = fnn.datasets.mnist("test", data_dir=str(tmp_path))
    assert x.shape == (6, 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[..., 0], images.astype(np.float32) / np.float32(255))
    np.testing.assert_array_equal(y, labels)
