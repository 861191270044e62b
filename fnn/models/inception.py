"""GoogLeNet-style Inception blocks (Szegedy et al. 2015) and a small Inception net."""
from __future__ import annotations

from fnn import activations
from fnn._checks import UNIT, checked, positive_int
from fnn.core import Layer, concat, serial
from fnn.layers.conv import Conv2D
from fnn.layers.dense import Dense
from fnn.layers.dropout import Dropout
from fnn.layers.pool import GlobalAvgPool, MaxPool

__all__ = [
    "inception_block", "inception_net",
]


@checked("inception_block", c1=positive_int, c3_reduce=positive_int, c3=positive_int,
         c5_reduce=positive_int, c5=positive_int, pool_proj=positive_int)
def inception_block(c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                    pool_proj: int) -> Layer:
    """The Inception module: four branches on the same input, concatenated on channels.

    | branch | layers |
    |---|---|
    | 1 | `Conv2D(c1, 1)` + relu |
    | 2 | `Conv2D(c3_reduce, 1)` + relu, `Conv2D(c3, 3, padding="SAME")` + relu |
    | 3 | `Conv2D(c5_reduce, 1)` + relu, `Conv2D(c5, 5, padding="SAME")` + relu |
    | 4 | `MaxPool(3, stride=1, padding="SAME")`, `Conv2D(pool_proj, 1)` + relu |

    Arguments in GoogLeNet's table order (torchvision's `Inception(in, ch1x1,
    ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)` without `in`, which `init`
    reads from the input). **Shapes:** `(N, H, W, C) -> (N, H, W, c1+c3+c5+pool_proj)`.
    Built with `fnn.concat`; params keyed `"0_Serial"` … `"3_Serial"`.
    """
    relu = activations.relu
    block = concat(
        serial(Conv2D(c1, 1), relu),
        serial(Conv2D(c3_reduce, 1), relu, Conv2D(c3, 3, padding="SAME"), relu),
        serial(Conv2D(c5_reduce, 1), relu, Conv2D(c5, 5, padding="SAME"), relu),
        serial(MaxPool(3, stride=1, padding="SAME"), Conv2D(pool_proj, 1), relu),
        axis=-1,
    )
    return block._replace(name="Inception")


@checked("inception_net", num_classes=positive_int, dropout=UNIT)
def inception_net(num_classes: int = 10, *, dropout: float = 0.4) -> Layer:
    """A small GoogLeNet-style network for 32×32 images (any size works).

    | layer | output (32×32×3 in) |
    |---|---|
    | `Conv2D(64, 3, padding="SAME")` + relu | 32×32×64 |
    | `inception_block(32, 48, 64, 8, 16, 16)` | 32×32×128 |
    | `inception_block(64, 64, 96, 16, 48, 32)` | 32×32×240 |
    | `MaxPool(3, stride=2, padding="SAME")` | 16×16×240 |
    | `inception_block(96, 48, 104, 8, 24, 32)` | 16×16×256 |
    | `GlobalAvgPool`, `Dropout(dropout)`, `Dense(num_classes)` (logits) | num_classes |

    GoogLeNet's blocks 3a, 3b and 4a at half width, without the auxiliary
    classifiers (233,594 parameters with 10 classes). With `dropout > 0`,
    training needs `apply(..., key=key, train=True)`.
    """
    model = serial(
        Conv2D(64, 3, padding="SAME"), activations.relu,
        inception_block(32, 48, 64, 8, 16, 16),
        inception_block(64, 64, 96, 16, 48, 32),
        MaxPool(3, stride=2, padding="SAME"),
        inception_block(96, 48, 104, 8, 24, 32),
        GlobalAvgPool(),
        Dropout(dropout),
        Dense(num_classes),
    )
    return model._replace(name="InceptionNet")
