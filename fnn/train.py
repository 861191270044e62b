"""Training: a pure jitted step, evaluation, early stopping, plateaus, and `fit`.

The pieces, from the inside out:

- `TrainState`: everything a run needs to continue — the optimizer state (which
  holds the params), the model state (BatchNorm statistics), the run's PRNG key,
  the number of epochs done and a learning-rate scale. A pytree of arrays, so it
  can be jitted, donated and checkpointed.
- `make_train_step(model, loss, optimizer, regularizer=None)` returns
  `step(train_state, x, y) -> (train_state, metrics)`: pure, jitted once, its
  `train_state` argument donated (the old one is invalid after the call).
- `evaluate` / `predict`: `train=False`, fixed-shape padded batches with a mask,
  so every example counts exactly once and nothing recompiles per batch.
- `EarlyStopping`, `reduce_on_plateau`: epoch-level rules as explicit values.
- `fit(...)`: the loop (API.md §4), with a progress bar, checkpoints every
  epoch, exact resume, and a guard against non-finite losses.

**The key stream.** `fit(key=k)` splits `k` once: one half initialises the
params, the other becomes `TrainState.key`. Each epoch splits
`TrainState.key` into (next key, shuffle key), and each step draws its dropout
key as `fold_in(TrainState.key, opt_state.step)` (the update count, as Flax's
examples do), leaving `TrainState.key` as it is. Everything random is derived
from the state, so a run resumed from a checkpoint draws exactly the keys the
uninterrupted run drew. A model without random layers then computes no key at
all: XLA drops the unused hash (a per-step split cost ~10 extra kernels, 25 %
of a small MLP's step on a GPU).

**Determinism.** On CPU, the same arguments and seed give bit-identical params
and history (tested). On GPU, XLA may choose non-deterministic reductions
(e.g. scatter-add in some gradients, cuDNN convolution algorithms); set
`XLA_FLAGS=--xla_gpu_deterministic_ops=true` to trade speed for reproducibility.
"""
from __future__ import annotations

import functools
import math
import os
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import compiler, distributed, fused
from fnn._checks import (
    check_flag,
    check_input_shape,
    check_number,
    check_positive_int,
    concrete_range,
)
from fnn._util import memoized
from fnn.core import Layer, output_struct
from fnn.data import _check_arrays, _check_batch_size, epoch_batches, iter_padded_batches
from fnn.optim.base import check_optimizer

__all__ = [
    "TrainState", "init_train_state", "make_train_step", "evaluate", "predict",
    "EarlyStopping", "ReduceOnPlateau", "PlateauState", "reduce_on_plateau", "fit",
]

_METRICS = ("loss", "accuracy")


# ---------------------------------------------------------------------------
# state


class TrainState(NamedTuple):
    """The whole state of a training run (a pytree of arrays).

    **Fields:**
    - `opt_state`: the optimizer state (`fnn.optim`); `opt_state.params` are the
      model parameters and `opt_state.step` counts the updates.
    - `model_state`: the model's state (BatchNorm running statistics; `{}` if none).
    - `key`: `uint32 (2,)` raw key data (`jax.random.key_data`): the run's key
      stream; every shuffle and dropout key is derived from it.
    - `epoch`: `int32` scalar, the number of epochs completed.
    - `lr_scale`: `float32` scalar multiplying every update (1.0 unless a
      `reduce_on_plateau` rule lowered it). With `lr_scale = s` the step applies
      `p ← p + s·(p_opt − p)`, where `p_opt` is the optimizer's update: for every
      fnn optimizer that is exactly the update with learning rate `s·lr`.
    """

    opt_state: Any
    model_state: Any
    key: jax.Array
    epoch: jax.Array
    lr_scale: jax.Array

    @property
    def params(self):
        """The current model parameters (`opt_state.params`)."""
        return self.opt_state.params

    @property
    def step(self):
        """The number of updates applied (`opt_state.step`)."""
        return self.opt_state.step


def _raw_key(where: str, key) -> jax.Array:
    """A key as raw `uint32 (2,)` data (typed keys are unwrapped)."""
    if key is None:
        raise ValueError(
            f"{where}: a key is required, e.g. {where}(..., key=jax.random.key(0))."
        )
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise ValueError(
            f"{where}: expected a PRNG key from jax.random.key(seed) or "
            f"jax.random.PRNGKey(seed) (default threefry implementation), got an array "
            f"of dtype {key.dtype} and shape {tuple(key.shape)}."
        )
    return key


def _fresh(tree):
    """Copy every leaf into its own strongly typed buffer (safe to donate)."""
    return jax.tree.map(lambda a: jnp.array(a, dtype=jnp.asarray(a).dtype, copy=True), tree)


def init_train_state(model: Layer, optimizer, key, input_shape) -> TrainState:
    """A new `TrainState`: params from `model.init`, optimizer state, the run key.

    `key` is split into (init key, run key); see the module docstring. The
    initialisation runs under `jax.jit` (shape errors still surface at trace time).
    """
    if not isinstance(model, Layer):
        raise TypeError(f"init_train_state: model must be a fnn.Layer, got "
                        f"{type(model).__name__}.")
    check_optimizer("init_train_state", optimizer)
    key = _raw_key("init_train_state", key)
    shape = check_input_shape("init_train_state", input_shape, "(d1, ..., dk)")
    return _fresh(memoized(_init_fn, model, optimizer, shape)(key))


def _init_fn(model: Layer, optimizer, shape: tuple):
    """One compiled program for the whole initialisation (instead of one dispatch
    per initialiser op), reused by every `fit` with the same model and optimizer."""

    def init(key):
        k_init, k_run = jax.random.split(key)
        params, model_state = model.init(k_init, shape)
        return TrainState(optimizer.init(params), model_state, k_run,
                          jnp.zeros((), jnp.int32), jnp.ones((), jnp.float32))

    return compiler.jit(init, compiler.init_options())


# ---------------------------------------------------------------------------
# metrics


# Accuracy follows the loss. fnn's binary losses: the thresholds (prediction, target)
# that turn a score and a target into a class; their correctness is per label.
_BINARY_LOSSES = {"sigmoid_binary_cross_entropy": (0.0, 0.5),   # logits; targets in [0, 1]
                  "binary_cross_entropy": (0.5, 0.5),           # probabilities
                  "hinge": (0.0, 0.0), "exponential": (0.0, 0.0)}  # scores; targets ±1
_CATEGORICAL_LOSSES = frozenset({"softmax_cross_entropy", "cross_entropy", "nll",
                                 "multiclass_hinge"})


def _fnn_loss_name(loss) -> str | None:
    """The name of an `fnn.losses` function (also inside functools.partial), else None."""
    fn = getattr(loss, "func", loss)
    if getattr(fn, "__module__", None) == "fnn.losses":
        return getattr(fn, "__name__", None)
    return None


def _correct(pred, y, loss):
    """Per-example correctness as float32 `(N,)`, or None when accuracy does not apply.

    - fnn's binary losses (`sigmoid_binary_cross_entropy`, `binary_cross_entropy`,
      `hinge`, `exponential`): the score's side of the threshold against the
      target's (`_BINARY_LOSSES`), averaged over the labels of a multi-label
      example (Keras's `binary_accuracy`); any shape `(N, ...)`.
    - fnn's categorical losses, and any other loss: scores `(N, C)` (C >= 2)
      against int class ids `(N,)`, or against one-hot/probability targets
      `(N, C)` (argmax against argmax, as Keras's `"accuracy"` does).
    - fnn's regression losses (`mse`, `mae`, ...): None.
    """
    name = _fnn_loss_name(loss)
    if name in _BINARY_LOSSES:
        if pred.ndim == 0 or pred.shape != y.shape:
            return None
        t_pred, t_y = _BINARY_LOSSES[name]
        hit = ((pred > t_pred) == (y > t_y)).astype(jnp.float32)
        return jnp.mean(hit.reshape(hit.shape[0], -1), axis=1)
    if (name is not None and name not in _CATEGORICAL_LOSSES) or pred.ndim != 2 \
            or pred.shape[1] < 2:
        return None
    guess = jnp.argmax(pred, axis=-1)
    if y.ndim == 1 and jnp.issubdtype(y.dtype, jnp.integer):
        return (guess == y).astype(jnp.float32)
    if y.shape == pred.shape:
        return (guess == jnp.argmax(y, axis=-1)).astype(jnp.float32)
    return None


def _model_output(model: Layer, params, model_state, x) -> Callable:
    """`() -> ShapeDtypeStruct` of the model's output for one example of `x` (batch 1),
    traced abstractly on the first call only: the checks below share one trace."""
    return functools.cache(lambda: output_struct(model, x.shape[1:], x.dtype, params,
                                                 model_state))


def _check_class_ids(where: str, what: str, loss, pred: Callable, y) -> None:
    """Raise ValueError if int labels `y` hold a class id outside the model's outputs
    (`pred`, from `_model_output`).

    fnn's class-id losses check the ids' range only on concrete labels; inside a
    jitted step they are traced, and an id out of range gives a NaN loss there
    (as an `Embedding` id does). `fit` and `evaluate` hold the whole label array,
    so they check it once, up front, for those losses.
    """
    if (_fnn_loss_name(loss) not in _CATEGORICAL_LOSSES or y.ndim != 1
            or not np.issubdtype(y.dtype, np.integer)):
        return
    out = pred().shape[1:]
    bounds = concrete_range(y)
    if len(out) != 1 or bounds is None:
        return                                  # the loss's own shape check applies
    (num_classes,), (lo, hi) = out, bounds
    if lo < 0 or hi >= num_classes:
        raise ValueError(
            f"{where}: {what} holds class ids from {lo} to {hi}, but the model has "
            f"{num_classes} outputs, so {_fnn_loss_name(loss)} needs ids in "
            f"[0, {num_classes - 1}] (inside the jitted step an id out of range gives a "
            "NaN loss)."
        )


def _check_accuracy_applies(where: str, why: str, loss, pred: Callable, y) -> None:
    """Raise ValueError if `_correct` gives no accuracy for this loss, the model's
    outputs (`pred`, from `_model_output`) and targets `y`."""
    pred = pred()
    target = jax.ShapeDtypeStruct((1, *y.shape[1:]), y.dtype)
    if jax.eval_shape(lambda p, t: _correct(p, t, loss), pred, target) is None:
        raise ValueError(
            f"{where}: {why}, but accuracy does not apply to this loss and these targets "
            f"(outputs {pred.shape[1:]}, targets {target.shape[1:]} {target.dtype}; accuracy "
            "needs a classification loss: class scores (C,) with int ids or one-hot "
            "targets, or a binary loss); monitor a loss instead."
        )


def _check_metrics(where: str, metrics) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = (metrics,)
    try:
        metrics = tuple(metrics)
    except TypeError:
        raise TypeError(
            f"{where}: metrics must be a metric name or a sequence of them from "
            f"{list(_METRICS)}, got {metrics!r}."
        ) from None
    for m in metrics:
        if m not in _METRICS:
            raise ValueError(
                f"{where}: unknown metric {m!r}; expected some of {list(_METRICS)}."
            )
    return metrics


# ---------------------------------------------------------------------------
# the step


def _path(p) -> str:
    return jax.tree_util.keystr(p) or "(root)"


def _check_callables(where: str, loss, regularizer) -> None:
    if not callable(loss):
        raise TypeError(f"{where}: loss must be a callable loss(pred, y), got {loss!r}.")
    if regularizer is not None and not callable(regularizer):
        raise TypeError(
            f"{where}: regularizer must be None or a callable regularizer(params) -> scalar "
            f"(e.g. lambda p: fnn.regularizers.l2(p, 1e-4)), got {regularizer!r}."
        )


def _check_scalar(where: str, what: str, value) -> None:
    """`value` (an array or a ShapeDtypeStruct) must be a scalar: it is differentiated."""
    if jnp.shape(value) != ():
        raise ValueError(
            f"{where}: {what} must return a scalar, got shape {tuple(jnp.shape(value))}."
        )


def _check_step_args(ts, x, y) -> None:
    """Trace-time checks of a step's arguments: the state's type, equal batch sizes."""
    if not isinstance(ts, TrainState):
        raise TypeError(
            f"make_train_step's step: expected the TrainState from init_train_state (or the "
            f"one the previous step returned) as its first argument, got {type(ts).__name__}."
        )
    nx, ny = (jnp.shape(a)[0] if getattr(a, "ndim", 0) else None for a in (x, y))
    if nx is not None and ny is not None and nx != ny:
        raise ValueError(f"make_train_step's step: x has {nx} examples but y has {ny}; "
                         "x and y must have the same batch size.")


def make_train_step(model: Layer, loss: Callable, optimizer, regularizer: Callable | None = None,
                    *, accumulate: int = 1, check_finite: bool = False, jit: bool = True,
                    mesh=None):
    """Build `step(train_state, x, y) -> (train_state, metrics)`.

    One step: take the dropout key `fold_in(train_state.key, opt_state.step)`, run
    `model.apply(params, model_state, x, key=dropout_key, train=True)`, take the
    gradient of `loss(pred, y) + regularizer(params)` and apply the optimizer
    (scaled by `train_state.lr_scale`).

    **Arguments:**
    - `loss(pred, y) -> scalar`: the mean over the batch (`fnn.losses`).
    - `regularizer(params) -> scalar`, optional, added to the loss (e.g.
      `lambda p: fnn.regularizers.l2(p, 1e-4)`).
    - `accumulate`: split the batch into `accumulate` equal micro-batches, run
      them one after the other (model state threaded through) and average their
      gradients in one buffer before a single update. For a model without
      batch-dependent layers this equals the full-batch gradient (up to float
      rounding) with a fraction of the activation memory. The micro-batch loop
      is unrolled in Python, not a `lax.scan`: on XLA:CPU a convolution's weight
      gradient inside a scan body is compiled into a much slower loop. Measured
      for LeNet-5, a batch of 128 as 4 x 32, XLA:CPU (2 shared cores): full batch
      48 ms, unrolled 56 ms, `lax.scan` 124 ms per gradient; the gap grows with
      the convolution size (up to ~80x has been seen). Unrolling costs compile
      time proportional to `accumulate`; keep it small (2-16).
    - `check_finite`: also return `metrics["nonfinite"]`, flags for non-finite
      values in `x`, `y`, the loss and each gradient leaf (`fit` turns them
      into an error naming the leaf).
    - `jit`: wrap the step in `jax.jit(..., donate_argnums=0)` (default).
    - `mesh`: a `jax.sharding.Mesh` (`fnn.distributed.make_mesh()`): return
      `fnn.distributed.make_train_step(...)`'s data-parallel step instead
      (batch split along `"data"`, state replicated; needs `jit=True`).

    **Metrics** (scalars on the device): `"loss"` (the data loss, mean over the
    batch, without the penalty), `"accuracy"` for classification (the argmax of
    scores `(N, C)` against int ids or one-hot targets; for fnn's binary losses,
    the side of the threshold per label; see `_correct`), `"objective"` (loss +
    penalty) when a regularizer is given.

    With `jit=True` the `train_state` argument is donated: do not use it after
    the call, use the returned one.
    """
    _check_callables("make_train_step", loss, regularizer)
    check_optimizer("make_train_step", optimizer)
    accumulate = check_positive_int("make_train_step", "accumulate", accumulate)
    if mesh is not None:
        if not jit:
            raise ValueError("make_train_step: mesh= needs jit=True (the shardings are "
                             "those of the jitted step); drop jit=False or mesh=.")
        return distributed.make_train_step(model, loss, optimizer, mesh, regularizer,
                                           accumulate=accumulate, check_finite=check_finite)

    def objective(params, model_state, x, y, key):
        pred, new_state = model.apply(params, model_state, x, key=key, train=True)
        data_loss = loss(pred, y)
        _check_scalar("make_train_step", "loss (the batch mean)", data_loss)
        total = data_loss
        if regularizer is not None:
            penalty = regularizer(params)
            _check_scalar("make_train_step", "regularizer", penalty)
            total = total + penalty
        correct = _correct(pred, y, loss)
        acc = None if correct is None else jnp.mean(correct)
        return total, (data_loss, acc, new_state)

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def step(ts: TrainState, x, y):
        _check_step_args(ts, x, y)
        sub = jax.random.fold_in(ts.key, ts.opt_state.step)  # unused: XLA drops it
        params = ts.opt_state.params
        if accumulate == 1:
            (total, (data_loss, acc, model_state)), grads = grad_fn(
                params, ts.model_state, x, y, sub)
        else:
            n = x.shape[0]
            if n % accumulate:
                raise ValueError(
                    f"make_train_step: a batch of {n} examples cannot be split into "
                    f"accumulate={accumulate} equal micro-batches; use a batch size "
                    f"divisible by {accumulate}."
                )
            m = n // accumulate
            keys = jax.random.split(sub, accumulate)
            model_state, grads = ts.model_state, None
            totals, losses, accs = [], [], []
            for i in range(accumulate):  # unrolled on purpose, see the docstring
                sl = slice(i * m, (i + 1) * m)
                (t_i, (l_i, a_i, model_state)), g_i = grad_fn(
                    params, model_state, x[sl], y[sl], keys[i])
                grads = g_i if grads is None else jax.tree.map(jnp.add, grads, g_i)
                totals.append(t_i)
                losses.append(l_i)
                accs.append(a_i)
            grads = jax.tree.map(lambda g: g / accumulate, grads)
            total, data_loss = jnp.mean(jnp.stack(totals)), jnp.mean(jnp.stack(losses))
            acc = None if accs[0] is None else jnp.mean(jnp.stack(accs))
        opt_state, new_params = optimizer.update(ts.opt_state, grads)
        s = ts.lr_scale
        unscaled = s == 1.0
        scaled = jax.tree.map(
            lambda p, q: jnp.where(unscaled, q, (p + s.astype(p.dtype) * (q - p)).astype(p.dtype)),
            params, new_params)
        opt_state = opt_state._replace(params=scaled)
        metrics = {"loss": data_loss}
        if acc is not None:
            metrics["accuracy"] = acc
        if regularizer is not None:
            metrics["objective"] = total
        if check_finite:
            def bad(a):
                a = jnp.asarray(a)
                if not jnp.issubdtype(a.dtype, jnp.inexact):
                    return jnp.zeros((), bool)
                return ~jnp.all(jnp.isfinite(a))
            metrics["nonfinite"] = {
                "x": bad(x), "y": bad(y), "loss": bad(total),
                "grads": jax.tree.map(bad, grads),
            }
        return TrainState(opt_state, model_state, ts.key, ts.epoch, ts.lr_scale), metrics

    step.__doc__ = "step(train_state, x, y) -> (train_state, metrics); see make_train_step."
    if not jit:
        return step
    # on CPU, the options follow the program (fused.step_options); elsewhere plain jax.jit
    return compiler.jit(step, fused.step_options if compiler.options() else None,
                        donate_argnums=0)


def _train_step(model, loss, optimizer, regularizer, accumulate, check_finite, mesh=None,
                jit=True):
    return make_train_step(model, loss, optimizer, regularizer, accumulate=accumulate,
                           check_finite=check_finite, mesh=mesh, jit=jit)


def _auto_form(model, loss, optimizer, regularizer, accumulate, check_finite, x, y):
    """`fused.choose_form` for this step on batches shaped like `x`, `y`
    (`ShapeDtypeStruct`s): traced once per model, settings and batch shape."""
    key = jax.ShapeDtypeStruct((2,), jnp.uint32)
    ts = jax.eval_shape(_init_fn(model, optimizer, tuple(x.shape[1:])), key)
    step = _train_step(model, loss, optimizer, regularizer, accumulate, check_finite, jit=False)
    return fused.choose_form(step, ts, x, y)


def _fused_step(model, loss, optimizer, regularizer, accumulate, check_finite, form,
                mesh=None):
    if mesh is not None:
        return distributed.make_fused_train_step(
            model, loss, optimizer, mesh, form, regularizer, accumulate=accumulate,
            check_finite=check_finite)
    step = _train_step(model, loss, optimizer, regularizer, accumulate, check_finite, jit=False)
    return fused.make_fused_step(step, form)


# ---------------------------------------------------------------------------
# evaluation


def _eval_batch_size(where: str, batch_size, n: int, name: str = "batch_size") -> int:
    """A batch size for evaluation: any positive int (capped at n), or None for n."""
    return n if batch_size is None else min(check_positive_int(where, name, batch_size), n)


def _eval_fn(model: Layer, loss: Callable):
    def per_example_loss(pred, y):
        return jax.vmap(lambda p, t: loss(p[None], t[None]))(pred, y)

    def run(params, model_state, x, y, mask):
        pred, _ = model.apply(params, model_state, x, train=False)
        w = mask.astype(jnp.float32)
        sums = {"loss": jnp.sum(per_example_loss(pred, y).astype(jnp.float32) * w)}
        correct = _correct(pred, y, loss)
        if correct is not None:
            sums["accuracy"] = jnp.sum(correct * w)
        return sums

    return compiler.jit(run, compiler.options())


def _predict_fn(model: Layer):
    return compiler.jit(lambda params, state, x: model.apply(params, state, x, train=False)[0],
                        compiler.options())


def evaluate(model: Layer, params, model_state, loss: Callable, x, y,
             batch_size: int | None = 256) -> dict:
    """Mean loss (and accuracy, for classification) over a whole data set, `train=False`.

    Runs fixed-shape batches of `batch_size` (the last one padded, with a mask)
    so every example counts exactly once and one compiled program serves every
    batch. The loss of each example is `loss(pred[i:i+1], y[i:i+1])`, so the
    result equals `loss(pred, y)` on the whole set for every mean-over-batch
    loss. Returns `{"loss": float, "accuracy": float}` (accuracy only when it
    applies, by `make_train_step`'s rule). Sums are taken in float64 on the host.
    Int class ids in `y` are checked against the model's outputs first (for fnn's
    class-id losses): inside the compiled program an id out of range gives NaN.
    """
    n = _check_arrays("evaluate", (x, y))
    bs = _eval_batch_size("evaluate", batch_size, n)
    _check_class_ids("evaluate", "y", loss, _model_output(model, params, model_state, x), y)
    return _evaluate(model, params, model_state, loss, x, y, bs)


def _evaluate(model: Layer, params, model_state, loss: Callable, x, y, bs: int) -> dict:
    """`evaluate` on checked arguments (`fit` checks them once for every epoch)."""
    n = x.shape[0]
    fn = memoized(_eval_fn, model, loss)
    parts = [fn(params, model_state, xb, yb, mask)
             for (xb, yb), mask in iter_padded_batches((x, y), bs)]
    parts = jax.device_get(parts)
    return {k: float(math.fsum(float(p[k]) for p in parts) / n)
            for k in ("loss", "accuracy") if k in parts[0]}


def predict(model: Layer, params, model_state, x, batch_size: int | None = 256):
    """Model outputs for all of `x` (`train=False`), in fixed-shape padded batches.

    Returns a jax array `(N, *output_shape)`.
    """
    n = _check_arrays("predict", (x,))
    bs = _eval_batch_size("predict", batch_size, n)
    fn = memoized(_predict_fn, model)
    outs = [fn(params, model_state, xb)
            for (xb,), _ in iter_padded_batches((x,), bs)]
    return jnp.concatenate(outs, axis=0)[:n]


# ---------------------------------------------------------------------------
# epoch-level rules


def _mode(where: str, monitor: str, mode: str) -> str:
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    if mode not in ("min", "max"):
        raise ValueError(f"{where}: mode must be 'auto', 'min' or 'max', got {mode!r}.")
    return mode


class EarlyStopping(NamedTuple):
    """Stop when the monitored metric has not improved for `patience` epochs.

    **Fields:**
    - `patience`: epochs without improvement before stopping (0: stop at the
      first epoch that does not improve).
    - `min_delta`: an improvement must beat the best value by more than this.
    - `monitor`: a history key: `"val_loss"` (default; needs `val_data`),
      `"val_accuracy"`, `"loss"`, `"accuracy"`.
    - `mode`: `"auto"` (max for accuracies, min for losses), `"min"` or `"max"`.
    - `restore_best`: when `fit` returns, the params and model state are those
      of the best epoch (the optimizer slots stay those of the last epoch).

    Keras's `EarlyStopping(restore_best_weights=True)` restores only when it
    stops early; here the best epoch is restored whenever `fit` returns.
    """

    patience: int = 10
    min_delta: float = 0.0
    monitor: str = "val_loss"
    mode: str = "auto"
    restore_best: bool = True


def _check_early_stopping(where: str, rule) -> str:
    """Validate an `EarlyStopping`'s fields; return its resolved mode ("min"/"max")."""
    if not isinstance(rule, EarlyStopping):
        raise TypeError(f"{where}: early_stopping must be a fnn.train.EarlyStopping, "
                        f"got {type(rule).__name__}.")
    if not isinstance(rule.monitor, str):
        raise TypeError(f"EarlyStopping: monitor must be a history key such as 'val_loss', "
                        f"got {rule.monitor!r}.")
    if isinstance(rule.patience, bool) or not isinstance(rule.patience, (int, np.integer)) \
            or rule.patience < 0:
        raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {rule.patience!r}.")
    check_number("EarlyStopping", "min_delta", rule.min_delta, low=0.0)
    check_flag("EarlyStopping", "restore_best", rule.restore_best)
    return _mode("EarlyStopping", rule.monitor, rule.mode)


def _improved(value: float, best: float, mode: str, min_delta: float) -> bool:
    if not math.isfinite(value):
        return False
    if not math.isfinite(best):
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


class PlateauState(NamedTuple):
    """State of `reduce_on_plateau`.

    - `best`: float32 scalar, best monitored value so far (+inf / -inf at start).
    - `wait`: int32 scalar, epochs since the last improvement (or reduction).
    - `scale`: float32 scalar, the factor multiplying the learning rate.
    """

    best: jax.Array
    wait: jax.Array
    scale: jax.Array


class ReduceOnPlateau(NamedTuple):
    """A plateau rule: `init() -> PlateauState`, `update(state, metric) -> state`.

    `monitor` names the history entry `fit` feeds to `update` each epoch.
    """

    init: Callable
    update: Callable
    monitor: str


def reduce_on_plateau(factor: float = 0.1, patience: int = 10, min_delta: float = 0.0, *,
                      min_scale: float = 0.0, monitor: str = "val_loss",
                      mode: str = "auto") -> ReduceOnPlateau:
    """Multiply the learning rate by `factor` after `patience` epochs without improvement.

    A pure transform (jittable): `state = rule.update(state, metric)` once per
    epoch; `state.scale` is the learning-rate multiplier, starting at 1.0:

        improved = metric < best - min_delta        (mode "min"; "max" mirrors it)
        best     = metric if improved else best
        wait     = 0 if improved else wait + 1
        if wait >= patience: scale = max(scale * factor, min_scale); wait = 0

    **How the scale reaches the learning rate.** `fit(..., reduce_lr=rule)`
    stores `state.scale` in `TrainState.lr_scale`, and the train step applies
    `p ← p + lr_scale·(p_opt − p)`: the optimizer's own update, shortened. For
    every fnn optimizer (SGD, momentum, Adam, AdamW, RMSProp, ...) the update is
    linear in the learning rate, so this is the update with `lr_scale·lr`,
    whatever schedule produced `lr`; the optimizer's slots are untouched.
    (Keras's `ReduceLROnPlateau` with `cooldown=0` behaves the same way.)
    """
    factor = float(factor)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"reduce_on_plateau: factor must be in (0, 1), got {factor}.")
    if isinstance(patience, bool) or int(patience) != patience or patience < 0:
        raise ValueError(f"reduce_on_plateau: patience must be an int >= 0, got {patience!r}.")
    if min_delta < 0 or min_scale < 0:
        raise ValueError(
            f"reduce_on_plateau: min_delta and min_scale must be >= 0, got "
            f"{min_delta} and {min_scale}."
        )
    sign = 1.0 if _mode("reduce_on_plateau", monitor, mode) == "min" else -1.0
    patience = int(patience)

    def init() -> PlateauState:
        return PlateauState(jnp.asarray(jnp.inf, jnp.float32), jnp.zeros((), jnp.int32),
                            jnp.ones((), jnp.float32))

    def update(state: PlateauState, metric) -> PlateauState:
        v = sign * jnp.asarray(metric, jnp.float32)
        improved = v < state.best - min_delta
        best = jnp.where(improved, v, state.best)
        wait = jnp.where(improved, 0, state.wait + 1).astype(jnp.int32)
        reduce = wait >= patience
        scale = jnp.where(reduce, jnp.maximum(state.scale * factor, min_scale), state.scale)
        wait = jnp.where(reduce, 0, wait).astype(jnp.int32)
        return PlateauState(best, wait, scale.astype(jnp.float32))

    return ReduceOnPlateau(init, update, monitor)


# ---------------------------------------------------------------------------
# fit


@jax.jit
def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)
              if jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def _first_nonfinite(where: str, name: str, a) -> None:
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.inexact):
        return
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1) if a.ndim else ~np.isfinite(a)
    if np.any(bad):
        i = int(np.argmax(bad))
        value = a[i].reshape(-1)[~np.isfinite(a[i].reshape(-1))][0]
        raise ValueError(
            f"{where}: {name} has non-finite values ({value}) in {int(np.sum(bad))} "
            f"example(s), the first at index {i}; clean or impute the data before training."
        )


def _progress_bar(show, total: int, desc: str):
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # no tqdm: train without a bar
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=show != "transient",
                dynamic_ncols=True, file=sys.stderr)


def fit(model: Layer, optimizer, loss: Callable, train_data, *, epochs: int,
        batch_size: int | None, key, val_data=None, metrics=("loss", "accuracy"),
        regularizer: Callable | None = None, early_stopping: EarlyStopping | None = None,
        checkpoint_dir=None, progress: bool | str = True, check_finite: bool = False,
        input_shape=None, accumulate: int = 1, reduce_lr: ReduceOnPlateau | None = None,
        eval_batch_size: int = 256, keep_checkpoints: int = 3,
        on_epoch_end: Callable | None = None, mesh=None, steps_per_call: int = 1,
        fused_form: str = "auto"):
    """Train `model` with `optimizer` on `train_data = (x, y)`; returns `(train_state, history)`.

    **Arguments:**
    - `model`: a `fnn.Layer`; new params come from `model.init(init_key, input_shape)`
      with `input_shape = x.shape[1:]` unless given.
    - `optimizer`: a `fnn.optim.Optimizer`; `loss(pred, y) -> scalar` (`fnn.losses`).
    - `epochs`: the total number of epochs of the run (a resumed run continues
      up to it; a run already past it is returned as saved).
    - `batch_size`: `None` = the whole set per step (batch gradient descent),
      `1` = SGD, `n` = mini-batches of `n`. Each epoch is reshuffled on the
      device and the ragged last `N % n` examples are dropped (a different tail
      each epoch), so the jitted step is traced once for the whole run.
    - `key`: PRNG key of the run (ignored when resuming from a checkpoint).
    - `val_data`: `(x_val, y_val)`, evaluated after every epoch with `train=False`.
    - `metrics`: which of `"loss"`, `"accuracy"` go into the history (accuracy
      only for classification, by `make_train_step`'s rule: the argmax of scores
      `(N, C)` against int ids or one-hot targets, or for fnn's binary losses the
      side of the threshold per label). Int class ids in `y` (and `val_data`'s)
      are checked against the model's outputs before training, for fnn's
      class-id losses.
    - `regularizer(params) -> scalar`: added to the loss that is differentiated;
      the reported `"loss"` is the data loss alone.
    - `early_stopping`: an `EarlyStopping`.
    - `checkpoint_dir`: save `TrainState`, history and config there after every
      epoch (`fnn.checkpoint.CheckpointManager`, the last `keep_checkpoints`
      kept; None keeps all) and, if it already holds checkpoints, resume from the
      latest: the result is bit-identical to an uninterrupted run. A resume must
      keep the model, the optimizer's kind (its state layout), `batch_size`, `accumulate`,
      `early_stopping`, `reduce_lr`, `metrics`, `val_data` (given or not) and kind of
      loss, so that every history list stays one entry per epoch (`ValueError`
      otherwise). The optimizer's hyperparameters may change (e.g. a lower learning
      rate to fine-tune); the run then continues with the new ones.
    - `progress`: show a tqdm bar per epoch on stderr (step, running loss,
      examples/s; at the end of the epoch its metrics); it stays off when stderr
      is not a terminal or tqdm is not installed. `"transient"` erases each
      bar when its epoch ends (for callers that print their own epoch line).
    - `check_finite`: check the data for NaN/Inf before training (naming the
      first bad example) and every step's inputs, loss and gradients (naming
      the first non-finite gradient leaf). Off by default: it adds a reduction
      per gradient leaf to every step. Without it, a non-finite loss still stops
      training (see Errors).
    - `accumulate`: gradient accumulation over this many micro-batches per step.
    - `reduce_lr`: a `reduce_on_plateau(...)` rule, fed `history[rule.monitor]`.
    - `eval_batch_size`: batch size of the validation pass.
    - `on_epoch_end(epoch, logs)`: called after each epoch with the 1-based epoch
      number and that epoch's metrics (plus `"time"` in seconds).
    - `mesh`: a `jax.sharding.Mesh` from `fnn.distributed.make_mesh()`: train
      data-parallel on its devices (each batch split along `"data"`, params and
      optimizer state replicated, gradients all-reduced by XLA; see
      `fnn.distributed`). The results equal those without a mesh up to float32
      rounding, and checkpoints are interchangeable. `batch_size` is the global
      batch and must be a multiple of the number of devices on `"data"`
      (`ValueError` otherwise). Validation runs replicated on every device.
    - `steps_per_call`: run this many training steps per compiled call
      (`fnn.fused.make_fused_step`), which saves a Python dispatch per step; an
      epoch's last `steps % steps_per_call` steps run one by one. The results
      equal single steps up to float rounding. With `mesh`, the fused calls are
      data-parallel too (`fnn.distributed.make_fused_train_step`).
    - `fused_form`: `"auto"` (default: `fnn.fused.choose_form` — single steps
      when the step contains a convolution on the CPU backend, where a scanned
      convolution gradient is several times slower; `lax.scan` otherwise),
      `"scan"`, `"unroll"` or `"single"`. The form used is recorded in the
      checkpoint config as `"fused_form"`.

    **History** maps `"loss"`, `"accuracy"`, `"val_loss"`, `"val_accuracy"` (as
    requested and applicable) to per-epoch lists of Python floats; `"loss"` and
    `"accuracy"` are averages over the epoch's training steps (`train=True`).
    `"lr"` records the learning rate of each epoch's last update (times the
    plateau scale) and `"lr_scale"` appears when `reduce_lr` is given.

    **Errors.** If the training loss (or, after an epoch, any parameter) becomes
    NaN or infinite, `fit` raises `FloatingPointError` naming the epoch and
    step; nothing is saved for that epoch, so the last checkpoint stays the last
    good one.
    """
    where = "fit"
    if not isinstance(model, Layer):
        raise TypeError(f"{where}: model must be a fnn.Layer, got {type(model).__name__}.")
    check_optimizer(where, optimizer)
    _check_callables(where, loss, regularizer)
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 1:
        raise ValueError(f"{where}: epochs must be a positive int, got {epochs!r}.")
    epochs = int(epochs)
    if not isinstance(train_data, (tuple, list)) or len(train_data) != 2:
        raise TypeError(
            f"{where}: train_data must be a pair (x, y), got {type(train_data).__name__}.")
    x, y = train_data
    n = _check_arrays(f"{where} (train_data)", (x, y))
    bs = _check_batch_size(where, batch_size, n)
    accumulate = check_positive_int(where, "accumulate", accumulate)
    if bs % accumulate:
        raise ValueError(
            f"{where}: accumulate must be a positive divisor of the batch size {bs}, "
            f"got {accumulate}."
        )
    steps = n // bs
    if mesh is not None:
        distributed._check_mesh(f"{where} (mesh)", mesh)
        distributed._check_batch(f"{where} (batch_size)", mesh, bs)
    steps_per_call = check_positive_int(where, "steps_per_call", steps_per_call)
    if fused_form not in fused.FORMS:
        raise ValueError(f"{where}: unknown fused_form {fused_form!r}; expected one of "
                         f"{list(fused.FORMS)}.")
    metrics = _check_metrics(where, metrics)
    check_finite = check_flag(where, "check_finite", check_finite)
    if on_epoch_end is not None and not callable(on_epoch_end):
        raise TypeError(f"{where}: on_epoch_end must be None or a callable "
                        f"on_epoch_end(epoch, logs), got {on_epoch_end!r}.")
    if progress not in (True, False, "transient"):
        raise ValueError(f"{where}: progress must be True, False or 'transient', got {progress!r}.")
    if val_data is not None:
        if not isinstance(val_data, (tuple, list)) or len(val_data) != 2:
            raise TypeError(f"{where}: val_data must be a pair (x, y) or None.")
        n_val = _check_arrays(f"{where} (val_data)", tuple(val_data))
        val_bs = _eval_batch_size(where, eval_batch_size, n_val, "eval_batch_size")
    if early_stopping is not None:
        es_mode = _check_early_stopping(where, early_stopping)
    for rule, what in ((early_stopping, "early_stopping"), (reduce_lr, "reduce_lr")):
        if rule is None:
            continue
        mon = rule.monitor
        if mon.startswith("val_") and val_data is None:
            raise ValueError(
                f"{where}: {what} monitors {mon!r} but no val_data was given; pass "
                f"val_data=(x_val, y_val) or monitor='{mon[4:]}'."
            )
        if mon.removeprefix("val_") not in _METRICS:
            raise ValueError(
                f"{where}: {what} monitors unknown metric {mon!r}; expected one of "
                "'loss', 'accuracy', 'val_loss', 'val_accuracy'."
            )
        if mon.removeprefix("val_") not in metrics:
            raise ValueError(
                f"{where}: {what} monitors {mon!r} but metrics={metrics} does not record it."
            )
    if checkpoint_dir is not None and not isinstance(checkpoint_dir, (str, os.PathLike)):
        raise TypeError(f"{where}: checkpoint_dir must be None or a folder path (a str or "
                        f"os.PathLike), got {checkpoint_dir!r}.")
    if keep_checkpoints is not None:      # None keeps them all (CheckpointManager's keep)
        keep_checkpoints = check_positive_int(where, "keep_checkpoints", keep_checkpoints)
    if check_finite:
        _first_nonfinite(where, "train_data x", x)
        _first_nonfinite(where, "train_data y", y)
        if val_data is not None:
            _first_nonfinite(where, "val_data x", val_data[0])
            _first_nonfinite(where, "val_data y", val_data[1])

    shape = tuple(x.shape[1:]) if input_shape is None else check_input_shape(
        where, input_shape, "(d1, ..., dk)")
    ts = init_train_state(model, optimizer, _raw_key(where, key), shape)
    if regularizer is not None:  # before tracing the step, so the error names fit
        _check_scalar(where, "regularizer", jax.eval_shape(regularizer, ts.opt_state.params))
    pred = _model_output(model, ts.opt_state.params, ts.model_state, x)
    _check_class_ids(where, "train_data's y", loss, pred, y)
    if val_data is not None:
        _check_class_ids(where, "val_data's y", loss, pred, val_data[1])
    for rule, what in ((early_stopping, "early_stopping"), (reduce_lr, "reduce_lr")):
        if rule is not None and rule.monitor.endswith("accuracy"):
            _check_accuracy_applies(where, f"{what} monitors {rule.monitor!r}", loss, pred, y)
    # metrics and val_data decide the history's keys: a resume must keep them (aligned lists)
    config = {"batch_size": bs, "steps_per_epoch": steps, "num_examples": n,
              "accumulate": accumulate, "input_shape": list(shape),
              "metrics": [m for m in _METRICS if m in metrics],
              "val_data": None if val_data is None else "(x, y)"}
    history: dict[str, list[float]] = {}
    es: dict | None = None
    if early_stopping is not None:
        es = {"best": np.asarray(np.inf if es_mode == "min" else -np.inf),
              "best_epoch": np.asarray(0, np.int32), "wait": np.asarray(0, np.int32),
              "params": _fresh(ts.opt_state.params), "model_state": _fresh(ts.model_state)}
    plateau = None if reduce_lr is None else reduce_lr.init()
    stopped = False

    manager = None
    if checkpoint_dir is not None:
        from fnn.checkpoint import CheckpointManager

        try:
            manager = CheckpointManager(checkpoint_dir, keep=keep_checkpoints)
        except (FileExistsError, NotADirectoryError):
            raise ValueError(f"{where}: checkpoint_dir must be a folder path (created if "
                             f"missing), got {os.fspath(checkpoint_dir)!r}, which is or lies "
                             "under an existing file.") from None
        latest = manager.latest()
        if latest is not None:
            like = _ckpt_tree(ts, es, plateau)
            tree, meta = _restore(manager, latest, like, checkpoint_dir)
            saved = meta.get("config", {})
            for k in ("batch_size", "num_examples", "accumulate", "metrics", "val_data"):
                if k in saved and saved[k] != config[k]:
                    raise ValueError(
                        f"{where}: the checkpoint in {checkpoint_dir} was written with "
                        f"{k}={saved[k]}, this call has {k}={config[k]}; resume with the "
                        "same settings or use a new checkpoint_dir."
                    )
            ts = _fresh(tree["train_state"])
            es = tree.get("early_stopping")
            plateau = tree.get("plateau")
            history = {k: [float(v) for v in vs] for k, vs in meta.get("history", {}).items()}
            stopped = bool(meta.get("stopped", False))

    step_key = (model, loss, optimizer, regularizer, accumulate, check_finite)
    step_fn = memoized(_train_step, *step_key, mesh)
    x_dev, y_dev = jnp.asarray(x), jnp.asarray(y)
    fused_fn, form = None, "single"
    if steps_per_call > 1:
        form = fused_form
        if form == "auto":
            batch = [jax.ShapeDtypeStruct((bs, *a.shape[1:]), a.dtype) for a in (x_dev, y_dev)]
            form = memoized(_auto_form, *step_key, *batch)
        if form != "single":
            fused_fn = memoized(_fused_step, *step_key, form, mesh)
    config["fused_form"] = form
    if mesh is not None:  # state replicated (or split on a "model" axis), data replicated
        ts = distributed.shard_model(mesh, ts)
        x_dev, y_dev = distributed.replicate(mesh, (x_dev, y_dev))
    show = progress if progress and sys.stderr.isatty() else False

    epoch = int(ts.epoch)
    while epoch < epochs and not stopped:
        t0 = time.perf_counter()
        run_key, shuffle_key = jax.random.split(ts.key)
        ts = ts._replace(key=run_key)
        bar = _progress_bar(show, steps, f"epoch {epoch + 1}/{epochs}")
        try:
            xb, yb = epoch_batches(shuffle_key, (x_dev, y_dev), bs)
            if mesh is not None:  # every batch split along "data"
                xb, yb = distributed._shard_epoch(mesh, (xb, yb))
            ts, sums = _run_epoch(step_fn, fused_fn, steps_per_call, ts, xb, yb, bar,
                                  steps=steps, bs=bs, epoch=epoch,
                                  epochs=epochs, check_finite=check_finite,
                                  checkpoint_dir=checkpoint_dir, t0=t0)
            del xb, yb

            if not bool(_all_finite((ts.opt_state.params, ts.model_state))):
                raise FloatingPointError(_nan_message(
                    "a parameter or model-state value became non-finite", epoch, epochs,
                    steps - 1, steps, checkpoint_dir, check_finite))

            logs = {k: sums[k] / steps for k in ("loss", "accuracy")
                    if k in sums and k in metrics}
            if val_data is not None:
                val = _evaluate(model, ts.opt_state.params, ts.model_state, loss,
                                val_data[0], val_data[1], val_bs)
                logs.update({f"val_{k}": v for k, v in val.items() if k in metrics})
            epoch += 1
            ts = ts._replace(epoch=jnp.asarray(epoch, jnp.int32))

            if bar is not None:  # the bar's last state is the epoch's record
                bar.set_postfix_str(_format_logs(logs), refresh=False)
        except FloatingPointError as e:
            if not np.issubdtype(x.dtype, np.integer):
                raise
            raise FloatingPointError(
                f"{e} Also: x holds integer ids, and inside the jitted step an id outside an "
                f"Embedding's vocabulary gives NaN instead of an error (x ranges from "
                f"{int(np.min(x))} to {int(np.max(x))})."
            ) from None
        finally:
            if bar is not None:
                bar.close()

        if es is not None:
            value = _monitored(logs, early_stopping.monitor)
            if _improved(value, float(es["best"]), es_mode, early_stopping.min_delta):
                es = {"best": np.asarray(value), "best_epoch": np.asarray(epoch, np.int32),
                      "wait": np.asarray(0, np.int32),
                      "params": _fresh(ts.opt_state.params),
                      "model_state": _fresh(ts.model_state)}
            else:
                es = dict(es, wait=np.asarray(int(es["wait"]) + 1, np.int32))
                stopped = int(es["wait"]) >= early_stopping.patience
        lr = getattr(ts.opt_state, "lr", None)
        if lr is not None:  # the learning rate of the epoch's last update
            logs["lr"] = float(lr) * float(ts.lr_scale)
        if plateau is not None:
            plateau = reduce_lr.update(plateau, _monitored(logs, reduce_lr.monitor))
            ts = ts._replace(lr_scale=jnp.array(plateau.scale, jnp.float32, copy=True))
            logs["lr_scale"] = float(plateau.scale)
        if history and set(logs) != set(history):  # e.g. resumed with another kind of loss
            raise ValueError(
                f"{where}: epoch {epoch} records {sorted(logs)}, but the history resumed from "
                f"{checkpoint_dir} has {sorted(history)}; resume with the same loss, metrics "
                "and val_data as the run that wrote it, or use a new checkpoint_dir. Nothing "
                "was saved for this epoch."
            )
        for k, v in logs.items():
            history.setdefault(k, []).append(float(v))

        if manager is not None:
            manager.save(epoch, _ckpt_tree(ts, es, plateau),
                         metadata={"format": "fnn.train.fit/1", "epoch": epoch,
                                   "history": history, "config": config,
                                   "stopped": stopped})
        if on_epoch_end is not None:
            on_epoch_end(epoch, dict(logs, time=time.perf_counter() - t0))

    if es is not None and early_stopping.restore_best and int(es["best_epoch"]) > 0:
        ts = ts._replace(
            opt_state=ts.opt_state._replace(params=jax.tree.map(jnp.asarray, es["params"])),
            model_state=jax.tree.map(jnp.asarray, es["model_state"]))
    return ts, history


def _run_epoch(step_fn, fused_fn, k, ts, xb, yb, bar, *, steps, bs, epoch, epochs,
               check_finite, checkpoint_dir, t0):
    """Run one epoch of steps; return the new state and the summed step metrics.

    With `fused_fn`, `k` steps per call (`fnn.fused.make_fused_step`), the
    remainder one by one with `step_fn`. Each call's metrics are read while the
    next call runs (one call of lag), so the host never stalls the device; the
    loss of every step is checked.
    """
    sums: dict[str, float] = {}

    def consume_one(m, i):
        value = float(m["loss"])
        if check_finite:
            _report_nonfinite(m["nonfinite"], epoch, epochs, i, steps, checkpoint_dir)
        if not math.isfinite(value):
            raise FloatingPointError(_nan_message(
                f"the training loss became {value}", epoch, epochs, i, steps,
                checkpoint_dir, check_finite))
        for key, v in m.items():
            if key != "nonfinite":
                sums[key] = sums.get(key, 0.0) + float(v)
        if bar is not None:
            done = i + 1
            bar.update(1)
            rate = done * bs / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix_str(f"loss {sums['loss'] / done:.4f}, {rate:,.0f} ex/s",
                                refresh=False)

    def consume(call):
        m, first, count = call
        m = jax.device_get(m)
        if count == 1:
            consume_one(m, first)
            return
        for j in range(count):
            consume_one(jax.tree.map(lambda a, j=j: a[j], m), first + j)

    pending, i = None, 0
    while i < steps:
        if fused_fn is not None and i + k <= steps:
            ts, m = fused_fn(ts, xb[i:i + k], yb[i:i + k])
            count = k
        else:
            ts, m = step_fn(ts, xb[i], yb[i])
            count = 1
        if pending is not None:  # read the previous call while this one runs
            consume(pending)
        pending = (m, i, count)
        i += count
    consume(pending)
    return ts, sums


def _format_logs(logs: dict) -> str:
    """`loss 0.1234, acc 0.9650, val_loss ...` for a progress bar."""
    return ", ".join(f"{k.replace('accuracy', 'acc')} {v:.4f}" for k, v in logs.items()
                     if k in ("loss", "accuracy", "val_loss", "val_accuracy"))


def _monitored(logs: dict, monitor: str) -> float:
    if monitor not in logs:
        raise ValueError(
            f"fit: the monitored metric {monitor!r} is not recorded (recorded: "
            f"{sorted(logs)}); add it to metrics= or monitor another one."
        )
    return float(logs[monitor])


def _ckpt_tree(ts: TrainState, es, plateau) -> dict:
    tree = {"train_state": ts}
    if es is not None:
        tree["early_stopping"] = es
    if plateau is not None:
        tree["plateau"] = plateau
    return tree


def _restore(manager, step: int, like, checkpoint_dir):
    """(tree, metadata) of checkpoint `step`, validated against `like`."""
    try:
        tree = manager.restore(step, like=like)
    except ValueError as e:
        raise ValueError(
            f"fit: cannot resume from {checkpoint_dir}: {e} Resume with the same model, "
            "optimizer, early_stopping and reduce_lr as the run that wrote it, or use a new "
            "checkpoint_dir."
        ) from None
    return tree, manager.load_metadata(step)


def _nan_message(what: str, epoch: int, epochs: int, i: int, steps: int, checkpoint_dir,
                 check_finite: bool) -> str:
    msg = (f"fit: {what} at epoch {epoch + 1}/{epochs}, step {i + 1}/{steps} "
           "(1-based); training stopped.")
    if checkpoint_dir is not None and epoch > 0:  # every completed epoch was saved
        msg += (f" Nothing was saved for this epoch: the latest checkpoint in "
                f"{checkpoint_dir} (epoch {epoch}) is the last good one.")
    elif checkpoint_dir is not None:
        msg += f" No checkpoint was saved in {checkpoint_dir}: no epoch completed."
    msg += " Try a smaller learning rate, gradient clipping"
    msg += (", or check_finite=True to find where NaN/Inf first appear." if not check_finite
            else ".")
    return msg


def _report_nonfinite(flags, epoch, epochs, i, steps, checkpoint_dir) -> None:
    if flags["x"] or flags["y"]:
        which = "x" if flags["x"] else "y"
        raise FloatingPointError(_nan_message(
            f"check_finite: the input batch {which} holds NaN/Inf", epoch, epochs, i, steps,
            checkpoint_dir, True))
    if flags["loss"]:
        raise FloatingPointError(_nan_message(
            "check_finite: the loss became NaN/Inf (inputs were finite)", epoch, epochs, i,
            steps, checkpoint_dir, True))
    bad = [_path(p) for p, v in jax.tree_util.tree_flatten_with_path(flags["grads"])[0]
           if bool(v)]
    if bad:
        raise FloatingPointError(_nan_message(
            f"check_finite: non-finite gradients (loss finite) in {len(bad)} leaf/leaves, "
            f"first params{bad[0]}", epoch, epochs, i, steps, checkpoint_dir, True))
