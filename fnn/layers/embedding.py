"""`Embedding`: a lookup table from integer ids to feature vectors."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fnn import initializers
from fnn._checks import (
    check_input_shape,
    check_key,
    check_key_and_train,
    check_min_rank,
    check_params,
    check_positive_int,
    concrete_range,
    shape_str,
)
from fnn._util import at_least_int32
from fnn.core import Layer

__all__ = ["Embedding"]


def Embedding(vocab_size: int, features: int, *, table_init=initializers.normal(1.0)) -> Layer:
    """Map integer ids to learned vectors: `y[..., :] = table[x[...]]`.

    Equivalent to `one_hot(x, vocab_size) @ table`, without building the one-hot.

    **Arguments:**
    - `vocab_size`: number of distinct ids; valid ids are `0 .. vocab_size − 1`.
    - `features`: size of each vector.
    - `table_init`: default N(0, 1) (as PyTorch `nn.Embedding`): unit-variance
      vectors suit the layers that follow (`Dense`, `LSTM` with `lecun_normal`
      input weights expect unit-variance inputs). Keras draws U(−0.05, 0.05).

    **Params:** `table: (vocab_size, features)`.
    **Shapes:** integer `(N, ...) -> (N, ..., features)` (float32, the table's dtype).

    A non-integer input raises `TypeError`. Out-of-range ids raise `ValueError`
    when the input is concrete; under `jit` they cannot be checked and give rows
    of NaN (so the mistake shows instead of silently reading a wrong row).
    `init` is marked `input_dtype = int32`, so `fnn.serial` and `fnn.output_shape`
    probe shapes with integer input.
    """
    vocab_size = check_positive_int("Embedding", "vocab_size", vocab_size)
    features = check_positive_int("Embedding", "features", features)
    try:
        table_init = initializers.get(table_init)
    except ValueError as e:
        raise ValueError(f"Embedding: {e}") from None

    def init(key, input_shape):
        check_input_shape("Embedding", input_shape, "(...) of integer ids")
        check_key("Embedding.init", key)
        return {"table": table_init(key, (vocab_size, features))}, {}

    init.input_dtype = jnp.int32

    def apply(params, state, x, *, key=None, train=False):
        check_key_and_train("Embedding", key, train)
        check_params("Embedding", params, {"table": (vocab_size, features)})
        check_min_rank("Embedding", x, 1, "(N, ...) of integer ids")
        if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
            raise TypeError(
                f"Embedding: expected integer ids, got dtype {jnp.result_type(x)} "
                f"(input shape {shape_str(np.shape(x))}). Convert with x.astype(jnp.int32); "
                "to feed real-valued features use Dense instead."
            )
        table = params["table"]
        vocab = table.shape[0]
        bounds = concrete_range(x)
        if bounds is not None:
            lo, hi = bounds
            if lo < 0 or hi >= vocab:
                raise ValueError(
                    f"Embedding: ids must be in [0, {vocab - 1}] (vocab_size {vocab}), "
                    f"got ids from {lo} to {hi}."
                )
        x = jnp.asarray(x)
        # widened first: `vocab` (the NaN row's index) may not fit a narrow dtype, and a
        # wrapped one (in int8, 300 -> 44 and 128 -> -128, which `take` reads as row 0)
        # would silently return a real row
        x = at_least_int32(x)
        ids = jnp.where((x >= 0) & (x < vocab), x, vocab)  # out of range -> a NaN row
        return jnp.take(table, ids, axis=0, mode="fill", fill_value=jnp.nan), state

    return Layer(init, apply, "Embedding")
