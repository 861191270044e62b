"""fnn.datasets.synthetic: the generated 2-D sets (shapes, dtypes, class balance, determinism,
defining geometry) and their errors."""
import jax
import numpy as np
import pytest

from fnn import datasets


@pytest.mark.parametrize(
    "make, n, classes",
    [
        (lambda k: datasets.spiral(k, 50, 3), 150, 3),
        (lambda k: datasets.planar_flower(k, 40), 40, 2),
        (lambda k: datasets.xor(k, 64), 64, 2),
        (lambda k: datasets.blobs(k, 90, 3), 90, 3),
    ],
)
def test_shapes_dtypes_and_determinism(make, n, classes):
    x, y = make(jax.random.key(0))
    assert x.shape == (n, 2) and x.dtype == np.float32
    assert y.shape == (n,) and y.dtype == np.int32
    assert set(np.unique(np.asarray(y))) <= set(range(classes))
    x2, y2 = make(jax.random.key(0))
    np.testing.assert_array_equal(x, x2)
    np.testing.assert_array_equal(y, y2)
    x3, _ = make(jax.random.key(1))
    assert not np.allclose(x, x3)


def test_spiral_geometry_without_noise():
    x, y = datasets.spiral(jax.random.key(0), 5, 2, noise=0.0)
    t = np.linspace(0, 1, 5)
    theta = 4.0 + 4.0 * t                       # class 1
    np.testing.assert_allclose(x[5:], np.c_[t * np.sin(theta), t * np.cos(theta)], atol=1e-6)
    np.testing.assert_array_equal(y, [0] * 5 + [1] * 5)


def test_xor_labels_follow_the_quadrant():
    x, y = datasets.xor(jax.random.key(3), 400, noise=0.1)
    np.testing.assert_array_equal(y, (np.sign(x[:, 0]) != np.sign(x[:, 1])).astype(np.int32))


def test_blobs_centres_on_a_circle():
    x, y = datasets.blobs(jax.random.key(4), 3000, 3, std=0.1, radius=2.0)
    for k in range(3):
        centre = np.asarray(x)[np.asarray(y) == k].mean(0)
        angle = 2 * np.pi * k / 3
        np.testing.assert_allclose(centre, [2 * np.cos(angle), 2 * np.sin(angle)], atol=0.02)


def test_planar_flower_radius_rule_without_noise():
    x, _ = datasets.planar_flower(jax.random.key(0), 20, noise=0.0)
    theta = np.linspace(0, 3.12, 10)
    r = 4 * np.sin(4 * theta)
    np.testing.assert_allclose(x[:10], np.c_[r * np.sin(theta), r * np.cos(theta)], atol=1e-5)


def test_bad_arguments():
    with pytest.raises(ValueError, match="spiral: num_per_class must be a positive int, got 0"):
        datasets.spiral(jax.random.key(0), 0)
    with pytest.raises(ValueError, match="planar_flower: num_points must be even"):
        datasets.planar_flower(jax.random.key(0), 7)
    with pytest.raises(ValueError, match="blobs: std must be >= 0.0, got -1.0"):
        datasets.blobs(jax.random.key(0), std=-1.0)


@pytest.mark.parametrize("make", [datasets.spiral, datasets.planar_flower, datasets.xor,
                                  datasets.blobs])
def test_a_missing_or_wrong_key_names_the_generator(make):
    with pytest.raises(ValueError, match=rf"{make.__name__}: key must be a PRNG key .*got None"):
        make(None)
    with pytest.raises(TypeError, match=rf"{make.__name__}: key must be a PRNG key .*got 0"):
        make(0)
