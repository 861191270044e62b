"""The machine's float32 matrix-multiply rate: `(n, n) @ (n, n)`, n = 2048 by default.

    python -m benchmarks.matmul_peak [--n 2048] [--repeats 10] [--json]

Times the product through `jax.jit` (XLA:CPU's Eigen/oneDNN dot) and, when it
is installed, through `torch.mm` (oneDNN/MKL), with the same thread settings as
the framework benchmarks (`benchmarks.frameworks`). One product is `2·n³`
FLOPs. The reported `peak_gflops` is the best of the two libraries' best
repeats: the reference for "fraction of the matmul peak" in `benchmarks.run`.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time

import numpy as np

from benchmarks.frameworks import THREADS  # noqa: F401  (sets the thread variables first)


def _rate(fn, sync, n: int, repeats: int) -> dict:
    sync(fn())                                   # compile / warm up
    sync(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - t0)
    flops = 2.0 * n**3
    return {"best_gflops": round(flops / min(times) / 1e9, 2),
            "median_gflops": round(flops / float(np.median(times)) / 1e9, 2)}


def measure(n: int = 2048, repeats: int = 10) -> dict:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = {"n": n, "repeats": repeats}

    import jax

    ja, jb = jax.device_put(a), jax.device_put(b)
    mm = jax.jit(lambda x, y: x @ y)
    out["jax"] = _rate(lambda: mm(ja, jb), jax.block_until_ready, n, repeats)

    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(THREADS)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        out["torch"] = _rate(lambda: torch.mm(ta, tb), lambda r: r, n, repeats)
    out["peak_gflops"] = max(v["best_gflops"] for v in out.values() if isinstance(v, dict))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    result = measure(args.n, args.repeats)
    if args.json:
        print(json.dumps(result), flush=True)
        return
    for lib in ("jax", "torch"):
        if lib in result:
            r = result[lib]
            print(f"{lib:>6}: {r['best_gflops']:8.1f} GFLOP/s best, "
                  f"{r['median_gflops']:8.1f} median ({args.n}² float32, {args.repeats} repeats)")
    print(f"  peak: {result['peak_gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
