"""The training step: `train_step` builds it pure, `compile_step` jits it, and
`make_train_step` does both.

One step, for `train_state = ts` and a batch `(x, y)`:

    key              = fold_in(ts.key, ts.opt_state.step)          (fnn.train.state)
    pred, state      = model.apply(params, ts.model_state, x, key=key, train=True)
    objective        = loss(pred, y) + regularizer(params)
    opt_state, _     = optimizer.update(ts.opt_state, ∇_params objective)
    then every per-step rule, in order: (rule_state, ts, info) = rule.update(...)

The learning rate is the optimizer's: `schedule(step) · opt_state.lr_scale`, so a
rule that lowers it (`reduce_on_plateau`, a user's rule) acts where the rate is
used (`fnn.optim.set_lr_scale`).
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from fnn import augment as augmentation
from fnn import compiler, distributed, fused
from fnn import precision as precision_lib
from fnn._checks import BadType, BadValue, named, positive_int
from fnn.core import Layer
from fnn.metrics import accuracy_rule
from fnn.optim.base import an_optimizer
from fnn.train.rules import StepInfo, step_rules
from fnn.train.state import TrainState, step_key

__all__ = [
    "require_scalar", "require_callables", "train_step", "compile_step", "make_train_step",
]


def require_scalar(what: str, value) -> None:
    """`value` (an array or a ShapeDtypeStruct) must be a scalar: it is differentiated."""
    if jnp.shape(value) != ():
        raise BadValue(f"{what} must return a scalar, got shape {tuple(jnp.shape(value))}.")


def require_callables(loss, regularizer) -> None:
    """`loss` must be callable, `regularizer` None or callable."""
    if not callable(loss):
        raise BadType(f"loss must be a callable loss(pred, y), got {loss!r}.")
    if regularizer is not None and not callable(regularizer):
        raise BadType(f"regularizer must be None or a callable regularizer(params) -> scalar "
                      f"(e.g. lambda p: fnn.regularizers.l2(p, 1e-4)), got {regularizer!r}.")


def _state_and_batch(ts, x, y, rules: tuple) -> None:
    """Trace-time checks of a step's arguments: the state's type and rules, equal batch sizes."""
    if not isinstance(ts, TrainState):
        raise TypeError(
            f"make_train_step's step: expected the TrainState from init_train_state (or the "
            f"one the previous step returned) as its first argument, got {type(ts).__name__}.")
    if len(ts.rules) != len(rules):
        raise ValueError(
            f"make_train_step's step: the step runs {len(rules)} per-step rule(s) but the "
            f"train state holds {len(ts.rules)} rule state(s); build the state with "
            "init_train_state(..., rules=the same rules).")
    nx, ny = (jnp.shape(a)[0] if getattr(a, "ndim", 0) else None for a in (x, y))
    if nx is not None and ny is not None and nx != ny:
        raise ValueError(f"make_train_step's step: x has {nx} examples but y has {ny}; "
                         "x and y must have the same batch size.")


def _nonfinite(x, y, total, grads) -> dict:
    """Flags for non-finite values in the inputs, the objective and each gradient leaf."""
    def bad(a):
        a = jnp.asarray(a)
        if not jnp.issubdtype(a.dtype, jnp.inexact):
            return jnp.zeros((), bool)
        return ~jnp.all(jnp.isfinite(a))

    return {"x": bad(x), "y": bad(y), "loss": bad(total), "grads": jax.tree.map(bad, grads)}


def train_step(model: Layer, loss: Callable, optimizer, regularizer: Callable | None = None,
               *, accumulate: int = 1, check_finite: bool = False, rules=(),
               augment: Callable | None = None, precision=None) -> Callable:
    """The pure step `step(train_state, x, y) -> (train_state, metrics)`, not jitted
    (arguments unchecked: `make_train_step` checks them; see its docstring)."""
    accuracy = accuracy_rule(loss)     # how this loss counts a correct prediction
    rules = tuple(rules)
    policy = None if precision is None else precision_lib.as_policy(precision)
    if policy is not None:
        model = precision_lib.apply_policy(model, policy)
        if policy.loss_scale is not None:
            optimizer = precision_lib.scaled(optimizer, policy.loss_scale)
    to_loss = (lambda pred: pred) if policy is None else (
        lambda pred: precision_lib.cast_floating(pred, jnp.float32))  # losses in float32

    def objective(params, model_state, x, y, key, scale):
        pred, new_state = model.apply(params, model_state, x, key=key, train=True)
        data_loss = loss(to_loss(pred), y)
        require_scalar("loss (the batch mean)", data_loss)
        total = data_loss
        if regularizer is not None:
            penalty = regularizer(params)
            require_scalar("regularizer", penalty)
            total = total + penalty
        correct = None if accuracy is None else accuracy.correct(pred, y)
        acc = None if correct is None else jnp.mean(correct)
        scaled = total if scale is None else total.astype(jnp.float32) * scale
        return scaled, (total, data_loss, acc, new_state)

    grad_fn = jax.value_and_grad(objective, has_aux=True)

    def gradients(ts: TrainState, x, y, key):
        """`(objective, data loss, accuracy, model state, grads)`, the micro-batches
        (`accumulate > 1`) unrolled in Python, not a `lax.scan`: on XLA:CPU a
        convolution's weight gradient inside a scan body compiles into a much slower
        loop (see `make_train_step`)."""
        params = ts.opt_state.params      # an unused key: XLA drops it
        scale = loss_scale(ts)
        if accumulate == 1:
            (_, (total, data_loss, acc, model_state)), grads = grad_fn(
                params, ts.model_state, x, y, key, scale)
            return total, data_loss, acc, model_state, grads
        n = x.shape[0]
        if n % accumulate:
            raise ValueError(f"make_train_step: a batch of {n} examples cannot be split into "
                             f"accumulate={accumulate} equal micro-batches; use a batch size "
                             f"divisible by {accumulate}.")
        m, keys = n // accumulate, jax.random.split(key, accumulate)
        model_state, grads, parts = ts.model_state, None, []
        for i in range(accumulate):
            sl = slice(i * m, (i + 1) * m)
            (_, (t_i, l_i, a_i, model_state)), g_i = grad_fn(
                params, model_state, x[sl], y[sl], keys[i], scale)
            grads = g_i if grads is None else jax.tree.map(jnp.add, grads, g_i)
            parts.append((t_i, l_i, a_i))
        total, data_loss, acc = (None if v[0] is None else jnp.mean(jnp.stack(v))
                                 for v in zip(*parts))
        return total, data_loss, acc, model_state, jax.tree.map(lambda g: g / accumulate, grads)

    def loss_scale(ts: TrainState):
        """The loss scale `S` of this step (None without loss scaling)."""
        if policy is None or policy.loss_scale is None:
            return None
        if not hasattr(ts.opt_state, "loss_scale"):
            raise ValueError(
                "make_train_step's step: the policy scales the loss, but the train state's "
                f"optimizer state ({type(ts.opt_state).__name__}) holds no loss scale; build "
                "it with init_train_state(..., precision=the same policy).")
        return ts.opt_state.loss_scale.scale

    @named("make_train_step")
    def step(ts: TrainState, x, y):
        _state_and_batch(ts, x, y, rules)
        key = step_key(ts)
        if augment is not None:  # the model's key stays step_key(ts) when there is none
            aug_key, key = jax.random.split(key)
            x, y = augmentation.apply(augment, aug_key, x, y)
        total, data_loss, acc, model_state, grads = gradients(ts, x, y, key)
        opt_state, _ = optimizer.update(ts.opt_state, grads)
        if loss_scale(ts) is not None:  # a skipped step keeps the BatchNorm statistics too
            finite = opt_state.loss_scale.skipped == ts.opt_state.loss_scale.skipped
            model_state = jax.tree.map(lambda a, b: jnp.where(finite, a, b), model_state,
                                       ts.model_state)
        metrics = {"loss": data_loss}
        if loss_scale(ts) is not None:
            metrics["skipped"] = (~finite).astype(jnp.float32)
        if acc is not None:
            metrics["accuracy"] = acc
        if regularizer is not None:
            metrics["objective"] = total
        if check_finite:
            metrics["nonfinite"] = _nonfinite(x, y, total, grads)
        ts = ts._replace(opt_state=opt_state, model_state=model_state)
        if not rules:
            return ts, metrics
        states, info = list(ts.rules), StepInfo(grads, metrics, jnp.zeros((), bool))
        for i, r in enumerate(rules):
            states[i], ts, info = r.update(states[i], ts, info)
        return ts._replace(rules=tuple(states)), dict(info.metrics, stop=info.stop)

    step.__doc__ = "step(train_state, x, y) -> (train_state, metrics); see make_train_step."
    return step


def compile_step(step: Callable, mesh=None) -> Callable:
    """`step` jitted with its `train_state` donated: with `mesh`, data-parallel
    (`fnn.distributed.data_parallel`); otherwise on one device, with fnn's XLA options
    on the CPU chosen from the program (`fnn.fused.step_options`)."""
    if mesh is not None:
        return distributed.data_parallel(step, mesh)
    return compiler.jit(step, fused.step_options if compiler.options() else None,
                        donate_argnums=0)


@named("make_train_step")
def make_train_step(model: Layer, loss: Callable, optimizer, regularizer: Callable | None = None,
                    *, accumulate: int = 1, check_finite: bool = False, jit: bool = True,
                    mesh=None, rules=(), augment: Callable | None = None, precision=None):
    """Build `step(train_state, x, y) -> (train_state, metrics)`.

    One step: take the dropout key `fold_in(train_state.key, opt_state.step)`, run
    `model.apply(params, model_state, x, key=dropout_key, train=True)`, take the
    gradient of `loss(pred, y) + regularizer(params)`, apply the optimizer (its
    learning rate scaled by `opt_state.lr_scale`), then the per-step `rules`.

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
      gradient inside a scan body is compiled into a much slower loop, and the gap
      grows with the convolution size (see benchmarks/RESULTS.md, "Measurements
      quoted from docstrings"). Unrolling costs compile time proportional to
      `accumulate`; keep it small (2-16).
    - `check_finite`: also return `metrics["nonfinite"]`, flags for non-finite
      values in `x`, `y`, the loss and each gradient leaf (`fit` turns them
      into an error naming the leaf).
    - `jit`: wrap the step in `jax.jit(..., donate_argnums=0)` (default;
      `compile_step`). `jit=False` returns the pure step (`train_step`).
    - `mesh`: a `jax.sharding.Mesh` (`fnn.distributed.make_mesh()`): the step
      `fnn.distributed.data_parallel` makes of it (batch split along `"data"`,
      state replicated; needs `jit=True`).
    - `rules`: per-step rules (`fnn.train.Rule` with `every="step"`), run inside
      the step after the update; the train state must hold their states
      (`init_train_state(..., rules=rules)`). With rules, `metrics["stop"]` says
      whether one of them asked to stop training.
    - `augment`: a data augmentation (`fnn.augment`), `fn(key, x) -> x` or
      `fn(key, x, y) -> (x, y)`, applied to the whole batch on the device before the
      forward pass (before any micro-batch split). Its key is the first half of
      `jax.random.split(fold_in(train_state.key, opt_state.step))` and the model's
      dropout key the second (without `augment` the model's key is unchanged), so a
      resumed run augments bit for bit as an uninterrupted one.
    - `precision`: a `fnn.precision.Policy` or its name (`"mixed_bfloat16"`, ...;
      API.md §6.4). The optimizer keeps the params in `param_dtype` (float32 master
      params under the mixed policies; build the state with
      `init_train_state(..., precision=the same policy)`); each layer casts its params
      and input to `compute_dtype` (`fnn.precision.apply_policy`: normalisation
      layers and softmax in float32); the loss is computed in float32 on the
      output, so the gradients reach the optimizer in the params' dtype. With loss
      scaling (`"mixed_float16"`) the gradient is taken of `S·loss`, divided by `S`,
      and a step with non-finite gradients is skipped (params, slots, step count and
      model state unchanged; `metrics["skipped"]` is 1.0).

    **Metrics** (scalars on the device): `"loss"` (the data loss, mean over the
    batch, without the penalty), `"accuracy"` when the loss declares an accuracy
    rule that applies to these outputs and targets (`fnn.metrics`: for class
    scores `(N, C)` the argmax against int ids or one-hot targets; for fnn's
    binary losses the side of the threshold per label), `"objective"` (loss +
    penalty) when a regularizer is given.

    With `jit=True` the `train_state` argument is donated: do not use it after
    the call, use the returned one.
    """
    require_callables(loss, regularizer)
    an_optimizer("optimizer", optimizer)
    accumulate = positive_int("accumulate", accumulate)
    if mesh is not None and not jit:
        raise BadValue("mesh= needs jit=True (the shardings are those of the jitted step); "
                       "drop jit=False or mesh=.")
    if augment is not None:
        augmentation.takes_labels(augment)   # a callable of (key, x) or (key, x, y)
    if precision is not None:
        precision = precision_lib.as_policy(precision)
    step = train_step(model, loss, optimizer, regularizer, accumulate=accumulate,
                      check_finite=check_finite, rules=step_rules(rules), augment=augment,
                      precision=precision)
    return compile_step(step, mesh) if jit else step
