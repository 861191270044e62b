"""Position information for attention: sinusoidal and learned position embeddings, and
rotary embeddings (RoPE).

Attention by itself is blind to order (permuting the keys permutes nothing in the
output), so sequence models add where each step is:

- `sinusoidal_positions(T, F)` (Vaswani et al. 2017), no params:
  `P[t, 2i] = sin(t·ω_i)`, `P[t, 2i+1] = cos(t·ω_i)`, `ω_i = base^(−2i/F)`;
  the layer `SinusoidalEmbedding()` adds it to its input `(N, T, F)`.
- `PositionalEmbedding(max_len)`: a learned table `(max_len, F)`, row `t` added to step
  `t` (GPT-2's choice; sequences up to `max_len` steps).
- `rotary(x)` (Su et al. 2021, RoPE), no params: rotates each pair of features of the
  queries and keys by an angle proportional to the position, so that the score of
  query `t` and key `s` depends on positions only through `t − s`. Used inside
  `MultiHeadAttention(..., rotary_base=10000)`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import initializers
from fnn._array_checks import (
    example_shape,
    require_features,
    require_floating,
    require_key_and_train,
    require_params,
    require_rank,
)
from fnn._checks import (
    POSITIVE,
    BadValue,
    checked,
    labelled,
    lookup,
    named,
    positive_int,
    require_key,
    shape_str,
)
from fnn.core import Layer

__all__ = ["sinusoidal_positions", "rotary", "SinusoidalEmbedding", "PositionalEmbedding"]


def sinusoidal_positions(length: int, features: int, *, base: float = 10000.0,
                         dtype=jnp.float32):
    """The sinusoidal table `P: (length, features)` of Vaswani et al. (2017).

    `P[t, 2i] = sin(t·ω_i)`, `P[t, 2i+1] = cos(t·ω_i)` with `ω_i = base^(−2i/features)`
    (for odd `features` the last column is the sine of the last pair). Computed in
    float32 from integer positions, then cast to `dtype`.
    """
    half = (features + 1) // 2
    omega = base ** (-2.0 * jnp.arange(half, dtype=jnp.float32) / features)     # (F/2,)
    angle = jnp.arange(length, dtype=jnp.float32).reshape(-1, 1) * omega.reshape(1, -1)
    table = jnp.stack([jnp.sin(angle), jnp.cos(angle)], axis=-1).reshape(length, 2 * half)
    return table[:, :features].astype(dtype)


@named("rotary")
def rotary(x, *, positions=None, base: float = 10000.0):
    """Rotary position embedding (RoPE, Su et al. 2021) of `x: (N, T, H, D)`.

    With `θ_i = base^(−2i/D)` for `i < D/2` and `p_t` the position of step `t`
    (`positions: (T,)`, default `0 .. T−1`), the two halves `x = [x1 | x2]` of each
    head's features become

        y1 = x1 · cos(p_t θ) − x2 · sin(p_t θ)
        y2 = x2 · cos(p_t θ) + x1 · sin(p_t θ)

    (the "rotate half" pairing of GPT-NeoX and LLaMA: feature `i` pairs with `i + D/2`).
    Each pair is rotated by the angle `p_t θ_i`, so for queries and keys
    `⟨rotary(q)_t, rotary(k)_s⟩` depends on the positions only through `p_t − p_s`.
    `D` must be even. Works on any `(..., T, H, D)`.
    """
    if x.ndim < 3:
        raise BadValue(f"expected x of rank >= 3 (..., T, heads, D), got shape "
                       f"{shape_str(x.shape)}.")
    t, d = x.shape[-3], x.shape[-1]
    if d % 2:
        raise BadValue(f"the head size D must be even to rotate pairs, got D = {d}.")
    pos = jnp.arange(t, dtype=jnp.float32) if positions is None else jnp.asarray(
        positions, jnp.float32)
    if pos.shape != (t,):
        raise BadValue(f"expected positions of shape ({t},), got {shape_str(pos.shape)}.")
    theta = base ** (-2.0 * jnp.arange(d // 2, dtype=jnp.float32) / d)          # (D/2,)
    angle = pos.reshape(t, 1, 1) * theta.reshape(1, 1, -1)                       # (T, 1, D/2)
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    xf = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    x1, x2 = xf[..., : d // 2], xf[..., d // 2:]
    lead = (1,) * (x.ndim - 3)
    cos, sin = cos.reshape(lead + cos.shape), sin.reshape(lead + sin.shape)
    y = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1)
    return y.astype(x.dtype)


@checked("SinusoidalEmbedding", base=POSITIVE)
def SinusoidalEmbedding(*, base: float = 10000.0) -> Layer:
    """Add the fixed sinusoidal table to a sequence: `y[:, t] = x[:, t] + P[t]`.

    `P = sinusoidal_positions(T, F, base=base)` (see there for the equation).

    **Params:** none. **Shapes:** `(N, T, F)`, unchanged.
    """

    @named("SinusoidalEmbedding")
    def init(key, input_shape):
        del key
        example_shape(input_shape, "(T, F) for one sequence", rank=2)
        return {}, {}

    @named("SinusoidalEmbedding")
    def check(x, key, train):
        require_key_and_train(key, train)
        require_rank(x, 3, "(N, T, F)")
        require_floating(x)

    def apply(params, state, x, *, key=None, train=False):
        del params
        check(x, key, train)
        x = jnp.asarray(x)
        table = sinusoidal_positions(x.shape[1], x.shape[2], base=base, dtype=x.dtype)
        return x + table.reshape(1, *table.shape), state

    return Layer(init, apply, "SinusoidalEmbedding")


@checked("PositionalEmbedding", max_len=positive_int)
def PositionalEmbedding(max_len: int, *, table_init=initializers.normal(0.02)) -> Layer:
    """Add a learned position vector to each step: `y[:, t] = x[:, t] + table[t]`.

    **Arguments:**
    - `max_len`: the longest sequence; `T > max_len` is an error.
    - `table_init`: default N(0, 0.02²) (GPT-2's).

    **Params:** `table: (max_len, F)`. **Shapes:** `(N, T, F)` with `T <= max_len`,
    unchanged.
    """
    table_init = lookup(initializers.get, table_init)

    @named("PositionalEmbedding")
    def init(key, input_shape):
        t, f = example_shape(input_shape, "(T, F) for one sequence", rank=2)
        labelled("PositionalEmbedding.init", require_key, key)
        if t > max_len:
            raise BadValue(f"sequence length T = {t} exceeds max_len = {max_len}.")
        return {"table": table_init(key, (max_len, f))}, {}

    @named("PositionalEmbedding")
    def check(params, x, key, train):
        require_key_and_train(key, train)
        size = require_params(params, {"table": (max_len, "F")}, "PositionalEmbedding")["F"]
        require_rank(x, 3, f"(N, T, {size})")
        require_features(x, size, f"(N, T, {size})", "features (last axis)")
        if x.shape[1] > max_len:
            raise BadValue(f"sequence length T = {x.shape[1]} exceeds max_len = {max_len} "
                           f"(input shape {shape_str(x.shape)}).")

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        x = jnp.asarray(x)
        rows = jax.lax.slice_in_dim(params["table"], 0, x.shape[1], axis=0)
        y = x + rows.reshape(1, *rows.shape)
        return y.astype(jnp.result_type(x, params["table"])), state

    return Layer(init, apply, "PositionalEmbedding")
