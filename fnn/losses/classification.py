"""Classification losses: binary (element-wise, on logits, probabilities or ±1 scores)
and multi-class (scores `(..., C)` against class ids or one-hot targets).

Each loss declares how `fit`, `make_train_step` and `evaluate` count its accuracy
(`fnn.metrics`): thresholds (prediction, target) for the binary losses, class ids for
the multi-class ones.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, BadValue, hyper, optional, shape_str
from fnn.activations import log_softmax
from fnn.losses._inputs import asarray, class_ids, elementwise_args, named_loss, scores_of
from fnn.losses._reduce import reduced
from fnn.metrics import CATEGORICAL, CLASS_IDS, binary, declare_accuracy

__all__ = [
    "sigmoid_binary_cross_entropy", "binary_cross_entropy", "hinge", "exponential",
    "softmax_cross_entropy", "cross_entropy", "nll", "multiclass_hinge", "PROB_EPS",
    "sigmoid_focal_loss", "kl_divergence",
]

#: Probabilities are clipped into `[PROB_EPS, 1 − PROB_EPS]` by
#: `binary_cross_entropy` and below by `PROB_EPS` in `cross_entropy`
#: (Keras's `backend.epsilon()`, 1e-7).
PROB_EPS = 1e-7


def _pick(x, labels):
    """`x[..., labels]` along the last axis, and the mask of ids inside `[0, C)`."""
    num_classes = x.shape[-1]
    valid = (labels >= 0) & (labels < num_classes)
    idx = jnp.clip(labels, 0, num_classes - 1)[..., None]
    return jnp.take_along_axis(x, idx, axis=-1)[..., 0], valid


def _nan_where_invalid(per_example, valid):
    return jnp.where(valid, per_example, jnp.nan)


def _relu(x):
    """max(x, 0) with derivative 0 at 0 (the library's relu convention)."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


# ---------------------------------------------------------------------------
# binary classification


def _softplus(z):
    """log(1 + e^z) = max(z, 0) + log1p(e^{−|z|}), written so its gradient is σ(z) everywhere.

    The two branches of `where` are both finite for every z (no NaN from the
    unselected branch), and at z = 0 the derivative is 1 − ½ = ½ = σ(0)
    (plain `max` and `abs` would give the wrong value at the kink).
    """
    pos = z >= 0
    e = jnp.exp(jnp.where(pos, -z, z))          # e^{−|z|} ∈ (0, 1]
    return jnp.where(pos, z, jnp.zeros_like(z)) + jnp.log1p(e)


@declare_accuracy(binary(0.0, 0.5))  # logits, y in [0, 1]
@named_loss()
def sigmoid_binary_cross_entropy(logits, y, *, weights=None, reduction: str = "mean"):
    """Binary cross-entropy on logits, numerically stable.

    With `z` the logit and `y ∈ [0, 1]` the target (1 = positive class; soft
    labels allowed), per element:

        −y log σ(z) − (1 − y) log(1 − σ(z))  =  max(z, 0) − z·y + log(1 + e^{−|z|})

    then the mean over all elements. The right-hand form never overflows
    (`z = 1e4, y = 0` gives exactly 1e4) and its gradient is `σ(z) − y`
    (divided by the number of elements). Equals PyTorch's
    `BCEWithLogitsLoss()` and Keras's `BinaryCrossentropy(from_logits=True)`;
    `optax.sigmoid_binary_cross_entropy` is the same without the mean.

    **Shapes:** `logits` and `y` the same shape (`(N,)`, or `(N, K)` for K
    independent labels); returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    z, y = elementwise_args(logits, y, "logits", "targets")
    return reduced(_softplus(z) - z * y, weights, reduction)


@declare_accuracy(binary(0.5, 0.5))  # probabilities, y in [0, 1]
@named_loss()
def binary_cross_entropy(probs, y, *, weights=None, reduction: str = "mean"):
    """Binary cross-entropy on probabilities: `−y log p − (1 − y) log(1 − p)`, mean.

    `p` is clipped into `[ε, 1 − ε]` with `ε = 1e-7` (`PROB_EPS`) before the
    logs, so `p = 0` or `1` gives a finite loss of at most `−log ε ≈ 16.1`;
    the gradient is 0 where the clip is active. This is Keras's
    `binary_crossentropy` (same ε = 1e-7); PyTorch's `BCELoss` instead clamps
    each log term at −100. Prefer `sigmoid_binary_cross_entropy` on logits:
    it is exact and stable.

    **Shapes:** `probs` and `y ∈ [0, 1]` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    # (in float32 at least, as every loss: the clip to [PROB_EPS, 1 − PROB_EPS] does not
    # exist in half precision)
    p, y = elementwise_args(probs, y, "probabilities", "targets")
    p = jnp.clip(p, PROB_EPS, 1.0 - PROB_EPS)
    return reduced(-(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p)), weights, reduction)


@declare_accuracy(binary(0.0, 0.0))  # scores, y = ±1
@named_loss()
def hinge(scores, y, *, weights=None, reduction: str = "mean"):
    """Binary hinge loss (SVM): `mean(max(0, 1 − y·s))`, y ∈ {−1, +1}.

    Targets must be ±1 (not checked under jit). Keras's `hinge` silently maps
    {0, 1} labels to {−1, +1}; this one does not: convert with `2·y − 1`.
    The (sub)gradient at the kink `y·s = 1` is 0. `optax.hinge_loss` is the same
    per element. **Shapes:** `scores` and `y` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    s, y = elementwise_args(scores, y, "scores", "targets")
    return reduced(_relu(1.0 - y * s), weights, reduction)


@declare_accuracy(binary(0.0, 0.0))  # scores, y = ±1
@named_loss()
def exponential(scores, y, *, weights=None, reduction: str = "mean"):
    """Exponential loss (AdaBoost): `mean(exp(−y·s))`, y ∈ {−1, +1}.

    Grows without bound for confidently wrong scores; in float32 it overflows
    to `inf` once `−y·s > 88` — the true value, not a numerical accident.
    **Shapes:** `scores` and `y` the same shape; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per element.
    """
    s, y = elementwise_args(scores, y, "scores", "targets")
    return reduced(jnp.exp(-y * s), weights, reduction)


@declare_accuracy(binary(0.0, 0.5))  # logits, y in [0, 1]
@named_loss(alpha=optional(functools.partial(hyper, low=0.0, high=1.0)), gamma=NON_NEGATIVE)
def sigmoid_focal_loss(logits, y, alpha: float | None = 0.25, gamma: float = 2.0, *,
                       weights=None, reduction: str = "mean"):
    """Focal loss on logits (Lin et al. 2017, RetinaNet), torchvision's `sigmoid_focal_loss`.

    With `p = σ(z)`, `p_t = p·y + (1 − p)(1 − y)` and `α_t = α·y + (1 − α)(1 − y)`,
    per element:

        α_t · (1 − p_t)^γ · BCE(z, y)

    (`BCE` as in `sigmoid_binary_cross_entropy`), then the mean over all elements:
    torchvision's `sigmoid_focal_loss(logits, y, alpha, gamma, reduction="mean")`.
    `γ = 0, α = None` is `sigmoid_binary_cross_entropy`. `alpha=None` turns the
    class weighting off (torchvision's `alpha=-1`).

    **Arguments:** `alpha ∈ [0, 1]` or None, `gamma >= 0` (checked when concrete),
    `weights`/`reduction` as every loss (`fnn.losses`).
    **Shapes:** `logits` and `y ∈ [0, 1]` the same shape; returns a scalar.
    """
    z, y = elementwise_args(logits, y, "logits", "targets")
    p = jax.nn.sigmoid(z)
    p_t = p * y + (1.0 - p) * (1.0 - y)
    per_element = (1.0 - p_t) ** gamma * (_softplus(z) - z * y)
    if alpha is not None:
        per_element = (alpha * y + (1.0 - alpha) * (1.0 - y)) * per_element
    return reduced(per_element, weights, reduction)


# ---------------------------------------------------------------------------
# multi-class classification


@declare_accuracy(CLASS_IDS)
@named_loss(label_smoothing={"low": 0.0, "high": 1.0})
def softmax_cross_entropy(logits, labels, *, label_smoothing: float = 0.0, weights=None,
                          reduction: str = "mean"):
    """Cross-entropy of softmax(logits) against labels, via log-softmax (stable).

    Per example, with `z` the logits `(C,)`:

    - integer class ids `labels: (N,)`: `−log_softmax(z)[label]`
      (`= logsumexp(z) − z_label`);
    - one-hot or probability targets `labels: (N, C)` (float):
      `−Σ_c y_c log_softmax(z)_c`;

    then the mean over the batch. The gradient with respect to the logits is
    `(softmax(z) − onehot(label)) / N`. Huge logits (±1e4) are fine: the
    log-sum-exp shifts by the max. A class id outside `[0, C)` raises
    `ValueError` on concrete labels and gives NaN under `jit`.

    **Label smoothing** `ε` (PyTorch's `cross_entropy(label_smoothing=ε)`, the
    same numbers): the target becomes `(1 − ε)·y + ε/C`, so for class ids the
    loss per example is `(1 − ε)·(−log_softmax(z)[label]) − ε·mean_c log_softmax(z)_c`.

    PyTorch's `CrossEntropyLoss()` accepts the same two label forms. Optax
    splits them into `softmax_cross_entropy` (probabilities) and
    `softmax_cross_entropy_with_integer_labels` (ids), both per example.
    Keras: `CategoricalCrossentropy(from_logits=True)` /
    `SparseCategoricalCrossentropy(from_logits=True)`.

    **Arguments:**
    - `label_smoothing`: `ε ∈ [0, 1]` (checked when concrete; may be traced).
    - `weights`: broadcast to the labels' shape without the class axis (`(N,)`, or
      `(N, T)` for sequences: a mask of the valid steps), `reduction`: `"mean"`
      (`Σ w·l / Σ w`), `"sum"` or `"none"` (the per-label losses); see `fnn.losses`.
      PyTorch's per-class `weight=` is `weights=class_weight[labels]`.

    **Shapes:** `logits (N, C)` (or `(..., C)`: e.g. `(N, T, C)` with labels
    `(N, T)`, averaged over N and T); returns a scalar (`"none"`: `(N,)`, `(N, T)`).
    """
    z = scores_of(logits, "logits")
    labels = asarray(labels, "labels")
    logp = log_softmax(z, axis=-1)
    eps = label_smoothing
    smoothing = isinstance(eps, jax.core.Tracer) or eps != 0.0
    if jnp.issubdtype(labels.dtype, jnp.floating) and labels.ndim == z.ndim:
        if labels.shape != z.shape:
            raise BadValue(
                f"one-hot/probability targets must have the logits' shape {shape_str(z.shape)}, "
                f"got targets of shape {shape_str(labels.shape)} for logits of shape "
                f"{shape_str(z.shape)}; class ids instead are integers of shape "
                f"{shape_str(z.shape[:-1])}.")
        y = labels.astype(jnp.promote_types(z.dtype, labels.dtype))
        if smoothing:
            y = (1.0 - eps) * y + eps / z.shape[-1]
        # 0·log p is 0 even where log p = −inf (a masked logit).
        per_label = -jnp.sum(jnp.where(y == 0, 0.0, y * logp), axis=-1)
        return reduced(per_label, weights, reduction)
    labels = class_ids(z, labels, "logits", one_hot_ok="one-hot/probability targets")
    picked, valid = _pick(logp, labels)
    per_label = -picked
    if smoothing:
        per_label = (1.0 - eps) * per_label - eps * jnp.mean(logp, axis=-1)
    return reduced(_nan_where_invalid(per_label, valid), weights, reduction)


@declare_accuracy(CLASS_IDS)
@named_loss()
def cross_entropy(probs, onehot, *, weights=None, reduction: str = "mean"):
    """Categorical cross-entropy on probabilities: `−Σ_c y_c log p_c`, mean over the batch.

    `p` is clipped below at `ε = 1e-7` (`PROB_EPS`) so `p = 0` gives a finite
    loss (`−log ε ≈ 16.1` per unit of target mass); the rows of `probs` are
    NOT renormalised (Keras's `categorical_crossentropy(from_logits=False)`
    divides by the row sum first and also clips at `1 − ε`). Prefer
    `softmax_cross_entropy` on logits: it is exact and stable.

    **Shapes:** `probs` and `onehot` (one-hot or probability targets, float)
    the same shape `(N, C)`; returns a scalar. For class ids use
    `nll(jnp.log(probs), labels)`.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per label.
    """
    p = scores_of(probs, "probabilities")
    y = asarray(onehot, "targets")
    if y.shape == p.shape[:-1] and jnp.issubdtype(y.dtype, jnp.integer):
        raise BadValue(
            f"targets must be one-hot/probabilities of the same shape as the probabilities, "
            f"got probabilities {shape_str(p.shape)} and integer targets {shape_str(y.shape)}. "
            "For class ids use nll(jnp.log(probs), labels) or jax.nn.one_hot(labels, C).")
    # in float32 at least: PROB_EPS is 0 or subnormal in half precision
    p, y = elementwise_args(probs, onehot, "probabilities", "targets")
    return reduced(-jnp.sum(y * jnp.log(jnp.maximum(p, PROB_EPS)), axis=-1), weights,
                   reduction)


@declare_accuracy(CLASS_IDS)
@named_loss()
def nll(log_probs, labels, *, weights=None, reduction: str = "mean"):
    """Negative log-likelihood of class ids: `mean(−log_probs[n, label_n])`.

    Use after a `log_softmax` output layer; `nll(log_softmax(z), labels)` equals
    `softmax_cross_entropy(z, labels)`. This is PyTorch's `NLLLoss()`. A class
    id outside `[0, C)` raises `ValueError` on concrete labels and gives NaN
    under `jit`.

    **Shapes:** `log_probs (N, C)` (or `(..., C)`), integer `labels (N,)`;
    returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per label.
    """
    lp = scores_of(log_probs, "log-probabilities")
    labels = class_ids(lp, labels, "log-probabilities", one_hot_ok=None)
    picked, valid = _pick(lp, labels)
    return reduced(_nan_where_invalid(-picked, valid), weights, reduction)


@declare_accuracy(CLASS_IDS)
@named_loss(margin=NON_NEGATIVE)
def multiclass_hinge(scores, labels, margin: float = 1.0, *, weights=None, reduction: str = "mean"):
    """Multi-class SVM loss (Weston–Watkins, CS231n): `Σ_{j≠y} max(0, s_j − s_y + Δ)`, mean.

    Every wrong class whose score comes within `Δ = margin` of the true
    class's score adds to the loss; the true class itself contributes nothing.
    PyTorch's `MultiMarginLoss()` is the same sum divided by C; Keras's
    `categorical_hinge` keeps only the largest wrong class (Crammer–Singer). A
    class id outside `[0, C)` raises `ValueError` on concrete labels and gives
    NaN under `jit`.

    **Arguments:** `margin >= 0` (checked when concrete; may be traced, e.g. under `vmap`).
    **Shapes:** `scores (N, C)` (or `(..., C)`), integer `labels (N,)`; returns a scalar.

    `weights`, `reduction`: as every loss (`fnn.losses`); the unreduced loss is per label.
    """
    s = scores_of(scores, "scores")
    labels = class_ids(s, labels, "scores", one_hot_ok=None)
    s_true, valid = _pick(s, labels)
    margins = _relu(s - s_true[..., None] + margin)
    is_true = jax.lax.broadcasted_iota(labels.dtype, s.shape, s.ndim - 1) == labels[..., None]
    per_example = jnp.sum(jnp.where(is_true, jnp.zeros_like(margins), margins), axis=-1)
    return reduced(_nan_where_invalid(per_example, valid), weights, reduction)


@declare_accuracy(CATEGORICAL)
@named_loss()
def kl_divergence(log_probs, target_probs, *, weights=None, reduction: str = "mean"):
    """Kullback–Leibler divergence `KL(target ‖ pred)`, the prediction given as log-probabilities.

    Per example, with `q` the target probabilities `(C,)` and `log p` the
    predicted log-probabilities:

        Σ_c q_c (log q_c − log p_c)        (a term with q_c = 0 is 0)

    then the mean over the batch: PyTorch's `kl_div(log_probs, target_probs,
    reduction="batchmean")` for `(N, C)` inputs. For `(N, T, C)` the mean runs over
    N and T (PyTorch's `"batchmean"` divides by N alone). `reduction="sum"` is
    PyTorch's `"sum"`; `"none"` gives the per-example divergences `(N,)` (PyTorch's
    `"none"` is per element). The targets are not checked to sum to 1.

    **Arguments:** `weights`/`reduction` as every loss (`fnn.losses`), per example.
    **Shapes:** `log_probs` and `target_probs` the same shape `(N, C)` (or `(..., C)`);
    returns a scalar.
    """
    lp = scores_of(log_probs, "log-probabilities")
    lp, q = elementwise_args(lp, target_probs, "log-probabilities", "target probabilities")
    safe_q = jnp.where(q > 0, q, jnp.ones_like(q))      # log 1 = 0: no NaN from log 0
    terms = jnp.where(q > 0, q * (jnp.log(safe_q) - lp), jnp.zeros_like(q))
    return reduced(jnp.sum(terms, axis=-1), weights, reduction)
