"""Preprocessing as pure fit/transform pairs whose fitted statistics are pytrees.

Each constructor returns a `Preprocessor`, a NamedTuple of three pure functions
(like `fnn.Layer` and `fnn.optim.Optimizer`):

    prep = fnn.preprocessing.standardize()
    stats = prep.fit(x_train)               # a NamedTuple of arrays (a pytree)
    z_train = prep.transform(stats, x_train)
    z_test = prep.transform(stats, x_test)  # statistics of the training set only
    x_back = prep.inverse(stats, z_test)

| constructor | statistics | transform |
|---|---|---|
| `center(axis=0)` | `mean` | `z = x − μ` |
| `standardize(eps=1e-8, axis=0)` | `mean`, `std` | `z = (x − μ) / s`, `s = σ` (or 1) |
| `minmax(eps=1e-8, axis=0)` | `min`, `max` | `z = 2 (x − min) / r − 1`, `r = max − min` (or 1) |
| `pca(k=None, variance=None)` | `mean`, `components`, `eigenvalues` | `z = (x − μ) Uₖ` |
| `pca_whitening(k, variance, eps=1e-5)` | `WhiteningStats` | `z = (x − μ) Uₖ (Λₖ + eps)^-½` |
| `zca_whitening(eps=1e-5)` | `WhiteningStats` | `z = (x − μ) U (Λ + eps)^-½ Uᵀ` |

Conventions:
- Inputs are batch-first, `(N, ...)`. Integer and bool inputs (e.g. uint8 images)
  are converted to float32 first; float inputs keep their dtype (statistics and
  outputs), but float16/bfloat16 data are computed in float32 inside, so that
  differences and squares beyond 65504 do not overflow (a stored eigenvalue beyond
  65504 is inf, but the whitening matrices are computed from the float32 values
  before they are stored). `transform(stats, x)`
  takes the statistics its own `fit` returned; anything else is a `TypeError`.
- `center`, `standardize` and `minmax` are element-wise: statistics have the
  shape of one example `x.shape[1:]` (per feature/pixel) with the axes in `axis`
  (which must include the batch axis 0) reduced to size 1 — `axis=(0, 1, 2)` on
  NHWC images gives per-channel statistics of shape `(1, 1, C)`. Outputs keep the
  input's shape.
- `pca`, `pca_whitening` and `zca_whitening` flatten each example: `(N, ...)` is
  treated as `(N, D)` with `D = prod(x.shape[1:])`. PCA and PCA whitening return
  `(N, k)`; `inverse` returns `(N, D)` (reshape it yourself). ZCA whitening stays
  in input space and returns the input's shape.
- Covariance is the biased estimate `C = (x − μ)ᵀ(x − μ) / N` and standard
  deviations use `ddof=0`, so transformed training data have exactly unit
  variance (up to eps). `C = U Λ Uᵀ` with the eigenvalues `Λ` sorted in
  decreasing order; `components` holds `Uᵀ` (orthonormal rows), each row's sign
  fixed so that its largest-magnitude entry is positive (deterministic output).
- `transform` and `inverse` are jit-compatible; `fit` is too for `k` given (or
  all components), but choosing `k` from a `variance` fraction needs concrete
  eigenvalues, so that `fit` runs eagerly.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import (
    POSITIVE,
    BadType,
    BadValue,
    checked,
    describe_value,
    is_int,
    named,
    number,
    positive_int,
    shape_str,
)
from fnn._util import at_least_float32

__all__ = [
    "Preprocessor", "center", "standardize", "minmax", "pca", "pca_whitening", "zca_whitening",
    "CenterStats", "StandardizeStats", "MinMaxStats", "PCAStats", "WhiteningStats",
]

_HIGHEST = jax.lax.Precision.HIGHEST


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


class CenterStats(NamedTuple):
    mean: Any  # x.shape[1:] with reduced axes of size 1


class StandardizeStats(NamedTuple):
    mean: Any  # like CenterStats.mean
    std: Any   # σ where σ > eps, else 1; same shape (the divisor used by transform); in
    #            half precision at least the dtype's smallest normal number


class MinMaxStats(NamedTuple):
    min: Any   # per-feature minimum
    max: Any   # per-feature maximum


class PCAStats(NamedTuple):
    mean: Any         # (D,)
    components: Any   # (k, D) orthonormal rows Uₖᵀ, by decreasing eigenvalue
    eigenvalues: Any  # (k,) variances along the components, decreasing


class WhiteningStats(NamedTuple):
    mean: Any            # (D,)
    components: Any      # (k, D) as in PCAStats (k = D for ZCA)
    eigenvalues: Any     # (k,)
    matrix: Any          # (D, k) PCA: Uₖ(Λₖ+eps)^{-1/2};  (D, D) ZCA: U(Λ+eps)^{-1/2}Uᵀ
    inverse_matrix: Any  # (k, D) PCA: (Λₖ+eps)^{1/2}Uₖᵀ;  (D, D) ZCA: U(Λ+eps)^{1/2}Uᵀ


# ---------------------------------------------------------------------------
# helpers: checks raise plainly; fit, transform and inverse add their name ("center.fit")


def _as_float(x):
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


def _finite(x):
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


def _axes(name: str, axis) -> tuple[int, ...]:
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


def _reduce(x, axes: tuple[int, ...], fn):
    if axes[-1] >= x.ndim:
        raise BadValue(f"axis {axes} is out of range for input of shape {shape_str(x.shape)}.")
    _not_empty(x, axes)
    return fn(x, axis=axes, keepdims=True)[0]


def _not_empty(x, axes: tuple[int, ...]) -> None:
    if any(x.shape[a] == 0 for a in axes):
        raise BadValue(f"cannot fit statistics on an empty batch, got input of shape "
                       f"{shape_str(x.shape)}.")


def _first(x, axis, keepdims=True):
    """The first entry along `axis` (a `_reduce` function): one example's values."""
    del keepdims
    return x[tuple(slice(0, 1) if i in axis else slice(None) for i in range(x.ndim))]


def _in_float32(fn, x, *stats):
    """`fn(x, *stats)` computed in float32 at least (float16 overflows at 65504: the
    range 60000 − (−60000) of two representable numbers is inf), returned in the dtype
    of the inputs."""
    dtype = jnp.result_type(x, *stats)
    return fn(at_least_float32(x), *map(at_least_float32, stats)).astype(dtype)


def _stats(stats, cls, made_by: str):
    """`stats` unless it lacks the fields of `cls` (as `fit` returns them), a `BadType`:
    `transform(None, x)` or another preprocessor's statistics would be an AttributeError.
    `made_by` names the preprocessor ("preprocessing.center")."""
    if not all(hasattr(stats, f) for f in cls._fields):
        raise BadType(f"stats must be the {cls.__name__} returned by {made_by}(...).fit(x) "
                      f"(fields {', '.join(cls._fields)}), got {describe_value(stats)}"
                      f"{' — call fit first' if stats is None else ''}.")
    return stats


def _matching(x, stats, cls, made_by: str):
    """`x` (as `_as_float`) for the element-wise statistics `stats` of type `cls` (as
    `_stats`), unless its examples do not fit their per-example shape."""
    x = _as_float(x)
    stat = getattr(_stats(stats, cls, made_by), cls._fields[0])
    if x.ndim != stat.ndim + 1 or any(
        s != 1 and s != d for s, d in zip(stat.shape, x.shape[1:], strict=True)
    ):
        raise BadValue(f"expected input of shape (N, ...) matching the fitted statistics of "
                       f"shape {shape_str(stat.shape)} (per example), got shape "
                       f"{shape_str(x.shape)}.")
    return x


def _flatten(x, features: int | None = None):
    x = _as_float(x)
    flat = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # -1 is ambiguous for N = 0
    if features is not None and flat.shape[1] != features:
        raise BadValue(f"expected examples with {features} features (as fitted), got input of "
                       f"shape {shape_str(x.shape)} ({flat.shape[1]} features per example).")
    return flat


def _eigh_cov(x, k, variance):
    """Mean, Uᵀ rows and eigenvalues (decreasing) of the biased covariance of (N, D) `x`,
    in float32 at least (LAPACK's eigh has no float16, and a variance beyond 65504 would
    be inf: the caller casts what it stores)."""
    n, d = x.shape
    _not_empty(x, (0,))
    x = at_least_float32(x)
    if k is not None and k > d:
        raise BadValue(f"k={k} exceeds the number of features D={d}.")
    mean = jnp.mean(x, axis=0)
    xc = x - mean[None]
    cov = jnp.matmul(xc.T, xc, precision=_HIGHEST) / n
    evals, evecs = jnp.linalg.eigh(cov)  # ascending
    evals = jnp.clip(evals[::-1], 0.0, None)
    comps = evecs[:, ::-1].T  # (D, D) rows = eigenvectors, decreasing eigenvalue
    idx = jnp.argmax(jnp.abs(comps), axis=1)
    signs = jnp.sign(jnp.take_along_axis(comps, idx[:, None], axis=1))
    comps = comps * jnp.where(signs == 0, 1.0, signs).astype(comps.dtype)
    if variance is not None:
        k = _k_for_variance(evals, variance)
    if k is not None:
        evals, comps = evals[:k], comps[:k]
    return mean, comps, evals


def _k_for_variance(evals, variance: float) -> int:
    try:
        lam = np.asarray(evals, dtype=np.float64)
    except jax.errors.TracerArrayConversionError:
        raise BadValue("choosing k from a variance fraction needs concrete data; call fit "
                       "outside jax.jit, or pass k instead.") from None
    total = lam.sum()
    if total <= 0:
        return 1
    ratio = np.cumsum(lam) / total
    return int(min(np.searchsorted(ratio, variance * (1 - 1e-7), side="left") + 1, lam.size))


def _k_and_variance(k, variance):
    """The number of components `k` (a positive int) or the `variance` fraction in (0, 1],
    at most one of them."""
    if k is not None and variance is not None:
        raise BadValue(f"give k or variance, not both (got k={k}, variance={variance}).")
    return (None if k is None else positive_int("k", k),
            None if variance is None else number("variance", variance, high=1.0, **POSITIVE))


# ---------------------------------------------------------------------------
# element-wise


def _preprocessor(name: str, fit, transform, inverse) -> Preprocessor:
    """The `Preprocessor` of these functions, whose errors name them
    ("preprocessing.center.fit: ...")."""
    where = f"preprocessing.{name}"
    return Preprocessor(named(f"{where}.fit")(fit), named(f"{where}.transform")(transform),
                        named(f"{where}.inverse")(inverse), name)


@checked("preprocessing.center", axis=_axes)
def center(axis=0) -> Preprocessor:
    """Mean subtraction: `z = x − μ`, `μ = mean(x, axis)`; inverse `x = z + μ`."""
    made_by = "preprocessing.center"

    def fit(x):
        return CenterStats(_reduce(_finite(_as_float(x)), axis, jnp.mean))

    def transform(stats, x):
        return _matching(x, stats, CenterStats, made_by) - stats.mean[None]

    def inverse(stats, z):
        return _matching(z, stats, CenterStats, made_by) + stats.mean[None]

    return _preprocessor("center", fit, transform, inverse)


@checked("preprocessing.standardize", eps=POSITIVE, axis=_axes)
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
        x = _finite(_as_float(x))
        dtype = x.dtype
        x = at_least_float32(x)  # (x − μ)² of float16 data overflows beyond |x − μ| = 256
        # statistics of x − x[0]: exact zeros for a constant feature, so its σ is 0 (not
        # float32 rounding noise of the mean) and it maps to 0; also less cancellation
        shift = jax.lax.stop_gradient(_reduce(x, axis, _first))
        d = x - shift[None]
        mean_d = _reduce(d, axis, jnp.mean)
        var = _reduce((d - mean_d[None]) ** 2, axis, jnp.mean)
        varies = var > eps * eps   # σ > eps (for eps < 1e-19, whose square is 0: σ > 0)
        # the inner where keeps the gradient finite at σ = 0 (√ has an infinite slope there)
        std = jnp.where(varies, jnp.sqrt(jnp.where(varies, var, 1.0)), 1.0)
        # in half precision eps may round to 0: keep the divisor positive
        std = jnp.maximum(std.astype(dtype), jnp.finfo(dtype).tiny)
        return StandardizeStats((shift + mean_d).astype(dtype), std)

    def transform(stats, x):
        x = _matching(x, stats, StandardizeStats, made_by)
        return _in_float32(lambda x, m, s: (x - m[None]) / s[None], x, stats.mean, stats.std)

    def inverse(stats, z):
        z = _matching(z, stats, StandardizeStats, made_by)
        return _in_float32(lambda z, m, s: z * s[None] + m[None], z, stats.mean, stats.std)

    return _preprocessor("standardize", fit, transform, inverse)


@checked("preprocessing.minmax", eps=POSITIVE, axis=_axes)
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
        x = _finite(_as_float(x))
        return MinMaxStats(_reduce(x, axis, jnp.min), _reduce(x, axis, jnp.max))

    def _range(lo, hi):
        return jnp.where(hi - lo > eps, hi - lo, 1.0)[None]

    def _transform(x, lo, hi):
        return 2.0 * (x - lo[None]) / _range(lo, hi) - 1.0

    def _inverse(z, lo, hi):
        return (z + 1.0) * 0.5 * _range(lo, hi) + lo[None]

    def transform(stats, x):
        x = _matching(x, stats, MinMaxStats, made_by)
        return _in_float32(_transform, x, stats.min, stats.max)

    def inverse(stats, z):
        z = _matching(z, stats, MinMaxStats, made_by)
        return _in_float32(_inverse, z, stats.min, stats.max)

    return _preprocessor("minmax", fit, transform, inverse)


# ---------------------------------------------------------------------------
# PCA and whitening


@named("preprocessing.pca")
def pca(k: int | None = None, variance: float | None = None) -> Preprocessor:
    """Principal component analysis: `z = (x − μ) Uₖ`, inverse `x̂ = z Uₖᵀ + μ`.

    `C = (x − μ)ᵀ(x − μ)/N = U Λ Uᵀ`; `Uₖ` holds the eigenvectors of the `k`
    largest eigenvalues (stored transposed as `components`, shape `(k, D)`).

    **Arguments:**
    - `k`: the number of components to keep (`1 ≤ k ≤ D`; default all `D`).
    - `variance`: instead of `k`, keep the fewest components whose eigenvalues sum
      to at least this fraction of the total variance, in (0, 1].

    `inverse` is exact when `k = D` and the best rank-k reconstruction otherwise.
    """
    k, variance = _k_and_variance(k, variance)
    made_by = "preprocessing.pca"

    def fit(x):
        x = _finite(_flatten(x))
        return PCAStats(*(a.astype(x.dtype) for a in _eigh_cov(x, k, variance)))

    def transform(stats, x):
        x = _flatten(x, _stats(stats, PCAStats, made_by).mean.shape[0])
        return _in_float32(lambda x, m, u: jnp.matmul(x - m[None], u.T, precision=_HIGHEST),
                           x, stats.mean, stats.components)

    def inverse(stats, z):
        _stats(stats, PCAStats, made_by)
        z = _as_float(z)
        if z.ndim != 2 or z.shape[1] != stats.components.shape[0]:
            raise BadValue(f"expected (N, {stats.components.shape[0]}) component scores, got "
                           f"shape {shape_str(z.shape)}.")
        return _in_float32(lambda z, m, u: jnp.matmul(z, u, precision=_HIGHEST) + m[None],
                           z, stats.mean, stats.components)

    return _preprocessor("pca", fit, transform, inverse)


def _whitening(name, k, variance, eps, zca: bool) -> Preprocessor:
    made_by = f"preprocessing.{name}"

    def fit(x):
        x = _finite(_flatten(x))
        mean, comps, evals = _eigh_cov(x, k, variance)
        scale = 1.0 / jnp.sqrt(evals + eps)           # (Λ + eps)^{-1/2}
        matrix = comps.T * scale[None]                # U (Λ + eps)^{-1/2}      (D, k)
        inverse_matrix = comps * (1.0 / scale)[:, None]  # (Λ + eps)^{1/2} Uᵀ   (k, D)
        if zca:
            matrix = jnp.matmul(matrix, comps, precision=_HIGHEST)            # U Λ^-½ Uᵀ
            inverse_matrix = jnp.matmul(comps.T, inverse_matrix, precision=_HIGHEST)
        stats = (mean, comps, evals, matrix, inverse_matrix)
        return WhiteningStats(*(a.astype(x.dtype) for a in stats))

    def transform(stats, x):
        flat = _flatten(x, _stats(stats, WhiteningStats, made_by).mean.shape[0])
        z = _in_float32(lambda x, m, w: jnp.matmul(x - m[None], w, precision=_HIGHEST),
                        flat, stats.mean, stats.matrix)
        return z.reshape(jnp.shape(x)) if zca else z

    def inverse(stats, z):
        _stats(stats, WhiteningStats, made_by)
        z = _as_float(z)
        flat = z.reshape(z.shape[0], -1)
        if flat.shape[1] != stats.inverse_matrix.shape[0]:
            raise BadValue(f"expected (N, {stats.inverse_matrix.shape[0]}) whitened data, got "
                           f"shape {shape_str(z.shape)}.")
        x = _in_float32(lambda z, m, w: jnp.matmul(z, w, precision=_HIGHEST) + m[None],
                        flat, stats.mean, stats.inverse_matrix)
        return x.reshape(z.shape) if zca else x

    return _preprocessor(name, fit, transform, inverse)


@named("preprocessing.pca_whitening")
def pca_whitening(k: int | None = None, variance: float | None = None,
                  eps: float = 1e-5) -> Preprocessor:
    """PCA whitening: `z = (x − μ) Uₖ (Λₖ + eps)^{-1/2}` (decorrelated, unit variance).

    Output `(N, k)` with covariance `Λₖ/(Λₖ + eps) ≈ I`. `eps > 0` keeps directions
    of tiny variance from being amplified into noise. Inverse:
    `x = z (Λₖ + eps)^{1/2} Uₖᵀ + μ` (exact for `k = D`). `k`/`variance` as in `pca`.
    """
    k, variance = _k_and_variance(k, variance)
    return _whitening("pca_whitening", k, variance, number("eps", eps, **POSITIVE), zca=False)


@checked("preprocessing.zca_whitening", eps=POSITIVE)
def zca_whitening(eps: float = 1e-5) -> Preprocessor:
    """ZCA whitening: `z = (x − μ) W` with the symmetric `W = U (Λ + eps)^{-1/2} Uᵀ`.

    Like PCA whitening but rotated back into input space, so whitened images
    still look like images (the whitening closest to the input, in the least-squares
    sense). Covariance of `z` ≈ I; output keeps the input's shape. Inverse:
    `x = z U (Λ + eps)^{1/2} Uᵀ + μ`.
    """
    return _whitening("zca_whitening", None, None, eps, zca=True)
