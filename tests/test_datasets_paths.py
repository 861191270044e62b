"""Where MNIST and Fashion-MNIST are found (data_dir, $FNN_DATA_DIR, Debian's folder,
Keras's cache, torchvision's layout), what a run says it read, and the real
Fashion-MNIST files when installed. The core tests write tiny IDX/npz files in tmp_path."""
import gzip
import os
import struct

import numpy as np
import pytest

from fnn import datasets
from fnn.datasets import locate

REAL = "/usr/share/datasets/fashion-mnist"
SIZES = {"train": 6, "test": 4}
STEMS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def write_idx(path, array: np.ndarray, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape)
    raw = header + array.astype(">u1").tobytes()
    with open(str(path) + (".gz" if gz else ""), "wb") as f:
        f.write(gzip.compress(raw) if gz else raw)


def make_idx_folder(folder, seed=0, gz=True) -> dict:
    """Four IDX files in `folder` (created); returns split -> (images, labels)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in SIZES.items():
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(os.path.join(folder, STEMS[split][0]), images, gz)
        write_idx(os.path.join(folder, STEMS[split][1]), labels, gz)
        arrays[split] = images, labels
    return arrays


def assert_split(pair, images, labels):
    x, y = pair
    assert x.shape == (len(labels), 28, 28, 1) and x.dtype == np.float32
    np.testing.assert_allclose(x[..., 0] * 255.0, images, atol=1e-4)   # pixels / 255
    np.testing.assert_array_equal(y, labels)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """No $FNN_DATA_DIR, Debian's folder and Keras's home inside tmp_path."""
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    monkeypatch.setattr(locate, "SYSTEM_DIR", str(tmp_path / "system"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    return tmp_path


@pytest.mark.parametrize("sub", ["", "fashion-mnist", "FashionMNIST/raw"])
def test_fashion_mnist_reads_data_dir_its_subfolder_and_torchvision_layout(places, sub):
    arrays = make_idx_folder(places / "data" / sub)
    for split in ("train", "test"):
        assert_split(datasets.fashion_mnist(split, data_dir=places / "data"), *arrays[split])
    described = datasets.fashion_mnist_files(places / "data", "test")
    assert described == (f"Fashion-MNIST, IDX files in {places / 'data' / sub}".rstrip("/")
                         + " (data_dir): t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")


def test_the_search_order_is_env_then_debian_then_keras(places, monkeypatch):
    keras = make_idx_folder(places / "keras" / "datasets" / "fashion-mnist", seed=1)
    assert_split(datasets.fashion_mnist("test"), *keras["test"])
    assert "(Keras's cache)" in datasets.fashion_mnist_files()
    debian = make_idx_folder(places / "system" / "fashion-mnist", seed=2, gz=False)
    assert_split(datasets.fashion_mnist("test"), *debian["test"])
    assert datasets.fashion_mnist_files().endswith(
        "(the Debian package's location): train-images-idx3-ubyte, train-labels-idx1-ubyte")
    env = make_idx_folder(places / "env" / "fashion-mnist", seed=3)
    monkeypatch.setenv("FNN_DATA_DIR", str(places / "env"))
    assert_split(datasets.fashion_mnist("train"), *env["train"])
    assert "($FNN_DATA_DIR)" in datasets.fashion_mnist_files()


def test_mnist_reads_keras_npz_without_pickle(places):
    rng = np.random.default_rng(0)
    arrays = {s: (rng.integers(0, 256, (n, 28, 28), dtype=np.uint8),
                  rng.integers(0, 10, n, dtype=np.uint8)) for s, n in SIZES.items()}
    os.makedirs(places / "keras" / "datasets")
    np.savez(places / "keras" / "datasets" / "mnist.npz",
             **{f"{xy}_{s}": arrays[s][i] for s in SIZES for i, xy in enumerate("xy")})
    for split in SIZES:
        assert_split(datasets.mnist(split), *arrays[split])
    assert datasets.mnist_source() == "npz:" + str(places / "keras" / "datasets" / "mnist.npz")
    assert datasets.mnist_files().startswith("MNIST, Keras archive in")


def test_mnist_npz_with_objects_is_refused_not_unpickled(places):
    folder = places / "data"
    os.makedirs(folder)
    np.savez(folder / "mnist.npz", x_train=np.array([{"evil": 1}], dtype=object),
             y_train=np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match=r"mnist.npz is not a plain NumPy archive .*without "
                                         r"pickle"):
        datasets.mnist("train", data_dir=folder)
    np.savez(folder / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.raises(ValueError, match=r"lacks the array 'y_train'"):
        datasets.mnist("train", data_dir=folder)


def test_mnist_torchvision_layout_and_debian_folder(places):
    arrays = make_idx_folder(places / "tv" / "MNIST" / "raw", gz=False)
    assert_split(datasets.mnist("train", data_dir=places / "tv"), *arrays["train"])
    debian = make_idx_folder(places / "system" / "mnist", seed=5)
    assert_split(datasets.mnist("test"), *debian["test"])
    assert datasets.mnist_source() == "idx:" + str(places / "system" / "mnist")


def test_the_registry_says_which_set_and_files_a_run_reads(places):
    make_idx_folder(places / "fm")
    entry = datasets.REGISTRY["fashion-mnist"]
    (x, y), (xt, yt) = entry.load(None, str(places / "fm"))
    assert x.shape == (6, 28, 28, 1) and xt.shape == (4, 28, 28, 1)
    assert entry.source(str(places / "fm"), 0) == (
        f"Fashion-MNIST, IDX files in {places / 'fm'} (data_dir): train-images-idx3-ubyte.gz, "
        "train-labels-idx1-ubyte.gz; t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz")
    assert entry.num_classes == 10


def test_nothing_found_says_where_it_looked_and_how_to_get_the_files(places):
    with pytest.raises(FileNotFoundError, match=r"^fashion_mnist: no Fashion-MNIST train files "
                                                r"found in \$FNN_DATA_DIR, .*zalandoresearch"):
        datasets.fashion_mnist()
    with pytest.raises(FileNotFoundError, match=r"^fashion_mnist: no Fashion-MNIST test files "
                                                r"\(t10k-images-idx3-ubyte and .*FashionMNIST/raw"):
        datasets.fashion_mnist("test", data_dir=places)


def test_cifar10_pickled_version_is_refused_with_a_conversion_recipe(places):
    os.makedirs(places / "cifar-10-batches-py")
    with pytest.raises(FileNotFoundError, match=r"never reads .*column_stack.*tofile"):
        datasets.cifar10("train", data_dir=places)


@pytest.mark.skipif(not os.path.isdir(REAL), reason=f"Fashion-MNIST is not installed in {REAL} "
                    "(Debian's fashion-mnist package); the tests above use small files")
def test_the_installed_fashion_mnist_parses_to_60000_and_10000(monkeypatch):
    monkeypatch.delenv("FNN_DATA_DIR", raising=False)
    for split, n in (("train", 60_000), ("test", 10_000)):
        x, y = datasets.fashion_mnist(split)
        assert x.shape == (n, 28, 28, 1) and x.dtype == np.float32
        np.testing.assert_array_equal(np.bincount(y), [n // 10] * 10)   # balanced classes
        assert 0.0 <= x.min() and x.max() == 1.0


BAD_INPUT = [
    ("split", lambda: datasets.fashion_mnist("val"), ValueError,
     r"^fashion_mnist: split must be 'train' or 'test', got 'val'"),
    ("data_dir", lambda: datasets.fashion_mnist(data_dir=3), TypeError,
     r"^fashion_mnist: data_dir must be None or a folder path"),
    ("files split", lambda: datasets.fashion_mnist_files(split="dev"), ValueError,
     r"^fashion_mnist: split must be 'train' or 'test'"),
    ("mnist_files data_dir", lambda: datasets.mnist_files(data_dir=1.5), TypeError,
     r"^mnist: data_dir must be None or a folder path"),
]


@pytest.mark.parametrize("trigger, exc, match", [pytest.param(*c[1:], id=c[0])
                                                 for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
