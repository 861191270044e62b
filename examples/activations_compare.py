"""The same MLP with sigmoid, tanh, ReLU, Leaky ReLU and ELU: epochs to a target loss.

Krizhevsky et al. (2012) report ReLU networks reaching a target training error
several times faster than tanh ones; sigmoid, whose gradient is at most 1/4 and
whose output is not zero-centred, is the slowest. Full-batch gradient descent
on the spiral, identical initial weights for every activation.

    python examples/activations_compare.py            # ~30 s on 2 cores
    python examples/activations_compare.py --quick    # smoke run
"""
import argparse

import jax
import jax.numpy as jnp
import numpy as np

import fnn
import fnn.losses
import fnn.plot

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--out", default="out/activations_compare", help="folder for the PNGs")
parser.add_argument("--quick", action="store_true", help="a few steps only (smoke test)")
args = parser.parse_args()
epochs = 40 if args.quick else 1000
targets = (0.3, 0.1)

x, y = fnn.datasets.spiral(jax.random.key(0), num_per_class=100, num_classes=3)
activations = ["sigmoid", "tanh", "relu", "leaky_relu", "elu"]
if args.quick:
    activations = ["sigmoid", "relu"]
optimizer = fnn.optim.sgd(0.1)


def train(activation):
    model = fnn.models.mlp([64, 64, 64, 64, 3], activation=activation)  # 4 hidden layers

    @jax.jit                              # init, training loop and evaluation: one program
    def run(key):
        params, state = model.init(key, (2,))      # the same key: the same weights for all

        def loss_fn(params):
            return fnn.losses.softmax_cross_entropy(model.apply(params, state, x)[0], y)

        def step(opt_state, _):
            loss, grads = jax.value_and_grad(loss_fn)(opt_state.params)
            return optimizer.update(opt_state, grads)[0], loss

        opt_state, losses = jax.lax.scan(step, optimizer.init(params), None, length=epochs)
        logits, _ = model.apply(opt_state.params, state, x)
        return losses, jnp.mean(jnp.argmax(logits, -1) == y)

    losses, accuracy = run(jax.random.key(1))
    return np.asarray(losses).tolist(), float(accuracy)


history = {}
print(f"{'activation':<12}" + "".join(f"{f'epochs to < {t}':>17}" for t in targets)
      + f"{'final loss':>12}{'accuracy':>10}")
for act in activations:
    losses, acc = train(act)
    history[act] = {"loss": losses}
    reached = [next((str(i + 1) for i, v in enumerate(losses) if v < t), f"> {epochs}")
               for t in targets]
    print(f"{act:<12}" + "".join(f"{r:>17}" for r in reached) + f"{losses[-1]:>12.4f}{acc:>10.1%}")

fnn.plot.training_curves(history, f"{args.out}/loss_curves.png", logy=True, figsize=(6, 4),
                         dpi=72, title="4x64 MLP, full-batch SGD (lr 0.1) on the spiral")
fnn.plot.activation_functions(f"{args.out}/activation_functions.png", dpi=72)
print(f"wrote {args.out}/loss_curves.png and activation_functions.png")
