"""Peak memory of one training step under each precision policy, from XLA's own buffer
assignment (issue 24: bfloat16 activations should cut ResNet-20's step memory >= 30 %).

    python -m benchmarks.precision_memory                 # ResNet-20, batch 64
    python -m benchmarks.precision_memory --workload resnet50 --batch 8

For each policy it compiles `make_train_step(..., precision=policy)` (without running
it) and reads `compiled.memory_analysis()`: `temp` is the step's scratch memory (the
activations kept for the backward pass, the gradients, XLA's work buffers) and
`arguments` the train state and the batch. Deterministic, so the load of a shared
machine does not touch it. Prints a table and writes JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import os

import jax

import fnn
from benchmarks import workloads
from benchmarks._report import write_json

POLICIES = ("float32", "mixed_bfloat16", "bfloat16")


def step_memory(w: workloads.Workload, policy: str) -> dict:
    """XLA's memory analysis of one compiled training step of `w` under `policy` (MB)."""
    model, opt = workloads.fnn_model(w), fnn.optim.adam(1e-3)
    x, y = workloads.synthetic_batch(w)
    ts = jax.eval_shape(lambda k: fnn.train.init_train_state(model, opt, k, w.input_shape,
                                                             precision=policy),
                        jax.random.key(0))
    step = fnn.train.make_train_step(model, fnn.losses.softmax_cross_entropy, opt,
                                     precision=policy, jit=False)
    compiled = jax.jit(step, donate_argnums=0).lower(ts, x, y).compile()
    m = compiled.memory_analysis()
    mb = lambda b: round(b / 2**20, 2)
    return {"policy": policy, "temp_mb": mb(m.temp_size_in_bytes),
            "arguments_mb": mb(m.argument_size_in_bytes), "output_mb": mb(m.output_size_in_bytes),
            "peak_mb": mb(m.temp_size_in_bytes + m.argument_size_in_bytes
                          + m.output_size_in_bytes - m.alias_size_in_bytes)}


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m benchmarks.precision_memory",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="resnet20", choices=workloads.names())
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                 "precision_memory.json"))
    args = p.parse_args(argv)
    w = workloads.get(args.workload)
    if args.batch:
        w = dataclasses.replace(w, batch=args.batch)
    rows = [step_memory(w, policy) for policy in POLICIES]
    base = rows[0]["peak_mb"]
    print(f"{w.title}, batch {w.batch}: one training step, XLA's buffer assignment "
          f"({jax.devices()[0].platform})")
    print(f"{'policy':<16}{'temp MB':>10}{'state+batch MB':>16}{'peak MB':>10}{'vs float32':>12}")
    for r in rows:
        r["peak_vs_float32"] = round(r["peak_mb"] / base, 4)
        print(f"{r['policy']:<16}{r['temp_mb']:>10.1f}{r['arguments_mb']:>16.1f}"
              f"{r['peak_mb']:>10.1f}{r['peak_vs_float32']:>12.3f}")
    write_json(args.out, {"benchmark": "precision_memory", "workload": w.name,
                          "batch": w.batch, "rows": rows})
    print(f"wrote {args.out}")
    return rows


if __name__ == "__main__":
    main()
