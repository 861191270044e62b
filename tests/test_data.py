"""Batching: the three modes, every example once per epoch, key-only shuffles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import data


def _xy(n=10):
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3)
    y = np.arange(n, dtype=np.int32)
    return x, y


@pytest.mark.parametrize(
    "batch_size, drop_last, sizes",
    [
        (None, False, [10]),          # batch gradient descent
        (1, False, [1] * 10),         # stochastic gradient descent
        (4, False, [4, 4, 2]),        # mini-batch with a ragged tail
        (4, True, [4, 4]),            # ... dropped
        (5, True, [5, 5]),
        (10, False, [10]),
    ],
)
def test_batches_number_and_sizes(key, batch_size, drop_last, sizes):
    x, y = _xy(10)
    got = list(data.batches(key, x, y, batch_size=batch_size, drop_last=drop_last))
    assert [len(bx) for bx, _ in got] == sizes
    assert all(len(bx) == len(by) for bx, by in got)
    assert len(got) == data.num_batches(10, batch_size, drop_last)


@pytest.mark.parametrize("batch_size", [None, 1, 3, 10])
def test_batches_every_example_once_and_pairs_stay_together(key, batch_size):
    x, y = _xy(10)
    got = list(data.batches(key, x, y, batch_size=batch_size))
    ys = np.concatenate([by for _, by in got])
    assert sorted(ys.tolist()) == list(range(10))
    for bx, by in got:  # x row i still belongs to label i
        np.testing.assert_array_equal(bx[:, 0], by * 3)


def test_batches_shuffle_depends_only_on_key():
    x, y = _xy(50)
    order = lambda k: np.concatenate([b for (b,) in data.batches(k, y, batch_size=7)])
    a, b = order(jax.random.key(1)), order(jax.random.key(1))
    c = order(jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.arange(50))  # it is shuffled
    np.testing.assert_array_equal(a, np.asarray(jax.random.permutation(jax.random.key(1), 50)))


def test_batches_without_shuffle_keeps_order_and_needs_no_key():
    x, y = _xy(7)
    got = [by for _, by in data.batches(None, x, y, batch_size=3, shuffle=False)]
    np.testing.assert_array_equal(np.concatenate(got), np.arange(7))


def test_batches_keeps_array_type(key):
    x, y = _xy(6)
    (bx, by), *_ = data.batches(key, x, jnp.asarray(y), batch_size=2)
    assert isinstance(bx, np.ndarray) and isinstance(by, jax.Array)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"batch_size": 0}, ValueError, r"batches: batch_size must be in \[1, 10\].*got 0"),
        ({"batch_size": 11}, ValueError, r"batch_size must be in \[1, 10\].*got 11"),
        ({"batch_size": 2.5}, TypeError, "batch_size must be None"),
        ({"batch_size": True}, TypeError, "batch_size must be None"),
        ({"batch_size": 2, "shuffle": "no"}, TypeError,
         r"^batches: shuffle must be True or False, got 'no'\.$"),
        ({"batch_size": 2, "drop_last": 1}, TypeError,
         r"^batches: drop_last must be True or False, got 1\.$"),
    ],
)
def test_batches_rejects_bad_batch_size(key, kwargs, exc, match):
    x, y = _xy(10)
    with pytest.raises(exc, match=match):
        data.batches(key, x, y, **kwargs)  # raised on the call, not on next()


def test_batches_rejects_mismatched_arrays_and_missing_key(key):
    x, y = _xy(10)
    with pytest.raises(ValueError, match=r"same first \(batch\) dimension.*\[10, 9\]"):
        data.batches(key, x, y[:9], batch_size=2)
    with pytest.raises(ValueError, match="at least one array"):
        data.batches(key, batch_size=2)
    with pytest.raises(ValueError, match="shuffle=True needs a key"):
        data.batches(None, x, y, batch_size=2)
    with pytest.raises(ValueError, match="empty"):
        data.batches(key, x[:0], y[:0], batch_size=2)
    with pytest.raises(TypeError, match="must be an array"):
        data.batches(key, [1, 2, 3], batch_size=2)


def test_train_val_split(key):
    x, y = _xy(20)
    (xt, yt), (xv, yv) = data.train_val_split(key, x, y, val_fraction=0.25)
    assert len(yv) == 5 and len(yt) == 15
    assert sorted(np.concatenate([yt, yv]).tolist()) == list(range(20))
    np.testing.assert_array_equal(xt[:, 0], yt * 3)
    (_, yt2), _ = data.train_val_split(key, x, y, val_fraction=0.25)
    np.testing.assert_array_equal(yt, yt2)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
            data.train_val_split(key, x, y, val_fraction=bad)


def test_epoch_batches_on_device_matches_host_order(key):
    x, y = _xy(11)
    bx, by = data.epoch_batches(key, (x, y), 3)
    assert bx.shape == (3, 3, 3) and by.shape == (3, 3)  # ragged tail of 2 dropped
    host = np.concatenate([b for (b,) in data.batches(key, y, batch_size=3, drop_last=True)])
    np.testing.assert_array_equal(np.asarray(by).reshape(-1), host)
    np.testing.assert_array_equal(np.asarray(bx)[..., 0], np.asarray(by) * 3)
    assert len(set(np.asarray(by).reshape(-1).tolist())) == 9  # no repeats
    full, = data.epoch_batches(None, (y,), None)
    np.testing.assert_array_equal(np.asarray(full), y[None])


def test_padded_batches_count_every_example_once():
    x, y = _xy(10)
    (bx, by), mask = data.padded_batches((x, y), 4)
    assert bx.shape == (3, 4, 3) and mask.shape == (3, 4)
    assert int(mask.sum()) == 10
    np.testing.assert_array_equal(np.asarray(by)[np.asarray(mask)], y)
    np.testing.assert_array_equal(np.asarray(by)[2], [8, 9, 9, 9])  # padded by repeating
    pieces = list(data.iter_padded_batches((x, y), 4))
    assert [m.tolist() for _, m in pieces][-1] == [True, True, False, False]
    np.testing.assert_array_equal(np.concatenate([np.asarray(b[1]) for b, _ in pieces]),
                                  np.asarray(by).reshape(-1))


@pytest.mark.parametrize("fn", [
    lambda a: data.epoch_batches(None, a, 2),
    lambda a: data.padded_batches(a, 2),
    lambda a: list(data.iter_padded_batches(a, 2)),
])
def test_one_bare_array_is_not_taken_for_a_tuple_of_rows(fn):
    x, _ = _xy(4)  # tuple(x) would be 4 "arrays" of 3 examples each
    with pytest.raises(TypeError, match=r"arrays must be a tuple of arrays such as \(x, y\), "
                                        r"got ndarray of shape \(4, 3\); for one array pass"):
        fn(x)
    fn((x,))  # the same array in a tuple is fine


def test_batches_hints_to_unpack_a_tuple(key):
    x, y = _xy(4)
    with pytest.raises(TypeError, match=r"argument 0 must be an array .*got tuple; unpack a "
                                        r"tuple of arrays: batches\(key, \*arrays, \.\.\.\)"):
        data.batches(key, (x, y), batch_size=2)


def test_train_val_split_takes_numpy_fractions(key):
    x, y = _xy(10)
    (_, yt), (_, yv) = data.train_val_split(key, x, y, val_fraction=np.float32(0.3))
    assert len(yv) == 3 and len(yt) == 7


@pytest.mark.parametrize("n", [0, -5, 2.5, True])
def test_num_batches_rejects_a_bad_example_count(n):
    with pytest.raises(ValueError, match=rf"num_batches: n must be a positive int .*got {n!r}"):
        data.num_batches(n, 2)


def test_num_batches_checks_drop_last():
    with pytest.raises(TypeError, match=r"num_batches: drop_last must be True or False"):
        data.num_batches(10, 3, drop_last="yes")
