"""Learning rates: too small, too large, well chosen, and a decaying schedule.

Mini-batch SGD (batch 30) on the spiral with a 2-100-3 ReLU net. Too small a
rate crawls; too large a one blows the loss up (and kills ReLUs); a good
constant rate learns fast but its updates keep the loss noisy; decaying it
(a cosine schedule from twice that rate down to 0) settles lower. The update-to-weight
ratio ‖Δw‖/‖w‖ of the first step is printed for comparison with the CS231n rule of
thumb (~1e-3 per update; much larger means too large a rate).
All constant rates train in one `vmap` over the learning rate.

    python examples/learning_rates.py            # ~20 s on 2 cores
    python examples/learning_rates.py --quick    # smoke run
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

import fnn
import fnn.losses
import fnn.plot
from fnn import diagnostics, optim

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/learning_rates", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="a few epochs only (smoke test)")
args = parser.parse_args()
epochs, batch_size = (3 if args.quick else 100), 30

x, y = fnn.datasets.spiral(jax.random.key(0), num_per_class=100, num_classes=3)
model = fnn.models.mlp([100, 3])
params, state = model.init(jax.random.key(1), (2,))
n_batches = x.shape[0] // batch_size
steps = epochs * n_batches
order = jnp.concatenate([jax.random.permutation(k, x.shape[0])[: n_batches * batch_size]
                         for k in jax.random.split(jax.random.key(2), epochs)])
batch_idx = order.reshape(steps, batch_size)          # the same batches for every run


def loss_fn(params, xb, yb):
    return fnn.losses.softmax_cross_entropy(model.apply(params, state, xb)[0], yb)


def train(optimizer):
    """Full-data loss after every epoch of mini-batch training."""
    def step(opt_state, idx):
        grads = jax.grad(loss_fn)(opt_state.params, x[idx], y[idx])
        opt_state, new_params = optimizer.update(opt_state, grads)
        return opt_state, loss_fn(new_params, x, y)

    _, losses = jax.lax.scan(step, optimizer.init(params), batch_idx)
    return losses[n_batches - 1::n_batches]


constant = {"too small (0.01)": 0.01, "good (1.0)": 1.0, "too large (20)": 20.0}
losses = jax.jit(jax.vmap(lambda lr: train(optim.sgd(lr))))(jnp.array(list(constant.values())))
runs = {name: np.asarray(v) for name, v in zip(constant, losses, strict=True)}
schedule = optim.schedules.cosine_decay(2.0, steps)
runs["cosine 2.0 -> 0"] = np.asarray(jax.jit(lambda: train(optim.sgd(schedule)))())

grads = jax.grad(loss_fn)(params, x, y)
print(f"{'learning rate':<18} {'loss ep 1':>10} {'ep 10%':>9} {'final':>9} {'min':>9} "
      f"{'update/weight (0_Dense/w, step 1)':>34}")
for name, curve in runs.items():
    lr = constant.get(name, float(schedule(0)))
    _, stepped = optim.sgd(lr).update(optim.sgd(lr).init(params), grads)
    ratio = diagnostics.update_ratios(params, stepped)["0_Dense/w"]
    final = "diverged" if not np.isfinite(curve[-1]) else f"{curve[-1]:.4f}"
    print(f"{name:<18} {curve[0]:>10.4f} {curve[len(curve) // 10]:>9.4f} {final:>9} "
          f"{np.nanmin(curve):>9.4f} {ratio:>34.1e}")

fnn.plot.training_curves({k: {"loss": list(v)} for k, v in runs.items()},
                         f"{args.out}/learning_rates.png", logy=True, figsize=(6, 4), dpi=72,
                         title=f"mini-batch SGD on the spiral, {epochs} epochs")
print(f"wrote {args.out}/learning_rates.png")
