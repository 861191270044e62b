"""intermediates: every layer's output, keyed like the params; the last equals apply."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn.intermediates import flatten, intermediates, layer_paths

Dense = fnn.layers.Dense


def test_keys_and_manual_forward(key):
    model = fnn.serial(Dense(4), fnn.relu, Dense(3), jnp.tanh)
    params, state = model.init(key, (2,))
    x = jax.random.normal(jax.random.key(7), (6, 2))
    acts = intermediates(model, params, state, x)
    assert list(acts) == ["0_Dense", "1_relu", "2_Dense", "3_tanh"]
    p0, p2 = params["0_Dense"], params["2_Dense"]
    h = np.asarray(x) @ np.asarray(p0["w"]) + np.asarray(p0["b"])[None, :]
    np.testing.assert_allclose(acts["0_Dense"], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["1_relu"], np.maximum(h, 0), rtol=1e-5, atol=1e-6)
    z = np.maximum(h, 0) @ np.asarray(p2["w"]) + np.asarray(p2["b"])[None, :]
    np.testing.assert_allclose(acts["2_Dense"], z, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts["3_tanh"], np.tanh(z), rtol=1e-5, atol=1e-6)


def test_nested_serial_and_last_equals_apply(key):
    inner = fnn.serial(Dense(5), fnn.sigmoid)
    model = fnn.serial(Dense(4), fnn.relu, inner, fnn.residual(fnn.serial(Dense(5), fnn.tanh)),
                       fnn.serial(Dense(2)))
    params, state = model.init(key, (3,))
    x = jax.random.normal(jax.random.key(1), (4, 3))
    acts = intermediates(model, params, state, x)
    assert set(acts["2_Serial"]) == {"0_Dense", "1_sigmoid"}
    assert acts["3_Residual"].shape == (4, 5)
    assert list(flatten(acts)) == ["0_Dense", "1_relu", "2_Serial/0_Dense", "2_Serial/1_sigmoid",
                                   "3_Residual", "4_Serial/0_Dense"]
    assert layer_paths(model) == list(flatten(acts))
    y, _ = model.apply(params, state, x)
    np.testing.assert_array_equal(acts["4_Serial"]["0_Dense"], y)
    inner_y, _ = inner.apply(params["2_Serial"], {}, acts["1_relu"])
    np.testing.assert_allclose(acts["2_Serial"]["1_sigmoid"], inner_y, rtol=1e-6)


def test_same_dropout_mask_as_apply(key):
    model = fnn.serial(Dense(8), fnn.layers.Dropout(0.5), Dense(2))
    params, state = model.init(key, (3,))
    x = jnp.ones((5, 3))
    k = jax.random.key(3)
    acts = intermediates(model, params, state, x, key=k, train=True)
    y, _ = model.apply(params, state, x, key=k, train=True)
    np.testing.assert_allclose(acts["2_Dense"], y, rtol=1e-6)
    assert 0 < float(jnp.mean(acts["1_Dropout"] == 0)) < 1


def test_jit():
    model = fnn.models.mlp([4, 2])
    params, state = model.init(jax.random.key(0), (3,))
    acts = jax.jit(lambda p, s, x: intermediates(model, p, s, x))(params, state, jnp.ones((2, 3)))
    assert acts["2_Dense"].shape == (2, 2)
    assert fnn.intermediates is intermediates


def test_non_serial_raises():
    layer = Dense(3)
    params, state = layer.init(jax.random.key(0), (2,))
    with pytest.raises(TypeError, match="intermediates: expected a model built with fnn.serial, "
                                        "got a 'Dense' layer"):
        intermediates(layer, params, state, jnp.ones((1, 2)))


def test_extra_keywords_reach_the_layers_that_take_them(key):
    model = fnn.serial(fnn.layers.SimpleRNN(4), Dense(2))
    params, state = model.init(key, (5, 3))
    x = jax.random.normal(jax.random.key(1), (2, 5, 3))
    lengths = jnp.array([5, 2])
    acts = intermediates(model, params, state, x, lengths=lengths)
    y, _ = model.apply(params, state, x, lengths=lengths)
    np.testing.assert_allclose(acts["1_Dense"], y, rtol=1e-6)
    with pytest.raises(TypeError, match="unexpected keyword argument\\(s\\) \\['lenghts'\\]"):
        intermediates(model, params, state, x, lenghts=lengths)


@pytest.mark.parametrize("make, shape", [(lambda: fnn.models.resnet(8), (16, 16, 3)),
                                         (lambda: fnn.models.lenet5(), (28, 28, 1))])
def test_zoo_models_renamed_serials_are_walked(make, shape):
    """The zoo renames its serial models (ResNet8, LeNet5) and blocks (BasicBlock): they
    were refused ("expected a model built with fnn.serial") and so was every diagnostic."""
    model = make()
    params, state = model.init(jax.random.key(0), shape)
    x = jax.random.normal(jax.random.key(1), (2, *shape))
    flat = flatten(intermediates(model, params, state, x))
    assert list(flat) == layer_paths(model)
    y, _ = model.apply(params, state, x)
    np.testing.assert_array_equal(list(flat.values())[-1], y)
    if model.name.startswith("ResNet"):
        assert "3_BasicBlock/1_relu" in flat                # inside a renamed block
        fractions = fnn.diagnostics.dead_relu_fraction(model, params, state, x)
        assert "3_BasicBlock/1_relu" in fractions
        dead = np.all(np.asarray(flat["3_BasicBlock/1_relu"]) <= 0, axis=0)  # per unit
        assert fractions["3_BasicBlock/1_relu"] == pytest.approx(float(np.mean(dead)))


def test_bad_params_state_key_and_train_name_intermediates(key):
    """A (params, state) pair, None state or an int key were raw AttributeErrors or JAX
    errors; train="yes" passed silently through a model without Dropout."""
    model = fnn.serial(Dense(2), fnn.relu)
    params, state = model.init(key, (3,))
    x = jnp.ones((2, 3))
    with pytest.raises(TypeError, match=r"intermediates: params must be the dict model\.init "
                                        r"returns, got a tuple — the \(params, state\) pair"):
        intermediates(model, (params, state), state, x)
    with pytest.raises(TypeError, match="intermediates: state must be the dict .* got None"):
        intermediates(model, params, None, x)
    with pytest.raises(TypeError, match="intermediates: key must be a PRNG key .* got 3"):
        intermediates(model, params, state, x, key=3)
    with pytest.raises(TypeError, match="intermediates: train must be a Python bool, got 'yes'"):
        intermediates(model, params, state, x, train="yes")


def test_model_that_is_no_layer_names_intermediates():
    with pytest.raises(TypeError, match=r"intermediates: expected a fnn\.Layer .* got "
                                        r"a list\. Wrap a list of layers in fnn\.serial"):
        intermediates([Dense(2)], {}, {}, jnp.ones((1, 3)))


def test_layer_paths_and_flatten_refuse_what_intermediates_refuses():
    """layer_paths(Dense(3)) returned [] and flatten([...]) raised AttributeError."""
    with pytest.raises(TypeError, match="layer_paths: expected a model built with fnn.serial, "
                                        "got a 'Dense' layer"):
        layer_paths(Dense(3))
    with pytest.raises(TypeError, match="flatten: expected the dict fnn.intermediates returns, "
                                        "got a list"):
        flatten([jnp.ones(2)])
