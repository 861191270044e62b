"""Data-parallel training on every available device with `fnn.distributed`.

The batch is split over the mesh's "data" axis, params and optimizer state are
replicated, and XLA averages the gradients (an all-reduce it inserts itself).
Runs on one CPU, several GPUs, or fake CPU devices:

    python examples/data_parallel.py                   # all devices JAX sees
    python examples/data_parallel.py --cpu-devices 4   # 4 fake CPU devices
    python examples/data_parallel.py --quick           # smoke run

Several processes (one per host; here two on this machine, 2 fake CPU devices
each, 4 in all) follow the multi-host recipe of `fnn.distributed`: every
process calls `jax.distributed.initialize`, builds the same global mesh and
feeds only its share of each global batch:

    python examples/data_parallel.py --cpu-devices 2 --coordinator localhost:12355 \
        --num-processes 2 --process-id 0 &
    python examples/data_parallel.py --cpu-devices 2 --coordinator localhost:12355 \
        --num-processes 2 --process-id 1
"""
import argparse
import os

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--cpu-devices", type=int, default=None,
                    help="simulate N CPU devices (sets XLA_FLAGS before JAX starts)")
parser.add_argument("--steps", type=int, default=300)
parser.add_argument("--per-device-batch", type=int, default=32)
parser.add_argument("--quick", action="store_true", help="run 40 steps only")
parser.add_argument("--coordinator", default=None,
                    help="host:port of process 0: run as one process of a multi-process job")
parser.add_argument("--num-processes", type=int, default=1)
parser.add_argument("--process-id", type=int, default=0)
args = parser.parse_args()
if args.cpu_devices:
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={args.cpu_devices}")
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402  (after XLA_FLAGS)

import fnn  # noqa: E402
from fnn import distributed, train  # noqa: E402

if args.coordinator:  # on a TPU pod or SLURM, jax.distributed.initialize() finds these itself
    if args.cpu_devices:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(args.coordinator, args.num_processes, args.process_id)
rank, n_proc = jax.process_index(), jax.process_count()
log = print if rank == 0 else (lambda *a, **k: None)
steps = 40 if args.quick else args.steps

mesh = distributed.make_mesh()                      # axis "data" over all devices
n_dev = distributed.data_size(mesh)
log(f"mesh: {dict(mesh.shape)} on {jax.devices()[0].platform} "
    f"({jax.device_count()} device(s), {n_proc} process(es))")

x, y = fnn.datasets.spiral(jax.random.key(0), num_per_class=200, num_classes=3)
model = fnn.models.mlp([128, 128, 3])
optimizer = fnn.optim.adam(1e-2)
loss = fnn.losses.softmax_cross_entropy
batch_size = args.per_device_batch * n_dev          # the GLOBAL batch: divisible by n_dev
local = batch_size // n_proc                        # this process's share of it

state = train.init_train_state(model, optimizer, jax.random.key(1), input_shape=(2,))
state = distributed.replicate(mesh, state)          # a full copy on every device
# the step fnn.train builds, made data-parallel (or: train.make_train_step(..., mesh=mesh))
step = distributed.data_parallel(train.make_train_step(model, loss, optimizer, jit=False), mesh)

key, done = jax.random.key(2), 0
while done < steps:
    key, sub = jax.random.split(key)
    for xb, yb in fnn.data.batches(sub, x, y, batch_size=batch_size, drop_last=True):
        # each process keeps its rows of the global batch (a real job loads only those)
        xb, yb = xb[rank * local:(rank + 1) * local], yb[rank * local:(rank + 1) * local]
        xb, yb = distributed.shard_batch(mesh, xb, yb)   # batch axis split over "data"
        state, metrics = step(state, xb, yb)
        done += 1
        if done == 1 or done % max(steps // 5, 1) == 0:
            log(f"step {done:4d}  loss {float(metrics['loss']):.4f}  "
                f"accuracy {float(metrics['accuracy']):.1%}")
        if done == steps:
            break

w = state.params["0_Dense"]["w"]
log(f"batch sharding: {xb.sharding.spec}, {len(xb.sharding.device_set)} shard(s) of "
    f"{xb.addressable_shards[0].data.shape[0]} examples; params replicated: "
    f"{w.sharding.is_fully_replicated}")
if n_proc > 1:
    jax.distributed.shutdown()
