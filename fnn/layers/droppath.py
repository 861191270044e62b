"""Stochastic depth (Huang et al. 2016): drop whole examples of a residual branch."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import example_shape, require_floating, require_min_rank, train_flag
from fnn._checks import UNIT, BadValue, checked, named, require_key
from fnn.core import Layer

__all__ = [
    "DropPath",
]


@checked("DropPath", rate=UNIT)
def DropPath(rate: float) -> Layer:
    """Stochastic depth: zero a whole example's branch with probability `rate` while
    training.

    `train=True`: `y[n] = x[n] · m_n / (1 − rate)` with one `m_n ~ Bernoulli(1 − rate)`
    per example `n` (the same for all of its elements), drawn from `key`;
    `train=False`: `y = x`. Put it last in a residual block,
    `fnn.residual(fnn.serial(conv, bn, relu, conv, bn, DropPath(0.1)))`, so a dropped
    example passes through the shortcut alone (timm's `DropPath`, torchvision's
    `StochasticDepth(p, mode="row")`).

    **Arguments:**
    - `rate`: the DROP probability, in `[0, 1)`.

    Keys follow `Dropout`: `train` is a Python bool (static under `jit`), a key is
    needed when `train=True` and `rate > 0`, the same key gives the same mask.

    **Params:** none. **Shapes:** unchanged, input `(N, ...)`.
    """

    @named("DropPath")
    def init(key, input_shape):
        del key
        example_shape(input_shape, "(...)")
        return {}, {}

    @named("DropPath")
    def drops(x, key, train) -> bool:
        """Whether this call drops examples; the key is checked even when it is not used."""
        require_min_rank(x, 1, "(N, ...)")
        require_floating(x)
        drop = train_flag(train) and rate != 0.0
        if drop and key is None:
            raise BadValue(f"train=True with rate={rate} needs a PRNG key, got key=None; call "
                           "apply(params, state, x, key=jax.random.key(0), train=True) with a "
                           "fresh key each step.")
        if key is not None:
            require_key(key)
        return drop

    def apply(params, state, x, *, key=None, train=False):
        del params
        drop = drops(x, key, train)
        x = jnp.asarray(x)
        if not drop:
            return x, state
        keep = jax.random.bernoulli(key, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)), state

    return Layer(init, apply, "DropPath")
