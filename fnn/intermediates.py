"""Every layer's output of a `serial` model, keyed like the params.

    acts = fnn.intermediates(model, params, state, x)
    # {"0_Dense": (N, 100), "1_relu": (N, 100), "2_Dense": (N, 3)}

Nested `serial` models give nested dicts; the last entry is the model output.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax

from fnn._array_checks import train_flag
from fnn._checks import BadType, describe_value, labelled, named, require_key
from fnn.core import Layer, as_layer, call_child, require_known_keywords

__all__ = ["intermediates", "flatten", "layer_paths", "require_serial", "require_trees"]


def _is_serial(layer: Layer) -> bool:
    """A `serial` model, also one renamed (the zoo's `ResNet20`, `BasicBlock`, ...)."""
    return layer.combinator == "serial"


def require_serial(model: Layer) -> None:
    """`BadType` unless `model` is a `serial` model (what the per-layer tools walk)."""
    if not _is_serial(model):
        raise BadType(f"expected a model built with fnn.serial, got a {model.name!r} layer; "
                      f"wrap it: fnn.serial(layer), whose params are "
                      f"{{'0_{model.name}': params}}.")


def require_trees(params, state) -> None:
    """`BadType` unless `params` and `state` are dicts (a `(params, state)` pair given as
    params gets a hint)."""
    for what, tree in (("params", params), ("state", state)):
        if not isinstance(tree, Mapping):
            hint = (" — the (params, state) pair from init? Unpack it: "
                    "params, state = model.init(key, input_shape)"
                    if isinstance(tree, tuple) and len(tree) == 2 else "")
            raise BadType(f"{what} must be the dict model.init returns, got "
                          f"{describe_value(tree)}{hint}.")


def _split(key, n: int):
    return [None] * n if key is None else list(jax.random.split(key, n))


def _walk(layer: Layer, params, state, x, key, train, extra):
    outs = {}
    pairs = layer.children
    for i, ((name, child), k) in enumerate(zip(pairs, _split(key, len(pairs)), strict=True)):
        if _is_serial(child):
            sub, x = _walk(child, params.get(name, {}), state.get(name, {}), x, k, train, extra)
            outs[name] = sub
        else:
            x, _ = call_child(name, f"layer {i}, {child.name}", child, params, state, x, k,
                              train, extra)
            outs[name] = x
    return outs, x


@named("intermediates")
def intermediates(model: Layer, params, state, x, *, key=None, train: bool = False,
                  **kwargs) -> dict:
    """The output of every layer of a `serial` model for the batch `x`.

    **Returns:** a dict keyed `"{index}_{name}"` exactly like `params`, with an
    entry for every layer, parameter-free ones included (`"1_relu"`,
    `"3_Flatten"`). A nested `serial` gives a nested dict of its own layers'
    outputs (its last entry is its output); `concat` and `residual` blocks and
    all other layers give one array each, their output. The last entry (of the
    innermost nested dict, if the last layer is a nested `serial`) equals
    `model.apply(params, state, x, key=key, train=train)[0]`.

    The layers run exactly as inside `model.apply` (same per-layer keys, so the
    same dropout masks with the same `key`; extra keywords such as a recurrent
    layer's `lengths` go to the layers that accept them); updated state (BatchNorm
    statistics with `train=True`) is discarded. Pure, so it can be jitted:
    `jax.jit(lambda p, s, x: fnn.intermediates(model, p, s, x))` (a jitted
    function returns dicts with sorted keys, `"10_relu"` before `"2_Dense"`;
    `layer_paths(model)` gives the layer order).
    Flatten the result to `{"0_Dense": ..., "2_Serial/0_Dense": ...}` with
    `from fnn.intermediates import flatten` (`fnn.intermediates` itself is this function).
    """
    model = as_layer(model)
    require_serial(model)
    require_trees(params, state)
    if key is not None:
        require_key(key)
    train = train_flag(train)
    labelled("intermediates.apply", require_known_keywords, model.keywords, kwargs)
    outs, _ = _walk(model, params, state, x, key, train, kwargs)
    return outs


@named("layer_paths")
def layer_paths(model: Layer) -> list[str]:
    """The flat paths of `intermediates(model, ...)` in layer order, e.g.
    `["0_Dense", "1_relu", "2_Serial/0_Dense", ...]`.

    Use it to restore the order after `jax.jit`: a jitted function returns its
    dicts with sorted keys (`"10_relu"` before `"1_relu"`).
    """
    model = as_layer(model)
    require_serial(model)
    paths: list[str] = []

    def walk(layer, prefix):
        for name, child in layer.children:
            if _is_serial(child):
                walk(child, f"{prefix}{name}/")
            else:
                paths.append(f"{prefix}{name}")

    walk(model, "")
    return paths


@named("flatten")
def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested intermediates dict as a flat one with "/"-joined keys, in layer order:
    `{"0_Serial": {"0_Dense": a}}` -> `{"0_Serial/0_Dense": a}`."""
    if not isinstance(tree, dict):
        raise BadType(f"expected the dict fnn.intermediates returns, got a "
                      f"{type(tree).__name__}.")
    flat = {}
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat
