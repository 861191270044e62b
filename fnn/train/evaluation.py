"""Evaluation and prediction: `train=False`, fixed-shape padded batches with a mask, so
every example counts exactly once and nothing recompiles per batch.

    evaluate(model, params, model_state, loss, x, y) -> {"loss": float, "accuracy": float}
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
from fnn._checks import BadValue, named, positive_int
from fnn._util import memoized
from fnn.core import Layer, output_struct
from fnn.data import iter_padded_batches, num_examples
from fnn.metrics import accuracy_rule

__all__ = [
    "model_output", "class_ids_in_range", "accuracy_applies", "eval_batch_size",
    "evaluation_program", "prediction_program", "evaluate", "evaluate_batches", "predict",
    "loss_model",
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


def evaluation_program(model: Layer, loss: Callable):
    """The compiled `run(params, model_state, x, y, mask) -> {"loss": sum, "accuracy": sum}`
    over one padded batch (sums of the masked per-example values, float32)."""
    accuracy = accuracy_rule(loss)

    def per_example_loss(pred, y):
        return jax.vmap(lambda p, t: loss(p[None], t[None]))(pred, y)

    def run(params, model_state, x, y, mask):
        pred, _ = model.apply(params, model_state, x, train=False)
        w = mask.astype(jnp.float32)
        sums = {"loss": jnp.sum(per_example_loss(pred, y).astype(jnp.float32) * w)}
        correct = None if accuracy is None else accuracy.correct(pred, y)
        if correct is not None:
            sums["accuracy"] = jnp.sum(correct * w)
        return sums

    return compiler.jit(run, compiler.options())


def prediction_program(model: Layer):
    """The compiled `run(params, model_state, x) -> outputs` (`train=False`)."""
    return compiler.jit(lambda params, state, x: model.apply(params, state, x, train=False)[0],
                        compiler.options())


@named("evaluate")
def evaluate(model: Layer, params, model_state, loss: Callable, x, y,
             batch_size: int | None = 256, *, precision=None) -> dict:
    """Mean loss (and accuracy, for classification) over a whole data set, `train=False`.

    Runs fixed-shape batches of `batch_size` (the last one padded, with a mask)
    so every example counts exactly once and one compiled program serves every
    batch. The loss of each example is `loss(pred[i:i+1], y[i:i+1])`, so the
    result equals `loss(pred, y)` on the whole set for every mean-over-batch
    loss. Returns `{"loss": float, "accuracy": float}` (accuracy only when the
    loss's rule applies, `fnn.metrics`). Sums are taken in float64 on the host.
    Int class ids in `y` are checked against the model's outputs first (for a loss
    that declares class ids): inside the compiled program an id out of range gives NaN.
    `precision`: a `fnn.precision.Policy` or its name; the model runs under it
    (`fnn.precision.apply_policy`) and the loss is computed in float32.
    """
    model = loss_model(model, precision)
    n = num_examples((x, y))
    bs = eval_batch_size("batch_size", batch_size, n)
    class_ids_in_range("y", loss, model_output(model, params, model_state, x), y)
    return evaluate_batches(model, params, model_state, loss, x, y, bs)


def loss_model(model: Layer, precision) -> Layer:
    """`model` under the policy `precision` (None: as is), its output in float32 for the
    loss."""
    if precision is None:
        return model
    policy = precision_lib.as_policy(precision)
    return precision_lib.apply_policy(model, policy._replace(output_dtype=jnp.dtype("float32")))


def evaluate_batches(model: Layer, params, model_state, loss: Callable, x, y, bs: int) -> dict:
    """`evaluate` on checked arguments (`fit` checks them once for every epoch)."""
    fn = memoized(evaluation_program, model, loss)
    parts = jax.device_get([fn(params, model_state, xb, yb, mask)
                            for (xb, yb), mask in iter_padded_batches((x, y), bs)])
    return {k: float(math.fsum(float(p[k]) for p in parts) / x.shape[0])
            for k in ("loss", "accuracy") if k in parts[0]}


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
