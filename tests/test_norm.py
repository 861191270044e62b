"""BatchNorm: batch statistics in train mode, running statistics in closed form, eval mode."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import layers as L
from fnn.layers import BatchNorm


def batch(seed, shape, offset=3.0, spread=2.0):
    """Per-channel shifted and scaled normal data, from numpy."""
    rng = np.random.default_rng(seed)
    c = shape[-1]
    return (offset * np.arange(1, c + 1) + spread * np.arange(1, c + 1)
            * rng.normal(size=shape)).astype(np.float32)


def fresh(layer, input_shape):
    return layer.init(None, input_shape)


def test_init_layout():
    params, state = fresh(BatchNorm(), (4, 4, 3))
    assert {k: v.shape for k, v in params.items()} == {"scale": (3,), "bias": (3,)}
    assert {k: v.shape for k, v in state.items()} == {"mean": (3,), "var": (3,)}
    np.testing.assert_array_equal(params["scale"], 1.0)
    np.testing.assert_array_equal(params["bias"], 0.0)
    np.testing.assert_array_equal(state["mean"], 0.0)
    np.testing.assert_array_equal(state["var"], 1.0)


@pytest.mark.parametrize("shape", [(16, 3), (4, 5, 6, 3)])
def test_train_normalises_each_channel(seed, shape):
    layer = BatchNorm()
    params, state = fresh(layer, shape[1:])
    x = batch(seed, shape)
    y, _ = layer.apply(params, state, x, train=True)
    axes = tuple(range(len(shape) - 1))
    np.testing.assert_allclose(np.mean(y, axis=axes), 0.0, atol=1e-5)
    np.testing.assert_allclose(np.var(y, axis=axes), 1.0, rtol=1e-3)  # var/(var+eps)
    # scale and bias come after the normalisation
    scale, bias = np.array([2.0, 0.5, -1.0]), np.array([1.0, -2.0, 0.0])
    params = {"scale": jnp.asarray(scale, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}
    z, _ = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(z, np.asarray(y) * scale + bias, atol=1e-5)


def test_train_uses_biased_batch_variance():
    """Hand-countable: one channel, values 1, 2, 3, 4 -> mean 2.5, biased var 1.25."""
    x = jnp.array([[1.0], [2.0], [3.0], [4.0]])
    params, state = fresh(BatchNorm(eps=1e-5), (1,))
    y, new = BatchNorm(eps=1e-5).apply(params, state, x, train=True)
    np.testing.assert_allclose(y[:, 0], (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25 + 1e-5),
                               rtol=1e-6)
    np.testing.assert_allclose(new["mean"], [0.1 * 2.5], rtol=1e-6)          # 0.9*0 + 0.1*2.5
    np.testing.assert_allclose(new["var"], [0.9 + 0.1 * 5.0 / 3.0], rtol=1e-6)  # unbiased 5/3


def test_large_offset_has_no_cancellation():
    """Variance from centred values: a 1e4 offset in float32 still normalises correctly."""
    x = (1e4 + np.array([-1.0, 1.0, -1.0, 1.0]) * 0.01).astype(np.float32).reshape(4, 1)
    params, state = fresh(BatchNorm(eps=1e-12), (1,))
    y, _ = BatchNorm(eps=1e-12).apply(params, state, x, train=True)
    np.testing.assert_allclose(y[:, 0], [-1.0, 1.0, -1.0, 1.0], rtol=1e-2)


def test_running_statistics_closed_form(seed):
    """Same batch k times: mean_k = (1 - d^k)·μ, var_k = d^k·1 + (1 - d^k)·s² (unbiased)."""
    decay, k = 0.8, 4
    layer = BatchNorm(decay=decay)
    x = batch(seed, (3, 2, 2, 4))
    params, state = fresh(layer, x.shape[1:])
    step = jax.jit(lambda s, x: layer.apply(params, s, x, train=True)[1])
    for _ in range(k):
        state = step(state, x)
    x64 = x.astype(np.float64).reshape(-1, 4)
    mu, s2 = x64.mean(0), x64.var(0, ddof=1)
    np.testing.assert_allclose(state["mean"], (1 - decay ** k) * mu, rtol=1e-5)
    np.testing.assert_allclose(state["var"], decay ** k + (1 - decay ** k) * s2, rtol=1e-5)


def test_running_statistics_recursion(seed):
    """Different batches: the update rule applied step by step in numpy."""
    layer = BatchNorm()
    params, state = fresh(layer, (3,))
    mean, var = np.zeros(3), np.ones(3)
    step = jax.jit(lambda s, x: layer.apply(params, s, x, train=True)[1])
    for i in range(3):
        x = batch(seed + i, (5, 3), offset=i + 1.0)
        state = step(state, x)
        mean = 0.9 * mean + 0.1 * x.astype(np.float64).mean(0)
        var = 0.9 * var + 0.1 * x.astype(np.float64).var(0, ddof=1)
    np.testing.assert_allclose(state["mean"], mean, rtol=1e-5)
    np.testing.assert_allclose(state["var"], var, rtol=1e-5)


def test_eval_uses_running_statistics_and_keeps_state(seed):
    layer = BatchNorm(eps=1e-3)
    params = {"scale": jnp.array([2.0, 3.0]), "bias": jnp.array([0.5, -0.5])}
    state = {"mean": jnp.array([1.0, -1.0]), "var": jnp.array([4.0, 0.25])}
    x = batch(seed, (3, 4, 2))
    y, new_state = jax.jit(lambda p, s, x: layer.apply(p, s, x, train=False))(params, state, x)
    expected = (x - np.array([1.0, -1.0])) / np.sqrt(np.array([4.0, 0.25]) + 1e-3) \
        * np.array([2.0, 3.0]) + np.array([0.5, -0.5])
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    for name in ("mean", "var"):
        np.testing.assert_array_equal(new_state[name], state[name])
    _, same = layer.apply(params, state, x)
    assert same is state


def test_train_step_under_jit_and_grad(seed):
    layer = BatchNorm()
    x = batch(seed, (4, 3, 3, 2))
    params, state = fresh(layer, x.shape[1:])

    @jax.jit
    def step(params, state, x):
        def loss(p):
            y, s = layer.apply(p, state, x, train=True)
            return jnp.sum(y ** 2 * jnp.arange(1.0, 3.0).reshape(1, 1, 1, 2)), s
        (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        return value, new_state, grads

    value, new_state, grads = step(params, state, x)
    assert np.isfinite(value)
    assert jax.tree.map(jnp.shape, grads) == {"scale": (2,), "bias": (2,)}
    assert not np.allclose(new_state["mean"], 0.0)


def test_axis_1_channels_first(seed):
    layer = BatchNorm(axis=1)
    x = np.moveaxis(batch(seed, (4, 3, 3, 2)), -1, 1)  # (N, C, H, W)
    params, state = fresh(layer, x.shape[1:])
    assert params["scale"].shape == (2,)
    y, new = layer.apply(params, state, x, train=True)
    np.testing.assert_allclose(np.mean(y, axis=(0, 2, 3)), 0.0, atol=1e-5)
    np.testing.assert_allclose(new["mean"], 0.1 * x.astype(np.float64).mean((0, 2, 3)),
                               rtol=1e-5)


def test_errors():
    params, state = fresh(BatchNorm(), (4,))
    with pytest.raises(ValueError, match=r"BatchNorm: expected channels on axis -1 4 \(from "
                                         r"init\), got 5 in input of shape \(2, 5\)"):
        BatchNorm().apply(params, state, jnp.ones((2, 5)))
    with pytest.raises(ValueError, match=r"BatchNorm: train=True needs more than one value per "
                                         r"channel .* got input of shape \(1, 4\)"):
        BatchNorm().apply(params, state, jnp.ones((1, 4)), train=True)
    with pytest.raises(ValueError, match=r"BatchNorm: axis=0 must name a non-batch axis"):
        BatchNorm(axis=0).init(None, (4,))
    with pytest.raises(ValueError, match=r"BatchNorm: decay must be in \[0.0, 1.0\], got 1.5"):
        BatchNorm(decay=1.5)
    with pytest.raises(TypeError, match="BatchNorm: expected a floating-point input"):
        BatchNorm().apply(params, state, jnp.ones((2, 4), jnp.int32))


@pytest.mark.parametrize("train", [True, False])
def test_numpy_float64_input_gives_the_default_float_without_a_warning(train, recwarn):
    x = np.random.default_rng(0).normal(size=(6, 3))            # float64
    layer = BatchNorm()
    params, state = layer.init(jax.random.key(0), (3,))
    out, _ = layer.apply(params, state, x, train=train)
    assert out.dtype == jnp.float32 and not recwarn.list
    if train:  # normalised per channel over the batch (float64 reference)
        ref = (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------------
# one dtype rule across layers (issue 29, point 6): output = result_type(x, params)


@pytest.mark.parametrize("in_dtype", [jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize("name, make, shape", [
    ("Dense", lambda: L.Dense(3), (4,)),
    ("Conv2D", lambda: L.Conv2D(2, 3), (5, 5, 2)),
    ("LSTM", lambda: L.LSTM(3), (4, 2)),
    ("LayerNorm", lambda: L.LayerNorm(), (4,)),
    ("BatchNorm", BatchNorm, (4,)),
    ("BatchNorm-image", BatchNorm, (3, 3, 2)),
])
@pytest.mark.parametrize("train", [False, True])
def test_half_input_with_float32_params_promotes_like_every_layer(name, make, shape, in_dtype,
                                                                   train):
    layer = make()
    params, state = layer.init(jax.random.key(0), shape)
    x = jnp.asarray(batch(1, (3, *shape)), in_dtype)
    y, new_state = layer.apply(params, state, x, train=train)
    want = jnp.result_type(x, *jax.tree.leaves(params))
    assert want == jnp.float32 and y.dtype == want
    assert all(s.dtype == jnp.float32 for s in jax.tree.leaves(new_state))


@pytest.mark.parametrize("train", [False, True])
def test_half_input_values_are_the_float32_computation(train):
    """BatchNorm of a float16 batch equals float64 maths on the float16 values (statistics in
    float32: a float16 variance of deviations ~1e3 would overflow)."""
    x16 = jnp.asarray(batch(2, (8, 3), offset=3000.0, spread=400.0), jnp.float16)
    layer = BatchNorm()
    params, state = layer.init(None, (3,))
    state = {"mean": jnp.full((3,), 5000.0), "var": jnp.full((3,), 4e5)}
    y, _ = layer.apply(params, state, x16, train=train)
    x = np.asarray(x16, np.float64)
    if train:
        mean, var = x.mean(0), x.var(0)
    else:
        mean, var = np.full(3, 5000.0), np.full(3, 4e5)
    np.testing.assert_allclose(np.asarray(y), (x - mean) / np.sqrt(var + 1e-5), rtol=2e-4,
                               atol=2e-4)


# ---------------------------------------------------------------------------
# RMSNorm and LayerNorm(use_scale, use_bias) (issue 25, item 3)


def _torch_grads(module, x, w):
    """(y, grad x, {param name: grad}) of Σ module(x)·w in torch (float32)."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    y = module(xt)
    (y * torch.tensor(w)).sum().backward()
    return (y.detach().numpy(), xt.grad.numpy(),
            {n: p.grad.numpy() for n, p in module.named_parameters()})


def _fnn_grads(layer, params, x, w):
    def loss(p, x):
        y, _ = layer.apply(p, {}, x)
        return jnp.sum(y * w), y
    (_, y), (gp, gx) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, x)
    return y, gx, gp


@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 6), (2, 3, 2, 5)])
def test_rms_norm_equals_torch_and_float64(shape):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = (1.5 + 2.0 * rng.normal(size=shape)).astype(np.float32)
    w = rng.normal(size=shape).astype(np.float32)
    scale = rng.normal(1.0, 0.3, shape[-1]).astype(np.float32)
    layer = L.RMSNorm(eps=1e-6)
    params, state = layer.init(None, shape[1:])
    assert state == {} and jax.tree.map(jnp.shape, params) == {"scale": (shape[-1],)}
    np.testing.assert_array_equal(params["scale"], 1.0)
    module = torch.nn.RMSNorm(shape[-1], eps=1e-6)
    with torch.no_grad():
        module.weight.copy_(torch.tensor(scale))
    y_t, gx_t, gp_t = _torch_grads(module, x, w)
    y, gx, gp = _fnn_grads(layer, {"scale": jnp.asarray(scale)}, x, w)
    np.testing.assert_allclose(y, y_t, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gp["scale"], gp_t["weight"], rtol=1e-4, atol=1e-5)
    x64 = x.astype(np.float64)
    ref = x64 / np.sqrt(np.mean(x64 ** 2, axis=-1, keepdims=True) + 1e-6) * scale
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-6)


def test_rms_norm_half_input_and_hand_countable():
    """[3, 4]: mean square 12.5; float16 [300, 400] would overflow its square sum."""
    layer = L.RMSNorm(eps=1e-6)
    y, _ = layer.apply({"scale": jnp.ones(2)}, {}, jnp.array([[3.0, 4.0]]))
    np.testing.assert_allclose(y, [[3 / np.sqrt(12.5 + 1e-6), 4 / np.sqrt(12.5 + 1e-6)]],
                               rtol=1e-6)
    y16, _ = layer.apply({"scale": jnp.ones(2, jnp.float16)}, {},
                         jnp.array([[300.0, 400.0]], jnp.float16))
    assert y16.dtype == jnp.float16
    np.testing.assert_allclose(np.asarray(y16, np.float32), y, rtol=1e-3)


@pytest.mark.parametrize("use_scale, use_bias", [(True, True), (True, False), (False, True),
                                                 (False, False)])
def test_layer_norm_switches_equal_torch(use_scale, use_bias):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = (3.0 + rng.normal(size=(2, 3, 5))).astype(np.float32)
    w = rng.normal(size=x.shape).astype(np.float32)
    layer = L.LayerNorm(use_scale=use_scale, use_bias=use_bias)
    params, _ = layer.init(None, (3, 5))
    want = [n for n, on in (("scale", use_scale), ("bias", use_bias)) if on]
    assert sorted(params) == sorted(want)
    values = {"scale": rng.normal(1.0, 0.3, 5), "bias": rng.normal(0.0, 0.3, 5)}
    params = {n: jnp.asarray(values[n], jnp.float32) for n in params}
    module = torch.nn.LayerNorm(5, eps=1e-5, elementwise_affine=bool(want), bias=use_bias)
    with torch.no_grad():
        if want:
            module.weight.copy_(torch.tensor(values["scale"] if use_scale else np.ones(5)))
        if use_bias:
            module.bias.copy_(torch.tensor(values["bias"]))
    y_t, gx_t, gp_t = _torch_grads(module, x, w)
    y, gx, gp = _fnn_grads(layer, params, x, w)
    np.testing.assert_allclose(y, y_t, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-4, atol=1e-5)
    for ours, theirs in (("scale", "weight"), ("bias", "bias")):
        if ours in params:
            np.testing.assert_allclose(gp[ours], gp_t[theirs], rtol=1e-4, atol=1e-5)


def test_old_layer_norm_params_still_work():
    """Params of LayerNorm() (scale and bias) fit every setting: extra entries are ignored."""
    x = jnp.asarray(np.random.default_rng(2).normal(size=(3, 4)), jnp.float32)
    params, _ = L.LayerNorm().init(None, (4,))
    params = {"scale": params["scale"] * 2.0, "bias": params["bias"] + 1.0}
    full, _ = L.LayerNorm().apply(params, {}, x)
    plain, _ = L.LayerNorm(use_scale=False, use_bias=False).apply(params, {}, x)
    np.testing.assert_allclose(full, plain * 2.0 + 1.0, rtol=1e-6, atol=1e-6)


NORM_BAD_INPUT = [
    (lambda: L.RMSNorm(eps=0.0), ValueError, r"^RMSNorm: eps must be > 0\.0, got 0\.0"),
    (lambda: L.RMSNorm().init(None, ()), ValueError, r"^RMSNorm: expected input_shape"),
    (lambda: L.RMSNorm().apply({"scale": jnp.ones(3)}, {}, jnp.ones((2, 4))), ValueError,
     r"^RMSNorm: expected features \(last axis\) 3 \(from init\), got 4"),
    (lambda: L.RMSNorm().apply({}, {}, jnp.ones((2, 4))), ValueError,
     r"^RMSNorm: params must be a dict with 'scale'"),
    (lambda: L.LayerNorm(use_bias="no"), TypeError,
     r"^LayerNorm: use_bias must be True or False, got 'no'"),
    (lambda: L.LayerNorm(use_scale=None), TypeError,
     r"^LayerNorm: use_scale must be True or False, got None"),
    (lambda: L.LayerNorm(use_bias=False).apply({"scale": jnp.ones(3)}, {}, jnp.ones((2, 4))),
     ValueError, r"^LayerNorm: expected features \(last axis\) 3 \(from init\), got 4"),
    (lambda: L.LayerNorm(use_scale=False, use_bias=False).apply({}, {}, jnp.ones((4,))),
     ValueError, r"^LayerNorm: expected an input of rank >= 2"),
]


@pytest.mark.parametrize("trigger, error, match", NORM_BAD_INPUT)
def test_norm_bad_input(trigger, error, match):
    with pytest.raises(error, match=match):
        trigger()
