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
    assert acts["3_Residual"]["output"].shape == (4, 5)
    assert list(flatten(acts)) == ["0_Dense", "1_relu", "2_Serial/0_Dense", "2_Serial/1_sigmoid",
                                   "3_Residual/block/0_Dense", "3_Residual/block/1_tanh",
                                   "3_Residual/output", "4_Serial/0_Dense"]
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


# ---------------------------------------------------------------------------
# walking into residual, concat, repeat and remat (issue 25, item 5)


def test_residual_with_shortcut_and_concat_give_each_path_and_their_output(key):
    from fnn.layers import Conv2D
    res = fnn.residual(fnn.serial(Conv2D(4, 3), fnn.relu), Conv2D(4, 1))
    cat = fnn.concat(Conv2D(2, 1), fnn.serial(Conv2D(3, 3), fnn.relu), axis=-1)
    model = fnn.serial(res, cat)
    params, state = model.init(key, (5, 5, 2))
    x = jax.random.normal(jax.random.key(2), (3, 5, 5, 2))
    acts = intermediates(model, params, state, x)
    r, c = acts["0_Residual"], acts["1_Concat"]
    assert list(r) == ["block", "shortcut", "output"]
    assert list(r["block"]) == ["0_Conv2D", "1_relu"]
    block, _ = res.children[0][1].apply(params["0_Residual"]["block"], {}, x)
    short, _ = res.children[1][1].apply(params["0_Residual"]["shortcut"], {}, x)
    np.testing.assert_allclose(r["block"]["1_relu"], block, rtol=1e-6)
    np.testing.assert_allclose(r["shortcut"], short, rtol=1e-6)
    np.testing.assert_allclose(r["output"], block + short, rtol=1e-6)
    assert list(c) == ["0_Conv2D", "1_Serial", "output"]
    np.testing.assert_array_equal(c["output"], jnp.concatenate(
        [c["0_Conv2D"], c["1_Serial"]["1_relu"]], axis=-1))
    y, _ = model.apply(params, state, x)
    np.testing.assert_array_equal(c["output"], y)
    assert layer_paths(model) == list(flatten(acts)) == [
        "0_Residual/block/0_Conv2D", "0_Residual/block/1_relu", "0_Residual/shortcut",
        "0_Residual/output", "1_Concat/0_Conv2D", "1_Concat/1_Serial/0_Conv2D",
        "1_Concat/1_Serial/1_relu", "1_Concat/output"]


def test_repeat_gives_the_intermediates_of_the_unrolled_serial(key):
    """Copy i of repeat(block, 3) with params[i] is layer i of serial(block, block, block):
    the same keys, values and (with train=True and a key) the same dropout masks."""
    from fnn.repeat import repeat, unstack
    block = fnn.serial(Dense(4), fnn.layers.Dropout(0.3), fnn.relu)
    model = fnn.serial(repeat(block, 3), Dense(2))
    unrolled = fnn.serial(fnn.serial(block, block, block), Dense(2))
    params, state = model.init(key, (4,))
    copies = unstack(params["0_Repeat"], 3)
    u_params = {"0_Serial": {f"{i}_Serial": p for i, p in enumerate(copies)},
                "1_Dense": params["1_Dense"]}
    x = jax.random.normal(jax.random.key(4), (5, 4))
    k = jax.random.key(9)
    acts = intermediates(model, params, state, x, key=k, train=True)
    ref = intermediates(unrolled, u_params, {}, x, key=k, train=True)
    assert list(acts["0_Repeat"]) == ["0_Serial", "1_Serial", "2_Serial"]
    chex_close = np.testing.assert_allclose
    for a, b in zip(flatten(acts).values(), flatten(ref).values(), strict=True):
        chex_close(a, b, rtol=1e-6, atol=1e-7)
    assert layer_paths(model) == list(flatten(acts))
    y, _ = model.apply(params, state, x, key=k, train=True)
    np.testing.assert_allclose(acts["1_Dense"], y, rtol=1e-6)


def test_remat_is_transparent(key):
    from fnn.repeat import remat
    model = fnn.serial(remat(Dense(3)), remat(fnn.serial(Dense(2), fnn.relu)))
    plain = fnn.serial(Dense(3), fnn.serial(Dense(2), fnn.relu))
    params, state = model.init(key, (4,))
    x = jnp.ones((2, 4))
    acts, ref = (intermediates(m, params, state, x) for m in (model, plain))
    assert list(flatten(acts)) == list(flatten(ref)) == layer_paths(model) == [
        "0_Dense", "1_Serial/0_Dense", "1_Serial/1_relu"]
    for a, b in zip(flatten(acts).values(), flatten(ref).values(), strict=True):
        np.testing.assert_array_equal(a, b)
