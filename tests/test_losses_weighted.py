"""`weights=` and `reduction=` on every loss (API.md §6.2), and `label_smoothing`.

Each loss's unreduced values are checked against a float64 numpy reference written
from the definition (per element for element-wise losses, per label for class
losses); `"sum"` and the weighted `"mean"` (`Σ w·l / Σ w`) against the same
reference; the class losses also against PyTorch (`weight=`, `ignore_index`,
`label_smoothing`), and a masked sequence model trains with `fit` as the README shows.
"""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import losses, optim, serial, train
from fnn.layers import LSTM, Dense, Embedding

RNG = np.random.default_rng(0)
N, K, C = 6, 3, 4


# ---------------------------------------------------------------------------
# float64 references of the unreduced losses (written from the definitions)


def _logsoftmax(z):
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def _pick(x, ids):
    return np.take_along_axis(x, ids[..., None], -1)[..., 0]


def _sigmoid_bce(z, y):
    return np.logaddexp(0.0, z) - z * y


def _multiclass_hinge(s, ids, margin=1.0):
    m = np.maximum(0.0, s - _pick(s, ids)[..., None] + margin)
    return m.sum(-1) - margin      # the true class adds exactly `margin`


REFS = {   # name: (loss, reference per element / label, (pred, target) maker, kwargs)
    "mse": (losses.mse, lambda p, y: (p - y) ** 2, "real"),
    "mae": (losses.mae, lambda p, y: np.abs(p - y), "real"),
    "msle": (losses.msle, lambda p, y: (np.log1p(np.maximum(p, 1e-5))
                                        - np.log1p(np.maximum(y, 1e-5))) ** 2, "positive"),
    "mape": (losses.mape, lambda p, y: 100 * np.abs(p - y) / np.maximum(np.abs(y), 1e-5),
             "real"),
    "huber": (functools.partial(losses.huber, delta=0.5),
              lambda p, y: np.where(np.abs(p - y) < 0.5, 0.5 * (p - y) ** 2,
                                    0.5 * (np.abs(p - y) - 0.25)), "real"),
    "smooth_l1": (functools.partial(losses.smooth_l1, beta=0.5),
                  lambda p, y: np.where(np.abs(p - y) < 0.5, (p - y) ** 2,
                                        np.abs(p - y) - 0.25), "real"),
    "sigmoid_bce": (losses.sigmoid_binary_cross_entropy, _sigmoid_bce, "logits01"),
    "bce": (losses.binary_cross_entropy,
            lambda p, y: -y * np.log(p) - (1 - y) * np.log(1 - p), "probs01"),
    "hinge": (losses.hinge, lambda s, y: np.maximum(0.0, 1 - y * s), "pm1"),
    "exponential": (losses.exponential, lambda s, y: np.exp(-y * s), "pm1"),
    "softmax_ce_ids": (losses.softmax_cross_entropy,
                       lambda z, ids: -_pick(_logsoftmax(z), ids), "ids"),
    "softmax_ce_probs": (losses.softmax_cross_entropy,
                         lambda z, q: -(q * _logsoftmax(z)).sum(-1), "probs"),
    "cross_entropy": (losses.cross_entropy, lambda p, q: -(q * np.log(p)).sum(-1), "softmax"),
    "nll": (losses.nll, lambda lp, ids: -_pick(lp, ids), "log_probs"),
    "multiclass_hinge": (losses.multiclass_hinge, _multiclass_hinge, "ids"),
    "sigmoid_focal_loss": (losses.sigmoid_focal_loss, lambda z, y: (
        (0.25 * y + 0.75 * (1 - y)) * (1 - (y / (1 + np.exp(-z)) + (1 - y) / (1 + np.exp(z))))
        ** 2 * _sigmoid_bce(z, y)), "logits01"),
    "kl_divergence": (losses.kl_divergence,
                      lambda lp, q: (q * (np.log(q) - lp)).sum(-1), "log_probs_soft"),
}


def _data(kind, rng, shape):
    """(pred, target) in float64 (rounded through float32) for a loss of `kind`."""
    def f32(a):
        return np.asarray(a, np.float32).astype(np.float64)

    cls = (*shape, C)
    ids = rng.integers(0, C, size=shape)
    soft = rng.dirichlet(np.ones(C), size=shape)
    z = 2 * rng.normal(size=cls)
    make = {
        "real": lambda: (1.5 * rng.normal(size=shape), rng.normal(size=shape)),
        "positive": lambda: (rng.uniform(0.0, 3, size=shape), rng.uniform(0, 3, size=shape)),
        "logits01": lambda: (3 * rng.normal(size=shape),
                             rng.integers(0, 2, size=shape).astype(float)),
        "probs01": lambda: (rng.uniform(0.05, 0.95, size=shape),
                            rng.integers(0, 2, size=shape).astype(float)),
        "pm1": lambda: (1.5 * rng.normal(size=shape), rng.choice([-1.0, 1.0], size=shape)),
        "ids": lambda: (z, ids),
        "probs": lambda: (z, soft),
        "softmax": lambda: (np.exp(_logsoftmax(z)), soft),
        "log_probs": lambda: (_logsoftmax(z), ids),
        "log_probs_soft": lambda: (_logsoftmax(z), soft),
    }[kind]
    pred, target = make()
    return f32(pred), (target if target.dtype.kind == "i" else f32(target))


def _jnp(a):
    return jnp.asarray(a, jnp.int32 if a.dtype.kind == "i" else jnp.float32)


@functools.cache
def _jitted(loss, reduction):
    return jax.jit(lambda p, y, w: loss(p, y, weights=w, reduction=reduction))


@pytest.mark.parametrize("name", sorted(REFS))
def test_unreduced_sum_and_weighted_mean_match_the_reference(name):
    loss, ref, kind = REFS[name]
    pred, target = _data(kind, np.random.default_rng(1), (N, K))
    l_ref = ref(pred, target)                  # (N, K) for both families here
    w = RNG.uniform(0.1, 2.0, size=l_ref.shape)
    p32, y32, w32 = _jnp(pred), _jnp(target), jnp.asarray(w, jnp.float32)
    none = loss(p32, y32, reduction="none")
    assert none.shape == l_ref.shape and none.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(none), l_ref, rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(float(loss(p32, y32)), l_ref.mean(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(float(_jitted(loss, "sum")(p32, y32, w32)), (w * l_ref).sum(),
                               rtol=2e-5, atol=1e-5)
    np.testing.assert_allclose(float(_jitted(loss, "mean")(p32, y32, w32)),
                               (w * l_ref).sum() / w.sum(), rtol=2e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(_jitted(loss, "none")(p32, y32, w32)), w * l_ref,
                               rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("weights_shape", [(K,), (N, 1), (1, K), ()])
def test_weights_broadcast_by_numpy_rules_to_the_unreduced_shape(weights_shape):
    pred, y = RNG.normal(size=(N, K)), RNG.normal(size=(N, K))
    w = RNG.uniform(0.1, 2.0, size=weights_shape)
    l_ref, wb = (pred - y) ** 2, np.broadcast_to(w, (N, K))
    got = losses.mse(jnp.asarray(pred, jnp.float32), jnp.asarray(y, jnp.float32),
                     weights=jnp.asarray(w, jnp.float32))
    np.testing.assert_allclose(float(got), (wb * l_ref).sum() / wb.sum(), rtol=1e-5)


def test_the_gradient_of_the_weighted_mean_is_closed_form():
    pred, y, w = RNG.normal(size=(N, K)), RNG.normal(size=(N, K)), RNG.uniform(0, 2, (N, 1))
    g = jax.grad(lambda p: losses.mse(p, jnp.asarray(y, jnp.float32),
                                      weights=jnp.asarray(w, jnp.float32)))(
        jnp.asarray(pred, jnp.float32))
    want = 2 * np.broadcast_to(w, (N, K)) * (pred - y) / (w.sum() * K)
    np.testing.assert_allclose(np.asarray(g), want, rtol=1e-4, atol=1e-7)


@settings(max_examples=20, deadline=None)
@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 2**16))
def test_the_weighted_mean_ignores_the_weights_scale(scale, seed):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(N, C)), jnp.float32)
    ids = jnp.asarray(rng.integers(0, C, N))
    w = jnp.asarray(rng.uniform(0.1, 1.0, N), jnp.float32)
    f = _jitted(losses.softmax_cross_entropy, "mean")
    chex.assert_trees_all_close(f(z, ids, w * scale), f(z, ids, w), rtol=1e-5)
    chex.assert_trees_all_close(f(z, ids, jnp.ones(N)), losses.softmax_cross_entropy(z, ids),
                                rtol=1e-6)


# ---------------------------------------------------------------------------
# the class losses against PyTorch


def _t(a, dtype=torch.float32):
    return torch.tensor(np.asarray(a), dtype=dtype)


def test_per_label_weights_are_torch_class_weights():
    z, ids = RNG.normal(size=(8, C)), RNG.integers(0, C, 8)
    class_w = RNG.uniform(0.2, 3.0, C)
    want = torch.nn.functional.cross_entropy(_t(z), _t(ids, torch.long), weight=_t(class_w))
    got = losses.softmax_cross_entropy(jnp.asarray(z, jnp.float32), jnp.asarray(ids),
                                       weights=jnp.asarray(class_w[ids], jnp.float32))
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-5)
    lp = _logsoftmax(z)
    want = torch.nn.functional.nll_loss(_t(lp), _t(ids, torch.long), weight=_t(class_w))
    got = losses.nll(jnp.asarray(lp, jnp.float32), jnp.asarray(ids),
                     weights=jnp.asarray(class_w[ids], jnp.float32))
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-5)


def test_a_sequence_mask_is_torch_ignore_index_and_drops_invalid_ids_under_jit():
    z = RNG.normal(size=(3, 5, C))
    lengths = np.array([5, 2, 3])
    mask = np.arange(5)[None, :] < lengths[:, None]
    ids = np.where(mask, RNG.integers(0, C, (3, 5)), -100)    # torch's ignore_index
    want = torch.nn.functional.cross_entropy(_t(z).permute(0, 2, 1), _t(ids, torch.long))
    loss = jax.jit(lambda z, y, w: losses.softmax_cross_entropy(z, y, weights=w))
    got = loss(jnp.asarray(z, jnp.float32), jnp.asarray(ids), jnp.asarray(mask))
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-5)   # -100 weighted 0: dropped
    per_label = losses.softmax_cross_entropy(jnp.asarray(z, jnp.float32),
                                             jnp.asarray(np.maximum(ids, 0)), reduction="none")
    assert per_label.shape == (3, 5)


def test_binary_weights_against_torch_weight_with_sum():
    z, y, w = RNG.normal(size=(N, K)), RNG.integers(0, 2, (N, K)), RNG.uniform(0, 2, (N, K))
    want = torch.nn.functional.binary_cross_entropy_with_logits(
        _t(z), _t(y), weight=_t(w), reduction="sum")
    got = losses.sigmoid_binary_cross_entropy(jnp.asarray(z, jnp.float32),
                                              jnp.asarray(y, jnp.float32),
                                              weights=jnp.asarray(w, jnp.float32),
                                              reduction="sum")
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("targets", ["ids", "probs"])
def test_label_smoothing_is_torch_cross_entropy(eps, targets):
    z = RNG.normal(size=(8, C)) * 3
    y = RNG.integers(0, C, 8) if targets == "ids" else RNG.dirichlet(np.ones(C), 8)
    zt = _t(z).requires_grad_()
    yt = _t(y, torch.long) if targets == "ids" else _t(y)
    want = torch.nn.functional.cross_entropy(zt, yt, label_smoothing=eps)
    (want_grad,) = torch.autograd.grad(want, zt)
    y32 = jnp.asarray(y) if targets == "ids" else jnp.asarray(y, jnp.float32)
    got, g = jax.value_and_grad(lambda z: losses.softmax_cross_entropy(
        z, y32, label_smoothing=eps))(jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose(float(got), want.item(), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(g), want_grad.numpy(), rtol=1e-4, atol=1e-7)


def test_label_smoothing_may_be_traced():
    z, ids = jnp.asarray(RNG.normal(size=(8, C)), jnp.float32), jnp.asarray(RNG.integers(0, C, 8))
    eps = jnp.array([0.0, 0.2])
    got = jax.vmap(lambda e: losses.softmax_cross_entropy(z, ids, label_smoothing=e))(eps)
    want = [losses.softmax_cross_entropy(z, ids, label_smoothing=float(e)) for e in eps]
    chex.assert_trees_all_close(got, jnp.stack(want), rtol=1e-6)


class WeightedVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_weights_under_jit_and_vmap_give_the_eager_numbers(self):
        z = jnp.asarray(RNG.normal(size=(2, N, C)), jnp.float32)
        ids = jnp.asarray(RNG.integers(0, C, (2, N)))
        w = jnp.asarray(RNG.uniform(0, 1, (2, N)), jnp.float32)
        f = self.variant(jax.vmap(lambda z, y, w: losses.multiclass_hinge(z, y, weights=w)))
        want = [losses.multiclass_hinge(z[i], ids[i], weights=w[i]) for i in range(2)]
        chex.assert_trees_all_close(f(z, ids, w), jnp.stack(want), rtol=1e-6)


# ---------------------------------------------------------------------------
# the README's masked sequence model, trained with fit


def test_a_masked_sequence_model_trains_with_fit_as_the_readme_shows():
    n, t, vocab = 32, 5, 4
    rng = np.random.default_rng(0)
    x = rng.integers(1, vocab, (n, t)).astype(np.int32)
    lengths = rng.integers(2, t + 1, n)
    mask = np.arange(t)[None, :] < lengths[:, None]
    x = np.where(mask, x, 0)
    # label: the token itself; −1 marks padding (the loss weights it 0)
    y = np.where(mask, x, -1).astype(np.int32)
    model = serial(Embedding(vocab, 8), LSTM(8, return_sequences=True), Dense(vocab))

    def masked_ce(logits, y):
        return losses.softmax_cross_entropy(logits, jnp.maximum(y, 0), weights=y >= 0)

    ts, history = train.fit(model, optim.adam(0.1), masked_ce, (x, y), epochs=10,
                            batch_size=32, key=jax.random.key(0), metrics=("loss",),
                            progress=False)
    assert history["loss"][-1] < 0.5 * history["loss"][0]
    logits = np.asarray(model.apply(ts.params, ts.model_state, x)[0], np.float64)
    lp = _logsoftmax(logits)
    want = -(_pick(lp, np.maximum(y, 0)) * mask).sum() / mask.sum()   # float64, mask only
    got = masked_ce(jnp.asarray(logits, jnp.float32), jnp.asarray(y))
    np.testing.assert_allclose(float(got), want, rtol=1e-5)


# ---------------------------------------------------------------------------
# bad input


def _mse(**kw):
    return lambda: losses.mse(jnp.ones((4, 3)), jnp.zeros((4, 3)), **kw)


BAD_INPUT = [
    pytest.param(_mse(weights=jnp.ones(4)), ValueError,
                 r"fnn.losses.mse: weights of shape \(4,\) do not broadcast to the unreduced "
                 r"loss's shape \(4, 3\). Weights per example: add the trailing axes, "
                 r"weights\[:, None\]", id="weights-not-broadcastable"),
    pytest.param(lambda: losses.softmax_cross_entropy(jnp.ones((4, 3)), jnp.zeros(4, int),
                                                      weights=jnp.ones((4, 3))), ValueError,
                 r"softmax_cross_entropy: weights of shape \(4, 3\) do not broadcast to the "
                 r"unreduced loss's shape \(4,\)", id="class-weights-of-the-scores-shape"),
    pytest.param(_mse(weights=np.array(["a"] * 3)), TypeError,
                 r"fnn.losses.mse: weights must be numeric, got dtype <U1", id="weights-strings"),
    pytest.param(_mse(reduction="avg"), ValueError,
                 r"fnn.losses.mse: unknown reduction 'avg'; expected one of "
                 r"\['mean', 'sum', 'none'\]", id="unknown-reduction"),
    pytest.param(_mse(reduction=None), ValueError, r"unknown reduction None",
                 id="reduction-none-object"),
    pytest.param(lambda: losses.softmax_cross_entropy(jnp.ones((4, 3)), jnp.zeros(4, int),
                                                      label_smoothing=1.5), ValueError,
                 r"softmax_cross_entropy: label_smoothing must be in \[0.0, 1.0\], got 1.5",
                 id="label-smoothing-above-1"),
    pytest.param(lambda: losses.softmax_cross_entropy(jnp.ones((4, 3)), jnp.zeros(4, int),
                                                      label_smoothing=-0.1), ValueError,
                 r"label_smoothing must be in \[0.0, 1.0\], got -0.1",
                 id="label-smoothing-negative"),
]


@pytest.mark.parametrize("trigger, exc, match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
