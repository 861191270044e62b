"""PCA and whitening: `pca`, `pca_whitening` and `zca_whitening` and their statistics.

See `fnn.preprocessing` for the conventions."""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import POSITIVE, BadValue, checked, named, number, positive_int, shape_str
from fnn._util import at_least_float32
from fnn.preprocessing._common import (
    HIGHEST,
    Preprocessor,
    as_float,
    check_stats,
    finite,
    flatten,
    in_float32,
    make_preprocessor,
    not_empty,
)

__all__ = ["pca", "pca_whitening", "zca_whitening", "PCAStats", "WhiteningStats"]


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
# helpers


def _eigh_cov(x, k, variance):
    """Mean, Uᵀ rows and eigenvalues (decreasing) of the biased covariance of (N, D) `x`,
    in float32 at least (LAPACK's eigh has no float16, and a variance beyond 65504 would
    be inf: the caller casts what it stores)."""
    n, d = x.shape
    not_empty(x, (0,))
    x = at_least_float32(x)
    if k is not None and k > d:
        raise BadValue(f"k={k} exceeds the number of features D={d}.")
    mean = jnp.mean(x, axis=0)
    xc = x - mean[None]
    cov = jnp.matmul(xc.T, xc, precision=HIGHEST) / n
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
        x = finite(flatten(x))
        return PCAStats(*(a.astype(x.dtype) for a in _eigh_cov(x, k, variance)))

    def transform(stats, x):
        x = flatten(x, check_stats(stats, PCAStats, made_by).mean.shape[0])
        return in_float32(lambda x, m, u: jnp.matmul(x - m[None], u.T, precision=HIGHEST),
                           x, stats.mean, stats.components)

    def inverse(stats, z):
        check_stats(stats, PCAStats, made_by)
        z = as_float(z)
        if z.ndim != 2 or z.shape[1] != stats.components.shape[0]:
            raise BadValue(f"expected (N, {stats.components.shape[0]}) component scores, got "
                           f"shape {shape_str(z.shape)}.")
        return in_float32(lambda z, m, u: jnp.matmul(z, u, precision=HIGHEST) + m[None],
                           z, stats.mean, stats.components)

    return make_preprocessor("pca", fit, transform, inverse)


def _whitening(name, k, variance, eps, zca: bool) -> Preprocessor:
    made_by = f"preprocessing.{name}"

    def fit(x):
        x = finite(flatten(x))
        mean, comps, evals = _eigh_cov(x, k, variance)
        scale = 1.0 / jnp.sqrt(evals + eps)           # (Λ + eps)^{-1/2}
        matrix = comps.T * scale[None]                # U (Λ + eps)^{-1/2}      (D, k)
        inverse_matrix = comps * (1.0 / scale)[:, None]  # (Λ + eps)^{1/2} Uᵀ   (k, D)
        if zca:
            matrix = jnp.matmul(matrix, comps, precision=HIGHEST)            # U Λ^-½ Uᵀ
            inverse_matrix = jnp.matmul(comps.T, inverse_matrix, precision=HIGHEST)
        stats = (mean, comps, evals, matrix, inverse_matrix)
        return WhiteningStats(*(a.astype(x.dtype) for a in stats))

    def transform(stats, x):
        flat = flatten(x, check_stats(stats, WhiteningStats, made_by).mean.shape[0])
        z = in_float32(lambda x, m, w: jnp.matmul(x - m[None], w, precision=HIGHEST),
                        flat, stats.mean, stats.matrix)
        return z.reshape(jnp.shape(x)) if zca else z

    def inverse(stats, z):
        check_stats(stats, WhiteningStats, made_by)
        z = as_float(z)
        flat = z.reshape(z.shape[0], -1)
        if flat.shape[1] != stats.inverse_matrix.shape[0]:
            raise BadValue(f"expected (N, {stats.inverse_matrix.shape[0]}) whitened data, got "
                           f"shape {shape_str(z.shape)}.")
        x = in_float32(lambda z, m, w: jnp.matmul(z, w, precision=HIGHEST) + m[None],
                        flat, stats.mean, stats.inverse_matrix)
        return x.reshape(z.shape) if zca else x

    return make_preprocessor(name, fit, transform, inverse)


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
