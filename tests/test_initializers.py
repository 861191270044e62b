"""Initialisers: empirical std of large draws against the definitions."""
import math
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import initializers as init


@pytest.mark.parametrize(
    "fn, shape, expected_std",
    [
        (init.small_random, (300, 200), 0.01),
        (init.normal(0.3), (300, 200), 0.3),
        (init.lecun_normal, (400, 200), 1 / math.sqrt(400)),
        (init.he_normal, (400, 200), math.sqrt(2 / 400)),
        (init.he_normal, (3, 3, 64, 100), math.sqrt(2 / (3 * 3 * 64))),  # conv: fan_in = kh·kw·cin
        (init.he_uniform, (400, 200), math.sqrt(2 / 400)),
        (init.glorot_normal, (400, 200), math.sqrt(2 / 600)),
        (init.glorot_uniform, (400, 200), math.sqrt(2 / 600)),
        (init.lecun_normal, (5, 5, 16, 120), 1 / math.sqrt(5 * 5 * 16)),
    ],
)
def test_std_of_large_draw(fn, shape, expected_std, key):
    w = np.asarray(fn(key, shape), np.float64)
    assert w.shape == shape and w.dtype == np.float64
    # 60k+ samples: the std estimate is within ~1 % (3σ) of the truth.
    assert abs(w.std() / expected_std - 1) < 0.03
    assert abs(w.mean()) < 4 * expected_std / math.sqrt(w.size)


def test_uniform_bounds(key):
    w = init.he_uniform(key, (100, 50))
    assert float(jnp.max(jnp.abs(w))) <= math.sqrt(6 / 100)


def test_fan_in_is_product_of_all_but_last_axis():
    assert init.fan_in_fan_out((3, 3, 8, 16)) == (72, 144)
    assert init.fan_in_fan_out((10, 5)) == (10, 5)


def test_constants_and_zero_biases(key):
    np.testing.assert_array_equal(init.zeros(key, (3,)), 0)
    np.testing.assert_array_equal(init.ones(key, (2, 2)), 1)
    np.testing.assert_array_equal(init.constant(0.5)(key, (4,)), 0.5)
    params, _ = fnn.layers.Dense(7).init(key, (5,))
    np.testing.assert_array_equal(params["b"], np.zeros(7))


@pytest.mark.parametrize("shape", [(64, 32), (32, 64), (3, 3, 4, 36)])
def test_orthogonal(shape, key):
    w = np.asarray(init.orthogonal(key, shape), np.float64).reshape(-1, shape[-1])
    gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
    np.testing.assert_allclose(gram, np.eye(gram.shape[0]), atol=1e-5)


def test_dtype_respected(key):
    assert init.he_normal(key, (4, 4), jnp.bfloat16).dtype == jnp.bfloat16


def test_same_key_same_draw_and_different_keys_differ():
    a = init.he_normal(jax.random.key(1), (10, 10))
    b = init.he_normal(jax.random.key(1), (10, 10))
    c = init.he_normal(jax.random.key(2), (10, 10))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_bad_names_and_values():
    with pytest.raises(ValueError, match="unknown initializer 'he'"):
        init.get("he")
    with pytest.raises(ValueError, match="Dense: .*unknown initializer 'glorot'"):
        fnn.layers.Dense(3, w_init="glorot")
    with pytest.raises(ValueError, match="normal: stddev must be >= 0.0, got -1.0"):
        init.normal(-1.0)
    assert init.get("he_normal") is init.he_normal


# ---------------------------------------------------------------------------
# argument checks when an initialiser is called directly

RANDOM = {"small_random": init.small_random, "normal": init.normal(0.3),
          "lecun_normal": init.lecun_normal, "he_normal": init.he_normal,
          "he_uniform": init.he_uniform, "glorot_normal": init.glorot_normal,
          "glorot_uniform": init.glorot_uniform, "orthogonal": init.orthogonal,
          "truncated_normal": init.truncated_normal(0.3),
          "variance_scaling": init.variance_scaling(2.0, "fan_in", "truncated_normal")}
CONSTANT = {"zeros": init.zeros, "ones": init.ones, "constant": init.constant(0.5)}


@pytest.mark.parametrize("name", RANDOM)
def test_random_initializers_check_the_key(name):
    fn = RANDOM[name]
    with pytest.raises(ValueError, match=rf"fnn\.initializers\.{name}: key must be a PRNG key.*"
                                         r"got None"):
        fn(None, (2, 2))
    with pytest.raises(TypeError, match=rf"fnn\.initializers\.{name}: key must be a PRNG key.*"
                                        r"got 0\."):
        fn(0, (2, 2))


@pytest.mark.parametrize("name", [*RANDOM, *CONSTANT])
def test_initializers_check_shape_and_dtype(name, key):
    fn = {**RANDOM, **CONSTANT}[name]
    where = rf"fnn\.initializers\.{name}"
    with pytest.raises(ValueError, match=rf"{where}: shape sizes must be >= 0, got \(-1, 2\)"):
        fn(key, (-1, 2))
    with pytest.raises(TypeError, match=rf"{where}: shape must be a tuple of ints .*got \(2\.0, 2\)"):
        fn(key, (2.0, 2))
    with pytest.raises(TypeError, match=rf"{where}: shape must be a tuple of ints .*got None"):
        fn(key, None)
    with pytest.raises(TypeError, match=rf"{where}: dtype must be a .*dtype such as "
                                        r"jnp.float32.*, got 'float33'"):
        fn(key, (3, 3), "float33")


@pytest.mark.parametrize("name", RANDOM)
def test_random_initializers_need_a_floating_dtype(name, key):
    with pytest.raises(TypeError, match=rf"fnn\.initializers\.{name}: dtype must be a "
                                        r"floating-point dtype .*got int32"):
        RANDOM[name](key, (3, 3), jnp.int32)


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.uint8, jnp.int8, jnp.bool_, jnp.float16,
                                   jnp.bfloat16, jnp.complex64, "int32"])
@pytest.mark.parametrize("name,ours,theirs", [
    ("zeros", init.zeros, jax.nn.initializers.zeros),
    ("ones", init.ones, jax.nn.initializers.ones),
    ("constant", init.constant(3.0), jax.nn.initializers.constant(3.0)),
    ("constant_fraction", init.constant(-2.5), jax.nn.initializers.constant(-2.5)),
])
def test_constant_initializers_take_any_dtype_as_jax_does(name, ours, theirs, dtype, key):
    """Item 8 of issue 22: integer (and bool, complex) dtypes work as in jax.nn.initializers."""
    got, want = ours(key, (2, 3), dtype), theirs(key, (2, 3), dtype)
    assert got.dtype == want.dtype and got.shape == (2, 3)
    np.testing.assert_array_equal(got, want)


def test_constant_in_integer_dtypes_by_hand():
    np.testing.assert_array_equal(init.constant(-2.5)(None, (2,), jnp.int32), [-2, -2])
    np.testing.assert_array_equal(init.constant(7)(None, 3, jnp.uint8), [7, 7, 7])
    np.testing.assert_array_equal(init.ones(None, (2,), bool), [True, True])
    assert init.zeros(None, (1, 2), jnp.int8).dtype == jnp.int8
    with warnings.catch_warnings():  # int64 is JAX's integer type (int32 without x64), quietly
        warnings.simplefilter("error")
        assert init.ones(None, (2,), np.int64).dtype == jax.dtypes.canonicalize_dtype(np.int64)


def test_constant_initializers_ignore_the_key():
    np.testing.assert_array_equal(init.zeros(None, (2,)), [0.0, 0.0])
    np.testing.assert_array_equal(init.constant(2.0)("unused", (1,)), [2.0])


def test_an_int_shape_means_one_axis_and_zero_sizes_are_empty(key):
    """As in jax.random.normal and jax.nn.initializers: `n` is `(n,)`."""
    np.testing.assert_array_equal(init.lecun_normal(key, 3), init.lecun_normal(key, (3,)))
    np.testing.assert_array_equal(init.he_uniform(key, np.array([2, 3])),
                                  init.he_uniform(key, (2, 3)))
    assert init.he_normal(key, (0, 4)).shape == (0, 4)
    with pytest.raises(ValueError, match=r"orthogonal: expected a shape of rank >= 2, got \(3,\)"):
        init.orthogonal(key, 3)


def test_valid_draws_unchanged():
    """The checks leave the values bit-identical to the definitions (and to jax.nn's normal)."""
    key = jax.random.PRNGKey(3)
    shape = (4, 3, 5)                                  # fan_in 12, fan_out 20
    normal, uniform = jax.random.normal(key, shape), jax.random.uniform
    np.testing.assert_array_equal(init.normal(0.3)(key, shape),
                                  jax.nn.initializers.normal(0.3)(key, shape))
    np.testing.assert_array_equal(init.small_random(key, shape), 0.01 * normal)
    for fn, std in [(init.lecun_normal, (1 / 12) ** 0.5), (init.he_normal, (2 / 12) ** 0.5),
                    (init.glorot_normal, (2 / 32) ** 0.5)]:
        np.testing.assert_array_equal(fn(key, shape), jnp.float32(std) * normal)
    for fn, limit in [(init.he_uniform, (6 / 12) ** 0.5), (init.glorot_uniform, (6 / 32) ** 0.5)]:
        np.testing.assert_array_equal(fn(key, shape), uniform(key, shape, jnp.float32, -limit,
                                                              limit))
    jitted = jax.jit(lambda k: init.he_normal(k, shape))(jax.random.key(3))  # a typed key
    np.testing.assert_allclose(jitted, init.he_normal(key, shape), rtol=1e-6)


# ---------------------------------------------------------------------------
# truncated normals and variance scaling (issue 29, point 3)

_TRUNC_STD = 0.87962566103423978   # std of N(0, 1) cut to (-2, 2), closed form below


def test_truncated_std_constant_in_closed_form():
    """std² of N(0,1) on (−a, a) is 1 − 2aφ(a)/(2Φ(a) − 1)."""
    a = 2.0
    phi = math.exp(-a * a / 2) / math.sqrt(2 * math.pi)
    assert math.isclose(math.sqrt(1 - 2 * a * phi / math.erf(a / math.sqrt(2))), _TRUNC_STD,
                        rel_tol=1e-12)


def test_truncated_normal_is_jax_draw(key):
    ours = init.truncated_normal(0.3)(key, (40, 30))
    np.testing.assert_array_equal(ours, jax.nn.initializers.truncated_normal(0.3)(key, (40, 30)))
    assert float(jnp.max(jnp.abs(ours))) < 0.6                         # cut at 2·stddev
    assert init.truncated_normal()(key, (3,)).shape == (3,)            # JAX's default 1e-2


@pytest.mark.parametrize("scale, mode, distribution", [
    (1.0, "fan_in", "truncated_normal"), (2.0, "fan_in", "truncated_normal"),
    (1.0, "fan_avg", "truncated_normal"), (0.5, "fan_out", "normal"),
    (3.0, "fan_avg", "uniform"), (1.0, "fan_geo_avg", "truncated_normal"),
])
@pytest.mark.parametrize("shape", [(30, 20), (3, 3, 4, 8)])
def test_variance_scaling_matches_jax(scale, mode, distribution, shape, key):
    """Same key, same values as jax.nn.initializers.variance_scaling (up to the float32
    rounding of the std, computed here in float64)."""
    ours = init.variance_scaling(scale, mode, distribution)(key, shape)
    theirs = jax.nn.initializers.variance_scaling(scale, mode, distribution)(key, shape)
    assert ours.dtype == theirs.dtype == jnp.float32
    np.testing.assert_allclose(ours, theirs, rtol=3e-7, atol=1e-7)


@pytest.mark.parametrize("ours, theirs", [
    (init.variance_scaling(1.0, "fan_in", "truncated_normal"), jax.nn.initializers.lecun_normal()),
    (init.variance_scaling(2.0, "fan_in", "truncated_normal"), jax.nn.initializers.he_normal()),
    (init.variance_scaling(1.0, "fan_avg", "truncated_normal"),
     jax.nn.initializers.glorot_normal()),
    (init.variance_scaling(1.0, "fan_avg", "uniform"), jax.nn.initializers.glorot_uniform()),
])
def test_the_docstrings_recipes_give_jax_named_initializers(ours, theirs, key):
    np.testing.assert_allclose(ours(key, (5, 5, 3, 16)), theirs(key, (5, 5, 3, 16)),
                               rtol=3e-7, atol=1e-7)


@pytest.mark.parametrize("mode, n", [("fan_in", 400), ("fan_out", 300), ("fan_avg", 350),
                                     ("fan_geo_avg", math.sqrt(400 * 300))])
@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "uniform"])
def test_variance_scaling_std_is_closed_form(mode, n, distribution, key):
    """std √(scale/n) after truncation; support ±2σ (truncated) or ±√(3·scale/n)."""
    w = np.asarray(init.variance_scaling(2.0, mode, distribution)(key, (400, 300)), np.float64)
    std = math.sqrt(2.0 / n)
    assert abs(w.std() / std - 1) < 0.02 and abs(w.mean()) < 4 * std / math.sqrt(w.size)
    bound = {"truncated_normal": 2 * std / _TRUNC_STD, "normal": np.inf,
             "uniform": math.sqrt(3) * std}[distribution]
    assert np.abs(w).max() <= bound * (1 + 1e-6)


def test_each_normal_docstring_says_how_to_get_jax_truncated_normal():
    for fn, recipe in [(init.lecun_normal, "variance_scaling(1.0, 'fan_in', 'truncated_normal')"),
                       (init.he_normal, "variance_scaling(2.0, 'fan_in', 'truncated_normal')"),
                       (init.glorot_normal,
                        "variance_scaling(1.0, 'fan_avg', 'truncated_normal')")]:
        assert recipe in fn.__doc__
