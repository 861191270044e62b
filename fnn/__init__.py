"""fnn: neural networks as pure functions over parameter pytrees, on JAX.

The public face: re-exports only. See README.md for a tour and API.md for the contract.
"""
from fnn import activations, initializers, layers, models
from fnn.activations import elu, identity, leaky_relu, log_softmax, relu, sigmoid, softmax, tanh
from fnn.core import Layer, concat, output_shape, residual, serial

__version__ = "0.1.0"

__all__ = [
    "Layer", "serial", "concat", "residual", "output_shape",
    "activations", "initializers", "layers", "models",
    "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax", "log_softmax", "identity",
]
