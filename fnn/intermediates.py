"""Every layer's output of a `serial` model, keyed like the params.

    acts = fnn.intermediates(model, params, state, x)
    # {"0_Dense": (N, 100), "1_relu": (N, 100), "2_Dense": (N, 3)}

Nested `serial`, `concat`, `residual` and `repeat` blocks give nested dicts; the last
entry is the model output.
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


_WALKED = ("serial", "concat", "residual", "repeat")


def _child_params(layer: Layer, params, state, i: int, entry: str):
    """The params and state of child `i` (under `entry`) as `layer.apply` hands them on."""
    if layer.combinator == "repeat":   # copy i: row i of every stacked leaf
        return tuple(jax.tree.map(lambda a: a[i], t) for t in (params, state))
    return params.get(entry, {}), state.get(entry, {})


def _node(layer: Layer, entry, what, parent_params, parent_state, params, state, x, key, train,
          extra):
    """`(intermediates, output)` of one layer: a dict for the combinators walked into, the
    output array for a leaf (a `remat` is its child)."""
    while layer.combinator == "remat":
        layer = layer.children[0][1]
    if layer.combinator in _WALKED:
        return _walk(layer, params, state, x, key, train, extra)
    y, _ = call_child(entry, what, layer, parent_params, parent_state, x, key, train, extra)
    return y, y


def _walk(layer: Layer, params, state, x, key, train, extra):
    """`(dict of the outputs of layer's children, layer's output)` for a walked combinator,
    with the keys `layer.apply` gives its children (serial: one per layer, concat: one per
    branch, residual: two, repeat: one per copy)."""
    kind, pairs = layer.combinator, layer.children
    n_keys = 2 if kind == "residual" else len(pairs)
    outs, ys, inp = {}, [], x
    for i, ((entry, child), k) in enumerate(zip(pairs, _split(key, n_keys))):
        p, s = _child_params(layer, params, state, i, entry)
        if kind == "repeat":   # call_child finds copy i's params under its entry
            parent_p, parent_s = ({entry: p} if p else {}), ({entry: s} if s else {})
        else:
            parent_p, parent_s = params, state
        what = (f"the {entry}, {child.name}" if kind == "residual" else
                f"branch {i}, {child.name}" if kind == "concat" else f"layer {i}, {child.name}")
        outs[entry], y = _node(child, entry, what, parent_p, parent_s, p, s,
                               x if kind in ("serial", "repeat") else inp, k, train, extra)
        if kind in ("serial", "repeat"):
            x = y
        ys.append(y)
    if kind == "residual":
        x = ys[0] + (ys[1] if len(ys) > 1 else inp)
        outs["output"] = x
    elif kind == "concat":   # the branches again (same keys): XLA merges the twin work
        x, _ = layer.apply(params, state, inp, key=key, train=train, **extra)
        outs["output"] = x
    return outs, x


@named("intermediates")
def intermediates(model: Layer, params, state, x, *, key=None, train: bool = False,
                  **kwargs) -> dict:
    """The output of every layer of a `serial` model for the batch `x`.

    **Returns:** a dict keyed `"{index}_{name}"` exactly like `params`, with an
    entry for every layer, parameter-free ones included (`"1_relu"`,
    `"3_Flatten"`). Combinators inside give nested dicts, each ending with its output:
    - a nested `serial`: its own layers' outputs;
    - `residual`: `{"block": ..., "shortcut": ... (if given), "output": block + shortcut}`;
    - `concat`: `{"0_Conv2D": ..., "1_Conv2D": ..., "output": the concatenation}`;
    - `fnn.repeat(layer, n)`: one entry per copy, keyed as in the equivalent `serial`
      (`"0_Dense"`, ..., `"{n-1}_Dense"`), each copy run with its own params;
    - `fnn.remat(layer)`: what `layer` gives (the recomputation changes no value).
    Every other layer gives one array, its output. The last entry (of the innermost
    nested dict) equals `model.apply(params, state, x, key=key, train=train)[0]`.

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
    `["0_Dense", "1_relu", "2_Serial/0_Dense", ..., "5_Residual/block/0_Conv2D", ...,
    "5_Residual/output"]`.

    Use it to restore the order after `jax.jit`: a jitted function returns its
    dicts with sorted keys (`"10_relu"` before `"1_relu"`).
    """
    model = as_layer(model)
    require_serial(model)
    paths: list[str] = []

    def walk(layer, prefix):
        for name, child in layer.children:
            while child.combinator == "remat":
                child = child.children[0][1]
            if child.combinator in _WALKED:
                walk(child, f"{prefix}{name}/")
            else:
                paths.append(f"{prefix}{name}")
        if layer.combinator in ("concat", "residual"):
            paths.append(f"{prefix}output")

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
