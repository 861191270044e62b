"""`fnn.layers._fast_conv`: im2col + matmul equals `lax.conv_general_dilated`,
values and gradients, within float32 tolerance."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.layers._fast_conv import conv2d_im2col, explicit_padding, prefer_im2col

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


def test_prefer_im2col_picks_the_measured_winners_only():
    on_cpu = jax.default_backend() == "cpu"
    # LeNet-5's convolutions: unpadded 5x5, stride 1
    assert prefer_im2col((128, 32, 32, 1), (5, 5, 1, 6), (1, 1), "VALID") is on_cpu
    assert prefer_im2col((128, 14, 14, 6), (5, 5, 6, 16), (1, 1), "VALID") is on_cpu
    assert prefer_im2col((128, 28, 28, 1), (5, 5, 1, 6), (1, 1), ((2, 2), (2, 2))) is on_cpu
    assert not prefer_im2col((128, 28, 28, 1), (3, 3, 1, 6), (1, 1), "SAME")       # kernel < 5
    assert not prefer_im2col((64, 32, 32, 16), (5, 5, 16, 16), (1, 1), "SAME")    # padded, C > 1
    # ResNet's padded 3x3, strided, dilated, or padded 5x5: XLA's convolution
    assert not prefer_im2col((64, 32, 32, 16), (3, 3, 16, 16), (1, 1), ((1, 1), (1, 1)))
    assert not prefer_im2col((64, 32, 32, 16), (3, 3, 16, 32), (2, 2), ((1, 1), (1, 1)))
    assert not prefer_im2col((8, 32, 32, 3), (5, 5, 3, 8), (1, 1), "SAME")
    assert not prefer_im2col((8, 32, 32, 3), (5, 5, 3, 8), (1, 1), "VALID", (2, 2))


def test_shape_mismatch_names_both_shapes():
    x = jnp.zeros((1, 8, 8, 3))
    with pytest.raises(ValueError, match=r"conv2d_im2col: .*\(1, 8, 8, 3\) and \(3, 3, 4, 5\)"):
        conv2d_im2col(x, jnp.zeros((3, 3, 4, 5)))
