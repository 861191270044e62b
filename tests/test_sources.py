"""`fnn.sources`: random-access sources over files (memory-mapped `.npy` and IDX), the
per-epoch loader on grain or fnn's own iterator, and training on a file larger than
the memory limit of the process.

References: numpy indexing of the in-memory arrays, `fnn.datasets.read_idx` for IDX,
`jax.random.permutation(fold_in(key, epoch), N)` written out for the order.
"""
from __future__ import annotations

import gzip
import os
import struct
import subprocess
import sys
import textwrap

import chex
import jax
import numpy as np
import pytest

import fnn
from fnn import sources
from fnn.datasets import read_idx

KEY = jax.random.key(3)


def write_idx(path, array: np.ndarray, code: int) -> None:
    dims = struct.pack(f">{array.ndim}I", *array.shape)
    data = bytes([0, 0, code, array.ndim]) + dims + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if str(path).endswith(".gz") else data)


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    return rng.normal(size=(37, 3, 2)).astype(np.float32), rng.integers(0, 5, 37).astype(np.int32)


def test_array_source_rows_and_batches_equal_numpy_indexing(arrays):
    x, y = arrays
    src = sources.ArraySource(x, y)
    assert len(src) == 37
    idx = np.array([30, 2, 2, 17, 0])
    got = src[idx]
    np.testing.assert_array_equal(got[0], x[idx])
    np.testing.assert_array_equal(got[1], y[idx])
    np.testing.assert_array_equal(src[5][0], x[5])


def test_npy_source_is_memory_mapped_and_reads_the_files(tmp_path, arrays):
    x, y = arrays
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    src = sources.npy_source(tmp_path / "x.npy", str(tmp_path / "y.npy"))
    assert all(isinstance(a, np.memmap) for a in src.arrays)
    np.testing.assert_array_equal(src[np.arange(37)][0], x)


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_source_equals_read_idx(tmp_path, suffix):
    images = np.random.default_rng(1).integers(0, 255, (11, 4, 5)).astype(np.uint8)
    values = np.linspace(-2, 2, 11).astype(np.float32)    # big-endian float32 on disk
    write_idx(tmp_path / f"i{suffix}", images, 0x08)
    write_idx(tmp_path / f"v{suffix}", values, 0x0D)
    src = sources.idx_source(tmp_path / f"i{suffix}", tmp_path / f"v{suffix}")
    if not suffix:
        assert isinstance(src.arrays[0], np.memmap)
    idx = np.array([10, 0, 3])
    np.testing.assert_array_equal(src[idx][0], read_idx(tmp_path / f"i{suffix}")[idx])
    np.testing.assert_array_equal(src[idx][1], values[idx])


@pytest.mark.parametrize("backend", ["fnn", "grain"])
def test_loader_batches_follow_the_epoch_permutation(arrays, backend):
    x, y = arrays
    train = sources.loader(sources.ArraySource(x, y), 8, key=KEY, backend=backend)
    for epoch in (0, 1):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), 37))
        batches = list(train(epoch))
        assert len(batches) == 37 // 8
        for b, (bx, by) in enumerate(batches):
            np.testing.assert_array_equal(bx, x[order[b * 8:(b + 1) * 8]])
            np.testing.assert_array_equal(by, y[order[b * 8:(b + 1) * 8]])
    assert not np.array_equal(list(train(0))[0][1], list(train(1))[0][1])


@pytest.mark.parametrize("backend", ["fnn", "grain"])
def test_loader_state_resumes_mid_epoch(arrays, backend):
    train = sources.loader(sources.ArraySource(*arrays), 5, key=KEY, backend=backend)
    it = iter(train(2))
    next(it), next(it)
    state = it.get_state()
    rest = [b[1] for b in it]
    again = iter(train(2))
    again.set_state(state)
    chex.assert_trees_all_equal(rest, [b[1] for b in again])


def test_loader_without_shuffle_keeps_the_order_and_the_remainder(arrays):
    x, y = arrays
    batches = list(sources.loader(sources.ArraySource(x, y), 10, key=None, shuffle=False,
                                  drop_remainder=False, backend="fnn")(0))
    assert [len(b[1]) for b in batches] == [10, 10, 10, 7]
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), y)


def test_fit_on_a_loader_equals_fit_on_the_same_batches_as_a_callable(arrays):
    x, y = arrays
    x = x.reshape(37, 6)
    src = sources.ArraySource(x, y)
    model, opt, loss = fnn.models.mlp([4, 5]), fnn.optim.sgd(0.1), fnn.losses.softmax_cross_entropy

    def by_hand(epoch):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(KEY, epoch), 37))
        return [(x[order[b * 8:(b + 1) * 8]], y[order[b * 8:(b + 1) * 8]]) for b in range(4)]

    runs = [fnn.train.fit(model, opt, loss, data, epochs=2, batch_size=8, key=KEY,
                          progress=False)
            for data in (sources.loader(src, 8, key=KEY, backend="grain"), by_hand)]
    chex.assert_trees_all_equal(runs[0][0].params, runs[1][0].params)
    assert runs[0][1] == runs[1][1]


# --- larger than memory ------------------------------------------------------------------
#
# RLIMIT_DATA caps the process's private writable memory (heap, anonymous mmaps, thread
# stacks), which is where a copy of the data would go; file pages that np.memmap maps
# read-only do not count. RLIMIT_AS is unusable: XLA reserves gigabytes of address
# space. Measured on this machine: importing jax and fnn and training this MLP works
# from ~380 MiB (fnn backend) and ~430 MiB (grain, with two read threads); 300 MiB
# fails. The file is 512 MiB, the limit 450 MiB.

LIMIT_MB, ROWS, FEATURES = 450, 2**19, 256          # 2**19 * 256 * 4 bytes = 512 MiB

CHILD = textwrap.dedent("""
    import resource, sys
    limit = int(sys.argv[2]) * 2**20
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    import jax, numpy as np, fnn
    folder, mode = sys.argv[1], sys.argv[3]
    if mode == "load":          # the control: the whole file in memory
        x = np.load(folder + "/x.npy")
        print("loaded", x.shape)
        sys.exit(0)
    src = fnn.sources.npy_source(folder + "/x.npy", folder + "/y.npy")
    train = fnn.sources.loader(src, 512, key=jax.random.key(0), backend=mode)
    ts, history = fnn.train.fit(fnn.models.mlp([16, 2]), fnn.optim.sgd(0.05),
                                fnn.losses.softmax_cross_entropy, train, epochs=1,
                                batch_size=512, key=jax.random.key(1), progress=False)
    print("trained", history["loss"][0], history["accuracy"][0])
""")


def test_training_over_a_file_larger_than_the_memory_limit(tmp_path):
    x = np.lib.format.open_memmap(tmp_path / "x.npy", "w+", np.float32, (ROWS, FEATURES))
    chunk = 2**15
    pattern = np.random.default_rng(0).normal(size=(chunk, FEATURES)).astype(np.float32)
    labels = (pattern[:, 0] > 0).astype(np.int32)        # learnable from column 0
    for i in range(0, ROWS, chunk):
        x[i:i + chunk] = pattern
    x.flush()
    del x
    np.save(tmp_path / "y.npy", np.tile(labels, ROWS // chunk))
    assert os.path.getsize(tmp_path / "x.npy") > LIMIT_MB * 2**20
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=os.getcwd())

    def child(mode):
        return subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(LIMIT_MB), mode],
                              capture_output=True, text=True, timeout=240, env=env)

    control = child("load")
    assert control.returncode != 0 and "MemoryError" in control.stderr, control.stdout
    run = child("fnn")
    assert run.returncode == 0, run.stderr[-3000:]
    loss, accuracy = map(float, run.stdout.split()[1:3])
    assert np.isfinite(loss) and accuracy > 0.9       # one pass over 1,024 batches


BAD_INPUT = [
    ("no arrays", lambda: sources.ArraySource(), ValueError, "expected at least one array"),
    ("not an array", lambda: sources.ArraySource([1, 2]), TypeError,
     "argument 0 must be a numpy array"),
    ("lengths differ", lambda: sources.ArraySource(np.zeros(3), np.zeros(4)), ValueError,
     r"same first dimension, got \[3, 4\]"),
    ("npy path", lambda: sources.npy_source(3), TypeError, "npy_source: paths must be .npy"),
    ("idx path", lambda: sources.open_idx(None), TypeError, "open_idx: path must be an IDX"),
    ("loader source", lambda: sources.loader(3, 4, key=KEY), TypeError,
     "loader: source must be a random-access source"),
    ("loader batch", lambda: sources.loader(sources.ArraySource(np.zeros(4)), 0, key=KEY),
     ValueError, "loader: batch_size must be a positive int"),
    ("loader too big", lambda: sources.loader(sources.ArraySource(np.zeros(4)), 5, key=KEY),
     ValueError, r"batch_size=5 is larger than the source \(4 examples\)"),
    ("loader backend", lambda: sources.loader(sources.ArraySource(np.zeros(4)), 2, key=KEY,
                                              backend="tf"),
     ValueError, r"backend must be one of \['auto', 'grain', 'fnn'\], got 'tf'"),
    ("loader key", lambda: sources.loader(sources.ArraySource(np.zeros(4)), 2, key=None),
     ValueError, "loader: .*key"),
    ("loader shuffle", lambda: sources.loader(sources.ArraySource(np.zeros(4)), 2, key=KEY,
                                              shuffle="yes"),
     TypeError, "loader: shuffle must be"),
]


@pytest.mark.parametrize("make, error, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("content, match", [
    (b"\x00\x00\x07\x01\x00\x00\x00\x01x", "not an IDX file: magic number 0x00000701"),
    (b"\x00\x00\x08\x02\x00\x00", "truncated inside its IDX header"),
    (b"\x00\x00\x08\x01\x00\x00\x00\x05ab", r"holds 10 bytes, its IDX header \(shape \(5,\)"),
])
def test_bad_idx_files(tmp_path, content, match):
    (tmp_path / "f").write_bytes(content)
    with pytest.raises(ValueError, match="open_idx: .*" + match):
        sources.open_idx(tmp_path / "f")
