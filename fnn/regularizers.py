"""Weight penalties on a parameter pytree: `l1(params, weight)`, `l2(params, weight)`.

Add one to a loss to regularise a model:

    def objective(params, x, y):
        logits, _ = model.apply(params, state, x)
        return fnn.losses.softmax_cross_entropy(logits, y) + fnn.regularizers.l2(params, 1e-4)

**Which leaves are penalised.** Every leaf has a path: its dict keys (and
list/tuple indices) joined by "/", e.g. `"0_Dense/w"` or `"3_BatchNorm/scale"`.
By default (`include=None`, the rule in `default_include`) a floating-point
leaf is penalised unless

- its own key is a bias or a normalisation/activation parameter:
  one of `"b"`, `"bias"`, `"b_x"`, `"b_h"`, `"scale"`, `"alpha"` (PReLU slope); or
- it lives under a normalisation layer: a path component whose layer name
  (the key without its `"{index}_"` prefix) ends in `"Norm"` (`BatchNorm`,
  `LayerNorm`, ...).

So weight matrices, conv kernels, recurrent weights (`w_x`, `w_h`) and
embedding tables are penalised; biases and norm parameters are not — the usual
practice (Keras's `kernel_regularizer`). Integer and bool leaves are never
penalised; complex and non-numeric leaves (strings, objects) raise `TypeError`.
To change the rule pass `include=`:

- `include="all"`: every floating-point leaf, biases too (what PyTorch's
  `weight_decay` does to all parameters of an optimizer);
- a predicate `include(path: str, leaf) -> bool`, e.g.
  `lambda path, w: w.ndim > 1` (matrices and kernels only) or
  `lambda path, w: default_include(path, w) or path.endswith("/b")`.
  The predicate runs when the function is traced: decide on the path and the
  leaf's shape/dtype, never on its values.
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import NON_NEGATIVE, BadType, BadValue, checked, describe_value
from fnn._util import at_least_float32

__all__ = ["l1", "l2", "default_include", "EXCLUDED_KEYS"]

#: Leaf keys that are never penalised by default (biases, norm scales, PReLU slopes).
EXCLUDED_KEYS = frozenset({"b", "bias", "b_x", "b_h", "scale", "alpha"})

_INDEX_PREFIX = re.compile(r"\d+_(.+)")


def _layer_name(component: str) -> str:
    """`"3_BatchNorm"` -> `"BatchNorm"`; anything else unchanged."""
    m = _INDEX_PREFIX.fullmatch(component)
    return m.group(1) if m else component


def default_include(path: str, leaf: Any = None) -> bool:
    """The default rule: True for weights, False for biases and normalisation parameters.

    False when the last component of `path` is in `EXCLUDED_KEYS`, or when any
    earlier component names a layer ending in `"Norm"` (`"1_BatchNorm"`,
    `"LayerNorm"`). `leaf` is ignored; it is there so the function has the
    `include(path, leaf)` signature and can be combined in a custom predicate.
    """
    del leaf
    parts = path.split("/")
    if parts[-1] in EXCLUDED_KEYS:
        return False
    return not any(_layer_name(p).endswith("Norm") for p in parts[:-1])


def _key_str(k) -> str:
    for attr in ("key", "idx", "name"):
        if hasattr(k, attr):
            return str(getattr(k, attr))
    return str(k)


def _path_str(path) -> str:
    return "/".join(_key_str(k) for k in path)


def _predicate(name: str, include) -> Callable[[str, Any], bool]:
    """The predicate `include(path, leaf) -> bool` that `include` stands for."""
    if include is None:
        return default_include
    if isinstance(include, str):
        if include == "all":
            return lambda path, leaf: True
        raise BadValue(f"include must be None (weights only, the default), \"all\", or a "
                       f"predicate include(path, leaf) -> bool; got the string {include!r}.")
    if not callable(include):
        raise BadType(f"include must be None, \"all\", or a predicate include(path, leaf) -> "
                      f"bool; got {include!r}.")
    try:
        inspect.signature(include).bind("0_Dense/w", None)
    except TypeError:
        raise BadType(f"include must take two arguments, include(path, leaf) -> bool; got "
                      f"{include!r} with signature {inspect.signature(include)}.") from None
    except ValueError:  # no signature to read (some builtins): just call it
        pass
    return include


def _decide(pred, path: str, leaf) -> bool:
    """`pred(path, leaf)` as a Python bool. A predicate that returns None (a forgotten
    `return`) would silently penalise nothing, and one that reads the leaf's values
    gives an array or a tracer: both are TypeErrors naming the path."""
    rule = ("include(path, leaf) must return True or False, decided from the path and the "
            "leaf's shape/dtype (never its values, which are traced under jit)")
    try:
        decision = pred(path, leaf)
    except jax.errors.ConcretizationTypeError:  # bool() of a traced value inside pred
        raise BadType(f"{rule}; for {path!r} it read the traced values.") from None
    if isinstance(decision, (bool, np.bool_)):
        return bool(decision)
    raise BadType(f"{rule}; for {path!r} it returned {describe_value(decision)}.")


def _selected(params, pred) -> list:
    """The floating-point leaves of `params` that the predicate `pred` selects."""
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    out = []
    for path, leaf in flat:
        path = _path_str(path)
        dtype = _leaf_dtype(leaf)
        if dtype is None or jnp.issubdtype(dtype, jnp.complexfloating):
            kind = "complex" if dtype is not None else "non-numeric"
            raise BadType(f"params must hold real-valued arrays, got a {kind} leaf at "
                          f"{path!r}: {describe_value(leaf)}.")
        if not jnp.issubdtype(dtype, jnp.floating):
            continue
        leaf = jnp.asarray(leaf)
        if _decide(pred, path, leaf):
            out.append(leaf)
    return out


def _leaf_dtype(leaf):
    """The dtype a leaf has (or gets from `jnp.asarray`); None if it is not numeric."""
    if isinstance(leaf, jax.Array):
        return leaf.dtype
    dtype = np.asarray(leaf).dtype
    return dtype if np.issubdtype(dtype, np.number) or dtype == np.bool_ else None


def _total(weight, leaves, term):
    if not leaves:
        return jnp.zeros((), jnp.float32) * weight
    total = sum(jnp.sum(term(at_least_float32(w))) for w in leaves)
    return jnp.asarray(weight, total.dtype) * total


@checked("fnn.regularizers.l1", weight=NON_NEGATIVE, include=_predicate)
def l1(params, weight, *, include=None):
    """L1 penalty (lasso): `weight · Σ_w Σ_i |w_i|` over the selected leaves.

    **Arguments:**
    - `params`: a parameter pytree (nested dicts/lists of arrays).
    - `weight`: the coefficient λ ≥ 0 (a Python float; a traced scalar is
      accepted unchecked, e.g. under `vmap` over λ).
    - `include`: which leaves: `None` (weights only; biases and norm
      parameters excluded, see `help(fnn.regularizers)`), `"all"`, or a predicate
      `include(path, leaf) -> bool`.

    **Returns:** a scalar. Its gradient is `weight · sign(w)` on selected
    leaves (0 at w = 0) and 0 elsewhere. Keras's `regularizers.L1(l1=λ)` is the
    same penalty with weight λ.
    """
    return _total(weight, _selected(params, include), lambda w: w * jnp.sign(w))


@checked("fnn.regularizers.l2", weight=NON_NEGATIVE, include=_predicate)
def l2(params, weight, *, include=None):
    """L2 penalty (ridge, weight decay): `weight · Σ_w Σ_i w_i²` over the selected leaves.

    Note: no factor ½. The gradient is `2 · weight · w` on selected leaves and 0
    elsewhere. PyTorch's optimizer `weight_decay=λ` adds `λ · w` to the gradient,
    so it corresponds to `l2(params, λ / 2, include="all")` (PyTorch decays
    biases too; our default skips them). Keras's `regularizers.L2(l2=λ)` is
    `λ · Σ w²`, the same as `l2(params, λ)`. Decoupled decay (AdamW) is not a
    loss term: use `fnn.optim.adamw`.

    **Arguments:** as `l1`: `params`, `weight` λ ≥ 0, `include` (`None`: weights
    only; `"all"`; or a predicate `include(path, leaf) -> bool`).
    **Returns:** a scalar.
    """
    return _total(weight, _selected(params, include), jnp.square)
