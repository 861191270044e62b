"""Inverted dropout (Srivastava et al. 2014)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import example_shape, require_floating, train_flag
from fnn._checks import UNIT, BadValue, checked, named, require_key
from fnn.core import Layer

__all__ = [
    "drops_with",
    "Dropout",
]


@checked("Dropout", rate=UNIT)
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

    @named("Dropout")
    def init(key, input_shape):
        del key
        example_shape(input_shape, "(...)")
        return {}, {}

    @named("Dropout")
    def drops(x, key, train) -> bool:
        """Whether this call drops units; the key is checked even when it is not used."""
        require_floating(x)
        return drops_with(rate, key, train)

    def apply(params, state, x, *, key=None, train=False):
        del params
        drop = drops(x, key, train)
        x = jnp.asarray(x)   # a NumPy float64 batch becomes JAX's default float, as in Dense
        if not drop:
            return x, state
        keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)), state

    return Layer(init, apply, "Dropout")


def drops_with(rate: float, key, train) -> bool:
    """Whether a dropping layer of drop probability `rate` drops in this call
    (`train=True` and `rate > 0`); the key it then needs is required, and a key given is
    checked even when unused. The message names no layer: the caller's `named` does."""
    drop = train_flag(train) and rate != 0.0
    if drop and key is None:
        raise BadValue(f"train=True with rate={rate} needs a PRNG key, got key=None; call "
                       "apply(params, state, x, key=jax.random.key(0), train=True) with a "
                       "fresh key each step.")
    if key is not None:
        require_key(key)
    return drop
