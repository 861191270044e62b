"""Gradient-tree helpers `fnn.optim.global_norm` and `clip_tree_by_global_norm` (issue 29,
point 4) against numpy float64, alone and under `vmap` (per-example clipping)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import optim


def _tree(seed, lead=()):
    rng = np.random.default_rng(seed)
    return {"dense": {"w": rng.normal(size=(*lead, 4, 3)), "b": rng.normal(size=(*lead, 3))},
            "scale": [rng.normal(size=(*lead, 5)) * 3.0]}


def _np_norm(tree):
    return np.sqrt(sum(np.sum(np.asarray(x, np.float64) ** 2) for x in jax.tree.leaves(tree)))


def _f32(tree):
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), tree)


def test_global_norm_is_float64_reference():
    tree = _tree(0)
    got = optim.global_norm(_f32(tree))
    assert got.dtype == jnp.float32 and got.shape == ()
    np.testing.assert_allclose(float(got), _np_norm(tree), rtol=1e-6)
    assert float(optim.global_norm({})) == 0.0


def test_global_norm_of_half_precision_does_not_overflow():
    tree = {"w": jnp.full((100,), 300.0, jnp.float16)}   # Σx² = 9e6 > float16's 65504
    np.testing.assert_allclose(float(optim.global_norm(tree)), 3000.0, rtol=1e-6)


@pytest.mark.parametrize("max_norm", [0.5, 2.0, 100.0])
def test_clip_tree_by_global_norm_is_float64_reference(max_norm):
    tree = _tree(1)
    n = _np_norm(tree)
    want = jax.tree.map(lambda x: x * min(1.0, max_norm / n), tree)
    got = optim.clip_tree_by_global_norm(_f32(tree), max_norm)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        assert g.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(g), w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(float(optim.global_norm(got)), min(n, max_norm), rtol=1e-6)


def test_clip_keeps_zero_and_dtypes():
    zero = {"w": jnp.zeros((3,), jnp.bfloat16)}
    out = optim.clip_tree_by_global_norm(zero, 1.0)
    assert out["w"].dtype == jnp.bfloat16 and not np.any(np.asarray(out["w"], np.float32))


def test_under_vmap_each_example_is_clipped_by_its_own_norm():
    batch = _tree(2, lead=(6,))
    norms = jax.vmap(optim.global_norm)(_f32(batch))
    want_norms = [_np_norm(jax.tree.map(lambda x, i=i: x[i], batch)) for i in range(6)]
    np.testing.assert_allclose(np.asarray(norms), want_norms, rtol=1e-6)

    clipped = jax.jit(jax.vmap(lambda t: optim.clip_tree_by_global_norm(t, 4.0)))(_f32(batch))
    for i, n in enumerate(want_norms):
        want = jax.tree.map(lambda x, i=i, n=n: x[i] * min(1.0, 4.0 / n), batch)
        got = jax.tree.map(lambda x, i=i: x[i], clipped)
        for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(np.asarray(g), w, rtol=1e-6, atol=1e-7)


def test_per_example_grad_norms_agree_with_vmapped_global_norm(key):
    model = fnn.layers.Dense(3)
    params, state = model.init(key, (4,))
    x = jax.random.normal(key, (5, 4))
    y = jnp.array([0, 1, 2, 0, 1])

    def loss_fn(p, x, y):
        return fnn.losses.softmax_cross_entropy(model.apply(p, state, x)[0], y)

    g = fnn.per_example_grads(loss_fn, params, x, y)
    np.testing.assert_allclose(jax.vmap(optim.global_norm)(g),
                               fnn.per_example.per_example_grad_norms(loss_fn, params, x, y),
                               rtol=1e-6)


def test_clip_by_global_norm_uses_the_tree_function():
    """The wrapper's update equals sgd(1) on clip_tree_by_global_norm's output, bit for bit."""
    params = _f32({"w": np.zeros((4, 3)), "b": np.zeros(3)})
    grads = _f32({"w": np.full((4, 3), 2.0), "b": np.arange(3.0)})
    opt = optim.clip_by_global_norm(optim.sgd(1.0), 1.5)
    _, new = opt.update(opt.init(params), grads)
    clipped = optim.clip_tree_by_global_norm(grads, 1.5)
    for p, c in zip(jax.tree.leaves(new), jax.tree.leaves(clipped), strict=True):
        np.testing.assert_array_equal(p, -c)


def test_bad_max_norm_is_named():
    with pytest.raises(ValueError, match=r"^clip_tree_by_global_norm: max_norm must be > 0\.0, "
                                         r"got -1\.0\.$"):
        optim.clip_tree_by_global_norm({"w": jnp.ones(2)}, -1.0)
