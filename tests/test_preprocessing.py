"""fnn.preprocessing against float64 NumPy references."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import checkpoint
from fnn import preprocessing as pp


def correlated_data(n=400, d=5, seed=0):
    """(n, d) float32 data with a well-separated covariance spectrum and a non-zero mean."""
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    scales = np.linspace(3.0, 0.5, d)
    x = (rng.normal(size=(n, d)) * scales) @ q.T + rng.normal(size=d) * 5
    return x.astype(np.float32)


def cov64(z):
    z = np.asarray(z, np.float64).reshape(len(z), -1)
    zc = z - z.mean(axis=0)
    return zc.T @ zc / len(z)


def test_center_removes_the_mean_and_inverts():
    x = correlated_data()
    prep = pp.center()
    stats, z = prep.fit_transform(x)
    assert stats.mean.shape == (5,)
    np.testing.assert_allclose(np.asarray(z, np.float64).mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(prep.inverse(stats, z), x, atol=1e-5)


def test_standardize_gives_mean_0_std_1():
    x = correlated_data()
    prep = pp.standardize()
    stats, z = prep.fit_transform(x)
    z64 = np.asarray(z, np.float64)
    np.testing.assert_allclose(z64.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(z64.std(axis=0), 1.0, atol=1e-5)
    np.testing.assert_allclose(stats.std, x.astype(np.float64).std(axis=0), rtol=1e-5)
    np.testing.assert_allclose(prep.inverse(stats, z), x, atol=1e-4)


def test_standardize_constant_feature_stays_finite():
    x = np.ones((10, 2), np.float32)
    x[:, 1] = np.arange(10)
    prep = pp.standardize()
    z = prep.transform(prep.fit(x), x)
    assert np.all(np.isfinite(z))
    np.testing.assert_array_equal(z[:, 0], 0.0)


def test_per_channel_standardize_on_images():
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(8, 4, 4, 3)) * [1.0, 2.0, 3.0] + [0.0, 1.0, -1.0]).astype(np.float32)
    prep = pp.standardize(axis=(0, 1, 2))
    stats, z = prep.fit_transform(x)
    assert stats.mean.shape == (1, 1, 3) and z.shape == x.shape
    z64 = np.asarray(z, np.float64)
    np.testing.assert_allclose(z64.mean(axis=(0, 1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(z64.std(axis=(0, 1, 2)), 1.0, atol=1e-5)


def test_minmax_maps_training_data_onto_minus_one_one():
    x = correlated_data()
    prep = pp.minmax()
    stats, z = prep.fit_transform(x)
    np.testing.assert_allclose(np.min(z, axis=0), -1.0, atol=1e-6)
    np.testing.assert_allclose(np.max(z, axis=0), 1.0, atol=1e-6)
    np.testing.assert_allclose(prep.inverse(stats, z), x, atol=1e-4)


def test_uint8_images_are_converted_to_float32():
    x = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3, 1)
    prep = pp.minmax()
    z = prep.transform(prep.fit(x), x)
    assert z.dtype == jnp.float32 and z.shape == x.shape


def test_pca_matches_float64_eigh():
    x = correlated_data()
    stats = pp.pca().fit(x)
    evals, evecs = np.linalg.eigh(cov64(x))
    evals, evecs = evals[::-1], evecs[:, ::-1]
    comps = np.asarray(stats.components, np.float64)
    assert comps.shape == (5, 5)
    np.testing.assert_allclose(comps @ comps.T, np.eye(5), atol=1e-5)  # orthonormal rows
    assert np.all(np.diff(np.asarray(stats.eigenvalues)) <= 0)  # decreasing
    np.testing.assert_allclose(stats.eigenvalues, evals, rtol=1e-4)
    np.testing.assert_allclose(np.abs(np.sum(comps * evecs.T, axis=1)), 1.0, atol=1e-4)
    # Deterministic signs: the largest-magnitude entry of each component is positive.
    assert np.all(comps[np.arange(5), np.argmax(np.abs(comps), axis=1)] > 0)


def test_pca_transform_variances_and_round_trip():
    x = correlated_data()
    prep = pp.pca()
    stats, z = prep.fit_transform(x)
    np.testing.assert_allclose(cov64(z), np.diag(stats.eigenvalues), atol=2e-4, rtol=1e-4)
    np.testing.assert_allclose(prep.inverse(stats, z), x, atol=1e-4)


def test_pca_keeps_k_components_and_projects():
    x = correlated_data()
    prep = pp.pca(k=2)
    stats, z = prep.fit_transform(x)
    assert z.shape == (400, 2) and stats.components.shape == (2, 5)
    back = np.asarray(prep.inverse(stats, z), np.float64)
    u = np.asarray(stats.components, np.float64)
    xc = x - x.mean(axis=0)
    np.testing.assert_allclose(back - x.mean(axis=0), xc @ u.T @ u, atol=1e-4)


@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9, 0.999, 1.0])
def test_pca_variance_fraction_keeps_the_fewest_components(fraction):
    x = correlated_data()
    stats = pp.pca(variance=fraction).fit(x)
    evals = np.linalg.eigvalsh(cov64(x))[::-1]
    ratio = np.cumsum(evals) / evals.sum()
    expected = min(int(np.argmax(ratio >= fraction - 1e-6)) + 1, 5)
    assert stats.components.shape == (expected, 5)


def test_pca_flattens_image_batches():
    x = correlated_data(n=50, d=12).reshape(50, 2, 2, 3)
    prep = pp.pca(k=4)
    stats, z = prep.fit_transform(x)
    assert stats.mean.shape == (12,) and z.shape == (50, 4)


def test_pca_whitening_has_identity_covariance():
    x = correlated_data()
    prep = pp.pca_whitening(eps=1e-8)
    stats, z = prep.fit_transform(x)
    assert z.shape == (400, 5)
    np.testing.assert_allclose(cov64(z), np.eye(5), atol=1e-4)
    np.testing.assert_allclose(prep.inverse(stats, z), x, atol=1e-4)
    stats3 = pp.pca_whitening(k=3, eps=1e-8).fit(x)
    np.testing.assert_allclose(cov64(pp.pca_whitening(k=3).transform(stats3, x)), np.eye(3),
                               atol=1e-4)


def test_zca_whitening_has_identity_covariance_and_symmetric_matrix():
    x = correlated_data(n=300, d=12).reshape(300, 2, 2, 3)
    prep = pp.zca_whitening(eps=1e-8)
    stats, z = prep.fit_transform(x)
    assert z.shape == x.shape  # ZCA stays in input space
    w = np.asarray(stats.matrix, np.float64)
    np.testing.assert_allclose(w, w.T, atol=1e-5)
    np.testing.assert_allclose(cov64(z), np.eye(12), atol=1e-4)
    # Reference: W = U Λ^{-1/2} Uᵀ from float64 eigh.
    evals, evecs = np.linalg.eigh(cov64(x))
    np.testing.assert_allclose(w, evecs @ np.diag((evals + 1e-8) ** -0.5) @ evecs.T,
                               rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(prep.inverse(stats, z), x, atol=1e-4)


def test_whitening_eps_shrinks_small_directions():
    x = correlated_data()
    z = pp.pca_whitening(eps=1.0).fit_transform(x)[1]
    evals = np.linalg.eigvalsh(cov64(x))[::-1]
    np.testing.assert_allclose(np.diag(cov64(z)), evals / (evals + 1.0), rtol=1e-3)


def test_transforms_work_under_jit_and_fit_with_k_too():
    x = correlated_data()
    for prep in (pp.standardize(), pp.minmax(), pp.pca(k=3), pp.pca_whitening(k=3),
                 pp.zca_whitening()):
        stats = jax.jit(prep.fit)(x)
        eager = prep.fit(x)
        jax.tree_util.tree_map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5),
                               stats, eager)
        np.testing.assert_allclose(jax.jit(prep.transform)(stats, x), prep.transform(eager, x),
                                   atol=1e-4)


def test_variance_fraction_fit_refuses_jit():
    with pytest.raises(ValueError, match="variance fraction needs concrete data"):
        jax.jit(pp.pca(variance=0.5).fit)(correlated_data())


def test_fitted_statistics_are_checkpointable_pytrees(tmp_path):
    stats = pp.zca_whitening().fit(correlated_data())
    checkpoint.save(tmp_path / "s.npz", stats)
    out = checkpoint.load(tmp_path / "s.npz", like=stats)
    assert type(out) is pp.WhiteningStats
    jax.tree_util.tree_map(np.testing.assert_array_equal, out, stats)


@pytest.mark.parametrize("make, match", [
    (lambda: pp.pca(k=0), r"preprocessing.pca: k must be a positive int, got 0"),
    (lambda: pp.pca(variance=0.0), r"variance must be in \(0.0, 1.0\]"),
    (lambda: pp.pca(variance=1.5), r"variance must be in \(0.0, 1.0\]"),
    (lambda: pp.pca(k=2, variance=0.5), r"give k or variance, not both"),
    (lambda: pp.pca_whitening(eps=0.0), r"pca_whitening: eps must be > 0.0"),
    (lambda: pp.zca_whitening(eps=-1.0), r"zca_whitening: eps must be > 0.0"),
    (lambda: pp.standardize(eps=0), r"standardize: eps must be > 0.0"),
    (lambda: pp.center(axis=1), r"axis must be 0 or a tuple .* includes"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_shapes():
    x = correlated_data()
    with pytest.raises(ValueError, match=r"pca.fit: k=6 exceeds the number of features D=5"):
        pp.pca(k=6).fit(x)
    with pytest.raises(ValueError, match=r"standardize.fit: expected a batch of shape \(N, D\)"):
        pp.standardize().fit(x[0])
    prep = pp.standardize()
    with pytest.raises(ValueError, match=r"statistics of shape \(5,\).*got shape \(3, 4\)"):
        prep.transform(prep.fit(x), x[:3, :4])
    prep = pp.pca(k=2)
    stats = prep.fit(x)
    with pytest.raises(ValueError, match=r"pca.transform: expected examples with 5 features"):
        prep.transform(stats, x[:, :4])
    with pytest.raises(ValueError, match=r"pca.inverse: expected \(N, 2\) component scores"):
        prep.inverse(stats, x)
    with pytest.raises(ValueError, match=r"zca_whitening.inverse: expected \(N, 5\)"):
        pp.zca_whitening().inverse(pp.zca_whitening().fit(x), x[:, :3])


@pytest.mark.parametrize("c", [0.1, 1 / 3, 333.3])
def test_a_constant_float32_feature_standardizes_to_zero(c):
    """The float32 mean of N copies of 0.1 is not 0.1: σ came out as rounding noise
    (1e-8..6e-5) and the feature mapped to ±1 instead of 0 (scikit-learn: 0)."""
    x = np.full((7, 2), c, np.float32)
    x[:, 1] = np.arange(7)
    prep = pp.standardize()
    stats = prep.fit(x)
    z = np.asarray(prep.transform(stats, x))
    np.testing.assert_array_equal(z[:, 0], 0.0)
    np.testing.assert_allclose(z[:, 1], (np.arange(7) - 3.0) / 2.0, atol=1e-6)
    np.testing.assert_allclose(prep.inverse(stats, z), x, rtol=1e-6, atol=1e-6)
    grad = jax.grad(lambda v: jnp.sum(prep.fit_transform(v)[1] ** 3))(jnp.asarray(x))
    assert np.all(np.isfinite(grad))


def test_half_precision_pca_and_empty_batches():
    x = np.random.RandomState(0).rand(20, 3)
    want = pp.pca(k=2).fit(x.astype(np.float32))
    got = pp.pca(k=2).fit(x.astype(np.float16))      # LAPACK's eigh refused float16
    assert got.components.dtype == jnp.float16
    np.testing.assert_allclose(np.abs(np.asarray(got.components, np.float32)),
                               np.abs(np.asarray(want.components)), atol=2e-2)
    for prep in (pp.pca(k=2), pp.zca_whitening(), pp.standardize(), pp.center()):
        with pytest.raises(ValueError, match=r"\.fit: cannot fit statistics on an empty batch"):
            prep.fit(np.zeros((0, 3), np.float32))
    assert pp.pca(k=2).transform(want, np.zeros((0, 3), np.float32)).shape == (0, 2)


@pytest.mark.parametrize("make", [pp.center, pp.standardize, pp.minmax, lambda: pp.pca(k=2),
                                  pp.pca_whitening, pp.zca_whitening])
def test_fit_refuses_nan_or_inf_data(make):
    """Statistics fitted on NaN are NaN (silently, before); scikit-learn refuses them too."""
    x = np.ones((4, 3), np.float32)
    x[2, 1] = np.inf
    with pytest.raises(ValueError, match=r"\.fit: the data hold 1 NaN/Inf value\(s\), the first "
                                         r"at index \(2, 1\)"):
        make().fit(x)


# --- found by an adversarial audit: each test failed before its fix -----------------------


def test_half_precision_standardize_and_minmax_do_not_overflow():
    """60000 − (−60000) is inf in float16: σ and the range were inf/NaN, z was NaN."""
    x = np.array([[60000.0, 0.1], [-60000.0, 0.1], [0.0, 0.1]], np.float16)
    x64 = x.astype(np.float64)
    for prep, want in [
        (pp.standardize(), (x64 - x64.mean(0)) / np.maximum(x64.std(0), 1e-8)),
        (pp.minmax(), 2 * (x64 - x64.min(0)) / np.maximum(np.ptp(x64, 0), 1e-8) - 1),
    ]:
        stats, z = prep.fit_transform(x)
        assert z.dtype == jnp.float16
        np.testing.assert_allclose(np.asarray(z, np.float64), want, atol=1e-3)
        np.testing.assert_allclose(np.asarray(prep.inverse(stats, z), np.float64), x64,
                                   rtol=1e-3)


def test_standardize_with_an_eps_whose_square_underflows():
    """eps = 1e-30: eps² is 0 in float32, so σ of a constant feature was 0 and z was 0/0 = NaN."""
    x = np.stack([np.full(4, 0.3, np.float32), np.arange(4, dtype=np.float32)], axis=1)
    stats, z = pp.standardize(eps=1e-30).fit_transform(x)
    np.testing.assert_allclose(stats.std, [1.0, np.arange(4.0).std()], rtol=1e-6)
    np.testing.assert_array_equal(z[:, 0], np.zeros(4))


def test_a_feature_constant_in_training_is_not_blown_up_on_new_data():
    """A feature constant in the training data (an always-black border pixel) got the
    divisor eps = 1e-8, so new data 0.5 above it became 5e7; scikit-learn's scalers
    use a scale of 1 there, and so does fnn now."""
    train = np.stack([np.zeros(6, np.float32), np.arange(6, dtype=np.float32)], axis=1)
    new = np.array([[0.5, 2.5], [-1.0, 0.0]], np.float32)
    std, mm = pp.standardize(), pp.minmax()
    s_stats, m_stats = std.fit(train), mm.fit(train)
    np.testing.assert_allclose(s_stats.std, [1.0, np.arange(6.0).std()], rtol=1e-6)
    np.testing.assert_allclose(std.transform(s_stats, new)[:, 0], [0.5, -1.0])
    np.testing.assert_allclose(mm.transform(m_stats, new)[:, 0], [2 * 0.5 - 1, 2 * -1.0 - 1])
    np.testing.assert_allclose(mm.transform(m_stats, train)[:, 0], -1.0)
    for prep, stats in ((std, s_stats), (mm, m_stats)):
        np.testing.assert_allclose(prep.inverse(stats, prep.transform(stats, new)), new,
                                   atol=1e-6)
    # a feature that does vary by more than eps keeps its own scale
    tiny = np.stack([np.array([0.0, 1e-6] * 3, np.float32), np.arange(6.0, dtype=np.float32)], 1)
    np.testing.assert_allclose(pp.standardize(eps=1e-8).fit(tiny).std[0], 5e-7, rtol=1e-4)
    np.testing.assert_allclose(pp.standardize(eps=1e-5).fit(tiny).std[0], 1.0)


@pytest.mark.parametrize("make", [pp.pca_whitening, pp.zca_whitening])
def test_half_precision_whitening_of_a_feature_with_variance_beyond_65504(make):
    """A variance of 400² is inf in float16: its whitening scale 1/√(inf + eps) was 0, so the
    first whitened feature was 0 instead of unit variance."""
    x = (np.random.default_rng(0).normal(size=(200, 3)) * [400.0, 10.0, 1.0]).astype(np.float16)
    stats, z = make().fit_transform(x)
    assert z.dtype == jnp.float16
    np.testing.assert_allclose(np.diag(cov64(z)), 1.0, atol=2e-3)
    np.testing.assert_allclose(np.asarray(make().inverse(stats, z), np.float64),
                               x.astype(np.float64), rtol=2e-3, atol=0.5)


@pytest.mark.parametrize("make, stats_type", [
    (pp.center, "CenterStats"), (pp.standardize, "StandardizeStats"),
    (pp.minmax, "MinMaxStats"), (pp.pca, "PCAStats"),
    (pp.pca_whitening, "WhiteningStats"), (pp.zca_whitening, "WhiteningStats"),
])
def test_transform_before_fit_or_with_other_statistics_raises_type_error(make, stats_type):
    """transform(None, x) was an AttributeError: 'NoneType' object has no attribute 'mean'."""
    prep, x = make(), correlated_data(n=8, d=3)
    with pytest.raises(TypeError, match=rf"{prep.name}\.transform: stats must be the "
                                        rf"{stats_type}.*got None — call fit first"):
        prep.transform(None, x)
    other = (pp.center() if prep.name == "minmax" else pp.minmax()).fit(x)
    with pytest.raises(TypeError, match=rf"{prep.name}\.inverse: stats must be the {stats_type}"):
        prep.inverse(other, x)


@pytest.mark.parametrize("data, match", [
    (np.array([["a", "b"]]), r"array of dtype <U1 and shape \(1, 2\)"),  # raw JAX errors
    (None, "got None"),
    ([[1.0, 2.0], [3.0]], "ragged nested list"),                        # raw NumPy ValueError
])
def test_non_numeric_data_raise_type_error_naming_the_function(data, match):
    with pytest.raises(TypeError, match=rf"preprocessing\.standardize\.fit: .*{match}"):
        pp.standardize().fit(data)
    with pytest.raises(TypeError, match=rf"preprocessing\.pca\.fit: .*{match}"):
        pp.pca().fit(data)


def test_numpy_integer_axes_are_accepted():
    """np.int64(0) was refused with 'axis must be 0 ..., got 0'."""
    x = correlated_data(n=6, d=4).reshape(6, 2, 2)
    for axis in (np.int64(0), (np.int64(0), np.int32(1))):
        stats = pp.standardize(axis=axis).fit(x)
        want = pp.standardize(axis=int(axis) if np.ndim(axis) == 0 else (0, 1)).fit(x)
        np.testing.assert_array_equal(stats.std, want.std)
