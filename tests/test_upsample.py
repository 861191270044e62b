"""Upsample against PyTorch's `interpolate(..., align_corners=False)` (float64): values and
input gradients for 1, 2 and 3 spatial axes, integer and fractional scales; by hand;
vmap, jit; the bad-input table."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn.layers import Upsample

torch = pytest.importorskip("torch")
TORCH_MODE = {("bilinear", 1): "linear", ("bilinear", 2): "bilinear",
              ("bilinear", 3): "trilinear"}


def torch_upsample(x, scale, method):
    ndim = x.ndim - 2
    mode = "nearest" if method == "nearest" else TORCH_MODE[method, ndim]
    extra = {} if mode == "nearest" else {"align_corners": False}
    xt = x.permute(0, ndim + 1, *range(1, ndim + 1))
    y = torch.nn.functional.interpolate(xt, scale_factor=scale, mode=mode, **extra)
    return y.permute(0, *range(2, ndim + 2), 1)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
@pytest.mark.parametrize("shape,scale", [
    ((2, 5, 3), 2),
    ((2, 5, 4, 3), (2, 3)),
    ((2, 5, 4, 3), 2.5),
    ((2, 7, 6, 2), 0.6),              # downsampling
    ((1, 3, 4, 5, 2), (2, 1, 3)),
])
def test_equals_torch(method, shape, scale):
    rng = np.random.default_rng(0)
    x = rng.normal(size=shape).astype(np.float32)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = torch_upsample(tx, scale, method)
    g = rng.normal(size=tuple(ty.shape)).astype(np.float32)
    (ty * torch.tensor(g, dtype=torch.float64)).sum().backward()

    layer = Upsample(scale, method)
    y, vjp = jax.vjp(lambda x: layer.apply({}, {}, x)[0], x)
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(vjp(g)[0], tx.grad.numpy(), rtol=1e-5, atol=1e-5)
    assert fnn.output_shape(layer, shape[1:]) == y.shape[1:]


def test_by_hand():
    x = jnp.array([0.0, 4.0]).reshape(1, 2, 1)
    near, _ = Upsample(2).apply({}, {}, x)
    np.testing.assert_array_equal(near[0, :, 0], [0, 0, 4, 4])
    # half-pixel centres: output i reads u = (i + ½)/2 − ½ = -¼ (→ 0), ¼, ¾, 5/4 (→ i₀ = 1)
    lin, _ = Upsample(2, "bilinear").apply({}, {}, x)
    np.testing.assert_array_equal(lin[0, :, 0], [0, 1, 3, 4])


class VmapJitTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(("nearest", "nearest"), ("bilinear", "bilinear"))
    def test_vmap_equals_batch(self, method):
        layer = Upsample((2, 1.5), method)
        x = jax.random.normal(jax.random.key(0), (3, 4, 4, 2))
        one = lambda xi: layer.apply({}, {}, xi[None])[0][0]
        mapped = self.variant(jax.vmap(one))(x)
        batched = self.variant(lambda x: layer.apply({}, {}, x)[0])(x)
        chex.assert_trees_all_close(mapped, batched)


BAD_INPUT = [
    (lambda: Upsample(2, "bicubic"), ValueError,
     r"Upsample: unknown method 'bicubic'; expected one of \('nearest', 'bilinear'\)"),
    (lambda: Upsample(0), ValueError, r"Upsample: scale must be > 0 \(and finite\), got 0"),
    (lambda: Upsample((2, -1)), ValueError, r"Upsample: scale must be > 0"),
    (lambda: Upsample("2"), TypeError, r"Upsample: scale must be a positive number or a tuple"),
    (lambda: Upsample((2, 2, 2)).init(None, (4, 4, 1)), ValueError,
     r"Upsample: scale \(2, 2, 2\) gives 3 factors, but the input \(4, 4, 1\) has 2 spatial"),
    (lambda: Upsample(0.1).apply({}, {}, jnp.ones((1, 4, 4, 1))), ValueError,
     r"Upsample: scale 0.1 makes an empty output \(0, 0\) from the spatial size \(4, 4\)"),
    (lambda: Upsample(2).apply({}, {}, jnp.ones((4, 4))), ValueError,
     r"Upsample: expected an input \(N, \*spatial, C\) of rank >= 3, got shape \(4, 4\)"),
    (lambda: Upsample(2).apply({}, {}, jnp.ones((1, 4, 4, 1), jnp.int32)), TypeError,
     r"Upsample: expected a floating-point input, got dtype int32"),
    (lambda: Upsample(2).init(None, (4,)), ValueError,
     r"Upsample: expected input_shape \(\*spatial, C\), e.g. \(H, W, C\), got \(4,\)"),
]


@pytest.mark.parametrize("trigger,exc,match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
