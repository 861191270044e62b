"""Evaluation and prediction: `train=False`, fixed-shape padded batches with a mask, so
every example counts exactly once and nothing recompiles per batch.

    evaluate(model, params, model_state, loss, x, y) -> {"loss": float, "accuracy": float}
    evaluate(..., metrics=["top5_accuracy", fnn.metrics.streaming.confusion_matrix(10)])
    predict(model, params, model_state, x) -> (N, *output_shape)

The loss of each example is `loss(pred[i:i+1], y[i:i+1])`, summed with the mask
as weights and divided by N, in float64 on the host: for every mean-over-batch
loss this is `loss(pred, y)` on the whole set. Accuracy follows the loss's
declaration (`fnn.metrics`).
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn import compiler
from fnn import precision as precision_lib
from fnn._array_checks import concrete_range
from fnn._checks import BadType, BadValue, named, positive_int
from fnn._util import memoized
from fnn.core import Layer, output_struct
from fnn.data import iter_padded_batches, num_examples
from fnn.metrics import accuracy_rule, streaming
from fnn.train.feed import batch_format, dict_target_loss, pad

__all__ = [
    "model_output", "class_ids_in_range", "accuracy_applies", "eval_batch_size",
    "evaluation_program", "prediction_program", "evaluate", "evaluate_batches", "predict",
    "streaming_metrics", "evaluate_stream", "loss_model",
]


def model_output(model: Layer, params, model_state, x) -> Callable:
    """`() -> ShapeDtypeStruct` of the model's output for one example of `x` (batch 1),
    traced abstractly on the first call only: the checks below share one trace."""
    return functools.cache(lambda: output_struct(model, x.shape[1:], x.dtype, params,
                                                 model_state))


def class_ids_in_range(what: str, loss, pred: Callable, y) -> None:
    """`BadValue` if int labels `y` hold a class id outside the model's outputs (`pred`,
    from `model_output`), for a loss that declares class ids (`fnn.metrics`).

    A loss checks the ids' range only on concrete labels; inside a jitted step they
    are traced, and an id out of range gives a NaN loss there (as an `Embedding` id
    does). `fit` and `evaluate` hold the whole label array, so they check it once,
    up front.
    """
    rule = accuracy_rule(loss)
    if rule is None or not rule.class_ids or y.ndim != 1 \
            or not np.issubdtype(y.dtype, np.integer):
        return
    out, bounds = pred().shape[1:], concrete_range(y)
    if len(out) != 1 or bounds is None:
        return                                  # the loss's own shape check applies
    (num_classes,), (lo, hi) = out, bounds
    if lo < 0 or hi >= num_classes:
        name = getattr(getattr(loss, "func", loss), "__name__", "the loss")
        raise BadValue(f"{what} holds class ids from {lo} to {hi}, but the model has "
                       f"{num_classes} outputs, so {name} needs ids in [0, {num_classes - 1}] "
                       "(inside the jitted step an id out of range gives a NaN loss).")


def accuracy_applies(why: str, loss, pred: Callable, y) -> None:
    """`BadValue` if the loss's accuracy rule gives no accuracy for the model's outputs
    (`pred`, from `model_output`) and targets `y`."""
    rule, pred = accuracy_rule(loss), pred()
    target = jax.ShapeDtypeStruct((1, *y.shape[1:]), y.dtype)
    if rule is None or jax.eval_shape(rule.correct, pred, target) is None:
        raise BadValue(
            f"{why}, but accuracy does not apply to this loss and these targets (outputs "
            f"{pred.shape[1:]}, targets {target.shape[1:]} {target.dtype}; accuracy needs a "
            "classification loss: class scores (C,) with int ids or one-hot targets, or a "
            "binary loss); monitor a loss instead.")


def eval_batch_size(name: str, batch_size, n: int) -> int:
    """A batch size for evaluation: any positive int (capped at `n`), or None for `n`."""
    return n if batch_size is None else min(positive_int(name, batch_size), n)


def evaluation_program(model: Layer, loss: Callable, metrics: tuple = ()):
    """The compiled `run(params, model_state, x, y, mask, states=()) -> {"loss": sum,
    "accuracy": sum}` over one padded batch (sums of the masked per-example values,
    float32); with streaming `metrics` (`fnn.metrics.streaming`) also `"states"`, their
    states updated with this batch's real examples."""
    accuracy = accuracy_rule(loss)

    def per_example_loss(pred, y):
        return jax.vmap(lambda p, t: loss(p[None], jax.tree.map(lambda a: a[None], t)))(pred, y)

    def run(params, model_state, x, y, mask, states=()):
        pred, _ = model.apply(params, model_state, x, train=False)
        w = mask.astype(jnp.float32)
        sums = {"loss": jnp.sum(per_example_loss(pred, y).astype(jnp.float32) * w)}
        correct = None if accuracy is None else accuracy.correct(pred, y)
        if correct is not None:
            sums["accuracy"] = jnp.sum(correct * w)
        if metrics:
            sums["states"] = tuple(m.update(s, pred, y, mask) for m, s in zip(metrics, states))
        return sums

    return compiler.jit(run, compiler.options())


def prediction_program(model: Layer):
    """The compiled `run(params, model_state, x) -> outputs` (`train=False`)."""
    return compiler.jit(lambda params, state, x: model.apply(params, state, x, train=False)[0],
                        compiler.options())


@named("evaluate")
def evaluate(model: Layer, params, model_state, loss: Callable, x, y=None,
             batch_size: int | None = 256, *, metrics=(), input_key: str = "x",
             target_key: str | None = "y", precision=None) -> dict:
    """Mean loss (and accuracy, for classification) over a whole data set, `train=False`.

    Runs fixed-shape batches of `batch_size` (the last one padded, with a mask)
    so every example counts exactly once and one compiled program serves every
    batch. The loss of each example is `loss(pred[i:i+1], y[i:i+1])`, so the
    result equals `loss(pred, y)` on the whole set for every mean-over-batch
    loss. Returns `{"loss": float, "accuracy": float}` (accuracy only when the
    loss's rule applies, `fnn.metrics`). Sums are taken in float64 on the host.
    A loss weighted per step (`weights=mask` from `y`) counts as each example's own
    weighted mean, averaged over the examples (not `Σ w·l / Σ w` over the whole set).
    Int class ids in `y` are checked against the model's outputs first (for a loss
    that declares class ids): inside the compiled program an id out of range gives NaN.

    **Arguments:** `metrics`: streaming metrics (`fnn.metrics.streaming.Metric`, or
    names such as `"top5_accuracy"`) run over the same batches on the model's
    outputs and `y`; each adds `{metric.name: value}` to the result (a float; a dict
    result per key as `f"{name}_{key}"`; a confusion matrix as a NumPy array).
    `precision`: a `fnn.precision.Policy` or its name; the model runs under it
    (`fnn.precision.apply_policy`) and the loss is computed in float32.

    `x` may instead be an iterable of batches, `y` left out (`evaluate(model, params,
    state, loss, batches)`): tuples `(x, y)` or dicts (`input_key`, `target_key` as in
    `fit`, `fnn.train.feed`); see `evaluate_stream`.
    """
    model = loss_model(model, precision)
    if y is None and not hasattr(x, "shape"):
        loss = dict_target_loss(loss) if target_key is None else loss
        return evaluate_stream(model, params, model_state, loss, x,
                               metrics=streaming_metrics(metrics), input_key=input_key,
                               target_key=target_key)
    n = num_examples((x, y))
    bs = eval_batch_size("batch_size", batch_size, n)
    extra = streaming_metrics(metrics)
    class_ids_in_range("y", loss, model_output(model, params, model_state, x), y)
    return evaluate_batches(model, params, model_state, loss, x, y, bs, extra)


def streaming_metrics(metrics) -> tuple:
    """`metrics` (Metric objects or names, `fnn.metrics.streaming.from_name`) as a tuple
    of `Metric`s with distinct names (`BadValue`/`BadType` otherwise)."""
    if isinstance(metrics, (str, streaming.Metric)):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise BadType(f"metrics must be a sequence of fnn.metrics.streaming.Metric objects or "
                      f"names such as 'top5_accuracy', got {metrics!r}.") from None
    out = tuple(m if isinstance(m, streaming.Metric) else streaming.from_name(m)
                for m in metrics if m not in ("loss", "accuracy"))   # those always come
    names = [m.name for m in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise BadValue(f"two metrics are named {twice[0]!r}; give each its own name "
                       "(metric._replace(name=...)).")
    return out


def loss_model(model: Layer, precision) -> Layer:
    """`model` under the policy `precision` (None: as is), its output in float32 for the
    loss."""
    if precision is None:
        return model
    policy = precision_lib.as_policy(precision)
    return precision_lib.apply_policy(model, policy._replace(output_dtype=jnp.dtype("float32")))


def evaluate_batches(model: Layer, params, model_state, loss: Callable, x, y, bs: int,
                     metrics: tuple = ()) -> dict:
    """`evaluate` on checked arguments (`fit` checks them once for every epoch)."""
    fn = memoized(evaluation_program, model, loss, metrics)
    return _averaged(fn, params, model_state, metrics, iter_padded_batches((x, y), bs),
                     lambda: x.shape[0])


def evaluate_stream(model: Layer, params, model_state, loss: Callable, batches, *,
                    metrics: tuple = (), input_key: str = "x",
                    target_key: str | None = "y") -> dict:
    """`evaluate` over an iterable of batches: every batch padded to the first one's size
    with a mask (one compiled program), sums in float64 over all the examples."""
    fn = memoized(evaluation_program, model, loss, metrics)
    seen = {"n": 0}

    def padded():
        fmt = None
        for i, batch in enumerate(batches):
            if fmt is None:
                fmt = batch_format(batch, None, input_key, target_key, "data")
            bx, by, m = fmt.split(batch, f"data's batch {i + 1}")
            bs = fmt.batch_size
            seen["n"] += m
            yield (pad(bx, m, bs), pad(by, m, bs)), np.arange(bs) < m
        if fmt is None:
            raise BadValue("data yielded no batch.")

    return _averaged(fn, params, model_state, metrics, padded(), lambda: seen["n"])


def _averaged(fn, params, model_state, metrics: tuple, padded_batches, count) -> dict:
    """Run the evaluation program `fn` over `((x, y), mask)` batches: the loss and accuracy
    summed in float64 and divided by `count()` (the examples, known once the batches are
    spent), and the streaming `metrics`' results."""
    states, parts = tuple(m.init() for m in metrics), []
    for (xb, yb), mask in padded_batches:
        out = fn(params, model_state, xb, yb, mask, states)
        states = out.pop("states", ())
        parts.append(out)
    parts, n = jax.device_get(parts), count()
    result = {k: float(math.fsum(float(p[k]) for p in parts) / n)
              for k in ("loss", "accuracy") if k in parts[0]}
    for m, state in zip(metrics, states):
        result.update(streaming.flat_result(m, state))
    return result


@named("predict")
def predict(model: Layer, params, model_state, x, batch_size: int | None = 256, *,
            precision=None):
    """Model outputs for all of `x` (`train=False`), in fixed-shape padded batches.

    Returns a jax array `(N, *output_shape)`. `precision`: a `fnn.precision.Policy` or
    its name; the model runs under it and the outputs have its `output_dtype`.
    """
    if precision is not None:
        model = precision_lib.apply_policy(model, precision_lib.as_policy(precision))
    n = num_examples((x,))
    fn = memoized(prediction_program, model)
    outs = [fn(params, model_state, xb)
            for (xb,), _ in iter_padded_batches((x,), eval_batch_size("batch_size", batch_size, n))]
    return jnp.concatenate(outs, axis=0)[:n]
