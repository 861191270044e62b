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
