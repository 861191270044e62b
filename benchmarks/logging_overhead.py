"""What per-step logging costs: the MLP training step with and without the
`fnn.train.log_steps` buffer rule, and a whole `fit` epoch with and without the
logging rules (buffer, per-epoch flush, JSONL files).

    python -m benchmarks.logging_overhead [--steps 300] [--rounds 7]

The variants alternate round by round (same process, same inputs), so a loaded
machine slows them alike; the steps run in 8·rounds segments of steps/8 (the table: the median
segment's time per step), the fits in rounds (the fastest 2-epoch `fit` of 40 steps
per epoch); who goes first alternates. Writes
`benchmarks/results/logging_overhead.json` with the CPU's AVX-512/AMX flags and the
load average.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time

from benchmarks._report import jax_device, write_json


def _cpu_flags() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return ""
    return " ".join(sorted(set(re.findall(r"\b(avx512[a-z_0-9]*|amx[a-z_0-9]*)\b", text))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="benchmarks/results/logging_overhead.json")
    args = parser.parse_args()

    import jax
    import numpy as np

    import fnn
    from fnn import layers as L
    from fnn import losses, optim, train

    model = fnn.serial(L.Flatten(), fnn.models.mlp([256, 128, 10]))
    opt = optim.adam(1e-3)
    rng = np.random.default_rng(0)
    x = jax.numpy.asarray(rng.random((128, 28, 28, 1), np.float32))
    y = jax.numpy.asarray(rng.integers(0, 10, 128).astype(np.int32))
    buffer, _ = train.log_steps("unused.jsonl", every=50)
    variants, costs = {}, {}
    for name, rules in (("plain", []), ("log_steps buffer", [buffer])):
        step = train.make_train_step(model, losses.softmax_cross_entropy, opt, rules=rules)
        ts = train.init_train_state(model, opt, jax.random.key(0), (28, 28, 1), rules=rules)
        cost = step.lower(ts, x, y).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        costs[name] = {k: float(cost.get(k, float("nan"))) for k in ("flops",
                                                                     "bytes accessed")}
        ts, m = step(ts, x, y)
        jax.block_until_ready(m)
        variants[name] = [step, ts, []]
    for r in range(args.rounds * 8):     # short segments, finely interleaved
        for v in list(variants.values())[::1 if r % 2 else -1]:   # alternate who goes first
            step, ts, times = v
            start = time.perf_counter()
            for _ in range(max(1, args.steps // 8)):
                ts, m = step(ts, x, y)
                float(m["loss"])          # fit reads every step's loss too
            times.append((time.perf_counter() - start) / max(1, args.steps // 8))
            v[1] = ts

    xs = rng.random((128 * 40, 28, 28, 1), np.float32)
    ys = rng.integers(0, 10, 128 * 40).astype(np.int32)
    fits = {"fit": [], "fit + log_epochs + log_steps": []}
    with tempfile.TemporaryDirectory() as d:
        # built once: new rules would be a new step to compile (fit memoises on them)
        logged = [train.log_epochs(os.path.join(d, "e.jsonl")),
                  *train.log_steps(os.path.join(d, "s.jsonl"), every=10)]
        for r in range(args.rounds):
            for name in list(fits)[::1 if r % 2 else -1]:
                rules = [] if name == "fit" else logged
                start = time.perf_counter()
                train.fit(model, opt, losses.softmax_cross_entropy, (xs, ys), epochs=2,
                          batch_size=128, key=jax.random.key(0), rules=rules, progress=False)
                fits[name].append(time.perf_counter() - start)

    # the median segment and the fastest round (on a loaded machine the least disturbed)
    rows = {k: statistics.median(v[2]) for k, v in variants.items()}
    rows.update({k: min(v) for k, v in fits.items()})
    base = {"plain": rows["plain"], "log_steps buffer": rows["plain"],
            "fit": rows["fit"], "fit + log_epochs + log_steps": rows["fit"]}
    print(f"{'variant':32s} {'time':>15s} {'ratio':>7s}  (steps: median segment; fit: "
          "fastest round)")
    for k, v in rows.items():
        unit = "ms/step" if k in variants else "s/fit"
        scale = 1e3 if k in variants else 1.0
        print(f"{k:32s} {v * scale:8.3f} {unit:7s} {v / base[k]:6.3f}")
    for k in ("flops", "bytes accessed"):   # XLA's own count of the compiled steps: no noise
        print(f"XLA cost analysis, {k}: plain {costs['plain'][k]:,.0f}, with the buffer "
              f"{costs['log_steps buffer'][k]:,.0f} "
              f"(ratio {costs['log_steps buffer'][k] / costs['plain'][k]:.4f})")
    report = {"device": jax_device(), "xla_cost_analysis": costs, "cpu_flags": _cpu_flags(),
              "load_average": os.getloadavg(),
              "steps": args.steps, "rounds": args.rounds, "seconds": rows,
              "all_rounds": {**{k: v[2] for k, v in variants.items()}, **fits},
              "ratio_to_plain": {k: rows[k] / base[k] for k in rows}}
    write_json(args.out, report)
    print(f"wrote {args.out}; cpu flags: {report['cpu_flags']}; load {os.getloadavg()}")


if __name__ == "__main__":
    main()
