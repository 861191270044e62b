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

from fnn._checks import check_hyper, check_positive_int

__all__ = ["constant", "step_decay", "exponential_decay", "inverse_time", "cosine_decay",
           "warmup_cosine"]


def _step(step):
    return jnp.asarray(step)


def _float_step(step):
    """The step in the default float dtype: an int32 step divided by an int is float32
    in JAX, which would round a float64 (`jax_enable_x64`) schedule to float32."""
    return _step(step).astype(jnp.result_type(float))


def _lr(where: str, lr) -> float:
    return check_hyper(where, "lr", lr, low=0.0)


def _out(lr):
    """A rate in the default float dtype (float32; float64 under `jax_enable_x64`)."""
    return jnp.asarray(lr, jnp.result_type(float))


def constant(lr: float) -> Callable:
    """`lr` at every step."""
    lr = _lr("constant", lr)
    return lambda step: _out(jnp.full(jnp.shape(step), lr))


def step_decay(lr: float, decay_rate: float, decay_steps: int) -> Callable:
    """Piecewise constant: `lr · decay_rate^⌊step / decay_steps⌋`.

    E.g. `step_decay(0.1, 0.5, 100)` halves the rate every 100 steps
    (`torch.optim.lr_scheduler.StepLR(step_size=100, gamma=0.5)`, counted in updates).

    `decay_rate` must be > 0. A rate above 1 makes the rate grow (e.g. a step-wise
    warm-up); it is allowed, as by PyTorch's `StepLR` and optax.
    """
    lr = _lr("step_decay", lr)
    rate = check_hyper("step_decay", "decay_rate", decay_rate, low=0.0, low_open=True)
    n = check_positive_int("step_decay", "decay_steps", decay_steps)

    def schedule(step):
        step = _step(step)
        k = step // n if jnp.issubdtype(step.dtype, jnp.integer) else jnp.floor(step / n)
        return _out(lr * jnp.power(rate, k.astype(jnp.result_type(float))))

    return schedule


def exponential_decay(lr: float, decay_rate: float, decay_steps: int) -> Callable:
    """Smooth decay: `lr · decay_rate^(step / decay_steps)`.

    Same as `optax.exponential_decay(lr, decay_steps, decay_rate)` and Keras's
    `ExponentialDecay` without staircase (use `step_decay` for the staircase).
    `decay_rate` must be > 0; above 1 the rate grows, as optax allows.
    """
    lr = _lr("exponential_decay", lr)
    rate = check_hyper("exponential_decay", "decay_rate", decay_rate, low=0.0, low_open=True)
    n = check_positive_int("exponential_decay", "decay_steps", decay_steps)

    def schedule(step):
        return _out(lr * jnp.power(rate, _float_step(step) / n))

    return schedule


def inverse_time(lr: float, decay_rate: float, decay_steps: int) -> Callable:
    """`lr / (1 + decay_rate · step / decay_steps)` (Keras's `InverseTimeDecay`)."""
    lr = _lr("inverse_time", lr)
    rate = check_hyper("inverse_time", "decay_rate", decay_rate, low=0.0)
    n = check_positive_int("inverse_time", "decay_steps", decay_steps)

    def schedule(step):
        return _out(lr / (1.0 + rate * _float_step(step) / n))

    return schedule


def _cosine(step, steps: int):
    """½(1 + cos(π·min(step, steps)/steps)): 1 at 0, falling to 0 at `steps`.

    Computed as cos²(π/2·frac), the same value without cancellation near the end,
    and exactly 0 from `steps` on (float32 cos(π/2) is −4.4e-8, not 0).
    """
    frac = jnp.minimum(step, steps) / steps
    return jnp.where(frac >= 1, 0.0, jnp.square(jnp.cos(0.5 * math.pi * frac)))


def cosine_decay(lr: float, decay_steps: int, alpha: float = 0.0) -> Callable:
    """Cosine annealing (Loshchilov & Hutter, 2017) to `alpha·lr`, then constant.

        lr · ((1 − α)·½(1 + cos(π·min(step, decay_steps)/decay_steps)) + α)

    Same as `optax.cosine_decay_schedule(lr, decay_steps, alpha)`.
    """
    lr = _lr("cosine_decay", lr)
    n = check_positive_int("cosine_decay", "decay_steps", decay_steps)
    alpha = check_hyper("cosine_decay", "alpha", alpha, low=0.0, high=1.0)

    def schedule(step):
        return _out(lr * ((1.0 - alpha) * _cosine(_float_step(step), n) + alpha))

    return schedule


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
    where = "warmup_cosine"
    peak = check_hyper(where, "peak_lr", peak_lr, low=0.0)
    if isinstance(warmup_steps, bool) or not hasattr(warmup_steps, "__index__"):
        raise TypeError(f"{where}: warmup_steps must be an int >= 0, got {warmup_steps!r}.")
    w = int(warmup_steps)
    if w < 0:
        raise ValueError(f"{where}: warmup_steps must be an int >= 0, got {w}.")
    total = check_positive_int(where, "decay_steps", decay_steps)
    if total <= w:
        raise ValueError(
            f"{where}: decay_steps counts all steps including warm-up, so it must exceed "
            f"warmup_steps={w}; got decay_steps={total}."
        )

    def schedule(step):
        step = _float_step(step)
        cos = peak * _cosine(jnp.maximum(step - w, 0), total - w)
        if w == 0:
            return _out(cos)
        warm = peak * step / w
        return _out(jnp.where(step < w, warm, cos))

    return schedule
