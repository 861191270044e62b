"""Data-parallel (and optionally model-sharded) training on `jax.sharding`.

fnn brings no communication code of its own: a `Mesh` names the devices, a
`NamedSharding` says how each array is laid out on them, and XLA's SPMD
partitioner inserts the collectives. The pieces:

- `make_mesh(devices=None, *, model_axis=None)`: a `Mesh` with axis `"data"`
  over all (or the given) devices; `model_axis=m` makes it 2-D,
  `("data", "model")` of shape `(n // m, m)`.
- `shard_batch(mesh, *arrays)`: split the batch axis over `"data"`
  (`NamedSharding(mesh, P("data"))`); every device holds `N / data_size` examples.
- `replicate(mesh, tree)`: a full copy of `tree` on every device (`P()`).
- `model_sharding(mesh, tree)` / `shard_model(mesh, tree)`: on a mesh with a
  `"model"` axis, large leaves (kernels: Dense `w` `(in, out)`, Conv2D `w`
  `(kh, kw, in, out)`, and the optimizer slots shaped like them) are split
  along their LAST (output) axis over `"model"`; everything else is replicated.
- `data_parallel(step, mesh)`: a step function `step(train_state, x, y) ->
  (train_state, metrics)` (e.g. `fnn.train.make_train_step(..., jit=False)`, or
  `fnn.fused.fuse(step, form)` with `stacked=True`), jitted with
  `in_shardings=(state, P("data"), P("data"))` and `out_shardings=(state, P())`.
  This module takes steps, never builds them: it does not import `fnn.train`.

**Why the gradients come out right with no `psum`.** The loss is a mean over
the GLOBAL batch. With the batch sharded along `"data"` and the params
replicated, the sharding propagation in XLA turns that mean (and the sum over
examples inside every weight gradient) into a per-device partial sum followed
by an all-reduce, because the step's outputs are declared replicated. So one
data-parallel step computes exactly the single-device step on the same global
batch, up to the order of float32 additions. The same holds for BatchNorm: its
batch mean and variance are means over the sharded batch axis, so they are the
statistics of the global batch (no "sync BatchNorm" needed), and the running
statistics match single-device training. Dropout draws the same mask as on one
device (`jax_threefry_partitionable`, on by default, makes random bits
independent of the sharding).

**Batch sizes.** A global batch must divide evenly over the `"data"` axis;
otherwise `shard_batch`, a `data_parallel` step and `fnn.train.fit(..., mesh=mesh)` raise
`ValueError` naming the batch size and the device count and suggesting the
nearest multiples. (Padding silently would change the loss; dropping examples
would change the data; so neither happens behind your back.)

**Usage (one host, any number of devices):**

    mesh = fnn.distributed.make_mesh()                   # all devices on "data"
    ts = fnn.distributed.replicate(mesh, fnn.train.init_train_state(model, opt, key, shape))
    step = fnn.distributed.data_parallel(
        fnn.train.make_train_step(model, loss, opt, jit=False), mesh)
    for xb, yb in fnn.data.batches(key, x, y, batch_size=256, drop_last=True):
        ts, metrics = step(ts, *fnn.distributed.shard_batch(mesh, xb, yb))

or `fnn.train.make_train_step(model, loss, opt, mesh=mesh)` (the same step), or
simply `fnn.train.fit(model, opt, loss, (x, y), ..., mesh=mesh)`.

**Multi-host recipe** (one process per host, each seeing its local devices;
e.g. 4 hosts x 8 GPUs = 32 devices):

1. Start the same script on every host and call, before any other JAX call,
   `jax.distributed.initialize()` (on Cloud TPU and SLURM it finds the
   coordinator itself; elsewhere pass `coordinator_address="host0:1234",
   num_processes=4, process_id=i`). Afterwards `jax.devices()` lists ALL 32
   devices and `jax.local_devices()` this host's 8.
2. `mesh = make_mesh()` builds the global mesh, identically on every host.
3. Each host loads only its share of each global batch (e.g. shard the file
   list by `jax.process_index()` of `jax.process_count()`), `global_batch /
   process_count` examples per host per step, and calls `shard_batch(mesh, xb,
   yb)`: with more than one process it assembles the global array with
   `jax.make_array_from_process_local_data(P("data") sharding, local_batch)`
   instead of `jax.device_put`, so no data crosses hosts.
4. Initialise params from the same key on every host (they are then identical)
   and `replicate(mesh, ts)`; the step is unchanged.
5. Checkpoint from one process: `if jax.process_index() == 0:
   fnn.checkpoint.save(path, ts)` (replicated arrays are readable on every
   host; gather model-sharded ones first with
   `jax.experimental.multihost_utils.process_allgather`).
`examples/data_parallel.py --coordinator ...` runs this recipe, and it can be
tried on one machine: two processes with 2 fake CPU devices each (CPU
collectives need `jax.config.update("jax_cpu_collectives_implementation",
"gloo")` before `initialize`) train exactly as one process with 4 devices.
`fnn.train.fit(..., mesh=mesh)` also runs multi-host when every process passes
the SAME full data set (it shuffles and slices it identically everywhere); for
data that does not fit on one host, write the loop above.
"""
from __future__ import annotations

from collections.abc import Callable

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from fnn import compiler
from fnn._checks import BadType, BadValue, labelled, named

__all__ = [
    "DATA_AXIS", "MODEL_AXIS", "MIN_SHARD_SIZE", "make_mesh", "data_size",
    "batch_sharding", "replicated_sharding", "shard_batch", "shard_stacked", "replicate",
    "model_sharding", "shard_model", "data_parallel", "mesh_of", "global_batch",
]

DATA_AXIS = "data"
MODEL_AXIS = "model"
MIN_SHARD_SIZE = 2**16  # elements; smaller leaves stay replicated on a "model" axis


# ---------------------------------------------------------------------------
# meshes and shardings


@named("make_mesh")
def make_mesh(devices=None, *, model_axis: int | None = None) -> Mesh:
    """A `Mesh` over `devices` (default: `jax.devices()`, all devices of all hosts).

    **Arguments:**
    - `devices`: a sequence of `jax.Device`s, e.g. `jax.devices()[:2]`.
    - `model_axis`: `None` (default) for a 1-D mesh with the single axis
      `"data"`; an int `m` for a 2-D mesh `("data", "model")` of shape
      `(len(devices) // m, m)`: batches are split over `"data"`, large
      parameters over `"model"` (see `model_sharding`). `m` must divide the
      device count.

    Devices are laid out in the order given, `"model"` varying fastest (so the
    devices of one model group are neighbours, e.g. on one host).
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise BadValue("expected at least one device, got an empty sequence.")
    for d in devices:
        if not isinstance(d, jax.Device):
            raise BadType(f"devices must be jax.Device objects (e.g. jax.devices()[:2]), "
                          f"got {d!r}.")
    if len(set(devices)) != len(devices):
        raise BadValue(f"devices contain duplicates: {devices}.")
    n = len(devices)
    if model_axis is None:
        return Mesh(np.array(devices, dtype=object), (DATA_AXIS,))
    if isinstance(model_axis, bool) or not isinstance(model_axis, (int, np.integer)) \
            or model_axis < 1:
        raise BadValue(f"model_axis must be None or a positive int (the size of the 'model' "
                       f"axis), got {model_axis!r}.")
    m = int(model_axis)
    if n % m:
        raise BadValue(f"model_axis={m} does not divide the {n} devices; use a divisor of {n}.")
    grid = np.array(devices, dtype=object).reshape(n // m, m)
    return Mesh(grid, (DATA_AXIS, MODEL_AXIS))


def mesh_of(mesh) -> Mesh:
    """`mesh` if it is a `Mesh` with a `"data"` axis; `BadType`/`BadValue` otherwise (for
    the public function that takes it to name)."""
    if not isinstance(mesh, Mesh):
        raise BadType(f"expected a jax.sharding.Mesh (from fnn.distributed.make_mesh()), "
                      f"got {type(mesh).__name__}.")
    if DATA_AXIS not in mesh.axis_names:
        raise BadValue(f"the mesh needs an axis named {DATA_AXIS!r}, got axes "
                       f"{tuple(mesh.axis_names)}; build it with fnn.distributed.make_mesh().")
    return mesh


@named("data_size")
def data_size(mesh: Mesh) -> int:
    """The number of devices along `"data"` (the number of batch shards)."""
    return int(mesh_of(mesh).shape[DATA_AXIS])


@named("batch_sharding")
def batch_sharding(mesh: Mesh) -> NamedSharding:
    """`NamedSharding(mesh, P("data"))`: the first (batch) axis split over `"data"`."""
    return NamedSharding(mesh_of(mesh), P(DATA_AXIS))


@named("replicated_sharding")
def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """`NamedSharding(mesh, P())`: a full copy on every device of the mesh."""
    return NamedSharding(mesh_of(mesh), P())


def global_batch(mesh: Mesh, batch: int) -> int:
    """`batch` if a GLOBAL batch of that many examples divides over the data axis;
    `BadValue` naming the nearest multiples otherwise."""
    d = data_size(mesh)
    if batch % d:
        lower, upper = batch - batch % d, batch - batch % d + d
        hint = f"{lower} or {upper}" if lower else f"{upper}"
        raise BadValue(f"a global batch of {batch} examples does not divide evenly over the "
                       f"{d} devices of the mesh's {DATA_AXIS!r} axis; use a batch size that "
                       f"is a multiple of {d} (e.g. {hint}).")
    return batch


def _batch_axis(a, i: int, axis: int = 0) -> int:
    """The size of axis `axis` (the batch axis) of argument `i`."""
    shape = getattr(a, "shape", None)
    if shape is None:
        raise BadType(f"argument {i} must be an array (numpy or jax), got {type(a).__name__}.")
    if len(shape) <= axis:
        raise BadValue(f"argument {i} is a scalar; batches need a batch axis first."
                       if len(shape) == 0 else
                       f"argument {i} of shape {tuple(shape)} has no batch axis {axis}.")
    return int(shape[axis])


@named("shard_batch")
def shard_batch(mesh: Mesh, *arrays) -> tuple:
    """Split `arrays` along their first (batch) axis over the mesh's `"data"` axis.

    Returns a tuple of `jax.Array`s with sharding `NamedSharding(mesh, P("data"))`
    (one per argument, also for a single one: `(x,) = shard_batch(mesh, x)`);
    device `i` of the data axis holds examples `[i·N/d, (i+1)·N/d)`.

    In a single process the arrays are the global batch (`jax.device_put`).
    With several processes (`jax.process_count() > 1`, see the module
    docstring) each process passes ITS part of the global batch and the global
    array is assembled with `jax.make_array_from_process_local_data`; the
    global batch is then `process_count` times the local one.

    Raises `ValueError` when the global batch size is not a multiple of the
    data-axis size, or when the arrays disagree on it.
    """
    mesh_of(mesh)
    if not arrays:
        raise BadValue("expected at least one array, got none.")
    sizes = [_batch_axis(a, i) for i, a in enumerate(arrays)]
    if len(set(sizes)) != 1:
        raise BadValue(f"all arrays must have the same first (batch) dimension, got {sizes}.")
    sharding = batch_sharding(mesh)
    procs = jax.process_count()
    global_batch(mesh, sizes[0] * procs)
    if procs == 1:
        return tuple(jax.device_put(a, sharding) for a in arrays)
    return tuple(jax.make_array_from_process_local_data(sharding, np.asarray(a))
                 for a in arrays)


def shard_stacked(mesh: Mesh, arrays: tuple) -> tuple:
    """Stacked batches `(num_batches, batch, ...)` (`fnn.data.epoch_batches`) split along
    their batch axis, `P(None, "data")`, so that `xs[i]` is sharded as `P("data")`."""
    return jax.device_put(tuple(arrays), NamedSharding(mesh, P(None, DATA_AXIS)))


def replicate(mesh: Mesh, tree):
    """`tree` (params, optimizer or train state, ...) copied onto every device of `mesh`."""
    return jax.device_put(tree, replicated_sharding(mesh))


def _leaf_spec(mesh: Mesh, shape, min_size: int) -> P:
    if MODEL_AXIS not in mesh.axis_names or len(shape) < 2:
        return P()
    m = int(mesh.shape[MODEL_AXIS])
    if shape[-1] % m or int(np.prod(shape)) < min_size:
        return P()
    return P(*([None] * (len(shape) - 1)), MODEL_AXIS)


@named("model_sharding")
def model_sharding(mesh: Mesh, tree, *, min_size: int = MIN_SHARD_SIZE):
    """A pytree of `NamedSharding`s for `tree` (params, optimizer state, `TrainState`).

    The rule, leaf by leaf (only on a mesh with a `"model"` axis of size `m`;
    without one every leaf is replicated):
    a leaf of rank >= 2 with at least `min_size` elements whose LAST axis is a
    multiple of `m` is split along that axis, `P(None, ..., "model")`: Dense
    kernels `(in, out)` and Conv2D kernels `(kh, kw, in, out)` by output
    feature, and optimizer slots (Adam's `m`, `v`) like the params they follow.
    Everything else (biases, norm parameters, BatchNorm statistics, step
    counters, keys) is replicated. The rule depends only on shapes, so params
    and their slots always agree.
    """
    mesh_of(mesh)
    min_size = int(min_size)
    return jax.tree.map(
        lambda a: NamedSharding(mesh, _leaf_spec(mesh, np.shape(a), min_size)), tree)


def shard_model(mesh: Mesh, tree, *, min_size: int = MIN_SHARD_SIZE):
    """`tree` placed on `mesh` by `model_sharding` (replicated without a "model" axis)."""
    return jax.device_put(tree, model_sharding(mesh, tree, min_size=min_size))


# ---------------------------------------------------------------------------
# the step


@named("data_parallel")
def data_parallel(step: Callable, mesh: Mesh, *, stacked: bool = False,
                  min_shard_size: int = MIN_SHARD_SIZE):
    """`step(train_state, x, y) -> (train_state, metrics)`, an UN-jitted step, jitted
    data-parallel on `mesh`.

    Returns a step of the same signature and the same result as `step` on the same
    global batch (up to float32 rounding): `jax.jit(step)` with

    - `in_shardings`: `x`, `y` split along `"data"` (`P("data")`), the state
      replicated (`P()`);
    - `out_shardings`: the new state replicated, `metrics` replicated;
    - `donate_argnums=0`: do not reuse the `train_state` you passed in.

    The gradient all-reduce is inserted by XLA (see `help(fnn.distributed)`): the
    loss is a mean over the global batch, so no `psum` is written anywhere.

    **Arguments:**
    - `step`: e.g. `fnn.train.make_train_step(model, loss, opt, jit=False)` (which
      `fnn.train.make_train_step(..., mesh=mesh)` passes here), or any function of
      that signature.
    - `mesh`: from `make_mesh`.
    - `stacked`: `step` takes `K` stacked global batches `xs: (K, batch, ...)`
      (`fnn.fused.fuse(step, form)`, as `fit(..., steps_per_call=K)` runs them):
      each batch is split along `"data"` (`P(None, "data")`, as `fit`'s epoch
      batches are).
    - `min_shard_size`: elements; see `model_sharding`.

    On a mesh with a `"model"` axis the state's layout depends on its leaf
    shapes (`model_sharding(mesh, ·, min_size=min_shard_size)`), which are
    known only when the step is traced: there the state's in/out shardings are
    left to JAX and the layout is imposed inside the step with
    `jax.lax.with_sharding_constraint` on the incoming and the new state (any
    placement is accepted; `shard_model` first avoids a reshard on the first call).

    **Inputs.** Numpy or uncommitted arrays are placed by `jit`; prefer
    `shard_batch(mesh, x, y)` and `replicate(mesh, train_state)` (or
    `shard_model` with a "model" axis) so nothing moves per call. An array
    committed to one device raises JAX's "sharding ... does not match" error:
    place it first. A global batch not divisible by the data-axis size raises
    `ValueError` before anything runs. `step.jitted` is the underlying
    `jax.jit` object (`step.jitted.lower(ts, x, y).as_text()` shows the collectives).
    With gradient accumulation every micro-batch is a slice of the global batch;
    choose a batch that is a multiple of `accumulate x data_size(mesh)` so each
    micro-batch is still spread over all devices.
    """
    mesh_of(mesh)
    axis = 1 if stacked else 0
    data = NamedSharding(mesh, P(None, DATA_AXIS) if stacked else P(DATA_AXIS))
    jitted = _jit_on_mesh(step, mesh, data, min_shard_size)

    def sharded_step(train_state, x, y):
        for i, (name, a) in enumerate((("x", x), ("y", y)), 1):
            labelled(f"fnn.distributed.data_parallel (batch {name})", global_batch, mesh,
                     labelled("fnn.distributed.data_parallel", _batch_axis, a, i, axis))
        return jitted(train_state, x, y)

    sharded_step.jitted = jitted
    sharded_step.mesh = mesh
    sharded_step.__doc__ = ("step(train_state, x, y) -> (train_state, metrics), data-parallel "
                            "on a mesh; see fnn.distributed.data_parallel.")
    return sharded_step


def _jit_on_mesh(step, mesh: Mesh, data: NamedSharding, min_shard_size: int):
    """`jax.jit` of `step(ts, x, y)` with `x`, `y` placed by `data`, the state
    replicated (or laid out per leaf on a "model" axis), the state donated."""
    rep = replicated_sharding(mesh)
    if MODEL_AXIS not in mesh.axis_names:
        return compiler.jit(step, compiler.options(), in_shardings=(rep, data, data),
                            out_shardings=(rep, rep), donate_argnums=0)
    # The state's per-leaf layout depends on its shapes, known only at trace time:
    # constrain it there; `None` leaves the jit boundary to those constraints.
    min_size = int(min_shard_size)

    def model_parallel_step(ts, x, y):
        layout = model_sharding(mesh, ts, min_size=min_size)
        ts = jax.lax.with_sharding_constraint(ts, layout)
        ts, metrics = step(ts, x, y)
        return jax.lax.with_sharding_constraint(ts, layout), metrics

    return compiler.jit(model_parallel_step, compiler.options(), in_shardings=(None, data, data),
                        out_shardings=(None, rep), donate_argnums=0)
