"""The train state and its key stream.

`TrainState` is everything a run needs to continue — the optimizer state (which
holds the params and the learning-rate scale), the model state (BatchNorm
statistics), the run's PRNG key, the number of epochs done and the states of
the per-step rules. A pytree of arrays, so it can be jitted, donated and
checkpointed.

**The key stream.** `fit(key=k)` splits `k` once: one half initialises the
params, the other becomes `TrainState.key`. Each epoch splits
`TrainState.key` into (next key, shuffle key) (`next_epoch`), and each step
draws its dropout key as `fold_in(TrainState.key, opt_state.step)` (the update
count, as Flax's examples do; `step_key`), leaving `TrainState.key` as it is.
Everything random is derived from the state, so a run resumed from a checkpoint
draws exactly the keys the uninterrupted run drew. A model without random
layers then computes no key at all: XLA drops the unused hash (a split per
step would add kernels to every step; see benchmarks/RESULTS.md, "Measurements
quoted from docstrings").

**Determinism.** On CPU, the same arguments and seed give bit-identical params
and history (tested). On GPU, XLA may choose non-deterministic reductions
(e.g. scatter-add in some gradients, cuDNN convolution algorithms); set
`XLA_FLAGS=--xla_gpu_deterministic_ops=true` to trade speed for reproducibility.
"""
from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from fnn import compiler
from fnn import precision as precision_lib
from fnn._array_checks import example_shape
from fnn._checks import BadType, BadValue, named
from fnn._util import memoized
from fnn.core import Layer
from fnn.optim.base import an_optimizer

__all__ = [
    "TrainState", "raw_key", "fresh", "init_train_state", "init_program", "next_epoch", "step_key",
]


class TrainState(NamedTuple):
    """The whole state of a training run (a pytree of arrays).

    **Fields:**
    - `opt_state`: the optimizer state (`fnn.optim`); `opt_state.params` are the
      model parameters, `opt_state.step` counts the updates and
      `opt_state.lr_scale` multiplies the learning rate (1.0 unless a rule such
      as `reduce_on_plateau` lowered it; `fnn.optim.set_lr_scale`).
    - `model_state`: the model's state (BatchNorm running statistics; `{}` if none).
    - `key`: `uint32 (2,)` raw key data (`jax.random.key_data`): the run's key
      stream; every shuffle and dropout key is derived from it.
    - `epoch`: `int32` scalar, the number of epochs completed.
    - `rules`: the states of the per-step rules (`fnn.train.rules`), a tuple with
      one entry per rule in the order given; `()` without per-step rules.
    """

    opt_state: Any
    model_state: Any
    key: jax.Array
    epoch: jax.Array
    rules: tuple = ()

    @property
    def params(self):
        """The current model parameters (`opt_state.params`)."""
        return self.opt_state.params

    @property
    def step(self):
        """The number of updates applied (`opt_state.step`)."""
        return self.opt_state.step

    @property
    def lr_scale(self):
        """The optimizer state's learning-rate scale (read-only; `fnn.optim.set_lr_scale`)."""
        return self.opt_state.lr_scale


def raw_key(key) -> jax.Array:
    """A key as raw `uint32 (2,)` data (typed keys are unwrapped); `BadValue` otherwise."""
    key = jnp.asarray(key) if not isinstance(key, jax.Array) else key
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    if key.dtype != jnp.uint32 or key.shape != (2,):
        raise BadValue(f"expected a PRNG key from jax.random.key(seed) or "
                       f"jax.random.PRNGKey(seed) (default threefry implementation), got an "
                       f"array of dtype {key.dtype} and shape {tuple(key.shape)}.")
    return key


def fresh(tree):
    """Copy every leaf into its own strongly typed buffer (safe to donate)."""
    return jax.tree.map(lambda a: jnp.array(a, dtype=jnp.asarray(a).dtype, copy=True), tree)


@named("init_train_state")
def init_train_state(model: Layer, optimizer, key, input_shape, *, rules=(),
                     precision=None) -> TrainState:
    """A new `TrainState`: params from `model.init`, optimizer state, the run key.

    `key` is split into (init key, run key); see `help(fnn.train.state)`. `rules`:
    the per-step rules the step will run (`make_train_step(..., rules=...)`);
    their states start as `rule.init(train_state)`. The initialisation runs under
    `jax.jit` (shape errors still surface at trace time). `precision`: the policy the
    step will run (`make_train_step(..., precision=...)`, a `fnn.precision.Policy` or
    its name): the params are cast to its `param_dtype`, and under loss scaling the
    optimizer state holds the scale (`fnn.precision.scaled`).
    """
    if not isinstance(model, Layer):
        raise BadType(f"model must be a fnn.Layer, got {type(model).__name__}.")
    an_optimizer("optimizer", optimizer)
    if key is None:
        raise BadValue("a key is required, e.g. init_train_state(..., key=jax.random.key(0)).")
    shape = example_shape(input_shape, "(d1, ..., dk)")
    policy = None if precision is None else precision_lib.as_policy(precision)
    return fresh(memoized(init_program, model, optimizer, shape, tuple(rules), policy)(
        raw_key(key)))


def init_program(model: Layer, optimizer, shape: tuple, rules: tuple = (), policy=None):
    """`init(raw_key) -> TrainState` as one compiled program (instead of one dispatch
    per initialiser op), reused by every `fit` with the same model and optimizer."""

    def init(key):
        k_init, k_run = jax.random.split(key)
        params, model_state = model.init(k_init, shape)
        opt = optimizer
        if policy is not None:
            params = precision_lib.cast_floating(params, policy.param_dtype)
            if policy.loss_scale is not None:
                opt = precision_lib.scaled(optimizer, policy.loss_scale)
        ts = TrainState(opt.init(params), model_state, k_run, jnp.zeros((), jnp.int32))
        return ts._replace(rules=tuple(rule.init(ts) for rule in rules))

    return compiler.jit(init, compiler.init_options())


def next_epoch(ts: TrainState) -> tuple[TrainState, jax.Array]:
    """`(train_state with the next run key, this epoch's shuffle key)`: one split of
    `TrainState.key` per epoch."""
    run_key, shuffle_key = jax.random.split(ts.key)
    return ts._replace(key=run_key), shuffle_key


def step_key(ts: TrainState) -> jax.Array:
    """The dropout key of the next step: `fold_in(TrainState.key, opt_state.step)`."""
    return jax.random.fold_in(ts.key, ts.opt_state.step)
