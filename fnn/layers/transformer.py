"""`TransformerBlock`: a pre-norm transformer encoder (or causal decoder) block."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import (
    example_shape,
    require_floating,
    require_params,
    require_rank,
    train_flag,
)
from fnn._checks import UNIT, BadValue, checked, flag, labelled, named, positive_int, require_key
from fnn.core import Layer
from fnn.layers.attention import MultiHeadAttention
from fnn.layers.dense import Dense
from fnn.layers.norm import LayerNorm

__all__ = ["TransformerBlock", "gelu"]


def gelu(x):
    """GELU with the exact Gauss error function, `x · Φ(x) = x/2 · (1 + erf(x/√2))`:
    PyTorch's `nn.GELU()` and `activation="gelu"` default (not the tanh approximation,
    which `jax.nn.gelu` uses by default)."""
    return jax.nn.gelu(x, approximate=False)


def _dropout(x, rate: float, key):
    """Inverted dropout of `x` with drop probability `rate` (`key` None: identity)."""
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype))


@checked("TransformerBlock", num_heads=positive_int, mlp_features=positive_int, dropout=UNIT,
         causal=flag)
def TransformerBlock(num_heads: int, mlp_features: int, *, dropout: float = 0.0,
                     causal: bool = False) -> Layer:
    """A pre-norm transformer block (Xiong et al. 2020; GPT-2's layout):

        x ← x + Drop(MHA(LN₁(x)))
        y = x + Drop(W₂ · Drop(GELU(W₁ · LN₂(x) + b₁)) + b₂)

    = PyTorch `nn.TransformerEncoderLayer(F, num_heads, mlp_features, dropout,
    activation="gelu", batch_first=True, norm_first=True)` with the weights copied
    (`self_attn` as `MultiHeadAttention`, `linear1.weight = mlp.hidden.w.T`,
    `linear2.weight = mlp.output.w.T`, `norm1`, `norm2`). GELU is the exact erf form,
    as PyTorch's. `dropout` is used in the same four places as PyTorch: on the
    attention weights, after attention, after the GELU and after the MLP.

    **Arguments:**
    - `num_heads`: heads of the attention (`F` divisible by it).
    - `mlp_features`: hidden width of the MLP (usually `4·F`).
    - `dropout`: drop probability while training (needs `key=` with `train=True`).
    - `causal`: step `t` attends to steps `<= t` only (a decoder / language model block).

    **Params:** `"attention"` (`MultiHeadAttention`'s), `"norm1"`, `"norm2"`
    (`LayerNorm`'s), `"mlp"`: `{"hidden": {"w": (F, M), "b": (M,)}, "output": {"w":
    (M, F), "b": (F,)}}`. **Shapes:** `(N, T, F)`, unchanged.
    **apply keyword:** `mask` (boolean, broadcastable to `(N, heads, T, T)`, True =
    may attend), combined with `causal`.
    """
    attention = MultiHeadAttention(num_heads, dropout=dropout)
    norm = LayerNorm()
    hidden = Dense(mlp_features)

    @named("TransformerBlock")
    def init(key, input_shape):
        f = example_shape(input_shape, "(T, F) for one sequence", rank=2)[-1]
        labelled("TransformerBlock.init", require_key, key)
        ka, kh, ko = jax.random.split(key, 3)
        p_att, _ = attention.init(ka, input_shape)
        p_hidden, _ = hidden.init(kh, input_shape)
        p_out, _ = Dense(f).init(ko, (input_shape[0], mlp_features))
        # two init calls: separate arrays, so a step that donates params can donate both
        return {"attention": p_att, "norm1": norm.init(None, input_shape)[0],
                "mlp": {"hidden": p_hidden, "output": p_out},
                "norm2": norm.init(None, input_shape)[0]}, {}

    @named("TransformerBlock")
    def check(params, x, key, train) -> bool:
        """Whether dropout is drawn in this call."""
        require_params(params, ("attention", "norm1", "mlp", "norm2"), "TransformerBlock")
        require_params(params["mlp"], ("hidden", "output"), "TransformerBlock",
                       what="params['mlp']")
        require_rank(x, 3, "(N, T, F) — batch, time, features")
        require_floating(x)
        drop = train_flag(train) and dropout > 0.0
        if key is not None:
            require_key(key)
        elif drop:
            raise BadValue(f"train=True with dropout={dropout} needs a PRNG key, got "
                           "key=None; call apply(..., key=jax.random.key(0), train=True).")
        return drop

    def apply(params, state, x, *, mask=None, key=None, train=False):
        drop = check(params, x, key, train)
        ks = list(jax.random.split(key, 4)) if drop else [None] * 4
        x = jnp.asarray(x)
        h, _ = norm.apply(params["norm1"], {}, x)
        h, _ = attention.apply(params["attention"], {}, h, mask=mask, causal=causal,
                               key=ks[0], train=train)
        x = x + _dropout(h, dropout, ks[1])
        h, _ = norm.apply(params["norm2"], {}, x)
        h, _ = hidden.apply(params["mlp"]["hidden"], {}, h)
        h = _dropout(gelu(h), dropout, ks[2])
        h, _ = Dense(x.shape[-1]).apply(params["mlp"]["output"], {}, h)
        return x + _dropout(h, dropout, ks[3]), state

    return Layer(init, apply, "TransformerBlock", keywords=frozenset({"mask"}))
