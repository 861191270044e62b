"""The layer abstraction and its combinators: `Layer`, `serial`, `concat`, `residual`.

A layer is a pair of pure functions (plus a name):

    init(key, input_shape) -> (params, state)
    apply(params, state, x, *, key=None, train=False) -> (y, new_state)

`input_shape` is the shape of ONE example (no batch axis); `apply` takes a batch
`(N, *input_shape)`. `params` and `state` are plain nested dicts of arrays.
Shapes flow between layers with `jax.eval_shape`, never hand-kept arithmetic.

A child without params (or state) gets no entry in its parent's dicts and is
called with `{}`. When an entry is missing for a child that needs one (params
from another model, or `{}`), the child fails on the empty dict; the combinator
then confirms with `jax.eval_shape` of the child's `init` (only on this error
path) that the child does have params, and raises a `ValueError` naming the
missing entry (`"serial.apply: params has no entry '0_Dense' ..."`).

Layers whose `apply` takes extra keyword arguments (recurrent layers take
`lengths`) receive them from the combinators: a combinator passes each extra
keyword to every child that accepts it, and raises `TypeError` for a keyword no
child accepts (so a typo is never silently swallowed).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn import compiler
from fnn._checks import (
    MissingEntryError,
    as_dtype,
    check_input_shape,
    check_key,
    check_key_and_train,
    check_params,
    describe_value,
    keys_str,
    shape_str,
)
from fnn._util import memoized


class Layer(NamedTuple):
    """A layer or a whole model: two pure functions and a name.

    **Fields:**
    - `init(key, input_shape) -> (params, state)`: `input_shape` excludes the batch axis.
    - `apply(params, state, x, *, key=None, train=False) -> (y, new_state)`:
      `x` has shape `(N, *input_shape)`.
    - `name`: used for parameter-tree keys (`"{index}_{name}"`) and summaries.

    A layer that needs a non-float input (e.g. `Embedding`) marks its `init` with
    an attribute `input_dtype`; combinators use it to probe shapes.
    """

    init: Callable
    apply: Callable
    name: str


# ---------------------------------------------------------------------------
# helpers shared by the combinators


def input_dtype(layer: Layer):
    """The dtype a layer expects as input (float32 unless its init says otherwise)."""
    return getattr(layer.init, "input_dtype", jnp.float32)


def _mark_input_dtype(init: Callable, first: Layer) -> Callable:
    dtype = getattr(first.init, "input_dtype", None)
    if dtype is not None:
        init.input_dtype = dtype
    return init


def _returns_layer(fn) -> bool:
    """True for a layer constructor such as `Flatten` (passed where `Flatten()` was meant)."""
    try:
        return inspect.signature(fn).return_annotation in (Layer, "Layer")
    except (TypeError, ValueError):
        return False


def as_layer(obj: Any, where: str = "serial/concat/residual") -> Layer:
    """A `Layer` as is; a plain callable `f(x)` as a parameter-free layer. Anything else
    is a TypeError naming `where` (the function that was given `obj`)."""
    if isinstance(obj, Layer):
        return obj
    if isinstance(obj, type) or not callable(obj) or _returns_layer(obj):
        hint = ("Wrap a list of layers in fnn.serial(*layers)." if isinstance(obj, (list, tuple))
                else "Did you forget to call the constructor, e.g. fnn.layers.Flatten()?")
        raise TypeError(f"{where}: expected a fnn.Layer or a callable f(x) -> y, got "
                        f"{describe_value(obj)}. {hint}")
    fn = obj
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", None)
    name = name or type(fn).__name__

    def init(key, input_shape):
        del key, input_shape
        return {}, {}

    def apply(params, state, x, *, key=None, train=False):
        del params
        check_key_and_train(name, key, train)
        return fn(x), state

    return Layer(init, apply, name)


def _accepted_keywords(apply: Callable) -> frozenset[str] | None:
    """Keyword arguments an apply takes besides key/train; None means any (**kwargs).

    A combinator's apply takes `**extra` but passes on only what its children take:
    it states that set as `apply.accepted_keywords` (see `_union_keywords`).
    """
    if hasattr(apply, "accepted_keywords"):
        return apply.accepted_keywords
    try:
        params = inspect.signature(apply).parameters.values()
    except (TypeError, ValueError):
        return frozenset()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY) - {
        "key", "train"}


def _call(where: str, entry: str, what: str, layer: Layer, accepted, params, state, x, key,
          train, extra: dict):
    """Apply the child stored under `entry` (`what` describes it, e.g. "layer 0, Dense")."""
    kwargs = extra if accepted is None else {k: v for k, v in extra.items() if k in accepted}
    p, s = params.get(entry), state.get(entry)
    try:
        return layer.apply({} if p is None else p, {} if s is None else s, x, key=key,
                           train=train, **kwargs)
    except (KeyError, MissingEntryError) as err:
        if p is None or s is None:
            _raise_missing_entry(where, entry, what, layer, params, state, p is None,
                                 s is None, x, err)
        raise


def _raise_missing_entry(where, entry, what, layer, params, state, no_params, no_state, x,
                         err) -> None:
    """Raise a clear error if the child that failed really needs the missing entry.

    Only runs after a child has failed, so its `jax.eval_shape` of `init` costs
    nothing on the normal path. Returns (letting the original error through)
    when the child has neither params nor state to miss.
    """
    try:
        needs_p, needs_s = jax.eval_shape(
            lambda: layer.init(jax.random.PRNGKey(0), tuple(x.shape[1:])))
    except Exception:  # the child cannot even init: its own error says more
        return
    for kind, missing, tree, needed in (("params", no_params, params, needs_p),
                                        ("state", no_state, state, needs_s)):
        if missing and needed:
            raise MissingEntryError(
                f"{where}: {kind} has no entry {entry!r} (for {what}), got {keys_str(tree)}. "
                f"Pass the {kind} this model's init returned: "
                "params, state = model.init(key, input_shape)."
            ) from err


def _check_apply_args(where: str, params, state, key, train) -> None:
    check_params(where, params, ())
    check_params(where, state, (), what="state")
    check_key_and_train(where, key, train)   # named at the combinator, before any child runs


def _check_init_args(where: str, key, input_shape) -> tuple[int, ...]:
    """The input shape as a tuple; a given key checked (None is passed on to the
    children, so a parameter-free model initialises without one)."""
    shape = check_input_shape(where, input_shape, "(d1, ..., dk)")
    if key is not None:
        check_key(where, key)
    return shape


def _union_keywords(accepted_sets) -> frozenset[str] | None:
    """The keywords that at least one child accepts (None: a child takes any)."""
    known: set[str] = set()
    for acc in accepted_sets:
        if acc is None:
            return None
        known |= acc
    return frozenset(known)


def _check_extra(where: str, accepted_sets, extra: dict) -> None:
    if not extra:
        return
    known = _union_keywords(accepted_sets)
    if known is None:
        return
    unknown = sorted(set(extra) - known)
    if unknown:
        raise TypeError(
            f"{where}.apply: got unexpected keyword argument(s) {unknown}; "
            f"its layers accept {sorted(known) or 'only key and train'}."
        )


def _check_concat_shapes(where: str, axis: int, names, shapes, input_shape, *,
                         batched: bool) -> None:
    """Raise ValueError unless branch outputs of `shapes` concatenate on `axis`.

    `axis` must name a non-batch axis of the outputs, and the outputs must agree on
    every other axis (no broadcasting). `shapes` and `input_shape` are per-example
    (init, `batched=False`) or the shapes of the batched arrays, batch axis first
    (apply, `batched=True`; trace-time shapes, so it also holds under `jit`/`vmap`).
    """
    lead = 1 if batched else 0                           # the batch axis in `shapes`
    rank = len(shapes[0]) - lead                         # per-example rank
    if not (1 <= axis <= rank or -rank <= axis <= -1):
        batched_form = "(" + ", ".join(["N", *map(str, shapes[0][lead:])]) + ")"
        choices = ("axis=1 or axis=-1" if rank == 1 else
                   f"an axis in [1, {rank}] or [-{rank}, -1]")
        raise ValueError(
            f"{where}: axis={axis} is out of range for the branch outputs {batched_form} "
            f"(rank {rank + 1}, from {names[0]}); use {choices} (axis 0 is the batch axis)."
        )
    cat = (axis if axis >= 0 else rank + 1 + axis) - 1 + lead  # index into `shapes`
    first = tuple(shapes[0])
    for name, shp in zip(names[1:], shapes[1:]):
        if len(shp) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(first, shp)) if i != cat
        ):
            raise ValueError(
                f"{where}: branch outputs must match on all axes but axis={axis}; "
                f"got {shape_str(first)} from {names[0]} and {shape_str(shp)} from {name} "
                f"for input {shape_str(input_shape)}."
            )


def _check_output_array(where: str, what: str, y) -> None:
    """Raise TypeError unless a branch's output `y` is an array (`concat` and `residual`
    combine their branches' outputs as arrays)."""
    if not (hasattr(y, "shape") and hasattr(y, "dtype")):
        raise TypeError(f"{where}: {what} returned a {type(y).__name__}, not an array; "
                        "each branch of a concat or residual must return one array.")


def _check_residual_shapes(where: str, out_block, out_short, input_shape) -> None:
    """Raise ValueError unless the block and shortcut outputs have exactly the same shape:
    the sum does not broadcast (a `(N, 1, 1, C)` block output is an error, not a bias)."""
    if tuple(out_block) != tuple(out_short):
        raise ValueError(
            f"{where}: block output {shape_str(out_block)} and shortcut output "
            f"{shape_str(out_short)} differ for input {shape_str(input_shape)}; "
            "give a projection shortcut, e.g. a 1x1 Conv2D with the block's stride."
        )


def children(layer: Layer) -> tuple[tuple[str, Layer], ...]:
    """The `(key, child)` pairs of a combinator (`serial`, `concat`, `residual`), else `()`.

    `key` is where the child's params/state live in the parent's dicts (a child
    without params has no entry there). Tools such as `fnn.summary` walk this.
    """
    return getattr(layer.apply, "children", ())


def combinator(layer: Layer) -> str | None:
    """`"serial"`, `"concat"` or `"residual"` for a core combinator, also one a model
    renamed (`Layer(m.init, m.apply, "ResNet20")`, as the model zoo does); else None."""
    qual = getattr(layer.apply, "__qualname__", "")
    head = qual.split(".")[0]
    if (getattr(layer.apply, "__module__", "") == __name__
            and head in ("serial", "concat", "residual") and children(layer)):
        return head
    return None


def _split(key, n: int):
    return [None] * n if key is None else list(jax.random.split(key, n))


def _child_key(index: int, layer: Layer) -> str:
    return f"{index}_{layer.name}"


def output_shape(layer: Layer, input_shape, dtype=None, params=None, state=None):
    """Per-example output shape of `layer` for one example of `input_shape`.

    Computed with `jax.eval_shape` (no FLOPs are spent). If `params`/`state` are
    given they are used; otherwise the layer's `init` is traced abstractly.
    """
    return output_struct(layer, input_shape, dtype, params, state).shape[1:]


def output_struct(layer: Layer, input_shape, dtype=None, params=None, state=None):
    """Like `output_shape` but returns the batched `jax.ShapeDtypeStruct` (batch 1)."""
    layer = as_layer(layer)
    input_shape = check_input_shape("output_shape", input_shape, "(d1, ..., dk)")
    dtype = input_dtype(layer) if dtype is None else as_dtype("output_shape", dtype)
    if params is None or state is None:
        params, state = jax.eval_shape(lambda: layer.init(jax.random.PRNGKey(0), input_shape))
    x = jax.ShapeDtypeStruct((1, *input_shape), dtype)
    return jax.eval_shape(lambda p, s, x: layer.apply(p, s, x)[0], params, state, x)


def _compiled_init(layer: Layer, input_shape: tuple):
    return compiler.jit(lambda key: layer.init(key, input_shape), compiler.init_options())


def init(layer, key, input_shape):
    """`layer.init(key, input_shape)` compiled as one program: `(params, state)`.

    The values of calling `layer.init` directly (same keys, same initialisers)
    up to float rounding (XLA fuses the scaling of the random draws), but much
    faster on a cold start: called eagerly, every
    initialiser op is compiled on its own (LeNet-5: 5.5 s, ResNet-20: 9.2 s on
    2 CPU cores), while here the whole initialisation is one XLA program
    compiled with `fnn.compiler.init_options()` (1.9 s and 5.0 s), and it is reused
    for the same layer and shape. Bad shapes and keys raise the layer's own
    errors (they are checked while tracing).
    """
    layer = as_layer(layer)
    shape = _check_init_args("init", key, input_shape)
    return memoized(_compiled_init, layer, shape)(key)


# ---------------------------------------------------------------------------
# combinators


def serial(*layers) -> Layer:
    """Compose layers in order: `serial(a, b, c)(x) = c(b(a(x)))`.

    Plain callables (`fnn.relu`, `jnp.tanh`, a lambda) count as layers without
    parameters. Parameters and state are dicts keyed `"{index}_{name}"`
    (e.g. `{"0_Dense": {...}, "2_Dense": {...}}`); a layer with no params gets no
    key in `params`, one with no state no key in `state`. `init` and `apply`
    split the `key` into one key per layer.
    """
    if not layers:
        raise ValueError("serial: expected at least one layer, got none.")
    layers = tuple(as_layer(layer) for layer in layers)
    names = [_child_key(i, layer) for i, layer in enumerate(layers)]
    accepted = [_accepted_keywords(layer.apply) for layer in layers]

    def init(key, input_shape):
        params, state = {}, {}
        shape, dtype = _check_init_args("serial.init", key, input_shape), input_dtype(layers[0])
        for name, layer, k in zip(names, layers, _split(key, len(layers))):
            p, s = layer.init(k, shape)
            if p:
                params[name] = p
            if s:
                state[name] = s
            out = output_struct(layer, shape, dtype, p, s)
            shape, dtype = out.shape[1:], out.dtype
        return params, state

    def apply(params, state, x, *, key=None, train=False, **extra):
        _check_extra("serial", accepted, extra)
        _check_apply_args("serial.apply", params, state, key, train)
        new_state = dict(state)
        for i, (name, layer, acc, k) in enumerate(
                zip(names, layers, accepted, _split(key, len(layers)))):
            x, s = _call("serial.apply", name, f"layer {i}, {layer.name}", layer, acc, params,
                         state, x, k, train, extra)
            if s:
                new_state[name] = s
        return x, new_state

    apply.children = tuple(zip(names, layers))
    apply.accepted_keywords = _union_keywords(accepted)
    return Layer(_mark_input_dtype(init, layers[0]), apply, "Serial")


def concat(*branches, axis: int = -1) -> Layer:
    """Apply every branch to the same input and concatenate the outputs on `axis`.

    Params/state keyed `"{index}_{name}"` per branch, as in `serial`. All
    branches must agree on every output axis except `axis` (no broadcasting), and
    `axis` must name a non-batch axis of the branch outputs: both checked at init
    and again in apply, on the outputs' trace-time shapes (an input of another size
    can make branches disagree), raising ValueError with the branch names and shapes.
    """
    if not branches:
        raise ValueError("concat: expected at least one branch, got none.")
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise TypeError(f"concat: axis must be an int, got {axis!r}.")
    axis = int(axis)
    branches = tuple(as_layer(b) for b in branches)
    names = [_child_key(i, b) for i, b in enumerate(branches)]
    accepted = [_accepted_keywords(b.apply) for b in branches]

    def init(key, input_shape):
        input_shape = _check_init_args("concat.init", key, input_shape)
        params, state, shapes = {}, {}, []
        for name, branch, k in zip(names, branches, _split(key, len(branches))):
            p, s = branch.init(k, input_shape)
            if p:
                params[name] = p
            if s:
                state[name] = s
            shapes.append(output_shape(branch, input_shape, None, p, s))
        _check_concat_shapes("concat", axis, names, shapes, input_shape, batched=False)
        return params, state

    def apply(params, state, x, *, key=None, train=False, **extra):
        _check_extra("concat", accepted, extra)
        _check_apply_args("concat.apply", params, state, key, train)
        outs, new_state = [], dict(state)
        for i, (name, b, acc, k) in enumerate(
                zip(names, branches, accepted, _split(key, len(branches)))):
            what = f"branch {i}, {b.name}"
            y, s = _call("concat.apply", name, what, b, acc, params, state, x, k, train, extra)
            _check_output_array("concat.apply", what, y)
            outs.append(y)
            if s:
                new_state[name] = s
        _check_concat_shapes("concat.apply", axis, names, [y.shape for y in outs], x.shape,
                             batched=True)
        return jnp.concatenate(outs, axis=axis), new_state

    apply.children = tuple(zip(names, branches))
    apply.accepted_keywords = _union_keywords(accepted)
    return Layer(_mark_input_dtype(init, branches[0]), apply, "Concat")


def residual(block, shortcut=None) -> Layer:
    """`y = block(x) + shortcut(x)`, with the identity as default shortcut (ResNet).

    Params/state are keyed `"block"` and `"shortcut"` (only when non-empty).
    The two paths must produce exactly the same shape, without broadcasting:
    checked at init and again in apply on the trace-time shapes (an input of
    another size can make them differ), raising ValueError naming both shapes.
    """
    block = as_layer(block)
    short = None if shortcut is None else as_layer(shortcut)
    acc_block = _accepted_keywords(block.apply)
    acc_short = None if short is None else _accepted_keywords(short.apply)
    accepted = [acc_block] if short is None else [acc_block, acc_short]

    def init(key, input_shape):
        input_shape = _check_init_args("residual.init", key, input_shape)
        kb, ks = _split(key, 2)
        params, state = {}, {}
        pb, sb = block.init(kb, input_shape)
        out_block = output_shape(block, input_shape, None, pb, sb)
        if pb:
            params["block"] = pb
        if sb:
            state["block"] = sb
        if short is None:
            out_short = tuple(input_shape)
        else:
            ps, ss = short.init(ks, input_shape)
            out_short = output_shape(short, input_shape, None, ps, ss)
            if ps:
                params["shortcut"] = ps
            if ss:
                state["shortcut"] = ss
        _check_residual_shapes("residual", out_block, out_short, input_shape)
        return params, state

    def apply(params, state, x, *, key=None, train=False, **extra):
        _check_extra("residual", accepted, extra)
        _check_apply_args("residual.apply", params, state, key, train)
        kb, ks = _split(key, 2)
        new_state = dict(state)
        y, sb = _call("residual.apply", "block", f"the block, {block.name}", block, acc_block,
                      params, state, x, kb, train, extra)
        _check_output_array("residual.apply", f"the block, {block.name}", y)
        if sb:
            new_state["block"] = sb
        if short is None:
            _check_residual_shapes("residual.apply", y.shape, x.shape, x.shape)
            return y + x, new_state
        z, ss = _call("residual.apply", "shortcut", f"the shortcut, {short.name}", short,
                      acc_short, params, state, x, ks, train, extra)
        _check_output_array("residual.apply", f"the shortcut, {short.name}", z)
        if ss:
            new_state["shortcut"] = ss
        _check_residual_shapes("residual.apply", y.shape, z.shape, x.shape)
        return y + z, new_state

    apply.children = (("block", block),) + (() if short is None else (("shortcut", short),))
    apply.accepted_keywords = _union_keywords(accepted)
    return Layer(init, apply, "Residual")
