"""GroupNorm and InstanceNorm against PyTorch (values and gradients, several ranks and
group counts), hand-countable cases, half precision, and their bad-input rows."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L

torch = pytest.importorskip("torch")


def data(seed, shape, offset=2.0):
    rng = np.random.default_rng(seed)
    return (offset + 3.0 * rng.normal(size=shape)).astype(np.float32)


def affine(c, seed=1):
    rng = np.random.default_rng(seed)
    return {"scale": jnp.asarray(rng.normal(1.0, 0.5, c), jnp.float32),
            "bias": jnp.asarray(rng.normal(0.0, 0.5, c), jnp.float32)}


def against_torch(layer, torch_fn, x, params):
    """Forward and gradient (of Σ y·w for a fixed random w) w.r.t. x and params, fnn
    against `torch_fn(x_nchw, weight, bias)` on the input moved to channels-first."""
    w = np.random.default_rng(7).normal(size=x.shape).astype(np.float32)

    def loss(p, x):
        y, _ = layer.apply(p, {}, x)
        return jnp.sum(y * w), y

    (_, y), (gp, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
    xt = torch.tensor(np.moveaxis(x, -1, 1), requires_grad=True)
    st = torch.tensor(np.asarray(params["scale"]), requires_grad=True)
    bt = torch.tensor(np.asarray(params["bias"]), requires_grad=True)
    yt = torch_fn(xt, st, bt)
    if isinstance(yt, tuple):   # a module: its own weight and bias hold the gradients
        yt, st, bt = yt
    (yt * torch.tensor(np.moveaxis(w, -1, 1))).sum().backward()
    np.testing.assert_allclose(y, np.moveaxis(yt.detach().numpy(), 1, -1), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gx, np.moveaxis(xt.grad.numpy(), 1, -1), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(gp["scale"], st.grad.numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(gp["bias"], bt.grad.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shape, groups", [
    ((3, 6), 2), ((3, 6), 1), ((2, 5, 6), 3), ((2, 4, 5, 6), 2), ((2, 4, 5, 6), 6),
    ((2, 4, 5, 4), 1), ((2, 2, 3, 4, 4), 2),
])
def test_group_norm_equals_torch(shape, groups):
    layer, c = L.GroupNorm(groups, eps=1e-4), shape[-1]
    params, state = layer.init(None, shape[1:])
    assert state == {} and {k: v.shape for k, v in params.items()} == {"scale": (c,),
                                                                       "bias": (c,)}
    np.testing.assert_array_equal(params["scale"], 1.0)
    np.testing.assert_array_equal(params["bias"], 0.0)
    against_torch(layer, lambda x, s, b: torch.nn.functional.group_norm(x, groups, s, b, 1e-4),
                  data(groups, shape), affine(c))


@pytest.mark.parametrize("shape", [(3, 5, 4), (2, 4, 5, 3), (2, 2, 3, 4, 2)])
def test_instance_norm_equals_torch_and_group_norm_with_groups_c(shape):
    c = shape[-1]
    x, params = data(0, shape), affine(c)
    torch_layer = {3: torch.nn.InstanceNorm1d, 4: torch.nn.InstanceNorm2d,
                   5: torch.nn.InstanceNorm3d}[len(shape)](c, affine=True)

    def torch_fn(xt, st, bt):
        torch_layer.weight = torch.nn.Parameter(st.detach().clone())
        torch_layer.bias = torch.nn.Parameter(bt.detach().clone())
        return torch_layer(xt), torch_layer.weight, torch_layer.bias

    layer = L.InstanceNorm()
    assert jax.tree.map(jnp.shape, layer.init(None, shape[1:])[0]) == {"scale": (c,),
                                                                       "bias": (c,)}
    against_torch(layer, torch_fn, x, params)
    y, _ = layer.apply(params, {}, x)
    z, _ = L.GroupNorm(c).apply(params, {}, x)
    np.testing.assert_array_equal(y, z)


def test_group_norm_hand_countable():
    """One example, 2 positions, 4 channels, 2 groups: group 0 holds 1, 2, 3, 4 (mean 2.5,
    var 1.25), group 1 holds 10, 10, 10, 10 (var 0, so y = bias)."""
    x = jnp.array([[[1.0, 2.0, 10.0, 10.0], [3.0, 4.0, 10.0, 10.0]]])
    layer = L.GroupNorm(2, eps=1e-5)
    params = {"scale": jnp.array([1.0, 2.0, 3.0, 4.0]), "bias": jnp.array([0.0, 0.0, 5.0, 6.0])}
    y, _ = layer.apply(params, {}, x)
    z = (np.array([[1.0, 2.0], [3.0, 4.0]]) - 2.5) / np.sqrt(1.25 + 1e-5)
    np.testing.assert_allclose(y[0, :, :2], z * np.array([1.0, 2.0]), rtol=1e-6)
    np.testing.assert_allclose(y[0, :, 2:], [[5.0, 6.0], [5.0, 6.0]])


def test_examples_are_normalised_independently_and_under_vmap():
    x = data(3, (4, 3, 3, 4))
    layer = L.GroupNorm(2)
    params, _ = layer.init(None, (3, 3, 4))
    y, _ = layer.apply(params, {}, x)
    one = jax.vmap(lambda xi: layer.apply(params, {}, xi[None])[0][0])(x)
    np.testing.assert_allclose(y, one, rtol=1e-6, atol=1e-6)
    jitted, _ = jax.jit(layer.apply)(params, {}, x)
    np.testing.assert_allclose(jitted, y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("make", [lambda: L.GroupNorm(2), L.InstanceNorm])
def test_half_input_statistics_in_float32(make):
    """float16 values around 3000 with spread 400: float16 squares of the deviations
    overflow; the float32 statistics give the float64 result on the float16 values."""
    x16 = jnp.asarray(data(0, (2, 3, 4)) * 130.0 + 3000.0, jnp.float16)
    layer = make()
    params, _ = layer.init(None, (3, 4))
    y, _ = layer.apply(params, {}, x16)
    assert y.dtype == jnp.float32
    x64 = np.asarray(x16, np.float64)
    groups = 2 if layer.name == "GroupNorm" else 4
    g = x64.reshape(2, 3, groups, 4 // groups)
    ref = ((g - g.mean((1, 3), keepdims=True))
           / np.sqrt(g.var((1, 3), keepdims=True) + 1e-5)).reshape(x64.shape)
    np.testing.assert_allclose(y, ref, rtol=1e-3, atol=1e-3)
    y_bf, _ = layer.apply(jax.tree.map(lambda p: p.astype(jnp.bfloat16), params), {},
                          x16.astype(jnp.bfloat16))
    assert y_bf.dtype == jnp.bfloat16


BAD_INPUT = [
    (lambda: L.GroupNorm(0), ValueError, r"^GroupNorm: groups must be a positive int, got 0"),
    (lambda: L.GroupNorm(2.0), TypeError, r"^GroupNorm: groups must be a positive int, got 2\.0"),
    (lambda: L.GroupNorm(2, eps=0.0), ValueError, r"^GroupNorm: eps must be > 0\.0, got 0\.0"),
    (lambda: L.GroupNorm(4).init(None, (3, 6)), ValueError,
     r"^GroupNorm: channels \(last axis\) 6 must be divisible by groups=4, got input shape "
     r"\(3, 6\)"),
    (lambda: L.GroupNorm(2).init(None, ()), ValueError,
     r"^GroupNorm: expected input_shape \(\.\.\., C\), got \(\)"),
    (lambda: L.GroupNorm(2).apply(affine(4), {}, jnp.ones((2, 3, 6))), ValueError,
     r"^GroupNorm: expected channels \(last axis\) 4 \(from init\), got 6"),
    (lambda: L.GroupNorm(3).apply(affine(4), {}, jnp.ones((2, 4))), ValueError,
     r"^GroupNorm: channels \(last axis\) 4 must be divisible by groups=3"),
    (lambda: L.GroupNorm(2).apply(affine(4), {}, jnp.ones((2, 4), jnp.int32)), TypeError,
     r"^GroupNorm: expected a floating-point input, got dtype int32"),
    (lambda: L.GroupNorm(2).apply({"scale": jnp.ones(4)}, {}, jnp.ones((2, 4))), ValueError,
     r"^GroupNorm: params must be a dict with 'scale' and 'bias' .* 'bias' is missing"),
    (lambda: L.InstanceNorm(eps=-1.0), ValueError, r"^InstanceNorm: eps must be > 0\.0"),
    (lambda: L.InstanceNorm().init(None, (4,)), ValueError,
     r"^InstanceNorm: expected input_shape \(positions\.\.\., C\), e\.g\. \(H, W, C\), "
     r"got \(4,\)"),
    (lambda: L.InstanceNorm().apply(affine(4), {}, jnp.ones((2, 4))), ValueError,
     r"^InstanceNorm: expected an input of rank >= 3 \(N, positions\.\.\., C\), got shape "
     r"\(2, 4\)"),
    (lambda: L.InstanceNorm().apply(affine(4), {}, jnp.ones((2, 3, 5))), ValueError,
     r"^InstanceNorm: expected channels \(last axis\) 4 \(from init\), got 5"),
]


@pytest.mark.parametrize("trigger, error, match", BAD_INPUT)
def test_bad_input(trigger, error, match):
    with pytest.raises(error, match=match):
        trigger()


def test_summary_counts_the_new_norms():
    """Params per the layouts (2C, 2C, C, C, 0); normalisation costs no MACs (the rule)."""
    import fnn
    model = fnn.serial(L.GroupNorm(2), L.InstanceNorm(), L.RMSNorm(), L.LayerNorm(use_bias=False),
                       L.DropPath(0.2))
    s = fnn.summary(model, (3, 3, 4))
    assert [r.params for r in s.rows] == [8, 8, 4, 4, 0]
    assert s.total_params == 24 and s.total_macs == 0
