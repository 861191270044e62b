"""Optimizers as pure `(init, update)` pairs over a pytree state that holds the params.

    opt = fnn.optim.adam(1e-3)
    state = opt.init(params)

    @jax.jit
    def train_step(state, batch):
        grads = jax.grad(loss_fn)(state.params, *batch)
        state, params = opt.update(state, grads)
        return state

Every state is a NamedTuple `(step, lr, lr_scale, hyper, params, *slots)`;
`current_lr(state)` returns the learning rate of the latest update, `set_lr_scale(state, s)`
scales the rate of the following updates (`lr = schedule(step) · s`), and
`set_hyperparams(state, learning_rate=..., b1=...)` changes the hyperparameters the state
holds without compiling the step again. See `fnn.optim.base` for the layout and each
constructor for its update rule and how it relates to PyTorch, Optax and Keras.
"""
from fnn.optim import schedules
from fnn.optim.adam import adam, adamax, adamw, nadam, radam
from fnn.optim.adaptive import adadelta, adagrad, rmsprop
from fnn.optim.base import Optimizer, current_lr, set_lr_scale
from fnn.optim.ema import ema, ema_params
from fnn.optim.groups import decay_mask, masked, partition
from fnn.optim.hyperparams import copy_hyperparams, hyperparams, set_hyperparams
from fnn.optim.lion import lion
from fnn.optim.registry import REGISTRY as REGISTRY  # named optimizers (fnn train)
from fnn.optim.sgd import momentum, sgd
from fnn.optim.wrappers import (
    clip_by_global_norm,
    clip_by_value,
    clip_tree_by_global_norm,
    global_norm,
)

__all__ = [
    "Optimizer", "current_lr", "set_lr_scale", "set_hyperparams", "hyperparams",
    "copy_hyperparams", "schedules",
    "sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "nadam", "radam",
    "adamax", "lion",
    "clip_by_global_norm", "clip_by_value", "global_norm", "clip_tree_by_global_norm",
    "masked", "partition", "ema", "ema_params", "decay_mask",
]
