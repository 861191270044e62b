"""Mixed precision: policies (which dtype params, computations and outputs have) and
dynamic loss scaling (API.md §6.4).

- `policy`: `Policy`, `get(name)`, `pin(layer, dtype)`, `apply_policy(model, policy)`.
- `loss_scale`: `loss_scale(...)` (GradScaler's schedule) and `scaled(optimizer, ...)`,
  the optimizer wrapper that holds its state and skips non-finite steps.

`make_train_step(..., precision=)`, `fit(..., precision=)`, `evaluate`/`predict`
(`precision=`) and `fnn train --precision NAME` take a policy or its name.
"""
from fnn.precision.loss_scale import LossScale, LossScaleState, loss_scale, scaled
from fnn.precision.policy import (
    FLOAT32_LAYERS,
    POLICIES,
    Policy,
    apply_policy,
    as_policy,
    cast_floating,
    get,
    pin,
)

__all__ = [
    "Policy", "POLICIES", "FLOAT32_LAYERS", "get", "as_policy", "pin", "apply_policy",
    "cast_floating",
    "LossScale", "LossScaleState", "loss_scale", "scaled",
]
