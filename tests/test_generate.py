"""`fnn.models.generate`: the recurrent (carry) and windowed (re-run) modes agree with each
other and with a hand-written loop; sampled ids follow softmax(logits / temperature)."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.models import char_lstm, char_transformer, generate

PROMPT = jnp.array([[1, 2, 3], [4, 5, 6]], jnp.int32)


@pytest.mark.parametrize("temperature", [0.0, 1.0, 2.0])
def test_recurrent_carry_mode_equals_rerunning_the_window(temperature, key):
    model, stateful = char_lstm(11, 8), char_lstm(11, 8, return_state=True)
    params, state = model.init(key, (5,))
    k = jax.random.key(4)
    rerun = generate(model, params, state, PROMPT, 8, key=k, temperature=temperature)
    carried = generate(stateful, params, state, PROMPT, 8, key=k, temperature=temperature)
    np.testing.assert_array_equal(rerun, carried)
    assert rerun.shape == (2, 8) and rerun.dtype == jnp.int32


def test_char_lstm_with_state_has_the_same_params_and_logits(key):
    model, stateful = char_lstm(11, 8), char_lstm(11, 8, return_state=True)
    params, state = model.init(key, (5,))
    assert jax.tree.structure(stateful.init(key, (5,))[0]) == jax.tree.structure(params)
    logits, _ = model.apply(params, state, PROMPT)
    (logits2, (h, c)), _ = stateful.apply(params, state, PROMPT)
    np.testing.assert_allclose(logits2, logits, rtol=1e-6)
    (tail, _), _ = stateful.apply(params, state, PROMPT[:, 2:], initial_state=jax.tree.map(
        lambda a: a, stateful.apply(params, state, PROMPT[:, :2])[0][1]))
    np.testing.assert_allclose(tail, logits[:, 2:], rtol=1e-5, atol=1e-6)


def test_windowed_transformer_equals_a_hand_written_greedy_loop(key):
    max_len = 4
    model = char_transformer(11, 16, 2, 1, max_len)
    params, state = model.init(key, (max_len,))
    got = generate(model, params, state, PROMPT, 6, key=key, temperature=0.0, window=max_len)
    seq = np.asarray(PROMPT)
    for _ in range(6):
        logits, _ = model.apply(params, state, jnp.asarray(seq[:, -max_len:]))
        seq = np.concatenate([seq, np.argmax(logits[:, -1], -1)[:, None]], axis=1)
    np.testing.assert_array_equal(got, seq[:, 3:])


def _constant_logits_model(logits):
    """A 'language model' whose logits are the same at every step."""
    def init(key, input_shape):
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        return jnp.broadcast_to(logits, (*x.shape, logits.shape[0])), state

    return fnn.Layer(init, apply, "Constant", input_dtype=jnp.int32)


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_samples_follow_softmax_of_logits_over_temperature(temperature, key):
    logits = jnp.array([0.0, 1.0, 2.0, -1.0])
    model = _constant_logits_model(logits)
    n = 4000
    ids = generate(model, {}, {}, jnp.zeros((n, 1), jnp.int32), 3, key=key,
                   temperature=temperature)
    p = np.asarray(jax.nn.softmax(logits / temperature))
    freq = np.bincount(np.asarray(ids).ravel(), minlength=4) / ids.size
    sigma = np.sqrt(p * (1 - p) / ids.size)
    assert np.all(np.abs(freq - p) <= 4 * sigma + 1e-3)
    greedy = generate(model, {}, {}, jnp.zeros((2, 1), jnp.int32), 3, key=key, temperature=0.0)
    np.testing.assert_array_equal(greedy, np.full((2, 3), 2))


BAD_INPUT = [
    ("prompt float", lambda: generate(char_lstm(5, 4), {}, {}, jnp.zeros((1, 2)), 3,
                                      key=jax.random.key(0)), TypeError,
     r"generate: prompt_ids must be integer ids, got dtype float32"),
    ("prompt rank", lambda: generate(char_lstm(5, 4), {}, {}, jnp.zeros((3,), jnp.int32), 3,
                                     key=jax.random.key(0)), ValueError,
     r"generate: expected a rank-2 input prompt_ids \(N, P\)"),
    ("empty prompt", lambda: generate(char_lstm(5, 4), {}, {}, jnp.zeros((1, 0), jnp.int32),
                                      3, key=jax.random.key(0)), ValueError,
     r"generate: prompt_ids needs at least one id per prompt, got shape \(1, 0\)"),
    ("steps zero", lambda: generate(char_lstm(5, 4), {}, {}, PROMPT, 0, key=jax.random.key(0)),
     ValueError, r"generate: steps must be a positive int, got 0"),
    ("no key", lambda: generate(char_lstm(5, 4), {}, {}, PROMPT, 2, key=None), ValueError,
     r"generate: key must be a PRNG key"),
    ("negative temperature", lambda: generate(char_lstm(5, 4), {}, {}, PROMPT, 2,
                                              key=jax.random.key(0), temperature=-1.0),
     ValueError, r"generate: temperature must be >= 0.0, got -1.0"),
    ("window zero", lambda: generate(char_lstm(5, 4), {}, {}, PROMPT, 2,
                                     key=jax.random.key(0), window=0),
     ValueError, r"generate: window must be a positive int, got 0"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
