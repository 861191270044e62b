"""TransformerBlock against PyTorch `nn.TransformerEncoderLayer(norm_first=True,
activation="gelu")`, and the `char_transformer` language model."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from test_attention import torch_mha

import fnn
from fnn.layers import TransformerBlock
from fnn.models import char_transformer

N, T, F, H, M = 2, 6, 8, 2, 16


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _randomised(params, seed=1):
    """Every leaf redrawn (init's zero biases and unit norms would hide a layout bug)."""
    leaves, tree = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(tree, [jnp.asarray(
        rng.standard_normal(leaf.shape).astype(np.float32) * 0.3) for leaf in leaves])


def torch_block(params, heads, mlp, dropout=0.0):
    f = params["norm1"]["scale"].shape[0]
    m = torch.nn.TransformerEncoderLayer(f, heads, mlp, dropout, activation="gelu",
                                         batch_first=True, norm_first=True)
    t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    with torch.no_grad():
        m.self_attn.load_state_dict(torch_mha(params["attention"], heads).state_dict())
        m.linear1.weight.copy_(t(params["mlp"]["hidden"]["w"]).T)
        m.linear1.bias.copy_(t(params["mlp"]["hidden"]["b"]))
        m.linear2.weight.copy_(t(params["mlp"]["output"]["w"]).T)
        m.linear2.bias.copy_(t(params["mlp"]["output"]["b"]))
        for name in ("norm1", "norm2"):
            getattr(m, name).weight.copy_(t(params[name]["scale"]))
            getattr(m, name).bias.copy_(t(params[name]["bias"]))
    return m.eval()


@pytest.mark.parametrize("causal", [False, True])
def test_block_matches_torch_values_and_grads(causal, key):
    block = TransformerBlock(H, M, causal=causal, dropout=0.1)   # dropout off in eval
    params = _randomised(block.init(key, (T, F))[0])
    x = _rand(N, T, F)
    r = _rand(N, T, F, seed=5)

    def loss(params, x):
        y, _ = block.apply(params, {}, x)
        return jnp.sum(y * r), y

    (_, y), (gp, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
    m = torch_block(params, H, M, dropout=0.1)
    xt = torch.tensor(x, requires_grad=True)
    kw = {"src_mask": torch.nn.Transformer.generate_square_subsequent_mask(T),
          "is_causal": True} if causal else {}
    yt = m(xt, **kw)
    (yt * torch.tensor(r)).sum().backward()
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(
        {"x": gx, "w1": gp["mlp"]["hidden"]["w"], "norm1": gp["norm1"]["scale"],
         "w_o": gp["attention"]["w_o"]},
        {"x": xt.grad.numpy(), "w1": m.linear1.weight.grad.numpy().T,
         "norm1": m.norm1.weight.grad.numpy(), "w_o": m.self_attn.out_proj.weight.grad.numpy().T},
        rtol=1e-4, atol=1e-5)


def test_block_param_layout_and_mask_keyword(key):
    block = TransformerBlock(H, M)
    params, state = block.init(key, (T, F))
    assert set(params) == {"attention", "norm1", "mlp", "norm2"} and state == {}
    assert params["mlp"]["hidden"]["w"].shape == (F, M)
    assert params["mlp"]["output"]["w"].shape == (M, F)
    leaves = jax.tree.leaves(params)   # distinct buffers: a donating step takes each once
    assert len({id(leaf) for leaf in leaves}) == len(leaves)
    x = _rand(N, T, F)
    causal, _ = TransformerBlock(H, M, causal=True).apply(params, {}, x)
    masked, _ = block.apply(params, {}, x, mask=jnp.tril(jnp.ones((T, T), bool)))
    np.testing.assert_allclose(masked, causal, rtol=1e-6, atol=1e-6)


def test_block_dropout_draws_per_key_and_is_off_in_eval(key):
    block = TransformerBlock(H, M, dropout=0.5)
    params, _ = block.init(key, (T, F))
    x = _rand(N, T, F)
    eval_y, _ = block.apply(params, {}, x, key=jax.random.key(1))
    plain_y, _ = TransformerBlock(H, M).apply(params, {}, x, train=True)
    np.testing.assert_allclose(eval_y, plain_y, rtol=1e-6, atol=1e-6)
    a, _ = block.apply(params, {}, x, key=jax.random.key(1), train=True)
    b, _ = block.apply(params, {}, x, key=jax.random.key(1), train=True)
    c, _ = block.apply(params, {}, x, key=jax.random.key(2), train=True)
    np.testing.assert_allclose(a, b, rtol=1e-6)
    assert not np.allclose(a, c) and not np.allclose(a, eval_y)
    aj, _ = jax.jit(lambda p, x, k: block.apply(p, {}, x, key=k, train=True))(
        params, x, jax.random.key(1))
    np.testing.assert_allclose(aj, a, rtol=1e-5, atol=1e-6)


def test_char_transformer_parameter_count_and_causality(key):
    vocab, f, heads, layers, max_len = 13, 16, 4, 2, 10
    model = char_transformer(vocab, f, heads, layers, max_len)
    params, state = model.init(key, (max_len,))
    block = 4 * (f * f + f) + 2 * 2 * f + (f * 4 * f + 4 * f) + (4 * f * f + f)
    expected = vocab * f + max_len * f + layers * block + 2 * f + f * vocab + vocab
    assert fnn.summary(model, (max_len,)).total_params == expected
    ids = jnp.asarray(np.random.default_rng(0).integers(0, vocab, (2, 8)), jnp.int32)
    logits, _ = model.apply(params, state, ids)
    assert logits.shape == (2, 8, vocab)
    changed = ids.at[:, 5:].set((ids[:, 5:] + 3) % vocab)
    logits2, _ = model.apply(params, state, changed)
    np.testing.assert_allclose(logits2[:, :5], logits[:, :5], rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits2[:, 5:], logits[:, 5:])


def test_char_transformer_learns_a_repeating_sequence(key):
    model = char_transformer(5, 16, 2, 1, 12)
    params, state = model.init(key, (12,))
    ids = jnp.tile(jnp.array([0, 1, 2, 3, 4, 2], jnp.int32), 4)[None, :12]
    opt = fnn.optim.adam(3e-2)
    opt_state = opt.init(params)

    def loss(p):
        logits, _ = model.apply(p, state, ids[:, :-1])
        return fnn.losses.softmax_cross_entropy(logits.reshape(-1, 5), ids[:, 1:].reshape(-1))

    @jax.jit
    def step(opt_state):
        value, g = jax.value_and_grad(loss)(opt_state.params)
        return opt.update(opt_state, g)[0], value

    first = None
    for _ in range(60):
        opt_state, value = step(opt_state)
        first = value if first is None else first
    assert float(first) > 1.2 and float(loss(opt_state.params)) < 0.3


BAD_INPUT = [
    ("block heads", lambda: TransformerBlock(0, 8), ValueError,
     r"TransformerBlock: num_heads must be a positive int, got 0"),
    ("block causal flag", lambda: TransformerBlock(2, 8, causal=1), TypeError,
     r"TransformerBlock: causal must be True or False, got 1"),
    ("block not divisible", lambda: TransformerBlock(3, 8).init(jax.random.key(0), (T, F)),
     ValueError, r"MultiHeadAttention: features F = 8 must be divisible by num_heads = 3"),
    ("block rank", lambda: TransformerBlock(2, 8).apply(
        TransformerBlock(2, 8).init(jax.random.key(0), (T, F))[0], {}, _rand(T, F)),
     ValueError, r"TransformerBlock: expected a rank-3 input \(N, T, F\)"),
    ("block no key", lambda: TransformerBlock(2, 8, dropout=0.1).apply(
        TransformerBlock(2, 8).init(jax.random.key(0), (T, F))[0], {}, _rand(N, T, F),
        train=True), ValueError, r"TransformerBlock: train=True with dropout=0.1 needs a PRNG"),
    ("block params", lambda: TransformerBlock(2, 8).apply({"attention": {}}, {}, _rand(N, T, F)),
     ValueError, r"TransformerBlock: params must be a dict with 'attention', 'norm1', 'mlp' "
     r"and 'norm2'"),
    ("char_transformer heads", lambda: char_transformer(10, 10, 4, 1, 8), ValueError,
     r"char_transformer: features = 10 must be divisible by num_heads = 4"),
    ("char_transformer max_len", lambda: char_transformer(10, 8, 2, 1, 0), ValueError,
     r"char_transformer: max_len must be a positive int, got 0"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
