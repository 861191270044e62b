"""Multi-layer perceptron."""
from __future__ import annotations

from collections.abc import Callable, Sequence

from fnn import activations, initializers
from fnn.core import Layer, serial
from fnn.layers.dense import Dense


def mlp(features: Sequence[int], activation: str | Callable = activations.relu, *,
        w_init=initializers.lecun_normal, b_init=initializers.zeros) -> Layer:
    """A stack of Dense layers with `activation` between them and none after the last.

    `mlp([512, 256, 10])` = `serial(Dense(512), relu, Dense(256), relu, Dense(10))`;
    params are keyed `"0_Dense"`, `"2_Dense"`, `"4_Dense"`. The output is raw
    (logits for classification: pair it with `softmax_cross_entropy`).
    """
    features = list(features) if not isinstance(features, int) else None
    if not features:
        raise ValueError("mlp: expected a non-empty list of layer sizes, e.g. mlp([100, 3]).")
    act = activations.get(activation)
    layers = []
    for i, f in enumerate(features):
        if i:
            layers.append(act)
        layers.append(Dense(f, w_init=w_init, b_init=b_init))
    return serial(*layers)
