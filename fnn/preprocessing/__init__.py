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
from fnn.preprocessing._common import Preprocessor
from fnn.preprocessing.decomposition import (
    PCAStats,
    WhiteningStats,
    pca,
    pca_whitening,
    zca_whitening,
)
from fnn.preprocessing.scaling import (
    CenterStats,
    MinMaxStats,
    StandardizeStats,
    center,
    minmax,
    standardize,
)

__all__ = [
    "Preprocessor", "center", "standardize", "minmax", "pca", "pca_whitening", "zca_whitening",
    "CenterStats", "StandardizeStats", "MinMaxStats", "PCAStats", "WhiteningStats",
]
