"""DropPath (stochastic depth): whole examples dropped, the kept fraction within 3σ, the
1/(1 − rate) scale, identity in eval, the key rules of Dropout, and its bad-input rows."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import layers as L


def test_identity_in_eval_without_a_key():
    x = jnp.arange(24.0).reshape(4, 2, 3)
    y, state = L.DropPath(0.7).apply({}, {}, x)
    np.testing.assert_array_equal(y, x)
    assert state == {}


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.8])
def test_whole_examples_dropped_kept_fraction_within_3_sigma(key, rate):
    n = 4000
    x = jnp.asarray(np.random.default_rng(0).uniform(1.0, 2.0, (n, 3, 2, 2)), jnp.float32)
    y, _ = jax.jit(lambda x, k: L.DropPath(rate).apply({}, {}, x, key=k, train=True))(x, key)
    y = np.asarray(y)
    kept = np.all(y != 0, axis=(1, 2, 3))
    dropped = np.all(y == 0, axis=(1, 2, 3))
    assert np.all(kept | dropped)                 # per example: all or nothing
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)
    sigma = np.sqrt(rate * (1 - rate) / n)
    assert abs(kept.mean() - (1 - rate)) < 3 * sigma


def test_same_key_same_mask_and_gradient_is_the_mask(key):
    x = jnp.ones((64, 5))
    layer = L.DropPath(0.5)
    a, _ = layer.apply({}, {}, x, key=key, train=True)
    b, _ = layer.apply({}, {}, x, key=key, train=True)
    c, _ = layer.apply({}, {}, x, key=jax.random.fold_in(key, 1), train=True)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    g = jax.grad(lambda x: jnp.sum(layer.apply({}, {}, x, key=key, train=True)[0]))(x)
    np.testing.assert_array_equal(g, a)   # x = 1: the output is mask / (1 − rate)


def test_in_a_residual_block_a_dropped_example_is_the_shortcut(key):
    block = fnn.residual(fnn.serial(L.Dense(4), fnn.relu, L.DropPath(0.5)))
    x = jnp.asarray(np.random.default_rng(1).normal(size=(32, 4)), jnp.float32)
    params, state = block.init(key, (4,))
    y, _ = block.apply(params, state, x, key=key, train=True)
    same = np.all(np.asarray(y) == np.asarray(x), axis=1)
    assert 0 < same.sum() < 32
    z, _ = block.apply(params, state, x)   # eval: the whole block
    assert not np.any(np.all(np.asarray(z) == np.asarray(x), axis=1) & ~same)


def test_rate_zero_is_identity_in_train():
    x = jnp.ones((3, 2))
    y, _ = L.DropPath(0.0).apply({}, {}, x, train=True)
    np.testing.assert_array_equal(y, x)


BAD_INPUT = [
    (lambda: L.DropPath(1.0), ValueError, r"^DropPath: rate must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda: L.DropPath(-0.1), ValueError, r"^DropPath: rate must be in \[0\.0, 1\.0\)"),
    (lambda: L.DropPath("0.1"), TypeError, r"^DropPath: rate must be a number, got '0\.1'"),
    (lambda: L.DropPath(0.5).apply({}, {}, jnp.ones((2, 3)), train=True), ValueError,
     r"^DropPath: train=True with rate=0\.5 needs a PRNG key, got key=None"),
    (lambda: L.DropPath(0.5).apply({}, {}, jnp.ones((2, 3)), key=3, train=True), TypeError,
     r"^DropPath: key must be a PRNG key"),
    (lambda: L.DropPath(0.5).apply({}, {}, jnp.ones((2, 3), jnp.int32)), TypeError,
     r"^DropPath: expected a floating-point input, got dtype int32"),
    (lambda: L.DropPath(0.5).apply({}, {}, jnp.ones((2, 3)), train="yes"), TypeError,
     r"^DropPath: train must be a Python bool, got 'yes'"),
    (lambda: L.DropPath(0.5).apply({}, {}, jnp.float32(1.0)), ValueError,
     r"^DropPath: expected an input of rank >= 1 \(N, \.\.\.\), got shape \(\)"),
    (lambda: L.DropPath(0.5).init(None, 3), TypeError, r"^DropPath: input_shape must be a tuple"),
]


@pytest.mark.parametrize("trigger, error, match", BAD_INPUT)
def test_bad_input(trigger, error, match):
    with pytest.raises(error, match=match):
        trigger()
