"""Shared internals of `fnn.preprocessing`: the `Preprocessor` type and the input
checks, reductions and dtype handling that the element-wise and PCA preprocessors share."""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, describe_value, is_int, named, shape_str
from fnn._util import at_least_float32

__all__ = [
    "Preprocessor",
    "HIGHEST",
    "as_float",
    "finite",
    "check_axes",
    "reduce_over",
    "not_empty",
    "first",
    "in_float32",
    "check_stats",
    "matching",
    "flatten",
    "make_preprocessor",
]

HIGHEST = jax.lax.Precision.HIGHEST


class Preprocessor(NamedTuple):
    """A preprocessing step as pure functions (plus a name).

    `fit(x) -> stats`, `transform(stats, x) -> z`, `inverse(stats, z) -> x`.
    """

    fit: Callable
    transform: Callable
    inverse: Callable
    name: str

    def fit_transform(self, x):
        """`(stats, transform(stats, x))` with `stats = fit(x)`."""
        stats = self.fit(x)
        return stats, self.transform(stats, x)


# ---------------------------------------------------------------------------
# helpers: checks raise plainly; fit, transform and inverse add their name ("center.fit")


def as_float(x):
    """`x` as a float array of rank >= 2 (integers and bools to float32)."""
    if not isinstance(x, jax.Array):  # lists, NumPy arrays: check before jnp.asarray's errors
        try:
            dtype = np.asarray(x).dtype
        except ValueError:
            raise BadType("expected an array or a rectangular nested list of numbers, got a "
                          "ragged nested list.") from None
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
            raise BadType(f"expected a real-valued array of shape (N, ...), got "
                          f"{describe_value(x)}.")
    x = jnp.asarray(x)
    if x.ndim < 2:
        raise BadValue(f"expected a batch of shape (N, D) or (N, ...), got shape "
                       f"{shape_str(x.shape)} (rank {x.ndim}). Add a batch axis with x[None] "
                       "for one example.")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        if not (jnp.issubdtype(x.dtype, jnp.integer) or x.dtype == jnp.bool_):
            raise BadType(f"expected a real-valued input, got dtype {x.dtype}.")
        x = x.astype(jnp.float32)
    return x


def finite(x):
    """`x`, after checking that concrete data hold no NaN/Inf (statistics fitted on them
    are NaN; scikit-learn refuses them too). Traced data (under `jit`) pass unchecked."""
    if isinstance(x, jax.core.Tracer):
        return x
    bad = ~np.isfinite(np.asarray(x))
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise BadValue(f"the data hold {int(bad.sum())} NaN/Inf value(s), the first at index "
                       f"{first}; remove or impute them before fitting.")
    return x


def check_axes(name: str, axis) -> tuple[int, ...]:
    """`axis` (0 or a tuple of distinct axes >= 0 holding 0) as a sorted tuple."""
    axes = (axis,) if is_int(axis) else axis
    if isinstance(axes, tuple) and all(map(is_int, axes)):
        axes = tuple(int(a) for a in axes)
    if not isinstance(axes, tuple) or not all(
        isinstance(a, int) and not isinstance(a, bool) and a >= 0 for a in axes
    ) or 0 not in axes or len(set(axes)) != len(axes):
        raise BadValue(f"axis must be 0 or a tuple of distinct non-negative axes that includes "
                       f"the batch axis 0 (e.g. (0, 1, 2) for per-channel NHWC statistics), "
                       f"got {axis!r}.")
    return tuple(sorted(axes))


def reduce_over(x, axes: tuple[int, ...], fn):
    if axes[-1] >= x.ndim:
        raise BadValue(f"axis {axes} is out of range for input of shape {shape_str(x.shape)}.")
    not_empty(x, axes)
    return fn(x, axis=axes, keepdims=True)[0]


def not_empty(x, axes: tuple[int, ...]) -> None:
    if any(x.shape[a] == 0 for a in axes):
        raise BadValue(f"cannot fit statistics on an empty batch, got input of shape "
                       f"{shape_str(x.shape)}.")


def first(x, axis, keepdims=True):
    """The first entry along `axis` (a `reduce_over` function): one example's values."""
    del keepdims
    return x[tuple(slice(0, 1) if i in axis else slice(None) for i in range(x.ndim))]


def in_float32(fn, x, *stats):
    """`fn(x, *stats)` computed in float32 at least (float16 overflows at 65504: the
    range 60000 − (−60000) of two representable numbers is inf), returned in the dtype
    of the inputs."""
    dtype = jnp.result_type(x, *stats)
    return fn(at_least_float32(x), *map(at_least_float32, stats)).astype(dtype)


def check_stats(stats, cls, made_by: str):
    """`stats` unless it lacks the fields of `cls` (as `fit` returns them), a `BadType`:
    `transform(None, x)` or another preprocessor's statistics would be an AttributeError.
    `made_by` names the preprocessor ("preprocessing.center")."""
    if not all(hasattr(stats, f) for f in cls._fields):
        raise BadType(f"stats must be the {cls.__name__} returned by {made_by}(...).fit(x) "
                      f"(fields {', '.join(cls._fields)}), got {describe_value(stats)}"
                      f"{' — call fit first' if stats is None else ''}.")
    return stats


def matching(x, stats, cls, made_by: str):
    """`x` (as `as_float`) for the element-wise statistics `stats` of type `cls` (as
    `check_stats`), unless its examples do not fit their per-example shape."""
    x = as_float(x)
    stat = getattr(check_stats(stats, cls, made_by), cls._fields[0])
    if x.ndim != stat.ndim + 1 or any(
        s != 1 and s != d for s, d in zip(stat.shape, x.shape[1:], strict=True)
    ):
        raise BadValue(f"expected input of shape (N, ...) matching the fitted statistics of "
                       f"shape {shape_str(stat.shape)} (per example), got shape "
                       f"{shape_str(x.shape)}.")
    return x


def flatten(x, features: int | None = None):
    x = as_float(x)
    flat = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # -1 is ambiguous for N = 0
    if features is not None and flat.shape[1] != features:
        raise BadValue(f"expected examples with {features} features (as fitted), got input of "
                       f"shape {shape_str(x.shape)} ({flat.shape[1]} features per example).")
    return flat


def make_preprocessor(name: str, fit, transform, inverse) -> Preprocessor:
    """The `Preprocessor` of these functions, whose errors name them
    ("preprocessing.center.fit: ...")."""
    where = f"preprocessing.{name}"
    return Preprocessor(named(f"{where}.fit")(fit), named(f"{where}.transform")(transform),
                        named(f"{where}.inverse")(inverse), name)
