"""Zoo models by name: the table `fnn train --model NAME` and `fnn summary` read.

    entry = fnn.models.REGISTRY["resnet20"]
    model = entry.build(10)                      # = fnn.models.resnet(20, 10)
    print(fnn.summary(model, entry.input_shape))

Each entry builds a classifier for any number of classes; `input_shape` is the
example shape it is usually fed (one example, no batch axis). Adding an entry here
adds the choice to the command line, its help text and its config checks.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from fnn.core import Layer, serial
from fnn.layers.dense import Flatten
from fnn.models.alexnet import alexnet
from fnn.models.inception import inception_net
from fnn.models.lenet import lenet5
from fnn.models.mlp import mlp
from fnn.models.resnet import resnet, resnet18
from fnn.models.small_cnn import small_cnn
from fnn.models.transformer import char_transformer

__all__ = ["NamedModel", "REGISTRY"]


class NamedModel(NamedTuple):
    """One registry entry.

    **Fields:**
    - `build(num_classes) -> Layer`: the model, its last layer giving `num_classes` logits.
    - `input_shape`: the usual shape of one example, e.g. `(28, 28, 1)`.
    - `about`: one line saying what it is (the command line's help text).
    """

    build: Callable[[int], Layer]
    input_shape: tuple[int, ...]
    about: str


def _flat_mlp(num_classes: int) -> Layer:
    """`Flatten`, then Dense 256 -> relu -> Dense 128 -> relu -> Dense `num_classes`."""
    return serial(Flatten(), mlp([256, 128, num_classes]))


def _resnet(depth: int) -> NamedModel:
    return NamedModel(lambda num_classes: resnet(depth, num_classes), (32, 32, 3),
                    f"CIFAR ResNet-{depth} with BatchNorm")


REGISTRY: dict[str, NamedModel] = {
    "lenet5": NamedModel(lenet5, (28, 28, 1), "LeNet-5 (61,706 params), 28x28 or 32x32 images"),
    "mlp": NamedModel(_flat_mlp, (28, 28, 1),
                      "Flatten, Dense 256-relu-128-relu-classes; any input"),
    **{f"resnet{depth}": _resnet(depth) for depth in (8, 14, 20, 32, 44, 56, 110)},
    "resnet18": NamedModel(resnet18, (224, 224, 3), "ResNet-18, ImageNet layout"),
    "alexnet": NamedModel(lambda num_classes: alexnet(num_classes, small_input=True), (32, 32, 3),
                        "AlexNet, small-input layout (32x32)"),
    "inception": NamedModel(inception_net, (32, 32, 3), "small GoogLeNet-style net (32x32)"),
    # a language model: num_classes is the vocabulary, logits (T, vocab) for ids (T,)
    "char_transformer": NamedModel(
        lambda num_classes: char_transformer(num_classes, 64, 4, 2, 64), (64,),
        "causal transformer LM: 2 blocks, width 64, 4 heads; ids (64,) -> (64, vocab)"),
}
REGISTRY["cnn"] = NamedModel(small_cnn, (28, 28, 1),
                             "small CNN, 2 conv 3x3 + avg-pool, Dense 128 (206,922 params)")
REGISTRY["cnn-bn"] = NamedModel(
    lambda num_classes: small_cnn(num_classes, width=32, batch_norm=True), (28, 28, 1),
    "small CNN with BatchNorm, width 32 (for crop+flip recipes)")
