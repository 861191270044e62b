"""Recurrent layers: SimpleRNN / LSTM / GRU against float64 numpy references of API.md §1."""
from functools import partial

import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn.layers import (
    GRU,
    LSTM,
    Bidirectional,
    Dense,
    LSTMCarry,
    RNNCarry,
    SimpleRNN,
    gru_cell,
    lstm_cell,
    simple_rnn_cell,
)

# ---------------------------------------------------------------------------
# independent float64 numpy references (the equations of API.md §1)


def _sig(z):
    return 1.0 / (1.0 + np.exp(-z))


def np_simple_rnn(p, x, act=np.tanh):
    wx, wh, b = (np.asarray(p[k], np.float64) for k in ("w_x", "w_h", "b"))
    h = np.zeros((x.shape[0], wh.shape[0]))
    hs = []
    for t in range(x.shape[1]):
        h = act(x[:, t] @ wx + h @ wh + b)
        hs.append(h)
    return np.stack(hs, axis=1)


def np_lstm(p, x):
    wx, wh, b = (np.asarray(p[k], np.float64) for k in ("w_x", "w_h", "b"))
    hid = wh.shape[0]
    h = np.zeros((x.shape[0], hid))
    c = np.zeros_like(h)
    hs = []
    for t in range(x.shape[1]):
        z = x[:, t] @ wx + h @ wh + b
        i, f = _sig(z[:, :hid]), _sig(z[:, hid:2 * hid])
        g, o = np.tanh(z[:, 2 * hid:3 * hid]), _sig(z[:, 3 * hid:])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
    return np.stack(hs, axis=1)


def np_gru(p, x):
    wx, wh, bx, bh = (np.asarray(p[k], np.float64) for k in ("w_x", "w_h", "b_x", "b_h"))
    hid = wh.shape[0]
    h = np.zeros((x.shape[0], hid))
    hs = []
    for t in range(x.shape[1]):
        a = x[:, t] @ wx + bx
        m = h @ wh + bh
        r = _sig(a[:, :hid] + m[:, :hid])
        z = _sig(a[:, hid:2 * hid] + m[:, hid:2 * hid])
        n = np.tanh(a[:, 2 * hid:] + r * m[:, 2 * hid:])
        h = (1 - z) * n + z * h
        hs.append(h)
    return np.stack(hs, axis=1)


REFERENCES = {"SimpleRNN": np_simple_rnn, "LSTM": np_lstm, "GRU": np_gru}
CONSTRUCTORS = {"SimpleRNN": SimpleRNN, "LSTM": LSTM, "GRU": GRU}


def _randomised(seed, params):
    """Layer params with every leaf (biases included) replaced by a random draw.

    Test data come from numpy (no per-shape XLA compilations in eager mode).
    """
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda a: jnp.asarray(0.5 * rng.standard_normal(a.shape), jnp.float32),
                        params)


def _setup(name, key, hidden=5, features=3, t=7, n=2, **kw):
    layer = CONSTRUCTORS[name](hidden, **kw)
    params, state = layer.init(key, (t, features))
    seed = int(jax.random.randint(key, (), 0, 2**30))
    params = _randomised(seed, params)
    x = np.random.default_rng(seed + 1).standard_normal((n, t, features)).astype(np.float32)
    return layer, params, state, jnp.asarray(x)


# ---------------------------------------------------------------------------
# forward against the references


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_layer_matches_numpy_reference(name, return_sequences, key):
    layer, params, state, x = _setup(name, key, return_sequences=return_sequences)
    y, new_state = layer.apply(params, state, x)
    expected = REFERENCES[name](params, np.asarray(x, np.float64))
    expected = expected if return_sequences else expected[:, -1]
    chex.assert_shape(y, expected.shape)
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=2e-5, rtol=2e-5)
    assert new_state == state == {}


def test_simple_rnn_activation_by_name(key):
    layer, params, state, x = _setup("SimpleRNN", key, activation="relu", return_sequences=True)
    y, _ = layer.apply(params, state, x)
    expected = np_simple_rnn(params, np.asarray(x, np.float64), act=lambda z: np.maximum(z, 0))
    chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=2e-5, rtol=2e-5)


def test_param_layouts(key):
    shapes = lambda layer: jax.tree.map(jnp.shape, layer.init(key, (4, 3))[0])
    assert shapes(SimpleRNN(5)) == {"w_x": (3, 5), "w_h": (5, 5), "b": (5,)}
    assert shapes(LSTM(5)) == {"w_x": (3, 20), "w_h": (5, 20), "b": (20,)}
    assert shapes(GRU(5)) == {"w_x": (3, 15), "w_h": (5, 15), "b_x": (15,), "b_h": (15,)}


@pytest.mark.parametrize("name,blocks", [("SimpleRNN", 1), ("LSTM", 4), ("GRU", 3)])
def test_recurrent_weights_orthogonal_per_gate_block(name, blocks, key):
    params, _ = CONSTRUCTORS[name](5).init(key, (4, 3))
    for j in range(blocks):
        block = np.asarray(params["w_h"][:, 5 * j:5 * (j + 1)], np.float64)
        np.testing.assert_allclose(block.T @ block, np.eye(5), atol=1e-5)


def test_lstm_forget_bias_option(key):
    b = LSTM(5).init(key, (4, 3))[0]["b"]  # blocks [i | f | g | o] of 5
    np.testing.assert_array_equal(b, np.r_[np.zeros(5), np.ones(5), np.zeros(10)])
    b0 = LSTM(5, forget_bias=0.0).init(key, (4, 3))[0]["b"]
    np.testing.assert_array_equal(b0, np.zeros(20))
    b2 = LSTM(5, forget_bias=2.5).init(key, (4, 3))[0]["b"]
    np.testing.assert_array_equal(b2[5:10], np.full(5, 2.5))


def test_lstm_hand_countable_one_step():
    # All weights zero, bias b: z = b, so i=f=o=σ(b), g=tanh(b), c = σ(b)tanh(b), h = σ(b)tanh(c).
    hid = 2
    params = {"w_x": jnp.zeros((1, 4 * hid)), "w_h": jnp.zeros((hid, 4 * hid)),
              "b": jnp.full((4 * hid,), 0.5)}
    y, _ = LSTM(hid).apply(params, {}, jnp.ones((1, 1, 1)))
    s, g = _sig(0.5), np.tanh(0.5)
    np.testing.assert_allclose(y, np.full((1, hid), s * np.tanh(s * g)), rtol=1e-6)


@pytest.mark.parametrize("unroll", [2, 3, 8])
def test_unroll_gives_identical_results(unroll, key):
    layer, params, state, x = _setup("LSTM", key, return_sequences=True)
    fast = LSTM(5, return_sequences=True, unroll=unroll)
    chex.assert_trees_all_close(fast.apply(params, state, x)[0], layer.apply(params, state, x)[0],
                                atol=1e-6)


# ---------------------------------------------------------------------------
# the cell functions


def _scan_cell(cell, params, carry, x, **kw):
    step = lambda c, x_t: cell(params, c, x_t, **kw)
    carry, hs = jax.lax.scan(step, carry, jnp.swapaxes(x, 0, 1))
    return carry, jnp.swapaxes(hs, 0, 1)


@pytest.mark.parametrize("name,cell,carry", [
    ("SimpleRNN", simple_rnn_cell, RNNCarry), ("LSTM", lstm_cell, LSTMCarry),
    ("GRU", gru_cell, RNNCarry)])
def test_cell_in_lax_scan_matches_layer(name, cell, carry, key):
    layer, params, state, x = _setup(name, key, return_sequences=True)
    final, hs = _scan_cell(cell, params, carry.zeros(2, 5), x)
    assert isinstance(final, carry)
    chex.assert_trees_all_close(hs, layer.apply(params, state, x)[0], atol=1e-6)
    chex.assert_trees_all_close(final.h, hs[:, -1])


def test_lstm_cell_carry_fields_and_projected_variant(key):
    _, params, _, x = _setup("LSTM", key)
    carry = LSTMCarry(h=0.1 * jnp.ones((2, 5)), c=-0.2 * jnp.ones((2, 5)))
    new, h = lstm_cell(params, carry, x[:, 0])
    assert new._fields == ("h", "c")
    xw = x[:, 0] @ params["w_x"] + params["b"][None, :]
    new_p, h_p = lstm_cell({"w_h": params["w_h"]}, carry, xw, projected=True)
    chex.assert_trees_all_close((new_p, h_p), (new, h), atol=1e-6)
    # one step against the equations
    hid = 5
    z = np.asarray(xw, np.float64) + 0.1 * np.ones((2, 5)) @ np.asarray(params["w_h"], np.float64)
    c = _sig(z[:, hid:2 * hid]) * -0.2 + _sig(z[:, :hid]) * np.tanh(z[:, 2 * hid:3 * hid])
    np.testing.assert_allclose(new.c, c, atol=1e-5)
    np.testing.assert_allclose(h, _sig(z[:, 3 * hid:]) * np.tanh(c), atol=1e-5)


# ---------------------------------------------------------------------------
# chex variants: the LSTM forward with and without jit


class LSTMVariantsTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("last", False), ("sequences", True))
    def test_lstm_forward(self, return_sequences):
        layer, params, state, x = _setup("LSTM", jax.random.key(0),
                                         return_sequences=return_sequences)
        y = self.variant(lambda p, x: layer.apply(p, state, x)[0])(params, x)
        expected = np_lstm(params, np.asarray(x, np.float64))
        expected = expected if return_sequences else expected[:, -1]
        chex.assert_trees_all_close(np.asarray(y, np.float64), expected, atol=2e-5)

    @chex.variants(with_jit=True, without_jit=True)
    def test_lstm_forward_with_lengths(self):
        layer, params, state, x = _setup("LSTM", jax.random.key(1))
        lengths = jnp.array([4, 7])
        y = self.variant(lambda p, x, n: layer.apply(p, state, x, lengths=n)[0])(params, x, lengths)
        expected = np_lstm(params, np.asarray(x, np.float64))
        chex.assert_trees_all_close(np.asarray(y, np.float64), expected[[0, 1], [3, 6]], atol=2e-5)


# ---------------------------------------------------------------------------
# padded batches


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_lengths_equal_running_each_sequence_alone(name, return_sequences, key):
    layer, params, state, x = _setup(name, key, n=3, t=8, return_sequences=return_sequences)
    lengths = np.array([3, 8, 5])
    # garbage in the padding (even non-finite) must not matter
    pad = np.arange(8)[None, :, None] >= lengths[:, None, None]
    x = jnp.where(pad, jnp.inf, x)
    y, _ = layer.apply(params, state, x, lengths=jnp.asarray(lengths, jnp.int32))
    chex.assert_tree_all_finite(y)
    for i, n in enumerate(lengths):
        alone, _ = layer.apply(params, state, x[i:i + 1, :n])
        if return_sequences:
            chex.assert_trees_all_close(y[i, :n], alone[0], atol=1e-6)
            np.testing.assert_array_equal(y[i, n:], 0.0)
        else:
            chex.assert_trees_all_close(y[i], alone[0], atol=1e-6)


def test_padding_does_not_change_gradients(key):
    layer, params, state, x = _setup("GRU", key, n=2, t=6)
    lengths = jnp.array([2, 6])
    pad = (jnp.arange(6)[None, :] >= lengths[:, None])[:, :, None]
    loss = lambda p, x: jnp.sum(layer.apply(p, state, x, lengths=lengths)[0] ** 2)
    g_zero = jax.grad(loss)(params, jnp.where(pad, 0.0, x))
    g_garbage = jax.grad(loss)(params, jnp.where(pad, jnp.nan, x))
    chex.assert_tree_all_finite(g_garbage)
    chex.assert_trees_all_close(g_garbage, g_zero, atol=1e-6)


def test_full_lengths_equal_no_lengths(key):
    layer, params, state, x = _setup("LSTM", key, return_sequences=True)
    chex.assert_trees_all_close(layer.apply(params, state, x, lengths=jnp.array([7, 7]))[0],
                                layer.apply(params, state, x)[0], atol=1e-6)


def test_lengths_forwarded_through_serial(key):
    model = fnn.serial(LSTM(5, return_sequences=True), GRU(5))
    params, state = model.init(key, (6, 3))
    assert set(params) == {"0_LSTM", "1_GRU"}
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 3)), jnp.float32)
    y, _ = model.apply(params, state, x, lengths=jnp.array([3, 6]))
    alone, _ = model.apply(params, state, x[:1, :3])
    chex.assert_trees_all_close(y[0], alone[0], atol=1e-6)
    assert fnn.output_shape(model, (6, 3)) == (5,)


# ---------------------------------------------------------------------------
# Bidirectional


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_equals_reversed_by_hand(return_sequences, key):
    inner = LSTM(5, return_sequences=return_sequences)
    layer = Bidirectional(inner)
    params, state = layer.init(key, (6, 3))
    assert set(params) == {"forward", "backward"}
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 3)), jnp.float32)
    y, _ = layer.apply(params, state, x)
    yf, _ = inner.apply(params["forward"], {}, x)
    yb, _ = inner.apply(params["backward"], {}, x[:, ::-1])
    if return_sequences:
        yb = yb[:, ::-1]
    chex.assert_trees_all_close(y, jnp.concatenate([yf, yb], axis=-1), atol=1e-6)
    assert not np.allclose(params["forward"]["w_x"], params["backward"]["w_x"])


@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_with_lengths_reverses_only_the_valid_prefix(return_sequences, key):
    inner = GRU(5, return_sequences=return_sequences)
    layer = Bidirectional(inner)
    params, state = layer.init(key, (6, 3))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 6, 3)), jnp.float32)
    lengths = [4, 6]
    y, _ = layer.apply(params, state, x, lengths=jnp.array(lengths))
    for i, n in enumerate(lengths):
        seq = x[i:i + 1, :n]
        yf, _ = inner.apply(params["forward"], {}, seq)
        yb, _ = inner.apply(params["backward"], {}, seq[:, ::-1])
        if return_sequences:
            expected = jnp.concatenate([yf, yb[:, ::-1]], axis=-1)[0]
            chex.assert_trees_all_close(y[i, :n], expected, atol=1e-6)
            np.testing.assert_array_equal(y[i, n:], 0.0)
        else:
            chex.assert_trees_all_close(y[i], jnp.concatenate([yf, yb], axis=-1)[0], atol=1e-6)


def test_bidirectional_merge_modes(key):
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 3)), jnp.float32)
    params, _ = Bidirectional(SimpleRNN(5)).init(key, (5, 3))
    ys = {m: Bidirectional(SimpleRNN(5), merge=m).apply(params, {}, x)[0]
          for m in ("concat", "sum", "mul", "mean")}
    f, b = ys["concat"][:, :5], ys["concat"][:, 5:]
    chex.assert_trees_all_close((ys["sum"], ys["mul"], ys["mean"]), (f + b, f * b, (f + b) / 2),
                                atol=1e-6)
    with pytest.raises(ValueError, match=r"Bidirectional: unknown merge 'max'"):
        Bidirectional(SimpleRNN(4), merge="max")
    with pytest.raises(TypeError, match=r"^Bidirectional: expected a fnn\.Layer or a callable "
                                        r"f\(x\) -> y, got <function LSTM .*Did you forget"):
        Bidirectional(LSTM)             # the error names the function given the class


def test_recurrent_layers_declare_lengths_and_bidirectional_passes_it_on(key):
    assert LSTM(3).keywords == GRU(3).keywords == frozenset({"lengths", "initial_state"})
    assert Bidirectional(SimpleRNN(3)).keywords == frozenset({"lengths"})
    model = fnn.serial(Bidirectional(LSTM(3, return_sequences=True)), LSTM(2))
    x = jnp.asarray(np.random.default_rng(1).standard_normal((2, 6, 4)), jnp.float32)
    params, state = model.init(key, (6, 4))
    lengths = jnp.array([6, 3])
    y, _ = model.apply(params, state, x, lengths=lengths)
    alone, _ = model.apply(params, state, x[1:, :3])      # the padded sequence on its own
    np.testing.assert_allclose(y[1], alone[0], rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------
# gradients


def test_lstm_grad_over_50_steps_matches_finite_differences():
    rng = np.random.default_rng(3)
    with jax.enable_x64(True):
        layer = LSTM(3)
        params, _ = layer.init(jax.random.key(3), (50, 2))
        flat, unravel = jax.flatten_util.ravel_pytree(
            jax.tree.map(lambda a: np.asarray(a, np.float64), params))
        x = jnp.asarray(rng.standard_normal((2, 50, 2)))
        w = jnp.asarray(rng.standard_normal((2, 3)))
        loss = jax.jit(lambda f: jnp.sum(layer.apply(unravel(f), {}, x)[0] * w))
        grad = np.asarray(jax.jit(jax.grad(loss))(flat))
        assert grad.dtype == np.float64
        flat = np.asarray(flat)
        eps = 1e-6
        for _ in range(3):  # directional derivatives along random directions
            v = rng.standard_normal(flat.shape)
            fd = (float(loss(flat + eps * v)) - float(loss(flat - eps * v))) / (2 * eps)
            np.testing.assert_allclose(grad @ v, fd, rtol=1e-6, atol=1e-9)
        for i in rng.choice(flat.size, 5, replace=False):  # and single coordinates
            e = np.zeros_like(flat)
            e[i] = eps
            fd = (float(loss(flat + e)) - float(loss(flat - e))) / (2 * eps)
            np.testing.assert_allclose(grad[i], fd, rtol=1e-5, atol=1e-9)


def _global_norm_clip(grads, max_norm):
    norm = jnp.sqrt(sum(jnp.sum(g ** 2) for g in jax.tree.leaves(grads)))
    scale = jnp.minimum(1.0, max_norm / (norm + 1e-6))
    return jax.tree.map(lambda g: g * scale, grads), norm


def test_gradient_clipping_keeps_exploding_rnn_finite(key):
    # Linear RNN with w_h = 2·I: activations grow like 2^T, gradients explode.
    layer = SimpleRNN(5, activation="identity")
    params, _ = layer.init(key, (20, 3))
    params = dict(params, w_h=2.0 * jnp.eye(5))
    x = jnp.asarray(np.random.default_rng(0).standard_normal((3, 20, 3)), jnp.float32)
    loss = jax.jit(lambda p: jnp.mean(layer.apply(p, {}, x)[0] ** 2))

    @partial(jax.jit, static_argnums=1)
    def sgd_step(p, clip):
        g = jax.grad(loss)(p)
        norm = jnp.sqrt(sum(jnp.sum(a ** 2) for a in jax.tree.leaves(g)))
        if clip:
            g, norm = _global_norm_clip(g, 1.0)
        return jax.tree.map(lambda a, b: a - 0.01 * b, p, g), norm

    def train(clip):
        p, norms = params, []
        for _ in range(5):
            p, norm = sgd_step(p, clip)
            norms.append(norm)
        return p, norms

    unclipped, _ = train(clip=False)
    assert not all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(unclipped))
    clipped, norms = train(clip=True)
    assert norms[0] > 1e6  # the gradient really explodes
    chex.assert_tree_all_finite(clipped)
    chex.assert_tree_all_finite(loss(clipped))


# ---------------------------------------------------------------------------
# transformations and compilation


def test_vmap_over_independent_parameter_sets(key):
    layer = GRU(5, return_sequences=True)
    keys = jax.random.split(key, 3)
    sets = [layer.init(k, (5, 3))[0] for k in keys]
    stacked = jax.tree.map(lambda *a: jnp.stack(a), *sets)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 5, 3)), jnp.float32)
    forward = lambda p: layer.apply(p, {}, x, lengths=jnp.array([3, 5]))[0]
    ys = jax.jit(jax.vmap(forward))(stacked)
    chex.assert_shape(ys, (3, 2, 5, 5))
    single = jax.jit(forward)
    for i, p in enumerate(sets):
        chex.assert_trees_all_close(ys[i], single(p), atol=1e-6)


def _jaxpr(layer, params, t):
    x = jnp.zeros((2, t, 3))
    return jax.make_jaxpr(lambda p, x: layer.apply(p, {}, x)[0])(params, x)


def _scan_eqns(jaxpr):
    return [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan"]


@pytest.mark.parametrize("projection", ["per_step", "hoisted"])
@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_compiles_one_scan_whose_size_does_not_grow_with_t(name, projection, key):
    layer = CONSTRUCTORS[name](5, input_projection=projection)
    params, _ = layer.init(key, (10, 3))
    short, long = _jaxpr(layer, params, 10), _jaxpr(layer, params, 1000)
    scans = _scan_eqns(short), _scan_eqns(long)
    assert len(scans[0]) == len(scans[1]) == 1
    assert scans[0][0].params["length"] == 10 and scans[1][0].params["length"] == 1000
    assert len(short.jaxpr.eqns) == len(long.jaxpr.eqns)
    body = lambda s: len(s.params["jaxpr"].jaxpr.eqns)
    assert body(scans[0][0]) == body(scans[1][0])
    # "hoisted": the input projection is one dot_general outside the scan;
    # "per_step": none outside, and the step body holds both products (x_t w_x, h w_h)
    outside = [e.primitive.name for e in long.jaxpr.eqns]
    inside = [e.primitive.name for e in scans[1][0].params["jaxpr"].jaxpr.eqns]
    assert outside.count("dot_general") == (1 if projection == "hoisted" else 0)
    assert inside.count("dot_general") == (1 if projection == "hoisted" else 2)


@pytest.mark.parametrize("name", ["LSTM", "GRU", "SimpleRNN"])
def test_hoisted_and_per_step_projection_agree_in_values_and_grads(name, key):
    per_step = CONSTRUCTORS[name](4, return_sequences=True)
    hoisted = CONSTRUCTORS[name](4, return_sequences=True, input_projection="hoisted")
    params, _ = per_step.init(key, (6, 3))
    x = jax.random.normal(jax.random.key(1), (3, 6, 3))
    lengths = jnp.array([6, 2, 4])

    def loss(layer, p):
        return jnp.sum(jnp.sin(layer.apply(p, {}, x, lengths=lengths)[0]))

    chex.assert_trees_all_close(per_step.apply(params, {}, x, lengths=lengths)[0],
                                hoisted.apply(params, {}, x, lengths=lengths)[0], atol=1e-6)
    chex.assert_trees_all_close(jax.grad(partial(loss, per_step))(params),
                                jax.grad(partial(loss, hoisted))(params), atol=1e-5)


def test_unknown_input_projection_is_a_clear_error():
    with pytest.raises(ValueError, match=r"LSTM: unknown input_projection 'fused'; expected one "
                                         r"of \['per_step', 'hoisted'\]"):
        LSTM(4, input_projection="fused")


def test_jit_traces_once_per_shape(key):
    layer = LSTM(5)
    params, _ = layer.init(key, (5, 3))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def forward(p, x):
        return layer.apply(p, {}, x)[0]

    x = jnp.ones((2, 5, 3))
    forward(params, x)
    forward(params, x + 1)


# ---------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_rank2_input_raises(name, key):
    layer, params, state, x = _setup(name, key)
    with pytest.raises(ValueError, match=rf"{name}: expected a rank-3 input \(N, T, 3\).*"
                                         r"got shape \(2, 3\)"):
        layer.apply(params, state, x[:, 0])


@pytest.mark.parametrize("name", ["SimpleRNN", "LSTM", "GRU"])
def test_feature_size_mismatch_raises(name, key):
    layer, params, state, _ = _setup(name, key, features=3)
    with pytest.raises(ValueError, match=rf"{name}: expected input features \(last axis\) 3 "
                                         r"\(from init\), got 4"):
        layer.apply(params, state, jnp.ones((2, 7, 4)))


def test_integer_sequence_raises_type_error(key):
    layer, params, state, _ = _setup("LSTM", key)
    with pytest.raises(TypeError, match="LSTM: expected a floating-point input"):
        layer.apply(params, state, jnp.ones((2, 7, 3), jnp.int32))


@pytest.mark.parametrize("lengths,match", [
    (jnp.array([3]), r"LSTM: expected lengths of shape \(2,\).*got shape \(1,\)"),
    (jnp.array([[3, 3]]), r"LSTM: expected lengths of shape \(2,\).*got shape \(1, 2\)"),
    (jnp.array([3, 8]), r"LSTM: every length must be in \[1, 7\].*got 8"),
    (jnp.array([0, 3]), r"LSTM: every length must be in \[1, 7\].*got 0"),
])
def test_bad_lengths_raise_value_error(lengths, match, key):
    layer, params, state, x = _setup("LSTM", key)
    with pytest.raises(ValueError, match=match):
        layer.apply(params, state, x, lengths=lengths)


def test_float_lengths_raise_type_error(key):
    layer, params, state, x = _setup("GRU", key)
    with pytest.raises(TypeError, match="GRU: expected integer lengths, got dtype float32"):
        layer.apply(params, state, x, lengths=jnp.array([3.0, 4.0]))


def test_traced_lengths_skip_value_check_but_keep_shape_check(key):
    layer, params, state, x = _setup("LSTM", key)
    f = jax.jit(lambda n: layer.apply(params, state, x, lengths=n)[0])
    chex.assert_shape(f(jnp.array([2, 7])), (2, 5))
    with pytest.raises(ValueError, match=r"LSTM: expected lengths of shape \(2,\)"):
        f(jnp.array([2, 7, 7]))


@pytest.mark.parametrize("ctor", [SimpleRNN, LSTM, GRU])
def test_bad_hyperparameters_raise(ctor):
    name = ctor.__name__
    with pytest.raises(ValueError, match=rf"{name}: hidden must be a positive int, got 0"):
        ctor(0)
    with pytest.raises(ValueError, match=rf"{name}: hidden must be a positive int, got -3"):
        ctor(-3)
    with pytest.raises(TypeError, match=rf"{name}: hidden must be a positive int, got 2.5"):
        ctor(2.5)
    with pytest.raises(ValueError, match=rf"{name}: unroll must be a positive int, got 0"):
        ctor(4, unroll=0)
    with pytest.raises(ValueError, match=rf"{name}: expected input_shape \(T, features\)"):
        ctor(4).init(jax.random.key(0), (3,))


def test_unknown_activation_raises():
    with pytest.raises(ValueError, match="SimpleRNN: .*unknown activation 'swoosh'"):
        SimpleRNN(4, activation="swoosh")


def test_bidirectional_errors(key):
    layer = Bidirectional(LSTM(5))
    params, state = layer.init(key, (5, 3))
    with pytest.raises(ValueError, match=r"Bidirectional: expected a rank-3 input"):
        layer.apply(params, state, jnp.ones((2, 2)))
    with pytest.raises(ValueError, match=r"Bidirectional: every length must be in \[1, 5\]"):
        layer.apply(params, state, jnp.ones((2, 5, 3)), lengths=jnp.array([1, 6]))
    no_lengths = Bidirectional(Dense(3))
    p, s = no_lengths.init(key, (5, 3))
    with pytest.raises(TypeError, match="Bidirectional: the wrapped layer Dense does not accept"):
        no_lengths.apply(p, s, jnp.ones((2, 5, 3)), lengths=jnp.array([1, 5]))


# ---------------------------------------------------------------------------
# models


def test_lstm_classifier_shapes_and_keys(key):
    model = fnn.models.lstm_classifier(5, 4)
    params, state = model.init(key, (9, 3))
    assert set(params) == {"0_LSTM", "1_Dense"}
    y, _ = model.apply(params, state, jnp.ones((2, 9, 3)), lengths=jnp.array([4, 9]))
    chex.assert_shape(y, (2, 4))


@pytest.mark.parametrize("cell,name", [("rnn", "SimpleRNN"), ("lstm", "LSTM"), ("gru", "GRU")])
def test_rnn_classifier_cells(cell, name, key):
    model = fnn.models.rnn_classifier(5, 3, cell=cell, num_layers=2)
    params, _ = model.init(key, (4, 3))
    assert set(params) == {f"0_{name}", f"1_{name}", "2_Dense"}
    assert fnn.output_shape(model, (4, 3)) == (3,)
    bi = fnn.models.rnn_classifier(5, 3, cell=cell, bidirectional=True)
    assert fnn.output_shape(bi, (4, 3)) == (3,)
    with pytest.raises(ValueError, match="rnn_classifier: unknown cell 'lstn'"):
        fnn.models.rnn_classifier(5, 3, cell="lstn")


def test_char_lstm_logits_per_step(key):
    model = fnn.models.char_lstm(11, 5)
    params, state = model.init(key, (7,))
    assert set(params) == {"0_Embedding", "1_LSTM", "2_Dense"}
    ids = jax.random.randint(key, (2, 7), 0, 11)
    y, _ = model.apply(params, state, ids)
    chex.assert_shape(y, (2, 7, 11))
    assert fnn.output_shape(model, (7,)) == (7, 11)


# ---------------------------------------------------------------------------
# the public cells check their arguments (while tracing: types and shapes only)

_GATES = {"SimpleRNN": 1, "LSTM": 4, "GRU": 3}


def _cell_params(name, features=3, hidden=5):
    """Zero params in the layer's layout (NumPy: no XLA compilation for error tests)."""
    g = _GATES[name] * hidden
    params = {"w_x": np.zeros((features, g), np.float32), "w_h": np.zeros((hidden, g), np.float32)}
    biases = ("b_x", "b_h") if name == "GRU" else ("b",)
    return {**params, **{b: np.zeros((g,), np.float32) for b in biases}}


_X = np.ones((2, 3), np.float32)
_LSTM_P = _cell_params("LSTM")


@pytest.mark.parametrize("call, error, match", [
    (lambda: lstm_cell(_LSTM_P, LSTMCarry.zeros(2, 5), np.ones((2, 2), np.float32)), ValueError,
     r"lstm_cell: expected input features \(last axis\) 3 .*got 2 in input of shape \(2, 2\)"),
    (lambda: lstm_cell(_LSTM_P, LSTMCarry.zeros(2, 4), _X), ValueError,
     r"lstm_cell: expected carry\.h of shape \(2, 5\) .*got \(2, 4\)"),
    (lambda: lstm_cell(_LSTM_P, LSTMCarry.zeros(3, 5), _X), ValueError,
     r"lstm_cell: expected carry\.h of shape \(2, 5\) \(N from x_t, H from params\['w_h'\]\), "
     r"got \(3, 5\)"),
    (lambda: lstm_cell(_LSTM_P, LSTMCarry(jnp.zeros((2, 5)), jnp.zeros((2, 1))), _X), ValueError,
     r"lstm_cell: expected carry\.c of shape \(2, 5\) .*got \(2, 1\)"),
    (lambda: lstm_cell(_LSTM_P, jnp.zeros((2, 5)), _X), TypeError,
     r"lstm_cell: carry must be an LSTMCarry\(h, c\), got an array of dtype float32 and shape "
     r"\(2, 5\); start from LSTMCarry\.zeros\(N, H\)"),
    (lambda: gru_cell(_LSTM_P, RNNCarry.zeros(2, 5), _X), ValueError,
     r"gru_cell: GRU: params must be a dict with 'w_h', 'w_x', 'b_x' and 'b_h' \(as returned by "
     r"GRU\.init\), got a dict with keys \['b', 'w_h', 'w_x'\]; 'b_x' and 'b_h' are missing"),
    (lambda: lstm_cell(_cell_params("SimpleRNN"), LSTMCarry.zeros(2, 5), _X), ValueError,
     r"lstm_cell: LSTM: params 'w_h' must have shape \(5, 20\), got \(5, 5\)"),
    (lambda: simple_rnn_cell(_cell_params("SimpleRNN"), LSTMCarry.zeros(2, 5), _X), TypeError,
     r"simple_rnn_cell: carry must be an RNNCarry\(h\), got a LSTMCarry"),
    (lambda: simple_rnn_cell(_cell_params("SimpleRNN"), RNNCarry.zeros(2, 5), np.ones(3)),
     ValueError, r"simple_rnn_cell: expected a rank-2 input \(N, 3\).*got shape \(3,\)"),
    (lambda: gru_cell(_cell_params("GRU"), RNNCarry.zeros(2, 5), np.ones((2, 3), np.int32)),
     TypeError, r"gru_cell: expected a floating-point input, got dtype int32"),
    (lambda: gru_cell(_cell_params("GRU"), RNNCarry.zeros(2, 5), _X, projected=True), ValueError,
     r"gru_cell: expected projected features .* 15 .*got 3 in input of shape \(2, 3\)"),
    (lambda: lstm_cell((_LSTM_P, {}), LSTMCarry.zeros(2, 5), _X), TypeError,
     r"lstm_cell: LSTM: params must be a dict .*did you pass the \(params, state\) pair"),
], ids=["features", "hidden", "batch", "carry-c", "carry-array", "lstm-params-to-gru",
        "rnn-params-to-lstm", "lstm-carry-to-rnn", "rank-1", "int-input", "projected-size",
        "params-state-pair"])
def test_cells_reject_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


@pytest.mark.parametrize("transform", ["jit", "vmap"])
def test_cell_checks_hold_under_jit_vmap_and_scan(transform):
    """A wrong feature size inside a user's `lax.scan`, traced under jit or vmap."""
    params = jax.tree.map(jnp.asarray, _LSTM_P)

    def run(params, xs):                     # xs: (N, T, F)
        step = lambda c, x_t: lstm_cell(params, c, x_t)
        return jax.lax.scan(step, LSTMCarry.zeros(xs.shape[0], 5), jnp.swapaxes(xs, 0, 1))[0].h

    run = (jax.jit(run) if transform == "jit"
           else jax.vmap(run, in_axes=(jax.tree.map(lambda _: 0, params), None)))
    if transform == "vmap":
        params = jax.tree.map(lambda a: jnp.stack([a, a + 0.1]), params)
    with pytest.raises(ValueError, match=r"lstm_cell: expected input features \(last axis\) 3"):
        run(params, jnp.ones((2, 4, 2)))
    h = run(params, jnp.ones((2, 4, 3)))
    chex.assert_shape(h, (2, 5) if transform == "jit" else (2, 2, 5))


def test_simple_rnn_cell_takes_an_activation_by_name():
    p = _cell_params("SimpleRNN")
    p = {**p, "w_x": np.full((3, 5), 0.5, np.float32)}
    _, h = simple_rnn_cell(p, RNNCarry.zeros(2, 5), -_X, activation="relu")
    np.testing.assert_array_equal(h, 0.0)
    with pytest.raises(ValueError, match=r"simple_rnn_cell: .*unknown activation 'rleu'"):
        simple_rnn_cell(p, RNNCarry.zeros(2, 5), _X, activation="rleu")


def test_cell_checks_add_nothing_to_the_traced_step():
    """Same equations as the unchecked step the layers scan."""
    checked = jax.make_jaxpr(lambda c, x: lstm_cell(_LSTM_P, c, x))(LSTMCarry.zeros(2, 5), _X)
    raw = jax.make_jaxpr(lambda c, x: fnn.layers.cells.lstm_step(
        _LSTM_P["w_h"], c, x @ _LSTM_P["w_x"] + _LSTM_P["b"].reshape(1, -1)))(
            LSTMCarry.zeros(2, 5), _X)
    assert len(checked.eqns) == len(raw.eqns)
