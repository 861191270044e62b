"""Tools for testing layers of your own: `check_layer` runs the layer contract (init
deterministic in its key, jit, vmap, output shape and dtype, finite gradients, eval
without a key), and `fnn.testing.strategies` gives hypothesis strategies for shapes and
layer configurations.

`check_layer` needs only fnn's own dependencies; `fnn.testing.strategies` imports
hypothesis, a test dependency: `pip install fnn[testing]` (or `fnn[dev]`). Importing
`fnn.testing` does not import hypothesis.
"""
from fnn.testing.contract import PROPERTIES, ContractError, Report, check_layer

__all__ = ["check_layer", "ContractError", "Report", "PROPERTIES"]
