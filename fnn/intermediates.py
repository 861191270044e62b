"""Every layer's output of a `serial` model, keyed like the params.

    acts = fnn.intermediates(model, params, state, x)
    # {"0_Dense": (N, 100), "1_relu": (N, 100), "2_Dense": (N, 3)}

Nested `serial` models give nested dicts; the last entry is the model output.
"""
from __future__ import annotations

from collections.abc import Mapping

import jax

from fnn._checks import check_key, check_train, describe_value
from fnn.core import Layer, _accepted_keywords, _call, _check_extra, as_layer, children, combinator

__all__ = ["intermediates", "flatten", "layer_paths"]


def _is_serial(layer: Layer) -> bool:
    """A `serial` model, also one renamed (the zoo's `ResNet20`, `BasicBlock`, ...)."""
    return combinator(layer) == "serial"


def _require_serial(where: str, model: Layer) -> None:
    if not _is_serial(model):
        raise TypeError(
            f"{where}: expected a model built with fnn.serial, got a {model.name!r} "
            f"layer; wrap it: fnn.serial(layer), whose params are "
            f"{{'0_{model.name}': params}}."
        )


def _check_trees(where: str, params, state) -> None:
    for what, tree in (("params", params), ("state", state)):
        if not isinstance(tree, Mapping):
            hint = (" — the (params, state) pair from init? Unpack it: "
                    "params, state = model.init(key, input_shape)"
                    if isinstance(tree, tuple) and len(tree) == 2 else "")
            raise TypeError(f"{where}: {what} must be the dict model.init returns, got "
                            f"{describe_value(tree)}{hint}.")


def _split(key, n: int):
    return [None] * n if key is None else list(jax.random.split(key, n))


def _leaf_keywords(layer: Layer) -> list:
    """The accepted extra keywords of every non-serial layer inside `layer`."""
    if _is_serial(layer):
        return [acc for _, child in children(layer) for acc in _leaf_keywords(child)]
    return [_accepted_keywords(layer.apply)]


def _walk(layer: Layer, params, state, x, key, train, extra):
    outs = {}
    pairs = children(layer)
    for i, ((name, child), k) in enumerate(zip(pairs, _split(key, len(pairs)), strict=True)):
        if _is_serial(child):
            sub, x = _walk(child, params.get(name, {}), state.get(name, {}), x, k, train, extra)
            outs[name] = sub
        else:
            x, _ = _call("intermediates", name, f"layer {i}, {child.name}", child,
                         _accepted_keywords(child.apply), params, state, x, k, train, extra)
            outs[name] = x
    return outs, x


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
    model = as_layer(model, "intermediates")
    _require_serial("intermediates", model)
    _check_trees("intermediates", params, state)
    if key is not None:
        check_key("intermediates", key)
    train = check_train("intermediates", train)
    _check_extra("intermediates", _leaf_keywords(model), kwargs)
    outs, _ = _walk(model, params, state, x, key, train, kwargs)
    return outs


def layer_paths(model: Layer) -> list[str]:
    """The flat paths of `intermediates(model, ...)` in layer order, e.g.
    `["0_Dense", "1_relu", "2_Serial/0_Dense", ...]`.

    Use it to restore the order after `jax.jit`: a jitted function returns its
    dicts with sorted keys (`"10_relu"` before `"1_relu"`).
    """
    model = as_layer(model, "layer_paths")
    _require_serial("layer_paths", model)
    paths: list[str] = []

    def walk(layer, prefix):
        for name, child in children(layer):
            if _is_serial(child):
                walk(child, f"{prefix}{name}/")
            else:
                paths.append(f"{prefix}{name}")

    walk(model, "")
    return paths


def flatten(tree: dict, prefix: str = "") -> dict:
    """A nested intermediates dict as a flat one with "/"-joined keys, in layer order:
    `{"0_Serial": {"0_Dense": a}}` -> `{"0_Serial/0_Dense": a}`."""
    if not isinstance(tree, dict):
        raise TypeError(f"flatten: expected the dict fnn.intermediates returns, got a "
                        f"{type(tree).__name__}.")
    flat = {}
    for name, value in tree.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict):
            flat.update(flatten(value, path + "/"))
        else:
            flat[path] = value
    return flat
