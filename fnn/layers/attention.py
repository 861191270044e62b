"""`MultiHeadAttention` (Vaswani et al. 2017) and the attention weights it uses.

With queries from `x: (N, T, F)` and keys and values from `context: (N, S, Fc)`
(`context` defaults to `x`, self-attention), per head `h` of `H`, key size `D`:

    q_h = x w_q[:, h] + b_q[h]          (N, T, D)
    k_h = context w_k[:, h] + b_k[h]    (N, S, D)
    v_h = context w_v[:, h] + b_v[h]    (N, S, D)
    a_h = softmax(q_h k_hᵀ / √D + m)    (N, T, S), m = 0 where allowed, −∞ where masked
    y   = concat_h(a_h v_h) w_o + b_o   (N, T, out_features)

Head `h` owns columns `h·D .. (h+1)·D − 1` of `w_q`, `w_k`, `w_v` (and rows of `w_o`),
PyTorch's layout: `nn.MultiheadAttention(F, H, batch_first=True)` holds the same
numbers with `in_proj_weight = concat(w_q, w_k, w_v, axis=1).T`,
`in_proj_bias = concat(b_q, b_k, b_v)`, `out_proj.weight = w_o.T`, `out_proj.bias = b_o`.

Masks are boolean with True = MAY attend (JAX's convention; PyTorch's
`key_padding_mask` and boolean `attn_mask` mean the opposite, True = blocked), of
any shape that broadcasts to `(N, H, T, S)` by NumPy's rules: `(T, S)` for one
pattern, `(N, 1, 1, S)` for key padding (`valid[:, None, None, :]`), `(N, 1, T, S)`
per example. `causal=True` (self-attention only) lets step `t` see steps `<= t`.

How it runs: `jax.nn.dot_product_attention` (which picks a fused kernel where the
platform has one, e.g. cuDNN flash attention on GPUs) whenever no attention dropout is
drawn. Dropout on the attention weights (as PyTorch's `dropout=`) needs the weights
themselves, which the fused kernels do not expose, so with `dropout > 0` and
`train=True` the layer takes the explicit path: `attention_weights`, inverted dropout
on them, then the product with the values. Both paths give the same numbers (tested).
Softmax is taken in float32 for half-precision inputs.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fnn import initializers
from fnn._array_checks import (
    example_shape,
    require_array,
    require_floating,
    require_params,
    require_rank,
    train_flag,
)
from fnn._checks import (
    POSITIVE,
    UNIT,
    BadType,
    BadValue,
    checked,
    flag,
    labelled,
    named,
    number,
    optional,
    positive_int,
    require_key,
    shape_str,
)
from fnn._util import at_least_float32
from fnn.core import Layer
from fnn.layers.positional import rotary

__all__ = ["MultiHeadAttention", "attention_weights", "split_heads"]

_NEG = -1e30   # "−∞" for masked logits, finite so an all-masked row gives no NaN


def _positive(name: str, value) -> float:
    return number(name, value, **POSITIVE)


def split_heads(x, num_heads: int):
    """`(N, T, H·D) -> (N, T, H, D)`: head `h` is columns `h·D .. (h+1)·D − 1`."""
    return x.reshape(*x.shape[:-1], num_heads, x.shape[-1] // num_heads)


def _allowed(mask, causal: bool, t: int, s: int):
    """The boolean `(…, T, S)` of allowed pairs (None: all), from `mask` and `causal`."""
    if causal:
        lower = jnp.tril(jnp.ones((t, s), bool)).reshape(1, 1, t, s)
        mask = lower if mask is None else jnp.logical_and(
            mask.reshape((1,) * (4 - mask.ndim) + mask.shape), lower)
    return mask


def attention_weights(q, k, *, mask=None, causal: bool = False):
    """Softmax attention weights `softmax(q kᵀ / √D + m)` per head.

    **Arguments:**
    - `q`: queries `(N, T, H, D)`; `k`: keys `(N, S, H, D)`.
    - `mask`: boolean, broadcastable to `(N, H, T, S)`, True = may attend.
    - `causal`: also block `s > t`.

    **Returns:** `(N, H, T, S)`, each row summing to 1 over `S` (a row with every key
    masked is uniform rather than NaN). Computed in at least float32.
    """
    qf, kf = at_least_float32(q), at_least_float32(k)
    logits = jnp.einsum("nthd,nshd->nhts", qf, kf) / math.sqrt(q.shape[-1])
    allowed = _allowed(mask, causal, q.shape[1], k.shape[1])
    if allowed is not None:
        allowed = allowed.reshape((1,) * (4 - allowed.ndim) + allowed.shape)
        logits = jnp.where(allowed, logits, jnp.asarray(_NEG, logits.dtype))
    return jax.nn.softmax(logits, axis=-1)


def _check_mask(mask, n: int, heads: int, t: int, s: int) -> None:
    """`mask`: a boolean array broadcastable to `(N, H, T, S)` (rank 2 to 4)."""
    require_array(mask)
    if mask.dtype != jnp.bool_:
        raise BadType(f"mask must be boolean (True = may attend), got dtype {mask.dtype}; "
                      "e.g. mask = lengths[:, None] > jnp.arange(S) for key padding.")
    target = (n, heads, t, s)
    fits = 2 <= mask.ndim <= 4 and all(
        m in (1, want) for m, want in zip(mask.shape[::-1], target[::-1]))
    if not fits:
        raise BadValue(f"mask of shape {shape_str(mask.shape)} does not broadcast to (N, "
                       f"heads, T, S) = {shape_str(target)}; use (T, S), (N, 1, T, S) or "
                       "(N, 1, 1, S) for key padding (valid[:, None, None, :]).")


@checked("MultiHeadAttention", num_heads=positive_int, key_size=optional(positive_int),
         out_features=optional(positive_int), context_features=optional(positive_int),
         use_bias=flag, dropout=UNIT, rotary_base=optional(_positive))
def MultiHeadAttention(num_heads: int, *, key_size: int | None = None,
                       out_features: int | None = None, use_bias: bool = True,
                       dropout: float = 0.0, context_features: int | None = None,
                       rotary_base: float | None = None, w_init=initializers.glorot_uniform,
                       b_init=initializers.zeros) -> Layer:
    """Multi-head (scaled dot-product) attention; equations in `help(fnn.layers.attention)`.

    **Arguments:**
    - `num_heads`: the number of heads `H`.
    - `key_size`: `D`, the size of each head's queries, keys and values; default
      `F // num_heads` (then `F` must be divisible by `num_heads`).
    - `out_features`: output size; default `F`.
    - `use_bias`: biases `b_q, b_k, b_v, b_o` (default True, as PyTorch).
    - `dropout`: drop probability on the attention weights while training (as
      PyTorch's `dropout=`); needs `key=` with `train=True`.
    - `context_features`: `Fc`, the feature size of `context` (PyTorch's `kdim`/`vdim`);
      default `F` (init sees only the shape of `x`).
    - `rotary_base`: if given (e.g. 10000), rotary position embeddings
      (`fnn.layers.positional.rotary` with this base) are applied to each head's
      queries and keys before their product: the scores then depend on positions only
      through `t − s`. Needs an even `key_size`.
    - `w_init`, `b_init`: default `glorot_uniform` (PyTorch's `xavier_uniform_` on
      `in_proj_weight`) and `zeros` (PyTorch's biases).

    **Params:** `w_q: (F, H·D)`, `w_k, w_v: (Fc, H·D)`, `w_o: (H·D, out_features)`,
    `b_q, b_k, b_v: (H·D,)`, `b_o: (out_features,)`.
    **Shapes:** `x: (N, T, F) -> (N, T, out_features)`; `context: (N, S, Fc)`.
    **apply keywords:** `context=None`, `mask=None` (boolean, broadcastable to
    `(N, H, T, S)`, True = may attend), `causal=False` (self-attention only).
    """
    w_init, b_init = initializers.get(w_init), initializers.get(b_init)
    if rotary_base is not None and key_size is not None and key_size % 2:
        raise BadValue(f"rotary_base needs an even key_size, got key_size={key_size}.")

    def sizes(f: int) -> tuple[int, int, int]:
        """`(D, H·D, out_features)` for `F = f`."""
        if key_size is None and f % num_heads:
            raise BadValue(f"features F = {f} must be divisible by num_heads = {num_heads} "
                           f"(key_size defaults to F // num_heads); pass key_size= explicitly.")
        d = f // num_heads if key_size is None else key_size
        if rotary_base is not None and d % 2:
            raise BadValue(f"rotary_base needs an even key_size, got {d} (= F // num_heads).")
        return d, num_heads * d, f if out_features is None else out_features

    @named("MultiHeadAttention")
    def init(key, input_shape):
        f = example_shape(input_shape, "(T, F) for one sequence", rank=2)[-1]
        labelled("MultiHeadAttention.init", require_key, key)
        _, hd, out = sizes(f)
        fc = f if context_features is None else context_features
        ks = jax.random.split(key, 8)
        params = {"w_q": w_init(ks[0], (f, hd)), "w_k": w_init(ks[1], (fc, hd)),
                  "w_v": w_init(ks[2], (fc, hd)), "w_o": w_init(ks[3], (hd, out))}
        if use_bias:
            params.update(b_q=b_init(ks[4], (hd,)), b_k=b_init(ks[5], (hd,)),
                          b_v=b_init(ks[6], (hd,)), b_o=b_init(ks[7], (out,)))
        return params, {}

    shapes = {"w_q": ("F", "HD"), "w_k": ("Fc", "HD"), "w_v": ("Fc", "HD"),
              "w_o": ("HD", "out")}
    if use_bias:
        shapes.update(b_q=("HD",), b_k=("HD",), b_v=("HD",), b_o=("out",))

    @named("MultiHeadAttention")
    def check(params, x, context, mask, causal, key, train) -> bool:
        """Whether attention dropout is drawn in this call; every argument checked."""
        train = train_flag(train)
        if key is not None:
            require_key(key)
        got = require_params(params, shapes, "MultiHeadAttention")
        if got["HD"] % num_heads:
            raise BadValue(f"params 'w_q' has {got['HD']} columns, not a multiple of "
                           f"num_heads = {num_heads}; use the params init returns.")
        for part, arr, size in (("x", x, got["F"]), ("context", context, got["Fc"])):
            if arr is None:
                continue
            require_rank(arr, 3, f"{part} (N, T, {size}) — batch, time, features")
            require_floating(arr)
            if arr.shape[-1] != size:
                raise BadValue(f"expected {part} features {size} (from init), got "
                               f"{arr.shape[-1]} in {part} of shape {shape_str(arr.shape)}"
                               + ("; build the layer with context_features=" +
                                  f"{arr.shape[-1]} for cross-attention." if part == "context"
                                  else "."))
        if context is not None and context.shape[0] != x.shape[0]:
            raise BadValue(f"context batch {context.shape[0]} differs from x batch "
                           f"{x.shape[0]}.")
        if not isinstance(causal, (bool, np.bool_)):
            raise BadType(f"causal must be True or False, got {causal!r}.")
        s = x.shape[1] if context is None else context.shape[1]
        if causal and context is not None:
            raise BadValue("causal=True is for self-attention (context=None); for "
                           "cross-attention pass a boolean mask of shape (T, S) instead.")
        if mask is not None:
            _check_mask(mask, x.shape[0], num_heads, x.shape[1], s)
        drop = train and dropout > 0.0
        if drop and key is None:
            raise BadValue(f"train=True with dropout={dropout} needs a PRNG key, got "
                           "key=None; call apply(..., key=jax.random.key(0), train=True).")
        return drop

    def project(params, x, name):
        y = x @ params[f"w_{name}"]
        if use_bias:
            y = y + params[f"b_{name}"].reshape((1,) * (y.ndim - 1) + (-1,))
        return y

    def apply(params, state, x, *, context=None, mask=None, causal=False, key=None,
              train=False):
        drop = check(params, x, context, mask, causal, key, train)
        x = jnp.asarray(x)
        ctx = x if context is None else jnp.asarray(context)
        q = split_heads(project(params, x, "q"), num_heads)      # (N, T, H, D)
        k = split_heads(project(params, ctx, "k"), num_heads)    # (N, S, H, D)
        v = split_heads(project(params, ctx, "v"), num_heads)
        if rotary_base is not None:
            q, k = rotary(q, base=rotary_base), rotary(k, base=rotary_base)
        if drop:
            a = attention_weights(q, k, mask=mask, causal=causal)
            keep = jax.random.bernoulli(key, 1.0 - dropout, a.shape)
            a = jnp.where(keep, a / (1.0 - dropout), jnp.zeros((), a.dtype))
            o = jnp.einsum("nhts,nshd->nthd", a.astype(v.dtype), v)
        else:
            m = None if mask is None else mask.reshape((1,) * (4 - mask.ndim) + mask.shape)
            o = jax.nn.dot_product_attention(q, k, v, mask=m, is_causal=causal)
        y = project(params, o.reshape(*o.shape[:2], -1), "o")
        return y.astype(jnp.result_type(x, params["w_q"])), state

    return Layer(init, apply, "MultiHeadAttention",
                 keywords=frozenset({"context", "mask", "causal"}))
