"""Tests for fnn.regularizers: exact values on a hand-written parameter tree."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import regularizers


def _params():
    """A tree shaped like a real model's: Dense, LayerNorm, PReLU, GRU, BatchNorm, Embedding."""
    return {
        "0_Dense": {"w": jnp.array([[1.0, -2.0], [3.0, 0.5]]), "b": jnp.array([1.0, -1.0])},
        "1_LayerNorm": {"scale": jnp.array([2.0, 2.0]), "bias": jnp.array([0.5, 0.5])},
        "2_PReLU": {"alpha": jnp.array([0.25, 0.25])},
        "3_GRU": {
            "w_x": jnp.array([[1.0, 1.0, -1.0]]),
            "w_h": jnp.array([[0.0, 2.0, 0.0]]),
            "b_x": jnp.array([3.0, 3.0, 3.0]),
            "b_h": jnp.array([-4.0, 0.0, 0.0]),
        },
        "4_BatchNorm": {"scale": jnp.array([1.5]), "bias": jnp.array([-1.5])},
        "5_Embedding": {"table": jnp.array([[0.5, -0.5]])},
        # a made-up norm layer with an unusual key: excluded because it is under a *Norm
        "6_GroupNorm": {"gamma": jnp.array([7.0])},
    }


# Weights penalised by default: 0_Dense/w, 3_GRU/w_x, 3_GRU/w_h, 5_Embedding/table
#   Σ|w| = (1 + 2 + 3 + 0.5) + (1 + 1 + 1) + (0 + 2 + 0) + (0.5 + 0.5) = 12.5
#   Σw²  = (1 + 4 + 9 + 0.25) + (1 + 1 + 1) + (0 + 4 + 0) + (0.25 + 0.25) = 21.75
WEIGHT_L1, WEIGHT_L2 = 12.5, 21.75
# The rest: Dense b, LN scale/bias, PReLU alpha, GRU b_x/b_h, BN scale/bias, GroupNorm gamma
#   Σ|.| = 2 + (4 + 1) + 0.5 + (9 + 4) + (1.5 + 1.5) + 7 = 30.5
#   Σ.²  = 2 + (8 + 0.5) + 0.125 + (27 + 16) + (2.25 + 2.25) + 49 = 107.125
OTHER_L1, OTHER_L2 = 30.5, 107.125


def test_default_excludes_biases_and_norm_parameters():
    p = _params()
    np.testing.assert_allclose(regularizers.l1(p, 0.1), 0.1 * WEIGHT_L1, rtol=1e-6)
    np.testing.assert_allclose(regularizers.l2(p, 0.1), 0.1 * WEIGHT_L2, rtol=1e-6)


def test_include_all_penalises_every_leaf():
    p = _params()
    np.testing.assert_allclose(regularizers.l1(p, 2.0, include="all"),
                               2.0 * (WEIGHT_L1 + OTHER_L1), rtol=1e-6)
    np.testing.assert_allclose(regularizers.l2(p, 2.0, include="all"),
                               2.0 * (WEIGHT_L2 + OTHER_L2), rtol=1e-6)


def test_include_predicate_sees_slash_joined_paths():
    seen = []
    regularizers.l2(_params(), 1.0, include=lambda path, w: seen.append(path) or False)
    assert sorted(seen) == sorted([
        "0_Dense/w", "0_Dense/b", "1_LayerNorm/scale", "1_LayerNorm/bias", "2_PReLU/alpha",
        "3_GRU/w_x", "3_GRU/w_h", "3_GRU/b_x", "3_GRU/b_h", "4_BatchNorm/scale",
        "4_BatchNorm/bias", "5_Embedding/table", "6_GroupNorm/gamma",
    ])
    # lists and tuples contribute their indices
    seen.clear()
    regularizers.l1({"blocks": [{"w": jnp.ones(1)}, (jnp.ones(1),)]}, 1.0,
                    include=lambda path, w: seen.append(path) or True)
    assert seen == ["blocks/0/w", "blocks/1/0"]


def test_include_predicates_on_shape_and_composed_with_the_default():
    p = _params()
    # matrices only: Dense w (14.25), GRU w_x (3), w_h (4), Embedding table (0.5)
    np.testing.assert_allclose(regularizers.l2(p, 1.0, include=lambda path, w: w.ndim > 1),
                               WEIGHT_L2, rtol=1e-6)
    # the default plus Dense's bias: 21.75 + (1 + 1)
    plus_dense_bias = lambda path, w: (regularizers.default_include(path, w)
                                       or path == "0_Dense/b")
    np.testing.assert_allclose(regularizers.l2(p, 1.0, include=plus_dense_bias),
                               WEIGHT_L2 + 2.0, rtol=1e-6)


def test_default_include_rule():
    inc = regularizers.default_include
    assert inc("0_Dense/w") and inc("w") and inc("3_LSTM/w_h") and inc("0_Embedding/table")
    assert inc("block/shortcut/0_Conv2D/w")
    for path in ("0_Dense/b", "bias", "3_GRU/b_x", "3_GRU/b_h", "1_PReLU/alpha",
                 "2_LayerNorm/scale", "4_BatchNorm/w", "block/1_BatchNorm/anything",
                 "LayerNorm/x"):
        assert not inc(path), path


def test_l2_gradient_is_two_weight_w_on_weights_and_zero_elsewhere():
    p = _params()
    g = jax.jit(jax.grad(lambda p: regularizers.l2(p, 0.3)))(p)
    for layer, leaves in p.items():
        for name, w in leaves.items():
            path = f"{layer}/{name}"
            want = 2 * 0.3 * np.asarray(w) if regularizers.default_include(path) else 0 * w
            np.testing.assert_allclose(g[layer][name], want, rtol=1e-6, err_msg=path)


def test_l1_gradient_is_weight_sign_w_with_zero_at_zero():
    p = {"0_Dense": {"w": jnp.array([2.0, -3.0, 0.0]), "b": jnp.array([5.0])}}
    g = jax.grad(lambda p: regularizers.l1(p, 0.5))(p)
    np.testing.assert_array_equal(g["0_Dense"]["w"], [0.5, -0.5, 0.0])
    np.testing.assert_array_equal(g["0_Dense"]["b"], [0.0])


def test_torch_weight_decay_equals_l2_with_half_the_weight():
    # torch.optim.SGD(lr, weight_decay=λ): p ← p − lr·(g + λ·p). With g = 0 here:
    lam, lr = 0.2, 0.1
    p = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([3.0])}
    g = jax.grad(lambda p: regularizers.l2(p, lam / 2, include="all"))(p)
    stepped = jax.tree_util.tree_map(lambda w, gw: w - lr * gw, p, g)
    for k in p:
        np.testing.assert_allclose(stepped[k], (1 - lr * lam) * np.asarray(p[k]), rtol=1e-6)


def test_works_under_jit_and_vmap_over_the_weight():
    p = _params()
    np.testing.assert_allclose(jax.jit(regularizers.l2)(p, 0.5), 0.5 * WEIGHT_L2, rtol=1e-6)
    per_weight = jax.vmap(lambda lam: regularizers.l1(p, lam))(jnp.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(per_weight, [0.0, WEIGHT_L1, 2 * WEIGHT_L1], rtol=1e-6)


def test_empty_tree_integer_leaves_and_zero_weight():
    assert float(regularizers.l2({}, 1.0)) == 0.0
    assert float(regularizers.l1({"w": jnp.array([1, 2])}, 1.0, include="all")) == 0.0
    assert float(regularizers.l2(_params(), 0.0)) == 0.0
    assert regularizers.l2({}, 1.0).shape == ()


@pytest.mark.parametrize("fn", [regularizers.l1, regularizers.l2], ids=lambda f: f.__name__)
@pytest.mark.parametrize("weight", [-0.1, float("nan"), float("inf")])
def test_bad_weight_raises_value_error(fn, weight):
    with pytest.raises(ValueError, match=rf"regularizers\.{fn.__name__}: weight must be"):
        fn(_params(), weight)


@pytest.mark.parametrize("fn", [regularizers.l1, regularizers.l2], ids=lambda f: f.__name__)
def test_bad_weight_type_and_include_raise(fn):
    name = fn.__name__
    with pytest.raises(TypeError, match=rf"regularizers\.{name}: weight must be a number"):
        fn(_params(), "0.1")
    with pytest.raises(ValueError, match=rf"regularizers\.{name}: include.*'weights'"):
        fn(_params(), 0.1, include="weights")
    with pytest.raises(TypeError, match=rf"regularizers\.{name}: include.*predicate"):
        fn(_params(), 0.1, include=3)


def test_half_precision_leaves_are_summed_in_float32():
    """Σ w² = 1e5 is beyond float16's 65504: summed in float16 it was inf."""
    got = regularizers.l2({"w": jnp.full((1000,), 10.0, jnp.float16)}, 1e-4)
    assert float(got) == pytest.approx(10.0, rel=1e-6)
    got = regularizers.l1({"w": jnp.full((70000,), 1.0, jnp.float16)}, 1.0)
    assert float(got) == pytest.approx(70000.0, rel=1e-6)


# --- found by an adversarial audit: each test failed before its fix -----------------------


@pytest.mark.parametrize("fn", [regularizers.l1, regularizers.l2], ids=lambda f: f.__name__)
@pytest.mark.parametrize("leaf, kind", [
    ("abc", "non-numeric"),                       # was a raw JAX 'not a valid JAX array type'
    (object(), "non-numeric"),
    (jnp.array([1.0 + 2.0j]), "complex"),         # was silently skipped: penalty 0
])
def test_leaves_that_are_not_real_arrays_raise_naming_the_path(fn, leaf, kind):
    params = {"0_Dense": {"w": leaf, "b": jnp.ones(2)}}
    with pytest.raises(TypeError, match=rf"regularizers\.{fn.__name__}: .*{kind} leaf at "
                                        r"'0_Dense/w'"):
        fn(params, 0.1)


@pytest.mark.parametrize("include, says", [
    (lambda path, w: None, "returned None"),          # a forgotten return: penalised nothing
    (lambda path, w: w > 0, "returned an array of dtype bool and shape \\(2,\\)"),  # raw error
])
def test_include_must_return_a_bool(include, says):
    with pytest.raises(TypeError, match=rf"l2: include\(path, leaf\) must return True or False"
                                        rf".*'0_Dense/w'.*{says}"):
        regularizers.l2({"0_Dense": {"w": jnp.ones(2)}}, 0.1, include=include)


def test_include_that_reads_values_under_jit_or_takes_one_argument_raises():
    params = {"w": jnp.ones(2)}
    with pytest.raises(TypeError, match=r"l1: include\(path, leaf\).*'w' it read the traced"):
        jax.jit(lambda p: regularizers.l1(p, 1.0, include=lambda path, w: bool(w.sum() > 0)))(
            params)
    with pytest.raises(TypeError, match=r"l2: include must take two arguments.*\(path\)"):
        regularizers.l2(params, 1.0, include=lambda path: True)
