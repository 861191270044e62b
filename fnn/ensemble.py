"""Ensembles of K models trained in lockstep: one jitted, `vmap`ped step for all.

    keys = jax.random.split(jax.random.key(0), 5)
    params, state = fnn.ensemble.init_ensemble(model, keys, (2,))   # leaves (5, ...)
    opt_state = jax.vmap(optimizer.init)(params)                    # stacked slots too
    step = fnn.ensemble.make_ensemble_step(model, fnn.losses.softmax_cross_entropy, optimizer)
    for x, y in batches:
        opt_state, state, losses = step(opt_state, state, x, y)     # losses: (5,)
    probs = fnn.ensemble.predict_mean(model, opt_state.params, state, x, transform=fnn.softmax)

Every leaf of an ensemble's params, model state and optimizer state carries a
leading member axis `K`. Member `i` is the model one would train alone from
`model.init(keys[i], input_shape)` with the same batches (`member(tree, i)` takes
it out), up to float rounding: only the K forward/backward passes are batched, which
may reorder float operations. (Adam magnifies such rounding in a leaf whose true
gradient is 0, e.g. a Dense bias right before BatchNorm: there the members can
differ from solo runs by ~lr.)
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn import compiler
from fnn._checks import check_flag, check_input_shape, check_key, shape_str
from fnn.core import Layer

__all__ = ["init_ensemble", "make_ensemble_step", "predict_all", "predict_mean", "member",
           "ensemble_size"]


def ensemble_size(tree) -> int:
    """K, the leading (member) axis shared by every leaf of an ensemble pytree."""
    k = _members("ensemble_size", "the tree", tree)
    if k is None:
        raise ValueError("ensemble_size: expected a stacked ensemble pytree, got one without "
                         "leaves.")
    return k


def _members(where: str, what: str, tree, k: int | None = None) -> int | None:
    """K of the stacked pytree `tree` (`k`, or None, for one without leaves, such as the
    empty state of a model without BatchNorm); a ValueError when its leaves do not share
    a leading axis (of size `k`, if given)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return k
    sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in leaves}
    if len(sizes) != 1 or None in sizes or (k is not None and sizes != {k}):
        axis = "a leading member axis K" if k is None else f"the leading member axis K={k}"
        shapes = [shape_str(jnp.shape(a)) for a in leaves][:6]
        raise ValueError(f"{where}: every leaf of {what} needs {axis}, got leaves of shapes "
                         f"{shapes}.")
    return int(sizes.pop())


def _check_model(where: str, model) -> None:
    if not isinstance(model, Layer):
        raise TypeError(f"{where}: model must be a fnn.Layer, got {model!r}.")


def _check_callable(where: str, name: str, fn, form: str, optional: bool = False) -> None:
    if not (callable(fn) or (optional and fn is None)):
        raise TypeError(f"{where}: {name} must be a function {form}"
                        f"{' or None' if optional else ''}, got {fn!r}.")


def member(tree, i: int):
    """Member `i` of a stacked ensemble pytree (params, state or optimizer state);
    `-K <= i < K` (JAX would clamp an index out of range to the last member; a traced
    `i` cannot be checked)."""
    if isinstance(i, jax.core.Tracer):
        return jax.tree.map(lambda a: a[i], tree)
    k = ensemble_size(tree)
    if isinstance(i, bool) or not hasattr(i, "__index__") or not -k <= int(i) < k:
        raise ValueError(f"ensemble.member: i must be an int in [-{k}, {k}) for an ensemble "
                         f"of K={k} members, got {i!r}.")
    return jax.tree.map(lambda a: a[int(i)], tree)


def init_ensemble(model: Layer, keys, input_shape):
    """Initialise K models at once: `vmap(model.init)` over `keys` (K keys).

    `keys` is a batch of PRNG keys, e.g. `jax.random.split(key, K)`. Returns
    `(params, state)` whose leaves have a leading axis K; member `i` equals
    `model.init(keys[i], input_shape)`.
    """
    _check_model("init_ensemble", model)
    how = "init_ensemble: keys must be a batch of K keys, e.g. jax.random.split(key, K); got"
    if not isinstance(keys, (jax.Array, np.ndarray)):
        raise TypeError(f"{how} a value of type {type(keys).__name__}.")
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    raw = jax.random.key_data(keys) if typed else keys
    if raw.ndim != 2 or raw.shape[0] == 0:
        raise ValueError(f"{how} an array of shape {shape_str(jnp.shape(keys))}.")
    if not typed and raw.dtype != np.uint32:
        raise TypeError(f"{how} an array of dtype {raw.dtype}.")
    shape = check_input_shape("init_ensemble", input_shape, "(d1, ..., dk)")
    return jax.vmap(lambda k: model.init(k, shape))(keys)


def make_ensemble_step(model: Layer, loss: Callable, optimizer, *,
                       regularizer: Callable | None = None, shared_data: bool = True,
                       jit: bool = True) -> Callable:
    """Build `step(opt_state, model_state, x, y, key=None) -> (opt_state, model_state, losses)`.

    One training step for every member at once: `vmap` over the member axis of
    the optimizer state (which holds the params) and the model state, of

        pred, new_state = model.apply(params_i, state_i, x, key=key_i, train=True)
        grads = ∇ (loss(pred, y) + regularizer(params_i))
        opt_state_i, _ = optimizer.update(opt_state_i, grads)

    **Arguments:**
    - `loss(pred, y) -> scalar` (`fnn.losses`), `optimizer` (`fnn.optim`),
      `regularizer(params) -> scalar` (optional).
    - `shared_data`: every member sees the same batch `x: (N, ...)` (default).
      With `False`, `x: (K, N, ...)` and `y: (K, N, ...)` give each member its
      own batch (bagging).
    - `jit`: wrap the step in `jax.jit` (default).

    The optimizer state is the vmapped one: `jax.vmap(optimizer.init)(params)`.
    `key` (for Dropout) is split into K keys, member `i` getting
    `jax.random.split(key, K)[i]`. `losses` is `(K,)`, each member's data loss
    (without the penalty).
    """
    where = "make_ensemble_step"
    _check_model(where, model)
    _check_callable(where, "loss", loss, "loss(pred, y) -> scalar")
    _check_callable(where, "regularizer", regularizer, "regularizer(params) -> scalar",
                    optional=True)
    shared_data = check_flag(where, "shared_data", shared_data)
    jit = check_flag(where, "jit", jit)
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            "make_ensemble_step: optimizer must be a fnn.optim.Optimizer "
            f"(e.g. fnn.optim.adam(1e-3)), got {optimizer!r}."
        )
    data_axis = None if shared_data else 0

    def member_step(opt_state, model_state, x, y, key):
        def objective(params):
            pred, new_state = model.apply(params, model_state, x, key=key, train=True)
            data_loss = loss(pred, y)
            total = data_loss if regularizer is None else data_loss + regularizer(params)
            return total, (data_loss, new_state)

        (_, (data_loss, new_state)), grads = jax.value_and_grad(objective, has_aux=True)(
            opt_state.params)
        opt_state, _ = optimizer.update(opt_state, grads)
        return opt_state, new_state, data_loss

    no_key = jax.vmap(lambda o, s, x, y: member_step(o, s, x, y, None),
                      in_axes=(0, 0, data_axis, data_axis))
    with_key = jax.vmap(member_step, in_axes=(0, 0, data_axis, data_axis, 0))

    def step(opt_state, model_state, x, y, key=None):
        where = "ensemble step"
        k = _members(where, "opt_state (made by jax.vmap(optimizer.init)(params))", opt_state)
        _members(where, "model_state (from init_ensemble)", model_state, k)
        if not shared_data:
            _members(where, "x (with shared_data=False, x is (K, N, ...))", x, k)
            _members(where, "y (with shared_data=False, y is (K, N, ...))", y, k)
        if key is None:
            return no_key(opt_state, model_state, x, y)
        check_key(where, key)
        return with_key(opt_state, model_state, x, y, jax.random.split(key, k))

    return compiler.jit(step, compiler.options()) if jit else step


def predict_all(model: Layer, params, state, x, *, transform: Callable | None = None):
    """Every member's prediction, `(K, N, ...)`: `model.apply(params_i, state_i, x)`
    with `train=False`, followed by `transform` (e.g. `fnn.softmax`) if given."""
    return _predict_all("predict_all", model, params, state, x, transform)


def _predict_all(where, model, params, state, x, transform):
    _check_model(where, model)
    _check_callable(where, "transform", transform, "of the predictions", optional=True)
    k = _members(where, "params (from init_ensemble)", params)
    if _members(where, "state (from init_ensemble)", state, k) is None:
        raise ValueError(f"{where}: params and state have no leaves; pass the stacked "
                         "(params, state) from init_ensemble.")

    def one(p, s):
        y, _ = model.apply(p, s, x)
        return y if transform is None else transform(y)

    return jax.vmap(one)(params, state)


def predict_mean(model: Layer, params, state, x, *, transform: Callable | None = None):
    """The ensemble's prediction: the mean over members of `predict_all`, `(N, ...)`.

    For classifiers average probabilities, not logits: `transform=fnn.softmax`.
    """
    return jnp.mean(_predict_all("predict_mean", model, params, state, x, transform), axis=0)
