"""MultiHeadAttention against PyTorch `nn.MultiheadAttention` and a float64 numpy reference:
self- and cross-attention, boolean masks, causal masking, attention dropout, rotary
embeddings, jit/vmap, the MACs `fnn.summary` counts, and the bad-input table."""
from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

import fnn
from fnn.layers import MultiHeadAttention, attention_weights, rotary

N, T, S, F, H = 2, 5, 4, 8, 2


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _params(layer, shape, key, seed=1):
    """Init, then random biases (init's are zero, which would hide a bias bug)."""
    params, _ = layer.init(key, shape)
    rng = np.random.default_rng(seed)
    return {k: jnp.asarray(rng.standard_normal(v.shape).astype(np.float32) * 0.3)
            if k.startswith("b_") else v for k, v in params.items()}


def torch_mha(params, heads):
    """`nn.MultiheadAttention(batch_first=True)` holding `params` (the layout of API.md)."""
    f, fc = params["w_q"].shape[0], params["w_k"].shape[0]
    t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    m = torch.nn.MultiheadAttention(f, heads, batch_first=True, kdim=fc, vdim=fc)
    with torch.no_grad():
        if fc == f:
            m.in_proj_weight.copy_(t(np.concatenate(
                [params["w_q"], params["w_k"], params["w_v"]], axis=1).T))
        else:
            m.q_proj_weight.copy_(t(params["w_q"]).T)
            m.k_proj_weight.copy_(t(params["w_k"]).T)
            m.v_proj_weight.copy_(t(params["w_v"]).T)
        m.in_proj_bias.copy_(t(np.concatenate([params["b_q"], params["b_k"], params["b_v"]])))
        m.out_proj.weight.copy_(t(params["w_o"]).T)
        m.out_proj.bias.copy_(t(params["b_o"]))
    return m


def np_mha(params, x, context=None, allowed=None, heads=H):
    """Float64 numpy: the equations of `help(fnn.layers.attention)`; `allowed` (T, S)
    or (N, T, S) boolean."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    c = x if context is None else np.asarray(context, np.float64)
    q, k, v = x @ p["w_q"] + p["b_q"], c @ p["w_k"] + p["b_k"], c @ p["w_v"] + p["b_v"]
    d = q.shape[-1] // heads
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        logits = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2) / math.sqrt(d)
        if allowed is not None:
            logits = np.where(allowed, logits, -np.inf)
        a = np.exp(logits - logits.max(-1, keepdims=True))
        a /= a.sum(-1, keepdims=True)
        outs.append(a @ v[..., sl])
    return np.concatenate(outs, axis=-1) @ p["w_o"] + p["b_o"]


def _torch_out_and_grads(m, x, context, **kw):
    xt = torch.tensor(x, requires_grad=True)
    ct = xt if context is None else torch.tensor(context, requires_grad=True)
    y, _ = m(xt, ct, ct, need_weights=False, **kw)
    r = torch.tensor(_rand(*y.shape, seed=9))
    (y * r).sum().backward()
    grads = {"x": xt.grad.numpy(), "w_o": m.out_proj.weight.grad.numpy().T}
    if context is not None:
        grads["context"] = ct.grad.numpy()
    return y.detach().numpy(), grads


def _fnn_out_and_grads(layer, params, x, context, **kw):
    def loss(params, x, context):
        y, _ = layer.apply(params, {}, x, context=context, **kw)
        return jnp.sum(y * _rand(*y.shape, seed=9)), y

    argnums = (0, 1) if context is None else (0, 1, 2)
    (_, y), g = jax.value_and_grad(loss, argnums=argnums, has_aux=True)(params, x, context)
    grads = {"x": g[1], "w_o": g[0]["w_o"]}
    if context is not None:
        grads["context"] = g[2]
    return y, grads


@pytest.mark.parametrize("case", ["self", "cross", "padding", "causal", "pattern"])
def test_matches_torch_values_and_grads(case, key):
    x = _rand(N, T, F)
    fc = 6 if case == "cross" else F
    layer = MultiHeadAttention(H, context_features=fc)
    params = _params(layer, (T, F), key)
    m = torch_mha(params, H)
    context, kw, tkw = None, {}, {}
    if case == "cross":
        context = _rand(N, S, fc, seed=3)
    if case == "padding":   # the second sequence has 3 valid keys
        valid = np.arange(T)[None, :] < np.array([[T], [3]])
        kw = {"mask": jnp.asarray(valid[:, None, None, :])}
        tkw = {"key_padding_mask": torch.tensor(~valid)}
    if case == "causal":
        kw = {"causal": True}
        tkw = {"attn_mask": torch.triu(torch.ones(T, T, dtype=torch.bool), 1)}
    if case == "pattern":
        allowed = np.random.default_rng(4).random((T, T)) < 0.6
        allowed[:, 0] = True
        kw = {"mask": jnp.asarray(allowed)}
        tkw = {"attn_mask": torch.tensor(~allowed)}
    y, grads = _fnn_out_and_grads(layer, params, x, context, **kw)
    yt, grads_t = _torch_out_and_grads(m, x, context, **tkw)
    np.testing.assert_allclose(y, yt, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(grads, grads_t, rtol=1e-4, atol=1e-5)


def test_matches_float64_reference_with_key_size_and_out_features(key):
    layer = MultiHeadAttention(3, key_size=5, out_features=7)
    x = _rand(N, T, F)
    params = _params(layer, (T, F), key)
    assert params["w_q"].shape == (F, 15) and params["w_o"].shape == (15, 7)
    allowed = np.tril(np.ones((T, T), bool))
    y, _ = layer.apply(params, {}, x, causal=True)
    np.testing.assert_allclose(y, np_mha(params, x, allowed=allowed, heads=3),
                               rtol=1e-5, atol=1e-5)
    y, _ = layer.apply(params, {}, x, mask=jnp.asarray(allowed))
    np.testing.assert_allclose(y, np_mha(params, x, allowed=allowed, heads=3),
                               rtol=1e-5, atol=1e-5)


def test_causal_output_ignores_the_future(key):
    layer = MultiHeadAttention(H)
    params = _params(layer, (T, F), key)
    x = _rand(N, T, F)
    y, _ = layer.apply(params, {}, x, causal=True)
    for t in range(T - 1):
        changed = x.copy()
        changed[:, t + 1:] = _rand(N, T - t - 1, F, seed=t + 10) * 5
        y2, _ = layer.apply(params, {}, changed, causal=True)
        np.testing.assert_allclose(y2[:, :t + 1], y[:, :t + 1], rtol=1e-6, atol=1e-6)
        assert not np.allclose(y2[:, t + 1:], y[:, t + 1:])


def test_attention_weights_rows_sum_to_one_and_match_reference():
    q, k = _rand(N, T, H, 4), _rand(N, S, H, 4, seed=2)
    allowed = np.random.default_rng(5).random((N, 1, T, S)) < 0.7
    allowed[..., 0] = True
    a = attention_weights(q, k, mask=jnp.asarray(allowed))
    logits = np.einsum("nthd,nshd->nhts", q.astype(np.float64), k) / 2.0
    logits = np.where(allowed, logits, -np.inf)
    ref = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(a, ref / ref.sum(-1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_dropout_is_unbiased_and_off_in_eval(key):
    rate, draws = 0.3, 4000
    layer = MultiHeadAttention(H, dropout=rate)
    params = _params(layer, (T, F), key)
    x = _rand(1, T, F)
    y_eval, _ = layer.apply(params, {}, x, key=key, train=False)
    np.testing.assert_allclose(y_eval, np_mha(params, x), rtol=1e-5, atol=1e-5)
    keys = jax.random.split(jax.random.key(7), draws)
    ys = jax.vmap(lambda k: layer.apply(params, {}, x, key=k, train=True)[0])(keys)
    mean, std = ys.mean(0), ys.std(0)
    # E[y] = y_eval (inverted dropout on the weights is linear): within 4 standard errors
    assert np.all(np.abs(mean - y_eval) <= 4 * std / math.sqrt(draws) + 1e-5)
    assert float(std.mean()) > 0.01                       # and dropout does draw
    same = layer.apply(params, {}, x, key=keys[0], train=True)[0]
    np.testing.assert_allclose(same, ys[0], rtol=1e-6, atol=1e-6)   # same key, same mask


def test_rotary_attention_matches_reference_and_depends_on_offsets_only(key):
    layer = MultiHeadAttention(H, rotary_base=10000.0)
    params = _params(layer, (T, F), key)
    x = _rand(N, T, F)
    y, _ = layer.apply(params, {}, x)
    # reference: rotate q and k by hand in float64, then plain attention
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    d = F // H
    q = (x @ p["w_q"] + p["b_q"]).reshape(N, T, H, d)
    k = (x @ p["w_k"] + p["b_k"]).reshape(N, T, H, d)
    v = (x @ p["w_v"] + p["b_v"]).reshape(N, T, H, d)
    theta = 10000.0 ** (-2 * np.arange(d // 2) / d)
    ang = np.arange(T)[:, None, None] * theta
    rot = lambda z: np.concatenate([z[..., :d // 2] * np.cos(ang) - z[..., d // 2:] * np.sin(ang),  # noqa: E731,E501
                                    z[..., d // 2:] * np.cos(ang) + z[..., :d // 2] * np.sin(ang)], -1)
    logits = np.einsum("nthd,nshd->nhts", rot(q), rot(k)) / math.sqrt(d)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    ref = np.einsum("nhts,nshd->nthd", a, v).reshape(N, T, F) @ p["w_o"] + p["b_o"]
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_jit_and_vmap_agree_with_eager(key):
    layer = MultiHeadAttention(H, dropout=0.2)
    params = _params(layer, (T, F), key)
    x = _rand(N, T, F)
    y, _ = layer.apply(params, {}, x, causal=True)
    yj, _ = jax.jit(lambda p, x: layer.apply(p, {}, x, causal=True))(params, x)
    yv = jax.vmap(lambda xi: layer.apply(params, {}, xi[None], causal=True)[0][0])(x)
    chex.assert_trees_all_close(yj, y, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(yv, y, rtol=1e-6, atol=1e-6)
    k = jax.random.key(3)
    yt, _ = layer.apply(params, {}, x, key=k, train=True)
    ytj, _ = jax.jit(lambda p, x, k: layer.apply(p, {}, x, key=k, train=True))(params, x, k)
    chex.assert_trees_all_close(ytj, yt, rtol=1e-6, atol=1e-6)


def test_summary_counts_projections_and_both_attention_products():
    t, f, h, d, out = 6, 8, 2, 3, 5
    layer = MultiHeadAttention(h, key_size=d, out_features=out)
    s = fnn.summary(layer, (t, f))
    projections = 3 * t * f * h * d + t * h * d * out
    products = 2 * h * t * t * d            # q kᵀ and a v, per example
    assert s.total_macs == projections + products
    assert s.total_flops == 2 * (projections + products) + 3 * t * h * d + t * out
    assert s.total_params == 3 * (f * h * d + h * d) + h * d * out + out


def _layer_apply(x=None, **kw):
    layer = MultiHeadAttention(H)
    params, _ = layer.init(jax.random.key(0), (T, F))
    return layer.apply(params, {}, _rand(N, T, F) if x is None else x, **kw)


BAD_INPUT = [
    ("features not divisible", lambda: MultiHeadAttention(3).init(jax.random.key(0), (T, F)),
     ValueError, r"MultiHeadAttention: features F = 8 must be divisible by num_heads = 3"),
    ("num_heads zero", lambda: MultiHeadAttention(0), ValueError,
     r"MultiHeadAttention: num_heads must be a positive int, got 0"),
    ("dropout one", lambda: MultiHeadAttention(2, dropout=1.0), ValueError,
     r"MultiHeadAttention: dropout must be in \[0.0, 1.0\)"),
    ("odd rotary key size", lambda: MultiHeadAttention(2, key_size=3, rotary_base=1e4),
     ValueError, r"MultiHeadAttention: rotary_base needs an even key_size, got key_size=3"),
    ("odd rotary default key size",
     lambda: MultiHeadAttention(2, rotary_base=1e4).init(jax.random.key(0), (T, 6)),
     ValueError, r"MultiHeadAttention: rotary_base needs an even key_size, got 3"),
    ("init shape rank", lambda: MultiHeadAttention(2).init(jax.random.key(0), (F,)),
     ValueError, r"MultiHeadAttention: expected input_shape \(T, F\) for one sequence"),
    ("x rank", lambda: _layer_apply(_rand(T, F)), ValueError,
     r"MultiHeadAttention: expected a rank-3 input x \(N, T, 8\)"),
    ("x features", lambda: _layer_apply(_rand(N, T, 6)), ValueError,
     r"MultiHeadAttention: expected x features 8 \(from init\), got 6"),
    ("integer x", lambda: _layer_apply(np.ones((N, T, F), np.int32)), TypeError,
     r"MultiHeadAttention: expected a floating-point input, got dtype int32"),
    ("context features", lambda: _layer_apply(context=_rand(N, S, 6)), ValueError,
     r"MultiHeadAttention: expected context features 8 \(from init\), got 6 .*"
     r"context_features=6"),
    ("context batch", lambda: _layer_apply(context=_rand(3, S, F)), ValueError,
     r"MultiHeadAttention: context batch 3 differs from x batch 2"),
    ("mask dtype", lambda: _layer_apply(mask=jnp.ones((T, T), jnp.float32)), TypeError,
     r"MultiHeadAttention: mask must be boolean \(True = may attend\), got dtype float32"),
    ("mask shape", lambda: _layer_apply(mask=jnp.ones((N, T), bool)), ValueError,
     r"MultiHeadAttention: mask of shape \(2, 5\) does not broadcast to \(N, heads, T, S\) "
     r"= \(2, 2, 5, 5\)"),
    ("mask rank", lambda: _layer_apply(mask=jnp.ones((T,), bool)), ValueError,
     r"MultiHeadAttention: mask of shape \(5,\) does not broadcast"),
    ("causal cross", lambda: _layer_apply(context=_rand(N, S, F), causal=True), ValueError,
     r"MultiHeadAttention: causal=True is for self-attention"),
    ("causal not bool", lambda: _layer_apply(causal="yes"), TypeError,
     r"MultiHeadAttention: causal must be True or False, got 'yes'"),
    ("dropout without key",
     lambda: MultiHeadAttention(2, dropout=0.5).apply(
         MultiHeadAttention(2).init(jax.random.key(0), (T, F))[0], {}, _rand(N, T, F),
         train=True), ValueError, r"MultiHeadAttention: train=True with dropout=0.5 needs a PRNG key"),
    ("params from elsewhere",
     lambda: MultiHeadAttention(2).apply({"w": jnp.ones((F, F))}, {}, _rand(N, T, F)),
     ValueError, r"MultiHeadAttention: params must be a dict with 'w_q'"),
    ("rotary odd head size", lambda: rotary(_rand(N, T, H, 3)), ValueError,
     r"rotary: the head size D must be even to rotate pairs, got D = 3"),
    ("rotary rank", lambda: rotary(_rand(T, 4)), ValueError,
     r"rotary: expected x of rank >= 3 \(..., T, heads, D\), got shape \(5, 4\)"),
    ("rotary positions", lambda: rotary(_rand(N, T, H, 4), positions=jnp.arange(3)), ValueError,
     r"rotary: expected positions of shape \(5,\), got \(3,\)"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
