"""Walking jaxprs: the jaxprs nested in an equation's parameters.

A `jit`, `scan`, `while`, `cond`, `remat` or custom-derivative equation holds the
computation it runs as jaxprs among its parameters (`cond` a tuple of branches).
Shared by `fnn.summary` (counting multiply-accumulates) and `fnn.fused` (finding
convolutions inside a step).
"""
from __future__ import annotations

from jax.extend import core as jcore

__all__ = ["sub_jaxprs"]


def sub_jaxprs(value) -> list:
    """The jaxprs inside one equation parameter `value`: a `ClosedJaxpr`'s jaxpr, a
    `Jaxpr`, those inside a tuple or list (`cond` branches); `[]` for anything else."""
    if isinstance(value, jcore.ClosedJaxpr):
        return [value.jaxpr]
    if isinstance(value, jcore.Jaxpr):
        return [value]
    if isinstance(value, (tuple, list)):
        return [j for v in value for j in sub_jaxprs(v)]
    return []
