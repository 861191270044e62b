"""Multi-layer perceptron."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from fnn import activations, initializers
from fnn._checks import BadType, BadValue, describe_value, lookup, named, positive_int
from fnn.core import Layer, serial
from fnn.layers.dense import Dense

__all__ = [
    "mlp",
]


def _layer_sizes(features) -> list[int]:
    """`features` as a non-empty list of positive ints; errors name the entry."""
    if isinstance(features, (str, bytes)) or not isinstance(features, Iterable) or (
            getattr(features, "ndim", 1) == 0):
        raise BadType(f"features must be a list of layer sizes, e.g. mlp([100, 3]), got "
                      f"{describe_value(features)}.")
    sizes = [positive_int(f"features[{i}]", f) for i, f in enumerate(features)]
    if not sizes:
        raise BadValue("expected a non-empty list of layer sizes, e.g. mlp([100, 3]).")
    return sizes


@named("mlp")
def mlp(features: Sequence[int], activation: str | Callable = activations.relu, *,
        w_init=initializers.lecun_normal, b_init=initializers.zeros) -> Layer:
    """A stack of Dense layers with `activation` between them and none after the last.

    `mlp([512, 256, 10])` = `serial(Dense(512), relu, Dense(256), relu, Dense(10))`;
    params are keyed `"0_Dense"`, `"2_Dense"`, `"4_Dense"`. The output is raw
    (logits for classification: pair it with `softmax_cross_entropy`).

    Bad arguments raise errors naming `mlp` (and the entry, e.g. `features[1]`).
    """
    sizes = _layer_sizes(features)
    act = lookup(activations.get, activation)
    w_init, b_init = lookup(initializers.get, w_init), lookup(initializers.get, b_init)
    layers = []
    for i, f in enumerate(sizes):
        if i:
            layers.append(act)
        layers.append(Dense(f, w_init=w_init, b_init=b_init))
    return serial(*layers)
