"""Tests for fnn.optim.schedules: closed forms, traced steps, use inside optimizers,
argument validation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optim
from fnn.optim import schedules

STEPS = [0, 1, 2, 5, 9, 10, 11, 25, 100]


def cosine(step, n):
    return 0.5 * (1 + math.cos(math.pi * min(step, n) / n))


def one_cycle(step, peak, total, pct=0.3, div=25.0, final_div=1e4):
    """torch's OneCycleLR (cos, two phases) in float64, held at the end after the cycle."""
    r0 = peak / div
    e1, e2 = pct * total - 1, total - 1
    anneal = lambda a, b, x: b + (a - b) / 2 * (math.cos(math.pi * min(x, 1.0)) + 1)
    return anneal(r0, peak, step / e1) if step <= e1 else anneal(peak, r0 / final_div,
                                                                  (step - e1) / (e2 - e1))


def restarts(step, lr, t0, mult, low):
    t_i = t0
    while step >= t_i:   # SGDR's periods t0, t0·mult, t0·mult², ...
        step, t_i = step - t_i, t_i * mult
    return low + (lr - low) * 0.5 * (1 + math.cos(math.pi * step / t_i))


CLOSED_FORMS = {  # id: (schedule, float64 closed form)
    "constant": (schedules.constant(0.3), lambda s: 0.3),
    "step_decay": (schedules.step_decay(0.1, 0.5, 10), lambda s: 0.1 * 0.5 ** (s // 10)),
    "exponential_decay": (schedules.exponential_decay(0.1, 0.5, 10),
                          lambda s: 0.1 * 0.5 ** (s / 10)),
    "inverse_time": (schedules.inverse_time(0.1, 2.0, 10), lambda s: 0.1 / (1 + 2.0 * s / 10)),
    "cosine_decay": (schedules.cosine_decay(0.1, 20), lambda s: 0.1 * cosine(s, 20)),
    "cosine_decay_alpha": (schedules.cosine_decay(0.1, 20, alpha=0.1),
                           lambda s: 0.1 * (0.9 * cosine(s, 20) + 0.1)),
    "warmup_cosine": (schedules.warmup_cosine(0.2, 5, 25),
                      lambda s: 0.2 * s / 5 if s < 5 else 0.2 * cosine(s - 5, 20)),
    "warmup_cosine_no_warmup": (schedules.warmup_cosine(0.2, 0, 20),
                                lambda s: 0.2 * cosine(s, 20)),
    "multistep": (schedules.multistep(0.1, [2, 10, 11], gamma=0.5),
                  lambda s: 0.1 * 0.5 ** sum(s >= m for m in (2, 10, 11))),
    "one_cycle": (schedules.one_cycle(0.4, 20), lambda s: one_cycle(s, 0.4, 20)),
    "one_cycle_custom": (schedules.one_cycle(0.4, 30, pct_start=0.5, div_factor=4.0,
                                             final_div_factor=10.0),
                         lambda s: one_cycle(s, 0.4, 30, 0.5, 4.0, 10.0)),
    "cosine_restarts": (schedules.cosine_restarts(0.1, 4), lambda s: restarts(s, 0.1, 4, 1, 0.0)),
    "cosine_restarts_mult": (schedules.cosine_restarts(0.1, 3, period_mult=3, min_lr=0.02),
                             lambda s: restarts(s, 0.1, 3, 3, 0.02)),
    "linear_warmup": (schedules.linear_warmup(schedules.cosine_decay(0.2, 10), 5, start_lr=0.02),
                      lambda s: 0.02 + 0.18 * s / 5 if s < 5 else 0.2 * cosine(s - 5, 10)),
    "piecewise_constant": (schedules.piecewise_constant([2, 10], [0.3, 0.1, 0.01]),
                           lambda s: 0.3 if s < 2 else 0.1 if s < 10 else 0.01),
}


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_closed_form(name):
    schedule, want = CLOSED_FORMS[name]
    for step in STEPS:
        got = schedule(step)
        assert got.shape == () and got.dtype == jnp.float32
        np.testing.assert_allclose(float(got), want(step), rtol=1e-6, atol=1e-9,
                                   err_msg=f"{name} at step {step}")


@pytest.mark.parametrize("name", CLOSED_FORMS)
def test_traced_and_vector_steps(name):
    schedule, want = CLOSED_FORMS[name]
    traced = jax.jit(schedule)
    for step in (0, 7, 30):
        np.testing.assert_allclose(float(traced(jnp.int32(step))), want(step), rtol=1e-6,
                                   atol=1e-9)
    steps = jnp.arange(30, dtype=jnp.int32)
    np.testing.assert_allclose(schedule(steps), [want(s) for s in range(30)], rtol=1e-6,
                               atol=1e-9)


def test_warmup_cosine_landmarks():
    s = schedules.warmup_cosine(1.0, warmup_steps=10, decay_steps=30)
    assert float(s(0)) == 0.0
    assert float(s(5)) == pytest.approx(0.5)
    assert float(s(10)) == pytest.approx(1.0)  # peak at the end of the warm-up
    assert float(s(20)) == pytest.approx(0.5)  # half-way through the cosine
    assert float(s(30)) == pytest.approx(0.0, abs=1e-7)  # decay_steps counts the warm-up
    assert float(s(1000)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize("name", ["step_decay", "warmup_cosine", "cosine_decay"])
def test_optimizer_uses_the_schedule_at_the_step_before_the_update(name):
    schedule, want = CLOSED_FORMS[name]
    opt = optim.momentum(schedule, beta=0.5)
    state = opt.init({"p": jnp.zeros(3)})
    np.testing.assert_allclose(float(optim.current_lr(state)), want(0), rtol=1e-6)
    update = jax.jit(opt.update)
    for step in range(12):  # crosses step_decay's drop at 10 and the warm-up end at 5
        state, _ = update(state, {"p": jnp.ones(3)})
        np.testing.assert_allclose(float(optim.current_lr(state)), want(step), rtol=1e-6,
                                   atol=1e-9, err_msg=f"after update {step + 1}")
    assert int(state.step) == 12


def test_sgd_with_step_decay_by_hand():
    opt = optim.sgd(schedules.step_decay(1.0, 0.5, 1))  # 1, 0.5, 0.25 for steps 0, 1, 2
    state = opt.init({"p": jnp.zeros(())})
    ps = []
    for _ in range(3):
        state, p = opt.update(state, {"p": jnp.ones(())})
        ps.append(float(p["p"]))
    assert ps == [-1.0, -1.5, -1.75]
    assert float(optim.current_lr(state)) == 0.25


@pytest.mark.parametrize("make,error,message", [
    (lambda: schedules.constant(-1.0), ValueError, r"constant: lr must be >= 0.0, got -1.0"),
    (lambda: schedules.constant(float("nan")), ValueError, r"constant: lr must be finite, got nan"),
    (lambda: schedules.step_decay(0.1, 0.0, 10), ValueError,
     r"step_decay: decay_rate must be > 0.0, got 0.0"),
    (lambda: schedules.step_decay(0.1, 0.5, 0), ValueError,
     r"step_decay: decay_steps must be a positive int, got 0"),
    (lambda: schedules.step_decay(0.1, 0.5, 2.5), TypeError,
     r"step_decay: decay_steps must be a positive int, got 2.5"),
    (lambda: schedules.exponential_decay(-0.1, 0.5, 10), ValueError,
     r"exponential_decay: lr must be >= 0.0, got -0.1"),
    (lambda: schedules.exponential_decay(0.1, -0.5, 10), ValueError,
     r"exponential_decay: decay_rate must be > 0.0, got -0.5"),
    (lambda: schedules.inverse_time(0.1, -1.0, 10), ValueError,
     r"inverse_time: decay_rate must be >= 0.0, got -1.0"),
    (lambda: schedules.inverse_time(0.1, 1.0, -3), ValueError,
     r"inverse_time: decay_steps must be a positive int, got -3"),
    (lambda: schedules.cosine_decay(0.1, 10, alpha=1.5), ValueError,
     r"cosine_decay: alpha must be in \[0.0, 1.0\], got 1.5"),
    (lambda: schedules.cosine_decay(0.1, 0), ValueError,
     r"cosine_decay: decay_steps must be a positive int, got 0"),
    (lambda: schedules.warmup_cosine(0.1, -1, 10), ValueError,
     r"warmup_cosine: warmup_steps must be an int >= 0, got -1"),
    (lambda: schedules.warmup_cosine(0.1, 10, 10), ValueError,
     r"warmup_cosine: decay_steps counts all steps including warm-up.*warmup_steps=10.*"
     r"decay_steps=10"),
    (lambda: schedules.warmup_cosine(-0.1, 1, 10), ValueError,
     r"warmup_cosine: peak_lr must be >= 0.0, got -0.1"),
    (lambda: schedules.warmup_cosine(0.1, 1.5, 10), TypeError,
     r"warmup_cosine: warmup_steps must be an int >= 0, got 1.5"),
    (lambda: schedules.multistep(0.1, []), TypeError,
     r"multistep: milestones must be a non-empty list of ints, got \[\]"),
    (lambda: schedules.multistep(0.1, [5, 3]), ValueError,
     r"multistep: milestones must be strictly increasing ints >= 1, got \[5, 3\]"),
    (lambda: schedules.multistep(0.1, [0, 3]), ValueError,
     r"multistep: milestones must be strictly increasing ints >= 1, got \[0, 3\]"),
    (lambda: schedules.multistep(0.1, [3], gamma=0.0), ValueError,
     r"multistep: gamma must be > 0.0, got 0.0"),
    (lambda: schedules.one_cycle(0.1, 0), ValueError,
     r"one_cycle: total_steps must be a positive int, got 0"),
    (lambda: schedules.one_cycle(0.1, 10, pct_start=1.0), ValueError,
     r"one_cycle: pct_start must be in \[0.0, 1.0\), got 1.0"),
    (lambda: schedules.one_cycle(0.1, 10, pct_start=0.1), ValueError,
     r"one_cycle: pct_start·total_steps must not be 1 .*pct_start=0.1 and total_steps=10"),
    (lambda: schedules.one_cycle(0.1, 10, div_factor=0.0), ValueError,
     r"one_cycle: div_factor must be > 0.0, got 0.0"),
    (lambda: schedules.cosine_restarts(0.1, 10, period_mult=1.5), TypeError,
     r"cosine_restarts: period_mult must be a positive int, got 1.5"),
    (lambda: schedules.cosine_restarts(0.1, 0), ValueError,
     r"cosine_restarts: first_period must be a positive int, got 0"),
    (lambda: schedules.cosine_restarts(0.1, 5, min_lr=-1.0), ValueError,
     r"cosine_restarts: min_lr must be >= 0.0, got -1.0"),
    (lambda: schedules.linear_warmup(0.1, 5), TypeError,
     r"linear_warmup: schedule must be a schedule step -> lr .*got 0.1"),
    (lambda: schedules.linear_warmup(schedules.constant(0.1), -5), ValueError,
     r"linear_warmup: warmup_steps must be an int >= 0, got -5"),
    (lambda: schedules.piecewise_constant([10], [0.1]), ValueError,
     r"piecewise_constant: values must have one more entry than boundaries, got 1 values "
     r"for 1 boundaries"),
    (lambda: schedules.piecewise_constant([10], [0.1, -0.1]), ValueError,
     r"piecewise_constant: values\[1\] must be >= 0.0, got -0.1"),
    (lambda: schedules.piecewise_constant(10, [0.1, 0.01]), TypeError,
     r"piecewise_constant: boundaries must be a non-empty list of ints, got 10"),
])
def test_bad_arguments(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_cosine_schedules_reach_exactly_zero():
    """float32 cos(π/2) is −4.4e-8, so cos² left 1.9e-15·lr at and after the end."""
    for schedule, end in [(schedules.cosine_decay(0.1, 25), 25),
                          (schedules.warmup_cosine(0.1, 5, 30), 30)]:
        got = np.asarray(schedule(jnp.arange(end, end + 5)))
        assert np.all(got == 0.0), got
        assert float(schedule(end - 1)) > 0.0


def test_rates_may_be_traced():
    """A vmap over learning rates (an ensemble sweep) goes through the schedules."""
    got = jax.vmap(lambda lr: schedules.exponential_decay(lr, 0.5, 10)(3))(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(got, np.array([0.1, 0.2]) * 0.5 ** 0.3, rtol=1e-6)
    got = jax.vmap(lambda a: schedules.cosine_decay(1.0, 10, alpha=a)(10))(jnp.array([0.0, 0.3]))
    np.testing.assert_allclose(got, [0.0, 0.3], rtol=1e-6)


def test_schedules_return_the_default_float_dtype():
    assert schedules.step_decay(0.1, 0.5, 2)(3).dtype == jnp.float32
    with jax.enable_x64(True):
        got = schedules.exponential_decay(0.1, 0.5, 10)(10)
        assert got.dtype == jnp.float64 and float(got) == 0.05


def test_decay_rate_above_one_grows_the_rate():
    # allowed, as by torch's StepLR/ExponentialLR (gamma > 1) and optax.exponential_decay
    np.testing.assert_allclose(float(schedules.step_decay(0.1, 2.0, 10)(25)), 0.4, rtol=1e-6)
    np.testing.assert_allclose(float(schedules.exponential_decay(0.1, 2.0, 10)(5)),
                               0.1 * math.sqrt(2.0), rtol=1e-6)


def test_restarts_are_exact_at_every_restart():
    """T_cur and T_i come from integer arithmetic: each restart gives exactly lr, even after
    many periods (a logarithm would put some restarts one step off)."""
    schedule = schedules.cosine_restarts(0.5, 1, period_mult=2)   # restarts at 2^k − 1
    starts = np.array([2**k - 1 for k in range(1, 30)])
    np.testing.assert_array_equal(np.asarray(schedule(jnp.asarray(starts, jnp.int32))), 0.5)
    np.testing.assert_allclose(float(schedule(2**20 - 1 + 2**19)), 0.25, rtol=1e-6)  # half-way


def test_linear_warmup_of_zero_steps_is_the_schedule_itself():
    inner = schedules.cosine_decay(0.1, 10)
    assert schedules.linear_warmup(inner, 0) is inner


def test_new_schedules_in_an_optimizer():
    """`current_lr` after update t is schedule(t), through a jitted update."""
    schedule = schedules.linear_warmup(schedules.multistep(0.2, [3]), 2)
    opt = optim.sgd(schedule)
    state, update, seen = opt.init({"p": jnp.zeros(2)}), jax.jit(opt.update), []
    for _ in range(7):
        state, _ = update(state, {"p": jnp.ones(2)})
        seen.append(float(optim.current_lr(state)))
    np.testing.assert_allclose(seen, [0.0, 0.1, 0.2, 0.2, 0.2, 0.02, 0.02], rtol=1e-6)
