"""`repeat(layer, n)`: n copies of a layer applied in turn with `lax.scan`; `remat(layer)`:
the layer with its activations recomputed in the backward pass.

Both are `Layer`s whose `combinator` is `"repeat"` / `"remat"`, so that `fnn.summary`
and `fnn.intermediates` walk into them. Their children are not entries of their params:
- `repeat(layer, n).children` are the `n` copies, keyed as in the equivalent `serial`
  (`"0_Dense"`, `"1_Dense"`, ...); copy `i`'s params are `leaf[i]` of every stacked leaf.
- `remat(layer).children` is `(("", layer),)`: the empty key says that the child's
  params are the parent's own.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fnn._array_checks import require_array
from fnn._checks import BadValue, checked, flag, named, positive_int, shape_str
from fnn._combinator_checks import apply_args, init_args
from fnn.core import Layer, as_layer, output_struct

__all__ = ["repeat", "remat", "unstack"]


def unstack(tree, n: int) -> list:
    """The `n` per-copy trees of a tree stacked by `repeat` (`tree[i]` of every leaf)."""
    return [jax.tree.map(lambda leaf, i=i: leaf[i], tree) for i in range(n)]


def _require_stacked(tree, n: int, what: str) -> None:
    """`BadValue` unless every leaf of `tree` has a leading axis of size `n`."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        shape = tuple(getattr(leaf, "shape", ()))
        if not shape or shape[0] != n:
            raise BadValue(f"{what} leaf {jax.tree_util.keystr(path)} must be stacked on a "
                           f"leading axis of size n={n}, got shape {shape_str(shape)}; use "
                           "the params and state repeat's init returns.")


@checked("repeat", n=positive_int, remat=flag)
def repeat(layer, n: int, *, remat: bool = False) -> Layer:
    """`n` copies of `layer`, each with its own params, applied in turn:
    `y = f_{n−1}(… f_1(f_0(x)))`, as `fnn.serial(layer, ..., layer)` but compiled once.

    The copies run in a `jax.lax.scan` over their stacked params, so the program
    holds one copy of the layer whatever `n` is (compile time flat in depth, see
    benchmarks/compile_depth.py), and the values and gradients are those of the
    unrolled `serial` whose `i`-th layer has the params `tree[i]` of every leaf.

    **Arguments:**
    - `layer`: a `fnn.Layer` (or a callable `f(x)`) that maps its input shape and
      dtype to themselves (a residual block, a transformer block, ...). A layer that
      only promotes the dtype (a bfloat16 batch through float32 params) is fine: the
      input is promoted first, as the first copy of the `serial` would.
    - `n`: the number of copies, a positive int.
    - `remat`: recompute each copy's activations in the backward pass (`jax.checkpoint`
      around the scanned body): memory of one copy's activations instead of `n`, for
      about one more forward pass of compute.

    **Params and state:** those of `layer` with every leaf stacked on a leading axis of
    size `n` (`repeat(Dense(64), 8)` has `w: (8, 64, 64)`, `b: (8, 64)`); BatchNorm
    statistics likewise. `init` draws copy `i` from `jax.random.split(key, n)[i]` and
    `apply` gives copy `i` the key `jax.random.split(key, n)[i]`, as `serial` does.
    `unstack(params, n)` gives the per-copy trees (`from fnn.repeat import unstack`;
    `fnn.repeat` itself is this function).
    """
    layer = as_layer(layer)
    n = int(n)

    def copy_struct(shape, dtype, params=None, state=None):
        return output_struct(layer, shape, dtype, params, state)

    def one_copy(params, state, x, key, train, extra):
        """The output struct of one copy on the whole batch (a bad input raises the
        layer's own error, with the batch's shape)."""
        return jax.eval_shape(
            lambda p, s, x, k: layer.apply(p, s, x, key=k, train=train, **extra)[0],
            params, state, x, key)

    def require_same_shape(shape: tuple, out) -> None:
        if tuple(out.shape[1:]) != tuple(shape):
            raise BadValue(f"the layer must map its input shape to itself, since its copies "
                           f"are chained: {layer.name} maps {shape_str(shape)} to "
                           f"{shape_str(out.shape[1:])}; repeat a block that keeps the shape "
                           "(e.g. a residual block) and put shape-changing layers around it.")

    @named("repeat")
    def init(key, input_shape):
        shape, dtype = init_args(key, input_shape), layer.input_dtype
        if key is None:   # as serial: every copy initialised with key None (the same values)
            params, state = layer.init(None, shape)
            params, state = jax.tree.map(lambda a: jnp.stack([a] * n), (params, state))
        else:
            params, state = jax.vmap(lambda k: layer.init(k, shape))(jax.random.split(key, n))
        first = jax.tree.map(lambda a: a[0], (params, state))
        require_same_shape(shape, copy_struct(shape, dtype, *first))
        return params, state

    def body(train, extra, x, copy):
        p, s, k = copy
        y, s = layer.apply(p, s, x, key=k, train=train, **extra)
        return y, s

    @named("repeat.apply")
    def apply(params, state, x, *, key=None, train=False, **extra):
        apply_args("repeat", layer.keywords, params, state, key, train, extra)
        require_array(x)
        x = jnp.asarray(x)
        _require_stacked(params, n, "params")
        _require_stacked(state, n, "state")
        keys = None if key is None else jax.random.split(key, n)
        p0, s0, k0 = jax.tree.map(lambda a: a[0], (params, state, keys))
        out = one_copy(p0, s0, x, k0, train, extra)
        require_same_shape(x.shape[1:], out)
        if out.dtype != x.dtype:   # e.g. bfloat16 x, float32 params: promote first
            x = x.astype(out.dtype)
            again = one_copy(p0, s0, x, k0, train, extra)
            if again.dtype != x.dtype:
                raise BadValue(f"the layer must map its input dtype to itself, since its "
                               f"copies are chained: {layer.name} maps {out.dtype} to "
                               f"{again.dtype}.")
        step = functools.partial(body, train, extra)
        if remat:
            step = jax.checkpoint(step, prevent_cse=False)
        y, new_state = jax.lax.scan(step, x, (params, state, keys), length=n)
        return y, new_state

    copies = tuple((f"{i}_{layer.name}", layer) for i in range(n))
    return Layer(init, apply, "Repeat", copies, layer.keywords, layer.input_dtype, "repeat")


@named("remat")
def remat(layer) -> Layer:
    """`layer` with `jax.checkpoint` around its `apply`: the same values, params and
    state, but the backward pass recomputes the layer's activations instead of keeping
    them (less memory, about one more forward pass of compute).

    **Arguments:**
    - `layer`: a `fnn.Layer` (or a callable `f(x)`).

    The result keeps the layer's name, so `fnn.serial(fnn.remat(block), ...)` has the
    same parameter tree (and checkpoints) as `fnn.serial(block, ...)`. `train` stays a
    static Python bool; `key` and extra keywords (`lengths`) pass through.
    """
    layer = as_layer(layer)

    def run(train, params, state, x, key, extra):
        return layer.apply(params, state, x, key=key, train=train, **extra)

    @named("remat.apply")
    def apply(params, state, x, *, key=None, train=False, **extra):
        apply_args("remat", layer.keywords, {}, {}, key, train, extra)
        fn = jax.checkpoint(functools.partial(run, train))
        return fn(params, state, x, key, extra)

    return Layer(layer.init, apply, layer.name, (("", layer),), layer.keywords,
                 layer.input_dtype, "remat")

