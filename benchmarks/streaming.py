"""Streamed train_data against fit's in-memory path: steps/s of the same training, same run.

    python -m benchmarks.streaming --rounds 5

For each workload (`mlp`, `lenet5` of `benchmarks/workloads.py`) on the same
synthetic data (`steps` batches of the workload's batch size), `fit` runs one epoch
per call, fed by

- `memory`: `(x, y)` arrays (the epoch gathered on the device, `fnn.data.epoch_batches`);
- `generator`: a callable `epoch -> generator` of numpy batches sliced from a
  per-epoch permutation of the arrays (host-side gather), prefetched by fit's thread;
- `grain`: `fnn.sources.loader(ArraySource(x, y), batch, backend="grain")` (grain
  `MapDataset` of batch reads, 2 read threads), prefetched by fit's thread.

The variants alternate within every round, in an order rotating from round to round,
so slow phases of a shared machine hit them alike; every variant is compiled (one
untimed epoch) before the first round, and all share one compiled step. Reported
per variant: the median over rounds of steps/s of the epoch (`time` of
`on_epoch_end`), its ratio to `memory` in the same round (median of the ratios),
and `host_ms`: the host time to produce one batch, timed by iterating the source
alone (no training). Writes `benchmarks/results/streaming.json` with the CPU and its
AVX-512/AMX flags.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

from benchmarks import workloads
from benchmarks._report import jax_device, write_json
from benchmarks.onednn_conv import cpu_flags

HERE = os.path.dirname(os.path.abspath(__file__))
VARIANTS = ("memory", "generator", "grain")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def sources_for(x, y, batch: int, key):
    """The train_data of each variant (the same examples, one epoch of len(x)//batch)."""
    import jax
    import numpy as np

    import fnn

    n = len(x)

    def generator(epoch):
        order = np.asarray(jax.random.permutation(jax.random.fold_in(key, epoch), n))
        for b in range(n // batch):
            idx = order[b * batch:(b + 1) * batch]
            yield x[idx], y[idx]

    grain = fnn.sources.loader(fnn.sources.ArraySource(x, y), batch, key=key, backend="grain")
    return {"memory": (x, y), "generator": generator, "grain": grain}


def host_ms(source, epochs: int = 2) -> float:
    """Milliseconds per batch to iterate `source(epoch)` alone."""
    count, t0 = 0, time.perf_counter()
    for e in range(epochs):
        for _ in source(e):
            count += 1
    return 1e3 * (time.perf_counter() - t0) / count


def bench(w: workloads.Workload, steps: int, rounds: int) -> dict:
    import jax
    import numpy as np

    import fnn

    rng = np.random.default_rng(0)
    n = steps * w.batch
    x = rng.standard_normal((n, *w.input_shape), dtype=np.float32)
    y = rng.integers(0, w.num_classes, size=(n,), dtype=np.int32)
    key = jax.random.key(0)
    data = sources_for(x, y, w.batch, key)
    model, opt = workloads.fnn_model(w), fnn.optim.adam(1e-3)
    loss = fnn.losses.softmax_cross_entropy

    def epoch_time(name) -> float:
        times = []
        fnn.train.fit(model, opt, loss, data[name], epochs=1, batch_size=w.batch, key=key,
                      progress=False, on_epoch_end=lambda e, logs: times.append(logs["time"]))
        return times[0]

    for name in VARIANTS:   # compile (one shared step) and warm the caches
        epoch_time(name)
    rates = {v: [] for v in VARIANTS}
    ratios = {v: [] for v in VARIANTS}
    for r in range(rounds):
        order = VARIANTS[r % 3:] + VARIANTS[:r % 3]
        got = {v: steps / epoch_time(v) for v in order}
        for v in VARIANTS:
            rates[v].append(got[v])
            ratios[v].append(got[v] / got["memory"])
    host = {"memory": 0.0, "generator": host_ms(data["generator"]), "grain": host_ms(data["grain"])}
    return {v: {"steps_per_s": round(statistics.median(rates[v]), 2),
                "vs_memory": round(statistics.median(ratios[v]), 3),
                "host_ms_per_batch": round(host[v], 3),
                "rates": [round(a, 2) for a in rates[v]]} for v in VARIANTS}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default="mlp,lenet5")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=0, help="batches per epoch (0: per workload)")
    p.add_argument("--tiny", action="store_true", help="smoke test: tiny models, 2 rounds")
    p.add_argument("--out", default=os.path.join(HERE, "results", "streaming.json"))
    args = p.parse_args(argv)
    rounds = 2 if args.tiny else args.rounds
    report = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "device": jax_device(),
              "cpu_count": os.cpu_count(), "rounds": rounds, "workloads": {}}
    print(f"{report['cpu']} ({report['cpu_flags'] or 'no AVX-512/AMX flags'}), "
          f"{report['cpu_count']} CPUs, {report['device']}")
    print(f"{'workload':<22}{'variant':<11}{'steps/s':>9}{'vs memory':>11}{'host ms/batch':>15}")
    for name in args.workloads.split(","):
        w = workloads.get(name, tiny=args.tiny)
        steps = args.steps or (4 if args.tiny else {"mlp": 100, "lenet5": 30}.get(name, 20))
        rows = bench(w, steps, rounds)
        report["workloads"][name] = {"title": w.title, "batch": w.batch, "steps": steps,
                                     **rows}
        for v, row in rows.items():
            print(f"{w.title:<22}{v:<11}{row['steps_per_s']:>9.1f}{row['vs_memory']:>11.3f}"
                  f"{row['host_ms_per_batch']:>15.3f}")
    write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
