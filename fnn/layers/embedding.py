"""`Embedding`: a lookup table from integer ids to feature vectors."""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from fnn import initializers
from fnn._array_checks import (
    concrete_range,
    example_shape,
    require_key_and_train,
    require_min_rank,
    require_params,
)
from fnn._checks import (
    BadType,
    BadValue,
    checked,
    labelled,
    lookup,
    named,
    positive_int,
    require_key,
    shape_str,
)
from fnn._util import at_least_int32
from fnn.core import Layer

__all__ = ["Embedding"]


@checked("Embedding", vocab_size=positive_int, features=positive_int)
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
    Its `input_dtype` field is int32, so `fnn.serial` and `fnn.output_shape` probe
    shapes with integer input.
    """
    table_init = lookup(initializers.get, table_init)

    @named("Embedding")
    def init(key, input_shape):
        example_shape(input_shape, "(...) of integer ids")
        labelled("Embedding.init", require_key, key)
        return {"table": table_init(key, (vocab_size, features))}, {}

    @named("Embedding")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, {"table": (vocab_size, features)}, "Embedding")
        require_min_rank(x, 1, "(N, ...) of integer ids")
        if not jnp.issubdtype(jnp.result_type(x), jnp.integer):
            raise BadType(f"expected integer ids, got dtype {jnp.result_type(x)} (input shape "
                          f"{shape_str(np.shape(x))}). Convert with x.astype(jnp.int32); to "
                          "feed real-valued features use Dense instead.")
        bounds = concrete_range(x)
        if bounds is not None and (bounds[0] < 0 or bounds[1] >= vocab_size):
            raise BadValue(f"ids must be in [0, {vocab_size - 1}] (vocab_size {vocab_size}), "
                           f"got ids from {bounds[0]} to {bounds[1]}.")

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        # widened first: `vocab_size` (the NaN row's index) may not fit a narrow dtype, and
        # a wrapped one (in int8, 300 -> 44 and 128 -> -128, which `take` reads as row 0)
        # would silently return a real row
        x = at_least_int32(jnp.asarray(x))
        ids = jnp.where((x >= 0) & (x < vocab_size), x, vocab_size)  # out of range: a NaN row
        return jnp.take(params["table"], ids, axis=0, mode="fill", fill_value=jnp.nan), state

    return Layer(init, apply, "Embedding", input_dtype=jnp.int32)
