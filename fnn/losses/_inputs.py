"""What every loss checks first: its arguments as arrays of the right shapes and dtypes.

The checks are static (shapes and dtypes only, so they hold under jit/grad/vmap);
class ids and integer targets are checked against their range only when concrete.
They raise `BadValue`/`BadType`, which the loss (decorated with `named_loss`) names
"fnn.losses.<name>".
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import concrete_range
from fnn._checks import BadType, BadValue, checked, shape_str
from fnn._util import at_least_float32, at_least_int32


def named_loss(**table):
    """Decorator of a public loss: its errors are named "fnn.losses.<name>", and the
    hyperparameters in `table` and its `reduction` are checked first (see
    `fnn._checks.checked`)."""
    return lambda fn: checked(f"fnn.losses.{fn.__name__}", **table,
                              reduction=reduction_rule)(fn)


#: The values of every loss's `reduction` (applied by `fnn.losses._reduce.reduced`).
REDUCTIONS = ("mean", "sum", "none")


def reduction_rule(name: str, value) -> str:
    """The table rule of `checked` for `reduction`: one of `REDUCTIONS`."""
    if not isinstance(value, str) or value not in REDUCTIONS:
        raise BadValue(f"unknown {name} {value!r}; expected one of {list(REDUCTIONS)}.")
    return value


def asarray(x, what: str):
    """`jnp.asarray(x)`, after checking that a non-JAX input (list, numpy) is numeric.

    Strings and objects would otherwise fail inside `jnp.asarray` with an error
    that names neither the loss nor the argument. JAX arrays (and tracers) are
    always numeric and pass without a look at their values.
    """
    if not isinstance(x, jax.Array):
        try:
            dtype = np.asarray(x).dtype if not hasattr(x, "dtype") else np.dtype(x.dtype)
        except ValueError as e:  # a ragged nested list
            raise BadType(f"{what} must be an array or a rectangular nested list of numbers; "
                          f"NumPy says: {e}") from None
        if not (np.issubdtype(dtype, np.number) or dtype == np.bool_):
            raise BadType(f"{what} must be numeric, got dtype {dtype}.")
        _check_fits_jax_int(x, dtype, what)
    x = jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):  # the imaginary part would be dropped
        raise BadType(f"{what} must be real, got dtype {x.dtype}.")
    return x


def _check_fits_jax_int(x, dtype, what: str) -> None:
    """Integers that JAX's integer type cannot hold (int64 ids without `jax_enable_x64`)
    would wrap around silently in `jnp.asarray` (2**32 becomes class 0)."""
    if not np.issubdtype(dtype, np.integer):
        return
    info = np.iinfo(jax.dtypes.canonicalize_dtype(dtype))
    bounds = concrete_range(x)
    if bounds is not None and (bounds[0] < info.min or bounds[1] > info.max):
        bad = bounds[0] if bounds[0] < info.min else bounds[1]
        raise BadValue(f"{what} hold the value {bad}, outside the range of {info.dtype} (JAX's "
                       f"integer type here, without jax_enable_x64) in which they would wrap "
                       f"around; expected values in [{info.min}, {info.max}].")


def predictions(x, what: str):
    x = asarray(x, what)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise BadType(f"expected floating-point {what}, got dtype {x.dtype} (shape "
                      f"{shape_str(x.shape)}). Convert with x.astype(jnp.float32).")
    return x


def not_empty(x, what: str) -> None:
    if x.size == 0:
        raise BadValue(f"got an empty batch ({what} of shape {shape_str(x.shape)}); "
                       "a loss needs at least one example.")


def elementwise_args(pred, y, pred_name: str = "predictions", y_name: str = "targets"):
    """Validate `(pred, y)` of an element-wise loss; return them, y cast to pred's dtype."""
    pred = predictions(pred, pred_name)
    y = asarray(y, y_name)
    if pred.shape != y.shape:
        hint = ""
        if pred.size == y.size:
            hint = (f" Reshape the {y_name} explicitly, e.g. y.reshape({shape_str(pred.shape)})"
                    " — losses never broadcast, so (N, 1) against (N,) is an error.")
        raise BadValue(f"{pred_name} and {y_name} must have the same shape, got {pred_name} "
                       f"{shape_str(pred.shape)} and {y_name} {shape_str(y.shape)}.{hint}")
    if not (jnp.issubdtype(y.dtype, jnp.number) or y.dtype == jnp.bool_):
        raise BadType(f"{y_name} must be numeric, got dtype {y.dtype}.")
    not_empty(pred, pred_name)
    dtype = jnp.promote_types(pred.dtype, y.dtype) if jnp.issubdtype(
        y.dtype, jnp.floating) else pred.dtype
    dtype = jnp.promote_types(dtype, jnp.float32)  # half precision: computed in float32
    return pred.astype(dtype), y.astype(dtype)


def scores_of(scores, what: str):
    scores = predictions(scores, what)
    if scores.ndim < 1:
        raise BadValue(f"expected {what} of shape (N, C) with a class axis last, got a "
                       f"scalar (shape {shape_str(scores.shape)}).")
    if scores.shape[-1] == 0:
        raise BadValue(f"{what} of shape {shape_str(scores.shape)} have no classes "
                       "(last axis has size 0).")
    not_empty(scores, what)
    return at_least_float32(scores)  # half precision: computed in float32


def class_ids(scores, labels, what: str, *, one_hot_ok: str | None):
    """Validate integer class ids of shape `scores.shape[:-1]`.

    A wrong shape is a `ValueError`; the right shape with a non-integer dtype a
    `TypeError`. `one_hot_ok` names the `(N, C)` float alternative this loss
    accepts (or None); it only changes the advice in the messages.
    """
    labels = asarray(labels, "labels")
    want = shape_str(scores.shape[:-1])
    got = (f"got labels of shape {shape_str(labels.shape)} (dtype {labels.dtype}) for "
           f"{what} of shape {shape_str(scores.shape)}")
    if labels.shape != scores.shape[:-1]:
        hint = ""
        if labels.shape == scores.shape:
            hint = (f" Pass one-hot targets as floats ({one_hot_ok}), or class ids of shape "
                    f"{want} with jnp.argmax(onehot, axis=-1)." if one_hot_ok else
                    f" This loss takes class ids: convert one-hot targets with "
                    f"jnp.argmax(onehot, axis=-1) (shape {want}).")
        elif labels.size == math.prod(scores.shape[:-1]):
            hint = f" Reshape them with labels.reshape({want})."
        raise BadValue(f"class-id labels must have shape {want}, {got}.{hint}")
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        advice = "cast them with labels.astype(jnp.int32)"
        if one_hot_ok:
            advice += f", or pass {one_hot_ok} as floats of shape {shape_str(scores.shape)}"
        raise BadType(f"class-id labels must have an integer dtype, {got}; {advice}.")
    num_classes = scores.shape[-1]
    bounds = concrete_range(labels)   # checked only when concrete, as Embedding does
    if bounds is not None:
        lo, hi = bounds
        if lo < 0 or hi >= num_classes:
            raise BadValue(f"class ids must be in [0, {num_classes - 1}] ({what} have "
                           f"{num_classes} classes), got {lo if lo < 0 else hi} (labels range "
                           f"from {lo} to {hi}).")
    # widened, so that C and the class indices (up to C − 1) fit: a uint8 `labels < 300`
    # or an int8 `clip(labels, 0, 199)` would overflow
    return at_least_int32(labels)
