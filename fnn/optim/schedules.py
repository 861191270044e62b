"""Learning-rate schedules: pure functions `step -> lr`.

Each constructor validates its arguments and returns `schedule(step)`, which
takes an int step (a Python int or a traced int32 array, also an array of
steps) and returns a float array of the same shape: float32, or float64 under
`jax_enable_x64`. Rates and decays may be traced (e.g. under a `vmap` over
learning rates); they are checked when they are concrete. An optimizer evaluates
its schedule at the number of updates applied before the update, so the first
update uses `schedule(0)`.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import jax.numpy as jnp

from fnn._checks import (
    NON_NEGATIVE,
    POSITIVE,
    BadType,
    BadValue,
    checked,
    hyper,
    number,
    positive_int,
)

__all__ = ["constant", "step_decay", "exponential_decay", "inverse_time", "cosine_decay",
           "warmup_cosine", "multistep", "one_cycle", "cosine_restarts", "linear_warmup",
           "piecewise_constant"]


def _step(step):
    return jnp.asarray(step)


def _float_step(step):
    """The step in the default float dtype: an int32 step divided by an int is float32
    in JAX, which would round a float64 (`jax_enable_x64`) schedule to float32."""
    return _step(step).astype(jnp.result_type(float))


def _out(lr):
    """A rate in the default float dtype (float32; float64 under `jax_enable_x64`)."""
    return jnp.asarray(lr, jnp.result_type(float))


@checked("constant", lr=NON_NEGATIVE)
def constant(lr: float) -> Callable:
    """`lr` at every step."""
    return lambda step: _out(jnp.full(jnp.shape(step), lr))


@checked("step_decay", lr=NON_NEGATIVE, decay_rate=POSITIVE, decay_steps=positive_int)
def step_decay(lr: float, decay_rate: float, decay_steps: int) -> Callable:
    """Piecewise constant: `lr · decay_rate^⌊step / decay_steps⌋`.

    E.g. `step_decay(0.1, 0.5, 100)` halves the rate every 100 steps
    (`torch.optim.lr_scheduler.StepLR(step_size=100, gamma=0.5)`, counted in updates).

    `decay_rate` must be > 0. A rate above 1 makes the rate grow (e.g. a step-wise
    warm-up); it is allowed, as by PyTorch's `StepLR` and optax.
    """
    def schedule(step):
        step = _step(step)
        k = (step // decay_steps if jnp.issubdtype(step.dtype, jnp.integer)
             else jnp.floor(step / decay_steps))
        return _out(lr * jnp.power(decay_rate, k.astype(jnp.result_type(float))))

    return schedule


@checked("exponential_decay", lr=NON_NEGATIVE, decay_rate=POSITIVE, decay_steps=positive_int)
def exponential_decay(lr: float, decay_rate: float, decay_steps: int) -> Callable:
    """Smooth decay: `lr · decay_rate^(step / decay_steps)`.

    Same as `optax.exponential_decay(lr, decay_steps, decay_rate)` and Keras's
    `ExponentialDecay` without staircase (use `step_decay` for the staircase).
    `decay_rate` must be > 0; above 1 the rate grows, as optax allows.
    """
    def schedule(step):
        return _out(lr * jnp.power(decay_rate, _float_step(step) / decay_steps))

    return schedule


@checked("inverse_time", lr=NON_NEGATIVE, decay_rate=NON_NEGATIVE, decay_steps=positive_int)
def inverse_time(lr: float, decay_rate: float, decay_steps: int) -> Callable:
    """`lr / (1 + decay_rate · step / decay_steps)` (Keras's `InverseTimeDecay`)."""
    def schedule(step):
        return _out(lr / (1.0 + decay_rate * _float_step(step) / decay_steps))

    return schedule


def _cosine(step, steps: int):
    """½(1 + cos(π·min(step, steps)/steps)): 1 at 0, falling to 0 at `steps`.

    Computed as cos²(π/2·frac), the same value without cancellation near the end,
    and exactly 0 from `steps` on (float32 cos(π/2) is −4.4e-8, not 0).
    """
    frac = jnp.minimum(step, steps) / steps
    return jnp.where(frac >= 1, 0.0, jnp.square(jnp.cos(0.5 * math.pi * frac)))


@checked("cosine_decay", lr=NON_NEGATIVE, decay_steps=positive_int,
         alpha={"low": 0.0, "high": 1.0})
def cosine_decay(lr: float, decay_steps: int, alpha: float = 0.0) -> Callable:
    """Cosine annealing (Loshchilov & Hutter, 2017) to `alpha·lr`, then constant.

        lr · ((1 − α)·½(1 + cos(π·min(step, decay_steps)/decay_steps)) + α)

    Same as `optax.cosine_decay_schedule(lr, decay_steps, alpha)`.
    """
    def schedule(step):
        return _out(lr * ((1.0 - alpha) * _cosine(_float_step(step), decay_steps) + alpha))

    return schedule


def _count(name: str, value) -> int:
    """`value` as an int >= 0 (a number of steps that may be 0)."""
    if isinstance(value, bool) or not hasattr(value, "__index__"):
        raise BadType(f"{name} must be an int >= 0, got {value!r}.")
    if int(value) < 0:
        raise BadValue(f"{name} must be an int >= 0, got {int(value)}.")
    return int(value)


@checked("warmup_cosine", peak_lr=NON_NEGATIVE, warmup_steps=_count, decay_steps=positive_int)
def warmup_cosine(peak_lr: float, warmup_steps: int, decay_steps: int) -> Callable:
    """Linear warm-up from 0 to `peak_lr`, then cosine decay to 0.

        step < w:       peak_lr · step / w
        w ≤ step:       peak_lr · ½(1 + cos(π·min(step − w, D − w)/(D − w)))

    with `w = warmup_steps` and `D = decay_steps`. **`decay_steps` counts all
    steps, warm-up included** (as in `optax.warmup_cosine_decay_schedule`): the
    rate peaks at step `w` and reaches 0 at step `D`, then stays 0. The first
    update (step 0) uses a rate of 0 when `warmup_steps > 0`.

    **Arguments:**
    - `peak_lr`: >= 0.
    - `warmup_steps`: int >= 0 (0: no warm-up, a plain cosine decay).
    - `decay_steps`: int > `warmup_steps`.
    """
    w = warmup_steps
    if decay_steps <= w:
        raise BadValue(f"decay_steps counts all steps including warm-up, so it must exceed "
                       f"warmup_steps={w}; got decay_steps={decay_steps}.")

    def schedule(step):
        step = _float_step(step)
        cos = peak_lr * _cosine(jnp.maximum(step - w, 0), decay_steps - w)
        if w == 0:
            return _out(cos)
        warm = peak_lr * step / w
        return _out(jnp.where(step < w, warm, cos))

    return schedule


def _int_step(step):
    """The step as an integer array (a float step is floored), for exact comparisons."""
    step = _step(step)
    return step if jnp.issubdtype(step.dtype, jnp.integer) else jnp.floor(step).astype(int)


def _increasing(name: str, value) -> tuple[int, ...]:
    """A non-empty sequence of strictly increasing ints >= 1 (milestones, boundaries)."""
    if not isinstance(value, Sequence) or isinstance(value, str) or not value or any(
            isinstance(v, bool) or not hasattr(v, "__index__") for v in value):
        raise BadType(f"{name} must be a non-empty list of ints, got {value!r}.")
    ints = tuple(int(v) for v in value)
    if ints[0] < 1 or any(b <= a for a, b in zip(ints, ints[1:])):
        raise BadValue(f"{name} must be strictly increasing ints >= 1, got {list(ints)}.")
    return ints


def _passed(step, marks: tuple[int, ...]):
    """How many of `marks` are <= step (int32, the shape of step)."""
    step = _int_step(step)
    marks = jnp.asarray(marks, step.dtype).reshape((1,) * step.ndim + (len(marks),))
    return jnp.sum(step[..., None] >= marks, axis=-1)


@checked("multistep", lr=NON_NEGATIVE, milestones=_increasing, gamma=POSITIVE)
def multistep(lr: float, milestones: Sequence[int], gamma: float = 0.1) -> Callable:
    """`lr · gamma^k`, k = the number of milestones <= step.

    E.g. `multistep(0.1, [30, 80])`: 0.1 for steps 0–29, 0.01 for 30–79, 0.001 from 80.
    Same as `torch.optim.lr_scheduler.MultiStepLR(milestones, gamma)` (counted in
    updates) and `optax.piecewise_constant_schedule(lr, {30: 0.1, 80: 0.1})`.

    **Arguments:**
    - `lr`: >= 0.
    - `milestones`: strictly increasing ints >= 1.
    - `gamma`: > 0. Default 0.1.
    """
    def schedule(step):
        return _out(lr * jnp.power(gamma, _passed(step, milestones).astype(jnp.result_type(float))))

    return schedule


def _below_one(name: str, value) -> float:
    return number(name, value, low=0.0, high=1.0, high_open=True)


@checked("one_cycle", max_lr=NON_NEGATIVE, total_steps=positive_int, pct_start=_below_one,
         div_factor=POSITIVE, final_div_factor=POSITIVE)
def one_cycle(max_lr: float, total_steps: int, pct_start: float = 0.3, div_factor: float = 25.0,
              final_div_factor: float = 1e4) -> Callable:
    """The 1cycle policy (Smith & Topin, 2017): a cosine rise, then a cosine fall.

        r0 = max_lr / div_factor,  r_end = r0 / final_div_factor
        e1 = pct_start·total_steps − 1,  e2 = total_steps − 1
        step <= e1:  anneal(r0, max_lr, step / e1)
        otherwise:   anneal(max_lr, r_end, (step − e1) / (e2 − e1))
        anneal(a, b, x) = b + (a − b)·½(1 + cos(π·x))

    The rate peaks at step e1 and reaches r_end at step `total_steps − 1`, then stays
    there. Same as `torch.optim.lr_scheduler.OneCycleLR(max_lr, total_steps=total_steps,
    pct_start, div_factor, final_div_factor)` with its defaults (`anneal_strategy="cos"`,
    two phases); the momentum cycling it also does is not part of this schedule.

    **Arguments:**
    - `max_lr`: >= 0.
    - `total_steps`: int > 0, the number of updates of the whole cycle.
    - `pct_start`: the share of the steps spent rising, in [0, 1). Default 0.3;
      `pct_start·total_steps` must not be exactly 1 (a rise of zero steps).
    - `div_factor`, `final_div_factor`: > 0. Defaults 25 and 1e4.
    """
    e1, e2 = pct_start * total_steps - 1, total_steps - 1
    if e1 == 0:
        raise BadValue(f"pct_start·total_steps must not be 1 (a rise over zero steps), got "
                       f"pct_start={pct_start} and total_steps={total_steps}.")
    r0 = max_lr / div_factor
    r_end = r0 / final_div_factor

    def anneal(a, b, left):
        """a → b with `left` = the share of the phase still to go (1 → 0): b + (a − b)·½(1 +
        cos(π(1 − left))), written sin²(π/2·left) to stay accurate as the rate nears b."""
        return b + (a - b) * jnp.square(jnp.sin(0.5 * math.pi * jnp.clip(left, 0.0, 1.0)))

    def schedule(step):
        step = _float_step(step)
        rise = anneal(r0, max_lr, (e1 - step) / e1) if e1 > 0 else 0.0   # e1 < 0: no rise
        fall = anneal(max_lr, r_end, (e2 - step) / (e2 - e1))
        return _out(jnp.where(step <= e1, rise, fall))

    return schedule


@checked("cosine_restarts", lr=NON_NEGATIVE, first_period=positive_int,
         period_mult=positive_int, min_lr=NON_NEGATIVE)
def cosine_restarts(lr: float, first_period: int, period_mult: int = 1,
                    min_lr: float = 0.0) -> Callable:
    """SGDR (Loshchilov & Hutter, 2017): cosine annealing with warm restarts.

        min_lr + (lr − min_lr)·½(1 + cos(π·T_cur/T_i))

    where period i lasts `T_i = first_period·period_mult^i` steps and `T_cur` counts the
    steps since the latest restart (the rate jumps back to `lr` at each restart).

    **Arguments:**
    - `lr`: >= 0, the rate at each restart.
    - `first_period`: int > 0, the length of the first period T_0.
    - `period_mult`: int >= 1, the factor between consecutive periods. Default 1.
    - `min_lr`: >= 0, the rate each period falls towards. Default 0.0.

    Same as `torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(T_0=first_period,
    T_mult=period_mult, eta_min=min_lr)` stepped once per update. `T_cur` and `T_i` are
    found with integer arithmetic (no logarithm), exact at every restart.
    """
    starts, lengths = [0], [first_period]   # each period's first step and length (int32)
    while period_mult > 1 and starts[-1] + lengths[-1] < 2**31:
        starts.append(starts[-1] + lengths[-1])
        lengths.append(lengths[-1] * period_mult)

    def schedule(step):
        step = _int_step(step)
        if period_mult == 1:
            t_cur, t_i = step % first_period, first_period
        else:
            n = _passed(step, tuple(starts[1:]))
            t_cur = step - jnp.asarray(starts, step.dtype)[n]
            t_i = jnp.asarray([min(t, 2**31 - 1) for t in lengths], step.dtype)[n]
        frac = t_cur.astype(jnp.result_type(float)) / t_i
        return _out(min_lr + (lr - min_lr) * 0.5 * (1 + jnp.cos(math.pi * frac)))

    return schedule


def _schedule(name: str, value) -> Callable:
    if not callable(value):
        raise BadType(f"{name} must be a schedule step -> lr (e.g. "
                      f"fnn.optim.schedules.cosine_decay(0.1, 1000)), got {value!r}.")
    return value


@checked("linear_warmup", schedule=_schedule, warmup_steps=_count, start_lr=NON_NEGATIVE)
def linear_warmup(schedule: Callable, warmup_steps: int, start_lr: float = 0.0) -> Callable:
    """A linear warm-up from `start_lr` to `schedule(0)`, then `schedule`, started late.

        step < w:   start_lr + (schedule(0) − start_lr) · step / w
        step >= w:  schedule(step − w)

    The wrapped schedule starts after the warm-up (step `w` uses `schedule(0)`), so
    its own step counts (e.g. `cosine_decay`'s `decay_steps`) exclude the warm-up, as
    with PyTorch's `SequentialLR([LinearLR(optimizer, start_lr/lr0, 1.0, w), main],
    milestones=[w])` and `optax.join_schedules`. (`warmup_cosine` instead counts the
    warm-up in its `decay_steps`.)

    **Arguments:**
    - `schedule`: any schedule `step -> lr`, e.g. one of this module's.
    - `warmup_steps`: w, int >= 0 (0: `schedule` unchanged).
    - `start_lr`: >= 0, the rate at step 0. Default 0.0.
    """
    w = warmup_steps
    if w == 0:
        return schedule

    def warmed(step):
        after = jnp.asarray(schedule(jnp.maximum(_step(step) - w, 0)))
        step = _float_step(step)
        peak = jnp.asarray(schedule(0))
        return _out(jnp.where(step < w, start_lr + (peak - start_lr) * step / w, after))

    return warmed


def _values(name: str, value) -> tuple[float, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise BadType(f"{name} must be a non-empty list of learning rates, got {value!r}.")
    return tuple(hyper(f"{name}[{i}]", v, **NON_NEGATIVE) for i, v in enumerate(value))


@checked("piecewise_constant", boundaries=_increasing, values=_values)
def piecewise_constant(boundaries: Sequence[int], values: Sequence[float]) -> Callable:
    """`values[i]` from step `boundaries[i−1]` (0 for i = 0) up to `boundaries[i]`.

    E.g. `piecewise_constant([100, 150], [0.1, 0.01, 0.001])`: 0.1 for steps 0–99,
    0.01 for 100–149, 0.001 from 150. A boundary is the first step of the next value,
    as a `multistep` milestone (Keras's `PiecewiseConstantDecay` switches one step
    later, after the boundary).

    **Arguments:**
    - `boundaries`: strictly increasing ints >= 1.
    - `values`: learning rates >= 0, one more than `boundaries`.
    """
    if len(values) != len(boundaries) + 1:
        raise BadValue(f"values must have one more entry than boundaries, got "
                       f"{len(values)} values for {len(boundaries)} boundaries.")

    def schedule(step):
        return _out(jnp.asarray(values, jnp.result_type(float))[_passed(step, boundaries)])

    return schedule
