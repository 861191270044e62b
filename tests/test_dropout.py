"""Dropout: identity in eval, inverted scaling in train, statistics, keys."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.layers import Dropout


def test_identity_in_eval(key):
    x = jnp.arange(12.0).reshape(3, 4)
    layer = Dropout(0.5)
    params, state = layer.init(key, (4,))
    y, new_state = layer.apply(params, state, x)
    assert y is x and new_state == {}
    y, _ = layer.apply(params, state, x, key=key, train=False)
    np.testing.assert_array_equal(y, x)


def test_rate_zero_is_identity_in_train():
    x = jnp.ones((2, 3))
    y, _ = Dropout(0.0).apply({}, {}, x, train=True)  # no key needed
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_kept_fraction_and_scale(key, rate):
    """Kept fraction within 3 sigma of 1 - rate (binomial, n = 20,000); kept values scaled."""
    n = 20_000
    x = jnp.full((4, n // 4), 2.0)
    y, _ = jax.jit(lambda x, k: Dropout(rate).apply({}, {}, x, key=k, train=True))(x, key)
    y = np.asarray(y)
    kept = y != 0
    p = 1.0 - rate
    assert abs(kept.mean() - p) < 3 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(y[kept], 2.0 / (1.0 - rate), rtol=1e-6)


def test_same_key_same_mask_different_keys_differ(key):
    layer = Dropout(0.5)
    x = jnp.ones((8, 16))
    k1, k2 = jax.random.split(key)
    y1, _ = layer.apply({}, {}, x, key=k1, train=True)
    y1b, _ = layer.apply({}, {}, x, key=k1, train=True)
    y2, _ = layer.apply({}, {}, x, key=k2, train=True)
    np.testing.assert_array_equal(y1, y1b)
    assert not np.array_equal(y1, y2)


def test_gradient_is_the_mask(key):
    layer = Dropout(0.5)
    x = jnp.ones((8, 16))
    y, _ = layer.apply({}, {}, x, key=key, train=True)
    g = jax.jit(jax.grad(lambda x: layer.apply({}, {}, x, key=key, train=True)[0].sum()))(x)
    np.testing.assert_allclose(g, (np.asarray(y) != 0) / 0.5, rtol=1e-6)


def test_missing_key():
    with pytest.raises(ValueError, match=r"Dropout: train=True with rate=0.5 needs a PRNG key, "
                                         r"got key=None; call apply\(params, state, x, "
                                         r"key=jax.random.key\(0\), train=True\)"):
        Dropout(0.5).apply({}, {}, jnp.ones((2, 3)), train=True)


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match=r"Dropout: rate must be in \[0.0, 1.0\)"):
        Dropout(rate)


def test_rate_type():
    with pytest.raises(TypeError, match="Dropout: rate must be a number"):
        Dropout("0.5")


@pytest.mark.parametrize("train", [True, False])
def test_numpy_float64_input_gives_the_default_float_without_a_warning(train, recwarn):
    x = np.random.default_rng(0).normal(size=(4, 3))            # float64
    out, _ = Dropout(0.5).apply({}, {}, x, key=jax.random.key(0), train=train)
    assert out.dtype == jnp.float32 and not recwarn.list
    if not train:
        np.testing.assert_array_equal(out, x.astype(np.float32))


def test_a_list_is_refused_in_both_modes():
    for train in (True, False):
        with pytest.raises(TypeError, match=r"^Dropout: expected an array .* got a list"):
            Dropout(0.5).apply({}, {}, [1.0, 2.0], key=jax.random.key(0), train=train)
