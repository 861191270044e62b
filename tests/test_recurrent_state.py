"""Recurrent state across calls: `initial_state=` and `return_state=True` of SimpleRNN,
LSTM and GRU against PyTorch's `h0`/`c0` and `h_n`/`c_n` (padded batches as packed
sequences), Bidirectional's carries, tuple outputs in serial/output_shape/summary."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import fnn
from fnn.layers import GRU, LSTM, Bidirectional, Dense, LSTMCarry, SimpleRNN

N, T, F, H = 3, 7, 4, 5
LAYERS = {"rnn": (SimpleRNN, torch.nn.RNN), "lstm": (LSTM, torch.nn.LSTM),
          "gru": (GRU, torch.nn.GRU)}


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _copy_into(module, params, suffix=""):
    t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    with torch.no_grad():
        getattr(module, f"weight_ih_l0{suffix}").copy_(t(params["w_x"]).T)
        getattr(module, f"weight_hh_l0{suffix}").copy_(t(params["w_h"]).T)
        if "b" in params:
            getattr(module, f"bias_ih_l0{suffix}").copy_(t(params["b"]))
            getattr(module, f"bias_hh_l0{suffix}").zero_()
        else:
            getattr(module, f"bias_ih_l0{suffix}").copy_(t(params["b_x"]))
            getattr(module, f"bias_hh_l0{suffix}").copy_(t(params["b_h"]))


def _setup(name, key, **kw):
    make, torch_cls = LAYERS[name]
    layer = make(H, return_state=True, **kw)
    params, _ = layer.init(key, (T, F))
    params = {k: v + 0.1 * _rand(*v.shape, seed=7) for k, v in params.items()}
    module = torch_cls(F, H, batch_first=True)
    _copy_into(module, params)
    return layer, params, module


def _initial(name):
    h0 = _rand(N, H, seed=3)
    return (h0, _rand(N, H, seed=4)) if name == "lstm" else h0


def _torch_initial(name, init):
    if name == "lstm":
        return tuple(torch.tensor(a)[None] for a in init)
    return torch.tensor(init)[None]


def _carry_np(carry):
    return tuple(np.asarray(c) for c in carry) if isinstance(carry, tuple) else np.asarray(carry)


def _torch_carry_np(name, hn):
    if name == "lstm":
        return tuple(a[0].detach().numpy() for a in hn)
    return hn[0].detach().numpy()


@pytest.mark.parametrize("name", list(LAYERS))
def test_initial_and_final_state_match_torch(name, key):
    layer, params, module = _setup(name, key, return_sequences=True)
    x, init = _rand(N, T, F), _initial(name)
    (y, carry), state = layer.apply(params, {}, x, initial_state=init)
    assert state == {}
    yt, hn = module(torch.tensor(x), _torch_initial(name, init))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(_carry_np(carry), _torch_carry_np(name, hn),
                                rtol=1e-5, atol=1e-5)
    if name == "lstm":
        assert isinstance(carry, LSTMCarry)


@pytest.mark.parametrize("name", list(LAYERS))
def test_final_state_with_lengths_matches_torch_packed(name, key):
    layer, params, module = _setup(name, key)
    x, init = _rand(N, T, F), _initial(name)
    lengths = np.array([T, 3, 1])
    (y, carry), _ = layer.apply(params, {}, x, lengths=jnp.asarray(lengths), initial_state=init)
    packed = pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                  enforce_sorted=False)
    _, hn = module(packed, _torch_initial(name, init))
    chex.assert_trees_all_close(_carry_np(carry), _torch_carry_np(name, hn),
                                rtol=1e-5, atol=1e-5)
    h = carry[0] if name == "lstm" else carry   # the last output is the final h
    np.testing.assert_allclose(y, h, rtol=1e-6)


@pytest.mark.parametrize("name", list(LAYERS))
def test_running_in_pieces_equals_one_run(name, key):
    layer, params, _ = _setup(name, key, return_sequences=True)
    x = _rand(N, T, F)
    (y, carry), _ = layer.apply(params, {}, x)
    (y1, c1), _ = layer.apply(params, {}, x[:, :3])
    (y2, c2), _ = jax.jit(lambda p, x, c: layer.apply(p, {}, x, initial_state=c))(
        params, x[:, 3:], c1)
    np.testing.assert_allclose(np.concatenate([y1, y2], axis=1), y, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(_carry_np(c2), _carry_np(carry), rtol=1e-5, atol=1e-6)
    zeros = jax.tree.map(jnp.zeros_like, carry)
    (y0, _), _ = layer.apply(params, {}, x, initial_state=zeros)   # zeros = the default
    np.testing.assert_allclose(y0, y, rtol=1e-6)


def test_gradient_through_initial_state_matches_torch(key):
    layer, params, module = _setup("lstm", key, return_sequences=True)
    x = _rand(N, T, F)
    h0, c0 = _initial("lstm")
    r = _rand(N, T, H, seed=8)

    def loss(h0, c0):
        (y, (h, c)), _ = layer.apply(params, {}, x, initial_state=(h0, c0))
        return jnp.sum(y * r) + jnp.sum(c)

    gh, gc = jax.grad(loss, argnums=(0, 1))(h0, c0)
    ht, ct = (torch.tensor(a)[None].requires_grad_() for a in (h0, c0))
    yt, (_, cn) = module(torch.tensor(x), (ht, ct))
    ((yt * torch.tensor(r)).sum() + cn.sum()).backward()
    np.testing.assert_allclose(gh, ht.grad[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gc, ct.grad[0].numpy(), rtol=1e-4, atol=1e-5)


def test_bidirectional_carries_match_torch_bidirectional(key):
    layer = Bidirectional(GRU(H, return_state=True, return_sequences=True))
    params, _ = layer.init(key, (T, F))
    module = torch.nn.GRU(F, H, batch_first=True, bidirectional=True)
    _copy_into(module, params["forward"])
    _copy_into(module, params["backward"], "_reverse")
    x, lengths = _rand(N, T, F), np.array([T, 4, 2])
    (y, (hf, hb)), _ = layer.apply(params, {}, x, lengths=jnp.asarray(lengths))
    packed = pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first=True,
                                  enforce_sorted=False)
    yt, hn = module(packed)
    yt, _ = pad_packed_sequence(yt, batch_first=True, total_length=T)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hf, hn[0].detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(hb, hn[1].detach().numpy(), rtol=1e-5, atol=1e-5)


def test_tuple_outputs_in_output_shape_summary_and_serial(key):
    lstm = LSTM(H, return_state=True, return_sequences=True)
    assert fnn.output_shape(lstm, (T, F)) == ((T, H), ((H,), (H,)))
    assert fnn.output_shape(GRU(H, return_state=True), (T, F)) == ((H,), (H,))
    s = fnn.summary(lstm, (T, F))
    assert s.output_shape == ((T, H), ((H,), (H,)))
    assert s.total_macs == T * (F * 4 * H + H * 4 * H)
    last = fnn.serial(Dense(F), lstm)          # a tuple is fine from the last layer
    p, st = last.init(key, (T, F))
    (y, (h, c)), _ = last.apply(p, st, _rand(N, T, F), initial_state=_initial("lstm"))
    assert y.shape == (N, T, H) and c.shape == (N, H)
    with pytest.raises(TypeError, match=r"serial.init: layer 0 \(LSTM\) returns a tuple, "
                                        r"which layer 1 cannot take"):
        fnn.serial(lstm, Dense(2)).init(key, (T, F))


def _apply(name, **kw):
    layer, params, _ = _setup(name, jax.random.key(0))
    return layer.apply(params, {}, _rand(N, T, F), **kw)


BAD_INPUT = [
    ("return_state not bool", lambda: LSTM(3, return_state="yes"), TypeError,
     r"LSTM: return_state must be True or False, got 'yes'"),
    ("lstm single array", lambda: _apply("lstm", initial_state=_rand(N, H)), TypeError,
     r"LSTM: initial_state must be a pair \(h, c\) of \(N, H\) arrays"),
    ("gru pair", lambda: _apply("gru", initial_state=(_rand(N, H), _rand(N, H))), TypeError,
     r"GRU: initial_state must be an \(N, H\) array h"),
    ("rnn shape", lambda: _apply("rnn", initial_state=_rand(N, H + 1)), ValueError,
     r"SimpleRNN: initial_state.h must have shape \(3, 5\) \(batch, hidden\), got \(3, 6\)"),
    ("lstm c shape", lambda: _apply("lstm", initial_state=(_rand(N, H), _rand(1, H))),
     ValueError, r"LSTM: initial_state.c must have shape \(3, 5\)"),
    ("integer state", lambda: _apply("gru", initial_state=np.zeros((N, H), np.int32)),
     TypeError, r"GRU: initial_state.h: expected a floating-point input, got dtype int32"),
    ("serial typo", lambda: fnn.serial(LSTM(3)).apply(
        fnn.serial(LSTM(3)).init(jax.random.key(0), (T, F))[0], {}, _rand(N, T, F),
        initial_sate=None), TypeError, r"initial_sate"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
