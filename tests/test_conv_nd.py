"""Conv1D, Conv2D with groups and Conv3D against PyTorch (float64), values and gradients
with respect to the input, the kernel and the bias; the CPU plan of grouped convolutions;
vmap, jit; `fnn.summary`'s closed-form counts; the bad-input table."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn.layers import Conv1D, Conv2D, Conv3D, _fast_conv, _onednn_conv

torch = pytest.importorskip("torch")
F = torch.nn.functional

LAYERS = {1: Conv1D, 2: Conv2D, 3: Conv3D}
TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def tf_same_pads(n, k, s, d):
    """(before, after) of "SAME" on one axis: output ⌈n/s⌉, the odd cell after."""
    k_eff = d * (k - 1) + 1
    total = max((math.ceil(n / s) - 1) * s + k_eff - n, 0)
    return total // 2, total - total // 2


def torch_conv(x, w, b, stride, padding, dilation, groups):
    """The float64 PyTorch twin: channels first, weight `w.transpose(-1, -2, 0, ...)`,
    padding made explicit with `F.pad` (torch pads symmetrically only)."""
    ndim = x.ndim - 2
    tup = lambda v: (v,) * ndim if isinstance(v, int) else tuple(v)
    k, s, d = tup(w.shape[:ndim]), tup(stride), tup(dilation)
    if padding == "SAME":
        pads = [tf_same_pads(n, *a) for n, a in zip(x.shape[1:-1], zip(k, s, d))]
    elif padding == "VALID":
        pads = [(0, 0)] * ndim
    elif isinstance(padding, int):
        pads = [(padding, padding)] * ndim
    else:
        pads = list(padding)
    xt = x.permute(0, ndim + 1, *range(1, ndim + 1))
    xt = F.pad(xt, [v for pair in reversed(pads) for v in pair])
    wt = w.permute(ndim + 1, ndim, *range(ndim))
    y = TORCH_CONV[ndim](xt, wt, b, stride=s, dilation=d, groups=groups)
    return y.permute(0, *range(2, ndim + 2), 1)


def check_against_torch(ndim, x_shape, features, kernel, *, stride=1, padding="SAME",
                        dilation=1, groups=1, seed=0):
    """Forward and the three gradients of `<ndim>-D Conv` equal PyTorch's (one jit)."""
    layer = LAYERS[ndim](features, kernel, stride=stride, padding=padding, dilation=dilation,
                         groups=groups)
    rng = np.random.default_rng(seed)
    params, _ = layer.init(jax.random.key(seed), x_shape[1:])
    params = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
    x = rng.normal(size=x_shape).astype(np.float32)

    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True)
                  for a in (x, params["w"], params["b"]))
    ty = torch_conv(tx, tw, tb, stride, padding, dilation, groups)
    g = rng.normal(size=tuple(ty.shape)).astype(np.float32)
    (ty * torch.tensor(g, dtype=torch.float64)).sum().backward()

    @jax.jit
    def run(params, x, g):
        y, vjp = jax.vjp(lambda p, x: layer.apply(p, {}, x)[0], params, x)
        return y, vjp(g)

    y, (gp, gx) = run(params, x, g)
    tol = dict(rtol=2e-5, atol=2e-4)
    np.testing.assert_allclose(y, ty.detach().numpy(), **tol)
    np.testing.assert_allclose(gx, tx.grad.numpy(), **tol)
    np.testing.assert_allclose(gp["w"], tw.grad.numpy(), **tol)
    np.testing.assert_allclose(gp["b"], tb.grad.numpy(), **tol)
    assert fnn.output_shape(layer, x_shape[1:]) == y.shape[1:]


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(padding="VALID", stride=2),
    dict(padding=2, dilation=2, groups=2),
    dict(padding=((2, 0),), stride=3, groups=4),        # depthwise
    dict(kernel=4, padding="SAME", stride=2, dilation=2),
])
def test_conv1d_equals_torch(kwargs):
    kwargs = {"kernel": 3, **kwargs}
    check_against_torch(1, (2, 11, 4), 8, kwargs.pop("kernel"), **kwargs)


@pytest.mark.parametrize("x_shape,features,kwargs", [
    ((2, 7, 6, 4), 6, dict(groups=2)),
    ((2, 7, 6, 4), 4, dict(groups=4, stride=2, padding="SAME")),                # depthwise
    ((2, 7, 5, 6), 12, dict(groups=6, padding=((1, 2), (0, 1)), dilation=(2, 1))),
    ((1, 9, 8, 4), 2, dict(groups=2, padding="VALID", stride=(2, 3))),
    ((2, 5, 5, 1), 3, dict(groups=1, padding=1)),                              # one channel
])
def test_conv2d_with_groups_equals_torch(x_shape, features, kwargs):
    check_against_torch(2, x_shape, features, 3, **kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(padding="VALID", stride=(1, 2, 2), groups=2),
    dict(padding=((1, 0), (0, 1), (1, 1)), dilation=(1, 2, 1), groups=4),      # depthwise
])
def test_conv3d_equals_torch(kwargs):
    check_against_torch(3, (2, 4, 5, 6, 4), 4, (2, 3, 2), **kwargs)


def test_depthwise_by_hand():
    """groups=C: channel c is convolved with its own kernel only; ones of size 3: window sums."""
    x = (np.arange(5, dtype=np.float32)[:, None] * np.array([1, 10], np.float32))[None]
    layer = Conv1D(2, 3, padding="VALID", groups=2, use_bias=False)
    y, _ = layer.apply({"w": jnp.ones((3, 1, 2)) * jnp.array([1.0, -1.0]).reshape(1, 1, 2)}, {}, x)
    np.testing.assert_array_equal(y[0, :, 0], [0 + 1 + 2, 1 + 2 + 3, 2 + 3 + 4])
    np.testing.assert_array_equal(y[0, :, 1], [-(0 + 10 + 20), -(10 + 20 + 30), -(20 + 30 + 40)])


# ---------------------------------------------------------------------------
# the CPU plan of grouped convolutions


def test_grouped_plan_is_onednn_where_supported_else_lax():
    cpu = jax.default_backend() == "cpu"
    plan = _fast_conv.conv_plan((8, 16, 16, 32), (3, 3, 1, 32), (1, 1), "SAME")
    assert plan == (_fast_conv.ONEDNN if cpu and _onednn_conv.enabled() else _fast_conv.LAX)
    _onednn_conv.use_onednn(False)
    try:
        assert _fast_conv.conv_plan((8, 16, 16, 32), (3, 3, 1, 32), (1, 1), "SAME") == \
            _fast_conv.LAX
        # one group, one channel: still im2col (the groups test does not catch it)
        assert _fast_conv.conv_plan((8, 16, 16, 1), (3, 3, 1, 8), (1, 1), "SAME") == (
            _fast_conv.ConvPlan("im2col", "im2col", "lax") if cpu else _fast_conv.LAX)
    finally:
        _onednn_conv.use_onednn(None)


@pytest.mark.skipif(not _onednn_conv.enabled(), reason="fnn_onednn not installed or off")
def test_grouped_conv2d_runs_on_onednn_and_equals_lax():
    layer = Conv2D(8, 3, groups=8)
    params, _ = layer.init(jax.random.key(0), (6, 6, 8))
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 8))
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, {}, x)[0]))
    text = str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(params, x))
    assert all(name in text for name in _onednn_conv.PRIMITIVE_NAMES)
    _onednn_conv.use_onednn(False)
    try:
        lax_grads = jax.grad(loss, argnums=(0, 1))(params, x)
        assert "onednn" not in str(jax.make_jaxpr(jax.grad(loss))(params, x))
    finally:
        _onednn_conv.use_onednn(None)
    chex.assert_trees_all_close(jax.grad(loss, argnums=(0, 1))(params, x), lax_grads,
                                rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# vmap and jit


class VmapJitTest(chex.TestCase):
    """vmap over examples equals the batched call, with and without jit."""

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("conv1d", Conv1D(4, 3, groups=2), (5, 4)),
        ("conv2d_depthwise", Conv2D(3, 3, stride=2, groups=3), (5, 5, 3)),
        ("conv3d", Conv3D(2, 2, groups=2, padding="VALID"), (3, 3, 3, 2)),
    )
    def test_vmap_equals_batch(self, layer, shape):
        params, _ = layer.init(jax.random.key(0), shape)
        x = jax.random.normal(jax.random.key(1), (3, *shape))
        one = lambda p, xi: layer.apply(p, {}, xi[None])[0][0]
        mapped = self.variant(jax.vmap(one, in_axes=(None, 0)))(params, x)
        batched = self.variant(lambda p, x: layer.apply(p, {}, x)[0])(params, x)
        chex.assert_trees_all_close(mapped, batched, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# fnn.summary: params and MACs in closed form


@pytest.mark.parametrize("layer,shape,macs", [
    # out cells × taps × in/groups × features
    (Conv1D(6, 3, groups=3), (7, 3), 7 * 3 * 1 * 6),
    (Conv2D(8, 3, groups=4), (6, 6, 8), 6 * 6 * 9 * 2 * 8),
    (Conv2D(8, 3, groups=8, stride=2), (6, 6, 8), 3 * 3 * 9 * 1 * 8),
    (Conv3D(4, 2, groups=2, padding="VALID"), (3, 3, 3, 2), 2 * 2 * 2 * 8 * 1 * 4),
])
def test_summary_counts_params_and_macs(layer, shape, macs):
    s = fnn.summary(layer, shape)
    w = layer.init(jax.random.key(0), shape)[0]["w"]
    features = w.shape[-1]
    assert s.total_params == w.size + features
    assert s.total_macs == macs


# ---------------------------------------------------------------------------
# bad input


def _apply(layer, shape, x):
    return lambda: layer.apply(layer.init(jax.random.key(0), shape)[0], {}, x)


BAD_INPUT = [
    (lambda: Conv2D(6, 3, groups=4), ValueError,
     r"Conv2D: features 6 must be divisible by groups=4"),
    (lambda: Conv1D(4, 3, groups=0), ValueError, r"Conv1D: groups must be a positive int, got 0"),
    (lambda: Conv3D(4, 3, groups=1.5), TypeError, r"Conv3D: groups must be a positive int"),
    (lambda: Conv2D(4, 3, groups=2).init(jax.random.key(0), (5, 5, 3)), ValueError,
     r"Conv2D: input_shape \(5, 5, 3\) has 3 input channels, not divisible by groups=2"),
    (_apply(Conv2D(4, 3, groups=2), (5, 5, 4), jnp.ones((1, 5, 5, 6))), ValueError,
     r"Conv2D: the kernel of shape \(3, 3, 2, 4\) .* expects 4 input channels \(2 per group "
     r"× groups=2\), got input of shape \(1, 5, 5, 6\) with 6"),
    (_apply(Conv1D(4, 3), (5, 2), jnp.ones((5, 2))), ValueError,
     r"Conv1D: expected a rank-3 input \(N, L, C\), got shape \(5, 2\) \(rank 2\)\. Add a "
     r"batch axis with x\[None\] for one sequence"),
    (_apply(Conv3D(4, 2), (3, 3, 3, 1), jnp.ones((1, 3, 3, 1))), ValueError,
     r"Conv3D: expected a rank-5 input \(N, D, H, W, C\), got shape \(1, 3, 3, 1\)"),
    (lambda: Conv1D(4, 3).init(jax.random.key(0), (5, 5, 2)), ValueError,
     r"Conv1D: expected input_shape \(L, C\) for one sequence, got \(5, 5, 2\)"),
    (lambda: Conv3D(4, (2, 2)), TypeError,
     r"Conv3D: kernel_size must be an int or a tuple of 3 ints, got \(2, 2\)"),
    (lambda: Conv1D(4, (2, 2)), TypeError, r"Conv1D: kernel_size must be an int, got \(2, 2\)"),
    (lambda: Conv3D(4, 3, stride=(1, 0, 1)), ValueError,
     r"Conv3D: stride must be positive, got \(1, 0, 1\)"),
    (lambda: Conv3D(4, 3, padding=((1, 1), (1, 1))), ValueError,
     r"Conv3D: invalid padding .*; expected \"SAME\", \"VALID\", an int p \(p on every side\), "
     r"or \(\(before, after\), \(before, after\), \(before, after\)\)"),
    (lambda: Conv1D(4, 3, padding="full"), ValueError, r"Conv1D: unknown padding 'full'"),
    (lambda: Conv1D(4, 3, padding=-1), ValueError, r"Conv1D: padding must be >= 0, got -1"),
    (lambda: Conv3D(4, 4, padding="VALID").init(jax.random.key(0), (3, 5, 5, 1)), ValueError,
     r"Conv3D: the kernel \(4, 4, 4, 1, 4\) .* is larger than the input \(3, 5, 5, 1\)"),
    (lambda: _fast_conv.conv2d(jnp.ones((1, 4, 4, 4)), jnp.ones((3, 3, 2, 4)), groups=2,
                               plan=_fast_conv.IM2COL), ValueError,
     r"conv2d: im2col takes groups=1 only, got groups=2"),
    (lambda: _fast_conv.conv2d(jnp.ones((1, 4, 4, 4)), jnp.ones((3, 3, 2, 3)), groups=2),
     ValueError, r"conv2d: expected x \(N, H, W, C\) and w \(kh, kw, C/groups, O\) with "
     r"groups=2 dividing C and O"),
]


@pytest.mark.parametrize("trigger,exc,match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
