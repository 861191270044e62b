"""Dynamic loss scaling (`fnn.precision.loss_scale`, `scaled`) against PyTorch's
`torch.amp.GradScaler`: the same scale sequence for a scripted overflow sequence, and
a skipped step leaves params and optimizer slots bit-identical."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fnn import optim
from fnn import precision as P

INF = float("inf")


def torch_scales(overflows, **kw):
    """GradScaler's scale after each step of `overflows` (True: an infinite gradient)."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1)
    scaler = torch.amp.GradScaler("cpu", **kw)
    out = []
    for bad in overflows:
        opt.zero_grad()
        scaler.scale(p.sum() * (INF if bad else 1.0)).backward()
        scaler.step(opt)
        scaler.update()
        out.append(scaler.get_scale())
    return out


def fnn_scales(overflows, **kw):
    """The same run through `scaled(sgd, loss_scale(**kw))`: grads of S·loss, jitted."""
    opt = P.scaled(optim.sgd(0.1), P.loss_scale(**kw))
    state = opt.init({"p": jnp.zeros((1,))})
    update = jax.jit(opt.update)
    out = []
    for bad in overflows:
        g = jnp.full((1,), INF if bad else 1.0) * state.loss_scale.scale
        state, _ = update(state, {"p": g})
        out.append(float(state.loss_scale.scale))
    return out, state


SCRIPT = [0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]


def test_scale_sequence_equals_gradscaler():
    kw = {"init_scale": 8.0, "growth_factor": 2.0, "backoff_factor": 0.5,
          "growth_interval": 3}
    ours, state = fnn_scales(SCRIPT, **kw)
    assert ours == torch_scales(SCRIPT, **kw)
    assert int(state.loss_scale.skipped) == sum(SCRIPT)
    # three skipped steps: the step count and the params saw only the finite ones
    assert int(state.step) == len(SCRIPT) - sum(SCRIPT)
    np.testing.assert_allclose(state.params["p"], [-0.1 * (len(SCRIPT) - sum(SCRIPT))],
                               rtol=1e-6)


@settings(max_examples=8, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=12),
       st.sampled_from([1, 2, 5]), st.sampled_from([(2.0, 0.5), (4.0, 0.25), (1.5, 0.75)]))
def test_scale_sequence_equals_gradscaler_random(overflows, interval, factors):
    kw = {"init_scale": 2.0**10, "growth_factor": factors[0], "backoff_factor": factors[1],
          "growth_interval": interval}
    assert fnn_scales(overflows, **kw)[0] == torch_scales(overflows, **kw)


def test_growth_that_overflows_float32_keeps_the_scale():
    # GradScaler grows only to a finite scale (torch's _amp_update_scale_)
    ls = P.loss_scale(init_scale=2.0**127, growth_interval=1)
    state = ls.update(ls.init(), jnp.ones((), bool))
    assert float(state.scale) == 2.0**127 and int(state.good_steps) == 0


def test_skipped_step_is_bit_identical():
    """Adam's params, moments and step count are untouched by a non-finite step."""
    opt = P.scaled(optim.adam(1e-2), P.loss_scale(init_scale=4.0))
    params = {"w": jnp.arange(6.0).reshape(2, 3), "b": jnp.ones((3,))}
    state = opt.init(params)
    grads = jax.tree.map(lambda a: 0.3 * a + 0.1, params)
    state, _ = opt.update(state, jax.tree.map(lambda g: g * 4.0, grads))
    before = state
    bad = {"w": grads["w"].at[1, 2].set(jnp.nan), "b": grads["b"]}
    after, params_after = jax.jit(opt.update)(before, bad)
    for field in ("step", "params", "m", "v", "lr", "hyper"):
        chex.assert_trees_all_equal(getattr(after, field), getattr(before, field))
    chex.assert_trees_all_equal(params_after, before.params)
    assert float(after.loss_scale.scale) == 2.0 and int(after.loss_scale.skipped) == 1


def test_finite_step_equals_unscaled_update():
    """Gradients of S·loss divided by S: the wrapped update sees the true gradients."""
    base = optim.adam(1e-2)
    opt = P.scaled(base, P.loss_scale(init_scale=2.0**8))
    params = {"w": jnp.linspace(-1.0, 1.0, 6).reshape(2, 3)}
    grads = {"w": jnp.linspace(0.5, -0.2, 6).reshape(2, 3)}
    _, want = base.update(base.init(params), grads)
    _, got = opt.update(opt.init(params), jax.tree.map(lambda g: g * 2.0**8, grads))
    chex.assert_trees_all_equal(got, want)


def test_scaled_is_built_once():
    base, ls = optim.sgd(0.1), P.loss_scale()
    assert P.scaled(base, ls) is P.scaled(base, ls)


BAD_INPUT = [
    ("init_scale 0", lambda: P.loss_scale(init_scale=0.0), ValueError,
     r"fnn.precision.loss_scale: init_scale must be > 0.0, got 0.0"),
    ("growth_factor 1", lambda: P.loss_scale(growth_factor=1.0), ValueError,
     r"loss_scale: growth_factor must be > 1.0, got 1.0"),
    ("backoff_factor 1", lambda: P.loss_scale(backoff_factor=1.0), ValueError,
     r"loss_scale: backoff_factor must be in \(0.0, 1.0\), got 1.0"),
    ("backoff_factor 0", lambda: P.loss_scale(backoff_factor=0), ValueError,
     r"backoff_factor must be in \(0.0, 1.0\), got 0.0"),
    ("growth_interval float", lambda: P.loss_scale(growth_interval=2.5), TypeError,
     r"loss_scale: growth_interval must be a positive int, got 2.5"),
    ("growth_interval 0", lambda: P.loss_scale(growth_interval=0), ValueError,
     r"growth_interval must be a positive int, got 0"),
    ("init_scale str", lambda: P.loss_scale(init_scale="big"), TypeError,
     r"init_scale must be a number, got 'big'"),
    ("scaled: not an optimizer", lambda: P.scaled("adam", P.loss_scale()), TypeError,
     r"fnn.precision.scaled: expected a fnn.optim.Optimizer"),
    ("scaled: not a loss scale", lambda: P.scaled(optim.sgd(0.1), 2.0**16), TypeError,
     r"fnn.precision.scaled: scale must be fnn.precision.loss_scale\(...\), got 65536.0"),
    ("scaled: plain state", lambda: P.scaled(optim.sgd(0.1), P.loss_scale()).update(
        optim.sgd(0.1).init({"w": jnp.ones(2)}), {"w": jnp.ones(2)}), TypeError,
     r"scaled\(sgd\).update: expected the state from scaled\(sgd\).init .* got SGDState"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
