"""Streaming metrics: accumulate over batches, give the numbers of one call on all the data.

A `Metric` is three pure functions over a small pytree state (optax's
`init`/`update` shape, plus `result`), so `update` runs inside a jitted
evaluation step and the state can be checkpointed:

    m = fnn.metrics.streaming.top_k_accuracy(5)
    state = m.init()
    for scores, labels in batches:                 # scores (B, C), labels (B,) ids
        state = m.update(state, scores, labels)    # jit-able; mask=(B,) bool for padding
    m.result(state)                                # = top_k_accuracy(all scores, all labels, 5)

| constructor | state | result |
|---|---|---|
| `accuracy()` | `Counts(hits, total)`, int32 scalars | float32 scalar, `fnn.metrics.accuracy` |
| `top_k_accuracy(k)` | `Counts` | `fnn.metrics.top_k_accuracy` |
| `confusion_matrix(num_classes)` | `(C, C)` int32 | the matrix (from the argmax of the scores) |
| `precision_recall_f1(num_classes, average)` | `(C, C)` int32 | a dict, as the function |

The constructors are memoised: the same arguments give the same `Metric` (so a
program that `evaluate` compiled for it is reused, not traced again per call).

`update(state, scores, labels, mask=None)` takes the model's scores `(B, C)` and
int class ids `(B,)` or one-hot labels `(B, C)`; `mask` (bool `(B,)`) leaves the
padded examples of a fixed-shape batch out. The counts are int32, so they are
exact up to 2**31 examples.

`fit(..., metrics=[...])` and `fnn.train.evaluate(..., metrics=[...])` take these
objects (or a name: `"top5_accuracy"`, see `from_name`) and record `metric.name`;
a result that is a dict is recorded per key as `f"{name}_{key}"` (e.g.
`"macro_f1"`).
"""
from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from fnn._checks import BadType, BadValue, named, positive_int
from fnn.metrics import classification as cls

__all__ = ["Metric", "Counts", "accuracy", "top_k_accuracy", "confusion_matrix",
           "precision_recall_f1", "is_metric_name", "from_name", "flat_result"]


class Metric(NamedTuple):
    """A streaming metric: `init() -> state`, `update(state, scores, labels, mask=None) -> state`
    (pure, jit-able), `result(state) -> value`, recorded under `name`."""

    name: str
    init: Callable[[], Any]
    update: Callable[..., Any]
    result: Callable[[Any], Any]


class Counts(NamedTuple):
    """The state of the accuracies."""

    hits: Any    # int32 (): examples counted correct so far
    total: Any   # int32 (): examples seen so far


def _mask(mask, n: int):
    if mask is None:
        return jnp.ones((n,), jnp.int32)
    mask = jnp.asarray(mask)
    if mask.shape != (n,):
        raise BadValue(f"mask must have shape ({n},) (one flag per example), got {mask.shape}.")
    return mask.astype(jnp.int32)


def _counting(name: str, hits: Callable) -> Metric:
    """A `Metric` that counts `hits(scores, labels) -> bool (B,)` over the examples."""
    def init():
        return Counts(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.int32))

    @named(f"fnn.metrics.streaming.{name}.update")
    def update(state, scores, labels, mask=None):
        h = hits(scores, labels).astype(jnp.int32)
        w = _mask(mask, h.shape[0])
        return Counts(state.hits + jnp.sum(h * w), state.total + jnp.sum(w))

    def result(state):
        return (state.hits / jnp.maximum(state.total, 1)).astype(jnp.float32)

    return Metric(name, init, update, result)


@functools.cache
def accuracy() -> Metric:
    """Streaming `fnn.metrics.accuracy` (argmax of the scores against the labels)."""
    def hits(scores, labels):
        scores = jnp.asarray(scores)
        return jnp.argmax(scores, axis=-1) == cls.class_labels(scores, labels)
    return _counting("accuracy", hits)


@named("fnn.metrics.streaming.top_k_accuracy")
def top_k_accuracy(k: int) -> Metric:
    """Streaming `fnn.metrics.top_k_accuracy(scores, labels, k)`, named `f"top{k}_accuracy"`;
    `k <= C` is checked at the first update."""
    return _top_k(positive_int("k", k))


@functools.cache
def _top_k(k: int) -> Metric:
    return _counting(f"top{k}_accuracy", lambda s, y: cls.top_k_hits(s, y, k))


@functools.cache
def _confusion(name: str, num_classes: int, average: str | None) -> Metric:
    """The confusion-matrix counter: its result the matrix (`average=None`) or
    `precision_recall_f1(matrix, average)`."""
    def result(m):
        return m if average is None else cls.precision_recall_f1(m, average=average)

    def init():
        return jnp.zeros((num_classes, num_classes), jnp.int32)

    @named(f"fnn.metrics.streaming.{name}.update")
    def update(state, scores, labels, mask=None):
        scores = jnp.asarray(scores)
        if scores.ndim != 2 or scores.shape[1] != num_classes:
            raise BadValue(f"expected scores of shape (B, {num_classes}) for num_classes="
                           f"{num_classes}, got {tuple(scores.shape)}.")
        labels = cls.class_labels(scores, labels)
        w = _mask(mask, scores.shape[0])
        return state + cls.confusion_matrix(jnp.argmax(scores, axis=-1), labels, num_classes,
                                            weights=w)

    return Metric(name, init, update, result)


@named("fnn.metrics.streaming.confusion_matrix")
def confusion_matrix(num_classes: int) -> Metric:
    """Streaming `fnn.metrics.confusion_matrix(argmax(scores), labels, num_classes)`: the
    `(C, C)` int32 counts, rows true. Its result is an array, so `fit` does not take it
    (a history holds numbers); `fnn.train.evaluate` does."""
    return _confusion("confusion_matrix", positive_int("num_classes", num_classes), None)


@named("fnn.metrics.streaming.precision_recall_f1")
def precision_recall_f1(num_classes: int, average: str = "macro") -> Metric:
    """Streaming `fnn.metrics.precision_recall_f1(confusion, average)` over the confusion
    matrix of the argmax; named `average`, so `fit` records `"val_macro_precision"`,
    `"val_macro_recall"`, `"val_macro_f1"`."""
    num_classes = positive_int("num_classes", num_classes)
    if average not in cls.AVERAGES:
        raise BadValue(f"unknown average {average!r}; expected one of {list(cls.AVERAGES)}.")
    return _confusion(average, num_classes, average)


_TOP_K = re.compile(r"top(\d+)_accuracy")


def is_metric_name(name) -> bool:
    """Whether `from_name(name)` gives a metric."""
    found = isinstance(name, str) and _TOP_K.fullmatch(name)
    return bool(found) and int(found.group(1)) >= 1


@named("fnn.metrics.streaming.from_name")
def from_name(name: str) -> Metric:
    """The metric a name stands for: `"top{k}_accuracy"` (e.g. `"top5_accuracy"`)."""
    if not isinstance(name, str):
        raise BadType(f"a metric name must be a str, got {name!r}.")
    if not is_metric_name(name):
        raise BadValue(f"unknown metric {name!r}; expected 'top{{k}}_accuracy' with k >= 1 "
                       "(e.g. 'top5_accuracy'), or a fnn.metrics.streaming.Metric.")
    return top_k_accuracy(int(_TOP_K.fullmatch(name).group(1)))


def flat_result(metric: Metric, state) -> dict:
    """`{name: value}` of `metric.result(state)` on the host: a scalar as a Python float,
    a dict per key as `{f"{name}_{key}": float}`, an array as a NumPy array."""
    value = metric.result(state)
    if isinstance(value, dict):
        return {f"{metric.name}_{k}": float(v) for k, v in value.items()}
    value = np.asarray(value)
    return {metric.name: float(value) if value.ndim == 0 else value}
