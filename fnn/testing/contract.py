"""`check_layer`: run the contract every `fnn.Layer` keeps on one layer and a batch.

The properties, in the order they are checked (each has the name a failure reports):

- `"init"`: `init(key, input_shape)` returns `(params, state)`, dicts whose leaves are
  arrays, and the same key gives the same trees, bit for bit (no hidden RNG).
- `"eval"`: `apply(params, state, x)` runs with no key and `train=False`, and returns
  the state unchanged.
- `"output_shape"`: the output is `(N, *fnn.output_shape(layer, input_shape))`, with the
  dtype `fnn.output_shape`'s abstract evaluation gives.
- `"dtype"`: the output dtype is `jnp.result_type(x, *params)`, the rule of every fnn
  layer (a float32 batch gives float32; a parameter-free layer keeps the input's dtype).
- `"train"`: `apply(..., key=key, train=True)` gives the same output twice for the same
  key, and a state with the structure, shapes and dtypes of the state given.
- `"jit"`: `jax.jit(apply)` gives the eager result, in eval mode and in train mode.
- `"vmap"`: in eval mode, `jax.vmap` over the examples (each a batch of one) gives the
  batched result: no example's output depends on another's. Train mode is not compared:
  a layer with batch statistics (BatchNorm) normalises over the batch by design, and a
  random layer (Dropout) draws a mask of the batch's shape.
- `"grad"`: the gradient of `sum(output)` (train mode) with respect to the floating params
  and a floating input has their structure and is finite.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import example_shape, require_array, to_dtype
from fnn._checks import (
    NON_NEGATIVE,
    BadValue,
    describe_value,
    named,
    number,
    positive_int,
    require_key,
    shape_str,
)
from fnn.core import as_layer, output_struct

__all__ = ["ContractError", "Report", "check_layer", "PROPERTIES"]

#: The properties `check_layer` checks, in order.
PROPERTIES = ("init", "eval", "output_shape", "dtype", "train", "jit", "vmap", "grad")


class ContractError(AssertionError):
    """A layer broke a property of the layer contract; `.property` names which (one of
    `PROPERTIES`) and the message says what was expected and what came."""

    def __init__(self, layer: str, prop: str, detail: str):
        super().__init__(f"check_layer({layer}): property {prop!r} failed: {detail}")
        self.property = prop


class Report(NamedTuple):
    """What `check_layer` checked: `passed` (property names, in order) and the output of
    the eval-mode call (`output`, an array of shape `(N, *output_shape)`)."""

    name: str
    passed: tuple[str, ...]
    output: Any


def _differ(a, b, rtol: float, atol: float) -> str | None:
    """Why the pytrees `a` and `b` differ (structure, shape, dtype, or the largest value
    difference beyond `atol + rtol·|b|`, with its leaf), or None."""
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    if ta != tb:
        return f"the trees differ in structure: {ta} against {tb}"
    for (path, x), (_, y) in zip(la, lb):
        where = jax.tree_util.keystr(path) or "the output"
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return (f"{where} has shape {shape_str(x.shape)} and dtype {x.dtype} against "
                    f"{shape_str(y.shape)} and {y.dtype}")
        if x.dtype.kind in "biu":
            bad = x != y
            if np.any(bad):
                return f"{where} differs in {int(bad.sum())} of {x.size} entries"
            continue
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        gap = np.abs(xf - yf)
        bad = ~((gap <= atol + rtol * np.abs(yf)) | (np.isnan(xf) & np.isnan(yf)))
        if np.any(bad):
            i = np.unravel_index(np.argmax(np.where(bad, gap, -1.0)), x.shape)
            return (f"{where} differs in {int(bad.sum())} of {x.size} entries, the largest at "
                    f"index {tuple(int(j) for j in i)}: {xf[i]:.6g} against {yf[i]:.6g} "
                    f"(rtol={rtol}, atol={atol})")
    return None


def _layout_differ(a, b) -> str | None:
    """Why the pytrees `a` and `b` differ in structure, shapes or dtypes, or None."""
    def layout(tree):   # zeros of each leaf's shape and dtype, without copying
        return jax.tree.map(lambda v: np.broadcast_to(np.zeros((), v.dtype), np.shape(v)), tree)
    return _differ(layout(a), layout(b), 0.0, 0.0)


def _batch(input_shape, n: int, dtype, key):
    """A random batch `(n, *input_shape)` drawn with NumPy from `key` (no compilation):
    normal values for floating dtypes, 0/1 for integers (every index layer has at least
    two rows), random bools."""
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key)).ravel().tolist())
    shape = (n, *input_shape)
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.asarray(rng.normal(size=shape).astype(np.float32)).astype(dtype)
    if jnp.issubdtype(dtype, jnp.integer):
        return jnp.asarray(rng.integers(0, 2, size=shape)).astype(dtype)
    if dtype == jnp.bool_:
        return jnp.asarray(rng.integers(0, 2, size=shape).astype(bool))
    raise BadValue(f"cannot draw a batch of dtype {dtype}; pass x=... yourself.")


def _float_leaves(tree):
    return jax.tree.map(lambda a: a if jnp.issubdtype(a.dtype, jnp.inexact) else None, tree)


@named("check_layer")
def check_layer(layer, input_shape, *, key=None, dtype=None, x=None, batch_size: int = 3,
                rtol: float = 1e-5, atol: float = 1e-5) -> Report:
    """Check that `layer` keeps the layer contract on a batch of `input_shape` examples.

    **Arguments:**
    - `layer`: the `fnn.Layer` to check (a plain callable counts as a parameter-free layer).
    - `input_shape`: the shape of ONE example, e.g. `(8, 8, 3)`.
    - `key`: the PRNG key for init, the batch and train mode (default `jax.random.key(0)`).
    - `dtype`: the input dtype (default `layer.input_dtype`, float32 unless the layer says).
    - `x`: a batch `(N, *input_shape)` to use instead of a random one (integer layers whose
      valid ids are not 0 and 1, inputs that must be positive, ...).
    - `batch_size`: `N` of the random batch (>= 2, so that `vmap` can tell examples apart).
    - `rtol`, `atol`: the tolerance of the comparisons (jit against eager, vmap against
      the batch); init and the train-mode repeat must match exactly.

    **Returns:** a `Report` of the properties checked (all of `PROPERTIES`).
    **Raises:** `ContractError` (an `AssertionError`) naming the first property that
    failed, what was expected and what came; an exception the layer raises is wrapped
    in one, as its cause. See `help(fnn.testing.contract)` for the properties.

    >>> import fnn
    >>> fnn.testing.check_layer(fnn.layers.Dense(3), (4,)).passed[:3]
    ('init', 'eval', 'output_shape')
    """
    layer = as_layer(layer)
    input_shape = example_shape(input_shape, "(d1, ..., dk)")
    key = jax.random.key(0) if key is None else key
    require_key(key)
    n = positive_int("batch_size", batch_size)
    if n < 2:
        raise BadValue(f"batch_size must be >= 2 (vmap compares examples), got {n}.")
    rtol, atol = number("rtol", rtol, **NON_NEGATIVE), number("atol", atol, **NON_NEGATIVE)
    k_init, k_x, k_train = jax.random.split(key, 3)
    if x is None:
        dtype = layer.input_dtype if dtype is None else to_dtype(dtype)
        x = _batch(input_shape, n, jnp.dtype(dtype), k_x)
    else:
        require_array(x)
        if tuple(x.shape[1:]) != input_shape or x.shape[0] < 2:
            raise BadValue(f"x must be a batch (N, *input_shape) with N >= 2, i.e. "
                           f"(N, {', '.join(map(str, input_shape))}), got {describe_value(x)}.")
        x = jnp.asarray(x)
        n = x.shape[0]

    def fail(prop, detail, cause=None):
        raise ContractError(layer.name, prop, detail) from cause

    def attempt(prop, what, fn, *args):
        try:
            return fn(*args)
        except ContractError:
            raise
        except Exception as err:   # the layer's own error, named by the property
            fail(prop, f"{what} raised {type(err).__name__}: {err}", err)

    def apply(p, s, x, k=None, train=False):
        return layer.apply(p, s, x, key=k, train=train)

    # init
    first = attempt("init", "init(key, input_shape)", layer.init, k_init, input_shape)
    if not (isinstance(first, tuple) and len(first) == 2 and all(
            isinstance(t, dict) for t in first)):
        fail("init", f"init must return a (params, state) pair of dicts, got "
                     f"{describe_value(first)}")
    params, state = first
    for what, tree in (("params", params), ("state", state)):
        for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if not isinstance(leaf, (jax.Array, np.ndarray)):
                fail("init", f"{what}{jax.tree_util.keystr(path)} is {describe_value(leaf)}, "
                             "not an array")
    again = attempt("init", "a second init(key, input_shape)", layer.init, k_init, input_shape)
    why = _differ(again, first, 0.0, 0.0)
    if why:
        fail("init", f"two calls of init with the same key differ (hidden randomness?): {why}")
    passed = ["init"]

    # eval: no key, state unchanged
    y, new_state = attempt("eval", "apply(params, state, x) with train=False and no key",
                           apply, params, state, x)
    why = _differ(new_state, state, 0.0, 0.0)
    if why:
        fail("eval", f"train=False must return the state unchanged: {why}")
    passed.append("eval")

    # output_shape and dtype
    struct = attempt("output_shape", "fnn.output_shape(layer, input_shape)", output_struct,
                     layer, input_shape, x.dtype, params, state)
    want = (n, *struct.shape[1:])
    if tuple(y.shape) != want or y.dtype != struct.dtype:
        fail("output_shape", f"apply gave shape {shape_str(y.shape)} and dtype {y.dtype} for a "
                             f"batch of {n}; fnn.output_shape says {shape_str(want)} and "
                             f"{struct.dtype}")
    passed.append("output_shape")
    rule = jnp.result_type(x.dtype, *(a.dtype for a in jax.tree.leaves(params)))
    if y.dtype != rule:
        fail("dtype", f"input {x.dtype} with params of dtypes "
                      f"{sorted({str(a.dtype) for a in jax.tree.leaves(params)})} must give "
                      f"jnp.result_type of them, {rule}, got {y.dtype}")
    passed.append("dtype")

    # train mode: deterministic in its key, state keeps its layout
    y_train, s_train = attempt("train", "apply(..., key=key, train=True)", apply, params, state,
                               x, k_train, True)
    y_train2, _ = attempt("train", "a second apply(..., train=True)", apply, params, state, x,
                          k_train, True)
    why = _differ(y_train2, y_train, 0.0, 0.0)
    if why:
        fail("train", f"two train-mode calls with the same key differ: {why}")
    why = _layout_differ(s_train, state)
    if why:
        fail("train", f"the state returned in train mode must have the layout of the state "
                      f"given: {why}")
    passed.append("train")

    # jit, eval and train mode
    y_jit, _ = attempt("jit", "jax.jit(apply)", jax.jit(apply), params, state, x)
    why = _differ(y_jit, y, rtol, atol)
    if why:
        fail("jit", f"eval mode under jax.jit differs from the eager call: {why}")
    train_jit = jax.jit(lambda p, s, x, k: apply(p, s, x, k, True))
    y_train_jit, _ = attempt("jit", "jax.jit(apply) with train=True", train_jit, params, state,
                             x, k_train)
    why = _differ(y_train_jit, y_train, rtol, atol)
    if why:
        fail("jit", f"train mode under jax.jit differs from the eager call: {why}")
    passed.append("jit")

    # vmap over examples, eval mode
    def one(xi):
        return apply(params, state, xi[None])[0][0]

    y_vmap = attempt("vmap", "jax.vmap over the examples", jax.jit(jax.vmap(one)), x)
    why = _differ(y_vmap, y, rtol, atol)
    if why:
        fail("vmap", f"eval mode per example (vmap) differs from the batched call, so an "
                     f"example's output depends on the others: {why}")
    passed.append("vmap")

    # gradients
    floating_x = jnp.issubdtype(x.dtype, jnp.inexact)

    def total(p, xi):
        out, _ = apply(p, state, xi if floating_x else x, k_train, True)
        return jnp.sum(out.astype(jnp.float32))

    fp = _float_leaves(params)
    grads = attempt("grad", "jax.grad of sum(apply(...)) in train mode",
                    jax.jit(jax.grad(total, argnums=(0, 1))), fp,
                    x if floating_x else jnp.zeros(()))
    why = _layout_differ(grads[0], fp)
    if why:
        fail("grad", f"the gradient must have the layout of the params: {why}")
    named_grads = [(f"params{jax.tree_util.keystr(path)}", g)
                   for path, g in jax.tree_util.tree_flatten_with_path(grads[0])[0]]
    named_grads += [("the input x", grads[1])] if floating_x else []
    for what, g in named_grads:
        if not bool(jnp.all(jnp.isfinite(g))):
            fail("grad", f"the gradient of sum(output) with respect to {what} has non-finite "
                         f"entries: {np.asarray(g).ravel()[:6]} ...")
    passed.append("grad")
    return Report(layer.name, tuple(passed), y)
