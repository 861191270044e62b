"""Dense, Maxout, PReLU, LayerNorm, Flatten and mlp: values against numpy, textbook properties, errors."""
import chex
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import initializers
from fnn.layers import Dense, Flatten, LayerNorm, Maxout, PReLU


def as_np(tree):
    return jax.tree.map(lambda a: np.asarray(a, np.float64), tree)


def test_dense_matches_numpy_on_any_leading_axes(key):
    layer = Dense(3)
    params, state = layer.init(key, (4,))
    chex.assert_shape(params["w"], (4, 3))
    chex.assert_shape(params["b"], (3,))
    x = jax.random.normal(jax.random.key(1), (2, 5, 4))
    y, _ = jax.jit(layer.apply)(params, state, x)
    p = as_np(params)
    np.testing.assert_allclose(y, np.asarray(x, np.float64) @ p["w"] + p["b"], rtol=1e-5, atol=1e-6)


def test_dense_hand_countable():
    layer = Dense(2, w_init=initializers.ones, b_init=initializers.constant(0.5))
    params, state = layer.init(jax.random.key(0), (3,))
    y, _ = layer.apply(params, state, jnp.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(y, [[3.5, 3.5], [12.5, 12.5]])
    params, _ = Dense(2, use_bias=False).init(jax.random.key(0), (3,))
    assert set(params) == {"w"}


def test_stack_of_linear_dense_layers_is_one_dense_layer(key):
    model = fnn.serial(Dense(5), Dense(4), Dense(2))
    params, state = model.init(key, (3,))
    x = jax.random.normal(jax.random.key(2), (6, 3))
    y, _ = model.apply(params, state, x)
    p = as_np(params)
    w = p["0_Dense"]["w"] @ p["1_Dense"]["w"] @ p["2_Dense"]["w"]
    b = (p["0_Dense"]["b"] @ p["1_Dense"]["w"] + p["1_Dense"]["b"]) @ p["2_Dense"]["w"] + p["2_Dense"]["b"]
    np.testing.assert_allclose(y, np.asarray(x, np.float64) @ w + b, rtol=1e-5, atol=1e-5)


def test_maxout_values_and_piece_layout(key):
    layer = Maxout(2, pieces=3)
    params, state = layer.init(key, (4,))
    chex.assert_shape(params["w"], (4, 6))
    x = jax.random.normal(jax.random.key(3), (5, 4))
    y, _ = layer.apply(params, state, x)
    z = np.asarray(x, np.float64) @ as_np(params)["w"] + as_np(params)["b"]
    # piece p of feature j is column j*pieces + p
    expected = np.stack([z[:, 0:3].max(-1), z[:, 3:6].max(-1)], axis=-1)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-6)


def test_maxout_with_one_zero_piece_is_relu(key):
    layer = Maxout(3, pieces=2)
    params, state = layer.init(key, (3,))
    w = np.zeros((3, 6), np.float32)
    w[:, 0::2] = np.asarray(params["w"])[:, 0::2]   # piece 0 = a linear map, piece 1 = 0
    params = {"w": jnp.asarray(w), "b": jnp.zeros(6)}
    x = jax.random.normal(jax.random.key(4), (8, 3))
    y, _ = layer.apply(params, state, x)
    np.testing.assert_allclose(y, np.maximum(np.asarray(x) @ w[:, 0::2], 0), rtol=1e-5, atol=1e-6)


def test_prelu_per_channel(key):
    layer = PReLU()
    params, state = layer.init(key, (2,))
    np.testing.assert_array_equal(params["alpha"], [0.25, 0.25])
    params = {"alpha": jnp.array([0.1, 0.5])}
    y, _ = layer.apply(params, state, jnp.array([[-2.0, -2.0], [3.0, -4.0]]))
    np.testing.assert_allclose(y, [[-0.2, -1.0], [3.0, -2.0]], rtol=1e-6)
    g = jax.grad(lambda p: layer.apply(p, {}, jnp.array([[-2.0, 1.0]]))[0].sum())(params)
    np.testing.assert_allclose(g["alpha"], [-2.0, 0.0])


def test_layernorm_matches_numpy(key):
    layer = LayerNorm()
    params, state = layer.init(key, (6,))
    params = {"scale": jnp.arange(1.0, 7.0), "bias": jnp.full((6,), 0.5)}
    x = 3 * jax.random.normal(jax.random.key(5), (4, 6)) + 2
    y, _ = layer.apply(params, state, x)
    xx = np.asarray(x, np.float64)
    mu, var = xx.mean(-1, keepdims=True), xx.var(-1, keepdims=True)
    np.testing.assert_allclose(y, (xx - mu) / np.sqrt(var + 1e-5) * np.arange(1, 7) + 0.5,
                               rtol=1e-5, atol=1e-5)


def test_flatten():
    y, _ = Flatten().apply({}, {}, jnp.arange(24.0).reshape(2, 3, 4))
    np.testing.assert_array_equal(y, np.arange(24.0).reshape(2, 12))
    assert fnn.output_shape(Flatten(), (3, 4, 5)) == (60,)


def test_mlp_layout(key):
    model = fnn.models.mlp([512, 256, 10])
    params, _ = model.init(key, (784,))
    assert jax.tree.map(jnp.shape, params) == {
        "0_Dense": {"w": (784, 512), "b": (512,)},
        "2_Dense": {"w": (512, 256), "b": (256,)},
        "4_Dense": {"w": (256, 10), "b": (10,)},
    }
    assert fnn.output_shape(model, (784,)) == (10,)


def _sgd_train(model, params, x, y, steps=50, lr=0.1):
    def loss(p):
        out, _ = model.apply(p, {}, x)
        return jnp.mean((out - y) ** 2)

    @jax.jit
    def step(p):
        return jax.tree.map(lambda a, g: a - lr * g, p, jax.grad(loss)(p))

    for _ in range(steps):
        params = step(params)
    return params


def test_zero_initialised_hidden_units_stay_identical_random_ones_diverge(key):
    """Symmetry: with all-equal (zero) init every hidden unit gets the same gradient forever."""
    x = jax.random.normal(jax.random.key(6), (32, 3))
    y = jnp.sin(x[:, :1]) + x[:, 1:2]
    sym = fnn.models.mlp([4, 1], activation=fnn.tanh, w_init=initializers.constant(0.3))
    params, _ = sym.init(key, (3,))
    trained = _sgd_train(sym, params, x, y)
    w1 = np.asarray(trained["0_Dense"]["w"])
    assert not np.allclose(w1, 0.3)                        # it did train
    np.testing.assert_allclose(w1, w1[:, :1] * np.ones((1, 4)), rtol=1e-6)  # columns identical

    rnd = fnn.models.mlp([4, 1], activation=fnn.tanh)
    trained = _sgd_train(rnd, rnd.init(key, (3,))[0], x, y)
    w1 = np.asarray(trained["0_Dense"]["w"])
    assert np.abs(w1[:, :1] - w1[:, 1:]).max() > 1e-2


def test_mlp_gradient_matches_centred_finite_differences(key):
    model = fnn.models.mlp([5, 3], activation=fnn.tanh)
    params, _ = model.init(key, (4,))
    x = jax.random.normal(jax.random.key(7), (6, 4))
    labels = jnp.array([0, 1, 2, 0, 1, 2])

    def loss(p):
        logits, _ = model.apply(p, {}, x)
        return -jnp.mean(jnp.take_along_axis(fnn.log_softmax(logits), labels[:, None], axis=1))

    with jax.enable_x64(True):
        p64 = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), params)
        x = x.astype(jnp.float64)
        grads = jax.grad(loss)(p64)
        flat, unravel = jax.flatten_util.ravel_pytree(p64)
        g_flat, _ = jax.flatten_util.ravel_pytree(grads)
        eps = 1e-6
        for i in range(0, flat.size, 3):
            e = jnp.zeros_like(flat).at[i].set(eps)
            fd = (loss(unravel(flat + e)) - loss(unravel(flat - e))) / (2 * eps)
            assert abs(float(fd) - float(g_flat[i])) <= 1e-7 + 1e-5 * abs(float(fd))


@pytest.mark.parametrize(
    "layer, x, match",
    [
        (Dense(3), jnp.ones((2, 5)), r"Dense: expected input features \(last axis\) 4 \(from init\), got 5"),
        (Dense(3), jnp.ones((4,)), r"Dense: expected an input of rank >= 2 \(N, \.\.\., 4\), got shape \(4,\)"),
        (Maxout(3), jnp.ones((2, 7)), r"Maxout: expected input features \(last axis\) 4 \(from init\), got 7"),
        (PReLU(), jnp.ones((2, 3)), r"PReLU: expected channels \(last axis\) 4 \(from init\), got 3"),
        (LayerNorm(), jnp.ones((2, 3)), r"LayerNorm: expected features \(last axis\) 4 \(from init\), got 3"),
    ],
)
def test_wrong_input_shapes_raise_clear_errors(layer, x, match):
    params, state = layer.init(jax.random.key(0), (4,))
    with pytest.raises(ValueError, match=match):
        layer.apply(params, state, x)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="Dense: features must be a positive int, got -3"):
        Dense(-3)
    with pytest.raises(TypeError, match="Dense: features must be a positive int, got 2.5"):
        Dense(2.5)
    with pytest.raises(TypeError, match="Dense: expected a floating-point input, got dtype int32"):
        layer = Dense(2)
        p, s = layer.init(jax.random.key(0), (3,))
        layer.apply(p, s, jnp.ones((1, 3), jnp.int32))
    with pytest.raises(ValueError, match="unknown activation 'sigmod'"):
        fnn.models.mlp([3, 2], activation="sigmod")
    with pytest.raises(ValueError, match="LayerNorm: eps must be > 0.0, got 0.0"):
        LayerNorm(eps=0.0)
    with pytest.raises(ValueError, match="mlp: expected a non-empty list"):
        fnn.models.mlp([])


@pytest.mark.parametrize("dtype", [jnp.float16, jnp.bfloat16])
def test_layernorm_half_precision_matches_float64(dtype):
    # Deviations of 300 square to 90000 > 65504: in float16 the variance was inf and
    # every output 0. The statistics now run in float32.
    layer = LayerNorm()
    params, state = layer.init(None, (4,))
    x = jnp.asarray([[0.0, 300.0, -300.0, 100.0], [1.0, 2.0, 3.0, 4.0]], dtype)
    xr = np.asarray(x, np.float64)
    mean = xr.mean(-1, keepdims=True)
    expected = (xr - mean) / np.sqrt(((xr - mean) ** 2).mean(-1, keepdims=True) + 1e-5)
    y = layer.apply(params, state, x)[0]
    assert y.dtype == jnp.float32   # promoted with the float32 scale and bias, as before
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=1e-5, atol=1e-5)
    half = jax.tree.map(lambda a: a.astype(dtype), params)
    y = layer.apply(half, state, x)[0]
    assert y.dtype == dtype
    np.testing.assert_allclose(np.asarray(y, np.float64), expected, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("args,kwargs,error,match", [
    (([3, 0],), {}, ValueError, r"mlp: features\[1\] must be a positive int, got 0"),
    (([3, 2.5],), {}, TypeError, r"mlp: features\[1\] must be a positive int, got 2\.5"),
    (("ab",), {}, TypeError, r"mlp: features must be a list of layer sizes.*got 'ab'"),
    ((None,), {}, TypeError, r"mlp: features must be a list of layer sizes.*got None"),
    ((np.array(3),), {}, TypeError, r"mlp: features must be a list .*shape \(\)"),
    (([3],), {"activation": "sigmod"}, ValueError, r"mlp: .*unknown activation 'sigmod'"),
    (([3],), {"w_init": "he_nromal"}, ValueError, r"mlp: .*unknown initializer 'he_nromal'"),
])
def test_mlp_bad_arguments_name_mlp(args, kwargs, error, match):
    # Before: errors named Dense (or fnn.activations.get), None raised a bare
    # "'NoneType' object is not iterable", and "ab" built Dense('a').
    with pytest.raises(error, match=match):
        fnn.models.mlp(*args, **kwargs)
    assert fnn.models.mlp(np.array([3, 2])).init(jax.random.key(0), (4,))[0]["2_Dense"][
        "w"].shape == (3, 2)
