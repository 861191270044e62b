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
from collections.abc import Callable

import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, POSITIVE, BadType, BadValue, checked, positive_int

__all__ = ["constant", "step_decay", "exponential_decay", "inverse_time", "cosine_decay",
           "warmup_cosine"]


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
