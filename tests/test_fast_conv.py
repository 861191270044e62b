"""`fnn.layers._fast_conv`: im2col + matmul, and a convolution whose passes run on
different lowerings, equal `lax.conv_general_dilated` (values, gradients, forward-mode
derivatives, vmap) within float32 tolerance; `conv_plan` picks the measured winners."""
from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.fused import _has_eqn
from fnn.layers import _onednn_conv
from fnn.layers._fast_conv import (
    IM2COL,
    IM2COL_NAME,
    LAX,
    LOWERINGS,
    ConvPlan,
    conv2d,
    conv2d_im2col,
    conv_plan,
    explicit_padding,
)

DN = ("NHWC", "HWIO", "NHWC")


def _reference(x, w, strides, padding, dilation):
    return jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                        dimension_numbers=DN,
                                        precision=jax.lax.Precision.HIGHEST)


def _close(actual, expected, rtol=1e-4):
    """Float32 tolerance: relative, plus an absolute floor at rtol x the largest magnitude
    (a sum over thousands of terms in another order differs by that much near zero)."""
    scale = float(jnp.max(jnp.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


CASES = [
    # x shape, w shape, strides, padding, dilation
    ((2, 32, 32, 1), (5, 5, 1, 6), (1, 1), "VALID", (1, 1)),          # LeNet C1
    ((3, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID", (1, 1)),         # LeNet C3
    ((2, 5, 5, 16), (5, 5, 16, 12), (1, 1), "VALID", (1, 1)),         # LeNet C5 (1x1 out)
    ((2, 8, 8, 4), (3, 3, 4, 5), (1, 1), ((1, 1), (1, 1)), (1, 1)),   # ResNet 3x3
    ((2, 9, 9, 3), (3, 3, 3, 4), (2, 2), ((1, 1), (1, 1)), (1, 1)),   # strided, odd size
    ((2, 7, 6, 3), (3, 2, 3, 2), (2, 1), "SAME", (1, 1)),             # SAME, asymmetric
    ((1, 10, 10, 2), (3, 3, 2, 3), (1, 1), "SAME", (2, 2)),           # dilated
    ((2, 6, 6, 3), (1, 1, 3, 4), (2, 2), "VALID", (1, 1)),            # 1x1 projection
    ((2, 8, 7, 2), (2, 3, 2, 3), (1, 2), ((0, 2), (1, 0)), (1, 1)),   # uneven pads
]


@pytest.mark.parametrize("xs, ws, strides, padding, dilation", CASES)
def test_values_and_gradients_match_lax(xs, ws, strides, padding, dilation):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(xs), jnp.float32)
    w = jnp.asarray(rng.standard_normal(ws) / np.sqrt(np.prod(ws[:3])), jnp.float32)

    y = conv2d_im2col(x, w, strides, padding, dilation)
    ref = _reference(x, w, strides, padding, dilation)
    assert y.shape == ref.shape and y.dtype == jnp.float32
    _close(y, ref, rtol=1e-5)

    cot = jnp.asarray(rng.standard_normal(ref.shape), jnp.float32)

    def grads(conv):
        return jax.grad(lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) * cot), argnums=(0, 1))(x, w)

    dx, dw = jax.jit(lambda x, w: grads(lambda a, b: conv2d_im2col(a, b, strides, padding,
                                                                   dilation)))(x, w)
    rdx, rdw = grads(lambda a, b: _reference(a, b, strides, padding, dilation))
    _close(dx, rdx)
    _close(dw, rdw)


def test_matches_lax_on_a_lenet_batch_under_jit():
    """The benchmark's shapes (batch 128): the same numbers as XLA's convolution."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((128, 14, 14, 6)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((5, 5, 6, 16)) * 0.1, jnp.float32)
    y = jax.jit(conv2d_im2col, static_argnums=(2, 3, 4))(x, w, (1, 1), "VALID", (1, 1))
    _close(y, _reference(x, w, (1, 1), "VALID", (1, 1)), rtol=1e-5)


def test_explicit_padding_follows_lax():
    assert explicit_padding((7, 6), (3, 2), (2, 1), "SAME") == ((1, 1), (0, 1))
    assert explicit_padding((10, 10), (3, 3), (1, 1), "same", (2, 2)) == ((2, 2), (2, 2))
    assert explicit_padding((5, 5), (5, 5), (1, 1), "VALID") == ((0, 0), (0, 0))
    assert explicit_padding((5, 5), (3, 3), (1, 1), [[1, 2], [0, 1]]) == ((1, 2), (0, 1))


@pytest.fixture
def without_onednn():
    """The plans of fnn without the oneDNN extension (switched off for this test)."""
    _onednn_conv.use_onednn(False)
    yield
    _onednn_conv.use_onednn(None)


def test_conv_plan_picks_the_measured_winners_only(without_onednn):
    cpu = jax.default_backend() == "cpu"
    expect = (lambda plan: plan) if cpu else (lambda plan: LAX)
    one_channel = ConvPlan("im2col", "im2col", "lax")
    # LeNet-5: C1 (padded, one channel), C3 (unpadded 5x5), C5 (the kernel covers the input)
    assert conv_plan((128, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2))) == expect(
        one_channel)
    assert conv_plan((128, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID") == expect(
        ConvPlan("lax", "im2col", "lax"))
    assert conv_plan((128, 5, 5, 16), (5, 5, 16, 120), (1, 1), "VALID") == expect(IM2COL)
    # one input channel, kernels up to 7x7
    assert conv_plan((64, 28, 28, 1), (3, 3, 1, 32), (1, 1), "SAME") == expect(one_channel)
    assert conv_plan((8, 56, 56, 1), (7, 7, 1, 64), (1, 1), "SAME") == expect(one_channel)
    assert conv_plan((8, 56, 56, 1), (9, 9, 1, 64), (1, 1), "SAME") == LAX
    # XLA's kernel: ResNet's 3x3 (its first layer's 3 channels too), padded 5x5 with 3
    # channels, strided, dilated
    assert conv_plan((64, 32, 32, 3), (3, 3, 3, 16), (1, 1), "SAME") == LAX
    assert conv_plan((64, 32, 32, 16), (3, 3, 16, 16), (1, 1), ((1, 1), (1, 1))) == LAX
    assert conv_plan((8, 32, 32, 3), (5, 5, 3, 8), (1, 1), "SAME") == LAX
    assert conv_plan((64, 32, 32, 1), (3, 3, 1, 16), (2, 2), "SAME") == LAX
    assert conv_plan((8, 32, 32, 1), (5, 5, 1, 8), (1, 1), "VALID", (2, 2)) == LAX


@pytest.mark.skipif(not _onednn_conv.enabled(), reason="the fnn_onednn extension is not "
                    "installed (pip install ./native/fnn_onednn) or is switched off")
def test_conv_plan_with_onednn_keeps_im2col_only_where_it_wins():
    # every pass on oneDNN, at any stride and dilation, except the kernel that covers
    # the input (one matrix product) and a one-channel input's input gradient
    assert conv_plan((64, 32, 32, 16), (3, 3, 16, 16), (1, 1), "SAME") == ConvPlan(
        "onednn", "onednn", "onednn")
    assert conv_plan((64, 32, 32, 16), (3, 3, 16, 32), (2, 2), "SAME") == ConvPlan(
        "onednn", "onednn", "onednn")
    assert conv_plan((128, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2))) == ConvPlan(
        "onednn", "im2col", "onednn")
    assert conv_plan((128, 5, 5, 16), (5, 5, 16, 120), (1, 1), "VALID") == IM2COL


PLANS = [ConvPlan(*p) for p in itertools.product(LOWERINGS, repeat=3)]
PLAN_CASES = [CASES[0], CASES[1], CASES[3], CASES[6]]   # unpadded, padded, dilated


def _inputs(xs, ws, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(xs), jnp.float32)
    w = jnp.asarray(rng.standard_normal(ws) / np.sqrt(np.prod(ws[:3])), jnp.float32)
    return x, w


@pytest.mark.parametrize("plan", PLANS, ids=lambda p: "-".join(p))
@pytest.mark.parametrize("xs, ws, strides, padding, dilation", PLAN_CASES)
def test_every_plan_matches_lax(plan, xs, ws, strides, padding, dilation):
    """Each of the 8 plans: values, reverse-mode gradients (both, and each alone, where the
    other tangent is a symbolic zero) and forward-mode derivatives equal lax's."""
    x, w = _inputs(xs, ws)
    mine = lambda x, w: conv2d(x, w, strides, padding, dilation, plan)
    ref = lambda x, w: _reference(x, w, strides, padding, dilation)
    _close(jax.jit(mine)(x, w), ref(x, w), rtol=1e-5)
    cot = jnp.asarray(np.random.default_rng(1).standard_normal(ref(x, w).shape), jnp.float32)
    for argnums in ((0, 1), 0, 1):
        loss = lambda conv, a=argnums: jax.grad(
            lambda x, w: jnp.sum(jnp.tanh(conv(x, w)) * cot), argnums=a)
        for got, want in zip(jax.tree.leaves(jax.jit(loss(mine))(x, w)),
                             jax.tree.leaves(loss(ref)(x, w)), strict=True):
            _close(got, want)
    dx, dw = _inputs(xs, ws, seed=2)
    _, tangent = jax.jvp(mine, (x, w), (dx, dw))
    _close(tangent, jax.jvp(ref, (x, w), (dx, dw))[1])


def test_a_plan_runs_the_lowering_it_names_for_each_gradient():
    """The weight gradient of plan (im2col, im2col, lax) is one lax convolution and no
    input gradient is computed for an input that is not differentiated."""
    x, w = _inputs((2, 12, 12, 1), (5, 5, 1, 3))
    conv_eqns = lambda plan, argnums: [
        eqn for eqn in jax.make_jaxpr(jax.grad(
            lambda x, w: jnp.sum(conv2d(x, w, plan=plan) ** 2), argnums=argnums))(x, w).eqns
        if eqn.primitive.name == "conv_general_dilated"]
    assert len(conv_eqns(ConvPlan("im2col", "im2col", "lax"), 1)) == 1
    assert conv_eqns(ConvPlan("im2col", "lax", "im2col"), 1) == []
    assert len(conv_eqns(ConvPlan("im2col", "lax", "im2col"), 0)) == 1
    im2col = lambda jaxpr: _has_eqn(jaxpr, lambda eqn: eqn.params.get("name") == IM2COL_NAME)
    assert not im2col(jax.make_jaxpr(lambda x, w: conv2d(x, w, plan=LAX))(x, w).jaxpr)


def test_planned_conv_vmaps_and_has_second_derivatives():
    plan = ConvPlan("im2col", "im2col", "lax")
    x, w = _inputs((2, 10, 10, 1), (5, 5, 1, 3))
    ws = jnp.stack([w, 2.0 * w, -w])
    got = jax.vmap(lambda w: conv2d(x, w, plan=plan))(ws)
    _close(got, jax.vmap(lambda w: _reference(x, w, (1, 1), "VALID", (1, 1)))(ws), rtol=1e-5)
    # d/dw of (d/dx of sum(conv(x, w)**2)): mixed second derivatives through the rule
    second = lambda conv: jax.grad(lambda w: jnp.sum(jax.grad(
        lambda x: jnp.sum(conv(x, w) ** 2))(x) ** 2))(w)
    _close(second(lambda x, w: conv2d(x, w, plan=plan)),
           second(lambda x, w: _reference(x, w, (1, 1), "VALID", (1, 1))))


def test_a_bad_plan_is_refused():
    x, w = _inputs((1, 8, 8, 1), (3, 3, 1, 2))
    with pytest.raises(ValueError,
                       match=r"conv2d: plan must be a ConvPlan of \('lax', 'im2col', 'onednn'\)"):
        conv2d(x, w, plan=ConvPlan("lax", "winograd", "lax"))
    with pytest.raises(ValueError, match="conv2d: plan must be a ConvPlan"):
        conv2d(x, w, plan=("lax", "lax", "lax"))


def test_shape_mismatch_names_both_shapes():
    x = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"conv2d_im2col: .*\(1, 8, 8, 3\) and \(3, 3, 4, 5\)"):
        conv2d_im2col(x, jnp.zeros((3, 3, 4, 5)))
    with pytest.raises(ValueError, match=r"conv2d: .*\(1, 8, 8, 3\) and \(3, 3, 4, 5\)"):
        conv2d(x, jnp.zeros((3, 3, 4, 5)))
