"""Hypothesis strategies for example shapes and layer configurations.

Each layer strategy draws a `LayerCase(layer, input_shape)`: a layer with random valid
settings and the shape of one example it takes, ready for `check_layer`:

    from hypothesis import given
    from fnn.testing import check_layer, strategies

    @given(strategies.layers())
    def test_every_layer_keeps_the_contract(case):
        check_layer(case.layer, case.input_shape)

Needs hypothesis (`pip install fnn[testing]`), imported with this module.
"""
from __future__ import annotations

from typing import NamedTuple

from hypothesis import strategies as st

from fnn import layers as L
from fnn.core import Layer

__all__ = ["LayerCase", "shapes", "dense_layers", "conv_layers", "norm_layers",
           "dropout_layers", "layers"]


class LayerCase(NamedTuple):
    """A drawn layer and the shape of one example it takes (no batch axis)."""

    layer: Layer
    input_shape: tuple


def shapes(*, min_rank: int = 1, max_rank: int = 3, min_side: int = 1,
           max_side: int = 5) -> st.SearchStrategy:
    """Example shapes: tuples of `min_rank..max_rank` sizes in `min_side..max_side`."""
    return st.integers(min_rank, max_rank).flatmap(
        lambda r: st.tuples(*[st.integers(min_side, max_side)] * r))


@st.composite
def dense_layers(draw, *, max_features: int = 8) -> LayerCase:
    """`Dense(features, use_bias=...)` on `(in_features,)` or `(T, in_features)`."""
    features = draw(st.integers(1, max_features))
    lead = draw(shapes(min_rank=0, max_rank=1))
    layer = L.Dense(features, use_bias=draw(st.booleans()))
    return LayerCase(layer, (*lead, draw(st.integers(1, max_features))))


@st.composite
def conv_layers(draw, *, max_features: int = 4) -> LayerCase:
    """`Conv2D` with random features, kernel, stride and padding on `(H, W, C)` images
    big enough for the kernel."""
    kernel = draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["SAME", "VALID"]))
    layer = L.Conv2D(draw(st.integers(1, max_features)), kernel,
                     stride=draw(st.integers(1, 2)), padding=padding,
                     use_bias=draw(st.booleans()))
    side = st.integers(kernel, kernel + 4)
    return LayerCase(layer, (draw(side), draw(side), draw(st.integers(1, max_features))))


@st.composite
def norm_layers(draw) -> LayerCase:
    """A normalisation layer (LayerNorm with its switches, RMSNorm, GroupNorm with a group
    count dividing the channels, InstanceNorm, BatchNorm) on a shape it takes."""
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 3))
    lead = draw(shapes(min_rank=0, max_rank=2, max_side=4))
    eps = draw(st.sampled_from([1e-5, 1e-3]))
    kind = draw(st.sampled_from(["layer", "rms", "group", "instance", "batch"]))
    if kind == "instance" and not lead:
        lead = (draw(st.integers(1, 4)),)
    layer = {
        "layer": lambda: L.LayerNorm(eps=eps, use_scale=draw(st.booleans()),
                                     use_bias=draw(st.booleans())),
        "rms": lambda: L.RMSNorm(eps=eps),
        "group": lambda: L.GroupNorm(groups, eps=eps),
        "instance": lambda: L.InstanceNorm(eps=eps),
        "batch": lambda: L.BatchNorm(eps=eps, decay=draw(st.floats(0.0, 0.99))),
    }[kind]()
    return LayerCase(layer, (*lead, channels))


@st.composite
def dropout_layers(draw) -> LayerCase:
    """`Dropout(rate)` or `DropPath(rate)` with `rate` in `[0, 0.9]`, on any shape."""
    make = draw(st.sampled_from([L.Dropout, L.DropPath]))
    return LayerCase(make(draw(st.floats(0.0, 0.9))), draw(shapes()))


def layers() -> st.SearchStrategy:
    """Any of the strategies above."""
    return st.one_of(dense_layers(), conv_layers(), norm_layers(), dropout_layers())
