"""fnn.augment: exact hand-countable cases, statistics with stated bounds, label mass,
jit/vmap, the `fit(augment=)` hook (key stream, exact resume) and bad input."""
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fnn
from fnn import augment as A
from fnn import layers as L
from fnn import losses, optim, train


def _arange(n=2, h=4, w=4, c=1):
    return jnp.arange(n * h * w * c, dtype=jnp.float32).reshape(n, h, w, c)


def _crop_reference(x, offsets, p):
    """float64 NumPy: pad with zeros, slice at the given offsets."""
    x = np.asarray(x, np.float64)
    padded = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    h, w = x.shape[1:3]
    return np.stack([padded[i, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])


# ---------------------------------------------------------------------------
# random_crop


def test_random_crop_equals_pad_and_slice_at_its_offsets(key):
    x = _arange(8, 5, 6, 2)
    out = A.random_crop(key, x, padding=2)
    offsets = np.asarray(jax.random.randint(key, (8, 2), 0, 5))   # the draw the docstring states
    np.testing.assert_array_equal(out, _crop_reference(x, offsets, 2))
    np.testing.assert_array_equal(jax.jit(A.random_crop, static_argnames="padding")(
        key, x, padding=2), out)


def test_random_crop_hand_counted_corner():
    x = jnp.ones((1, 2, 2, 1))
    padded_views = {tuple(np.asarray(A.random_crop(jax.random.key(s), x, padding=1)[0, ..., 0])
                          .ravel()) for s in range(200)}
    # offsets (dy, dx) in {0, 1, 2}^2: nine windows of a 4x4 field with ones in the middle
    expected = {tuple(np.pad(np.ones((2, 2)), 1)[dy:dy + 2, dx:dx + 2].ravel())
                for dy in range(3) for dx in range(3)}
    assert padded_views == expected


def test_random_crop_offsets_are_uniform(key):
    """On a (2p+1)×(2p+1) image numbered 0..(2p+1)²−1, the output's centre pixel is the
    input at (dy, dx), so it reveals each example's offsets. Over 20,000 examples the 81
    offset pairs (p = 4) pass a chi-square test: statistic below 124.8 (80 degrees of
    freedom, p = 0.001); each axis alone below 26.1 (8 degrees of freedom)."""
    n, p = 20_000, 4
    size = 2 * p + 1
    grid = jnp.arange(size * size, dtype=jnp.float32).reshape(1, size, size, 1)
    codes = np.asarray(A.random_crop(key, jnp.broadcast_to(grid, (n, size, size, 1)),
                                     padding=p))[:, p, p, 0].astype(int)

    def chi2(counts):
        expected = n / len(counts)
        return ((counts - expected) ** 2 / expected).sum()

    assert chi2(np.bincount(codes, minlength=size * size)) < 124.8
    assert chi2(np.bincount(codes // size, minlength=size)) < 26.1
    assert chi2(np.bincount(codes % size, minlength=size)) < 26.1


def test_random_crop_padding_zero_is_the_identity(key):
    x = _arange()
    np.testing.assert_array_equal(A.random_crop(key, x, padding=0), x)


# ---------------------------------------------------------------------------
# random_flip


def test_random_flip_flips_whole_images_left_right(key):
    x = _arange(64, 3, 4, 2)
    out = np.asarray(A.random_flip(key, x))
    flipped = np.asarray(x)[:, :, ::-1]
    for i in range(64):
        assert np.array_equal(out[i], x[i]) or np.array_equal(out[i], flipped[i])
    chosen = np.asarray(jax.random.bernoulli(key, 0.5, (64,)))
    np.testing.assert_array_equal(out[chosen], flipped[chosen])
    np.testing.assert_array_equal(out[~chosen], np.asarray(x)[~chosen])
    np.testing.assert_array_equal(jax.jit(A.random_flip)(key, x), out)


def test_random_flip_fraction_within_three_sigma(key):
    n = 10_000
    x = jnp.broadcast_to(jnp.array([0.0, 1.0])[None, None, :, None], (n, 1, 2, 1))
    flipped = float(np.asarray(A.random_flip(key, x))[:, 0, 0, 0].sum())
    assert abs(flipped - n / 2) < 3 * np.sqrt(n * 0.25)


# ---------------------------------------------------------------------------
# normalize


def test_normalize_matches_float64_per_channel():
    rng = np.random.default_rng(0)
    x = rng.random((3, 4, 5, 3)).astype(np.float32)
    mean, std = np.array([0.1, 0.5, 0.9]), np.array([0.2, 0.5, 2.0])
    chex.assert_trees_all_close(A.normalize(jnp.asarray(x), mean, std),
                                (x.astype(np.float64) - mean) / std, rtol=1e-6, atol=1e-6)
    chex.assert_trees_all_close(A.normalize(jnp.asarray(x), 0.5, 0.25), (x - 0.5) * 4,
                                rtol=1e-6)


# ---------------------------------------------------------------------------
# mixup and cutmix


def _batch(n=16, h=6, w=5, k=4, seed=0):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.random((n, h, w, 2)), jnp.float32)
    y = jax.nn.one_hot(jnp.asarray(rng.integers(0, k, n)), k)
    return x, y


_MIXUP, _CUTMIX = jax.jit(A.mixup), jax.jit(A.cutmix)   # compiled once (alpha traced)


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.2, 1.0, 5.0]))
def test_mixup_is_a_convex_combination_with_matching_labels(seed, alpha):
    x, y = _batch()
    k = jax.random.key(seed)
    mx, my = _MIXUP(k, x, y, alpha=alpha)
    k_lam, k_perm = jax.random.split(k)
    lam = np.asarray(jax.random.beta(k_lam, alpha, alpha, (16,)), np.float64)
    perm = np.asarray(jax.random.permutation(k_perm, 16))
    xr, yr = np.asarray(x, np.float64), np.asarray(y, np.float64)
    np.testing.assert_allclose(mx, lam[:, None, None, None] * xr
                               + (1 - lam[:, None, None, None]) * xr[perm], atol=1e-6)
    np.testing.assert_allclose(my, lam[:, None] * yr + (1 - lam[:, None]) * yr[perm], atol=1e-6)
    np.testing.assert_allclose(np.asarray(my).sum(1), 1.0, atol=1e-6)   # label mass


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.3, 1.0]))
def test_cutmix_label_weight_is_the_pasted_area(seed, alpha):
    x, y = _batch()
    x = x + 10.0          # every pixel differs from the zero we compare against
    mx, my = _CUTMIX(jax.random.key(seed), x, y, alpha=alpha)
    perm = np.asarray(jax.random.permutation(jax.random.split(jax.random.key(seed), 4)[3], 16))
    mx, my, xn, yn = (np.asarray(a, np.float64) for a in (mx, my, x, y))
    for i in range(16):
        pasted = np.all(mx[i] == xn[perm[i]], axis=-1) & np.any(mx[i] != xn[i], axis=-1)
        kept = np.all(mx[i] == xn[i], axis=-1)
        assert np.all(pasted | kept)
        rows, cols = np.nonzero(pasted)
        if rows.size:   # one rectangle
            assert pasted[rows.min():rows.max() + 1, cols.min():cols.max() + 1].all()
        area = pasted.sum() / pasted.size if perm[i] != i else None
        if area is not None:
            np.testing.assert_allclose(my[i], (1 - area) * yn[i] + area * yn[perm[i]], atol=1e-6)
    np.testing.assert_allclose(my.sum(1), 1.0, atol=1e-6)


def test_cutmix_mean_area_matches_beta(key):
    """With alpha = 1, λ ~ U(0, 1) and the box's area is about 1 − λ (before clipping, up
    to rounding): the mean pasted fraction on 32×32 lies well inside (0.3, 0.5)."""
    n = 2000
    x = jnp.zeros((n, 32, 32, 1))
    y = jax.nn.one_hot(jnp.arange(n) % 2, 2)
    _, my = _CUTMIX(key, x, y, alpha=1.0)
    perm = np.asarray(jax.random.permutation(jax.random.split(key, 4)[3], n))
    y_np, my_np = np.asarray(y), np.asarray(my)
    differ = y_np.argmax(1) != y_np[perm].argmax(1)
    area = 1 - my_np[differ, y_np[differ].argmax(1)].astype(np.float64)
    assert 0.3 < area.mean() < 0.5


# ---------------------------------------------------------------------------
# composition, jit and vmap

AUGMENTS = {
    "crop": lambda k, x, y: (A.random_crop(k, x, padding=2), y),
    "flip": lambda k, x, y: (A.random_flip(k, x), y),
    "chain": A.chain(functools.partial(A.random_crop, padding=1), A.random_flip, A.cutmix),
}


@pytest.mark.parametrize("name", sorted(AUGMENTS))
def test_vmap_equals_separate_calls(name):
    """vmap over groups of batches = one call per group (each jitted: compiled once)."""
    fn = AUGMENTS[name]
    x, y = _batch(n=8)
    keys = jax.random.split(jax.random.key(3), 3)
    xs, ys = jnp.stack([x, x * 2, x + 1]), jnp.stack([y] * 3)
    one = jax.jit(fn)
    batched = jax.jit(jax.vmap(fn))(keys, xs, ys)
    for i in range(3):
        chex.assert_trees_all_close(jax.tree.map(lambda a, i=i: a[i], batched),
                                    one(keys[i], xs[i], ys[i]), atol=1e-6)


def test_chain_uses_one_split_key_per_function(key):
    x, y = _batch(n=8)
    aug = A.chain(A.random_flip, A.mixup)
    k1, k2 = jax.random.split(key)
    expected = A.mixup(k2, A.random_flip(k1, x), y)
    chex.assert_trees_all_close(aug(key, x, y), expected)
    assert A.takes_labels(aug) and not A.takes_labels(A.random_flip)
    assert A.takes_labels(A.mixup) and not A.takes_labels(functools.partial(A.random_crop,
                                                                            padding=1))


def test_gradient_flows_through_the_images(key):
    x, y = _batch(n=4)
    g = jax.jit(jax.grad(lambda x: A.mixup(key, x, y)[0].sum() + A.random_crop(key, x).sum()))(x)
    assert np.all(np.isfinite(g)) and np.abs(g).sum() > 0


# ---------------------------------------------------------------------------
# the fit hook


def _problem():
    rng = np.random.default_rng(0)
    x = rng.random((48, 6, 6, 1)).astype(np.float32)
    y = (x[:, :3].mean((1, 2, 3)) > x[:, 3:].mean((1, 2, 3))).astype(np.int32)
    model = fnn.serial(L.Flatten(), L.Dense(8), fnn.relu, L.Dropout(0.2), L.Dense(2))
    return model, (x, y)


def _fit(tmp_path, augment, epochs, ckpt=None):
    model, data = _problem()
    return train.fit(model, optim.adam(1e-2), losses.softmax_cross_entropy, data, epochs=epochs,
                     batch_size=8, key=jax.random.key(1), progress=False, augment=augment,
                     checkpoint_dir=ckpt)


def test_fit_applies_the_augmentation_to_each_training_batch(tmp_path):
    seen = []

    def record(key, x):
        jax.debug.callback(lambda a: seen.append(np.asarray(a)), x)
        return A.random_flip(key, x)

    ts_plain, h_plain = _fit(tmp_path, None, 1)
    ts_aug, h_aug = _fit(tmp_path, record, 1)
    assert len(seen) == 6                          # 48 / 8 steps, each batch augmented
    assert not np.allclose(h_plain["loss"], h_aug["loss"])


def test_a_resumed_augmented_run_is_bit_identical(tmp_path):
    aug = A.chain(functools.partial(A.random_crop, padding=1), A.random_flip)
    whole, h_whole = _fit(tmp_path, aug, 2, tmp_path / "a")
    _fit(tmp_path, aug, 1, tmp_path / "b")
    resumed, h_resumed = _fit(tmp_path, aug, 2, tmp_path / "b")
    chex.assert_trees_all_equal(whole.params, resumed.params)
    assert h_whole == h_resumed


def test_the_step_without_augment_keeps_its_dropout_key():
    """No augment: the model's key is still fold_in(train_state.key, step) (unchanged)."""
    model, (x, y) = _problem()
    opt = optim.sgd(0.1)
    s0 = train.init_train_state(model, opt, jax.random.key(0), (6, 6, 1))
    s1 = train.init_train_state(model, opt, jax.random.key(0), (6, 6, 1))
    plain = train.make_train_step(model, losses.softmax_cross_entropy, opt, jit=False)
    identity = train.make_train_step(model, losses.softmax_cross_entropy, opt, jit=False,
                                     augment=lambda k, x: x)
    a, _ = plain(s0, x[:8], y[:8])
    b, _ = identity(s1, x[:8], y[:8])
    # same data, but the augmented step's dropout key is the split's second half
    assert not np.allclose(a.params["1_Dense"]["w"], b.params["1_Dense"]["w"])


# ---------------------------------------------------------------------------
# bad input

X4 = jnp.zeros((2, 4, 4, 1))
Y2 = jnp.zeros((2, 3))
K = jax.random.key(0)
BAD_INPUT = [
    ("crop rank", lambda: A.random_crop(K, jnp.zeros((4, 4, 1))), ValueError,
     r"^random_crop: images: |^random_crop: expected a rank-4 input \(N, H, W, C\)"),
    ("crop padding", lambda: A.random_crop(K, X4, padding=-1), ValueError,
     r"^random_crop: padding must be a non-negative int, got -1"),
    ("crop int images", lambda: A.random_crop(K, jnp.zeros((2, 4, 4, 1), jnp.int32)), TypeError,
     r"^random_crop: expected a floating-point input, got dtype int32"),
    ("crop no key", lambda: A.random_crop(None, X4), ValueError, r"^random_crop: key must be"),
    ("flip rank", lambda: A.random_flip(K, jnp.zeros((4, 4))), ValueError,
     r"^random_flip: expected a rank-4 input"),
    ("normalize channels", lambda: A.normalize(X4, jnp.zeros(3), 1.0), ValueError,
     r"^normalize: mean has 3 values but the images have 1 channels"),
    ("normalize std", lambda: A.normalize(X4, 0.0, 0.0), ValueError,
     r"^normalize: std must be positive, got 0.0"),
    ("normalize matrix", lambda: A.normalize(X4, jnp.zeros((1, 1)), 1.0), ValueError,
     r"^normalize: mean must be a number or a per-channel vector \(C,\), got shape \(1, 1\)"),
    ("mixup alpha", lambda: A.mixup(K, X4, Y2, alpha=0.0), ValueError, r"^mixup: alpha must be"),
    ("mixup int labels", lambda: A.mixup(K, X4, jnp.zeros(2, jnp.int32)), ValueError,
     r"^mixup: expected a rank-2 input \(N, num_classes\)"),
    ("cutmix rows", lambda: A.cutmix(K, X4, jnp.zeros((3, 3))), ValueError,
     r"^cutmix: y_onehot has 3 rows but the images are 2"),
    ("chain empty", lambda: A.chain(), ValueError, r"^chain: chain needs at least one"),
    ("chain arity", lambda: A.chain(lambda k: k), ValueError,
     r"^chain: an augmentation takes \(key, x\) or \(key, x, y\).*requires 1"),
    ("chain not callable", lambda: A.chain(3), TypeError,
     r"^chain: an augmentation must be a callable"),
    ("apply bad return", lambda: A.apply(lambda k, x, y: x, K, X4, Y2), ValueError,
     r"^fnn.augment.apply: the augmentation .* must return a pair \(x, y\)"),
    ("fit augment", lambda: _fit(None, lambda k: k, 1), ValueError,
     r"^fit: an augmentation takes \(key, x\)"),
    ("step augment", lambda: train.make_train_step(_problem()[0], losses.softmax_cross_entropy,
                                                   optim.sgd(0.1), augment="flip"), TypeError,
     r"^make_train_step: an augmentation must be a callable"),
]


@pytest.mark.parametrize("trigger, exc, match", [pytest.param(*c[1:], id=c[0])
                                                 for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
