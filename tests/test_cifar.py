"""fnn.datasets.cifar: the CIFAR-10 binary parser on small generated files, the folder
search and its errors."""
import numpy as np
import pytest

from fnn import datasets


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



def test_a_data_dir_that_is_no_path_names_cifar10():
    with pytest.raises(TypeError, match=r"^cifar10: data_dir must be None or a folder path "
                                        r"\(a str or os.PathLike\), got 123\.$"):
        datasets.cifar10(data_dir=123)
