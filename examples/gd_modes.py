"""Batch, stochastic and mini-batch gradient descent on the same problem.

The same 2-50-3 net, learning rate and number of epochs on the spiral (300
points); only the batch size differs: 300 (batch GD, one update per epoch),
1 (SGD, 300 noisy updates per epoch) and 30 (mini-batch, 10 per epoch).
Per update, batch GD makes the most progress; per example seen (the compute
spent), SGD does; mini-batches get most of both, and vectorise well.

    python examples/gd_modes.py            # ~20 s on 2 cores
    python examples/gd_modes.py --quick    # smoke run
"""
import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnn
import fnn.losses
import fnn.plot

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/gd_modes", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="two epochs only (smoke test)")
args = parser.parse_args()
epochs, lr, target = (2 if args.quick else 40), 0.1, 0.6

x, y = fnn.datasets.spiral(jax.random.key(0), num_per_class=100, num_classes=3)
n = x.shape[0]
model = fnn.models.mlp([50, 3])
params, state = model.init(jax.random.key(1), (2,))
optimizer = fnn.optim.sgd(lr)


def loss_fn(params, xb, yb):
    return fnn.losses.softmax_cross_entropy(model.apply(params, state, xb)[0], yb)


def train(batch_idx):
    """Run one update per row of `batch_idx`; the full-data loss after each update."""
    def step(opt_state, idx):
        grads = jax.grad(loss_fn)(opt_state.params, x[idx], y[idx])
        opt_state, new_params = optimizer.update(opt_state, grads)
        return opt_state, loss_fn(new_params, x, y)

    return jax.lax.scan(step, optimizer.init(params), batch_idx)[1]


modes = {"batch (300)": n, "mini-batch (30)": 30, "stochastic (1)": 1}
curves_updates, curves_examples = {}, {}
print(f"{epochs} epochs, lr {lr}; loss at start {float(loss_fn(params, x, y)):.4f}")
print(f"{'mode':<16} {'updates':>8} {'final loss':>10} {f'loss @{epochs} updates':>17} "
      f"{'updates to <' + str(target):>15} {'examples to <' + str(target):>16} {'s/epoch':>8}")
for name, bs in modes.items():
    keys = jax.random.split(jax.random.key(2), epochs)
    batch_idx = jnp.concatenate([jax.random.permutation(k, n) for k in keys]).reshape(-1, bs)
    run = jax.jit(train).lower(batch_idx).compile()
    start = time.perf_counter()
    losses = np.asarray(run(batch_idx))
    per_epoch = (time.perf_counter() - start) / epochs
    updates = np.arange(1, len(losses) + 1)
    curves_updates[name] = (updates, losses)
    curves_examples[name] = (updates * bs, losses)
    hit = np.flatnonzero(losses < target)
    first = f"{hit[0] + 1}" if hit.size else "-"
    seen = f"{(hit[0] + 1) * bs}" if hit.size else "-"
    print(f"{name:<16} {len(losses):>8} {losses[-1]:>10.4f} {losses[epochs - 1]:>17.4f} "
          f"{first:>15} {seen:>16} {per_epoch:>8.4f}")

fnn.plot.curves(curves_updates, f"{args.out}/loss_vs_updates.png", xlabel="updates",
                ylabel="training loss", logx=True, title="loss against updates", dpi=72)
fnn.plot.curves(curves_examples, f"{args.out}/loss_vs_examples.png", xlabel="examples seen",
                ylabel="training loss", title="loss against examples seen", dpi=72)
print(f"wrote {args.out}/loss_vs_updates.png and loss_vs_examples.png")
