"""SGD, Momentum, Nesterov, Adagrad, Adadelta, RMSprop, the Adam family and Lion: a
ravine, then a real task.

Part 1 runs each optimizer for 100 steps on the ravine f(x, y) = 0.01·x² + y²
(curvatures 0.02 and 2, condition number 100) from (−7, 2). Plain SGD, its
rate capped below 1 by the steep direction, zigzags across it and crawls
along the flat one. Momentum (lr 0.2, β 0.9) stays stable across the valley
(lr·curvature < 2(1+β)) while its velocity builds up to lr/(1−β) = 2 times
the gradient along it; the adaptive methods rescale each coordinate. NAdam
looks one momentum step ahead, RAdam takes plain momentum steps until its
variance estimate is trustworthy (t > 5), Adamax divides by the largest recent
|g| instead of an RMS, and Lion moves every coordinate by exactly ±lr (the sign
of its momentum), so it crosses the flat direction at constant speed and then
hovers within lr of the minimum. Adadelta, with no learning rate to tune,
starts with tiny steps (√eps): it is printed but left out of the picture,
where it would not leave the start.
Part 2 trains the same MLP on the 8×8 digits with each optimizer.

    python examples/optimizers_compare.py            # part 2 trains twelve MLPs
    python examples/optimizers_compare.py --quick    # smoke run
"""
import argparse

import jax
import jax.numpy as jnp

import fnn
import fnn.data
import fnn.losses
import fnn.plot
from fnn import optim

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/optimizers_compare", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
args = parser.parse_args()
steps, epochs = (20, 1) if args.quick else (100, 20)


# --- part 1: trajectories on a ravine ------------------------------------------------
def ravine(p):
    return 0.01 * p[0] ** 2 + p[1] ** 2


on_ravine = {
    "SGD": optim.sgd(0.9), "Momentum": optim.momentum(0.2),
    "Nesterov": optim.momentum(0.2, nesterov=True), "Adagrad": optim.adagrad(1.0),
    "Adadelta": optim.adadelta(1.0), "RMSprop": optim.rmsprop(0.1), "Adam": optim.adam(0.3),
    "NAdam": optim.nadam(0.3), "RAdam": optim.radam(0.3), "Adamax": optim.adamax(0.3),
    "Lion": optim.lion(0.1),
}
trajectories = {}
print(f"ravine: f after {steps} steps from (-7, 2), f = 4.49 at the start")
grad = jax.grad(ravine)
for name, opt in on_ravine.items():
    state = opt.init(jnp.array([-7.0, 2.0]))
    path = [state.params]
    for _ in range(steps):          # 2 numbers: eager is quicker than compiling a loop
        state, params = opt.update(state, grad(state.params))
        path.append(params)
    trajectories[name] = jnp.stack(path)
    print(f"  {name:<9} f = {float(ravine(path[-1])):.2e}")
pictured = {k: v for k, v in trajectories.items() if k != "Adadelta"}   # ten colours
fnn.plot.optimizer_trajectories(ravine, pictured, f"{args.out}/ravine_trajectories.png",
                                xlim=(-8, 3), ylim=(-2.5, 2.5), dpi=72,
                                title="f(x, y) = 0.01 x² + y²")

# --- part 2: the same MLP on the 8x8 digits --------------------------------------------
x, y = fnn.datasets.digits()
x = x.reshape(len(x), -1)
if args.quick:
    x, y = x[:300], y[:300]
(x_tr, y_tr), (x_va, y_va) = fnn.data.train_val_split(jax.random.key(0), x, y, val_fraction=0.2)
on_digits = {
    "SGD": optim.sgd(0.1), "Momentum": optim.momentum(0.01),
    "Nesterov": optim.momentum(0.01, nesterov=True), "Adagrad": optim.adagrad(0.05),
    "Adadelta": optim.adadelta(1.0), "RMSprop": optim.rmsprop(1e-3), "Adam": optim.adam(1e-3),
    "AdamW": optim.adamw(1e-3, weight_decay=0.05, mask=optim.decay_mask),
    "NAdam": optim.nadam(2e-3), "RAdam": optim.radam(1e-3), "Adamax": optim.adamax(2e-3),
    "Lion": optim.lion(3e-4),   # Lion wants a rate 3–10× below AdamW's
}
model = fnn.models.mlp([100, 10])
params0, state = model.init(jax.random.key(1), (64,))   # the same start for every optimizer


def loss_fn(params, x, y):
    return fnn.losses.softmax_cross_entropy(model.apply(params, state, x)[0], y)


evaluate = jax.jit(loss_fn)
if args.quick:
    on_digits = {k: on_digits[k] for k in ("SGD", "Adam")}
histories = {}
print(f"\ndigits, MLP 64-100-10, batch 64, {epochs} epochs")
print(f"  {'optimizer':<9} {'train loss':>10} {'val loss':>9} {'val acc':>8}")
for name, opt in on_digits.items():
    @jax.jit
    def train_step(opt_state, x, y, opt=opt):
        grads = jax.grad(loss_fn)(opt_state.params, x, y)
        return opt.update(opt_state, grads)[0]

    opt_state, h = opt.init(params0), {"loss": [], "val_loss": []}
    for epoch in range(epochs):
        for xb, yb in fnn.data.batches(jax.random.key(epoch), x_tr, y_tr, batch_size=64,
                                       drop_last=True):
            opt_state = train_step(opt_state, xb, yb)
        h["loss"].append(float(evaluate(opt_state.params, x_tr, y_tr)))
        h["val_loss"].append(float(evaluate(opt_state.params, x_va, y_va)))
    logits, _ = model.apply(opt_state.params, state, x_va)
    accuracy = float(jnp.mean(jnp.argmax(logits, axis=-1) == y_va))
    histories[name] = h
    print(f"  {name:<9} {h['loss'][-1]:>10.4f} {h['val_loss'][-1]:>9.4f} {accuracy:>8.1%}")
fnn.plot.training_curves(histories, f"{args.out}/digits_loss.png", logy=True, dpi=72,
                         figsize=(6, 4), title="digits: train (solid) and validation (dashed)")
print(f"wrote {args.out}/ravine_trajectories.png and digits_loss.png")
