"""Classification metrics on whole arrays: top-k accuracy, the confusion matrix, and
precision, recall and F1 from it, each = scikit-learn's function of the same name.

    top_k_accuracy(scores, labels, k)                   # sklearn top_k_accuracy_score
    confusion_matrix(predicted_ids, labels, num_classes) # rows: true, columns: predicted
    precision_recall_f1(confusion, average="macro")     # {"precision", "recall", "f1"}

All are pure jnp functions (shapes and `k`, `num_classes`, `average` static), so
they run under `jit` and `vmap`; the streaming versions that accumulate over
batches are in `fnn.metrics.streaming`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import concrete_range
from fnn._checks import BadType, BadValue, named, positive_int, shape_str

__all__ = ["AVERAGES", "class_labels", "top_k_hits", "top_k_accuracy", "confusion_matrix",
           "precision_recall_f1"]

AVERAGES = ("macro", "micro")


def _scores(scores):
    scores = jnp.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] < 2 or not jnp.issubdtype(scores.dtype, jnp.number):
        raise BadValue(f"expected scores of shape (N, C) with C >= 2 classes, got "
                       f"{shape_str(scores.shape)} {scores.dtype}.")
    return scores


def class_labels(scores, labels):
    """Int class ids `(N,)` for `scores (N, C)`: int `labels (N,)` as they are, one-hot or
    probability `labels (N, C)` by their argmax (`BadValue`/`BadType` otherwise)."""
    labels = jnp.asarray(labels)
    if labels.shape == scores.shape and jnp.issubdtype(labels.dtype, jnp.floating):
        return jnp.argmax(labels, axis=-1)
    if labels.shape != scores.shape[:1]:
        raise BadValue(f"expected labels of shape {shape_str(scores.shape[:1])} (class ids) or "
                       f"{shape_str(scores.shape)} (one-hot), got {shape_str(labels.shape)} "
                       f"for scores {shape_str(scores.shape)}.")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise BadType(f"class-id labels must have an integer dtype, got {labels.dtype}; cast "
                      "them with labels.astype(jnp.int32).")
    bounds = concrete_range(labels)        # under jit an id outside [0, C) is never a hit
    if bounds is not None and (bounds[0] < 0 or bounds[1] >= scores.shape[1]):
        raise BadValue(f"class ids must be in [0, {scores.shape[1] - 1}] (scores have "
                       f"{scores.shape[1]} classes), got ids from {bounds[0]} to {bounds[1]}.")
    return labels


def _k_in_range(k, num_classes: int) -> int:
    k = positive_int("k", k)
    if k > num_classes:
        raise BadValue(f"k must be in [1, {num_classes}] (the number of classes), got {k}.")
    return k


def top_k_hits(scores, labels, k: int):
    """Per example, whether the label is among the `k` highest scores: bool `(N,)`.

    Ties rank as scikit-learn ranks them (a stable sort, reversed): among equal
    scores the higher class index comes first. So the label's rank is
    `#{j: s_j > s_y} + #{j > y: s_j = s_y}`, and it is a hit when that is `< k`.
    """
    scores = _scores(scores)
    labels = class_labels(scores, labels)
    k = _k_in_range(k, scores.shape[1])
    valid = (labels >= 0) & (labels < scores.shape[1])
    s_true = jnp.take_along_axis(scores, jnp.clip(labels, 0, scores.shape[1] - 1)[:, None],
                                 axis=1)
    after = jax.lax.broadcasted_iota(labels.dtype, scores.shape, 1) > labels[:, None]
    ahead = (scores > s_true) | ((scores == s_true) & after)
    return valid & (jnp.sum(ahead, axis=1) < k)


@named("fnn.metrics.top_k_accuracy")
def top_k_accuracy(scores, labels, k: int):
    """The fraction of examples whose label is among their `k` highest scores: float32 scalar.

    Equals scikit-learn's `top_k_accuracy_score(labels, scores, k=k)` (also with
    tied scores: the higher class index ranks first, see `top_k_hits`), so `k = 1`
    is `accuracy` unless there are ties.

    **Arguments:**
    - `scores`: `(N, C)` with `C >= 2`.
    - `labels`: int class ids `(N,)` or one-hot/probabilities `(N, C)` (argmax).
    - `k`: an int in `[1, C]` (`k = C` gives 1).
    """
    return jnp.mean(top_k_hits(scores, labels, k).astype(jnp.float32))


@named("fnn.metrics.confusion_matrix")
def confusion_matrix(predicted_ids, labels, num_classes: int, *, weights=None):
    """Counts of (true class, predicted class): `m[i, j]` = examples of class `i` predicted `j`.

    Equals scikit-learn's `confusion_matrix(labels, predicted_ids,
    labels=range(num_classes), sample_weight=weights)` (note the order of the
    arguments: predictions first here, as in the name; rows are the true class).

    **Arguments:**
    - `predicted_ids`, `labels`: int class ids of one shape (`(N,)`, or any
      shape, e.g. `(N, T)`: every entry counts). Get ids from scores with
      `jnp.argmax(scores, axis=-1)`.
    - `num_classes`: a positive int `C`; concrete ids must lie in `[0, C)`
      (`ValueError` otherwise); under `jit` an id outside is not counted.
    - `weights`: None (counts, int32) or an array of the ids' shape (each example
      counts its weight; bool/int weights give int32, float weights float32).

    **Returns:** `(C, C)`.
    """
    num_classes = positive_int("num_classes", num_classes)
    pred, labels = jnp.asarray(predicted_ids), jnp.asarray(labels)
    for what, ids in (("predicted_ids", pred), ("labels", labels)):
        if not jnp.issubdtype(ids.dtype, jnp.integer):
            raise BadType(f"{what} must be integer class ids, got dtype {ids.dtype}; for "
                          "scores use jnp.argmax(scores, axis=-1).")
        bounds = concrete_range(ids)
        if bounds is not None and (bounds[0] < 0 or bounds[1] >= num_classes):
            raise BadValue(f"{what} hold ids from {bounds[0]} to {bounds[1]}, outside [0, "
                           f"{num_classes - 1}] for num_classes={num_classes}; pass a larger "
                           "num_classes.")
    if pred.shape != labels.shape:
        raise BadValue(f"predicted_ids and labels must have one shape, got "
                       f"{shape_str(pred.shape)} and {shape_str(labels.shape)}.")
    dtype = jnp.int32
    rows = jax.nn.one_hot(labels.reshape(-1), num_classes, dtype=jnp.int32)
    if weights is not None:
        w = jnp.asarray(weights)
        if w.shape != labels.shape:
            raise BadValue(f"weights must have the labels' shape {shape_str(labels.shape)}, "
                           f"got {shape_str(w.shape)}.")
        dtype = jnp.float32 if jnp.issubdtype(w.dtype, jnp.inexact) else jnp.int32
        rows = rows.astype(dtype) * w.reshape(-1, 1).astype(dtype)
    cols = jax.nn.one_hot(pred.reshape(-1), num_classes, dtype=dtype)
    return jnp.matmul(rows.T, cols, precision=jax.lax.Precision.HIGHEST)


def _ratio(num, den):
    """`num / den`, 0 where `den` is 0 (scikit-learn's `zero_division=0`, its default's value)."""
    safe = jnp.where(den > 0, den, jnp.ones_like(den))
    return jnp.where(den > 0, num / safe, jnp.zeros_like(num))


@named("fnn.metrics.precision_recall_f1")
def precision_recall_f1(confusion, average: str = "macro") -> dict:
    """Precision, recall and F1 from a confusion matrix (rows true, columns predicted).

    With `tp_c` the diagonal, `pred_c` the column sums and `true_c` the row sums:
    `precision_c = tp_c / pred_c`, `recall_c = tp_c / true_c`,
    `f1_c = 2 tp_c / (pred_c + true_c)`, and a ratio whose denominator is 0 is 0
    (scikit-learn's default `zero_division="warn"` gives 0 too, with a warning).

    - `"macro"`: the unweighted mean of the per-class values over the classes
      that occur in the labels or the predictions (scikit-learn's default
      `labels`, so a class never predicted counts with precision 0, and a class
      neither present nor predicted is left out);
    - `"micro"`: the ratios of the sums (for single-label data all three equal
      the accuracy).

    Each value equals scikit-learn's `precision_score` / `recall_score` /
    `f1_score(labels, predictions, average=average)` on the data the matrix counts.

    **Arguments:** `confusion`: `(C, C)` counts (ints or float weights);
    `average`: `"macro"` or `"micro"`. **Returns:** `{"precision", "recall", "f1"}`,
    float32 scalars.
    """
    if average not in AVERAGES:
        raise BadValue(f"unknown average {average!r}; expected one of {list(AVERAGES)}.")
    m = jnp.asarray(confusion)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or not jnp.issubdtype(m.dtype, jnp.number):
        raise BadValue(f"expected a square confusion matrix (C, C), got "
                       f"{shape_str(m.shape)} {m.dtype}.")
    m = m.astype(jnp.float32)
    tp, pred, true = jnp.diagonal(m), jnp.sum(m, axis=0), jnp.sum(m, axis=1)
    if average == "micro":
        tp, pred, true = jnp.sum(tp), jnp.sum(pred), jnp.sum(true)
        return {"precision": _ratio(tp, pred), "recall": _ratio(tp, true),
                "f1": _ratio(2.0 * tp, pred + true)}
    present = (pred + true) > 0
    count = jnp.sum(present.astype(jnp.float32))

    def mean(v):
        return _ratio(jnp.sum(jnp.where(present, v, 0.0)), count)

    return {"precision": mean(_ratio(tp, pred)), "recall": mean(_ratio(tp, true)),
            "f1": mean(_ratio(2.0 * tp, pred + true))}
