"""Layer constructors; each returns a `fnn.Layer` (see API.md §1 for layouts)."""
from fnn.layers.activation import PReLU
from fnn.layers.dense import Dense, Flatten, Maxout
from fnn.layers.norm import LayerNorm

__all__ = ["Dense", "Flatten", "LayerNorm", "Maxout", "PReLU"]
