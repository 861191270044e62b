"""MaxPool, AvgPool (1-D, 2-D, 3-D), GlobalAvgPool and GlobalMaxPool against numpy loops
written here (and PyTorch for 1-D gradients)."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.layers import (
    AvgPool,
    AvgPool1D,
    AvgPool3D,
    GlobalAvgPool,
    GlobalMaxPool,
    MaxPool,
    MaxPool1D,
    MaxPool3D,
)


def ref_pool(x, window, stride, padding, op):
    """Each output is `op` over the REAL input cells under its window (padding excluded)."""
    x = np.asarray(x, np.float64)
    (wh, ww), (sh, sw) = window, stride
    n, h, w, c = x.shape
    if padding in ("SAME", "VALID"):
        pads = []
        for size, k, s in ((h, wh, sh), (w, ww, sw)):
            if padding == "VALID":
                pads.append((0, 0))
            else:
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads.append((total // 2, total - total // 2))
    elif isinstance(padding, int):
        pads = [(padding, padding)] * 2
    else:
        pads = list(padding)
    (pt, pb), (pl, pr) = pads
    oh = (h + pt + pb - wh) // sh + 1
    ow = (w + pl + pr - ww) // sw + 1
    y = np.zeros((n, oh, ow, c))
    for i in range(oh):
        for j in range(ow):
            r0, c0 = i * sh - pt, j * sw - pl
            rows = slice(max(r0, 0), min(r0 + wh, h))
            cols = slice(max(c0, 0), min(c0 + ww, w))
            y[:, i, j, :] = op(x[:, rows, cols, :], axis=(1, 2))
    return y


CASES = [
    ((2, 2), None, "VALID"),
    ((3, 3), (2, 2), "VALID"),
    ((3, 3), (2, 2), "SAME"),
    ((3, 3), (1, 1), "SAME"),
    ((2, 3), (1, 2), 1),
    ((3, 2), (2, 1), ((1, 0), (0, 1))),
]


@pytest.mark.parametrize("window,stride,padding", CASES)
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_against_numpy(seed, kind, window, stride, padding):
    layer = (MaxPool if kind == "max" else AvgPool)(window, stride, padding)
    x = np.random.default_rng(seed).normal(size=(2, 7, 6, 3)).astype(np.float32)
    y, state = jax.jit(lambda x: layer.apply({}, {}, x))(x)
    expected = ref_pool(x, window, stride or window, padding, np.max if kind == "max" else np.mean)
    assert state == {}
    assert y.shape == expected.shape
    assert fnn.output_shape(layer, x.shape[1:]) == expected.shape[1:]
    np.testing.assert_allclose(y, expected, rtol=1e-6, atol=1e-6)


def test_same_avg_pool_excludes_padding():
    """All-ones input: every average is exactly 1, also at the padded border."""
    layer = AvgPool(3, stride=1, padding="SAME")
    y, _ = layer.apply({}, {}, jnp.ones((1, 4, 4, 1)))
    np.testing.assert_array_equal(y, 1.0)
    # corner by hand: mean of x[0:2, 0:2] of arange(16), i.e. (0 + 1 + 4 + 5) / 4
    y, _ = layer.apply({}, {}, jnp.arange(16.0).reshape(1, 4, 4, 1))
    assert float(y[0, 0, 0, 0]) == 2.5


def test_max_pool_padding_never_wins():
    layer = MaxPool(2, stride=1, padding=1)
    y, _ = layer.apply({}, {}, -jnp.ones((1, 2, 2, 1)))
    np.testing.assert_array_equal(y, -1.0)


def test_max_pool_gradient_routes_to_max():
    x = jnp.array([[1.0, 5.0], [3.0, 2.0]]).reshape(1, 2, 2, 1)
    g = jax.grad(lambda x: MaxPool(2).apply({}, {}, x)[0].sum())(x)
    np.testing.assert_array_equal(g.reshape(2, 2), [[0, 1], [0, 0]])


def test_global_avg_pool(seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, 4, 5)).astype(np.float32)
    y, _ = GlobalAvgPool().apply({}, {}, x)
    assert y.shape == (2, 5)
    np.testing.assert_allclose(y, x.astype(np.float64).mean((1, 2)), rtol=1e-6, atol=1e-6)
    assert fnn.output_shape(GlobalAvgPool(), (3, 4, 5)) == (5,)


def test_errors():
    with pytest.raises(ValueError, match=r"MaxPool: expected a rank-4 input \(N, H, W, C\), got "
                                         r"shape \(4, 4, 1\) \(rank 3\)"):
        MaxPool(2).apply({}, {}, jnp.ones((4, 4, 1)))
    with pytest.raises(ValueError, match=r"AvgPool: the window \(5, 5\) .* larger than the input "
                                         r"\(1, 4, 4, 1\)"):
        AvgPool(5).apply({}, {}, jnp.ones((1, 4, 4, 1)))
    with pytest.raises(ValueError, match=r"MaxPool: the window \(3, 3\) .* larger than the input "
                                         r"\(2, 2, 3\)"):
        MaxPool(3).init(None, (2, 2, 3))
    with pytest.raises(ValueError, match="MaxPool: unknown padding 'full'"):
        MaxPool(2, padding="full")
    with pytest.raises(ValueError, match="AvgPool: stride must be positive, got -1"):
        AvgPool(2, stride=-1)
    with pytest.raises(ValueError, match="MaxPool: window must be positive, got 0"):
        MaxPool(0)
    with pytest.raises(TypeError,
                       match="AvgPool: expected a floating-point input, got dtype int32"):
        AvgPool(2).apply({}, {}, jnp.ones((1, 4, 4, 1), jnp.int32))
    with pytest.raises(ValueError, match=r"GlobalAvgPool: expected an input \(N, H, W, C\), got "
                                         r"shape \(2, 5\)"):
        GlobalAvgPool().apply({}, {}, jnp.ones((2, 5)))


@pytest.mark.parametrize("padding", ["VALID", 1])
def test_avg_pool_half_precision_does_not_overflow_in_the_sum(padding):
    # Four float16 cells of 60000 sum to 240000 > 65504 (float16's max), but their
    # mean is 60000: the sum runs in float32 (before: inf).
    x = np.full((1, 4, 4, 1), 60000.0) * np.linspace(0.9, 1.0, 16).reshape(1, 4, 4, 1)
    x16 = jnp.asarray(x, jnp.float16)
    y = AvgPool(2, padding=padding).apply({}, {}, x16)[0]
    assert y.dtype == jnp.float16
    expected = ref_pool(np.asarray(x16), (2, 2), (2, 2), padding, np.mean)
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=1e-3)


def test_global_avg_pool_rejects_an_empty_spatial_axis():
    # Before: init passed and apply returned NaN (the mean over no positions).
    with pytest.raises(ValueError, match=r"GlobalAvgPool: input_shape \(0, 3, 2\) has an empty"):
        GlobalAvgPool().init(None, (0, 3, 2))
    with pytest.raises(ValueError, match=r"GlobalAvgPool: the input of shape \(1, 3, 0, 2\)"):
        GlobalAvgPool().apply({}, {}, jnp.ones((1, 3, 0, 2)))
    assert GlobalAvgPool().apply({}, {}, jnp.ones((0, 3, 3, 2)))[0].shape == (0, 2)  # no examples


# ---------------------------------------------------------------------------
# 1-D and 3-D pools, GlobalMaxPool (issue 25)


def ref_pool_nd(x, window, stride, pads, op):
    """`op` over the real cells under each window, any number of spatial axes (float64)."""
    x = np.asarray(x, np.float64)
    spatial = x.shape[1:-1]
    out = [(n + lo + hi - k) // s + 1 for n, k, s, (lo, hi) in zip(spatial, window, stride, pads)]
    y = np.zeros((x.shape[0], *out, x.shape[-1]))
    for idx in np.ndindex(*out):
        cells = tuple(slice(max(i * s - lo, 0), min(i * s - lo + k, n))
                      for i, k, s, (lo, _), n in zip(idx, window, stride, pads, spatial))
        y[(slice(None), *idx)] = op(x[(slice(None), *cells)], axis=tuple(range(1, len(out) + 1)))
    return y


def same_pads(n, k, s):
    total = max((math.ceil(n / s) - 1) * s + k - n, 0)
    return total // 2, total - total // 2


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("ndim,window,stride,padding", [
    (1, 2, None, "VALID"),
    (1, 3, 2, "SAME"),
    (1, 3, 1, ((2, 0),)),
    (3, 2, None, "VALID"),
    (3, (2, 3, 2), (1, 2, 2), "SAME"),
    (3, 2, 1, 1),
])
def test_pool_1d_3d_against_numpy(seed, kind, ndim, window, stride, padding):
    layer = {("max", 1): MaxPool1D, ("avg", 1): AvgPool1D, ("max", 3): MaxPool3D,
             ("avg", 3): AvgPool3D}[kind, ndim](window, stride, padding)
    shape = (2, 7, 3) if ndim == 1 else (2, 4, 5, 5, 2)
    x = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    tup = lambda v: (v,) * ndim if isinstance(v, int) else tuple(v)
    win, st = tup(window), tup(stride or window)
    if padding == "SAME":
        pads = [same_pads(n, k, s) for n, k, s in zip(shape[1:-1], win, st)]
    elif padding == "VALID":
        pads = [(0, 0)] * ndim
    elif isinstance(padding, int):
        pads = [(padding, padding)] * ndim
    else:
        pads = list(padding)
    op = np.max if kind == "max" else np.mean
    y, _ = jax.jit(lambda x: layer.apply({}, {}, x))(x)
    np.testing.assert_allclose(y, ref_pool_nd(x, win, st, pads, op), rtol=1e-6, atol=1e-6)
    assert fnn.output_shape(layer, shape[1:]) == y.shape[1:]


def test_pool_1d_gradients_equal_torch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).normal(size=(2, 9, 3)).astype(np.float32)
    for layer, tfn in ((MaxPool1D(3, 2, 1), torch.nn.functional.max_pool1d),
                       (AvgPool1D(3, 2, 1), lambda t, *a: torch.nn.functional.avg_pool1d(
                           t, *a, count_include_pad=False))):
        tx = torch.tensor(x.transpose(0, 2, 1), dtype=torch.float64, requires_grad=True)
        ty = tfn(tx, 3, 2, 1)
        ty.pow(2).sum().backward()
        y, vjp = jax.vjp(lambda x, layer=layer: layer.apply({}, {}, x)[0], x)
        np.testing.assert_allclose(y, ty.detach().numpy().transpose(0, 2, 1), rtol=1e-6)
        np.testing.assert_allclose(vjp(2 * y)[0], tx.grad.numpy().transpose(0, 2, 1),
                                   rtol=1e-5, atol=1e-6)


def test_global_max_pool(seed):
    x = np.random.default_rng(seed).normal(size=(2, 3, 4, 5)).astype(np.float32)
    y, _ = GlobalMaxPool().apply({}, {}, x)
    np.testing.assert_array_equal(y, x.max((1, 2)))
    g = jax.grad(lambda x: GlobalMaxPool().apply({}, {}, x)[0].sum())(x)
    np.testing.assert_array_equal(g, (x == x.max((1, 2), keepdims=True)).astype(np.float32))
    assert fnn.output_shape(GlobalMaxPool(), (3, 4, 5)) == (5,)
    x3 = jnp.arange(2 * 2 * 2 * 3 * 2.0).reshape(2, 2, 2, 3, 2)
    np.testing.assert_array_equal(GlobalMaxPool().apply({}, {}, x3)[0], x3.max((1, 2, 3)))
    vm = jax.vmap(lambda xi: GlobalMaxPool().apply({}, {}, xi[None])[0][0])(x)
    np.testing.assert_array_equal(vm, y)


BAD_INPUT = [
    (lambda: MaxPool1D(0), ValueError, r"MaxPool1D: window must be positive, got 0"),
    (lambda: AvgPool1D((2, 2)), TypeError, r"AvgPool1D: window must be an int, got \(2, 2\)"),
    (lambda: MaxPool3D((2, 2)), TypeError,
     r"MaxPool3D: window must be an int or a tuple of 3 ints, got \(2, 2\)"),
    (lambda: AvgPool3D(2, padding="full"), ValueError, r"AvgPool3D: unknown padding 'full'"),
    (lambda: MaxPool1D(2, padding=2), ValueError,
     r"MaxPool1D: padding 2 must be smaller than the window 2 on every side \(got a pad of 2 "
     r"on the L axis"),
    (lambda: AvgPool3D(2, padding=((0, 0), (0, 0), (2, 0))), ValueError,
     r"AvgPool3D: padding .* must be smaller than the window 2 .* on the W axis"),
    (lambda: MaxPool3D(2).apply({}, {}, jnp.ones((2, 4, 4, 1))), ValueError,
     r"MaxPool3D: expected a rank-5 input \(N, D, H, W, C\), got shape \(2, 4, 4, 1\)"),
    (lambda: AvgPool1D(2).init(None, (4, 4, 1)), ValueError,
     r"AvgPool1D: expected input_shape \(L, C\) for one sequence, got \(4, 4, 1\)"),
    (lambda: MaxPool1D(5).init(None, (4, 1)), ValueError,
     r"MaxPool1D: the window \(5,\) .* is larger than the input \(4, 1\)"),
    (lambda: AvgPool1D(2).apply({}, {}, jnp.ones((1, 4, 1), jnp.int32)), TypeError,
     r"AvgPool1D: expected a floating-point input, got dtype int32"),
    (lambda: GlobalMaxPool().apply({}, {}, jnp.ones((2, 5))), ValueError,
     r"GlobalMaxPool: expected an input \(N, H, W, C\), got shape \(2, 5\)"),
    (lambda: GlobalMaxPool().init(None, (0, 3, 2)), ValueError,
     r"GlobalMaxPool: input_shape \(0, 3, 2\) has an empty spatial axis .* the maximum over no "
     r"positions"),
]


@pytest.mark.parametrize("trigger,exc,match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
