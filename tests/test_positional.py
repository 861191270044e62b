"""Position embeddings: the sinusoidal table and rotary embeddings against float64 numpy,
RoPE's relative-position property, the learned table, and their bad-input rows."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn.layers import PositionalEmbedding, SinusoidalEmbedding, rotary, sinusoidal_positions


def np_sinusoidal(length, features, base=10000.0):
    """Vaswani et al. 2017, section 3.5, in float64: PE(t, 2i) = sin(t / base^(2i/F)),
    PE(t, 2i+1) = cos(t / base^(2i/F))."""
    pe = np.zeros((length, features))
    for t in range(length):
        for j in range(features):
            i = j // 2
            angle = t / base ** (2 * i / features)
            pe[t, j] = np.sin(angle) if j % 2 == 0 else np.cos(angle)
    return pe


def np_rotary(x, positions, base=10000.0):
    """RoPE as explicit 2x2 rotations of the pairs (i, i + D/2), in float64."""
    x = np.asarray(x, np.float64)
    d = x.shape[-1]
    y = np.empty_like(x)
    for t, p in enumerate(positions):
        for i in range(d // 2):
            a = p * base ** (-2 * i / d)
            rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
            pair = np.stack([x[..., t, :, i], x[..., t, :, i + d // 2]], axis=-1)
            out = pair @ rot.T
            y[..., t, :, i], y[..., t, :, i + d // 2] = out[..., 0], out[..., 1]
    return y


@pytest.mark.parametrize("length, features", [(7, 6), (5, 5), (50, 16)])
def test_sinusoidal_table_matches_reference(length, features):
    np.testing.assert_allclose(sinusoidal_positions(length, features),
                               np_sinusoidal(length, features), rtol=1e-5, atol=2e-5)


def test_sinusoidal_layer_adds_the_table(key):
    layer = SinusoidalEmbedding(base=100.0)
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    params, state = layer.init(key, (6, 4))
    assert params == {} and state == {}
    y, _ = layer.apply(params, state, x)
    np.testing.assert_allclose(y, x + np_sinusoidal(6, 4, 100.0), rtol=1e-5, atol=1e-5)


def test_rotary_matches_rotation_reference():
    x = np.random.default_rng(1).standard_normal((2, 5, 3, 6)).astype(np.float32)
    positions = np.array([0, 1, 2, 7, 30])
    np.testing.assert_allclose(rotary(x, positions=jnp.asarray(positions)),
                               np_rotary(x, positions), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rotary(x), np_rotary(x, range(5)), rtol=1e-5, atol=1e-5)


def test_rotary_preserves_norms_and_position_zero_is_identity():
    x = np.random.default_rng(2).standard_normal((1, 4, 2, 8)).astype(np.float32)
    y = rotary(x)
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x, axis=-1),
                               rtol=1e-5)
    np.testing.assert_allclose(y[:, 0], x[:, 0], rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 60), n=st.integers(0, 60), shift=st.integers(-20, 40))
def test_rotary_scores_depend_only_on_the_offset(m, n, shift):
    """⟨R_m q, R_n k⟩ = ⟨R_{m+s} q, R_{n+s} k⟩ for any shift s (positions may go negative)."""
    rng = np.random.default_rng(m * 100 + n)
    q, k = rng.standard_normal((2, 1, 1, 1, 8)).astype(np.float32)

    def score(pm, pn):
        rq = rotary(q, positions=jnp.array([pm], jnp.float32))
        rk = rotary(k, positions=jnp.array([pn], jnp.float32))
        return float(jnp.sum(rq * rk))

    assert score(m, n) == pytest.approx(score(m + shift, n + shift), rel=1e-4, abs=1e-4)


def test_learned_positional_embedding_adds_its_rows(key):
    layer = PositionalEmbedding(10)
    params, _ = layer.init(key, (4, 3))
    assert params["table"].shape == (10, 3)
    assert abs(float(jnp.std(params["table"])) - 0.02) < 0.01
    x = np.random.default_rng(3).standard_normal((2, 4, 3)).astype(np.float32)
    y, _ = layer.apply(params, {}, x)
    np.testing.assert_allclose(y, x + np.asarray(params["table"])[None, :4], rtol=1e-6)
    y6, _ = layer.apply(params, {}, np.zeros((1, 6, 3), np.float32))   # any T <= max_len
    np.testing.assert_allclose(y6[0], params["table"][:6])
    g = jax.grad(lambda p: jnp.sum(layer.apply(p, {}, x)[0]))(params)["table"]
    np.testing.assert_allclose(g, np.r_[np.full((4, 3), 2.0), np.zeros((6, 3))])
    assert fnn.summary(layer, (4, 3)).total_params == 30


BAD_INPUT = [
    ("max_len zero", lambda: PositionalEmbedding(0), ValueError,
     r"PositionalEmbedding: max_len must be a positive int, got 0"),
    ("init too long", lambda: PositionalEmbedding(3).init(jax.random.key(0), (4, 2)),
     ValueError, r"PositionalEmbedding: sequence length T = 4 exceeds max_len = 3"),
    ("apply too long", lambda: PositionalEmbedding(3).apply(
        {"table": jnp.zeros((3, 2))}, {}, jnp.zeros((1, 5, 2))), ValueError,
     r"PositionalEmbedding: sequence length T = 5 exceeds max_len = 3"),
    ("apply features", lambda: PositionalEmbedding(3).apply(
        {"table": jnp.zeros((3, 2))}, {}, jnp.zeros((1, 2, 4))), ValueError,
     r"PositionalEmbedding: expected features \(last axis\) 2 \(from init\), got 4"),
    ("apply rank", lambda: PositionalEmbedding(3).apply(
        {"table": jnp.zeros((3, 2))}, {}, jnp.zeros((2, 2))), ValueError,
     r"PositionalEmbedding: expected a rank-3 input \(N, T, 2\)"),
    ("sinusoidal base", lambda: SinusoidalEmbedding(base=0.0), ValueError,
     r"SinusoidalEmbedding: base must be > 0.0, got 0.0"),
    ("sinusoidal rank", lambda: SinusoidalEmbedding().apply({}, {}, jnp.zeros((2, 3))),
     ValueError, r"SinusoidalEmbedding: expected a rank-3 input \(N, T, F\)"),
    ("sinusoidal integer", lambda: SinusoidalEmbedding().apply(
        {}, {}, jnp.zeros((1, 2, 3), jnp.int32)), TypeError,
     r"SinusoidalEmbedding: expected a floating-point input, got dtype int32"),
    ("sinusoidal init", lambda: SinusoidalEmbedding().init(None, (3,)), ValueError,
     r"SinusoidalEmbedding: expected input_shape \(T, F\) for one sequence, got \(3,\)"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
