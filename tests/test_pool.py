"""MaxPool, AvgPool and GlobalAvgPool against numpy loops written here."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.layers import AvgPool, GlobalAvgPool, MaxPool


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
