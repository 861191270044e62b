"""fnn.datasets.download: verified, atomic downloads (file:// URLs and a patched opener;
no network)."""
import hashlib
import importlib
import io
import os
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest

from fnn import datasets

# `fnn.datasets.download` is the re-exported function; this is the module.
dl = importlib.import_module("fnn.datasets.download")


def _records(labels) -> bytes:
    """CIFAR-10 binary records: one label byte, then 3,072 image bytes (zeros here)."""
    return b"".join(bytes([label]) + bytes(3072) for label in labels)


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
    bins = {f"data_batch_{i}.bin": _records([i, i + 1]) for i in range(1, 6)}
    bins["test_batch.bin"] = _records([7, 8])
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
