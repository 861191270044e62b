"""Data-parallel scaling on 1, 2 and 4 fake CPU devices: correctness and overhead.

For each device count N the script starts a fresh process with
`XLA_FLAGS=--xla_force_host_platform_device_count=N` and, in it, trains an MLP
(`mlp([512, 512, 10])` on 256 features, SGD with momentum, global batch 256)
twice from the same state on the same batch: with the plain single-device step
(`fnn.train.make_train_step`) and with the data-parallel step
(`fnn.train.make_train_step(..., mesh=mesh)`, i.e. `fnn.distributed.data_parallel`, on
`make_mesh()`, batch sharded over N devices), timing the two interleaved. It reports compile
time, median ms/step of both, their ratio (the overhead of sharding + all-reduce), the number of
all-reduces in the compiled step, and the largest parameter difference after
all steps. (Momentum SGD by default: Adam divides by `sqrt(v)`, which turns
float32 rounding noise in near-zero gradients into whole `±lr` steps, so its
parameter differences say more about Adam than about the sharding; try
`--optimizer adam`.)

Fake CPU devices share the same cores, so throughput cannot grow with N here:
read the table as a correctness-and-overhead check (the script always uses
fake CPU devices; on a machine with several GPUs, `examples/data_parallel.py`
trains on the real ones).

    python benchmarks/scaling.py                  # N = 1, 2, 4
    python benchmarks/scaling.py --quick          # fewer, smaller steps
    python benchmarks/scaling.py --devices 1 8

Writes benchmarks/results/scaling.json.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(args) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    import fnn
    from fnn import distributed, train

    model = fnn.models.mlp([args.hidden, args.hidden, 10])
    opt = (fnn.optim.adam(1e-3) if args.optimizer == "adam"
           else fnn.optim.momentum(0.01, beta=0.9))
    loss = fnn.losses.softmax_cross_entropy
    kx, ky = jax.random.split(jax.random.key(1))
    x = jax.random.normal(kx, (args.batch, args.features))
    y = jax.random.randint(ky, (args.batch,), 0, 10)
    ts0 = train.init_train_state(model, opt, jax.random.key(0), (args.features,))
    mesh = distributed.make_mesh()
    xs, ys = distributed.shard_batch(mesh, x, y)

    def compile_(step, ts, x, y):
        start = time.perf_counter()
        compiled = step.lower(ts, x, y).compile()
        return compiled, time.perf_counter() - start

    single, _ = compile_(train.make_train_step(model, loss, opt), ts0, x, y)
    ts_p = distributed.replicate(mesh, jax.tree.map(jnp.copy, ts0))
    parallel = train.make_train_step(model, loss, opt, mesh=mesh).jitted
    parallel, compile_s = compile_(parallel, ts_p, xs, ys)
    ts_s = jax.tree.map(jnp.copy, ts0)
    for _ in range(args.warmup):
        ts_s, _ = single(ts_s, x, y)
        ts_p, _ = parallel(ts_p, xs, ys)
    jax.block_until_ready((ts_s, ts_p))
    times_s, times_p = [], []
    for _ in range(args.repeats):  # interleaved, so load from other processes hits both
        start = time.perf_counter()
        ts_s, m = single(ts_s, x, y)
        jax.block_until_ready((ts_s, m))
        times_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        ts_p, m = parallel(ts_p, xs, ys)
        jax.block_until_ready((ts_p, m))
        times_p.append(time.perf_counter() - start)
    ms_single, ms_par = (1000 * statistics.median(t) for t in (times_s, times_p))
    diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree.leaves(ts_s.params), jax.tree.leaves(ts_p.params),
                                   strict=True))
    hlo = parallel.as_text()
    return {
        "devices": jax.device_count(),
        "per_device_batch": args.batch // jax.device_count(),
        "steps": args.warmup + args.repeats,
        "compile_s": round(compile_s, 3),
        "single_device_ms_per_step": round(ms_single, 3),
        "data_parallel_ms_per_step": round(ms_par, 3),
        "overhead": round(ms_par / ms_single, 3),
        "all_reduces": hlo.count("all-reduce("),
        "max_abs_param_diff": diff,
        "params_replicated": all(a.sharding.is_fully_replicated
                                 for a in jax.tree.leaves(ts_p.params)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--batch", type=int, default=256, help="global batch")
    parser.add_argument("--features", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--optimizer", choices=["momentum", "adam"], default="momentum")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results", "scaling.json"))
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.warmup, args.repeats = 128, 2, 10
    if args.worker:
        print(json.dumps(worker(args)))
        return

    rows = []
    for n in args.devices:
        env = dict(os.environ, JAX_PLATFORMS="cpu",
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker",
               "--batch", str(args.batch), "--features", str(args.features),
               "--hidden", str(args.hidden), "--warmup", str(args.warmup),
               "--repeats", str(args.repeats), "--optimizer", args.optimizer]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if out.returncode:
            sys.exit(f"worker with {n} devices failed:\n{out.stderr}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))

    head = (f"{'devices':>7} {'batch/dev':>9} {'compile s':>9} {'1-dev ms':>9} "
            f"{'N-dev ms':>9} {'overhead':>8} {'all-reduce':>10} {'max |dp|':>9} "
            f"{'replicated':>10}")
    print(f"MLP {args.features}-{args.hidden}-{args.hidden}-10, {args.optimizer}, global batch "
          f"{args.batch}, fake CPU devices on {os.cpu_count()} core(s)")
    print(head)
    for r in rows:
        print(f"{r['devices']:>7} {r['per_device_batch']:>9} {r['compile_s']:>9.2f} "
              f"{r['single_device_ms_per_step']:>9.2f} {r['data_parallel_ms_per_step']:>9.2f} "
              f"{r['overhead']:>7.2f}x {r['all_reduces']:>10} {r['max_abs_param_diff']:>9.1e} "
              f"{str(r['params_replicated']):>10}")
    import jax

    result = {
        "benchmark": "data-parallel scaling (fake CPU devices)",
        "model": f"mlp([{args.hidden}, {args.hidden}, 10]) on {args.features} features",
        "optimizer": ("adam(1e-3)" if args.optimizer == "adam" else "momentum(0.01, beta=0.9)"),
        "global_batch": args.batch,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpu_count": os.cpu_count(), "python": platform.python_version(),
                    "jax": jax.__version__},
        "note": "fake CPU devices share the same cores: a correctness-and-overhead check, "
                "not a throughput measurement",
        "rows": rows,
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
