"""per_example_grads equals a loop of single-example jax.grad calls."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
import fnn.losses
from fnn.per_example import per_example_grad_norms, per_example_grads

MODEL = fnn.serial(fnn.layers.Dense(4), fnn.tanh, fnn.layers.Dense(3))


def _setup(key):
    kx, kp = jax.random.split(key)
    params, state = MODEL.init(kp, (2,))
    x = jax.random.normal(kx, (5, 2))
    y = jnp.array([0, 2, 1, 1, 0])

    def loss_fn(p, x, y):
        return fnn.losses.softmax_cross_entropy(MODEL.apply(p, state, x)[0], y)

    return loss_fn, params, x, y


def test_equals_loop_of_single_example_grads(key):
    loss_fn, params, x, y = _setup(key)
    got = per_example_grads(loss_fn, params, x, y)
    single = jax.jit(jax.grad(loss_fn))  # reference: one example at a time
    for i in range(x.shape[0]):
        want = single(params, x[i:i + 1], y[i:i + 1])
        jax.tree.map(lambda g, w, i=i: np.testing.assert_allclose(g[i], w, rtol=1e-5, atol=1e-6),
                     got, want)


def test_mean_equals_batch_gradient(key):
    loss_fn, params, x, y = _setup(key)
    got = jax.tree.map(lambda g: jnp.mean(g, axis=0), per_example_grads(loss_fn, params, x, y))
    want = jax.grad(loss_fn)(params, x, y)
    jax.tree.map(lambda g, w: np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-6), got, want)


def test_top_level_name_and_shapes(key):
    loss_fn, params, x, y = _setup(key)
    got = jax.jit(fnn.per_example_grads, static_argnums=0)(loss_fn, params, x, y)
    assert jax.tree.map(jnp.shape, got) == jax.tree.map(lambda p: (5, *p.shape), params)


def test_norms_match_manual(key):
    loss_fn, params, x, y = _setup(key)
    norms = per_example_grad_norms(loss_fn, params, x, y)
    single = jax.jit(jax.grad(loss_fn))
    want = [np.sqrt(sum(float(np.sum(np.square(g))) for g in jax.tree.leaves(
        single(params, x[i:i + 1], y[i:i + 1])))) for i in range(5)]
    np.testing.assert_allclose(norms, want, rtol=1e-5)


def test_linear_regression_closed_form():
    # loss = (w·x - y)^2 -> per-example grad 2 (w·x - y) x
    w = jnp.array([1.0, -2.0])
    x = jnp.array([[1.0, 0.0], [0.0, 1.0], [2.0, 3.0]])
    y = jnp.array([0.0, 1.0, -1.0])
    g = per_example_grads(lambda w, x, y: jnp.mean((x @ w - y) ** 2), w, x, y)
    want = 2.0 * (x @ w - y)[:, None] * x
    np.testing.assert_allclose(g, want, rtol=1e-6)


def test_mismatched_batch_raises():
    with pytest.raises(ValueError, match="per_example_grads: every batch array needs the same "
                                         "leading.*\\(3, 2\\), \\(4,\\)"):
        per_example_grads(lambda p, x, y: jnp.sum(p), jnp.ones(2), jnp.ones((3, 2)), jnp.ones(4))
    with pytest.raises(ValueError, match="per_example_grads: expected at least one batched"):
        per_example_grads(lambda p: jnp.sum(p), jnp.ones(2))


def test_lists_are_batches_and_a_non_scalar_loss_is_named():
    def loss_fn(p, x, y):
        return jnp.mean((x @ p["w"] - y) ** 2)

    p = {"w": jnp.array([1.0, -2.0, 0.5])}
    x, y = [[1.0, 2.0, 3.0], [0.5, 0.0, -1.0]], [1.0, 2.0]
    got = fnn.per_example_grads(loss_fn, p, x, y)["w"]
    xa, ya = np.array(x), np.array(y)
    want = 2 * (xa @ np.array([1.0, -2.0, 0.5]) - ya)[:, None] * xa   # d/dw (x·w − y)²
    np.testing.assert_allclose(got, want, rtol=1e-6)
    with pytest.raises(ValueError, match=r"per_example_grads: loss_fn must return a scalar .*"
                                         r"got shape \(1, 3\) for one example"):
        fnn.per_example_grads(lambda p, x: (x @ p["w"])[:, None] * jnp.ones((1, 3)), p, xa)


def test_norms_of_an_empty_batch_and_of_params_without_leaves():
    """An empty batch raised ZeroDivisionError; params {} gave a scalar 0 instead of (N,)."""
    w = jnp.array([1.0, -2.0])
    norms = per_example_grad_norms(lambda w, x: jnp.sum(x @ w), w, jnp.ones((0, 2)))
    assert norms.shape == (0,)
    zeros = per_example_grad_norms(lambda p, x: jnp.sum(x), {}, jnp.ones((3, 2)))
    np.testing.assert_array_equal(zeros, np.zeros(3))


def test_bad_params_batch_and_loss_outputs_are_named():
    """These were raw JAX errors (int leaves, int losses, None in the batch) or a tuple
    reported as 'got shape (2,)'."""
    x = jnp.ones((3, 2))
    with pytest.raises(TypeError, match=r"per_example_grads: params must be a pytree of "
                                        r"floating arrays .*non-floating leaves: \['n'\]"):
        per_example_grads(lambda p, x: jnp.sum(x * p["n"]), {"n": jnp.array(2)}, x)
    w = jnp.array([1.0, -2.0])
    with pytest.raises(TypeError, match="per_example_grads: batch argument 1 must be an array "
                                        "with a leading batch axis, got None"):
        per_example_grads(lambda w, x, y: jnp.sum(x @ w), w, x, None)
    with pytest.raises(TypeError, match="per_example_grads: loss_fn must return a "
                                        "floating-point scalar, got dtype int"):
        per_example_grads(lambda w, x: jnp.sum(x @ w > 0), w, x)
    with pytest.raises(TypeError, match="per_example_grads: loss_fn must return a scalar array "
                                        r"\(the loss of the batch\), got a tuple"):
        per_example_grads(lambda w, x: (jnp.sum(x @ w), 1.0), w, x)
