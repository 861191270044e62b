"""check_grads: small errors for right gradients, large ones for a wrong custom_vjp."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
import fnn.losses
from fnn.gradcheck import check_grads, leaf_paths


@jax.custom_vjp
def _bad_sin(x):
    return jnp.sin(x)


def _bad_sin_fwd(x):
    return jnp.sin(x), x


def _bad_sin_bwd(x, g):
    return (1.5 * jnp.cos(x) * g,)  # wrong on purpose: the derivative is cos(x)


_bad_sin.defvjp(_bad_sin_fwd, _bad_sin_bwd)


def _tanh_mlp_loss():
    model = fnn.serial(fnn.layers.Dense(5), fnn.tanh, fnn.layers.Dense(3))
    params, state = model.init(jax.random.key(0), (4,))

    def loss(p, x, y):
        return fnn.losses.softmax_cross_entropy(model.apply(p, state, x)[0], y)

    return loss, params


def test_correct_gradients_have_tiny_errors(key):
    loss, params = _tanh_mlp_loss()
    x = jax.random.normal(key, (6, 4))
    y = jnp.array([0, 1, 2, 0, 1, 2])
    errors = check_grads(loss, params, x, y)
    assert set(errors) == {"0_Dense/w", "0_Dense/b", "2_Dense/w", "2_Dense/b"}
    assert max(errors.values()) < 1e-7, errors


def test_polynomial_gradient_is_exact_to_float64():
    errors = check_grads(lambda p: jnp.sum(p["a"] ** 3) + jnp.sum(p["a"] * p["b"]),
                         {"a": jnp.array([0.5, -1.0, 2.0]), "b": jnp.array([1.0, 2.0, 3.0])})
    assert errors["a"] < 1e-8 and errors["b"] < 1e-8


def test_wrong_custom_vjp_is_flagged_on_its_leaf_only():
    params = {"a": jnp.array([0.3, -0.7, 1.1]), "b": jnp.array([0.2, 0.4])}

    def f(p):
        return jnp.sum(_bad_sin(p["a"])) + jnp.sum(jnp.sin(p["b"]))

    errors = check_grads(f, params)
    # a = 1.5 n  ->  |a - n| / |a| = 1/3
    assert errors["a"] == pytest.approx(1 / 3, rel=1e-5)
    assert errors["b"] < 1e-8


def test_large_leaf_uses_a_random_subset_and_still_catches_the_bug():
    p = jnp.linspace(-1.0, 1.0, 5000)
    calls = []

    def f(q):
        calls.append(1)  # counts traces, not evaluations: jit traces once per use
        return jnp.sum(_bad_sin(q))

    errors = check_grads(f, p, max_coords=7)
    assert errors["(root)"] > 1e-2
    assert len(calls) <= 3


def test_does_not_change_inputs_or_leave_x64_on():
    loss, params = _tanh_mlp_loss()
    x = jnp.ones((2, 4))
    y = jnp.array([0, 1])
    check_grads(loss, params, x, y, max_coords=2)
    assert all(leaf.dtype == jnp.float32 for leaf in jax.tree.leaves(params))
    assert jnp.ones(1).dtype == jnp.float32


def test_dead_units_do_not_divide_by_zero():
    # relu(w x) with w x < 0: both gradients exactly 0 -> error 0, not nan
    errors = check_grads(lambda w: jnp.sum(fnn.relu(w * jnp.array([1.0, 2.0]))),
                         jnp.array([-1.0, -2.0]))
    assert errors["(root)"] == 0.0


def test_leaf_paths_spelling():
    tree = {"0_Dense": {"w": np.zeros(1), "b": np.zeros(1)}, "x": np.zeros(1)}
    assert [p for p, _ in leaf_paths(tree)] == ["0_Dense/b", "0_Dense/w", "x"]


def test_non_scalar_output_raises():
    with pytest.raises(ValueError, match="check_grads: f must return a scalar.*shape \\(3,\\)"):
        check_grads(lambda p: p * 2, jnp.ones(3))


def test_bad_eps_and_params_raise():
    with pytest.raises(ValueError, match="check_grads: eps must be > 0"):
        check_grads(lambda p: jnp.sum(p), jnp.ones(3), eps=0.0)
    with pytest.raises(TypeError, match="check_grads: params must be a non-empty pytree"):
        check_grads(lambda p: jnp.sum(p), jnp.arange(3))
    with pytest.raises(TypeError, match="check_grads: f must be a function"):
        check_grads("loss", jnp.ones(3))


@jax.custom_vjp
def _square_sum_one_wrong(w):
    return jnp.sum(w ** 2)


def _ssow_fwd(w):
    return jnp.sum(w ** 2), w


def _ssow_bwd(w, g):
    return (g * (2 * w).at[37].set(0.0),)  # wrong at one coordinate of 100


_square_sum_one_wrong.defvjp(_ssow_fwd, _ssow_bwd)


def test_every_coordinate_is_checked_by_default():
    """A sample of 16 coordinates (the old default) missed this one wrong coordinate."""
    w = jnp.linspace(1.0, 2.0, 100)
    def f(p):
        return _square_sum_one_wrong(p["w"])

    assert check_grads(f, {"w": w})["w"] == pytest.approx(1.0)
    # sampled: the error shows only if coordinate 37 is drawn
    sampled = check_grads(f, {"w": w}, max_coords=16)["w"]
    assert sampled < 1e-8 or sampled == pytest.approx(1.0)


def test_large_programs_are_checked_one_perturbation_at_a_time(monkeypatch):
    """Where one evaluation is big, perturbations are not vmapped (memory): same errors."""
    loss, params = _tanh_mlp_loss()
    x, y = jnp.linspace(-1.0, 1.0, 24).reshape(6, 4), jnp.array([0, 1, 2, 0, 1, 2])
    batched = check_grads(loss, params, x, y)
    import fnn.gradcheck as gradcheck

    monkeypatch.setattr(gradcheck, "_bytes_per_call", lambda fun, p: 2**30)
    one_by_one = check_grads(loss, params, x, y)
    assert set(one_by_one) == set(batched)
    for k in batched:  # finite differences agree to rounding noise, not bit for bit
        assert one_by_one[k] < 1e-7 and batched[k] < 1e-7
    wrong = check_grads(lambda p: jnp.sum(_bad_sin(p)), jnp.array([0.3, -0.7, 1.1]))
    assert wrong["(root)"] == pytest.approx(1 / 3, rel=1e-5)


def test_zero_size_leaf_has_nothing_to_compare():
    """A zero-size leaf (an empty bias) raised 'need at least one array to concatenate'."""
    errors = check_grads(lambda p: jnp.sum(jnp.sin(p["a"])) + jnp.sum(p["z"]),
                         {"a": jnp.array([0.3, -0.2]), "z": jnp.zeros((0, 3))})
    assert errors["z"] == 0.0 and errors["a"] < 1e-8


def test_bad_key_and_bad_outputs_name_check_grads():
    """These were raw JAX errors, or a tuple reported as 'an output of shape (2,)'."""
    p = {"a": jnp.array([0.1, 0.2])}
    with pytest.raises(TypeError, match="check_grads: key must be a PRNG key .* got 3"):
        check_grads(lambda q: jnp.sum(q["a"]), p, key=3)
    with pytest.raises(TypeError, match="check_grads: f must return a real floating-point "
                                        "scalar, got dtype int"):
        check_grads(lambda q: jnp.sum(q["a"] > 0), p)
    with pytest.raises(TypeError, match="check_grads: f must return a scalar array, got a tuple"):
        check_grads(lambda q: (jnp.sum(q["a"]), 1.0), p)
