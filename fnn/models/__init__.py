"""The model zoo: functions returning a whole model as a `fnn.Layer`."""
from fnn.models.mlp import mlp

__all__ = ["mlp"]
