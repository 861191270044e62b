"""Precision policies: which dtype params are stored in, which one layers compute in,
and which one the model's output has.

    policy = fnn.precision.get("mixed_bfloat16")
    run    = fnn.precision.apply_policy(model, policy)     # a Layer, same params layout

`apply_policy` rewrites the model's tree (`Layer.children`): every leaf layer casts
its own params and its input to `compute_dtype` before it runs, so gradients flow
back through the casts into params of `param_dtype` (float32 master params under the
mixed policies); normalisation layers and softmax are pinned to float32 (their
statistics and exponentials need its range and precision), and the output is cast
to `output_dtype`. `pin(layer, dtype)` pins any layer (or block) of your own.

Integer inputs (an `Embedding`'s ids) and model state (BatchNorm's running
statistics, float32) are never cast.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._array_checks import to_dtype
from fnn._checks import BadType, BadValue, named
from fnn._util import memoized
from fnn.core import Layer, concat, output_struct, residual, serial
from fnn.precision.loss_scale import LossScale, loss_scale

__all__ = [
    "Policy", "POLICIES", "FLOAT32_LAYERS", "get", "as_policy", "cast_floating", "pin",
    "apply_policy",
]

#: Leaf layers (by `Layer.name`) that compute in float32 under every policy: the
#: normalisation layers (mean and variance of many values) and softmax (exp overflows
#: float16 above 11; bfloat16 keeps 3 significant digits of a probability).
FLOAT32_LAYERS = frozenset({
    "BatchNorm", "LayerNorm", "GroupNorm", "InstanceNorm", "RMSNorm",
    "softmax", "log_softmax", "Softmax", "LogSoftmax",
})


class Policy(NamedTuple):
    """A precision policy (Keras's `mixed_precision.Policy`, with explicit dtypes).

    **Fields:**
    - `param_dtype`: the dtype of the params the optimizer keeps (the master copy).
    - `compute_dtype`: the dtype every layer (except the pinned ones) computes in.
    - `output_dtype`: the dtype of the model's output.
    - `loss_scale`: a `LossScale` (`fnn.precision.loss_scale(...)`) or None: the
      dynamic loss scaling a training step runs (`"mixed_float16"` has one).
    - `float32_layers`: names of leaf layers that compute in float32 whatever
      `compute_dtype` says (`FLOAT32_LAYERS` by default; `frozenset()` for none).
    """

    param_dtype: Any
    compute_dtype: Any
    output_dtype: Any
    loss_scale: LossScale | None = None
    float32_layers: frozenset = FLOAT32_LAYERS

    @property
    def is_float32(self) -> bool:
        """Everything float32 and no loss scaling: the policy changes nothing."""
        return (self.loss_scale is None
                and {self.param_dtype, self.compute_dtype, self.output_dtype}
                == {jnp.dtype(jnp.float32)})


def _policy(name: str) -> Policy:
    f32, bf16, f16 = (jnp.dtype(t) for t in (jnp.float32, jnp.bfloat16, jnp.float16))
    return {"float32": Policy(f32, f32, f32),
            "bfloat16": Policy(bf16, bf16, bf16),
            "mixed_bfloat16": Policy(f32, bf16, f32),
            "mixed_float16": Policy(f32, f16, f32, loss_scale())}[name]


#: The names `get` knows.
POLICIES = ("float32", "bfloat16", "mixed_bfloat16", "mixed_float16")


def _checked(policy: Policy) -> Policy:
    dtypes = []
    for field in ("param_dtype", "compute_dtype", "output_dtype"):
        value = getattr(policy, field)
        dtype = to_dtype(value, "a floating dtype such as jnp.bfloat16 or 'float32'")
        if not jnp.issubdtype(dtype, jnp.floating):
            raise BadValue(f"Policy.{field} must be a floating dtype, got {dtype}.")
        dtypes.append(dtype)
    if policy.loss_scale is not None and not isinstance(policy.loss_scale, LossScale):
        raise BadType(f"Policy.loss_scale must be None or fnn.precision.loss_scale(...), got "
                      f"{policy.loss_scale!r}.")
    if not isinstance(policy.float32_layers, frozenset):
        raise BadType(f"Policy.float32_layers must be a frozenset of layer names, got "
                      f"{policy.float32_layers!r}.")
    return policy._replace(param_dtype=dtypes[0], compute_dtype=dtypes[1],
                           output_dtype=dtypes[2])


def as_policy(name) -> Policy:
    """`get` for a function that names its own errors: a `BadValue`/`BadType` unnamed."""
    if isinstance(name, Policy):
        return _checked(name)
    if isinstance(name, str) and name in POLICIES:
        return _policy(name)
    raise BadValue(f"unknown precision policy {name!r}; expected a fnn.precision.Policy or "
                   f"one of {list(POLICIES)}.")


@named("fnn.precision.get")
def get(name) -> Policy:
    """The policy named `name`, or `name` itself when it is a `Policy` (checked).

    | name               | params   | compute  | output   | loss scaling |
    |--------------------|----------|----------|----------|--------------|
    | `"float32"`        | float32  | float32  | float32  | no           |
    | `"bfloat16"`       | bfloat16 | bfloat16 | bfloat16 | no           |
    | `"mixed_bfloat16"` | float32  | bfloat16 | float32  | no           |
    | `"mixed_float16"`  | float32  | float16  | float32  | `loss_scale()` |

    Under every policy the layers of `FLOAT32_LAYERS` compute in float32 and a
    training step computes the loss in float32.
    """
    return as_policy(name)


def cast_floating(tree, dtype):
    """Every floating leaf of `tree` as `dtype`; integer, bool and key leaves unchanged."""
    def cast(a):
        if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating) and a.dtype != dtype:
            return a.astype(dtype)
        return a
    return jax.tree.map(cast, tree)


class _PinnedApply(NamedTuple):
    """The apply of a pinned layer (a class, so `apply_policy` can tell it apart)."""

    layer: Layer
    dtype: Any

    def __call__(self, params, state, x, *, key=None, train=False, **extra):
        return self.layer.apply(cast_floating(params, self.dtype), state,
                                cast_floating(x, self.dtype), key=key, train=train, **extra)


@named("fnn.precision.pin")
def pin(layer: Layer, dtype) -> Layer:
    """`layer` computing in `dtype` under any policy: its params and floating input
    are cast to `dtype` before it runs, and its output stays in `dtype` (the next
    layer casts it to its own compute dtype). Same name, params and state layout.

    `fnn.serial(conv, fnn.precision.pin(fnn.layers.Dense(10), "float32"))` keeps the
    classifier head in float32 under `"mixed_bfloat16"`. A pinned block (a whole
    `serial`) runs every layer inside it in `dtype`.
    """
    if not isinstance(layer, Layer):
        raise BadType(f"layer must be a fnn.Layer, got {type(layer).__name__}.")
    dtype = to_dtype(dtype, "a floating dtype such as 'float32' or jnp.bfloat16")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise BadValue(f"dtype must be a floating dtype, got {dtype}.")
    if isinstance(layer.apply, _PinnedApply):
        layer = layer.apply.layer
    return Layer(layer.init, _PinnedApply(layer, dtype), layer.name, (), layer.keywords,
                 layer.input_dtype, None)


def _concat_axis(layer: Layer, params, state, x) -> int:
    """The axis `layer` (a `concat`) joins on, read from the trace-time shapes: the one
    where the output differs from the first branch's output (-1 if none does)."""
    entry, first = layer.children[0]
    shape = (1, *x.shape[1:])
    out = output_struct(layer, shape[1:], x.dtype, params, state).shape
    one = output_struct(first, shape[1:], x.dtype, params.get(entry, {}),
                        state.get(entry, {})).shape
    return next((i for i, (a, b) in enumerate(zip(out, one)) if a != b), -1)


def _concat_like(layer: Layer, branches: list[Layer]) -> Layer:
    def apply(params, state, x, *, key=None, train=False, **extra):
        axis = _concat_axis(layer, params, state, x)
        return concat(*branches, axis=axis).apply(params, state, x, key=key, train=train,
                                                  **extra)
    return layer._replace(apply=apply, children=tuple(
        (entry, b) for (entry, _), b in zip(layer.children, branches)))


def _rewrite(layer: Layer, policy: Policy) -> Layer:
    """`layer` with every leaf computing in its dtype under `policy` (see the module)."""
    if isinstance(layer.apply, _PinnedApply):
        return layer
    kind, kids = layer.combinator, [child for _, child in layer.children]
    if kind is None or not kids:
        dtype = jnp.float32 if layer.name in policy.float32_layers else policy.compute_dtype
        return pin(layer, dtype)
    kids = [_rewrite(child, policy) for child in kids]
    if kind == "serial":
        return serial(*kids)._replace(name=layer.name)
    if kind == "residual":
        return residual(*kids)._replace(name=layer.name)
    return _concat_like(layer, kids)


def _with_policy(model: Layer, policy: Policy) -> Layer:
    inner = _rewrite(model, policy)

    def apply(params, state, x, *, key=None, train=False, **extra):
        y, new_state = inner.apply(params, state, x, key=key, train=train, **extra)
        return cast_floating(y, policy.output_dtype), new_state

    return model._replace(apply=apply, children=inner.children)


@named("fnn.precision.apply_policy")
def apply_policy(model: Layer, policy) -> Layer:
    """`model` running under `policy` (a `Policy` or a name for `get`): same `init`,
    params and state layout; `apply` casts each leaf's params and input to its compute
    dtype (float32 for `policy.float32_layers`) and the output to `output_dtype`. The float32
    policy returns `model` itself. Built once per model and policy (memoised), so
    fnn's compiled programs keyed on the model are reused."""
    if not isinstance(model, Layer):
        raise BadType(f"model must be a fnn.Layer, got {type(model).__name__}.")
    policy = as_policy(policy)
    return model if policy.is_float32 else memoized(_with_policy, model, policy)
