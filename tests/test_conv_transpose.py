"""ConvTranspose1D/2D/3D against PyTorch's conv_transpose (float64): values and gradients
with respect to the input, the kernel and the bias, over strides, paddings, output
paddings and dilations; "SAME" against a cropped PyTorch full output and as the adjoint
of Conv2D("SAME"); vmap, jit; `fnn.summary`; the bad-input table."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn.layers import (
    Conv2D,
    ConvTranspose1D,
    ConvTranspose2D,
    ConvTranspose3D,
    _onednn_conv,
    conv_transpose_output_size,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

LAYERS = {1: ConvTranspose1D, 2: ConvTranspose2D, 3: ConvTranspose3D}
TORCH = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def tup(v, ndim):
    return (v,) * ndim if isinstance(v, int) else tuple(v)


def torch_conv_transpose(x, w, b, stride, padding, output_padding, dilation):
    """PyTorch's twin, channels first, weight `w.transpose(ndim, ndim + 1, 0, ...)`. For
    "SAME": PyTorch's full output (padding 0), cropped to `n·s` cells from `⌊c/2⌋`
    (`c = k_eff − s`), zero-extended at the end when `c < 0`."""
    ndim = x.ndim - 2
    xt = x.permute(0, ndim + 1, *range(1, ndim + 1))
    wt = w.permute(ndim, ndim + 1, *range(ndim))
    k, s, d = tup(w.shape[:ndim], ndim), tup(stride, ndim), tup(dilation, ndim)
    if padding != "SAME":
        y = TORCH[ndim](xt, wt, b, s, tup(padding, ndim), tup(output_padding, ndim), 1, d)
        return y.permute(0, *range(2, ndim + 2), 1)
    y = TORCH[ndim](xt, wt, None, s, 0, 0, 1, d)
    for axis in range(ndim):
        n, full = x.shape[1 + axis], y.shape[2 + axis]
        c = d[axis] * (k[axis] - 1) + 1 - s[axis]
        start = max(c, 0) // 2
        if full - start < n * s[axis]:       # c < 0: zeros after the full output
            extra = [0, 0] * ndim
            extra[2 * (ndim - 1 - axis) + 1] = n * s[axis] - full
            y = F.pad(y, extra)
        y = y.narrow(2 + axis, start, n * s[axis])
    y = y + b.reshape(1, -1, *([1] * ndim))
    return y.permute(0, *range(2, ndim + 2), 1)


def check_against_torch(ndim, x_shape, features, kernel, *, stride=1, padding=0,
                        output_padding=0, dilation=1, seed=0):
    layer = LAYERS[ndim](features, kernel, stride=stride, padding=padding,
                         output_padding=output_padding, dilation=dilation)
    rng = np.random.default_rng(seed)
    params, _ = layer.init(jax.random.key(seed), x_shape[1:])
    params = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
    x = rng.normal(size=x_shape).astype(np.float32)

    tx, tw, tb = (torch.tensor(a, dtype=torch.float64, requires_grad=True)
                  for a in (x, params["w"], params["b"]))
    ty = torch_conv_transpose(tx, tw, tb, stride, padding, output_padding, dilation)
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
    return y


@pytest.mark.parametrize("kwargs", [
    dict(),
    dict(stride=2, padding=1, output_padding=1),
    dict(stride=3, padding=2, output_padding=2, dilation=2),
    dict(stride=1, padding=3, dilation=2, output_padding=1),     # q < dilation suffices
    dict(kernel=2, stride=3),                                   # gaps between patches
    dict(stride=2, padding="SAME"),
    dict(kernel=4, stride=2, padding="SAME"),                   # c = 2: crop 1 and 1
    dict(kernel=2, stride=3, padding="SAME"),                   # c < 0: zeros at the end
])
def test_conv_transpose1d_equals_torch(kwargs):
    kwargs = {"kernel": 3, **kwargs}
    check_against_torch(1, (2, 5, 3), 4, kwargs.pop("kernel"), **kwargs)


@pytest.mark.parametrize("kernel,kwargs", [
    (3, dict(stride=2, padding=1, output_padding=1)),
    ((4, 3), dict(stride=(2, 1), padding=(1, 0), dilation=(1, 2))),
    ((3, 2), dict(stride=(2, 3), padding="SAME", dilation=(2, 1))),
    (3, dict(stride=2, padding=4)),          # crops more than k_eff − 1: negative lax pads
])
def test_conv_transpose2d_equals_torch(kernel, kwargs):
    check_against_torch(2, (2, 5, 4, 3), 2, kernel, **kwargs)


@pytest.mark.parametrize("kwargs", [
    dict(stride=2, padding=(1, 0, 1), output_padding=(1, 0, 0)),
    dict(stride=(1, 2, 2), padding="SAME"),
])
def test_conv_transpose3d_equals_torch(kwargs):
    check_against_torch(3, (1, 3, 4, 3, 2), 3, (2, 3, 3), **kwargs)


@pytest.mark.parametrize("kernel,stride", [(3, 2), (4, 2), (2, 3), (5, 1)])
def test_same_is_the_adjoint_of_conv2d_same(kernel, stride):
    """⟨ConvTranspose(x), z⟩ = ⟨x, Conv2D(z)⟩ with the kernel's in/out swapped: the
    reference is jax's own transpose of `lax.conv_general_dilated`."""
    up = ConvTranspose2D(2, kernel, stride=stride, padding="SAME", use_bias=False)
    down = Conv2D(3, kernel, stride=stride, padding="SAME", use_bias=False)
    rng = np.random.default_rng(0)
    w = rng.normal(size=(kernel, kernel, 3, 2)).astype(np.float32)
    x = rng.normal(size=(1, 4, 5, 3)).astype(np.float32)
    z_shape = (1, 4 * stride, 5 * stride, 2)
    conv = lambda z: jax.lax.conv_general_dilated(
        z, jnp.swapaxes(w, 2, 3), (stride, stride), "SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))
    expected = jax.linear_transpose(conv, jax.ShapeDtypeStruct(z_shape, jnp.float32))(x)[0]
    y, _ = up.apply({"w": w}, {}, x)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    assert fnn.output_shape(down, z_shape[1:]) == x.shape[1:]


def test_by_hand():
    """Stride 2, kernel [1, 2, 3], no padding: each input cell drops a scaled copy of
    the kernel two cells after the previous one; overlaps add."""
    layer = ConvTranspose1D(1, 3, stride=2, use_bias=False)
    y, _ = layer.apply({"w": jnp.array([1.0, 2.0, 3.0]).reshape(3, 1, 1)}, {},
                       jnp.array([1.0, 10.0]).reshape(1, 2, 1))
    np.testing.assert_array_equal(y[0, :, 0], [1, 2, 3 + 10, 20, 30])


@pytest.mark.parametrize("args,expected", [
    ((7, 3, 2, 1, 1), 14), ((5, 4, 2, 1), 10), ((5, 3, 1, 0), 7), ((5, 3, 3, "SAME"), 15),
    ((4, 3, 2, 0, 1), 10),
])
def test_output_size(args, expected):
    assert conv_transpose_output_size(*args) == expected
    n, k, s = args[:3]
    p = args[3] if len(args) > 3 else 0
    q = args[4] if len(args) > 4 else 0
    if p != "SAME":   # PyTorch's own shape rule
        x = torch.zeros(1, 1, n)
        assert F.conv_transpose1d(x, torch.zeros(1, 1, k), None, s, p, q).shape[-1] == expected


class VmapJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(
        ("1d", ConvTranspose1D(2, 3, stride=2, padding=1, output_padding=1), (4, 3)),
        ("2d_same", ConvTranspose2D(2, 3, stride=2, padding="SAME"), (3, 3, 2)),
        ("3d", ConvTranspose3D(2, 2, stride=2), (2, 2, 2, 1)),
    )
    def test_vmap_equals_batch(self, layer, shape):
        params, _ = layer.init(jax.random.key(0), shape)
        x = jax.random.normal(jax.random.key(1), (3, *shape))
        one = lambda p, xi: layer.apply(p, {}, xi[None])[0][0]
        mapped = self.variant(jax.vmap(one, in_axes=(None, 0)))(params, x)
        batched = self.variant(lambda p, x: layer.apply(p, {}, x)[0])(params, x)
        chex.assert_trees_all_close(mapped, batched, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layer,shape", [
    (ConvTranspose2D(4, 3, stride=2, padding=1, output_padding=1), (5, 5, 3)),
    (ConvTranspose1D(6, 4, stride=2, padding="SAME"), (7, 2)),
    (ConvTranspose3D(2, 2, stride=2), (2, 3, 2, 3)),
])
def test_summary_counts_each_input_cell_times_the_kernel(layer, shape):
    """MACs = input cells × in × taps × features (as fvcore), not the zeros of the
    stride-dilated input; params = taps × in × features + features."""
    s = fnn.summary(layer, shape)
    w = layer.init(jax.random.key(0), shape)[0]["w"]
    taps, features = int(np.prod(w.shape[:-2])), w.shape[-1]
    assert s.total_macs == int(np.prod(shape)) * taps * features
    assert s.total_params == w.size + features


@pytest.mark.skipif(not _onednn_conv.enabled(), reason="fnn_onednn not installed or off")
@pytest.mark.parametrize("layer,shape,on_onednn", [
    (ConvTranspose2D(3, 4, stride=2, padding=1), (4, 4, 2), True),
    (ConvTranspose1D(3, 3, stride=2, padding="SAME"), (5, 2), True),
    (ConvTranspose1D(3, 2, stride=3, padding="SAME"), (5, 2), False),   # zeros appended
    (ConvTranspose2D(3, 3, stride=2, output_padding=1), (4, 4, 2), False),  # q > p
    (ConvTranspose3D(3, 2, stride=2), (2, 2, 2, 2), False),
])
def test_onednn_where_the_crops_are_paddings(layer, shape, on_onednn):
    """1-D/2-D with crops >= 0 on oneDNN's backward-data kernel, the rest on lax; the
    same values and gradients either way."""
    params, _ = layer.init(jax.random.key(0), shape)
    x = jax.random.normal(jax.random.key(1), (2, *shape))
    loss = lambda p, x: jnp.sum(jnp.sin(layer.apply(p, {}, x)[0]))
    text = str(jax.make_jaxpr(loss)(params, x))
    assert ("onednn_conv_bwd_data" in text) == on_onednn
    grads = jax.grad(loss, argnums=(0, 1))(params, x)
    _onednn_conv.use_onednn(False)
    try:
        # a fresh function: make_jaxpr caches traces by function
        assert "onednn" not in str(jax.make_jaxpr(lambda p, x: loss(p, x))(params, x))
        lax_grads = jax.grad(loss, argnums=(0, 1))(params, x)
    finally:
        _onednn_conv.use_onednn(None)
    chex.assert_trees_all_close(grads, lax_grads, rtol=1e-5, atol=1e-5)


def _apply(layer, shape, x):
    return lambda: layer.apply(layer.init(jax.random.key(0), shape)[0], {}, x)


BAD_INPUT = [
    (lambda: ConvTranspose2D(4, 3, stride=2, output_padding=2), ValueError,
     r"ConvTranspose2D: output_padding \(2, 2\) must be smaller than the stride \(2, 2\) or "
     r"the dilation \(1, 1\) on every axis \(PyTorch's rule\), got 2"),
    (lambda: ConvTranspose1D(4, 3, output_padding=1), ValueError,
     r"ConvTranspose1D: output_padding \(1,\) must be smaller than the stride"),
    (lambda: ConvTranspose2D(4, 3, stride=2, padding="SAME", output_padding=1), ValueError,
     r"ConvTranspose2D: output_padding must be 0 with padding=\"SAME\""),
    (lambda: ConvTranspose2D(4, 3, padding=-1), ValueError,
     r"ConvTranspose2D: padding must be >= 0, got -1"),
    (lambda: ConvTranspose2D(4, 3, padding="full"), ValueError,
     r"ConvTranspose2D: unknown padding 'full'; expected \"SAME\", \"VALID\" or an int"),
    (lambda: ConvTranspose3D(4, 3, padding=((1, 1),) * 3), TypeError,
     r"ConvTranspose3D: padding must be an int or a tuple of 3 ints"),
    (lambda: ConvTranspose2D(4, 0), ValueError,
     r"ConvTranspose2D: kernel_size must be positive, got 0"),
    (lambda: ConvTranspose1D(4, 3, stride=(1, 2)), TypeError,
     r"ConvTranspose1D: stride must be an int, got \(1, 2\)"),
    (lambda: ConvTranspose2D(0, 3), ValueError,
     r"ConvTranspose2D: features must be a positive int, got 0"),
    (lambda: ConvTranspose1D(2, 3, padding=3).init(jax.random.key(0), (1, 1)), ValueError,
     r"ConvTranspose1D: padding 3 crops the whole output of the input \(1, 1\)"),
    (lambda: ConvTranspose2D(2, 3).init(jax.random.key(0), (4, 1)), ValueError,
     r"ConvTranspose2D: expected input_shape \(H, W, C\) for one image, got \(4, 1\)"),
    (_apply(ConvTranspose2D(2, 3), (4, 4, 1), jnp.ones((4, 4, 1))), ValueError,
     r"ConvTranspose2D: expected a rank-4 input \(N, H, W, C\), got shape \(4, 4, 1\)"),
    (_apply(ConvTranspose2D(2, 3), (4, 4, 1), jnp.ones((1, 4, 4, 3))), ValueError,
     r"ConvTranspose2D: the kernel of shape \(3, 3, 1, 2\) .* expects 1 input channels, got "
     r"input of shape \(1, 4, 4, 3\) with 3"),
    (_apply(ConvTranspose1D(2, 3), (4, 1), jnp.ones((1, 4, 1), jnp.int32)), TypeError,
     r"ConvTranspose1D: expected a floating-point input, got dtype int32"),
    (lambda: conv_transpose_output_size(4, 3, 2, 0, 2), ValueError,
     r"conv_transpose_output_size: output_padding \(2,\) must be smaller"),
    (lambda: conv_transpose_output_size(1, 3, 1, 2), ValueError,
     r"conv_transpose_output_size: padding 2 crops the whole output"),
]


@pytest.mark.parametrize("trigger,exc,match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
