"""Accuracy, and how each loss declares the accuracy that fits it (`fnn.metrics`).

    fnn.metrics.accuracy(scores, labels)    # mean of argmax(scores) == label

`fit`, `make_train_step` and `evaluate` report an `"accuracy"` metric whose rule
follows the loss. A loss declares its rule with an attribute, `loss.accuracy`:

- an `AccuracyRule`: `correct(pred, y)` gives the per-example correctness,
  float32 `(N,)` with values in [0, 1], or None when the rule does not apply to
  these shapes; `class_ids=True` says that int labels `(N,)` are class ids in
  `[0, C)` (`fit` and `evaluate` check their range against the model's outputs
  before running, since inside a jitted step an id out of range gives NaN);
- `None`: no accuracy for this loss (regression losses).

A loss without the attribute gets `CATEGORICAL`, the rule for class scores.
`functools.partial(loss, ...)` keeps the declaration of `loss`. A user's own
loss declares its rule the same way:

    @fnn.metrics.declare_accuracy(fnn.metrics.binary(0.0, 0.5))
    def my_logistic_loss(logits, y): ...

**The rules.**
- `CATEGORICAL` / `CLASS_IDS`: scores `(N, C)` with `C >= 2` against int class
  ids `(N,)` (`argmax(scores) == id`) or against one-hot/probability targets
  `(N, C)` (argmax against argmax, as Keras's `"accuracy"`).
- `binary(t_pred, t_target)`: a prediction counts as the positive class when it
  is `> t_pred`, a target when it is `> t_target`; correctness is per label,
  averaged over the labels of a multi-label example (Keras's `binary_accuracy`);
  predictions and targets of the same shape `(N, ...)`.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp

from fnn._checks import BadValue, named, shape_str

__all__ = ["AccuracyRule", "CATEGORICAL", "CLASS_IDS", "binary", "categorical_correct",
           "accuracy_rule", "declare_accuracy", "accuracy"]


class AccuracyRule(NamedTuple):
    """How to count a correct prediction for a loss (see `help(fnn.metrics)`)."""

    correct: Callable      # correct(pred, y) -> float32 (N,) in [0, 1], or None
    class_ids: bool = False  # int labels (N,) are class ids in [0, C): checked up front


def categorical_correct(scores, labels):
    """`argmax(scores) == label` per example as float32 `(N,)`; labels are int ids `(N,)`
    or one-hot/probabilities `(N, C)`. None unless scores are `(N, C)` with `C >= 2`."""
    if scores.ndim != 2 or scores.shape[1] < 2:
        return None
    guess = jnp.argmax(scores, axis=-1)
    if labels.ndim == 1 and jnp.issubdtype(labels.dtype, jnp.integer):
        return (guess == labels).astype(jnp.float32)
    if labels.shape == scores.shape:
        return (guess == jnp.argmax(labels, axis=-1)).astype(jnp.float32)
    return None


def binary(t_pred: float, t_target: float) -> AccuracyRule:
    """The rule of a binary loss: `(pred > t_pred) == (y > t_target)` per label, averaged
    over an example's labels: `(N, ...)` -> float32 `(N,)`."""
    def correct(pred, y):
        if pred.ndim == 0 or pred.shape != y.shape:
            return None
        hit = ((pred > t_pred) == (y > t_target)).astype(jnp.float32)
        return jnp.mean(hit.reshape(hit.shape[0], -1), axis=1)

    return AccuracyRule(correct)


CATEGORICAL = AccuracyRule(categorical_correct)
CLASS_IDS = AccuracyRule(categorical_correct, class_ids=True)


def accuracy_rule(loss: Callable) -> AccuracyRule | None:
    """The rule `loss` declares (looking through `functools.partial`); `CATEGORICAL` for a
    loss that declares none."""
    return getattr(getattr(loss, "func", loss), "accuracy", CATEGORICAL)


def declare_accuracy(rule: AccuracyRule | None) -> Callable[[Callable], Callable]:
    """Decorator: `loss.accuracy = rule` (`None`: the loss has no accuracy)."""
    def declare(loss: Callable) -> Callable:
        loss.accuracy = rule
        return loss
    return declare


@named("accuracy")
def accuracy(scores, labels):
    """The fraction of examples whose highest score is their label: float32 scalar.

    `scores: (N, C)`; `labels`: int class ids `(N,)` or one-hot/probabilities `(N, C)`
    (argmax against argmax). Equals scikit-learn's `accuracy_score(labels,
    scores.argmax(1))`.
    """
    scores, labels = jnp.asarray(scores), jnp.asarray(labels)
    same_n = scores.ndim >= 1 and labels.ndim >= 1 and scores.shape[0] == labels.shape[0]
    correct = categorical_correct(scores, labels) if same_n else None
    if correct is None:
        raise BadValue(f"expected scores (N, C) with C >= 2 and int labels (N,) or one-hot "
                       f"labels (N, C), got scores {shape_str(scores.shape)} and labels "
                       f"{shape_str(labels.shape)} {labels.dtype}.")
    return jnp.mean(correct)
