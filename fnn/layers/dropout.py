"""Inverted dropout (Srivastava et al. 2014)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._checks import check_floating, check_input_shape, check_key, check_number, check_train
from fnn.core import Layer


def Dropout(rate: float) -> Layer:
    """Inverted dropout: zero each unit with probability `rate` while training.

    `train=True`: `y = x · m / (1 − rate)` with `m ~ Bernoulli(1 − rate)` drawn
    independently for every element from `key`; `train=False`: `y = x`.
    Scaling at training time keeps `E[y] = x`, so evaluation needs no rescaling.

    `rate` is the DROP probability (as PyTorch `nn.Dropout(p)` and Keras;
    `jax.example_libraries.stax.Dropout` takes the keep rate instead), in `[0, 1)`.
    `train` must be a Python bool (static under `jit`). The same `key` gives the
    same mask.

    **Params:** none. **Shapes:** unchanged.
    """
    rate = check_number("Dropout", "rate", rate, low=0.0, high=1.0, high_open=True)

    def init(key, input_shape):
        del key
        check_input_shape("Dropout", input_shape, "(...)")
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params
        check_floating("Dropout", x)
        x = jnp.asarray(x)   # a NumPy float64 batch becomes JAX's default float, as in Dense
        if not check_train("Dropout", train) or rate == 0.0:
            if key is not None:   # given but not needed: still checked
                check_key("Dropout", key)
            return x, state
        if key is None:
            raise ValueError(
                f"Dropout: train=True with rate={rate} needs a PRNG key, got key=None; call "
                "apply(params, state, x, key=jax.random.key(0), train=True) with a fresh key "
                "each step."
            )
        check_key("Dropout", key)
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)), state

    return Layer(init, apply, "Dropout")
