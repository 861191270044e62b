"""Overfitting and three cures: L2 weight decay, dropout and early stopping.

A 2-200-200-3 ReLU net trained with full-batch Adam on only 90 points of a
noisy spiral memorises them: training loss → 0 while the validation loss
(900 fresh points) climbs. An L2 penalty, dropout after each hidden layer, or
stopping at the best validation epoch each keep the validation loss down.

    python examples/regularization.py            # ~30 s on 2 cores
    python examples/regularization.py --quick    # smoke run
"""
import argparse

import jax
import jax.numpy as jnp

import fnn
import fnn.losses
import fnn.plot
import fnn.regularizers
from fnn.layers import Dense, Dropout

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/regularization", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="a few epochs only (smoke test)")
args = parser.parse_args()
epochs, patience = (10, 3) if args.quick else (500, 50)

x_tr, y_tr = fnn.datasets.spiral(jax.random.key(0), num_per_class=30, noise=0.4)
x_va, y_va = fnn.datasets.spiral(jax.random.key(1), num_per_class=300, noise=0.4)
loss = fnn.losses.softmax_cross_entropy
plain = fnn.serial(Dense(200), fnn.relu, Dense(200), fnn.relu, Dense(3))
dropout = fnn.serial(Dense(200), fnn.relu, Dropout(0.5), Dense(200), fnn.relu, Dropout(0.5),
                     Dense(3))
optimizer = fnn.optim.adam(1e-2)


def train(model, penalty=None, patience=None):
    params, state = model.init(jax.random.key(2), (2,))  # same weights for every run

    def objective(params, key):
        pred, _ = model.apply(params, state, x_tr, key=key, train=True)
        return loss(pred, y_tr) + (0.0 if penalty is None else penalty(params))

    @jax.jit
    def step(opt_state, key):
        return optimizer.update(opt_state, jax.grad(objective)(opt_state.params, key))[0]

    @jax.jit
    def evaluate(params):
        def metrics(x, y):
            pred, _ = model.apply(params, state, x)
            return loss(pred, y), jnp.mean(jnp.argmax(pred, -1) == y)
        return metrics(x_tr, y_tr) + metrics(x_va, y_va)

    opt_state, history = optimizer.init(params), {"loss": [], "val_loss": []}
    best = (float("inf"), 0, params)
    for epoch in range(epochs):
        opt_state = step(opt_state, jax.random.key(epoch))
        tr_loss, tr_acc, va_loss, va_acc = (float(v) for v in evaluate(opt_state.params))
        history["loss"].append(tr_loss)
        history["val_loss"].append(va_loss)
        if va_loss < best[0]:
            best = (va_loss, epoch + 1, opt_state.params)
        elif patience is not None and epoch + 1 - best[1] >= patience:
            break                                       # early stopping: restore the best
    params = best[2] if patience is not None else opt_state.params
    return params, state, history, [float(v) for v in evaluate(params)], best[1]


runs = {
    "no regularization": train(plain),
    "L2 (1e-3)": train(plain, penalty=lambda p: fnn.regularizers.l2(p, 1e-3)),
    "dropout (0.5)": train(dropout),
    f"early stopping ({patience})": train(plain, patience=patience),
}
print(f"{'run':<22} {'epochs':>6} {'train loss':>10} {'train acc':>9} {'val loss':>9} "
      f"{'val acc':>8} {'best val epoch':>14}")
for name, (_, _, h, (tl, ta, vl, va), best_epoch) in runs.items():
    print(f"{name:<22} {len(h['loss']):>6} {tl:>10.4f} {ta:>9.1%} {vl:>9.4f} {va:>8.1%} "
          f"{best_epoch:>14}")

fnn.plot.training_curves({k: v[2] for k, v in runs.items()}, f"{args.out}/curves.png",
                         logy=True, figsize=(6, 4), dpi=72,
                         title="train (solid) vs validation (dashed)")
fnn.plot.decision_boundary([plain, plain, dropout, plain], [v[0] for v in runs.values()],
                           [v[1] for v in runs.values()], x_tr, y_tr,
                           f"{args.out}/boundaries.png", title=list(runs), resolution=120,
                           dpi=72)
print(f"wrote {args.out}/curves.png and boundaries.png")
