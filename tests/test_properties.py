"""Property tests (hypothesis + chex) over random shapes and hyperparameters.

- every layer's output shape equals `fnn.output_shape` (and, for windows, the
  `fnn.conv_output_size` formula);
- `jit` and non-`jit` agree (`chex.variants`);
- `vmap` over a stack of parameter sets equals a Python loop over them;
- every optimizer leaves the params unchanged for zero gradients (AdamW decays
  them to exactly `p·(1 − lr·wd)` per step) and decreases a convex quadratic;
- losses are non-negative, and zero at the target where they should be.

Hypothesis is bounded and derandomized (`derandomize=True`, a fixed number of
examples, no deadline) so CI runs are stable and a failure replays. Shapes are
tiny and drawn from small ranges: each new shape costs a JAX compilation.
"""
from __future__ import annotations

import functools

import _catalog
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fnn
from fnn import layers as L
from fnn import losses, optim

KEY = jax.random.PRNGKey(0)


def bounded(n: int):
    """Hypothesis settings for CI: `n` derandomized examples, no deadline."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.differing_executors])


def _random_like(tree, seed: int, positive: bool = False):
    """Arrays shaped like the `ShapeDtypeStruct`s in `tree`, drawn with NumPy.

    Tests draw with NumPy rather than `jax.random`: every new shape would
    otherwise compile a threefry kernel (seconds on a loaded CI machine).
    `positive` draws from U(0.5, 1.5) (BatchNorm's running variance must be > 0).
    """
    rng = np.random.default_rng(seed)

    def leaf(s):
        if jnp.issubdtype(s.dtype, jnp.integer):
            return jnp.asarray(rng.integers(0, 3, s.shape), s.dtype)
        a = rng.uniform(0.5, 1.5, s.shape) if positive else rng.normal(size=s.shape)
        return jnp.asarray(a, s.dtype)

    return jax.tree.map(leaf, tree)


def _init(layer, input_shape, seed: int = 0):
    """(params, state) with the layouts `layer.init` gives, filled by `_random_like`."""
    params, state = jax.eval_shape(lambda: layer.init(KEY, tuple(input_shape)))
    return _random_like(params, seed), _random_like(state, seed + 1, positive=True)


def _check_output_shape(layer, input_shape, batch: int, expected=None, **kw):
    """Run `layer` on a real batch; its shape must equal `fnn.output_shape` (and `expected`)."""
    params, state = _init(layer, input_shape)
    x = _random_like(jax.ShapeDtypeStruct((batch, *input_shape), jnp.float32), 2)
    y, _ = layer.apply(params, state, x, **kw)
    predicted = tuple(fnn.output_shape(layer, input_shape))
    assert tuple(y.shape) == (batch, *predicted), (y.shape, predicted)
    if expected is not None:
        assert predicted == tuple(expected), (predicted, expected)
    chex.assert_tree_all_finite(y)


# ---------------------------------------------------------------------------
# 1. output shapes

small = st.integers(1, 3)
_PADDINGS = st.one_of(
    st.sampled_from(["SAME", "VALID", "same"]),
    st.integers(0, 2),
    st.tuples(st.tuples(st.integers(0, 2), st.integers(0, 2)),
              st.tuples(st.integers(0, 2), st.integers(0, 2))),
)


def _expected_spatial(size, kernel, stride, padding, dilation, axis):
    """Output length on one axis from `fnn.conv_output_size`, or None if the window does not fit."""
    if isinstance(padding, tuple):
        padding = padding[axis]
    try:
        return fnn.conv_output_size(size, kernel, stride, padding, dilation=dilation)
    except ValueError:
        return None


@bounded(12)
@given(h=st.integers(3, 7), w=st.integers(3, 7), cin=st.integers(1, 2), features=small,
       kernel=st.tuples(small, small), stride=st.tuples(small, small),
       dilation=st.integers(1, 2), padding=_PADDINGS, batch=st.integers(1, 2))
def test_conv2d_output_shape(h, w, cin, features, kernel, stride, dilation, padding, batch):
    outs = [_expected_spatial(n, k, s, padding, dilation, i)
            for i, (n, k, s) in enumerate(zip((h, w), kernel, stride, strict=True))]
    layer = L.Conv2D(features, kernel, stride=stride, padding=padding, dilation=dilation)
    if None in outs:  # the window does not fit: init must say so, naming Conv2D
        try:
            jax.eval_shape(lambda: layer.init(KEY, (h, w, cin)))
        except ValueError as e:
            assert str(e).startswith("Conv2D:")
            return
        raise AssertionError("Conv2D.init accepted a kernel larger than the padded input")
    _check_output_shape(layer, (h, w, cin), batch, expected=(*outs, features))


@bounded(10)
@given(kind=st.sampled_from(["MaxPool", "AvgPool"]), h=st.integers(2, 6), w=st.integers(2, 6),
       c=small, window=st.tuples(small, small), stride=st.one_of(st.none(), small),
       padding=_PADDINGS, batch=st.integers(1, 2))
def test_pool_output_shape(kind, h, w, c, window, stride, padding, batch):
    strides = window if stride is None else (stride, stride)
    outs = [_expected_spatial(n, k, s, padding, 1, i)
            for i, (n, k, s) in enumerate(zip((h, w), window, strides, strict=True))]
    pads = (padding if isinstance(padding, tuple) else
            ((padding, padding),) * 2 if isinstance(padding, int) else ((0, 0),) * 2)
    # A window made only of padding gives -inf/NaN today (a gap listed in
    # test_bad_input.py); keep every window over at least one real cell.
    if None in outs or any(max(p) >= k for p, k in zip(pads, window, strict=True)):
        return
    layer = getattr(L, kind)(window, stride, padding)
    _check_output_shape(layer, (h, w, c), batch, expected=(*outs, c))


@bounded(6)
@given(lead=st.lists(st.integers(1, 3), min_size=0, max_size=2), cin=small, features=small,
       batch=st.integers(1, 3))
def test_dense_output_shape(lead, cin, features, batch):
    _check_output_shape(L.Dense(features), (*lead, cin), batch, expected=(*lead, features))


@bounded(6)
@given(shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), batch=st.integers(1, 3))
def test_flatten_output_shape(shape, batch):
    _check_output_shape(L.Flatten(), tuple(shape), batch,
                        expected=(int(np.prod(shape)),))


@bounded(6)
@given(kind=st.sampled_from(["LayerNorm", "BatchNorm"]),
       shape=st.lists(st.integers(1, 3), min_size=1, max_size=3), batch=st.integers(2, 3),
       train=st.booleans())
def test_norm_output_shape_is_input_shape(kind, shape, batch, train):
    layer = getattr(L, kind)()
    _check_output_shape(layer, tuple(shape), batch, expected=tuple(shape), train=train)


@bounded(8)
@given(kind=st.sampled_from(["SimpleRNN", "LSTM", "GRU"]), t=st.integers(1, 4),
       features=small, hidden=small, return_sequences=st.booleans(), batch=st.integers(1, 2))
def test_recurrent_output_shape(kind, t, features, hidden, return_sequences, batch):
    layer = getattr(L, kind)(hidden, return_sequences=return_sequences)
    expected = (t, hidden) if return_sequences else (hidden,)
    _check_output_shape(layer, (t, features), batch, expected=expected)


# ---------------------------------------------------------------------------
# 2. jit and non-jit agree (chex variants)

# name -> (layer factory, input_shape, integer input?, train)
_JIT_CASES = {
    "Dense": (lambda: L.Dense(3), (4,), False, False),
    "Conv2D": (lambda: L.Conv2D(2, 3, stride=2, padding=1), (6, 6, 2), False, False),
    "AvgPool": (lambda: L.AvgPool(3, 2, "SAME"), (5, 5, 2), False, False),
    "BatchNorm_train": (lambda: L.BatchNorm(), (4, 3), False, True),
    "Dropout_train": (lambda: L.Dropout(0.5), (4, 3), False, True),
    "Embedding": (lambda: L.Embedding(7, 3), (5,), True, False),
    "LSTM": (lambda: L.LSTM(3), (4, 2), False, False),
    "GRU": (lambda: L.GRU(3, return_sequences=True), (4, 2), False, False),
    "cnn_train": (lambda: fnn.serial(L.Conv2D(2, 3), L.BatchNorm(), fnn.relu, L.MaxPool(2),
                                     L.Flatten(), L.Dropout(0.3), L.Dense(3)),
                  (6, 6, 1), False, True),
}


@functools.cache
def _jit_case(name):
    """(forward(params, state, x, key) -> (y, state), params, state, input shape, int?)."""
    make, shape, integer, train = _JIT_CASES[name]
    layer = make()
    params, state = _init(layer, shape)

    def forward(params, state, x, key):
        return layer.apply(params, state, x, key=key, train=train)

    return forward, params, state, shape, integer


class JitAgreesTest(chex.TestCase):
    """`self.variant(forward)` (jitted or not) equals the plain eager call."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(n, n) for n in _JIT_CASES])
    @bounded(3)
    @given(seed=st.integers(0, 2**31 - 1))
    def test_apply(self, name, seed):
        forward, params, state, shape, integer = _jit_case(name)
        k_drop = jax.random.PRNGKey(seed)
        x = _random_like(jax.ShapeDtypeStruct((2, *shape), jnp.int32 if integer else jnp.float32),
                         seed)
        expected = forward(params, state, x, k_drop)
        got = self.variant(forward)(params, state, x, k_drop)
        chex.assert_trees_all_close(got, expected, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# 3. vmap over a stack of parameter sets equals a loop

_VMAP_CASES = {
    "Dense": (lambda: L.Dense(3), (4,)),
    "Conv2D": (lambda: L.Conv2D(2, 3, padding="VALID"), (5, 5, 1)),
    "LSTM": (lambda: L.LSTM(3, return_sequences=True), (3, 2)),
    "mlp_batchnorm": (lambda: fnn.serial(L.Dense(4), L.BatchNorm(), fnn.tanh, L.Dense(2)), (3,)),
}


MODELS = 3  # parameter sets per vmap (fixed: one compilation per case)


@functools.cache
def _vmap_case(name):
    make, shape = _VMAP_CASES[name]
    layer = make()
    params, state = jax.eval_shape(lambda: layer.init(KEY, shape))
    stacked = jax.tree.map(lambda s: jax.ShapeDtypeStruct((MODELS, *s.shape), s.dtype),
                           (params, state))
    forward = jax.jit(jax.vmap(lambda p, s, x: layer.apply(p, s, x, train=True),
                               in_axes=(0, 0, None)))
    single = jax.jit(lambda p, s, x: layer.apply(p, s, x, train=True))
    return stacked, forward, single, shape


@bounded(8)
@given(name=st.sampled_from(sorted(_VMAP_CASES)), seed=st.integers(0, 2**16))
def test_vmap_over_params_equals_loop(name, seed):
    (p_struct, s_struct), forward, single, shape = _vmap_case(name)
    params = _random_like(p_struct, seed)
    state = _random_like(s_struct, seed + 1, positive=True)
    x = _random_like(jax.ShapeDtypeStruct((2, *shape), jnp.float32), seed + 2)
    ys, states = forward(params, state, x)
    for i in range(MODELS):
        p_i, s_i = jax.tree.map(lambda a, i=i: a[i], (params, state))
        y_i, state_i = single(p_i, s_i, x)
        chex.assert_trees_all_close(ys[i], y_i, rtol=1e-5, atol=1e-6)
        chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], states), state_i,
                                    rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# 4. optimizers: zero gradients, and a convex quadratic

_lr = st.floats(1e-3, 0.1)

# name -> strategy of an Optimizer (hyperparameters drawn at random): the suite's one list
_OPTIMIZERS = _catalog.OPTIMIZERS

_params = st.fixed_dictionaries({
    "w": hnp.arrays(np.float32, (2, 3), elements=st.floats(-3, 3, width=32, allow_subnormal=False)),
    "b": hnp.arrays(np.float32, (), elements=st.floats(-3, 3, width=32, allow_subnormal=False)),
})


@pytest.mark.parametrize("name", sorted(_OPTIMIZERS))
@bounded(3)
@given(data=st.data(), params=_params, steps=st.integers(1, 3))
def test_zero_gradients_leave_params_unchanged(name, data, params, steps):
    opt = data.draw(_OPTIMIZERS[name], label="optimizer")
    state = opt.init(params)
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    for _ in range(steps):
        state, new = opt.update(state, zeros)
    chex.assert_trees_all_equal(new, state.params)
    chex.assert_trees_all_equal(new, jax.tree.map(jnp.asarray, params))
    assert int(state.step) == steps


@bounded(10)
@given(params=_params, lr=_lr, wd=st.floats(0.0, 0.5), steps=st.integers(1, 3))
def test_adamw_zero_gradients_only_decay(params, lr, wd, steps):
    opt = optim.adamw(lr, weight_decay=wd)
    state = opt.init(params)
    zeros = jax.tree.map(jnp.zeros_like, state.params)
    expected = jax.tree.map(jnp.asarray, params)
    for _ in range(steps):
        state, new = opt.update(state, zeros)
        expected = jax.tree.map(lambda p: p * (1 - jnp.float32(lr) * jnp.float32(wd)), expected)
    chex.assert_trees_all_close(new, expected, rtol=1e-6, atol=1e-7)


def _quadratic(p, a, c):
    """f(p) = ½ Σ a·(p − c)², a > 0: convex, minimum 0 at c."""
    return 0.5 * sum(jnp.sum(a[k] * jnp.square(p[k] - c[k])) for k in p)


_quadratic_grad = jax.jit(jax.grad(_quadratic))  # compiled once, shared by every example


@pytest.mark.parametrize("name", sorted(_OPTIMIZERS))
@bounded(2)
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_optimizer_decreases_a_convex_quadratic(name, data, seed):
    opt = data.draw(_OPTIMIZERS[name], label="optimizer")
    rng = np.random.default_rng(seed)
    shapes = {"w": (2, 3), "b": ()}
    a = {k: jnp.asarray(rng.uniform(0.5, 2.0, s), jnp.float32) for k, s in shapes.items()}
    c = {k: jnp.asarray(rng.uniform(-1, 1, s), jnp.float32) for k, s in shapes.items()}
    sign = {k: rng.choice([-1.0, 1.0], s) for k, s in shapes.items()}
    p0 = {k: c[k] + jnp.asarray(sign[k] * rng.uniform(0.5, 1.5, s), jnp.float32)
          for k, s in shapes.items()}
    state = opt.init(p0)
    for _ in range(25):
        state, params = opt.update(state, _quadratic_grad(state.params, a, c))
    chex.assert_tree_all_finite(params)
    before, after = float(_quadratic(p0, a, c)), float(_quadratic(params, a, c))
    assert after < before, (name, before, after)


# ---------------------------------------------------------------------------
# 5. losses: non-negative, zero at the target

# a few fixed shapes: each new shape recompiles every eager op of every loss
_shapes = st.sampled_from([(1, 1), (3, 2), (2, 4)])


def _floats(shape, lo=-10.0, hi=10.0):
    # no subnormals: XLA on CPU flushes them to zero, numpy does not
    return hnp.arrays(np.float32, shape,
                      elements=st.floats(lo, hi, width=32, allow_subnormal=False))


_NONNEG_REGRESSION = ["mse", "mae", "msle", "mape", "huber", "smooth_l1"]


@bounded(15)
@given(data=st.data(), name=st.sampled_from(_NONNEG_REGRESSION), shape=_shapes)
def test_regression_losses_nonnegative_and_zero_at_target(data, name, shape):
    fn = getattr(losses, name)
    pred = data.draw(_floats(shape), label="pred")
    y = data.draw(_floats(shape), label="y")
    assert float(fn(pred, y)) >= 0.0
    assert float(fn(y, y)) == 0.0


@bounded(10)
@given(data=st.data(), shape=_shapes)
def test_binary_losses_nonnegative(data, shape):
    z = data.draw(_floats(shape), label="logits")
    y01 = data.draw(hnp.arrays(np.float32, shape, elements=st.sampled_from([0.0, 1.0])),
                    label="y")
    p = data.draw(_floats(shape, 0.0, 1.0), label="probs")
    assert float(losses.sigmoid_binary_cross_entropy(z, y01)) >= 0.0
    assert float(losses.binary_cross_entropy(p, y01)) >= 0.0
    # zero at the target, up to the clip into [1e-7, 1 − 1e-7]
    assert float(losses.binary_cross_entropy(y01, y01)) <= 1e-6
    ypm = 2.0 * y01 - 1.0
    assert float(losses.hinge(z, ypm)) >= 0.0
    assert float(losses.exponential(z, ypm)) > 0.0
    assert float(losses.hinge(2.0 * ypm, ypm)) == 0.0  # y·s = 2 >= 1: no loss


@bounded(10)
@given(data=st.data(), shape=st.sampled_from([(1, 2), (3, 4)]))
def test_class_losses_nonnegative_and_zero_at_target(data, shape):
    n, classes = shape
    z = data.draw(_floats((n, classes)), label="scores")
    ids = data.draw(hnp.arrays(np.int32, (n,), elements=st.integers(0, classes - 1)),
                    label="ids")
    onehot = jax.nn.one_hot(ids, classes)
    probs = fnn.softmax(z)
    log_probs = fnn.log_softmax(z)
    margin = data.draw(st.floats(0.0, 2.0), label="margin")
    assert float(losses.softmax_cross_entropy(z, ids)) >= 0.0
    assert float(losses.softmax_cross_entropy(z, onehot)) >= 0.0
    assert float(losses.cross_entropy(probs, onehot)) >= 0.0
    assert float(losses.nll(log_probs, ids)) >= 0.0
    assert float(losses.multiclass_hinge(z, ids, margin=margin)) >= 0.0
    # zero at the target
    assert float(losses.cross_entropy(onehot, onehot)) == 0.0
    assert float(losses.nll(jnp.log(onehot), ids)) == 0.0
    separated = onehot * (margin + 1.0)  # the true class leads every other by margin + 1
    assert float(losses.multiclass_hinge(separated, ids, margin=margin)) == 0.0
