"""Differentially private SGD (Abadi et al. 2016) on the 8×8 digits with fnn.

Each step takes per-example gradients `g_i` (`fnn.per_example_grads`), clips each to
L2 norm `C` (`fnn.optim.clip_tree_by_global_norm` under `jax.vmap`), sums them, adds
Gaussian noise of std `σ·C` to every coordinate and averages over the batch `B`:

    g̃ = (Σ_i g_i · min(1, C / ‖g_i‖) + N(0, σ²C² I)) / B,    params ← params − lr · g̃

The weights start from JAX's truncated-normal LeCun rule
(`fnn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")`), as in stax.
The privacy budget ε is not computed here (that needs a moments accountant).

    python examples/dp_sgd.py           # an MLP, 40 epochs
    python examples/dp_sgd.py --quick   # smoke run: 3 epochs
"""
import argparse

import jax
import jax.numpy as jnp

import fnn

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=40)
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--lr", type=float, default=0.5)
parser.add_argument("--clip", type=float, default=1.0, help="per-example L2 norm bound C")
parser.add_argument("--noise", type=float, default=1.1, help="noise multiplier σ")
parser.add_argument("--quick", action="store_true", help="run 3 epochs only")
parser.add_argument("--out", help="unused; accepted like the other examples' smoke runs")
args = parser.parse_args()
epochs = 3 if args.quick else args.epochs

x, y = fnn.datasets.digits()                                   # (1797, 8, 8, 1), (1797,)
(x_train, y_train), (x_test, y_test) = fnn.data.train_val_split(
    jax.random.key(0), x, y, val_fraction=0.2)

init = fnn.initializers.variance_scaling(1.0, "fan_in", "truncated_normal")
model = fnn.serial(fnn.layers.Flatten(), fnn.models.mlp([128, 10], w_init=init))
params, state = model.init(jax.random.key(1), x.shape[1:])
optimizer = fnn.optim.sgd(args.lr)
opt_state = optimizer.init(params)


def loss_fn(params, x, y):
    logits, _ = model.apply(params, state, x)
    return fnn.losses.softmax_cross_entropy(logits, y)


def private_gradient(params, x, y, key):
    """g̃ above: clipped per-example gradients, summed, noised, averaged."""
    grads = fnn.per_example_grads(loss_fn, params, x, y)           # leaves (B, ...)
    clipped = jax.vmap(lambda g: fnn.optim.clip_tree_by_global_norm(g, args.clip))(grads)
    leaves, treedef = jax.tree.flatten(jax.tree.map(lambda g: g.sum(0), clipped))
    keys = jax.random.split(key, len(leaves))
    noisy = [g + args.noise * args.clip * jax.random.normal(k, g.shape, g.dtype)
             for g, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(treedef, [g / x.shape[0] for g in noisy])


@jax.jit
def dp_step(opt_state, x, y, key):
    opt_state, _ = optimizer.update(opt_state, private_gradient(opt_state.params, x, y, key))
    return opt_state


@jax.jit
def test_accuracy(params):
    return fnn.metrics.accuracy(model.apply(params, state, x_test)[0], y_test)


key = jax.random.key(2)
for epoch in range(epochs):
    key, shuffle_key = jax.random.split(key)
    for xb, yb in fnn.data.batches(shuffle_key, x_train, y_train, batch_size=args.batch_size,
                                   drop_last=True):                 # one shape: one compile
        key, noise_key = jax.random.split(key)
        opt_state = dp_step(opt_state, jnp.asarray(xb), jnp.asarray(yb), noise_key)
    if epoch % 10 == 9 or epoch == epochs - 1:
        print(f"epoch {epoch + 1}: test accuracy {float(test_accuracy(opt_state.params)):.3f}")

accuracy = float(test_accuracy(opt_state.params))
print(f"DP-SGD (C={args.clip}, sigma={args.noise}, batch {args.batch_size}, {epochs} epochs): "
      f"test accuracy {accuracy:.3f}")
