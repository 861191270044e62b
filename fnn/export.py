"""`fnn.export`: a model with its weights as one serialisable `jax.export.Exported`.

    exported = fnn.export(model, params, state, (28, 28, 1))
    blob = exported.serialize()                      # bytes: program and weights
    ...
    exported = jax.export.deserialize(blob)          # needs only jax, not fnn
    logits = exported.call(x)                        # x: (N, 28, 28, 1), any N

The program is `model.apply(params, state, x, train=False)[0]` (inference: dropout
off, BatchNorm on its running statistics) with `params` and `state` embedded as
constants, and the batch size a symbolic dimension `N`.
"""
from __future__ import annotations

from collections.abc import Sequence

import jax
import numpy as np

from fnn._array_checks import example_shape, to_dtype
from fnn._checks import BadType, BadValue, describe_value, named
from fnn.core import Layer
from fnn.layers import use_onednn
from fnn.layers._onednn_conv import enabled as onednn_enabled

__all__ = ["export"]


@named("fnn.export")
def export(model: Layer, params: dict, state: dict, input_shape, *, dtype=None,
           platforms: Sequence[str] | None = None) -> jax.export.Exported:
    """Export `model` with `params` and `state` for inference, batch size symbolic.

    **Arguments:**
    - `model`, `params`, `state`: a fnn model and its values (from `init`, `fit`, a
      checkpoint or `fnn.interop.from_torch`).
    - `input_shape`: one example's shape, e.g. `(28, 28, 1)`; the exported function
      takes `x: (N, *input_shape)` for any `N >= 1`.
    - `dtype`: the input dtype (default: the model's, float32; int32 for `Embedding`).
    - `platforms`: where the program may run, e.g. `("cpu", "cuda")` (default: the
      platform JAX runs on now).

    **Returns** a `jax.export.Exported`: `.call(x)` runs it, `.serialize()` gives bytes
    that `jax.export.deserialize` reads back in a process that has only jax (the
    weights are inside). `.in_avals`/`.out_avals` show the shapes, with `N` symbolic.

    **Raises** `TypeError`/`ValueError` for a model that is no Layer, a bad shape or
    dtype, or params that do not fit the model (the model's own error, at trace time).
    """
    if not isinstance(model, Layer):
        raise BadType(f"model must be a fnn.Layer, got {describe_value(model)}.")
    shape = example_shape(input_shape, "(d1, ..., dk), one example without the batch axis")
    dtype = model.input_dtype if dtype is None else to_dtype(dtype)
    if platforms is not None and (isinstance(platforms, str) or not all(
            isinstance(p, str) for p in platforms)):
        raise BadType(f"platforms must be a sequence of names such as ('cpu', 'cuda'), got "
                      f"{platforms!r}.")
    for name, tree in (("params", params), ("state", state)):
        if not isinstance(tree, dict):
            raise BadType(f"{name} must be a dict (from model.init), got {describe_value(tree)}.")
    weights = jax.tree.map(np.asarray, (params, state))

    def infer(x):
        p, s = weights
        return model.apply(p, s, x, train=False)[0]

    (batch,) = jax.export.symbolic_shape("N")
    x = jax.ShapeDtypeStruct((batch, *shape), dtype)
    # oneDNN convolutions are FFI calls of the fnn_onednn extension, which a process with
    # only jax cannot run: trace XLA's own convolutions, then restore the switch.
    was_on = onednn_enabled()
    use_onednn(False)
    try:
        return jax.export.export(jax.jit(infer), platforms=platforms)(x)
    except jax.errors.InconclusiveDimensionOperation as e:
        raise BadValue(f"the model cannot run with a symbolic batch size N: "
                       f"{str(e).splitlines()[0]}") from None
    finally:
        use_onednn(True if was_on else None)
