"""Tests for fnn.losses: values and gradients against independent float64 numpy code.

One helper (`assert_matches_reference`) checks a loss's value against a numpy
float64 reference and its gradient against centred finite differences of that
same reference, so most tests are one line. Inputs are drawn in float64, rounded
to float32 once, and both sides see the same rounded numbers.
"""
import functools
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fnn import losses

# ---------------------------------------------------------------------------
# float64 numpy references (written from the definitions, not from fnn)


def _logsumexp(z):
    m = z.max(axis=-1, keepdims=True)
    return (m + np.log(np.exp(z - m).sum(axis=-1, keepdims=True)))[..., 0]


def _pick(x, labels):
    return np.take_along_axis(x, labels[..., None], axis=-1)[..., 0]


def ref_mse(p, y):
    return np.mean((p - y) ** 2)


def ref_mae(p, y):
    return np.mean(np.abs(p - y))


def ref_msle(p, y):
    return np.mean((np.log(1 + np.maximum(p, 1e-5)) - np.log(1 + np.maximum(y, 1e-5))) ** 2)


def ref_mape(p, y):
    return 100 * np.mean(np.abs(p - y) / np.maximum(np.abs(y), 1e-5))


def ref_huber(p, y, delta=1.0):
    d = np.abs(p - y)
    return np.mean(np.where(d < delta, 0.5 * d**2, delta * (d - 0.5 * delta)))


def ref_smooth_l1(p, y, beta=1.0):
    d = np.abs(p - y)
    if beta == 0:
        return np.mean(d)
    return np.mean(np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta))


def ref_sigmoid_bce(z, y):
    # log(1 + e^z) − z·y, with log(1 + e^z) = logaddexp(0, z)
    return np.mean(np.logaddexp(0.0, z) - z * y)


def ref_bce(p, y):
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.mean(-y * np.log(p) - (1 - y) * np.log(1 - p))


def ref_hinge(s, y):
    return np.mean(np.maximum(0.0, 1 - y * s))


def ref_exponential(s, y):
    return np.mean(np.exp(-y * s))


def ref_softmax_ce(z, labels):
    logp = z - _logsumexp(z)[..., None]
    if np.issubdtype(labels.dtype, np.integer):
        return np.mean(-_pick(logp, labels))
    return np.mean(-(labels * logp).sum(-1))


def ref_cross_entropy(p, y):
    return np.mean(-(y * np.log(np.maximum(p, 1e-7))).sum(-1))


def ref_nll(lp, labels):
    return np.mean(-_pick(lp, labels))


def ref_multiclass_hinge(s, labels, margin=1.0):
    s2 = s.reshape(-1, s.shape[-1])
    lab = labels.reshape(-1)
    total = 0.0
    for n in range(s2.shape[0]):
        for j in range(s2.shape[1]):
            if j != lab[n]:
                total += max(0.0, s2[n, j] - s2[n, lab[n]] + margin)
    return total / s2.shape[0]


# ---------------------------------------------------------------------------
# jitted, cached entry points: one compile per (loss, hyperparameters, shape).
# (Op-by-op eager dispatch compiles every primitive separately, which is several
# times slower on a CPU; the eager path is covered by the chex variants below.)


@functools.cache
def _compiled(fn, kw_items, with_grad):
    f = functools.partial(fn, **dict(kw_items))
    return jax.jit(jax.value_and_grad(f) if with_grad else f)


def ev(fn, *args, **kw):
    """`fn(*args, **kw)` under jit (hyperparameters static)."""
    return _compiled(fn, tuple(sorted(kw.items())), False)(*args)


def grad(fn, *args, **kw):
    """d fn(*args, **kw) / d args[0] under jit."""
    return _compiled(fn, tuple(sorted(kw.items())), True)(*args)[1]


# ---------------------------------------------------------------------------
# the one helper


def _f32(x):
    """Round to float32 once; return the float64 copy the reference sees."""
    return np.asarray(x, np.float32).astype(np.float64)


def _numeric_grad(f, x, eps=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += eps
        xm[i] -= eps
        g[i] = (f(xp) - f(xm)) / (2 * eps)
    return g


def assert_matches_reference(fn, ref, pred, target, *, rtol=1e-5, grad_rtol=1e-4, **kw):
    """Value vs `ref` (float64) and d loss / d pred vs finite differences of `ref`."""
    pred = _f32(pred)
    if np.issubdtype(np.asarray(target).dtype, np.floating):
        target = _f32(target)
        target32 = jnp.asarray(target, jnp.float32)
    else:
        target32 = jnp.asarray(target)
    pred32 = jnp.asarray(pred, jnp.float32)
    got, grad = _compiled(fn, tuple(sorted(kw.items())), True)(pred32, target32)
    assert got.shape == () and got.dtype == jnp.float32
    want = ref(pred, target, **kw)
    np.testing.assert_allclose(float(got), want, rtol=rtol, atol=1e-6)
    want_grad = _numeric_grad(lambda p: ref(p, target, **kw), pred)
    np.testing.assert_allclose(np.asarray(grad), want_grad, rtol=grad_rtol, atol=1e-6)


# ---------------------------------------------------------------------------
# data generators: (rng, shape) -> (pred, target)


def _regression(rng, shape):
    return 1.5 * rng.normal(size=shape), rng.normal(size=shape)


def _positive(rng, shape):
    return rng.uniform(-0.5, 3.0, size=shape), rng.uniform(0.0, 3.0, size=shape)


def _logits01(rng, shape):
    return 3 * rng.normal(size=shape), rng.integers(0, 2, size=shape).astype(np.float64)


def _soft01(rng, shape):
    return 3 * rng.normal(size=shape), rng.uniform(0, 1, size=shape)


def _probs01(rng, shape):
    return rng.uniform(0.02, 0.98, size=shape), rng.integers(0, 2, size=shape).astype(np.float64)


def _scores_pm1(rng, shape):
    return 1.5 * rng.normal(size=shape), rng.choice([-1.0, 1.0], size=shape)


ELEMENTWISE = [
    ("mse", losses.mse, ref_mse, _regression, {}),
    ("mae", losses.mae, ref_mae, _regression, {}),
    ("msle", losses.msle, ref_msle, _positive, {}),
    ("mape", losses.mape, ref_mape, _regression, {}),
    ("huber", losses.huber, ref_huber, _regression, {}),
    ("huber_delta0.5", losses.huber, ref_huber, _regression, {"delta": 0.5}),
    ("smooth_l1", losses.smooth_l1, ref_smooth_l1, _regression, {}),
    ("smooth_l1_beta2", losses.smooth_l1, ref_smooth_l1, _regression, {"beta": 2.0}),
    ("smooth_l1_beta0", losses.smooth_l1, ref_smooth_l1, _regression, {"beta": 0.0}),
    ("sigmoid_bce", losses.sigmoid_binary_cross_entropy, ref_sigmoid_bce, _logits01, {}),
    ("sigmoid_bce_soft", losses.sigmoid_binary_cross_entropy, ref_sigmoid_bce, _soft01, {}),
    ("bce", losses.binary_cross_entropy, ref_bce, _probs01, {}),
    ("hinge", losses.hinge, ref_hinge, _scores_pm1, {}),
    ("exponential", losses.exponential, ref_exponential, _scores_pm1, {}),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", [(6,), (2, 3, 2)])
@pytest.mark.parametrize("name,fn,ref,gen,kw", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_loss_matches_reference(name, fn, ref, gen, kw, shape, seed):
    pred, y = gen(np.random.default_rng(seed), shape)
    assert_matches_reference(fn, ref, pred, y, **kw)


def _ids(rng, shape):
    return 2 * rng.normal(size=shape), rng.integers(0, shape[-1], size=shape[:-1])


def _onehot(rng, shape):
    z, ids = _ids(rng, shape)
    return z, np.eye(shape[-1])[ids]


def _soft_targets(rng, shape):
    t = rng.uniform(0.1, 1.0, size=shape)
    return 2 * rng.normal(size=shape), t / t.sum(-1, keepdims=True)


def _probs_onehot(rng, shape):
    z, y = _onehot(rng, shape)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True), y


def _log_probs_ids(rng, shape):
    z, ids = _ids(rng, shape)
    return z - _logsumexp(z)[..., None], ids


CLASSWISE = [
    ("softmax_ce_ids", losses.softmax_cross_entropy, ref_softmax_ce, _ids, {}),
    ("softmax_ce_onehot", losses.softmax_cross_entropy, ref_softmax_ce, _onehot, {}),
    ("softmax_ce_soft", losses.softmax_cross_entropy, ref_softmax_ce, _soft_targets, {}),
    ("cross_entropy", losses.cross_entropy, ref_cross_entropy, _probs_onehot, {}),
    ("cross_entropy_soft", losses.cross_entropy, ref_cross_entropy, _soft_targets, {}),
    ("nll", losses.nll, ref_nll, _log_probs_ids, {}),
    ("multiclass_hinge", losses.multiclass_hinge, ref_multiclass_hinge, _ids, {}),
    ("multiclass_hinge_m0.5", losses.multiclass_hinge, ref_multiclass_hinge, _ids,
     {"margin": 0.5}),
]


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 4)])
@pytest.mark.parametrize("name,fn,ref,gen,kw", CLASSWISE, ids=[c[0] for c in CLASSWISE])
def test_class_loss_matches_reference(name, fn, ref, gen, kw, shape, seed):
    if name == "cross_entropy_soft":  # targets are probabilities: make the predictions too
        rng = np.random.default_rng(seed)
        _, y = _soft_targets(rng, shape)
        p, _ = _soft_targets(rng, shape)
        assert_matches_reference(fn, ref, p, y, **kw)
        return
    pred, y = gen(np.random.default_rng(seed), shape)
    assert_matches_reference(fn, ref, pred, y, **kw)


# ---------------------------------------------------------------------------
# hand-computed values


def test_huber_hand_computed_both_sides_of_delta():
    pred, y = jnp.array([0.5, -2.0, 3.0]), jnp.zeros(3)
    # δ = 1: 0.5·0.25 = 0.125 | 1·(2 − 0.5) = 1.5 | 1·(3 − 0.5) = 2.5
    np.testing.assert_allclose(ev(losses.huber, pred, y), (0.125 + 1.5 + 2.5) / 3, rtol=1e-6)
    # δ = 2: 0.125 | |d| = δ is the linear branch: 2·(2 − 1) = 2 | 2·(3 − 1) = 4
    np.testing.assert_allclose(ev(losses.huber, pred, y, delta=2.0), (0.125 + 2 + 4) / 3,
                               rtol=1e-6)


def test_smooth_l1_hand_computed_both_sides_of_beta():
    pred, y = jnp.array([0.5, -2.0, 3.0]), jnp.zeros(3)
    # β = 1: 0.5·0.25/1 = 0.125 | 2 − 0.5 = 1.5 | 3 − 0.5 = 2.5
    np.testing.assert_allclose(ev(losses.smooth_l1, pred, y), (0.125 + 1.5 + 2.5) / 3, rtol=1e-6)
    # β = 2: 0.5·0.25/2 = 0.0625 | 2 − 1 = 1 | 3 − 1 = 2
    np.testing.assert_allclose(ev(losses.smooth_l1, pred, y, beta=2.0), (0.0625 + 1 + 2) / 3,
                               rtol=1e-6)
    # β = 0 is L1
    np.testing.assert_allclose(ev(losses.smooth_l1, pred, y, beta=0.0), 5.5 / 3, rtol=1e-6)


def test_huber_is_delta_times_smooth_l1():
    pred, y = jnp.array([0.1, -0.7, 2.5, -4.0]), jnp.array([0.0, 0.3, -0.5, 1.0])
    for delta in (0.5, 1.0, 3.0):
        np.testing.assert_allclose(ev(losses.huber, pred, y, delta=delta),
                                   delta * ev(losses.smooth_l1, pred, y, beta=delta), rtol=1e-6)


def test_hand_computed_classification_values():
    # hinge: max(0, 1 − y s) for (s, y) = (2, 1), (0.5, 1), (0.5, −1), (−3, −1) -> 0, .5, 1.5, 0
    np.testing.assert_allclose(
        ev(losses.hinge, jnp.array([2.0, 0.5, 0.5, -3.0]), jnp.array([1, 1, -1, -1])), 0.5)
    # CS231n example: scores (3.2, 5.1, −1.7), true class 0: max(0, 5.1 − 3.2 + 1) + 0 = 2.9
    np.testing.assert_allclose(
        ev(losses.multiclass_hinge, jnp.array([[3.2, 5.1, -1.7]]), jnp.array([0])), 2.9, rtol=1e-6)
    # exponential: exp(−1·0) = 1, exp(−(−1)·ln 2) = 2 -> mean 1.5
    np.testing.assert_allclose(
        ev(losses.exponential, jnp.array([0.0, np.log(2.0)]), jnp.array([1.0, -1.0])), 1.5,
        rtol=1e-6)
    # uniform logits over C classes: log C
    np.testing.assert_allclose(
        ev(losses.softmax_cross_entropy, jnp.zeros((2, 4)), jnp.array([0, 3])), np.log(4),
        rtol=1e-6)


def test_softmax_cross_entropy_label_forms_agree_with_each_other_and_nll():
    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 4, size=5))
    by_ids = ev(losses.softmax_cross_entropy, z, ids)
    np.testing.assert_allclose(by_ids, ev(losses.softmax_cross_entropy, z, jax.nn.one_hot(ids, 4)),
                               rtol=1e-6)
    np.testing.assert_allclose(by_ids, ev(losses.nll, jax.nn.log_softmax(z), ids), rtol=1e-6)
    np.testing.assert_allclose(by_ids, ev(losses.cross_entropy, jax.nn.softmax(z),
                                                            jax.nn.one_hot(ids, 4)), rtol=1e-5)


def test_out_of_range_class_ids_give_nan():
    z = jnp.zeros((2, 3))
    for fn in (losses.softmax_cross_entropy, losses.nll, losses.multiclass_hinge):
        assert np.isnan(ev(fn, z, jnp.array([0, 3])))
        assert np.isnan(ev(fn, z, jnp.array([-1, 0])))


# ---------------------------------------------------------------------------
# stability at huge logits, and closed-form gradients


def test_sigmoid_bce_is_exact_and_finite_at_huge_logits():
    z = jnp.array([1e4, -1e4, 1e4, -1e4])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    per_element = [ev(losses.sigmoid_binary_cross_entropy, z[i:i + 1], y[i:i + 1])
                   for i in range(4)]
    np.testing.assert_allclose(per_element, [1e4, 1e4, 0.0, 0.0], rtol=1e-6, atol=0)
    g = grad(losses.sigmoid_binary_cross_entropy, z, y)
    chex.assert_tree_all_finite(g)
    np.testing.assert_allclose(g, np.array([1.0, -1.0, 0.0, 0.0]) / 4, atol=1e-7)


def test_softmax_cross_entropy_is_exact_and_finite_at_huge_logits():
    z = jnp.array([[1e4, -1e4, 0.0], [1e4, -1e4, 0.0]])
    np.testing.assert_allclose(ev(losses.softmax_cross_entropy, z, jnp.array([1, 1])), 2e4,
                               rtol=1e-6)
    np.testing.assert_allclose(ev(losses.softmax_cross_entropy, z, jnp.array([0, 0])), 0.0,
                               atol=1e-6)
    for labels in (jnp.array([1, 2]), jax.nn.one_hot(jnp.array([1, 2]), 3)):
        g = grad(losses.softmax_cross_entropy, z, labels)
        chex.assert_tree_all_finite(g)
        np.testing.assert_allclose(g, (np.array([[1.0, 0, 0], [1, 0, 0]])
                                       - np.array([[0, 1.0, 0], [0, 0, 1]])) / 2, atol=1e-7)
    # nll and multiclass hinge stay finite too
    chex.assert_tree_all_finite(grad(losses.multiclass_hinge, z, jnp.array([1, 2])))
    chex.assert_tree_all_finite(
        jax.jit(jax.grad(lambda z: losses.nll(jax.nn.log_softmax(z), jnp.array([1, 2]))))(z))


def test_probability_losses_are_finite_at_zero_and_one():
    eps_loss = -np.log(1e-7)  # ≈ 16.118, the documented cap
    p = jnp.array([0.0, 1.0, 0.0, 1.0])
    y = jnp.array([1.0, 0.0, 0.0, 1.0])
    # p clipped into [1e-7, 1 − 1e-7]: −log(1e-7) for the first element, −log(1 − hi) with
    # hi = float32(1 − 1e-7) for the second (≈ 15.9), ~1e-7 for the two correct ones.
    hi = float(np.float32(1 - 1e-7))
    expected = (eps_loss - np.log(1 - hi) - np.log1p(-1e-7) - np.log(hi)) / 4
    np.testing.assert_allclose(ev(losses.binary_cross_entropy, p, y), expected, rtol=1e-5)
    chex.assert_tree_all_finite(grad(losses.binary_cross_entropy, p, y))
    probs = jnp.array([[0.0, 1.0], [1.0, 0.0]])
    onehot = jnp.array([[1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(ev(losses.cross_entropy, probs, onehot), eps_loss / 2, rtol=1e-5)
    chex.assert_tree_all_finite(grad(losses.cross_entropy, probs, onehot))


@pytest.mark.parametrize("seed", [0, 1])
def test_softmax_cross_entropy_gradient_is_softmax_minus_onehot(seed):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(3 * rng.normal(size=(4, 5)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 5, size=4))
    onehot = jax.nn.one_hot(ids, 5)
    zz = np.asarray(z, np.float64)
    softmax = np.exp(zz - zz.max(-1, keepdims=True))
    softmax /= softmax.sum(-1, keepdims=True)
    expected = (softmax - np.asarray(onehot)) / 4
    for labels in (ids, onehot):
        g = grad(losses.softmax_cross_entropy, z, labels)
        np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-7)


def test_sigmoid_bce_gradient_is_sigmoid_minus_y_including_zero():
    z = jnp.array([-3.0, -0.5, 0.0, 0.0, 0.7, 4.0])
    y = jnp.array([0.0, 1.0, 0.0, 1.0, 0.3, 1.0])
    g = grad(losses.sigmoid_binary_cross_entropy, z, y)
    sigma = 1 / (1 + np.exp(-np.asarray(z, np.float64)))
    np.testing.assert_allclose(g, (sigma - np.asarray(y)) / 6, rtol=1e-5, atol=1e-8)


def test_l1_style_losses_have_zero_gradient_at_the_target():
    x = jnp.array([0.5, -1.0])
    for fn in (losses.mae, losses.mape, losses.huber, losses.smooth_l1, losses.mse):
        np.testing.assert_array_equal(grad(fn, x, x), np.zeros(2))


# ---------------------------------------------------------------------------
# shape / dtype errors


def _shapes(*shapes):
    return ".*".join(re.escape(str(tuple(s))) for s in shapes)


ALL_ELEMENTWISE = [
    losses.mse, losses.mae, losses.msle, losses.mape, losses.huber, losses.smooth_l1,
    losses.sigmoid_binary_cross_entropy, losses.binary_cross_entropy, losses.hinge,
    losses.exponential,
]
CLASS_ID_LOSSES = [losses.softmax_cross_entropy, losses.nll, losses.multiclass_hinge]


@pytest.mark.parametrize("fn", ALL_ELEMENTWISE + [losses.cross_entropy],
                         ids=lambda f: f.__name__)
def test_column_against_vector_raises_instead_of_broadcasting(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{_shapes((4, 1), (4,))}"):
        fn(jnp.full((4, 1), 0.5), jnp.ones(4))
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{_shapes((4,), (4, 1))}"):
        fn(jnp.full((4,), 0.5), jnp.ones((4, 1)))


@pytest.mark.parametrize("fn", ALL_ELEMENTWISE + [losses.cross_entropy],
                         ids=lambda f: f.__name__)
def test_mismatched_batch_raises(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{_shapes((4, 3), (5, 3))}"):
        fn(jnp.full((4, 3), 0.5), jnp.ones((5, 3)))


@pytest.mark.parametrize("fn", CLASS_ID_LOSSES, ids=lambda f: f.__name__)
def test_class_id_shape_errors(fn):
    z = jnp.zeros((4, 3))
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{_shapes((4,), (4, 1), (4, 3))}"):
        fn(z, jnp.zeros((4, 1), jnp.int32))
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{_shapes((4,), (5,), (4, 3))}"):
        fn(z, jnp.zeros((5,), jnp.int32))
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*{_shapes((4,), (4, 3), (4, 3))}"):
        fn(z, jnp.zeros((4, 3), jnp.int32))  # an integer one-hot is not class ids


@pytest.mark.parametrize("fn", CLASS_ID_LOSSES, ids=lambda f: f.__name__)
def test_float_class_ids_raise_type_error_suggesting_int32(fn):
    z = jnp.zeros((4, 3))
    pattern = rf"{fn.__name__}.*{_shapes((4,))}.*float32.*{_shapes((4, 3))}.*astype\(jnp\.int32\)"
    with pytest.raises(TypeError, match=pattern):
        fn(z, jnp.array([0.0, 1.0, 2.0, 1.0]))


def test_float_class_ids_error_mentions_one_hot_where_supported():
    with pytest.raises(TypeError, match=r"softmax_cross_entropy.*one-hot.*\(4, 3\)"):
        losses.softmax_cross_entropy(jnp.zeros((4, 3)), jnp.zeros(4))
    with pytest.raises(ValueError, match=r"nll.*argmax"):
        losses.nll(jnp.zeros((4, 3)), jnp.zeros((4, 3)))


def test_cross_entropy_rejects_class_ids():
    with pytest.raises(ValueError, match=rf"cross_entropy.*{_shapes((4, 3), (4,))}.*nll"):
        losses.cross_entropy(jnp.full((4, 3), 1 / 3), jnp.zeros(4, jnp.int32))


@pytest.mark.parametrize("fn", ALL_ELEMENTWISE, ids=lambda f: f.__name__)
def test_empty_batch_raises_elementwise(fn):
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*empty.*{_shapes((0, 3))}"):
        fn(jnp.zeros((0, 3)), jnp.zeros((0, 3)))


@pytest.mark.parametrize("fn", CLASS_ID_LOSSES + [losses.cross_entropy],
                         ids=lambda f: f.__name__)
def test_empty_batch_raises_classwise(fn):
    labels = jnp.zeros((0, 3)) if fn is losses.cross_entropy else jnp.zeros((0,), jnp.int32)
    with pytest.raises(ValueError, match=rf"{fn.__name__}.*empty.*{_shapes((0, 3))}"):
        fn(jnp.zeros((0, 3)), labels)


def test_errors_are_raised_at_trace_time_under_jit():
    with pytest.raises(ValueError, match=rf"mse.*{_shapes((4, 1), (4,))}"):
        jax.jit(losses.mse)(jnp.ones((4, 1)), jnp.ones(4))
    with pytest.raises(TypeError, match="softmax_cross_entropy.*int32"):
        jax.jit(losses.softmax_cross_entropy)(jnp.ones((4, 3)), jnp.ones(4))


def test_integer_predictions_and_no_class_axis_raise():
    with pytest.raises(TypeError, match=r"mse.*floating-point predictions.*int32"):
        losses.mse(jnp.arange(3), jnp.arange(3))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy.*class axis"):
        losses.softmax_cross_entropy(jnp.float32(1.0), jnp.int32(0))
    with pytest.raises(ValueError, match=r"nll.*no classes"):
        losses.nll(jnp.zeros((2, 0)), jnp.zeros(2, jnp.int32))


@pytest.mark.parametrize("call,match", [
    (lambda: losses.huber(jnp.ones(2), jnp.ones(2), delta=0.0), "huber: delta must be > 0"),
    (lambda: losses.huber(jnp.ones(2), jnp.ones(2), delta=float("nan")), "huber: delta"),
    (lambda: losses.smooth_l1(jnp.ones(2), jnp.ones(2), beta=-1.0), "smooth_l1: beta must be >="),
    (lambda: losses.multiclass_hinge(jnp.ones((2, 3)), jnp.zeros(2, jnp.int32), margin=-1.0),
     "multiclass_hinge: margin must be >="),
])
def test_bad_hyperparameters_raise(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_integer_targets_are_accepted_for_elementwise_losses():
    s = jnp.array([0.3, -2.0])
    np.testing.assert_allclose(ev(losses.hinge, s, jnp.array([1, -1])),
                               ev(losses.hinge, s, jnp.array([1.0, -1.0])))
    np.testing.assert_allclose(ev(losses.mse, s, jnp.array([0, 1])), (0.09 + 9) / 2, rtol=1e-6)


# ---------------------------------------------------------------------------
# transformations: jit (chex variants), vmap


class LossVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("mse", losses.mse, ref_mse, _regression),
        ("sigmoid_bce", losses.sigmoid_binary_cross_entropy, ref_sigmoid_bce, _logits01),
        ("softmax_ce_ids", losses.softmax_cross_entropy, ref_softmax_ce, _ids),
        ("softmax_ce_onehot", losses.softmax_cross_entropy, ref_softmax_ce, _onehot),
    )
    def test_value_and_grad(self, fn, ref, gen):
        pred, y = gen(np.random.default_rng(7), (3, 4))
        pred = _f32(pred)
        if np.issubdtype(y.dtype, np.floating):
            y = _f32(y)
        y32 = jnp.asarray(y, jnp.float32) if np.issubdtype(y.dtype, np.floating) else y
        value, g = self.variant(jax.value_and_grad(fn))(jnp.asarray(pred, jnp.float32), y32)
        np.testing.assert_allclose(value, ref(pred, y), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(g, _numeric_grad(lambda p: ref(p, y), pred),
                                   rtol=1e-4, atol=1e-6)


def test_vmap_gives_per_example_losses_whose_mean_is_the_batch_loss():
    rng = np.random.default_rng(4)
    z = jnp.asarray(rng.normal(size=(5, 3)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, 3, size=5))
    per_example = jax.jit(jax.vmap(losses.softmax_cross_entropy))(z, ids)  # logits (C,), label ()
    chex.assert_shape(per_example, (5,))
    np.testing.assert_allclose(per_example.mean(), ev(losses.softmax_cross_entropy, z, ids),
                               rtol=1e-6)
    p, y = (jnp.asarray(a, jnp.float32) for a in _regression(rng, (2, 4, 3)))
    per_batch = jax.jit(jax.vmap(losses.mse))(p, y)
    np.testing.assert_allclose(per_batch, [ref_mse(np.asarray(p[i]), np.asarray(y[i]))
                                           for i in range(2)], rtol=1e-5)


def test_jit_traces_once_per_shape():
    @jax.jit
    @chex.assert_max_traces(n=1)
    def f(z, ids):
        return losses.softmax_cross_entropy(z, ids)

    for seed in range(3):
        f(jnp.full((2, 3), float(seed)), jnp.array([0, seed % 3]))


# ---------------------------------------------------------------------------
# properties


_floats = st.floats(-50, 50, width=32, allow_nan=False, allow_infinity=False)
# few distinct shapes, so the jitted losses compile once per shape
_shapes_st = st.sampled_from([(1,), (3,), (2, 3)])


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_regression_losses_are_nonnegative_and_zero_at_target(data):
    shape = data.draw(_shapes_st)
    pred = data.draw(hnp.arrays(np.float32, shape, elements=_floats))
    y = data.draw(hnp.arrays(np.float32, shape, elements=_floats))
    for fn in (losses.mse, losses.mae, losses.huber, losses.smooth_l1, losses.msle,
               losses.mape):
        assert float(ev(fn, pred, y)) >= 0.0
        assert float(ev(fn, y, y)) == 0.0


@settings(max_examples=20, deadline=None)
@given(data=st.data())
def test_classification_losses_are_nonnegative(data):
    n, c = data.draw(st.sampled_from([(1, 1), (2, 3), (3, 2)]))
    z = data.draw(hnp.arrays(np.float32, (n, c), elements=_floats))
    ids = data.draw(hnp.arrays(np.int32, (n,), elements=st.integers(0, c - 1)))
    y01 = data.draw(hnp.arrays(np.float32, (n, c), elements=st.sampled_from([0.0, 1.0])))
    assert float(ev(losses.softmax_cross_entropy, z, ids)) >= 0.0
    assert float(ev(losses.multiclass_hinge, z, ids)) >= 0.0
    assert float(ev(losses.sigmoid_binary_cross_entropy, z, y01)) >= 0.0
    assert float(ev(losses.hinge, z, 2 * y01 - 1)) >= 0.0


# --- half precision and traced hyperparameters -------------------------------------------


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_probability_losses_clip_in_half_precision(dtype):
    """1 − 1e-7 rounds to 1 in float16/bfloat16: the clip must be applied in float32."""
    p, y = jnp.array([1.0, 0.0], dtype), jnp.array([0.0, 1.0], dtype)
    want = -np.log(np.float32(1e-7))
    in_float32 = losses.binary_cross_entropy(p.astype(jnp.float32), y.astype(jnp.float32))
    assert float(losses.binary_cross_entropy(p, y)) == float(in_float32)
    assert 15 < float(in_float32) < want
    grad = jax.grad(losses.binary_cross_entropy)(p, y)
    assert np.all(np.isfinite(np.asarray(grad, np.float32)))
    ce = losses.cross_entropy(jnp.array([[1.0, 0.0]], dtype), jnp.array([[0.0, 1.0]], dtype))
    assert float(ce) == pytest.approx(want, rel=1e-6)


def test_loss_hyperparameters_may_be_traced():
    pred, y = jnp.array([0.3, -2.0, 0.1]), jnp.zeros(3)
    for fn, values in [(losses.huber, (0.5, 2.0)), (losses.smooth_l1, (0.0, 0.5, 1.0))]:
        got = jax.vmap(lambda v, fn=fn: fn(pred, y, v))(jnp.array(values))
        want = [float(fn(pred, y, v)) for v in values]
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert float(jax.jit(fn)(pred, y, values[-1])) == pytest.approx(want[-1], rel=1e-6)
    assert float(losses.smooth_l1(pred, y, 0.0)) == pytest.approx(float(losses.mae(pred, y)))
    chex.assert_trees_all_close(jax.grad(losses.smooth_l1)(pred, y, 0.0), jnp.sign(pred) / 3)
    s, labels = jnp.array([[1.0, 2.0, 3.0]]), jnp.array([0])
    assert float(jax.jit(losses.multiclass_hinge)(s, labels, 0.5)) == pytest.approx(1.5 + 2.5)


# --- found by an adversarial audit: each test failed before its fix -----------------------


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_half_precision_losses_are_computed_and_returned_in_float32(dtype):
    """float16 squares 300 to inf, exp(12) to inf: the loss is computed in float32 (and bfloat16
    keeps 3 digits): each value matches float64 NumPy on the same half-precision inputs."""
    def half(a):
        return jnp.asarray(a, dtype)

    def f64(a):
        return np.asarray(a, np.float64)

    p, y = half([300.0] + [0.0] * 9), half(np.zeros(10))
    s, pm1 = half([12.0, 0.0, 1.3]), half([-1.0, 1.0, 1.0])
    z, ids = half([[-60000.0, 60000.0], [0.1, 0.2]]), jnp.array([0, 1])
    cases = [
        (losses.mse(p, y), ref_mse(f64(p), f64(y))),
        (losses.exponential(s, pm1), ref_exponential(f64(s), f64(pm1))),
        (losses.mape(half([1.0, 2.0]), half([0.0, 3.0])), ref_mape(np.array([1.0, 2.0]),
                                                                   np.array([0.0, 3.0]))),
        (losses.softmax_cross_entropy(z, ids), ref_softmax_ce(f64(z), np.asarray(ids))),
        (losses.multiclass_hinge(z, ids), ref_multiclass_hinge(f64(z), np.asarray(ids))),
    ]
    for got, want in cases:
        assert got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), want, rtol=1e-5)
    g = jax.grad(losses.mse)(p, y)
    assert g.dtype == dtype and np.all(np.isfinite(np.asarray(g, np.float32)))


@pytest.mark.parametrize("fn", CLASS_ID_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("dtype", [jnp.uint8, jnp.int8])
def test_small_integer_class_ids_with_more_classes_than_their_dtype_holds(fn, dtype):
    """C = 200 does not fit int8, C = 300 not uint8: the id checks and the class index must
    not be computed in the labels' dtype (was NaN or a raw OverflowError)."""
    c = 300 if dtype == jnp.uint8 else 200
    z = jnp.asarray(np.random.default_rng(0).normal(size=(2, c)), jnp.float32)
    ids = np.array([100, 7])
    want = float(fn(z, jnp.asarray(ids, jnp.int32)))
    assert float(fn(z, jnp.asarray(ids, dtype))) == pytest.approx(want, rel=1e-6)
    assert float(jax.jit(fn)(z, jnp.asarray(ids, dtype))) == pytest.approx(want, rel=1e-6)


@pytest.mark.skipif(jax.config.jax_enable_x64, reason="int64 ids fit under jax_enable_x64")
def test_int64_values_that_int32_cannot_hold_raise_instead_of_wrapping():
    """np.int64 id 2**32 became class 0 in jnp.asarray (a silently wrong loss)."""
    z = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels.*4294967296.*int32"):
        losses.softmax_cross_entropy(z, np.array([0, 2**32]))
    with pytest.raises(ValueError, match=r"nll: labels.*-4294967295.*int32"):
        losses.nll(z, np.array([0, -(2**32) + 1]))
    with pytest.raises(ValueError, match=r"multiclass_hinge: labels.*1099511627776"):
        losses.multiclass_hinge(z, [1, 2**40])      # a list: was a raw OverflowError
    with pytest.raises(ValueError, match=r"mse: targets.*4294967296"):
        losses.mse(jnp.zeros(1), np.array([2**32]))


def test_one_hot_targets_with_the_wrong_number_of_classes_say_so():
    """Float (N, C') targets used to be reported as 'class-id labels must have shape (N,)'."""
    z = jnp.zeros((2, 3))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: one-hot/probability targets "
                                         rf"must have the logits' shape.*{_shapes((2, 3), (2, 4))}"):
        losses.softmax_cross_entropy(z, jnp.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match=rf"one-hot/probability.*{_shapes((3, 3))}"):
        losses.softmax_cross_entropy(z, jnp.ones((3, 3)) / 3)
