"""One hidden layer on the planar "flower": decision boundaries for several hidden sizes.

The classic first-network exercise: logistic regression cannot separate the
two-class flower (~50 %); a single hidden layer of a few tanh units can
(~90 %), and larger layers start fitting the noise. Full-batch gradient
descent (lr 1.2) on the binary cross-entropy of the logit.

    python examples/planar_flower.py            # ~30 s on 2 cores
    python examples/planar_flower.py --quick    # smoke run
"""
import argparse

import jax
import jax.numpy as jnp

import fnn
import fnn.losses
import fnn.plot

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/planar_flower", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="a few iterations only (smoke test)")
args = parser.parse_args()
iterations = 50 if args.quick else 5000

x, y = fnn.datasets.planar_flower(jax.random.key(0), num_points=400)
targets = y[:, None].astype(jnp.float32)                 # (N, 1), like the logits
optimizer = fnn.optim.sgd(1.2)


def train(model):
    @jax.jit                              # init, training loop and evaluation: one program
    def run(key):
        params, state = model.init(key, (2,))

        def loss_fn(params):
            logits, _ = model.apply(params, state, x)
            return fnn.losses.sigmoid_binary_cross_entropy(logits, targets)

        def step(opt_state, _):
            loss, grads = jax.value_and_grad(loss_fn)(opt_state.params)
            return optimizer.update(opt_state, grads)[0], loss

        opt_state, losses = jax.lax.scan(step, optimizer.init(params), None, length=iterations)
        logits, _ = model.apply(opt_state.params, state, x)
        return opt_state.params, state, losses[-1], jnp.mean((logits[:, 0] > 0) == (y == 1))

    params, state, loss, accuracy = run(jax.random.key(1))
    return params, state, float(loss), float(accuracy)


models = {"logistic regression": fnn.models.mlp([1])}
models.update({f"{h} hidden": fnn.models.mlp([h, 1], activation="tanh")
               for h in ((1, 4) if args.quick else (1, 2, 3, 4, 5, 20, 50))})
results = {name: train(model) for name, model in models.items()}
print(f"{'model':<20} {'loss':>7} {'accuracy':>9}   ({iterations} iterations)")
for name, (_, _, loss, acc) in results.items():
    print(f"{name:<20} {loss:>7.4f} {acc:>9.1%}")

fnn.plot.decision_boundary(list(models.values()), [r[0] for r in results.values()],
                           [r[1] for r in results.values()], x, y,
                           f"{args.out}/boundaries.png", resolution=150, dpi=72,
                           title=[f"{k}: {r[3]:.0%}" for k, r in results.items()])
print(f"wrote {args.out}/boundaries.png")
