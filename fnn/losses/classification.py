"""Classification losses: binary (element-wise, on logits, probabilities or ±1 scores)
and multi-class (scores `(..., C)` against class ids or one-hot targets).

Each loss declares how `fit`, `make_train_step` and `evaluate` count its accuracy
(`fnn.metrics`): thresholds (prediction, target) for the binary losses, class ids for
the multi-class ones.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, BadValue, shape_str
from fnn.activations import log_softmax
from fnn.losses._inputs import asarray, class_ids, elementwise_args, named_loss, scores_of
from fnn.metrics import CLASS_IDS, binary, declare_accuracy

__all__ = [
    "sigmoid_binary_cross_entropy", "binary_cross_entropy", "hinge", "exponential",
    "softmax_cross_entropy", "cross_entropy", "nll", "multiclass_hinge", "PROB_EPS",
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
def sigmoid_binary_cross_entropy(logits, y):
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
    """
    z, y = elementwise_args(logits, y, "logits", "targets")
    return jnp.mean(_softplus(z) - z * y)


@declare_accuracy(binary(0.5, 0.5))  # probabilities, y in [0, 1]
@named_loss()
def binary_cross_entropy(probs, y):
    """Binary cross-entropy on probabilities: `−y log p − (1 − y) log(1 − p)`, mean.

    `p` is clipped into `[ε, 1 − ε]` with `ε = 1e-7` (`PROB_EPS`) before the
    logs, so `p = 0` or `1` gives a finite loss of at most `−log ε ≈ 16.1`;
    the gradient is 0 where the clip is active. This is Keras's
    `binary_crossentropy` (same ε = 1e-7); PyTorch's `BCELoss` instead clamps
    each log term at −100. Prefer `sigmoid_binary_cross_entropy` on logits:
    it is exact and stable.

    **Shapes:** `probs` and `y ∈ [0, 1]` the same shape; returns a scalar.
    """
    # (in float32 at least, as every loss: the clip to [PROB_EPS, 1 − PROB_EPS] does not
    # exist in half precision)
    p, y = elementwise_args(probs, y, "probabilities", "targets")
    p = jnp.clip(p, PROB_EPS, 1.0 - PROB_EPS)
    return jnp.mean(-(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p)))


@declare_accuracy(binary(0.0, 0.0))  # scores, y = ±1
@named_loss()
def hinge(scores, y):
    """Binary hinge loss (SVM): `mean(max(0, 1 − y·s))`, y ∈ {−1, +1}.

    Targets must be ±1 (not checked under jit). Keras's `hinge` silently maps
    {0, 1} labels to {−1, +1}; this one does not: convert with `2·y − 1`.
    The (sub)gradient at the kink `y·s = 1` is 0. `optax.hinge_loss` is the same
    per element. **Shapes:** `scores` and `y` the same shape; returns a scalar.
    """
    s, y = elementwise_args(scores, y, "scores", "targets")
    return jnp.mean(_relu(1.0 - y * s))


@declare_accuracy(binary(0.0, 0.0))  # scores, y = ±1
@named_loss()
def exponential(scores, y):
    """Exponential loss (AdaBoost): `mean(exp(−y·s))`, y ∈ {−1, +1}.

    Grows without bound for confidently wrong scores; in float32 it overflows
    to `inf` once `−y·s > 88` — the true value, not a numerical accident.
    **Shapes:** `scores` and `y` the same shape; returns a scalar.
    """
    s, y = elementwise_args(scores, y, "scores", "targets")
    return jnp.mean(jnp.exp(-y * s))


# ---------------------------------------------------------------------------
# multi-class classification


@declare_accuracy(CLASS_IDS)
@named_loss()
def softmax_cross_entropy(logits, labels):
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

    PyTorch's `CrossEntropyLoss()` accepts the same two label forms. Optax
    splits them into `softmax_cross_entropy` (probabilities) and
    `softmax_cross_entropy_with_integer_labels` (ids), both per example.
    Keras: `CategoricalCrossentropy(from_logits=True)` /
    `SparseCategoricalCrossentropy(from_logits=True)`.

    **Shapes:** `logits (N, C)` (or `(..., C)`: e.g. `(N, T, C)` with labels
    `(N, T)`, averaged over N and T); returns a scalar.
    """
    z = scores_of(logits, "logits")
    labels = asarray(labels, "labels")
    logp = log_softmax(z, axis=-1)
    if jnp.issubdtype(labels.dtype, jnp.floating) and labels.ndim == z.ndim:
        if labels.shape != z.shape:
            raise BadValue(
                f"one-hot/probability targets must have the logits' shape {shape_str(z.shape)}, "
                f"got targets of shape {shape_str(labels.shape)} for logits of shape "
                f"{shape_str(z.shape)}; class ids instead are integers of shape "
                f"{shape_str(z.shape[:-1])}.")
        y = labels.astype(jnp.promote_types(z.dtype, labels.dtype))
        # 0·log p is 0 even where log p = −inf (a masked logit).
        return jnp.mean(-jnp.sum(jnp.where(y == 0, 0.0, y * logp), axis=-1))
    labels = class_ids(z, labels, "logits", one_hot_ok="one-hot/probability targets")
    picked, valid = _pick(logp, labels)
    return jnp.mean(_nan_where_invalid(-picked, valid))


@declare_accuracy(CLASS_IDS)
@named_loss()
def cross_entropy(probs, onehot):
    """Categorical cross-entropy on probabilities: `−Σ_c y_c log p_c`, mean over the batch.

    `p` is clipped below at `ε = 1e-7` (`PROB_EPS`) so `p = 0` gives a finite
    loss (`−log ε ≈ 16.1` per unit of target mass); the rows of `probs` are
    NOT renormalised (Keras's `categorical_crossentropy(from_logits=False)`
    divides by the row sum first and also clips at `1 − ε`). Prefer
    `softmax_cross_entropy` on logits: it is exact and stable.

    **Shapes:** `probs` and `onehot` (one-hot or probability targets, float)
    the same shape `(N, C)`; returns a scalar. For class ids use
    `nll(jnp.log(probs), labels)`.
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
    return jnp.mean(-jnp.sum(y * jnp.log(jnp.maximum(p, PROB_EPS)), axis=-1))


@declare_accuracy(CLASS_IDS)
@named_loss()
def nll(log_probs, labels):
    """Negative log-likelihood of class ids: `mean(−log_probs[n, label_n])`.

    Use after a `log_softmax` output layer; `nll(log_softmax(z), labels)` equals
    `softmax_cross_entropy(z, labels)`. This is PyTorch's `NLLLoss()`. A class
    id outside `[0, C)` raises `ValueError` on concrete labels and gives NaN
    under `jit`.

    **Shapes:** `log_probs (N, C)` (or `(..., C)`), integer `labels (N,)`;
    returns a scalar.
    """
    lp = scores_of(log_probs, "log-probabilities")
    labels = class_ids(lp, labels, "log-probabilities", one_hot_ok=None)
    picked, valid = _pick(lp, labels)
    return jnp.mean(_nan_where_invalid(-picked, valid))


@declare_accuracy(CLASS_IDS)
@named_loss(margin=NON_NEGATIVE)
def multiclass_hinge(scores, labels, margin: float = 1.0):
    """Multi-class SVM loss (Weston–Watkins, CS231n): `Σ_{j≠y} max(0, s_j − s_y + Δ)`, mean.

    Every wrong class whose score comes within `Δ = margin` of the true
    class's score adds to the loss; the true class itself contributes nothing.
    PyTorch's `MultiMarginLoss()` is the same sum divided by C; Keras's
    `categorical_hinge` keeps only the largest wrong class (Crammer–Singer). A
    class id outside `[0, C)` raises `ValueError` on concrete labels and gives
    NaN under `jit`.

    **Arguments:** `margin >= 0` (checked when concrete; may be traced, e.g. under `vmap`).
    **Shapes:** `scores (N, C)` (or `(..., C)`), integer `labels (N,)`; returns a scalar.
    """
    s = scores_of(scores, "scores")
    labels = class_ids(s, labels, "scores", one_hot_ok=None)
    s_true, valid = _pick(s, labels)
    margins = _relu(s - s_true[..., None] + margin)
    is_true = jax.lax.broadcasted_iota(labels.dtype, s.shape, s.ndim - 1) == labels[..., None]
    per_example = jnp.sum(jnp.where(is_true, jnp.zeros_like(margins), margins), axis=-1)
    return jnp.mean(_nan_where_invalid(per_example, valid))
