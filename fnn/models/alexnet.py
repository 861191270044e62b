"""AlexNet (Krizhevsky, Sutskever & Hinton 2012)."""
from __future__ import annotations

from fnn import activations
from fnn._array_checks import example_shape
from fnn._checks import UNIT, BadValue, flag, labelled, named, number, positive_int, shape_str
from fnn.core import Layer, serial
from fnn.layers.conv import Conv2D
from fnn.layers.dense import Dense, Flatten
from fnn.layers.dropout import Dropout
from fnn.layers.pool import MaxPool

__all__ = [
    "alexnet",
]


@named("alexnet")
def alexnet(num_classes: int = 1000, *, small_input: bool = False, hidden: int | None = None,
            dropout: float = 0.5) -> Layer:
    """AlexNet: five convolutions, three max-pools, three dense layers, ReLU, dropout.

    **ImageNet layout** (`small_input=False`, for 224×224×3; the single-tower
    layout of torchvision's `alexnet`, 61,100,840 parameters with 1000 classes):

    | layer | output |
    |---|---|
    | `Conv2D(64, 11, stride=4, padding=2)` + relu, `MaxPool(3, 2)` | 55×55×64 → 27×27×64 |
    | `Conv2D(192, 5, padding=2)` + relu, `MaxPool(3, 2)` | 27×27×192 → 13×13×192 |
    | `Conv2D(384, 3, padding=1)` + relu | 13×13×384 |
    | `Conv2D(256, 3, padding=1)` + relu | 13×13×256 |
    | `Conv2D(256, 3, padding=1)` + relu, `MaxPool(3, 2)` | 13×13×256 → 6×6×256 |
    | `Flatten`, `Dropout`, `Dense(hidden)` + relu, `Dropout`, `Dense(hidden)` + relu | 4096 |
    | `Dense(num_classes)` (logits) | num_classes |

    **Small-input layout** (`small_input=True`, for 32×32 images such as CIFAR-10;
    any size of at least 8×8 works; a side not divisible by 8 loses its last rows
    to the pools): the same five convolutions with 3×3 kernels,
    stride 1 and `"SAME"` padding, and `MaxPool(2)` after the 1st, 2nd and 5th
    (32×32 → 16 → 8 → 4, so 4×4×256 = 4,096 features), with `hidden` defaulting
    to 1024 instead of 4096.

    **Arguments:**
    - `num_classes`: output size (logits).
    - `small_input`: choose the small-input layout.
    - `hidden`: width of the two hidden dense layers (default 4096, or 1024 with
      `small_input=True`).
    - `dropout`: drop probability before each hidden dense layer (0.5 as in the
      paper; training then needs `apply(..., key=key, train=True)`).
    """
    num_classes = positive_int("num_classes", num_classes)
    small_input = flag("small_input", small_input)
    hidden = positive_int("hidden", (1024 if small_input else 4096) if hidden is None else hidden)
    dropout = number("dropout", dropout, **UNIT)
    relu = activations.relu
    if small_input:
        features = [
            Conv2D(64, 3), relu, MaxPool(2),
            Conv2D(192, 3), relu, MaxPool(2),
            Conv2D(384, 3), relu,
            Conv2D(256, 3), relu,
            Conv2D(256, 3), relu, MaxPool(2),
        ]
    else:
        features = [
            Conv2D(64, 11, stride=4, padding=2), relu, MaxPool(3, 2),
            Conv2D(192, 5, padding=2), relu, MaxPool(3, 2),
            Conv2D(384, 3, padding=1), relu,
            Conv2D(256, 3, padding=1), relu,
            Conv2D(256, 3, padding=1), relu, MaxPool(3, 2),
        ]
    classifier = [
        Flatten(),
        Dropout(dropout), Dense(hidden), relu,
        Dropout(dropout), Dense(hidden), relu,
        Dense(num_classes),
    ]
    model = serial(*features, *classifier)

    @named("alexnet")
    def init(key, input_shape):
        shape = labelled("alexnet.init", example_shape, input_shape, "(H, W, C)")
        if len(shape) == 3 and small_input and min(shape[:2]) < _MIN_SMALL_SIZE:
            raise BadValue(f"the small-input layout needs images of at least {_MIN_SMALL_SIZE}×"
                           f"{_MIN_SMALL_SIZE} (it halves them three times), got "
                           f"{shape_str(shape)}.")
        if len(shape) == 3 and not small_input and min(shape[:2]) < _MIN_IMAGENET_SIZE:
            raise BadValue(
                f"the ImageNet layout needs images of at least {_MIN_IMAGENET_SIZE}×"
                f"{_MIN_IMAGENET_SIZE} (it is made for 224×224), got {shape_str(shape)}; for "
                "small images such as CIFAR-10's 32×32 use alexnet(..., small_input=True).")
        return model.init(key, shape)

    return model._replace(init=init, name="AlexNet")


# The smallest side the ImageNet layout maps to a non-empty 1×1 map before its last
# pool: 11×11 stride 4 (padding 2), then three 3×3 stride-2 pools each need 3 rows.
_MIN_IMAGENET_SIZE = 63
# The small-input layout's three 2×2 pools need 8 rows (8 → 4 → 2 → 1).
_MIN_SMALL_SIZE = 8
