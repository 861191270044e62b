"""LeNet-5 (LeCun et al. 1998)."""
from __future__ import annotations

from collections.abc import Callable

from fnn import activations
from fnn._array_checks import example_shape, require_array, require_key_and_train
from fnn._checks import BadValue, checked, lookup, named, positive_int, shape_str
from fnn.core import Layer, serial
from fnn.layers.conv import Conv2D
from fnn.layers.dense import Dense, Flatten
from fnn.layers.pool import AvgPool

__all__ = [
    "lenet5",
]


def _conv_padded_to(size: int, features: int, kernel: int) -> Layer:
    """C1: `Conv2D(features, kernel)` on the input zero-padded (centred; an odd
    extra cell goes bottom/right) up to `size`×`size`.

    The padding is the convolution's own `padding` argument, chosen from the
    input's shape at trace time, not a separate `jnp.pad`: on XLA:CPU a pad
    before a VALID convolution measured slower per LeNet-5 training step (see
    benchmarks/RESULTS.md, "Measurements quoted from docstrings").
    Params are those of the `Conv2D`.
    """
    valid = Conv2D(features, kernel, padding="VALID")

    @named("lenet5")
    def init(key, input_shape):
        h, w, c = example_shape(input_shape, "(H, W, C), e.g. (28, 28, 1) or (32, 32, 1)",
                                rank=3)
        return valid.init(key, (max(h, size), max(w, size), c))

    @named("lenet5")
    def check(x, key, train) -> None:
        require_key_and_train(key, train)
        require_array(x)
        if x.ndim != 4:
            raise BadValue(f"expected a rank-4 input (N, H, W, C), got shape "
                           f"{shape_str(x.shape)}.")

    def apply(params, state, x, *, key=None, train=False):
        check(x, key, train)
        ph, pw = max(size - x.shape[1], 0), max(size - x.shape[2], 0)
        conv = valid if ph == pw == 0 else Conv2D(
            features, kernel, padding=((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
        return conv.apply(params, state, x)

    return Layer(init, apply, "Conv2D")


@checked("lenet5", num_classes=positive_int)
def lenet5(num_classes: int = 10, *, activation: str | Callable = activations.tanh) -> Layer:
    """LeNet-5 for 32×32×1 images, and for 28×28×1 (MNIST) padded to 32×32.

    The classic layout (without the original's trainable pooling coefficients,
    partial C3 connections and RBF output, as in every modern re-implementation):

    | layer | output (32×32×1 in) | params |
    |---|---|---|
    | C1 `Conv2D(6, 5)` + tanh on the input zero-padded to 32×32 (a) | 28×28×6 | 156 |
    | S2 `AvgPool(2)` | 14×14×6 | 0 |
    | C3 `Conv2D(16, 5, padding="VALID")` + tanh | 10×10×16 | 2,416 |
    | S4 `AvgPool(2)` | 5×5×16 | 0 |
    | C5 `Conv2D(120, 5, padding="VALID")` + tanh, `Flatten` | 120 | 48,120 |
    | F6 `Dense(84)` + tanh | 84 | 10,164 |
    | output `Dense(num_classes)` (logits) | 10 | 850 |

    (a) centred: 28×28 gets 2 on each side; the padding is C1's own.

    61,706 parameters with 10 classes, for 28×28×1 and 32×32×1 inputs alike:
    padding a 28×28 image by 2 is exactly C1 with `padding=2` ("SAME"), as LeCun
    centred the 28×28 MNIST digits in a 32×32 field. Inputs larger than 32×32
    work too (C5 then has a spatial extent and F6 gets more inputs).

    **Arguments:** `num_classes`; `activation` (default tanh, as in the paper;
    `fnn.relu` is a common modern choice).
    """
    act = lookup(activations.get, activation)
    model = serial(
        _conv_padded_to(32, 6, 5), act,
        AvgPool(2),
        Conv2D(16, 5, padding="VALID"), act,
        AvgPool(2),
        Conv2D(120, 5, padding="VALID"), act,
        Flatten(),
        Dense(84), act,
        Dense(num_classes),
    )
    return model._replace(name="LeNet5")
