"""Compile time and step time against depth: `fnn.serial` of n blocks vs `fnn.repeat`.

    python -m benchmarks.compile_depth                      # depths 8 16 32 64, both stacks
    python -m benchmarks.compile_depth --depths 8 16 --stacks mlp --rounds 5

Two stacks of residual blocks, each between a stem and a head:
- `mlp`: `residual(serial(Dense(64), relu, Dense(64)))` on `(64,)` features, batch 64;
- `conv`: `residual(serial(Conv2D(16, 3), BatchNorm(), relu, Conv2D(16, 3), BatchNorm()))`
  on 16×16×16 feature maps, batch 16 (ResNet-style; BatchNorm state in the step).

For each depth n the n blocks are either unrolled, `fnn.serial(*[block] * n)`, or one
`fnn.repeat(block, n)` (a `lax.scan` over stacked params). The training step (softmax
cross-entropy, `jax.value_and_grad`, SGD, train mode) is jitted with plain `jax.jit`
for both. `compile_s` is tracing + lowering + XLA compilation of the step (the wall
time of `step.lower(...).compile()`); `ms_per_step` the median of `--rounds` timed
calls of the compiled step (and `ms_min` the fastest call: on a loaded machine the
least disturbed one), the two variants of a depth timed alternately so that a change
of load hits both. Ratios are repeat / serial. Prints a table and writes JSON
with the CPU model and its AVX-512/AMX flags.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import time

from benchmarks._report import jax_device, write_json
from benchmarks.run import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_flags() -> str:
    """The AVX-512 and AMX flags of /proc/cpuinfo, sorted ("" where it does not say)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return ""
    return " ".join(sorted(set(re.findall(r"\b(avx512[a-z_0-9]*|amx[a-z_0-9]*)\b", text))))


def stack(kind: str, depth: int, use_repeat: bool):
    """(model, input_shape, batch) of the `kind` stack with `depth` blocks."""
    import fnn
    from fnn import layers as L

    if kind == "mlp":
        block = fnn.residual(fnn.serial(L.Dense(64), fnn.relu, L.Dense(64)))
        stem, head, shape, batch = [L.Dense(64)], [L.Dense(10)], (64,), 64
    else:
        block = fnn.residual(fnn.serial(L.Conv2D(16, 3), L.BatchNorm(), fnn.relu,
                                        L.Conv2D(16, 3), L.BatchNorm()))
        stem, head = [L.Conv2D(16, 3)], [L.GlobalAvgPool(), L.Dense(10)]
        shape, batch = (16, 16, 16), 16
    body = fnn.repeat(block, depth) if use_repeat else fnn.serial(*[block] * depth)
    return fnn.serial(*stem, body, fnn.relu, *head), shape, batch


def compiled_step(model, shape, batch):
    """(compiled step, its arguments, compile seconds)."""
    import jax

    import fnn

    params, state = model.init(jax.random.key(0), shape)
    x = jax.random.normal(jax.random.key(1), (batch, *shape))
    y = jax.random.randint(jax.random.key(2), (batch,), 0, 10)

    def step(params, state, x, y, key):
        def loss(p):
            logits, s = model.apply(p, state, x, key=key, train=True)
            return fnn.losses.softmax_cross_entropy(logits, y), s
        (value, new_state), grads = jax.value_and_grad(loss, has_aux=True)(params)
        params = jax.tree.map(lambda p, g: p - 0.01 * g, params, grads)
        return params, new_state, value

    args = (params, state, x, y, jax.random.key(3))
    start = time.perf_counter()
    compiled = jax.jit(step).lower(*args).compile()
    seconds = time.perf_counter() - start
    jax.block_until_ready(compiled(*args))   # warm-up
    return compiled, args, seconds


def time_pair(pair, rounds: int) -> list[list[float]]:
    """The ms of each call of each compiled step, calls alternating between them."""
    import jax

    times: list[list[float]] = [[] for _ in pair]
    for _ in range(rounds):
        for i, (compiled, args) in enumerate(pair):
            start = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times[i].append(1e3 * (time.perf_counter() - start))
    return times


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--depths", type=int, nargs="+", default=[8, 16, 32, 64])
    p.add_argument("--stacks", nargs="+", default=["mlp", "conv"], choices=["mlp", "conv"])
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--out", default=os.path.join(HERE, "results", "compile_depth.json"))
    args = p.parse_args(argv)
    rows = []
    head = (f"{'stack':5} {'depth':>5} {'compile serial s':>16} {'compile repeat s':>16} "
            f"{'ratio':>6} {'step serial ms':>14} {'step repeat ms':>14} {'ratio':>6} "
            f"{'min ratio':>9}")
    print(f"{cpu_model()} ({cpu_flags() or 'no AVX-512/AMX flags'}), {jax_device()}")
    print(head)
    print("-" * len(head))
    for kind in args.stacks:
        for depth in args.depths:
            built = [compiled_step(*stack(kind, depth, r)) for r in (False, True)]
            calls = time_pair([(c, a) for c, a, _ in built], args.rounds)
            ms = [statistics.median(t) for t in calls]
            fastest = [min(t) for t in calls]
            row = {"stack": kind, "depth": depth,
                   "compile_s": {"serial": built[0][2], "repeat": built[1][2]},
                   "ms_per_step": {"serial": ms[0], "repeat": ms[1]},
                   "ms_min": {"serial": fastest[0], "repeat": fastest[1]},
                   "compile_ratio": built[1][2] / built[0][2], "step_ratio": ms[1] / ms[0],
                   "step_ratio_min": fastest[1] / fastest[0]}
            rows.append(row)
            print(f"{kind:5} {depth:5d} {built[0][2]:16.2f} {built[1][2]:16.2f} "
                  f"{row['compile_ratio']:6.2f} {ms[0]:14.2f} {ms[1]:14.2f} "
                  f"{row['step_ratio']:6.2f} {row['step_ratio_min']:9.2f}", flush=True)
    result = {"benchmark": "compile_depth", "cpu": cpu_model(), "cpu_flags": cpu_flags(),
              "device": jax_device(), "rounds": args.rounds,
              "load_average": os.getloadavg(), "rows": rows}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
