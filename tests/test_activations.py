"""Activations and their derivatives against the closed forms (float64 numpy references)."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn

X = np.array([-5.0, -2.0, -0.5, -1e-3, 0.0, 1e-3, 0.5, 2.0, 5.0])


def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# (fnn function, forward reference, derivative reference), all float64 numpy.
CASES = {
    "sigmoid": (fnn.sigmoid, np_sigmoid, lambda x: np_sigmoid(x) * (1 - np_sigmoid(x))),
    "tanh": (fnn.tanh, np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    "relu": (fnn.relu, lambda x: np.maximum(x, 0), lambda x: (x > 0).astype(float)),
    "leaky_relu": (fnn.leaky_relu, lambda x: np.where(x > 0, x, 0.01 * x),
                   lambda x: np.where(x > 0, 1.0, 0.01)),
    "elu": (fnn.elu, lambda x: np.where(x > 0, x, np.expm1(x)),
            lambda x: np.where(x > 0, 1.0, np.exp(x))),
    "identity": (fnn.identity, lambda x: x, np.ones_like),
}


class ActivationTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(name, name) for name in CASES])
    def test_value_and_derivative(self, name):
        fn, ref, dref = CASES[name]
        x = jnp.asarray(X, jnp.float32)
        np.testing.assert_allclose(self.variant(fn)(x), ref(X), rtol=1e-6, atol=1e-7)
        grad = self.variant(jax.vmap(jax.grad(fn)))(x)
        np.testing.assert_allclose(grad, dref(X), rtol=1e-5, atol=1e-7)


SECOND_DERIVATIVES = {
    "sigmoid": lambda x: np_sigmoid(x) * (1 - np_sigmoid(x)) * (1 - 2 * np_sigmoid(x)),
    "tanh": lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2),
}


@pytest.mark.parametrize("name", SECOND_DERIVATIVES)
def test_second_derivative_and_jvp(name):
    """The custom derivative rules differentiate again, and forward mode agrees."""
    fn, _, dref = CASES[name]
    x = jnp.asarray(X, jnp.float32)
    np.testing.assert_allclose(jax.vmap(jax.grad(jax.grad(fn)))(x),
                               SECOND_DERIVATIVES[name](X), rtol=1e-4, atol=1e-6)
    tangent = jnp.linspace(-1.0, 2.0, X.size)
    _, jvp = jax.jvp(fn, (x,), (tangent,))
    # rtol: at |x| = 5 float32 rounding of f(x) alone puts ~1e-3 into f'(x) (JAX's rules too)
    np.testing.assert_allclose(jvp, dref(X) * np.asarray(tangent), rtol=2e-3, atol=1e-7)


@pytest.mark.parametrize("name", SECOND_DERIVATIVES)
def test_backward_pass_keeps_only_the_output(name):
    """For `y * y`, reverse mode keeps only `y` (JAX's own rules also keep f'(x))."""
    fn, ref, _ = CASES[name]
    _, pullback = jax.vjp(lambda x: fn(x) * fn(x), jnp.asarray(X, jnp.float32))
    kept = jax.tree.leaves(pullback)
    assert kept
    for array in kept:
        np.testing.assert_allclose(array, ref(X), rtol=1e-6, atol=1e-7)


def test_relu_derivative_at_zero_is_zero():
    assert jax.grad(fnn.relu)(0.0) == 0.0


def test_leaky_relu_and_elu_alpha():
    x = jnp.array([-2.0, 3.0])
    np.testing.assert_allclose(fnn.leaky_relu(x, alpha=0.2), [-0.4, 3.0], rtol=1e-6)
    np.testing.assert_allclose(fnn.elu(x, alpha=0.5), [0.5 * np.expm1(-2.0), 3.0], rtol=1e-6)


def test_tanh_is_rescaled_sigmoid():
    x = jnp.linspace(-6, 6, 101)
    np.testing.assert_allclose(fnn.tanh(x), 2 * fnn.sigmoid(2 * x) - 1, atol=1e-6)


def test_elu_has_no_overflow_in_gradient():
    g = jax.grad(lambda x: fnn.elu(x).sum())(jnp.array([1e4, -1e4]))
    chex.assert_tree_all_finite(g)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-50, 50), min_size=2, max_size=6), st.floats(-100, 100))
def test_softmax_rows_sum_to_one_and_shift_invariant(row, shift):
    z = jnp.asarray([row, row[::-1]], jnp.float32)
    p = fnn.softmax(z)
    np.testing.assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(fnn.softmax(z + shift), p, atol=1e-5)
    zz = np.asarray(z, np.float64)
    ref = np.exp(zz - zz.max(-1, keepdims=True))
    np.testing.assert_allclose(p, ref / ref.sum(-1, keepdims=True), atol=1e-6)


def test_log_softmax_is_stable_and_matches_log_of_softmax():
    z = jnp.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]])
    out = fnn.log_softmax(z)
    chex.assert_tree_all_finite(out)
    zz = np.array([[1e4, 0.0, -1e4], [1.0, 2.0, 3.0]])
    m = zz.max(-1, keepdims=True)
    ref = zz - m - np.log(np.exp(zz - m).sum(-1, keepdims=True))
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_softmax_jacobian_closed_form():
    z = jnp.array([0.3, -1.2, 2.0])
    p = np.asarray(fnn.softmax(z), np.float64)
    np.testing.assert_allclose(jax.jacobian(fnn.softmax)(z), np.diag(p) - np.outer(p, p),
                               atol=1e-6)


def test_get_by_name_and_unknown_name():
    assert fnn.activations.get("relu") is fnn.relu
    with pytest.raises(ValueError, match="unknown activation 'rleu'.*relu"):
        fnn.activations.get("rleu")


def test_sigmoid_takes_integers_like_tanh():
    x = jnp.array([-2, 0, 3])
    got = fnn.activations.sigmoid(x)
    want = 1.0 / (1.0 + np.exp(-np.array([-2.0, 0.0, 3.0])))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.dtype == fnn.activations.tanh(x).dtype == jnp.float32


# ---------------------------------------------------------------------------
# bad arguments: caught while tracing, naming the function

ALL = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax", "log_softmax", "identity"]


@pytest.mark.parametrize("name", ALL)
def test_lists_and_strings_are_type_errors(name):
    fn = getattr(fnn.activations, name)
    with pytest.raises(TypeError, match=rf"fnn\.activations\.{name}: expected an array .*got a "
                                        r"list; convert it with jnp\.asarray"):
        fn([1.0, -1.0])
    with pytest.raises(TypeError, match=rf"fnn\.activations\.{name}: expected an array .*got a str"):
        fn("a")
    with pytest.raises(TypeError, match=rf"fnn\.activations\.{name}: expected a numeric array, "
                                        r"got dtype <U1"):
        fn(np.array(["a"]))


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_axis_out_of_range(name):
    fn = getattr(fnn, name)
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=rf"fnn\.activations\.{name}: axis=3 is out of range for "
                                         r"an input of shape \(2, 3\) \(rank 2\); use an axis in "
                                         r"\[-2, 1\]"):
        fn(x, axis=3)
    with pytest.raises(TypeError, match=rf"fnn\.activations\.{name}: axis must be an int, got 1\.0"):
        fn(x, axis=1.0)
    np.testing.assert_allclose(jax.jit(lambda x: fn(x, axis=-2))(x), fn(x, axis=0), rtol=1e-6)


@pytest.mark.parametrize("name", ["leaky_relu", "elu"])
def test_non_numeric_alpha_is_a_type_error(name):
    fn = getattr(fnn, name)
    with pytest.raises(TypeError, match=rf"fnn\.activations\.{name}: alpha must be a number, "
                                        r"got 'a'"):
        fn(jnp.ones(2), alpha="a")
    # a traced alpha (under jit or vmap) cannot be checked and passes through
    x = jnp.array([-2.0, 3.0])
    np.testing.assert_allclose(jax.jit(fn)(x, 0.5), fn(x, alpha=0.5), rtol=1e-6)


def test_scalars_still_work_like_jnp():
    assert float(fnn.relu(-1.5)) == 0.0
    np.testing.assert_allclose(fnn.tanh(np.float32(0.5)), np.tanh(0.5), rtol=1e-6)
    np.testing.assert_allclose(fnn.sigmoid(0), 0.5)
