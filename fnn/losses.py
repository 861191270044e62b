"""Loss functions: `loss(predictions, targets) -> scalar`, the mean over the batch.

Every loss returns ONE number, the mean over the batch (what you differentiate).
Two families:

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
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import (
    NON_NEGATIVE,
    POSITIVE,
    BadType,
    BadValue,
    checked,
    concrete_range,
    shape_str,
)
from fnn._util import at_least_float32, at_least_int32
from fnn.activations import log_softmax
from fnn.metrics import CLASS_IDS, binary, declare_accuracy

__all__ = [
    "mse", "mae", "msle", "mape", "huber", "smooth_l1",
    "sigmoid_binary_cross_entropy", "binary_cross_entropy",
    "softmax_cross_entropy", "cross_entropy", "nll",
    "hinge", "multiclass_hinge", "exponential",
]

#: Lower bound inside the logs of `msle` and the denominators of `mape` (API.md).
_REGRESSION_EPS = 1e-5
#: Probabilities are clipped into `[PROB_EPS, 1 − PROB_EPS]` by
#: `binary_cross_entropy` and below by `PROB_EPS` in `cross_entropy`
#: (Keras's `backend.epsilon()`, 1e-7).
PROB_EPS = 1e-7


# ---------------------------------------------------------------------------
# checks (static: shapes and dtypes only, so they hold under jit/grad/vmap)


def _loss(**table):
    """Decorator of a public loss: its errors are named "fnn.losses.<name>", and the
    hyperparameters in `table` are checked first (see `fnn._checks.checked`)."""
    return lambda fn: checked(f"fnn.losses.{fn.__name__}", **table)(fn)


def _asarray(x, what: str):
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


def _predictions(x, what: str):
    x = _asarray(x, what)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise BadType(f"expected floating-point {what}, got dtype {x.dtype} (shape "
                      f"{shape_str(x.shape)}). Convert with x.astype(jnp.float32).")
    return x


def _not_empty(x, what: str) -> None:
    if x.size == 0:
        raise BadValue(f"got an empty batch ({what} of shape {shape_str(x.shape)}); "
                       "a loss needs at least one example.")


def _elementwise_args(pred, y, pred_name: str = "predictions", y_name: str = "targets"):
    """Validate `(pred, y)` of an element-wise loss; return them, y cast to pred's dtype."""
    pred = _predictions(pred, pred_name)
    y = _asarray(y, y_name)
    if pred.shape != y.shape:
        hint = ""
        if pred.size == y.size:
            hint = (f" Reshape the {y_name} explicitly, e.g. y.reshape({shape_str(pred.shape)})"
                    " — losses never broadcast, so (N, 1) against (N,) is an error.")
        raise BadValue(f"{pred_name} and {y_name} must have the same shape, got {pred_name} "
                       f"{shape_str(pred.shape)} and {y_name} {shape_str(y.shape)}.{hint}")
    if not (jnp.issubdtype(y.dtype, jnp.number) or y.dtype == jnp.bool_):
        raise BadType(f"{y_name} must be numeric, got dtype {y.dtype}.")
    _not_empty(pred, pred_name)
    dtype = jnp.promote_types(pred.dtype, y.dtype) if jnp.issubdtype(
        y.dtype, jnp.floating) else pred.dtype
    dtype = jnp.promote_types(dtype, jnp.float32)  # half precision: computed in float32
    return pred.astype(dtype), y.astype(dtype)


def _scores(scores, what: str):
    scores = _predictions(scores, what)
    if scores.ndim < 1:
        raise BadValue(f"expected {what} of shape (N, C) with a class axis last, got a "
                       f"scalar (shape {shape_str(scores.shape)}).")
    if scores.shape[-1] == 0:
        raise BadValue(f"{what} of shape {shape_str(scores.shape)} have no classes "
                       "(last axis has size 0).")
    _not_empty(scores, what)
    return at_least_float32(scores)  # half precision: computed in float32


def _class_ids(scores, labels, what: str, *, one_hot_ok: str | None):
    """Validate integer class ids of shape `scores.shape[:-1]`.

    A wrong shape is a `ValueError`; the right shape with a non-integer dtype a
    `TypeError`. `one_hot_ok` names the `(N, C)` float alternative this loss
    accepts (or None); it only changes the advice in the messages.
    """
    labels = _asarray(labels, "labels")
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


def _pick(x, labels):
    """`x[..., labels]` along the last axis, and the mask of ids inside `[0, C)`."""
    num_classes = x.shape[-1]
    valid = (labels >= 0) & (labels < num_classes)
    idx = jnp.clip(labels, 0, num_classes - 1)[..., None]
    return jnp.take_along_axis(x, idx, axis=-1)[..., 0], valid


def _nan_where_invalid(per_example, valid):
    return jnp.where(valid, per_example, jnp.nan)


def _abs(x):
    """|x| whose derivative at 0 is 0 (sign(x)), as PyTorch's abs; jnp.abs gives 1 there."""
    return x * jnp.sign(x)


def _relu(x):
    """max(x, 0) with derivative 0 at 0 (the library's relu convention)."""
    return jnp.where(x > 0, x, jnp.zeros_like(x))


# ---------------------------------------------------------------------------
# regression


@_loss()
def mse(pred, y):
    """Mean squared error: `mean((pred − y)²)` over all elements.

    **Arguments:**
    - `pred`: predictions, float, any shape `(N, ...)`.
    - `y`: targets, the same shape as `pred`.

    **Returns:** a scalar. Equals PyTorch's `MSELoss()` and Keras's
    `MeanSquaredError`; `optax.squared_error` is the same per element without
    the mean, and `optax.l2_loss` is HALF of it (`½(pred − y)²`).
    """
    pred, y = _elementwise_args(pred, y)
    return jnp.mean(jnp.square(pred - y))


@_loss()
def mae(pred, y):
    """Mean absolute error: `mean(|pred − y|)` over all elements.

    The gradient at `pred == y` is 0 (subgradient `sign(0) = 0`, as PyTorch's
    `L1Loss`). **Shapes:** `pred` and `y` the same shape `(N, ...)`; returns a scalar.
    """
    pred, y = _elementwise_args(pred, y)
    return jnp.mean(_abs(pred - y))


@_loss()
def msle(pred, y):
    """Mean squared logarithmic error.

    `mean((log(1 + max(pred, ε)) − log(1 + max(y, ε)))²)` with `ε = 1e-5`, over
    all elements; meant for non-negative targets (counts, prices): values below
    ε are clipped to ε, so negative predictions get a zero gradient.

    Keras's `MeanSquaredLogarithmicError` clips at its epsilon 1e-7 instead of
    1e-5 (the results differ only for values in `[0, 1e-5)`); PyTorch has no
    MSLE. **Shapes:** `pred` and `y` the same shape; returns a scalar.
    """
    pred, y = _elementwise_args(pred, y)
    d = jnp.log1p(jnp.maximum(pred, _REGRESSION_EPS)) - jnp.log1p(jnp.maximum(y, _REGRESSION_EPS))
    return jnp.mean(jnp.square(d))


@_loss()
def mape(pred, y):
    """Mean absolute percentage error, in percent.

    `100 · mean(|pred − y| / max(|y|, ε))` with `ε = 1e-5`, over all elements
    (targets near 0 make it explode: that is MAPE's nature, ε only avoids a
    division by zero). Keras's `MeanAbsolutePercentageError` uses ε = 1e-7.
    **Shapes:** `pred` and `y` the same shape; returns a scalar.
    """
    pred, y = _elementwise_args(pred, y)
    return 100.0 * jnp.mean(_abs(pred - y) / jnp.maximum(_abs(y), _REGRESSION_EPS))


@_loss(delta=POSITIVE)
def huber(pred, y, delta: float = 1.0):
    """Huber loss, exactly PyTorch's `huber_loss(pred, y, delta=delta)` (mean reduction).

    With `d = pred − y`, per element:

        ½ d²               if |d| < δ
        δ (|d| − ½ δ)      otherwise

    then the mean over all elements. Quadratic near the target, linear (slope
    δ) beyond it, continuous with a continuous first derivative at `|d| = δ`.
    `optax.huber_loss` and Keras's `Huber` use the same formula (optax without
    the mean). `huber(p, y, δ) = δ · smooth_l1(p, y, beta=δ)`.

    **Arguments:** `delta > 0` (checked when concrete; may be traced, e.g. under `vmap`).
    **Shapes:** `pred` and `y` the same shape; returns a scalar.
    """
    pred, y = _elementwise_args(pred, y)
    d = pred - y
    a = _abs(d)
    return jnp.mean(jnp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta)))


@_loss(beta=NON_NEGATIVE)
def smooth_l1(pred, y, beta: float = 1.0):
    """Smooth L1 loss, exactly PyTorch's `smooth_l1_loss(pred, y, beta=beta)` (mean reduction).

    With `d = pred − y`, per element:

        ½ d² / β           if |d| < β
        |d| − ½ β          otherwise

    then the mean over all elements. `beta = 0` is the plain L1 loss (`mae`),
    as in PyTorch. Differs from `huber` by the factor β: the linear part has
    slope 1 here, δ in Huber.

    **Arguments:** `beta >= 0` (checked when concrete; may be traced, e.g. under `vmap`).
    **Shapes:** `pred` and `y` the same shape; returns a scalar.
    """
    pred, y = _elementwise_args(pred, y)
    d = pred - y
    a = _abs(d)
    safe_beta = jnp.where(beta > 0, beta, 1.0)  # beta = 0: the first branch is never taken
    return jnp.mean(jnp.where(a < beta, 0.5 * d * d / safe_beta, a - 0.5 * beta))


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


@_loss()
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
    z, y = _elementwise_args(logits, y, "logits", "targets")
    return jnp.mean(_softplus(z) - z * y)


@_loss()
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
    p, y = _elementwise_args(probs, y, "probabilities", "targets")
    p = jnp.clip(p, PROB_EPS, 1.0 - PROB_EPS)
    return jnp.mean(-(y * jnp.log(p) + (1.0 - y) * jnp.log1p(-p)))


@_loss()
def hinge(scores, y):
    """Binary hinge loss (SVM): `mean(max(0, 1 − y·s))`, y ∈ {−1, +1}.

    Targets must be ±1 (not checked under jit). Keras's `hinge` silently maps
    {0, 1} labels to {−1, +1}; this one does not: convert with `2·y − 1`.
    The (sub)gradient at the kink `y·s = 1` is 0. `optax.hinge_loss` is the same
    per element. **Shapes:** `scores` and `y` the same shape; returns a scalar.
    """
    s, y = _elementwise_args(scores, y, "scores", "targets")
    return jnp.mean(_relu(1.0 - y * s))


@_loss()
def exponential(scores, y):
    """Exponential loss (AdaBoost): `mean(exp(−y·s))`, y ∈ {−1, +1}.

    Grows without bound for confidently wrong scores; in float32 it overflows
    to `inf` once `−y·s > 88` — the true value, not a numerical accident.
    **Shapes:** `scores` and `y` the same shape; returns a scalar.
    """
    s, y = _elementwise_args(scores, y, "scores", "targets")
    return jnp.mean(jnp.exp(-y * s))


# ---------------------------------------------------------------------------
# multi-class classification


@_loss()
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
    z = _scores(logits, "logits")
    labels = _asarray(labels, "labels")
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
    labels = _class_ids(z, labels, "logits", one_hot_ok="one-hot/probability targets")
    picked, valid = _pick(logp, labels)
    return jnp.mean(_nan_where_invalid(-picked, valid))


@_loss()
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
    p = _scores(probs, "probabilities")
    y = _asarray(onehot, "targets")
    if y.shape == p.shape[:-1] and jnp.issubdtype(y.dtype, jnp.integer):
        raise BadValue(
            f"targets must be one-hot/probabilities of the same shape as the probabilities, "
            f"got probabilities {shape_str(p.shape)} and integer targets {shape_str(y.shape)}. "
            "For class ids use nll(jnp.log(probs), labels) or jax.nn.one_hot(labels, C).")
    # in float32 at least: PROB_EPS is 0 or subnormal in half precision
    p, y = _elementwise_args(probs, onehot, "probabilities", "targets")
    return jnp.mean(-jnp.sum(y * jnp.log(jnp.maximum(p, PROB_EPS)), axis=-1))


@_loss()
def nll(log_probs, labels):
    """Negative log-likelihood of class ids: `mean(−log_probs[n, label_n])`.

    Use after a `log_softmax` output layer; `nll(log_softmax(z), labels)` equals
    `softmax_cross_entropy(z, labels)`. This is PyTorch's `NLLLoss()`. A class
    id outside `[0, C)` raises `ValueError` on concrete labels and gives NaN
    under `jit`.

    **Shapes:** `log_probs (N, C)` (or `(..., C)`), integer `labels (N,)`;
    returns a scalar.
    """
    lp = _scores(log_probs, "log-probabilities")
    labels = _class_ids(lp, labels, "log-probabilities", one_hot_ok=None)
    picked, valid = _pick(lp, labels)
    return jnp.mean(_nan_where_invalid(-picked, valid))


@_loss(margin=NON_NEGATIVE)
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
    s = _scores(scores, "scores")
    labels = _class_ids(s, labels, "scores", one_hot_ok=None)
    s_true, valid = _pick(s, labels)
    margins = _relu(s - s_true[..., None] + margin)
    is_true = jax.lax.broadcasted_iota(labels.dtype, s.shape, s.ndim - 1) == labels[..., None]
    per_example = jnp.sum(jnp.where(is_true, jnp.zeros_like(margins), margins), axis=-1)
    return jnp.mean(_nan_where_invalid(per_example, valid))


# How fit, make_train_step and evaluate count accuracy for each loss (fnn.metrics):
# the thresholds (prediction, target) of the binary losses, class ids for the class
# losses, none for regression.
for _loss in (mse, mae, msle, mape, huber, smooth_l1):
    declare_accuracy(None)(_loss)
for _loss, _thresholds in ((sigmoid_binary_cross_entropy, (0.0, 0.5)),  # logits, y in [0, 1]
                           (binary_cross_entropy, (0.5, 0.5)),          # probabilities
                           (hinge, (0.0, 0.0)), (exponential, (0.0, 0.0))):  # y = ±1
    declare_accuracy(binary(*_thresholds))(_loss)
for _loss in (softmax_cross_entropy, cross_entropy, nll, multiclass_hinge):
    declare_accuracy(CLASS_IDS)(_loss)
del _loss, _thresholds
