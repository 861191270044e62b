"""Optimizers over groups of leaves: `masked` (train some, freeze the rest), `partition`
(one optimizer per group, e.g. a lower learning rate for a pretrained backbone) and
`decay_mask` (which leaves weight decay should touch).

A group's optimizer sees the params with every leaf outside the group replaced by None
(an empty subtree in JAX), so it keeps slots only for its own leaves.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn._checks import BadType, BadValue, checked, named
from fnn.optim.base import Optimizer, an_optimizer, make, name_of
from fnn.optim.trees import as_params, bool_tree, is_none, like_params, require_like_params

__all__ = [
    "masked", "PartitionState", "partition", "NO_DECAY_NAMES", "decay_mask",
]


def _select(keep: Any, tree: Any) -> Any:
    """`tree` with None wherever `keep` (bools, None where `tree` has None) is False."""
    return jax.tree.map(lambda k, x: x if k else None, keep, tree)


def _merge(keep: Any, new: Any, old: Any) -> Any:
    """`old` with the leaves where `keep` is True taken from `new` (None elsewhere)."""
    return jax.tree.map(lambda k, n, o: n if k else o, keep, new, old, is_leaf=is_none)


def _train_mask(name: str, mask: Any) -> Any:
    return bool_tree(name, mask, "True = train, False = freeze")


@checked("masked", optimizer=an_optimizer, mask=_train_mask)
def masked(optimizer: Optimizer, mask: Any) -> Optimizer:
    """Train only the parameters where `mask` is True; freeze the others.

    `mask` is a pytree of Python bools with exactly the structure of the params
    (e.g. `{"w": True, "b": False}`), checked at `init` and `update`. Frozen
    leaves stay bit-for-bit unchanged and have no optimizer slots: the wrapped
    optimizer sees the params with the frozen leaves replaced by None, so its
    momentum, moments and weight decay exist for the trainable leaves only (the
    state shrinks accordingly), and a `clip_by_global_norm` inside `masked` counts
    only trainable leaves. The trainable leaves follow the wrapped optimizer exactly
    as if the frozen leaves were absent; the shared `step` counter advances on every
    update.

    The state is the wrapped optimizer's state with `params` holding all the
    parameters (frozen ones included). To exclude biases from `adamw` decay, use
    `adamw(mask=fnn.optim.decay_mask)`; for other settings per group, `partition`.
    """
    name = f"masked({name_of(optimizer)})"

    @named(f"{name}.init")
    def init(params):
        keep = like_params(params, mask, "mask")
        state = optimizer.init(_select(keep, params))
        return state._replace(params=as_params(params))

    @named(f"{name}.update")
    def update(state, grads):
        require_like_params(state.params, grads)
        keep = like_params(state.params, mask, "mask")
        inner, new = optimizer.update(state._replace(params=_select(keep, state.params)),
                                      _select(keep, grads))
        new_state = inner._replace(params=_merge(keep, new, state.params))
        return new_state, new_state.params

    return make(name, init, update)


class PartitionState(NamedTuple):
    step: jax.Array  # int32 scalar: number of updates applied
    lr: jax.Array  # float32 scalar: the first group's learning rate of the latest update
    lr_scale: jax.Array  # float32 scalar: factor on every group's learning rate, 1.0 at init
    params: Any  # pytree: all the current parameters
    groups: dict  # label -> that group's optimizer state, its `params` None (they live above)


def _optimizers(name: str, optimizers: Any) -> dict:
    if not isinstance(optimizers, dict) or not optimizers:
        raise BadType(f"{name} must be a non-empty dict label -> Optimizer, e.g. "
                      f"{{'backbone': fnn.optim.adam(1e-5), 'head': fnn.optim.adam(1e-3)}}, "
                      f"got {optimizers!r}.")
    for label, optimizer in optimizers.items():
        if not isinstance(label, str):
            raise BadType(f"{name} labels must be strings, got {label!r}.")
        an_optimizer(f"{name}[{label!r}]", optimizer)
    return dict(optimizers)


def _labels(name: str, labels: Any) -> Any:
    """A callable as is; a pytree of labels must hold strings only."""
    if callable(labels):
        return labels
    for path, label in jax.tree_util.tree_flatten_with_path(labels)[0]:
        if not isinstance(label, str):
            raise BadType(f"{name} leaves must be group labels (strings), got {label!r} at "
                          f"{jax.tree_util.keystr(path) or 'the root'}.")
    return labels


@checked("partition", optimizers=_optimizers, labels=_labels)
def partition(optimizers: dict, labels: Any) -> Optimizer:
    """One optimizer per group of parameters, each with its own settings and state.

    **Arguments:**
    - `optimizers`: a dict label → `Optimizer`, e.g.
      `{"backbone": adam(1e-5), "head": adamw(1e-3)}`.
    - `labels`: a pytree like the params whose leaves are labels of `optimizers`
      (`{"conv": {"w": "backbone", "b": "backbone"}, "out": {...: "head"}}`), or a
      function `params -> such a tree` (e.g. from `jax.tree_util.tree_map_with_path`).

    Each group's optimizer updates its own leaves as if the others were absent (its
    state keeps slots for its leaves only); a label used by no leaf gives an empty group.
    The state is a `PartitionState`: `step`, `params` (all of them), `groups` (label →
    the group's state, without params), `lr_scale` (`set_lr_scale` scales every group)
    and `lr`, the first group's rate (`current_lr`; a group's own is
    `current_lr(state.groups[label])`). Change a group's hyperparameters with
    `set_hyperparams(state, label={"learning_rate": ...})`.

    This is PyTorch's parameter groups and `optax.multi_transform`; `masked` is the
    special case of one trained group and one frozen.
    """
    name = f"partition({', '.join(f'{k}={name_of(o)}' for k, o in optimizers.items())})"

    def groups_of(params):
        tree = labels(params) if callable(labels) else labels
        tree = like_params(params, _labels("labels", tree), "labels")
        for path, label in jax.tree_util.tree_flatten_with_path(tree)[0]:
            if label not in optimizers:
                raise BadValue(f"labels must name a group of optimizers {sorted(optimizers)}, "
                               f"got {label!r} at {jax.tree_util.keystr(path) or 'the root'}.")
        return {label: jax.tree.map(lambda x, lb=label: x == lb, tree) for label in optimizers}

    @named(f"{name}.init")
    def init(params):
        params = as_params(params)
        keep = groups_of(params)
        groups = {label: optimizer.init(_select(keep[label], params))._replace(params=None)
                  for label, optimizer in optimizers.items()}
        return PartitionState(jnp.zeros((), jnp.int32), next(iter(groups.values())).lr,
                              jnp.ones((), jnp.float32), params, groups)

    @named(f"{name}.update")
    def update(state, grads):
        if not (isinstance(state, PartitionState) and set(state.groups) == set(optimizers)):
            raise BadType(f"expected the state from {name}.init (PartitionState with groups "
                          f"{sorted(optimizers)}), got {type(state).__name__}.")
        require_like_params(state.params, grads)
        keep, params, groups = groups_of(state.params), state.params, {}
        for label, optimizer in optimizers.items():
            group = state.groups[label]._replace(params=_select(keep[label], state.params),
                                                 lr_scale=state.lr_scale)
            group, new = optimizer.update(group, _select(keep[label], grads))
            params = _merge(keep[label], new, params)
            groups[label] = group._replace(params=None)
        new_state = PartitionState(state.step + 1, next(iter(groups.values())).lr,
                                   state.lr_scale, params, groups)
        return new_state, new_state.params

    return make(name, init, update)


#: Leaf names that are never decayed, whatever their rank: biases and norm scales.
NO_DECAY_NAMES = ("b", "bias", "scale")


@named("decay_mask")
def decay_mask(params: Any) -> Any:
    """The usual weight-decay mask: True for weight matrices and kernels, False for
    biases and normalisation parameters.

    A leaf decays when it has rank >= 2 and its name (its last dict key) is not `b`,
    `bias` or `scale` and does not start with `b_` (the GRU's `b_x`, `b_h`). With fnn's
    layers that is Dense/Conv/recurrent weights and Embedding tables; biases,
    BatchNorm/LayerNorm `scale` and `bias`, and PReLU's `alpha` (rank 1) do not decay.
    Pass it as `adamw(mask=fnn.optim.decay_mask)`; it reads shapes only, so it works on
    traced params and on `jax.eval_shape`'s output too.
    """
    def leaf(path, p):
        key = path[-1] if path else None
        key_name = str(getattr(key, "key", getattr(key, "name", "")))
        rank = p.ndim if hasattr(p, "ndim") else jnp.ndim(p)   # also a jax.ShapeDtypeStruct
        return bool(rank >= 2 and key_name not in NO_DECAY_NAMES and not key_name.startswith("b_"))

    return jax.tree_util.tree_map_with_path(leaf, params)
