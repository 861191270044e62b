"""Gradient checking: `jax.grad` against centred finite differences in float64.

    errors = fnn.gradcheck.check_grads(loss_fn, params, x, y)
    # {"0_Dense/w": 3.1e-10, "0_Dense/b": 8.4e-11, ...}

A custom layer, a `custom_vjp` or a hand-written backward pass is wrong until a
gradient check says otherwise (CS231n, "gradient checks").
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import (
    POSITIVE,
    BadType,
    BadValue,
    checked,
    optional,
    positive_int,
    prng_key,
    shape_str,
)

__all__ = ["check_grads", "leaf_paths"]


def _key_str(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def leaf_paths(tree) -> list[tuple[str, Any]]:
    """`[(path, leaf), ...]` in tree order; a path joins the dict keys with "/"
    (`"0_Dense/w"`), the same spelling `fnn.regularizers` uses. A bare array is `"(root)"`."""
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [("/".join(_key_str(k) for k in path) or "(root)", leaf) for path, leaf in flat]


def _is_float(x) -> bool:
    return hasattr(x, "dtype") and jnp.issubdtype(x.dtype, jnp.floating)


def _to64(tree):
    """Floating leaves to float64 (call inside `jax.enable_x64(True)`); others unchanged."""
    return jax.tree.map(lambda a: jnp.asarray(a, jnp.float64) if _is_float(a) else a, tree)


def _function(name: str, f) -> Callable:
    if not callable(f):
        raise BadType(f"{name} must be a function f(params, *args) -> scalar, got {f!r}.")
    return f


def _float_tree(name: str, params):
    """`params` unless it is empty or holds a leaf that is not a floating array."""
    paths = leaf_paths(params)
    if not paths or not all(_is_float(leaf) for _, leaf in paths):
        bad = [p for p, leaf in paths if not _is_float(leaf)]
        raise BadType(f"{name} must be a non-empty pytree of floating arrays; non-floating "
                      f"leaves: {bad or 'none (empty tree)'}.")
    return params


def _scalar_output(value) -> None:
    """`BadType`/`BadValue` unless `f`'s output (a `jax.eval_shape` result) is a real scalar."""
    if not isinstance(value, jax.ShapeDtypeStruct):
        raise BadType(f"f must return a scalar array, got a {type(value).__name__}; return "
                      "the loss alone.")
    if value.shape != ():
        raise BadValue(f"f must return a scalar, got an output of shape "
                       f"{shape_str(value.shape)}; reduce it, e.g. with jnp.mean.")
    if not jnp.issubdtype(value.dtype, jnp.floating):
        raise BadType(f"f must return a real floating-point scalar, got dtype {value.dtype}.")


@checked("check_grads", f=_function, eps=POSITIVE, tiny=POSITIVE,
         max_coords=optional(positive_int), key=optional(prng_key), params=_float_tree)
def check_grads(f: Callable, params, *args, eps: float = 1e-5, max_coords: int | None = None,
                key=None, tiny: float = 1e-8) -> dict[str, float]:
    """Compare `jax.grad(f)` with centred finite differences; max relative error per leaf.

    `f(params, *args) -> scalar`. Everything runs in float64 (floating leaves of
    `params` and `args` are cast inside `jax.enable_x64(True)`; the caller's
    arrays are untouched). For each leaf of `params`, on every coordinate (or,
    with `max_coords`, on that many coordinates of larger leaves, drawn with
    `key`), the numerical derivative

        n = (f(p + eps·e_i) − f(p − eps·e_i)) / (2·eps)

    is compared with the analytic one `a = ∂f/∂p_i` by the relative error

        |a − n| / max(|a|, |n|, tiny)

    (`tiny` keeps coordinates where both are ~0, such as a dead ReLU unit, from
    dividing by zero). Returns `{leaf path: max relative error}` with paths
    like `"0_Dense/w"`.

    **How to read the numbers** (float64, eps = 1e-5, the CS231n rules of thumb):
    - `< 1e-7`: the gradient is right;
    - `~1e-7 .. 1e-4`: acceptable for functions with kinks, suspicious otherwise;
    - `~1e-4 .. 1e-2`: suspicious, most likely a bug unless explained below;
    - `> 1e-2`: the gradient is wrong.

    Kinks (ReLU, max-pooling, hinge, abs) explain isolated outliers: if
    `p ± eps` crosses a kink the finite difference mixes two slopes. Check such
    a model with smooth activations, or fewer/other coordinates (`key`), before
    hunting a bug. A layer that computes in float32 on purpose (an explicit
    `.astype(jnp.float32)`) limits the agreement to ~1e-3.

    **Arguments:**
    - `f`: a pure function of `(params, *args)` returning a scalar (a loss);
      it must run under `jax.jit`.
    - `params`: a pytree of floating arrays (the leaves differentiated).
    - `args`: further arguments (data, labels), passed unchanged except that
      floating arrays are cast to float64.
    - `eps`: the finite-difference step (default 1e-5).
    - `max_coords`: coordinates checked per leaf (default None: all of them, as
      `torch.autograd.gradcheck` does). Small programs evaluate many perturbations
      at once (vmapped, within ~256 MB); a large one (a ResNet on a real batch)
      one at a time, and 10⁵ parameters take 2·10⁵ evaluations: pass e.g.
      `max_coords=64` to sample large leaves (a sample can miss a wrong coordinate).
    - `key`: PRNG key for choosing coordinates (default `jax.random.key(0)`).
    - `tiny`: the floor of the denominator (default 1e-8).
    """
    with jax.enable_x64(True):
        params64, args64 = _to64(params), _to64(args)
        fun = jax.jit(lambda p: f(p, *args64))
        _scalar_output(jax.eval_shape(fun, params64))
        grads = jax.jit(jax.grad(lambda p: f(p, *args64)))(params64)
        return _max_relative_errors(fun, params64, grads, eps=eps, max_coords=max_coords,
                                    key=jax.random.key(0) if key is None else key, tiny=tiny)


def _max_relative_errors(fun: Callable, params, grads, *, eps: float, max_coords: int | None,
                         key, tiny: float) -> dict[str, float]:
    """`{leaf path: max |a − n| / max(|a|, |n|, tiny)}` of the analytic gradients `grads`
    against central differences of `fun` at `params` (float64, inside `enable_x64`)."""
    paths = leaf_paths(params)
    per_call = _bytes_per_call(fun, params)
    leaves, treedef = jax.tree.flatten(params)
    grad_leaves = jax.tree.leaves(grads)
    keys = jax.random.split(key, len(leaves))
    errors: dict[str, float] = {}
    for i, ((path, _), leaf, g) in enumerate(zip(paths, leaves, grad_leaves, strict=True)):
        base = np.asarray(leaf, np.float64).ravel()
        analytic = np.asarray(g, np.float64).ravel()
        if base.size == 0:  # nothing to compare
            errors[path] = 0.0
            continue
        if max_coords is None or base.size <= max_coords:
            coords = np.arange(base.size)
        else:
            coords = np.sort(np.asarray(
                jax.random.choice(keys[i], base.size, (max_coords,), replace=False)))

        def f_of_leaf(flat, i=i, shape=leaf.shape):
            return fun(jax.tree.unflatten(
                treedef, [*leaves[:i], flat.reshape(shape), *leaves[i + 1:]]))

        # vmapped chunks of perturbations when one evaluation is small (each chunk
        # compiles once per leaf); one at a time through `fun` (compiled once) otherwise
        chunk = 1 if per_call is None else max(1, min(
            128, 2**28 // max(per_call, 1), 2**20 // max(base.size, 1), len(coords)))
        batched = (jax.jit(jax.vmap(f_of_leaf)) if chunk > 1 else
                   lambda flats, f=f_of_leaf: jnp.stack([f(v) for v in flats]))
        numeric = _central_differences(batched, base, coords, eps, chunk)
        a = analytic[coords]
        errors[path] = float(np.max(np.abs(a - numeric)
                                    / np.maximum(np.maximum(np.abs(a), np.abs(numeric)), tiny)))
    return errors


def _bytes_per_call(fun: Callable, params) -> int | None:
    """Memory one call of the jitted `fun` uses (arguments, temporaries, outputs), as XLA
    reports it; None where the backend does not say."""
    try:
        m = fun.lower(params).compile().memory_analysis()
        return int(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes)
    except (AttributeError, TypeError, RuntimeError):  # RuntimeError: also JaxRuntimeError
        return None


def _central_differences(f_batch: Callable, base: np.ndarray, coords: np.ndarray,
                         eps: float, chunk: int) -> np.ndarray:
    """`(f(p + eps·e_c) − f(p − eps·e_c)) / (2·eps)` for each `c` in `coords`, where
    `f_batch` maps a batch of `2·chunk` flat leaves `(2·chunk, size)` to `(2·chunk,)`;
    the last chunk is padded to the same size (one compile)."""
    out = []
    for start in range(0, len(coords), chunk):
        part = coords[start:start + chunk]
        padded = np.resize(part, chunk)             # the last chunk repeats coordinates
        moved = np.tile(base, (2 * chunk, 1))
        moved[np.arange(chunk), padded] += eps
        moved[chunk + np.arange(chunk), padded] -= eps
        values = np.asarray(f_batch(jnp.asarray(moved)), np.float64)
        out.append(((values[:chunk] - values[chunk:]) / (2.0 * eps))[:len(part)])
    return np.concatenate(out)
