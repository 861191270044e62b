"""Diagnostics on hand-built networks with known answers."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import diagnostics as diag

Dense = fnn.layers.Dense


def _dense_params(w, b):
    return {"w": jnp.asarray(w, jnp.float32), "b": jnp.asarray(b, jnp.float32)}


def test_dead_relu_fraction_forced_negative_and_positive(key):
    model = fnn.serial(Dense(4), fnn.relu, Dense(4), fnn.relu, Dense(1))
    params, state = model.init(key, (3,))
    params["0_Dense"]["b"] = jnp.full((4,), -100.0)   # never active
    params["2_Dense"]["b"] = jnp.full((4,), 100.0)    # always active
    x = jax.random.normal(jax.random.key(1), (20, 3))
    got = diag.dead_relu_fraction(model, params, state, x, batch_size=7)
    assert got == {"1_relu": 1.0, "3_relu": 0.0}


def test_dead_relu_fraction_half_by_construction():
    # x > 0; units 0,1 have positive weights (alive), units 2,3 negative (dead)
    model = fnn.serial(Dense(4), fnn.relu)
    params = {"0_Dense": _dense_params([[1.0, 2.0, -1.0, -3.0]], [0.0] * 4)}
    x = jnp.linspace(0.1, 2.0, 9)[:, None]
    got = diag.dead_relu_fraction(model, params, {}, x, batch_size=4)
    assert got == {"1_relu": 0.5}


def test_saturation_fraction_known_inputs():
    identity = _dense_params([[1.0]], [0.0])
    x = jnp.array([[0.0], [10.0], [-10.0], [1.0]])
    tanh_net = fnn.serial(Dense(1), fnn.tanh)
    sig_net = fnn.serial(Dense(1), fnn.sigmoid)
    p = {"0_Dense": identity}
    # tanh: 0, ~1, ~-1, 0.76 -> two saturated of four
    assert diag.saturation_fraction(tanh_net, p, {}, x) == {"1_tanh": 0.5}
    # sigmoid: 0.5, ~1, ~0, 0.73 -> two of four
    assert diag.saturation_fraction(sig_net, p, {}, x) == {"1_sigmoid": 0.5}
    # with tol 0.3, tanh(1) = 0.7616 is within 0.24 of 1: three of four
    assert diag.saturation_fraction(tanh_net, p, {}, x, tol=0.3) == {"1_tanh": 0.75}


def test_activation_stats_match_numpy_across_batches(key):
    model = fnn.serial(Dense(6), fnn.relu, Dense(2))
    params, state = model.init(key, (3,))
    x = jax.random.normal(jax.random.key(2), (23, 3))
    stats = diag.activation_stats(model, params, state, x, batch_size=5)
    acts = fnn.intermediates(model, params, state, x)
    assert list(stats) == ["0_Dense", "1_relu", "2_Dense"]
    for name, a in acts.items():
        a = np.asarray(a, np.float64)
        s = stats[name]
        assert s["mean"] == pytest.approx(a.mean(), rel=1e-6, abs=1e-7)
        assert s["std"] == pytest.approx(a.std(), rel=1e-6)
        assert (s["min"], s["max"]) == pytest.approx((a.min(), a.max()))
        assert s["zero_fraction"] == pytest.approx(np.mean(a == 0))


def test_layer_order_survives_jit_with_more_than_ten_layers():
    # jit sorts dict keys ("10_relu" < "1_relu"); results must stay in layer order
    layers = []
    for _ in range(6):
        layers += [Dense(3, w_init="ones", b_init="ones"), fnn.relu]
    model = fnn.serial(*layers)
    params, state = model.init(jax.random.key(0), (3,))
    stats = diag.activation_stats(model, params, state, jnp.ones((2, 3)))
    assert list(stats) == [f"{i}_{'Dense' if i % 2 == 0 else 'relu'}" for i in range(12)]
    # every unit of layer k equals 3 * (previous unit) + 1: 4, 13, 40, ...
    means = [stats[f"{i}_relu"]["mean"] for i in range(1, 12, 2)]
    assert means == pytest.approx([4.0, 13.0, 40.0, 121.0, 364.0, 1093.0])


def test_gradient_norms_by_leaf_and_layer():
    grads = {"0_Dense": {"w": jnp.array([[3.0, 4.0]]), "b": jnp.array([12.0])},
             "2_Dense": {"w": jnp.array([[1.0]])}}
    assert diag.gradient_norms(grads) == {"0_Dense/b": 12.0, "0_Dense/w": 5.0, "2_Dense/w": 1.0}
    assert diag.gradient_norms(grads, by="layer") == {"0_Dense": 13.0, "2_Dense": 1.0}
    with pytest.raises(ValueError, match="gradient_norms: by must be 'leaf' or 'layer'"):
        diag.gradient_norms(grads, by="unit")


def test_update_ratio_equals_hand_computation(key):
    model = fnn.serial(Dense(3), fnn.tanh, Dense(2))
    params, state = model.init(key, (4,))
    params["0_Dense"]["b"] = jnp.array([0.1, -0.2, 0.3])
    x = jax.random.normal(jax.random.key(5), (8, 4))
    grads = jax.grad(lambda p: jnp.mean(model.apply(p, state, x)[0] ** 2))(params)
    opt = fnn.optim.sgd(0.1)
    st0 = opt.init(params)
    st1, new = opt.update(st0, grads)
    got = diag.update_ratios(params, new)
    for layer in ("0_Dense", "2_Dense"):
        for leaf in ("w", "b"):
            p = np.asarray(params[layer][leaf], np.float64)
            d = np.asarray(new[layer][leaf], np.float64) - p
            want = np.linalg.norm(d) / np.linalg.norm(p) if np.linalg.norm(p) else math.inf
            assert got[f"{layer}/{leaf}"] == pytest.approx(want, rel=1e-6)
    # sgd: ‖Δw‖ = lr ‖g‖
    w = np.asarray(params["0_Dense"]["w"])
    want = 0.1 * np.linalg.norm(np.asarray(grads["0_Dense"]["w"])) / np.linalg.norm(w)
    assert got["0_Dense/w"] == pytest.approx(want, rel=1e-4)
    assert diag.update_ratios(st0, st1) == got          # optimizer states work too
    assert math.isinf(got["2_Dense/b"])                  # zero-initialised bias


def test_format_table_flat_and_nested():
    flat = diag.format_table({"0_Dense/w": 0.00123456, "2_Dense/b": 12.0}, column="ratio")
    lines = flat.splitlines()
    assert lines[0].split() == ["layer", "ratio"]
    assert lines[2].split() == ["0_Dense/w", "0.001235"]
    assert lines[3].split() == ["2_Dense/b", "12"]
    nested = diag.format_table({"a": {"mean": 1.0, "std": 2.0}, "bb": {"mean": 3.0}},
                               title="stats")
    assert nested.splitlines()[0] == "stats"
    assert nested.splitlines()[1].split() == ["layer", "mean", "std"]
    assert nested.splitlines()[4].split() == ["bb", "3"]
    with pytest.raises(TypeError, match="format_table: expected a dict"):
        diag.format_table([1, 2])


def test_errors_name_the_function(key):
    model = fnn.serial(Dense(2), fnn.tanh)
    params, state = model.init(key, (2,))
    with pytest.raises(ValueError, match="dead_relu_fraction: the model has no relu layers"):
        diag.dead_relu_fraction(model, params, state, jnp.ones((3, 2)))
    with pytest.raises(ValueError, match="saturation_fraction: unknown layer path"):
        diag.saturation_fraction(model, params, state, jnp.ones((3, 2)), layers=["9_tanh"])


def test_bad_arguments_are_named_errors(key):
    """Each of these was a raw Python/NumPy error, a silent wrong answer (an inverted
    range counted every activation as saturated) or named another function."""
    model = fnn.serial(Dense(2), fnn.relu, Dense(2), fnn.tanh)
    params, state = model.init(key, (2,))
    x = jnp.ones((3, 2))
    with pytest.raises(TypeError, match="dead_relu_fraction: layers must be a layer path or a "
                                        "list of them, .* got 1"):
        diag.dead_relu_fraction(model, params, state, x, layers=1)
    with pytest.raises(ValueError, match=r"saturation_fraction: ranges\['tanh'\] must be a pair "
                                         r"of numbers \(low, high\) with low < high, "
                                         r"got \(1, -1\)"):
        diag.saturation_fraction(model, params, state, x, ranges={"tanh": (1, -1)})
    with pytest.raises(ValueError, match=r"saturation_fraction: ranges\['tanh'\] .* got 1"):
        diag.saturation_fraction(model, params, state, x, ranges={"tanh": 1})
    with pytest.raises(TypeError, match="activation_stats: expected a model built with "
                                        "fnn.serial, got a 'Dense' layer"):
        diag.activation_stats(Dense(2), params["0_Dense"], {}, x)
    with pytest.raises(TypeError, match="activation_stats: params must be the dict"):
        diag.activation_stats(model, (params, state), state, x)
    with pytest.raises(TypeError, match="gradient_norms: leaf 'a' must be a numeric array"):
        diag.gradient_norms({"a": "abc"})
    with pytest.raises(ValueError, match=r"update_ratios: leaf 'a' has shape \(2,\) in params "
                                         r"but \(3,\) in new_params"):
        diag.update_ratios({"a": jnp.ones(2)}, {"a": jnp.ones(3)})
    with pytest.raises(ValueError, match="format_table: precision must be a positive int"):
        diag.format_table({"a": 1.0}, precision=-1)


def test_saturation_range_may_be_open_on_one_side():
    """ELU saturates at -1 only: (-1, inf) counts the low end (a validated range)."""
    model = fnn.serial(Dense(1), fnn.elu)
    params = {"0_Dense": _dense_params([[1.0]], [0.0])}
    x = jnp.array([[-10.0], [0.0], [10.0], [100.0]])  # elu: ~-1, 0, 10, 100
    got = diag.saturation_fraction(model, params, {}, x, ranges={"elu": (-1.0, math.inf)})
    assert got == {"1_elu": 0.25}
