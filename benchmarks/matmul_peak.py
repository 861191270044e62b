"""The machine's float32 matrix-multiply rate: `(n, n) @ (n, n)`.

    python -m benchmarks.matmul_peak [--n N] [--repeats 10] [--json]

Times the product through `jax.jit` (XLA:CPU's Eigen/oneDNN dot, or cuBLAS)
and, when it is installed, through `torch.mm` (oneDNN/MKL, or cuBLAS), with the
same thread settings as the framework benchmarks (`benchmarks.frameworks`).
One product is `2·n³` FLOPs. The reported `peak_gflops` is the best of the two
libraries' best repeats: the reference for "fraction of the matmul peak" in
`benchmarks.run`.

n defaults to 2048 on CPU and 8192 on a GPU (2048² is far too small to fill
one). Each library runs at its own default float32 precision, the one its
training steps use: on NVIDIA GPUs JAX's default is TF32 and PyTorch's is full
float32 (so the peak there is JAX's TF32 rate); on CPU both are float32.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time

import numpy as np

from benchmarks._report import jax_device
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


def default_n() -> int:
    import jax

    return 2048 if jax.default_backend() == "cpu" else 8192


def measure(n: int | None = None, repeats: int = 10, dtype: str = "float32") -> dict:
    """The n² matmul rate in `dtype` ("float32", or "bfloat16": the peak of a
    mixed-precision run, float32 accumulation as both libraries do)."""
    import jax

    n = default_n() if n is None else n
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    out = {"n": n, "repeats": repeats, "device": jax_device(), "dtype": dtype}

    ja, jb = jax.device_put(a.astype(dtype if dtype == "float32" else jax.numpy.bfloat16)), \
        jax.device_put(b.astype(dtype if dtype == "float32" else jax.numpy.bfloat16))
    mm = jax.jit(lambda x, y: x @ y)
    out["jax"] = _rate(lambda: mm(ja, jb), jax.block_until_ready, n, repeats)

    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(THREADS)
        cuda = torch.cuda.is_available()
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        if dtype == "bfloat16":
            ta, tb = ta.to(torch.bfloat16), tb.to(torch.bfloat16)
        if cuda:
            ta, tb = ta.cuda(), tb.cuda()

        def sync(r):
            if cuda:
                torch.cuda.synchronize()
            return r

        out["torch"] = _rate(lambda: torch.mm(ta, tb), sync, n, repeats)
    out["peak_gflops"] = max(v["best_gflops"] for v in out.values() if isinstance(v, dict))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=None, help="default: 2048 on CPU, 8192 on a GPU")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--json", action="store_true")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = p.parse_args()
    result = measure(args.n, args.repeats, args.dtype)
    if args.json:
        print(json.dumps(result), flush=True)
        return
    for lib in ("jax", "torch"):
        if lib in result:
            r = result[lib]
            print(f"{lib:>6}: {r['best_gflops']:8.1f} GFLOP/s best, "
                  f"{r['median_gflops']:8.1f} median ({result['n']}² {args.dtype}, "
                  f"{args.repeats} repeats, {result['device']})")
    print(f"  peak: {result['peak_gflops']:.1f} GFLOP/s")


if __name__ == "__main__":
    main()
