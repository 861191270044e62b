"""A character-level transformer language model (decoder-only, GPT-style)."""
from __future__ import annotations

from fnn._checks import BadValue, checked, positive_int
from fnn.core import Layer, serial
from fnn.layers.dense import Dense
from fnn.layers.embedding import Embedding
from fnn.layers.norm import LayerNorm
from fnn.layers.positional import PositionalEmbedding
from fnn.layers.transformer import TransformerBlock

__all__ = ["char_transformer"]


@checked("char_transformer", vocab_size=positive_int, features=positive_int,
         num_heads=positive_int, num_layers=positive_int, max_len=positive_int)
def char_transformer(vocab_size: int, features: int, num_heads: int, num_layers: int,
                     max_len: int, *, mlp_features: int | None = None,
                     dropout: float = 0.0) -> Layer:
    """A causal transformer language model on integer ids.

    `serial(Embedding(vocab_size, features), PositionalEmbedding(max_len),
    TransformerBlock(num_heads, mlp_features, causal=True) × num_layers, LayerNorm(),
    Dense(vocab_size))`: the logits at step `t` score the id at `t + 1` and depend
    only on steps `<= t`. Params keyed `"0_Embedding"`, `"1_PositionalEmbedding"`,
    `"2_TransformerBlock"`, ..., `"{L+2}_LayerNorm"`, `"{L+3}_Dense"`.

    **Arguments:**
    - `vocab_size`, `features` (divisible by `num_heads`), `num_heads`, `num_layers`.
    - `max_len`: the longest sequence (the learned position table's rows).
    - `mlp_features`: the blocks' MLP width, default `4·features`.
    - `dropout`: the blocks' dropout (default 0).

    **Shapes:** integer ids `(N, T) -> (N, T, vocab_size)` with `T <= max_len`.
    """
    if features % num_heads:
        raise BadValue(f"features = {features} must be divisible by num_heads = {num_heads}.")
    mlp = 4 * features if mlp_features is None else positive_int("mlp_features", mlp_features)
    blocks = [TransformerBlock(num_heads, mlp, dropout=dropout, causal=True)
              for _ in range(num_layers)]
    return serial(Embedding(vocab_size, features), PositionalEmbedding(max_len), *blocks,
                  LayerNorm(), Dense(vocab_size))
