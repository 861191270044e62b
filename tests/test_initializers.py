"""Initialisers: empirical std of large draws against the definitions."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import initializers as init


@pytest.mark.parametrize(
    "fn, shape, expected_std",
    [
        (init.small_random, (300, 200), 0.01),
        (init.normal(0.3), (300, 200), 0.3),
        (init.lecun_normal, (400, 200), 1 / math.sqrt(400)),
        (init.he_normal, (400, 200), math.sqrt(2 / 400)),
        (init.he_normal, (3, 3, 64, 100), math.sqrt(2 / (3 * 3 * 64))),  # conv: fan_in = kh·kw·cin
        (init.he_uniform, (400, 200), math.sqrt(2 / 400)),
        (init.glorot_normal, (400, 200), math.sqrt(2 / 600)),
        (init.glorot_uniform, (400, 200), math.sqrt(2 / 600)),
        (init.lecun_normal, (5, 5, 16, 120), 1 / math.sqrt(5 * 5 * 16)),
    ],
)
def test_std_of_large_draw(fn, shape, expected_std, key):
    w = np.asarray(fn(key, shape), np.float64)
    assert w.shape == shape and w.dtype == np.float64
    # 60k+ samples: the std estimate is within ~1 % (3σ) of the truth.
    assert abs(w.std() / expected_std - 1) < 0.03
    assert abs(w.mean()) < 4 * expected_std / math.sqrt(w.size)


def test_uniform_bounds(key):
    w = init.he_uniform(key, (100, 50))
    assert float(jnp.max(jnp.abs(w))) <= math.sqrt(6 / 100)


def test_fan_in_is_product_of_all_but_last_axis():
    assert init.fan_in_fan_out((3, 3, 8, 16)) == (72, 144)
    assert init.fan_in_fan_out((10, 5)) == (10, 5)


def test_constants_and_zero_biases(key):
    np.testing.assert_array_equal(init.zeros(key, (3,)), 0)
    np.testing.assert_array_equal(init.ones(key, (2, 2)), 1)
    np.testing.assert_array_equal(init.constant(0.5)(key, (4,)), 0.5)
    params, _ = fnn.layers.Dense(7).init(key, (5,))
    np.testing.assert_array_equal(params["b"], np.zeros(7))


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (3, 3, 4, 36)])
def test_orthogonal(shape, key):
    w = np.asarray(init.orthogonal(key, shape), np.float64).reshape(-1, shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)


def test_dtype_respected(key):
    assert init.he_normal(key, (4, 4), jnp.bfloat16).dtype == jnp.bfloat16


def test_same_key_same_draw_and_different_keys_differ():
    a = init.he_normal(jax.random.key(1), (10, 10))
    b = init.he_normal(jax.random.key(1), (10, 10))
    c = init.he_normal(jax.random.key(2), (10, 10))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_names_and_values():
    with pytest.raises(ValueError, match="unknown initializer 'he'"):
        init.get("he")
    with pytest.raises(ValueError, match="Dense: .*unknown initializer 'glorot'"):
        fnn.layers.Dense(3, w_init="glorot")
    with pytest.raises(ValueError, match="normal: stddev must be >= 0.0, got -1.0"):
        init.normal(-1.0)
    assert init.get("he_normal") is init.he_normal
