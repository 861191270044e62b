"""In-process A/B: several JAX frameworks' training steps timed in one process, alternating.

    python -m benchmarks.ab --workload mlp --frameworks fnn,fnn_manual,rawjax --rounds 400

`benchmarks.run` gives each framework its own process, which is fair but noisy:
on a shared machine two processes of the same step differ by 10-40 %. To tell
whether a change of a few percent is real, build the steps in one process and
time them round-robin: each round calls every step once (in an order that
rotates from round to round), so slow phases of the machine hit all of them
alike. Per step it reports:

- `median_ms`, `p10_ms`, `p90_ms`: one call, synchronised (per training step for
  fused variants);
- `dispatch_ms`: median time until the call returns, before waiting for the
  result (host-side cost: argument flattening, cache lookup, launch). On a GPU a
  step whose `dispatch_ms` is close to `median_ms` is host-bound.

Only JAX frameworks take part (PyTorch sets process-wide threads), and not
variants that patch fnn for the whole process (`fnn_laxconv`).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from benchmarks import workloads
from benchmarks._report import jax_device, write_json
from benchmarks.run import FRAMEWORKS, build_in_process, missing_modules

HERE = os.path.dirname(os.path.abspath(__file__))
PROCESS_WIDE = ("fnn_laxconv",)


def run(workload: workloads.Workload, names: list[str], rounds: int, warmup: int) -> dict:
    benches, states = {}, {}
    rows = {}
    for name in names:
        bench = build_in_process(name, workload)
        t0 = time.perf_counter()
        state, loss = bench.step(bench.state)
        bench.sync((state, loss))
        rows[name] = {"compile_s": round(time.perf_counter() - t0, 3)}
        for _ in range(warmup):
            state, loss = bench.step(state)
        bench.sync((state, loss))
        benches[name], states[name] = bench, state
    total = {n: [] for n in names}
    dispatch = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            bench = benches[name]
            t0 = time.perf_counter()
            state, loss = bench.step(states[name])
            t1 = time.perf_counter()
            bench.sync((state, loss))
            t2 = time.perf_counter()
            states[name] = state
            total[name].append((t2 - t0) / bench.steps_per_call)
            dispatch[name].append((t1 - t0) / bench.steps_per_call)
    for name in names:
        ms = sorted(1e3 * t for t in total[name])
        rows[name].update(
            median_ms=round(statistics.median(ms), 4),
            p10_ms=round(ms[len(ms) // 10], 4),
            p90_ms=round(ms[(9 * len(ms)) // 10], 4),
            dispatch_ms=round(1e3 * statistics.median(dispatch[name]), 4))
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.ab",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workload", default="mlp", choices=workloads.DEFAULT)
    p.add_argument("--frameworks", default="fnn,fnn_manual,rawjax")
    p.add_argument("--rounds", type=int, default=200)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--tiny", action="store_true", help="the smoke-test shapes")
    p.add_argument("--out", default=os.path.join(HERE, "results", "ab.json"))
    args = p.parse_args(argv)
    import jax

    names = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    bad = [f for f in names if f not in FRAMEWORKS or not FRAMEWORKS[f].jax
           or f in PROCESS_WIDE]
    if bad:
        raise SystemExit(f"cannot run in one process (unknown, not JAX, or patching fnn for "
                         f"the whole process): {bad}")
    missing = {f: m for f in names if (m := missing_modules(FRAMEWORKS[f]))}
    if missing:
        raise SystemExit(f"not installed: {missing}")
    if args.rounds < 1:
        raise SystemExit(f"--rounds must be >= 1, got {args.rounds}")
    w = workloads.get(args.workload, tiny=args.tiny)
    rows = run(w, names, args.rounds, args.warmup)
    device = jax_device()
    base = rows[names[0]]["median_ms"]
    print(f"{w.name} on {device}, {args.rounds} alternating rounds "
          f"(ratio: framework / {names[0]}, > 1 when {names[0]} is faster)")
    print(f"{'framework':22s} {'median ms':>10s} {'p10':>8s} {'p90':>8s} {'dispatch':>9s} "
          f"{'compile s':>10s} {'ratio':>6s}")
    for name, row in rows.items():
        print(f"{name:22s} {row['median_ms']:10.3f} {row['p10_ms']:8.3f} {row['p90_ms']:8.3f} "
              f"{row['dispatch_ms']:9.3f} {row['compile_s']:10.2f} "
              f"{row['median_ms'] / base:6.2f}")
    result = {"device": device, "jax": jax.__version__, "workload": w.name,
              "rounds": args.rounds, "tiny": args.tiny, "steps": rows}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
