"""Loss functions: `loss(predictions, targets) -> scalar`, the mean over the batch.

By default every loss returns ONE number, the mean over the batch (what you
differentiate); `weights=` and `reduction=` (below) weight it, sum it, or return the
unreduced values. Two families:

- **Element-wise losses** (`mse`, `mae`, `msle`, `mape`, `huber`, `smooth_l1`,
  `sigmoid_binary_cross_entropy`, `binary_cross_entropy`, `hinge`,
  `exponential`): predictions and targets have the same shape `(N, ...)`; the
  loss is computed per element and averaged over ALL elements (as PyTorch's
  `reduction="mean"`). Targets may be integer/bool arrays; they are cast to
  the predictions' float dtype.
- **Class losses** (`softmax_cross_entropy`, `cross_entropy`, `nll`,
  `multiclass_hinge`): scores `(N, C)` (more generally `(..., C)`, e.g.
  `(N, T, C)` for sequences); the loss is summed over the class axis, then
  averaged over the remaining axes. Class-id labels have the scores' shape
  without the class axis, `(N,)`, and an integer dtype.

| function | per example / element, then mean | targets |
|---|---|---|
| `mse` | `(p − y)²` | real |
| `mae` | `|p − y|` | real |
| `msle` | `(log(1 + max(p, 1e-5)) − log(1 + max(y, 1e-5)))²` | real ≥ 0 |
| `mape` | `100 · |p − y| / max(|y|, 1e-5)` | real |
| `huber(delta=1)` | `½d²` if `|d| < δ` else `δ(|d| − ½δ)` | real |
| `smooth_l1(beta=1)` | `½d²/β` if `|d| < β` else `|d| − ½β` | real |
| `sigmoid_binary_cross_entropy` | `max(z, 0) − z·y + log(1 + e^{−|z|})` | y ∈ [0, 1] |
| `binary_cross_entropy` | `−y log p − (1 − y) log(1 − p)`, p clipped | y ∈ [0, 1] |
| `softmax_cross_entropy` | `−Σ_c y_c log_softmax(z)_c` | ids `(N,)` or probs `(N, C)` |
| `cross_entropy` | `−Σ_c y_c log max(p_c, 1e-7)` | probs `(N, C)` |
| `nll` | `−log_probs[label]` | ids `(N,)` |
| `hinge` | `max(0, 1 − y·s)` | y ∈ {−1, +1} |
| `multiclass_hinge(margin=1)` | `Σ_{j≠y} max(0, s_j − s_y + margin)` | ids `(N,)` |
| `exponential` | `exp(−y·s)` | y ∈ {−1, +1} |
| `sigmoid_focal_loss(alpha, gamma)` | `α_t (1 − p_t)^γ · BCE(z, y)` (torchvision) | y ∈ [0, 1] |
| `kl_divergence` | `Σ_c q_c (log q_c − log p_c)`, on `log p` | probs `(N, C)` |
| `triplet_margin(margin=1)` | `max(‖a − p‖ − ‖a − n‖ + margin, 0)` | `(N, D)` ×3 |

**Weights and reduction** (every loss, keyword-only): `weights=None` and
`reduction="mean"`. The *unreduced* loss `l` is per element for the element-wise
losses (the predictions' shape) and per label for the class losses (the labels'
shape without the class axis: `(N,)`, or `(N, T)` for sequences; per example for
`kl_divergence` and `triplet_margin`). `weights` broadcast to that shape by
NumPy's rules, trailing axes aligned (per-example weights of an `(N, K)` loss are
`w[:, None]`; anything that does not broadcast is a `ValueError`). Then
`reduction="none"` returns `w·l`, `"sum"` returns `Σ w·l` and `"mean"` returns
`Σ w·l / Σ w` (the plain mean without weights). A weight of 0 drops its value
altogether, even a NaN one (a padding step), as PyTorch's `ignore_index`; all
weights 0 make the mean NaN (0/0), as PyTorch does. A mask from sequence lengths:

    mask = jnp.arange(T)[None, :] < lengths[:, None]                 # (N, T)
    loss = softmax_cross_entropy(logits, labels, weights=mask)       # logits (N, T, C)

**Checks.** Shapes and dtypes are checked when the function is traced (so the
same errors appear eagerly and under `jax.jit`/`vmap`): predictions and targets
must have exactly the same shape — `(N, 1)` against `(N,)` raises `ValueError`
instead of silently broadcasting to `(N, N)`; class ids must be integers;
an empty batch raises `ValueError`. Class ids outside `[0, C)` raise
`ValueError` when the labels are concrete (outside `jit`/`vmap`); under `jit`
their values cannot be checked, and such an id makes the loss NaN rather than
a silently wrong number. Integer ids that JAX's int32 cannot hold (NumPy int64
ids ≥ 2**31 without `jax_enable_x64`) raise `ValueError` instead of wrapping
around. Other target values (y ∈ {0, 1}) are never checked.

**Half precision.** float16/bfloat16 inputs are computed in float32 and the
loss is float32 (the usual mixed-precision practice: float16 overflows at
65504, so a squared error of 300 or `exp(12)` would otherwise be `inf` even when
the mean is small); the gradient with respect to half-precision predictions
comes back in their dtype.

**Other libraries.** PyTorch's `nn.*Loss` with the default `reduction="mean"`
give the same numbers (`MSELoss`, `L1Loss`, `HuberLoss`, `SmoothL1Loss`,
`BCEWithLogitsLoss`, `CrossEntropyLoss`, `NLLLoss`). Optax's losses return
per-example (or per-element) arrays with no reduction: `jnp.mean(optax.x(...))`
matches ours. Keras averages over the last axis and then over the batch, the
same as our element-wise mean when every example has the same size.
"""
from fnn.losses.classification import PROB_EPS as PROB_EPS
from fnn.losses.classification import (
    binary_cross_entropy,
    cross_entropy,
    exponential,
    hinge,
    kl_divergence,
    multiclass_hinge,
    nll,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    softmax_cross_entropy,
)
from fnn.losses.metric_learning import triplet_margin
from fnn.losses.regression import huber, mae, mape, mse, msle, smooth_l1

__all__ = [  # PROB_EPS is public too, but (as in fnn 0.1) left out of `import *`
    "mse", "mae", "msle", "mape", "huber", "smooth_l1",
    "sigmoid_binary_cross_entropy", "binary_cross_entropy",
    "softmax_cross_entropy", "cross_entropy", "nll",
    "hinge", "multiclass_hinge", "exponential",
    "kl_divergence", "sigmoid_focal_loss", "triplet_margin",
]
