"""Generated sequence data sets: shapes, dtypes and the defining properties."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.datasets import adding_problem, image_rows, sine_sequences


def test_adding_problem_shapes_and_target(key):
    x, y = adding_problem(key, 64, 30)
    chex.assert_shape((x, y), ((64, 30, 2), (64, 1)))
    assert x.dtype == y.dtype == jnp.float32
    values, markers = np.asarray(x[..., 0]), np.asarray(x[..., 1])
    assert set(np.unique(markers)) == {0.0, 1.0}
    np.testing.assert_array_equal(markers.sum(axis=1), 2)
    # one marker in each half
    np.testing.assert_array_equal(markers[:, :15].sum(axis=1), 1)
    np.testing.assert_array_equal(markers[:, 15:].sum(axis=1), 1)
    assert values.min() >= 0 and values.max() < 1
    marked = np.where(markers == 1, values, 0.0).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(y, marked, rtol=1e-6)


def test_adding_problem_baseline_and_determinism(key):
    _, y = adding_problem(key, 20000, 10)
    # predicting 1 scores the variance of U(0,1) + U(0,1): 1/6 (sampling std ≈ 0.0017)
    assert abs(float(jnp.mean((y - 1.0) ** 2)) - 1 / 6) < 0.01
    a = adding_problem(jax.random.key(1), 4, 8)
    b = adding_problem(jax.random.key(1), 4, 8)
    chex.assert_trees_all_equal(a, b)


def test_adding_problem_errors(key):
    with pytest.raises(ValueError, match="adding_problem: length must be >= 2"):
        adding_problem(key, 4, 1)
    with pytest.raises(ValueError, match="adding_problem: n must be a positive int, got 0"):
        adding_problem(key, 0, 10)


def test_sine_sequences_next_step_targets(key):
    x, y = sine_sequences(key, 8, 20, freq_range=(0.2, 0.3), amplitude_range=(1.0, 2.0))
    chex.assert_shape((x, y), ((8, 20, 1), (8, 20, 1)))
    assert x.dtype == y.dtype == jnp.float32
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert float(jnp.max(jnp.abs(x))) <= 2.0 + 1e-6
    # a noise-free sine satisfies s_{t+1} + s_{t-1} = 2 cos(ω) s_t with ω in the range
    s = np.asarray(x[..., 0], np.float64)
    ratio = (s[:, 2:] + s[:, :-2]) / (2 * s[:, 1:-1])
    ok = np.abs(s[:, 1:-1]) > 0.3
    omega = np.arccos(np.clip(ratio[ok], -1, 1))
    assert omega.min() > 0.19 and omega.max() < 0.31


def test_sine_sequences_noise_and_errors(key):
    x0, _ = sine_sequences(key, 4, 10)
    x1, _ = sine_sequences(key, 4, 10, noise=0.1)
    assert not np.allclose(x0, x1)
    with pytest.raises(ValueError, match="sine_sequences: noise must be >= 0.0"):
        sine_sequences(key, 4, 10, noise=-1.0)
    with pytest.raises(ValueError, match="sine_sequences: freq_range must have low <= high"):
        sine_sequences(key, 4, 10, freq_range=(0.5, 0.1))


@pytest.mark.parametrize("shape,expected", [
    ((3, 28, 28, 1), (3, 28, 28)), ((3, 28, 28), (3, 28, 28)), ((2, 4, 5, 3), (2, 4, 15))])
def test_image_rows_shapes(shape, expected):
    images = np.arange(np.prod(shape), dtype=np.uint8).reshape(shape)
    rows = image_rows(images)
    assert rows.shape == expected and rows.dtype == np.uint8
    # row t of the sequence is row t of the image
    np.testing.assert_array_equal(rows[1, 2], images[1, 2].reshape(-1))
    chex.assert_shape(image_rows(jnp.asarray(images, jnp.float32)), expected)


def test_image_rows_rank_error():
    with pytest.raises(ValueError, match=r"image_rows: expected images \(N, H, W\) or "
                                         r"\(N, H, W, C\), got shape \(3, 4\)"):
        image_rows(np.zeros((3, 4)))


def test_image_rows_of_an_empty_batch_and_of_a_list():
    assert image_rows(np.zeros((0, 4, 5, 3), np.uint8)).shape == (0, 4, 15)
    with pytest.raises(TypeError, match=r"image_rows: expected an array .*got a list"):
        image_rows([[[1]]])
