"""Checks and error paths of the combinators (`serial`, `concat`, `residual`).

Their arguments checked before any child runs, unknown keyword arguments, the
`MissingEntry` raised when a child fails on a params/state entry it needs, and the
shapes of branch outputs that `concat` and `residual` combine. Moved out of
`fnn.core` unchanged; `fnn.core` re-exports `require_known_keywords`.
"""
from __future__ import annotations

import jax

from fnn._array_checks import (
    MissingEntry,
    example_shape,
    keys_str,
    require_key_and_train,
    require_params,
)
from fnn._checks import BadType, BadValue, require_key, shape_str

__all__ = [
    "require_known_keywords", "raise_missing_entry", "init_args", "apply_args",
    "require_concat_shapes", "array_output", "require_residual_shapes",
]


def require_known_keywords(keywords: frozenset[str] | None, extra: dict) -> None:
    """`BadType` for a keyword argument in `extra` outside `keywords` (None: any is known)."""
    unknown = [] if keywords is None else sorted(set(extra) - keywords)
    if unknown:
        raise BadType(f"got unexpected keyword argument(s) {unknown}; "
                      f"its layers accept {sorted(keywords) or 'only key and train'}.")


def raise_missing_entry(entry, what, layer, params, state, no_params, no_state, x, err) -> None:
    """Raise `MissingEntry` if the child that failed really needs the missing entry.

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
            raise MissingEntry(
                f"{kind} has no entry {entry!r} (for {what}), got {keys_str(tree)}. "
                f"Pass the {kind} this model's init returned: "
                "params, state = model.init(key, input_shape).") from err


def init_args(key, input_shape) -> tuple[int, ...]:
    """The input shape as a tuple; a given key checked (None is passed on to the
    children, so a parameter-free model initialises without one)."""
    shape = example_shape(input_shape, "(d1, ..., dk)")
    if key is not None:
        require_key(key)
    return shape


def apply_args(kind: str, keywords, params, state, key, train, extra: dict) -> None:
    """A combinator's own arguments, checked before any child runs (`train="yes"` in a
    model without BatchNorm or Dropout would otherwise pass unnoticed)."""
    require_known_keywords(keywords, extra)
    require_params(params, (), kind)
    require_params(state, (), kind, what="state")
    require_key_and_train(key, train)


def require_concat_shapes(axis: int, names, shapes, input_shape, *, batched: bool) -> None:
    """`BadValue` unless branch outputs of `shapes` concatenate on `axis`.

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
        raise BadValue(f"axis={axis} is out of range for the branch outputs {batched_form} "
                       f"(rank {rank + 1}, from {names[0]}); use {choices} (axis 0 is the "
                       "batch axis).")
    cat = (axis if axis >= 0 else rank + 1 + axis) - 1 + lead  # index into `shapes`
    first = tuple(shapes[0])
    for name, shp in zip(names[1:], shapes[1:]):
        if len(shp) != len(first) or any(
            a != b for i, (a, b) in enumerate(zip(first, shp)) if i != cat
        ):
            raise BadValue(f"branch outputs must match on all axes but axis={axis}; got "
                           f"{shape_str(first)} from {names[0]} and {shape_str(shp)} from "
                           f"{name} for input {shape_str(input_shape)}.")


def array_output(what: str, y):
    """`y` unless it is not an array (`concat` and `residual` combine their branches'
    outputs as arrays)."""
    if not (hasattr(y, "shape") and hasattr(y, "dtype")):
        raise BadType(f"{what} returned a {type(y).__name__}, not an array; "
                      "each branch of a concat or residual must return one array.")
    return y


def require_residual_shapes(out_block, out_short, input_shape) -> None:
    """`BadValue` unless the block and shortcut outputs have exactly the same shape:
    the sum does not broadcast (a `(N, 1, 1, C)` block output is an error, not a bias)."""
    if tuple(out_block) != tuple(out_short):
        raise BadValue(f"block output {shape_str(out_block)} and shortcut output "
                       f"{shape_str(out_short)} differ for input {shape_str(input_shape)}; "
                       "give a projection shortcut, e.g. a 1x1 Conv2D with the block's stride.")
