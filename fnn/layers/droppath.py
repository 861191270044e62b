"""Stochastic depth (Huang et al. 2016): drop whole examples of a residual branch."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import example_shape, require_floating, require_min_rank
from fnn._checks import UNIT, checked, named
from fnn.core import Layer
from fnn.layers.dropout import drops_with

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
        return drops_with(rate, key, train)

    def apply(params, state, x, *, key=None, train=False):
        del params
        drop = drops(x, key, train)
        x = jnp.asarray(x)
        if not drop:
            return x, state
        keep = jax.random.bernoulli(key, 1.0 - rate, (x.shape[0],) + (1,) * (x.ndim - 1))
        return jnp.where(keep, x / (1.0 - rate), jnp.zeros((), x.dtype)), state

    return Layer(init, apply, "DropPath")
