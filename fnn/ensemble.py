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
from fnn._array_checks import example_shape
from fnn._checks import BadType, BadValue, checked, flag, named, require_key, shape_str
from fnn.core import Layer

__all__ = ["init_ensemble", "make_ensemble_step", "predict_all", "predict_mean", "member",
           "ensemble_size"]


@named("ensemble_size")
def ensemble_size(tree) -> int:
    """K, the leading (member) axis shared by every leaf of an ensemble pytree."""
    k = _members("the tree", tree)
    if k is None:
        raise BadValue("expected a stacked ensemble pytree, got one without leaves.")
    return k


def _members(what: str, tree, k: int | None = None) -> int | None:
    """K of the stacked pytree `tree` (`k`, or None, for one without leaves, such as the
    empty state of a model without BatchNorm); a `BadValue` when its leaves do not share
    a leading axis (of size `k`, if given)."""
    leaves = jax.tree.leaves(tree)
    if not leaves:
        return k
    sizes = {jnp.shape(a)[0] if jnp.ndim(a) else None for a in leaves}
    if len(sizes) != 1 or None in sizes or (k is not None and sizes != {k}):
        axis = "a leading member axis K" if k is None else f"the leading member axis K={k}"
        shapes = [shape_str(jnp.shape(a)) for a in leaves][:6]
        raise BadValue(f"every leaf of {what} needs {axis}, got leaves of shapes {shapes}.")
    return int(sizes.pop())


def _model(name: str, model) -> Layer:
    """`model` if it is a `fnn.Layer` (else `BadType`)."""
    if not isinstance(model, Layer):
        raise BadType(f"{name} must be a fnn.Layer, got {model!r}.")
    return model


def _function(form: str, *, optional: bool = False):
    """The rule (for `checked`) of an argument that is a function `form` (or None)."""
    def rule(name: str, fn):
        if not (callable(fn) or (optional and fn is None)):
            raise BadType(f"{name} must be a function {form}{' or None' if optional else ''}, "
                          f"got {fn!r}.")
        return fn
    return rule


def _optimizer(name: str, optimizer):
    """`optimizer` if it has `init` and `update` (else `BadType`)."""
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise BadType(f"{name} must be a fnn.optim.Optimizer (e.g. fnn.optim.adam(1e-3)), got "
                      f"{optimizer!r}.")
    return optimizer


_TRANSFORM = _function("of the predictions", optional=True)


@named("ensemble.member")
def member(tree, i: int):
    """Member `i` of a stacked ensemble pytree (params, state or optimizer state);
    `-K <= i < K` (JAX would clamp an index out of range to the last member; a traced
    `i` cannot be checked)."""
    if isinstance(i, jax.core.Tracer):
        return jax.tree.map(lambda a: a[i], tree)
    k = ensemble_size(tree)
    if isinstance(i, bool) or not hasattr(i, "__index__") or not -k <= int(i) < k:
        raise BadValue(f"i must be an int in [-{k}, {k}) for an ensemble of K={k} members, "
                       f"got {i!r}.")
    return jax.tree.map(lambda a: a[int(i)], tree)


@checked("init_ensemble", model=_model)
def init_ensemble(model: Layer, keys, input_shape):
    """Initialise K models at once: `vmap(model.init)` over `keys` (K keys).

    `keys` is a batch of PRNG keys, e.g. `jax.random.split(key, K)`. Returns
    `(params, state)` whose leaves have a leading axis K; member `i` equals
    `model.init(keys[i], input_shape)`.
    """
    how = "keys must be a batch of K keys, e.g. jax.random.split(key, K); got"
    if not isinstance(keys, (jax.Array, np.ndarray)):
        raise BadType(f"{how} a value of type {type(keys).__name__}.")
    typed = jnp.issubdtype(keys.dtype, jax.dtypes.prng_key)
    raw = jax.random.key_data(keys) if typed else keys
    if raw.ndim != 2 or raw.shape[0] == 0:
        raise BadValue(f"{how} an array of shape {shape_str(jnp.shape(keys))}.")
    if not typed and raw.dtype != np.uint32:
        raise BadType(f"{how} an array of dtype {raw.dtype}.")
    shape = example_shape(input_shape, "(d1, ..., dk)")
    return jax.vmap(lambda k: model.init(k, shape))(keys)


@checked("make_ensemble_step", model=_model, loss=_function("loss(pred, y) -> scalar"),
         regularizer=_function("regularizer(params) -> scalar", optional=True),
         shared_data=flag, jit=flag, optimizer=_optimizer)
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

    @named("ensemble step")
    def members(opt_state, model_state, x, y, key) -> int:
        """K, after every argument is checked against it."""
        k = _members("opt_state (made by jax.vmap(optimizer.init)(params))", opt_state)
        _members("model_state (from init_ensemble)", model_state, k)
        if not shared_data:
            _members("x (with shared_data=False, x is (K, N, ...))", x, k)
            _members("y (with shared_data=False, y is (K, N, ...))", y, k)
        if key is not None:
            require_key(key)
        return k

    def step(opt_state, model_state, x, y, key=None):
        k = members(opt_state, model_state, x, y, key)
        if key is None:
            return no_key(opt_state, model_state, x, y)
        return with_key(opt_state, model_state, x, y, jax.random.split(key, k))

    return compiler.jit(step, compiler.options()) if jit else step


@checked("predict_all", model=_model, transform=_TRANSFORM)
def predict_all(model: Layer, params, state, x, *, transform: Callable | None = None):
    """Every member's prediction, `(K, N, ...)`: `model.apply(params_i, state_i, x)`
    with `train=False`, followed by `transform` (e.g. `fnn.softmax`) if given."""
    return _predictions(model, params, state, x, transform)


@checked("predict_mean", model=_model, transform=_TRANSFORM)
def predict_mean(model: Layer, params, state, x, *, transform: Callable | None = None):
    """The ensemble's prediction: the mean over members of `predict_all`, `(N, ...)`.

    For classifiers average probabilities, not logits: `transform=fnn.softmax`.
    """
    return jnp.mean(_predictions(model, params, state, x, transform), axis=0)


def _predictions(model: Layer, params, state, x, transform):
    k = _members("params (from init_ensemble)", params)
    if _members("state (from init_ensemble)", state, k) is None:
        raise BadValue("params and state have no leaves; pass the stacked (params, state) "
                       "from init_ensemble.")

    def one(p, s):
        y, _ = model.apply(p, s, x)
        return y if transform is None else transform(y)

    return jax.vmap(one)(params, state)
