"""fnn: neural networks as pure functions over parameter pytrees, on JAX.

The public face: re-exports only. See README.md for a tour and API.md for the contract.
"""
from fnn import (
    activations,
    augment,
    checkpoint,
    compiler,
    data,
    datasets,
    diagnostics,
    distributed,
    ensemble,
    fused,
    gradcheck,
    initializers,
    interop,
    layers,
    losses,
    metrics,
    models,
    optim,
    precision,
    preprocessing,
    regularizers,
    sources,
    testing,
    train,
)
from fnn.activations import elu, identity, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from fnn.core import Layer, concat, init, output_shape, residual, serial
from fnn.export import export
from fnn.intermediates import intermediates
from fnn.layers.conv import conv_output_size
from fnn.per_example import per_example_grads
from fnn.repeat import remat, repeat
from fnn.summary import summary

__version__ = "0.1.0"

__all__ = [
    "Layer", "serial", "concat", "residual", "init", "output_shape", "summary", "conv_output_size",
    "activations", "datasets", "initializers", "layers", "models", "optim",
    "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax", "log_softmax", "identity",
]
__all__ += ["checkpoint", "preprocessing"]
__all__ += ["losses", "regularizers"]
__all__ += ["gradcheck", "diagnostics", "ensemble", "per_example_grads", "intermediates"]
__all__ += ["distributed", "compiler"]
__all__ += ["data", "fused", "train"]
__all__ += ["metrics", "augment", "repeat", "remat", "testing", "interop", "export", "sources"]
__all__ += ["precision"]
