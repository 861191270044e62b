"""Element-wise preprocessing: `center`, `standardize` and `minmax` and their statistics.

See `fnn.preprocessing` for the conventions."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import POSITIVE, checked
from fnn._util import at_least_float32
from fnn.preprocessing._common import (
    Preprocessor,
    as_float,
    check_axes,
    finite,
    first,
    in_float32,
    make_preprocessor,
    matching,
    reduce_over,
)

__all__ = ["center", "standardize", "minmax", "CenterStats", "StandardizeStats", "MinMaxStats"]


class CenterStats(NamedTuple):
    mean: Any  # x.shape[1:] with reduced axes of size 1


class StandardizeStats(NamedTuple):
    mean: Any  # like CenterStats.mean
    std: Any   # σ where σ > eps, else 1; same shape (the divisor used by transform); in
    #            half precision at least the dtype's smallest normal number


class MinMaxStats(NamedTuple):
    min: Any   # per-feature minimum
    max: Any   # per-feature maximum


@checked("preprocessing.center", axis=check_axes)
def center(axis=0) -> Preprocessor:
    """Mean subtraction: `z = x − μ`, `μ = mean(x, axis)`; inverse `x = z + μ`."""
    made_by = "preprocessing.center"

    def fit(x):
        return CenterStats(reduce_over(finite(as_float(x)), axis, jnp.mean))

    def transform(stats, x):
        return matching(x, stats, CenterStats, made_by) - stats.mean[None]

    def inverse(stats, z):
        return matching(z, stats, CenterStats, made_by) + stats.mean[None]

    return make_preprocessor("center", fit, transform, inverse)


@checked("preprocessing.standardize", eps=POSITIVE, axis=check_axes)
def standardize(eps: float = 1e-8, axis=0) -> Preprocessor:
    """Standardisation: `z = (x − μ) / s`, per feature (mean 0, std 1), with
    `s = σ` where `σ > eps` and `s = 1` elsewhere.

    `μ` and `σ` (population std, `ddof=0`) are taken over `axis`. A feature
    that is constant in the training data (`σ ≤ eps`) is only centred: it maps to
    0 there, and new data that do vary there are not blown up by `1/eps` (an
    always-black border pixel of MNIST; scikit-learn's `StandardScaler` does the
    same). Inverse: `x = z · s + μ`.
    """
    made_by = "preprocessing.standardize"

    def fit(x):
        x = finite(as_float(x))
        dtype = x.dtype
        x = at_least_float32(x)  # (x − μ)² of float16 data overflows beyond |x − μ| = 256
        # statistics of x − x[0]: exact zeros for a constant feature, so its σ is 0 (not
        # float32 rounding noise of the mean) and it maps to 0; also less cancellation
        shift = jax.lax.stop_gradient(reduce_over(x, axis, first))
        d = x - shift[None]
        mean_d = reduce_over(d, axis, jnp.mean)
        var = reduce_over((d - mean_d[None]) ** 2, axis, jnp.mean)
        varies = var > eps * eps   # σ > eps (for eps < 1e-19, whose square is 0: σ > 0)
        # the inner where keeps the gradient finite at σ = 0 (√ has an infinite slope there)
        std = jnp.where(varies, jnp.sqrt(jnp.where(varies, var, 1.0)), 1.0)
        # in half precision eps may round to 0: keep the divisor positive
        std = jnp.maximum(std.astype(dtype), jnp.finfo(dtype).tiny)
        return StandardizeStats((shift + mean_d).astype(dtype), std)

    def transform(stats, x):
        x = matching(x, stats, StandardizeStats, made_by)
        return in_float32(lambda x, m, s: (x - m[None]) / s[None], x, stats.mean, stats.std)

    def inverse(stats, z):
        z = matching(z, stats, StandardizeStats, made_by)
        return in_float32(lambda z, m, s: z * s[None] + m[None], z, stats.mean, stats.std)

    return make_preprocessor("standardize", fit, transform, inverse)


@checked("preprocessing.minmax", eps=POSITIVE, axis=check_axes)
def minmax(eps: float = 1e-8, axis=0) -> Preprocessor:
    """Scaling to [−1, 1]: `z = 2 (x − min) / r − 1`, per feature, with the range
    `r = max − min` where it exceeds `eps` and `r = 1` elsewhere.

    The training data map exactly onto [−1, 1]; a feature constant in the training
    data maps to −1 there, and new data that vary there are shifted, not blown up
    by `1/eps` (scikit-learn's `MinMaxScaler` does the same). New data may fall
    outside [−1, 1]. Inverse: `x = (z + 1) / 2 · r + min`.
    """
    made_by = "preprocessing.minmax"

    def fit(x):
        x = finite(as_float(x))
        return MinMaxStats(reduce_over(x, axis, jnp.min), reduce_over(x, axis, jnp.max))

    def _range(lo, hi):
        return jnp.where(hi - lo > eps, hi - lo, 1.0)[None]

    def _transform(x, lo, hi):
        return 2.0 * (x - lo[None]) / _range(lo, hi) - 1.0

    def _inverse(z, lo, hi):
        return (z + 1.0) * 0.5 * _range(lo, hi) + lo[None]

    def transform(stats, x):
        x = matching(x, stats, MinMaxStats, made_by)
        return in_float32(_transform, x, stats.min, stats.max)

    def inverse(stats, z):
        z = matching(z, stats, MinMaxStats, made_by)
        return in_float32(_inverse, z, stats.min, stats.max)

    return make_preprocessor("minmax", fit, transform, inverse)
