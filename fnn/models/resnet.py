"""Residual networks (He et al. 2016): the CIFAR `resnet(depth)` and ImageNet `resnet18`."""
from __future__ import annotations

import jax.numpy as jnp

from fnn import activations, initializers
from fnn._array_checks import require_key_and_train
from fnn._checks import BadValue, checked, named, positive_int, shape_str
from fnn.core import Layer, residual, serial
from fnn.layers.conv import Conv2D
from fnn.layers.dense import Dense
from fnn.layers.norm import BatchNorm
from fnn.layers.pool import GlobalAvgPool, MaxPool

__all__ = [
    "basic_block", "resnet", "resnet18",
]


def _shortcut(name: str, value) -> str:
    """The shortcut option, "A" or "B" (else `BadValue`)."""
    if value not in ("A", "B"):
        raise BadValue(f'{name} must be "A" or "B", got {value!r}.')
    return value


def _depth(name: str, value) -> int:
    """A CIFAR ResNet depth, `6n + 2` with `n >= 1` (else `BadType`/`BadValue`)."""
    depth = positive_int(name, value)
    if depth < 8 or (depth - 2) % 6:
        raise BadValue(f"{name} must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), "
                       f"got {depth}.")
    return depth


def _conv(features, kernel, stride=1):
    """Conv without bias (BatchNorm follows), He-normal init, symmetric PyTorch padding."""
    return Conv2D(features, kernel, stride=stride, padding=(kernel - 1) // 2, use_bias=False,
                  w_init=initializers.he_normal)


def _subsample_and_pad(features: int, stride: int) -> Layer:
    """Option-A shortcut: `x[:, ::s, ::s, :]`, then zero channels up to `features`."""

    @named("resnet shortcut")
    def init(key, input_shape):
        del key
        if input_shape[-1] > features:
            raise BadValue(f"cannot pad {shape_str(input_shape)} down to {features} channels.")
        return {}, {}

    check = named("resnet shortcut")(require_key_and_train)

    def apply(params, state, x, *, key=None, train=False):
        del params
        check(key, train)
        y = x[:, ::stride, ::stride, :]
        extra = features - x.shape[-1]
        pads = ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2))
        return jnp.pad(y, pads), state

    return Layer(init, apply, "PadShortcut")


@checked("basic_block", features=positive_int, stride=positive_int, shortcut=_shortcut)
def basic_block(features: int, stride: int = 1, *, in_features: int | None = None,
                shortcut: str = "B") -> Layer:
    """`relu(BN(conv3x3(relu(BN(conv3x3(x))))) + shortcut(x))`, the ResNet basic block.

    The first 3×3 convolution has stride `stride`. When the shape changes
    (`stride > 1` or `in_features != features`), the shortcut is option B, a
    projection `Conv2D(features, 1, stride)` + BatchNorm (ResNet-18/34,
    torchvision), or option A, subsampling plus zero channels (no parameters; the
    paper's CIFAR networks). Otherwise it is the identity.
    """
    relu = activations.relu
    block = serial(_conv(features, 3, stride), BatchNorm(), relu,
                   _conv(features, 3), BatchNorm())
    project = stride != 1 or (in_features is not None and in_features != features)
    if not project:
        short = None
    elif shortcut == "A":
        short = _subsample_and_pad(features, stride)
    else:
        short = serial(_conv(features, 1, stride), BatchNorm())._replace(name="Projection")
    return serial(residual(block, short), relu)._replace(name="BasicBlock")


@checked("resnet", depth=_depth, num_classes=positive_int, shortcut=_shortcut)
def resnet(depth: int = 20, num_classes: int = 10, *, shortcut: str = "A") -> Layer:
    """CIFAR ResNet with `depth = 6n + 2` layers (He et al. 2016, §4.2), for 32×32×3.

    `Conv2D(16, 3)` + BatchNorm + relu; three stages of `n` basic blocks with
    16, 32, 64 channels (the first block of stages 2 and 3 has stride 2:
    32×32 → 16×16 → 8×8); `GlobalAvgPool`; `Dense(num_classes)` (logits).
    Convolutions have no bias (BatchNorm follows) and He-normal weights.

    **Arguments:**
    - `depth`: 8, 14, 20, 32, 44, 56, 110, … (`6n + 2`).
    - `num_classes`: output size.
    - `shortcut`: `"A"` (default, the paper's CIFAR choice): where the shape
      changes, the shortcut subsamples with stride 2 and pads the new channels
      with zeros, adding no parameters; `"B"`: a 1×1 convolution + BatchNorm
      projection there.

    **Parameters** (10 classes, counting BatchNorm's scale and bias; the running
    statistics are state): ResNet-20: 269,722 with option A (the paper's
    "0.27M"), 272,474 with option B; ResNet-8: 75,290 with option A, 78,042 with B.
    """
    n = (depth - 2) // 6
    layers = [_conv(16, 3), BatchNorm(), activations.relu]
    in_features = 16
    for features in (16, 32, 64):
        for i in range(n):
            stride = 2 if (i == 0 and features != 16) else 1
            layers.append(basic_block(features, stride, in_features=in_features,
                                      shortcut=shortcut))
            in_features = features
    layers += [GlobalAvgPool(), Dense(num_classes)]
    return serial(*layers)._replace(name=f"ResNet{depth}")


@checked("resnet18", num_classes=positive_int)
def resnet18(num_classes: int = 1000) -> Layer:
    """ResNet-18 in the ImageNet layout (He et al. 2016; torchvision's `resnet18`).

    | stage | layers | output (224×224×3 in) |
    |---|---|---|
    | stem | `Conv2D(64, 7, stride=2, padding=3)`, BN, relu, `MaxPool(3, 2, padding=1)` | 56×56×64 |
    | 1 | 2 basic blocks, 64 channels | 56×56×64 |
    | 2 | 2 basic blocks, 128 channels, first with stride 2 | 28×28×128 |
    | 3 | 2 basic blocks, 256 channels, first with stride 2 | 14×14×256 |
    | 4 | 2 basic blocks, 512 channels, first with stride 2 | 7×7×512 |
    | head | `GlobalAvgPool`, `Dense(num_classes)` | num_classes |

    Convolutions have no bias; where the shape changes the shortcut is a 1×1
    stride-2 convolution + BatchNorm (option B). 11,689,512 parameters with
    1000 classes, as torchvision. Padding is PyTorch's symmetric `(k − 1)/2`.
    """
    layers = [_conv(64, 7, 2), BatchNorm(), activations.relu, MaxPool(3, 2, padding=1)]
    in_features = 64
    for features in (64, 128, 256, 512):
        for i in range(2):
            stride = 2 if (i == 0 and features != 64) else 1
            layers.append(basic_block(features, stride, in_features=in_features, shortcut="B"))
            in_features = features
    layers += [GlobalAvgPool(), Dense(num_classes)]
    return serial(*layers)._replace(name="ResNet18")
