"""Optimizers by name: the table `fnn train --optimizer NAME` reads.

    entry = fnn.optim.REGISTRY["nesterov"]
    optimizer = entry.make(entry.default_lr)     # = fnn.optim.momentum(0.01, nesterov=True)

A name stands for a constructor with some hyperparameters fixed ("nesterov" is
`momentum(..., nesterov=True)`); `make(learning_rate)` gives the optimizer with
every other hyperparameter at the constructor's default. Adding an entry here
adds the choice to the command line, its help text and its config checks.
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

from fnn.optim.adam import adam, adamax, adamw, nadam, radam
from fnn.optim.adaptive import adadelta, adagrad, rmsprop
from fnn.optim.base import Optimizer
from fnn.optim.lion import lion
from fnn.optim.sgd import momentum, sgd

__all__ = ["NamedOptimizer", "REGISTRY"]


class NamedOptimizer(NamedTuple):
    """One registry entry.

    **Fields:**
    - `make(learning_rate) -> Optimizer`: the constructor, other hyperparameters fixed.
    - `default_lr`: the learning rate `fnn train` uses when `--lr` is not given. It is
      the constructor's own default where it has one, except `rmsprop` (1e-3 here,
      Keras's default; the constructor keeps PyTorch's 0.01); `sgd` and `momentum`,
      whose constructors have none, get 0.01.
    """

    make: Callable[[float], Optimizer]
    default_lr: float


REGISTRY: dict[str, NamedOptimizer] = {
    "sgd": NamedOptimizer(sgd, 0.01),
    "momentum": NamedOptimizer(momentum, 0.01),
    "nesterov": NamedOptimizer(functools.partial(momentum, nesterov=True), 0.01),
    "adagrad": NamedOptimizer(adagrad, 0.01),
    "adadelta": NamedOptimizer(adadelta, 1.0),
    "rmsprop": NamedOptimizer(rmsprop, 1e-3),
    "adam": NamedOptimizer(adam, 1e-3),
    "adamw": NamedOptimizer(adamw, 1e-3),
    "nadam": NamedOptimizer(nadam, 2e-3),
    "radam": NamedOptimizer(radam, 1e-3),
    "adamax": NamedOptimizer(adamax, 2e-3),
    "lion": NamedOptimizer(lion, 1e-4),
}
