"""Private helpers that turn user mistakes into clear errors at trace time.

Every message names the function or layer, what it expected and what it got,
so that a user never has to decode a raw XLA shape error.
"""
from __future__ import annotations

import math
from typing import Any

import jax.numpy as jnp


def shape_str(shape) -> str:
    """`(3, 4)` -> "(3, 4)" with a trailing comma only for rank 1, like Python."""
    return str(tuple(int(s) for s in shape))


def check_rank(where: str, x, rank: int | tuple[int, ...], layout: str) -> None:
    """Raise ValueError unless `x.ndim` is `rank` (or one of several ranks)."""
    ranks = (rank,) if isinstance(rank, int) else tuple(rank)
    if x.ndim not in ranks:
        wanted = " or ".join(str(r) for r in ranks)
        raise ValueError(
            f"{where}: expected a rank-{wanted} input {layout}, "
            f"got shape {shape_str(x.shape)} (rank {x.ndim})."
        )


def check_min_rank(where: str, x, min_rank: int, layout: str) -> None:
    if x.ndim < min_rank:
        raise ValueError(
            f"{where}: expected an input of rank >= {min_rank} {layout}, "
            f"got shape {shape_str(x.shape)} (rank {x.ndim}). "
            "Inputs are batch-first: add a batch axis with x[None] for one example."
        )


def check_axis_size(where: str, x, axis: int, expected: int, what: str) -> None:
    if x.shape[axis] != expected:
        raise ValueError(
            f"{where}: expected {what} {expected} (from init), got {x.shape[axis]} "
            f"in input of shape {shape_str(x.shape)}."
        )


def check_floating(where: str, x) -> None:
    if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
        raise TypeError(
            f"{where}: expected a floating-point input, got dtype {x.dtype}. "
            "Convert with x.astype(jnp.float32)."
        )


def check_positive_int(where: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise TypeError(f"{where}: {name} must be a positive int, got {value!r}.")
    value = int(value)
    if value <= 0:
        raise ValueError(f"{where}: {name} must be a positive int, got {value}.")
    return value


def check_number(where: str, name: str, value: Any, *, low: float | None = None,
                 high: float | None = None, low_open: bool = False,
                 high_open: bool = False) -> float:
    """Validate a Python scalar hyperparameter: finite and inside [low, high].

    `low_open` / `high_open` exclude the end points. Returns it as float.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not (
        hasattr(value, "shape") and value.shape == ()
    ):
        raise TypeError(f"{where}: {name} must be a number, got {value!r}.")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{where}: {name} must be finite, got {v}.")
    lo_bad = low is not None and (v <= low if low_open else v < low)
    hi_bad = high is not None and (v >= high if high_open else v > high)
    if lo_bad or hi_bad:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        if low is None:
            rng = f"<{'' if high_open else '='} {high}"
        elif high is None:
            rng = f">{'' if low_open else '='} {low}"
        else:
            rng = f"in {lo}{hi}"
        raise ValueError(f"{where}: {name} must be {rng}, got {v}.")
    return v


def pair(where: str, name: str, value: Any) -> tuple[int, int]:
    """An int or a pair of ints -> a pair of ints (kernel sizes, strides)."""
    if isinstance(value, (int,)) and not isinstance(value, bool):
        return (int(value), int(value))
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{where}: {name} must be an int or a pair of ints, got {value!r}.")


def resolve(where: str, kind: str, value, table: dict, callable_form: str):
    """A callable as is, or the entry of `table` named by the string `value`."""
    if callable(value):
        return value
    if isinstance(value, str) and value in table:
        return table[value]
    raise ValueError(
        f"{where}: unknown {kind} {value!r}; expected {callable_form} or one of {sorted(table)}."
    )
