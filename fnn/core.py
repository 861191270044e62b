"""The layer abstraction and its combinators: `Layer`, `serial`, `concat`, `residual`.

A layer is a pair of pure functions (plus a name):

    init(key, input_shape) -> (params, state)
    apply(params, state, x, *, key=None, train=False) -> (y, new_state)

`input_shape` is the shape of ONE example (no batch axis); `apply` takes a batch
`(N, *input_shape)`. `params` and `state` are plain nested dicts of arrays.
Shapes flow between layers with `jax.eval_shape`, never hand-kept arithmetic.

What the combinators and tools need to know about a layer is in its fields
(`children`, `keywords`, `input_dtype`, `combinator`): they read those, never a
function's signature, name or attributes.

A child without params (or state) gets no entry in its parent's dicts and is
called with `{}`. When an entry is missing for a child that needs one (params
from another model, or `{}`), the child fails on the empty dict; the combinator
then confirms with `jax.eval_shape` of the child's `init` (only on this error
path) that the child does have params, and raises a `ValueError` naming the
missing entry (`"serial.apply: params has no entry '0_Dense' ..."`).

Extra keyword arguments of `apply` (recurrent layers take `lengths`) go from a
combinator to every child whose `keywords` declare them; a keyword no child
declares is a `TypeError` (so a typo is never silently swallowed).
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn import compiler
from fnn._array_checks import (
    MissingEntryError,
    example_shape,
    require_key_and_train,
    to_dtype,
)
from fnn._checks import (
    BadType,
    BadValue,
    describe_value,
    integer,
    labelled,
    named,
)
from fnn._combinator_checks import (
    apply_args,
    array_output,
    init_args,
    raise_missing_entry,
    require_concat_shapes,
    require_known_keywords,
    require_residual_shapes,
)
from fnn._util import memoized

__all__ = [
    "Layer", "children", "combinator", "input_dtype", "as_layer", "union_keywords",
    "require_known_keywords", "call_child", "output_shape", "output_struct", "init", "serial",
    "concat", "residual",
]


class Layer(NamedTuple):
    """A layer or a whole model: two pure functions, a name, and what combinators read.

    **Fields:**
    - `init(key, input_shape) -> (params, state)`: `input_shape` excludes the batch axis.
    - `apply(params, state, x, *, key=None, train=False) -> (y, new_state)`:
      `x` has shape `(N, *input_shape)`.
    - `name`: used for parameter-tree keys (`"{index}_{name}"`) and summaries.
    - `children`: a combinator's `(key, child)` pairs, `key` being where the child's
      params/state live in the parent's dicts (a child without params has no entry
      there); `()` for a leaf. `fnn.summary` and `fnn.intermediates` walk them.
    - `keywords`: the keyword arguments `apply` takes besides `key` and `train`
      (`frozenset({"lengths"})` for the recurrent layers); `None` means any. A
      combinator passes an extra keyword to the children that declare it and rejects
      one that none declares, so a layer of your own whose apply takes a keyword
      declares it: `Layer(init, apply, "Masked", keywords=frozenset({"mask"}))`.
    - `input_dtype`: the dtype `apply` expects, float32 unless a layer says otherwise
      (`Embedding`: int32); combinators and `fnn.output_shape` probe shapes with it.
    - `combinator`: `"serial"`, `"concat"` or `"residual"` for the layers those
      build, else None.

    `Layer(init, apply, name)` is a leaf on float input whose apply takes only `key`
    and `train`. Rename a model with `model._replace(name="ResNet20")`, which keeps
    its fields; `Layer(model.init, model.apply, "ResNet20")` would be an opaque leaf.
    Layers are hashable (fnn memoises compiled programs on them).
    """

    init: Callable
    apply: Callable
    name: str
    children: tuple[tuple[str, Layer], ...] = ()
    keywords: frozenset[str] | None = frozenset()
    input_dtype: Any = jnp.float32
    combinator: str | None = None

    def __repr__(self) -> str:   # the children by key, not their whole trees
        inside = f", children={[key for key, _ in self.children]}" if self.children else ""
        return f"Layer(init={self.init!r}, apply={self.apply!r}, name={self.name!r}{inside})"


def children(layer: Layer) -> tuple[tuple[str, Layer], ...]:
    """`layer.children`: the `(key, child)` pairs of a combinator, else `()`."""
    return layer.children


def combinator(layer: Layer) -> str | None:
    """`layer.combinator`: `"serial"`, `"concat"` or `"residual"`, also for a model
    renamed with `_replace(name=...)` (as the model zoo does); else None."""
    return layer.combinator


def input_dtype(layer: Layer):
    """`layer.input_dtype`: the dtype a layer expects as input (float32 unless it says)."""
    return layer.input_dtype


def as_layer(obj: Any) -> Layer:
    """A `Layer` as is; a plain callable `f(x)` as a parameter-free layer named after it.
    Anything else (a class, a constructor not called, a list) is a `BadType`, for the
    function that was given `obj` to name."""
    if isinstance(obj, Layer):
        return obj
    annotations = getattr(getattr(obj, "func", obj), "__annotations__", None)  # partial: func's
    constructor = isinstance(annotations, dict) and annotations.get("return") in (Layer, "Layer")
    if isinstance(obj, type) or not callable(obj) or constructor:
        hint = ("Wrap a list of layers in fnn.serial(*layers)." if isinstance(obj, (list, tuple))
                else "Did you forget to call the constructor, e.g. fnn.layers.Flatten()?")
        raise BadType(f"expected a fnn.Layer or a callable f(x) -> y, got "
                      f"{describe_value(obj)}. {hint}")
    fn = obj
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None)
    name = name or type(fn).__name__

    def init(key, input_shape):
        del key, input_shape
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params
        labelled(name, require_key_and_train, key, train)
        return fn(x), state

    return Layer(init, apply, name)


@named("serial/concat/residual")
def _as_layers(*objs) -> tuple[Layer, ...]:
    """The layers given to a combinator, plain callables wrapped by `as_layer`."""
    return tuple(as_layer(obj) for obj in objs)


# ---------------------------------------------------------------------------
# calling children: keywords, missing entries


def union_keywords(keyword_sets: Iterable[frozenset[str] | None]) -> frozenset[str] | None:
    """The keywords that at least one of the sets declares (None: one takes any)."""
    known: set[str] = set()
    for keywords in keyword_sets:
        if keywords is None:
            return None
        known |= keywords
    return frozenset(known)


def call_child(entry: str, what: str, layer: Layer, params, state, x, key, train, extra: dict):
    """`layer.apply` on the params/state stored under `entry` (`{}` when there is none),
    with the keywords of `extra` that the layer declares; `what` describes the child
    in messages ("layer 0, Dense"). A child that fails on a missing entry it needs is a
    `MissingEntry` ("params has no entry '0_Dense' (for layer 0, Dense), got ...")."""
    keywords = layer.keywords
    kwargs = extra if keywords is None else {k: v for k, v in extra.items() if k in keywords}
    p, s = params.get(entry), state.get(entry)
    try:
        return layer.apply({} if p is None else p, {} if s is None else s, x, key=key,
                           train=train, **kwargs)
    except (KeyError, MissingEntryError) as err:
        if p is None or s is None:
            raise_missing_entry(entry, what, layer, params, state, p is None, s is None, x, err)
        raise


def _split(key, n: int):
    return [None] * n if key is None else list(jax.random.split(key, n))


def _child_key(index: int, layer: Layer) -> str:
    return f"{index}_{layer.name}"


def _init_children(pairs, keys, input_shape, params: dict, state: dict) -> None:
    """`init` of each `(entry, child)` with its key of `keys`; non-empty results stored
    under `entry` of `params`/`state`."""
    for (entry, child), k in zip(pairs, keys):
        p, s = child.init(k, input_shape)
        if p:
            params[entry] = p
        if s:
            state[entry] = s


# ---------------------------------------------------------------------------
# shapes and compiled initialisation


def output_shape(layer: Layer, input_shape, dtype=None, params=None, state=None):
    """Per-example output shape of `layer` for one example of `input_shape`.

    Computed with `jax.eval_shape` (no FLOPs are spent). If `params`/`state` are
    given they are used; otherwise the layer's `init` is traced abstractly. A layer
    whose output is a tuple (`LSTM(..., return_state=True)`: `(y, (h, c))`) gets the
    same tuple of shapes.
    """
    out = output_struct(layer, input_shape, dtype, params, state)
    # a layer may return a tuple (a recurrent layer with return_state=True: (y, carry)):
    # then the same tuple of per-example shapes
    return jax.tree.map(lambda s: s.shape[1:], out) if isinstance(out, tuple) else out.shape[1:]


@named("output_shape")
def output_struct(layer: Layer, input_shape, dtype=None, params=None, state=None):
    """Like `output_shape` but returns the batched `jax.ShapeDtypeStruct` (batch 1)."""
    (layer,) = _as_layers(layer)
    input_shape = example_shape(input_shape, "(d1, ..., dk)")
    dtype = layer.input_dtype if dtype is None else to_dtype(dtype)
    if params is None or state is None:
        params, state = jax.eval_shape(lambda: layer.init(jax.random.PRNGKey(0), input_shape))
    x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
    return jax.eval_shape(lambda p, s, x: layer.apply(p, s, x)[0], params, state, x)


def _compiled_init(layer: Layer, input_shape: tuple):
    return compiler.jit(lambda key: layer.init(key, input_shape), compiler.init_options())


@named("init")
def init(layer, key, input_shape):
    """`layer.init(key, input_shape)` compiled as one program: `(params, state)`.

    The values of calling `layer.init` directly (same keys, same initialisers)
    up to float rounding (XLA fuses the scaling of the random draws), but much
    faster on a cold start: called eagerly, every initialiser op is compiled on
    its own, while here the whole initialisation is one XLA program compiled with
    `fnn.compiler.init_options()`, reused for the same layer and shape (see
    benchmarks/RESULTS.md, "Measurements quoted from docstrings"). Bad shapes and
    keys raise the layer's own errors (they are checked while tracing).
    """
    (layer,) = _as_layers(layer)
    shape = init_args(key, input_shape)
    return memoized(_compiled_init, layer, shape)(key)


# ---------------------------------------------------------------------------
# combinators


@named("serial")
def serial(*layers) -> Layer:
    """Compose layers in order: `serial(a, b, c)(x) = c(b(a(x)))`.

    Plain callables (`fnn.relu`, `jnp.tanh`, a lambda) count as layers without
    parameters. Parameters and state are dicts keyed `"{index}_{name}"`
    (e.g. `{"0_Dense": {...}, "2_Dense": {...}}`); a layer with no params gets no
    key in `params`, one with no state no key in `state`. `init` and `apply`
    split the `key` into one key per layer.
    """
    if not layers:
        raise BadValue("expected at least one layer, got none.")
    layers = _as_layers(*layers)
    pairs = tuple((_child_key(i, layer), layer) for i, layer in enumerate(layers))
    keywords = union_keywords(layer.keywords for layer in layers)

    @named("serial.init")
    def init(key, input_shape):
        params, state = {}, {}
        shape, dtype = init_args(key, input_shape), layers[0].input_dtype
        for i, ((entry, layer), k) in enumerate(zip(pairs, _split(key, len(layers)))):
            p, s = layer.init(k, shape)
            if p:
                params[entry] = p
            if s:
                state[entry] = s
            out = output_struct(layer, shape, dtype, p, s)
            if isinstance(out, tuple) and i < len(layers) - 1:
                raise BadType(f"layer {i} ({layer.name}) returns a tuple, which layer {i + 1} "
                              "cannot take; only the last layer of a serial may (e.g. a "
                              "recurrent layer built with return_state=True).")
            if not isinstance(out, tuple):
                shape, dtype = out.shape[1:], out.dtype
        return params, state

    @named("serial.apply")
    def apply(params, state, x, *, key=None, train=False, **extra):
        apply_args("serial", keywords, params, state, key, train, extra)
        new_state = dict(state)
        for i, ((entry, layer), k) in enumerate(zip(pairs, _split(key, len(layers)))):
            x, s = call_child(entry, f"layer {i}, {layer.name}", layer, params, state, x, k,
                              train, extra)
            if s:
                new_state[entry] = s
        return x, new_state

    return Layer(init, apply, "Serial", pairs, keywords, layers[0].input_dtype, "serial")


@named("concat")
def concat(*branches, axis: int = -1) -> Layer:
    """Apply every branch to the same input and concatenate the outputs on `axis`.

    Params/state keyed `"{index}_{name}"` per branch, as in `serial`. All
    branches must agree on every output axis except `axis` (no broadcasting), and
    `axis` must name a non-batch axis of the branch outputs: both checked at init
    and again in apply, on the outputs' trace-time shapes (an input of another size
    can make branches disagree), raising ValueError with the branch names and shapes.
    """
    if not branches:
        raise BadValue("expected at least one branch, got none.")
    axis = integer("axis", axis)
    branches = _as_layers(*branches)
    pairs = tuple((_child_key(i, b), b) for i, b in enumerate(branches))
    names = [entry for entry, _ in pairs]
    keywords = union_keywords(b.keywords for b in branches)

    @named("concat")
    def init(key, input_shape):
        input_shape = labelled("concat.init", init_args, key, input_shape)
        params, state = {}, {}
        _init_children(pairs, _split(key, len(pairs)), input_shape, params, state)
        shapes = [output_shape(b, input_shape, None, params.get(entry, {}), state.get(entry, {}))
                  for entry, b in pairs]
        require_concat_shapes(axis, names, shapes, input_shape, batched=False)
        return params, state

    @named("concat.apply")
    def apply(params, state, x, *, key=None, train=False, **extra):
        apply_args("concat", keywords, params, state, key, train, extra)
        outs, new_state = [], dict(state)
        for i, ((entry, b), k) in enumerate(zip(pairs, _split(key, len(branches)))):
            what = f"branch {i}, {b.name}"
            y, s = call_child(entry, what, b, params, state, x, k, train, extra)
            outs.append(array_output(what, y))
            if s:
                new_state[entry] = s
        require_concat_shapes(axis, names, [y.shape for y in outs], x.shape, batched=True)
        return jnp.concatenate(outs, axis=axis), new_state

    return Layer(init, apply, "Concat", pairs, keywords, branches[0].input_dtype, "concat")


def residual(block, shortcut=None) -> Layer:
    """`y = block(x) + shortcut(x)`, with the identity as default shortcut (ResNet).

    Params/state are keyed `"block"` and `"shortcut"` (only when non-empty).
    The two paths must produce exactly the same shape, without broadcasting:
    checked at init and again in apply on the trace-time shapes (an input of
    another size can make them differ), raising ValueError naming both shapes.
    """
    block, *short = _as_layers(block, *(() if shortcut is None else (shortcut,)))
    pairs = (("block", block), *(("shortcut", s) for s in short))
    keywords = union_keywords(layer.keywords for _, layer in pairs)

    @named("residual")
    def init(key, input_shape):
        input_shape = labelled("residual.init", init_args, key, input_shape)
        params, state = {}, {}
        _init_children(pairs, _split(key, 2), input_shape, params, state)
        outs = [output_shape(layer, input_shape, None, params.get(entry, {}),
                             state.get(entry, {})) for entry, layer in pairs]
        require_residual_shapes(outs[0], outs[-1] if short else input_shape, input_shape)
        return params, state

    @named("residual.apply")
    def apply(params, state, x, *, key=None, train=False, **extra):
        apply_args("residual", keywords, params, state, key, train, extra)
        new_state, outs = dict(state), []
        for (entry, layer), k in zip(pairs, _split(key, 2)):
            what = f"the {entry}, {layer.name}"
            y, s = call_child(entry, what, layer, params, state, x, k, train, extra)
            outs.append(array_output(what, y))
            if s:
                new_state[entry] = s
        y, z = outs if short else (outs[0], x)
        require_residual_shapes(y.shape, z.shape, x.shape)
        return y + z, new_state

    return Layer(init, apply, "Residual", pairs, keywords, block.input_dtype, "residual")
