"""The losses new in 0.2: `kl_divergence`, `sigmoid_focal_loss`, `triplet_margin`.

Values and gradients against PyTorch (the focal loss against torchvision's formula
written out below in torch, since torchvision may not be installed), float32
inputs, float32 tolerances.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from fnn import losses

RNG = np.random.default_rng(0)


def _t(a):
    return torch.tensor(np.asarray(a, np.float32)).requires_grad_()


def _against_torch(fn, torch_fn, *arrays, n_grads=1, rtol=1e-5):
    """fn(*arrays) and its gradient in the first `n_grads` arrays against torch_fn."""
    ts = [_t(a) for a in arrays]
    want = torch_fn(*ts)
    want_grads = torch.autograd.grad(want, ts[:n_grads])
    js = [jnp.asarray(a, jnp.float32) for a in arrays]
    got, grads = jax.value_and_grad(lambda *g: fn(*g, *js[n_grads:]),
                                    argnums=tuple(range(n_grads)))(*js[:n_grads])
    np.testing.assert_allclose(float(got), want.item(), rtol=rtol, atol=1e-7)
    for g, w in zip(grads, want_grads):
        np.testing.assert_allclose(np.asarray(g), w.numpy(), rtol=1e-4, atol=1e-7)


# ---------------------------------------------------------------------------
# kl_divergence = torch kl_div(..., reduction="batchmean")


def _log_softmax(z):
    return np.asarray(torch.log_softmax(torch.tensor(z), -1))


@pytest.mark.parametrize("zeros_in_target", [False, True])
def test_kl_divergence_is_torch_kl_div_batchmean(zeros_in_target):
    lp = _log_softmax(RNG.normal(size=(8, 5)) * 2)
    q = RNG.dirichlet(np.ones(5), 8)
    if zeros_in_target:                # a term with q = 0 is 0 (torch: xlogy)
        q[:, 0] = 0.0
        q /= q.sum(-1, keepdims=True)
    _against_torch(losses.kl_divergence,
                   lambda a, b: torch.nn.functional.kl_div(a, b, reduction="batchmean"), lp, q)


def test_kl_divergence_reductions_are_torch_sum_and_per_example_sums():
    lp, q = _log_softmax(RNG.normal(size=(6, 4))), RNG.dirichlet(np.ones(4), 6)
    tl, tq = torch.tensor(lp), torch.tensor(q)
    per_element = torch.nn.functional.kl_div(tl, tq, reduction="none").numpy()
    jl, jq = jnp.asarray(lp, jnp.float32), jnp.asarray(q, jnp.float32)
    np.testing.assert_allclose(np.asarray(losses.kl_divergence(jl, jq, reduction="none")),
                               per_element.sum(-1), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(float(losses.kl_divergence(jl, jq, reduction="sum")),
                               per_element.sum(), rtol=1e-5)


def test_kl_divergence_of_a_distribution_with_itself_is_zero():
    lp = _log_softmax(RNG.normal(size=(4, 3)))
    got = losses.kl_divergence(jnp.asarray(lp, jnp.float32), jnp.exp(jnp.asarray(lp)))
    assert abs(float(got)) < 1e-6


# ---------------------------------------------------------------------------
# sigmoid_focal_loss = torchvision.ops.sigmoid_focal_loss(..., reduction="mean")


def torchvision_focal(inputs, targets, alpha=0.25, gamma=2.0):
    """torchvision.ops.sigmoid_focal_loss, reduction="mean", as torchvision writes it."""
    p = torch.sigmoid(inputs)
    ce = torch.nn.functional.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * targets + (1 - alpha) * (1 - targets)
        loss = alpha_t * loss
    return loss.mean()


@pytest.mark.parametrize("alpha, gamma", [(0.25, 2.0), (0.5, 0.0), (0.9, 1.5), (-1, 3.0)])
def test_sigmoid_focal_loss_is_torchvision(alpha, gamma):
    z = RNG.normal(size=(8, 3)) * 3
    y = RNG.integers(0, 2, (8, 3)).astype(np.float32)
    _against_torch(
        lambda z, y: losses.sigmoid_focal_loss(z, y, None if alpha < 0 else alpha, gamma),
        lambda z, y: torchvision_focal(z, y, alpha, gamma), z, y)


def test_focal_loss_without_focusing_or_weighting_is_sigmoid_bce():
    z, y = jnp.asarray(RNG.normal(size=(5, 2)), jnp.float32), jnp.asarray(
        RNG.integers(0, 2, (5, 2)), jnp.float32)
    chex.assert_trees_all_close(losses.sigmoid_focal_loss(z, y, alpha=None, gamma=0.0),
                                losses.sigmoid_binary_cross_entropy(z, y), rtol=1e-6)


# ---------------------------------------------------------------------------
# triplet_margin = torch triplet_margin_loss (p = 2)


@pytest.mark.parametrize("margin", [1.0, 0.3, 2.5])
def test_triplet_margin_is_torch_triplet_margin_loss(margin):
    a, p, n = (RNG.normal(size=(10, 4)) for _ in range(3))
    _against_torch(
        lambda a, p, n: losses.triplet_margin(a, p, n, margin=margin),
        lambda a, p, n: torch.nn.functional.triplet_margin_loss(a, p, n, margin=margin),
        a, p, n, n_grads=3)


def test_triplet_margin_is_finite_for_identical_embeddings_and_weights_each_triplet():
    a = jnp.asarray(RNG.normal(size=(4, 3)), jnp.float32)
    g = jax.grad(lambda a: losses.triplet_margin(a, a, a))(a)   # distance 0: ε keeps it finite
    chex.assert_tree_all_finite(g)
    p, n = a + 0.1, a - 3.0
    per = losses.triplet_margin(a, p, n, margin=5.0, reduction="none")
    w = jnp.array([1.0, 0.0, 2.0, 1.0])
    chex.assert_trees_all_close(losses.triplet_margin(a, p, n, margin=5.0, weights=w),
                                jnp.sum(w * per) / jnp.sum(w), rtol=1e-6)


class NewLossVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_new_losses_under_jit_and_vmap(self):
        z = jnp.asarray(RNG.normal(size=(2, 4, 3)), jnp.float32)
        q = jax.nn.softmax(jnp.asarray(RNG.normal(size=(2, 4, 3)), jnp.float32))
        f = self.variant(jax.vmap(lambda z, q: jnp.stack([
            losses.kl_divergence(jax.nn.log_softmax(z), q),
            losses.sigmoid_focal_loss(z, q),
            losses.triplet_margin(z, q, -z)])))
        want = jnp.stack([jnp.stack([losses.kl_divergence(jax.nn.log_softmax(z[i]), q[i]),
                                     losses.sigmoid_focal_loss(z[i], q[i]),
                                     losses.triplet_margin(z[i], q[i], -z[i])])
                          for i in range(2)])
        chex.assert_trees_all_close(f(z, q), want, rtol=1e-6)


# ---------------------------------------------------------------------------
# bad input

Z = jnp.zeros((4, 3))

BAD_INPUT = [
    pytest.param(lambda: losses.kl_divergence(Z, jnp.zeros((4, 2))), ValueError,
                 r"fnn.losses.kl_divergence: log-probabilities and target probabilities must "
                 r"have the same shape, got log-probabilities \(4, 3\) and target "
                 r"probabilities \(4, 2\)", id="kl-shapes"),
    pytest.param(lambda: losses.kl_divergence(Z, Z, weights=jnp.ones(3)), ValueError,
                 r"kl_divergence: weights of shape \(3,\) do not broadcast to the unreduced "
                 r"loss's shape \(4,\)", id="kl-weights"),
    pytest.param(lambda: losses.sigmoid_focal_loss(Z, Z, alpha=1.5), ValueError,
                 r"fnn.losses.sigmoid_focal_loss: alpha must be in \[0.0, 1.0\], got 1.5",
                 id="focal-alpha"),
    pytest.param(lambda: losses.sigmoid_focal_loss(Z, Z, gamma=-1.0), ValueError,
                 r"sigmoid_focal_loss: gamma must be >= 0.0, got -1.0", id="focal-gamma"),
    pytest.param(lambda: losses.sigmoid_focal_loss(Z, Z, reduction="max"), ValueError,
                 r"sigmoid_focal_loss: unknown reduction 'max'", id="focal-reduction"),
    pytest.param(lambda: losses.triplet_margin(Z, Z, jnp.zeros((4, 2))), ValueError,
                 r"fnn.losses.triplet_margin: anchor, positive and negative must have one "
                 r"shape \(N, D\), got \(4, 3\), \(4, 3\) and \(4, 2\)", id="triplet-shapes"),
    pytest.param(lambda: losses.triplet_margin(Z, Z, Z, margin=0.0), ValueError,
                 r"triplet_margin: margin must be > 0.0, got 0.0", id="triplet-margin"),
    pytest.param(lambda: losses.triplet_margin(Z, Z, jnp.zeros((4, 3), int)), TypeError,
                 r"triplet_margin: expected floating-point negative, got dtype int32",
                 id="triplet-int"),
    pytest.param(lambda: losses.triplet_margin(jnp.zeros((0, 3)), jnp.zeros((0, 3)),
                                               jnp.zeros((0, 3))), ValueError,
                 r"triplet_margin: got an empty batch", id="triplet-empty"),
]


@pytest.mark.parametrize("trigger, exc, match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
