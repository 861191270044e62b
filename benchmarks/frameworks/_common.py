"""What every framework benchmark shares: the command line, the timing loop, the report.

A framework module defines `build(workload, variant) -> Bench` and ends with
`main(build, "name")`. The loop is the same for all of them:

1. the first call of `step` (for JAX: trace + compile + one run; for PyTorch
   eager: one run with cold allocator and caches) is timed as `compile_s`;
2. `warmup` more calls, untimed;
3. `steps` calls, each timed on its own and synchronised (`sync`) before the
   clock stops, giving the median and the 10th/90th percentiles of ms/step
   (a call that runs K fused steps counts as K steps of 1/K of its time).

`page_faults_per_step` counts the minor page faults of the timed steps (`ru_minflt`)
per step: memory the step maps afresh and touches every call (on Linux).
`peak_rss_mb` is the process's peak resident memory (`ru_maxrss`) at the end,
runtime and compiled code included; on a GPU, `peak_device_mb` is the peak of
the library's device allocator (JAX's `memory_stats()["peak_bytes_in_use"]`,
`torch.cuda.max_memory_allocated()`), None on CPU.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks import workloads
from benchmarks._report import jax_device
from benchmarks.frameworks import PRECISION, THREADS


def mixed(tree):
    """Under `BENCH_PRECISION=mixed_bfloat16`: every float32 leaf of `tree` (params,
    inputs) in bfloat16, as DeepMind's `jmp` policy `params=float32,compute=bfloat16`
    casts them inside the loss (for Flax linen's Dense and Conv this is what
    `dtype=jnp.bfloat16` does: params and inputs promoted to bfloat16); gradients flow
    back to the float32 params through the cast. Otherwise `tree` unchanged."""
    if PRECISION != "mixed_bfloat16":
        return tree
    import jax
    import jax.numpy as jnp

    return jax.tree.map(lambda a: a.astype(jnp.bfloat16)
                        if getattr(a, "dtype", None) == jnp.float32 else a, tree)


def as_float32(x):
    """Logits in float32 for the loss (under mixed precision)."""
    return x.astype("float32") if PRECISION == "mixed_bfloat16" else x


@dataclass
class Bench:
    """A ready-to-run training step.

    `step(state) -> (state, loss)` runs `steps_per_call` training steps on the
    fixed batch (closed over, or part of `state`); `sync(obj)` waits for a
    result; `versions` names the libraries used (for the report).
    """

    step: Callable[[Any], tuple]
    state: Any
    sync: Callable[[Any], Any]
    versions: dict
    steps_per_call: int = 1


def jax_sync(obj):
    import jax

    return jax.block_until_ready(obj)


def jax_versions(**extra) -> dict:
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "device": jax_device(),
            **extra}


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def run(bench: Bench, w: workloads.Workload, steps: int, warmup: int) -> dict:
    """Time `bench` and return the numbers of one report line (without identity fields)."""
    state = bench.state
    t0 = time.perf_counter()
    state, loss = bench.step(state)
    bench.sync((state, loss))
    first = time.perf_counter() - t0
    first_loss = float(loss)
    for _ in range(warmup):
        state, loss = bench.step(state)
    bench.sync((state, loss))
    times = []
    faults_before = _minor_page_faults()
    for _ in range(steps):
        t0 = time.perf_counter()
        state, loss = bench.step(state)
        bench.sync((state, loss))
        times.append(time.perf_counter() - t0)
    faults = _minor_page_faults() - faults_before
    ms = [1000.0 * t / bench.steps_per_call for t in times]
    median = percentile(ms, 50)
    return {
        "compile_s": round(first, 4),
        "ms_per_step": {"median": round(median, 4), "p10": round(percentile(ms, 10), 4),
                        "p90": round(percentile(ms, 90), 4), "min": round(min(ms), 4),
                        "mean": round(float(np.mean(ms)), 4)},
        "steps": steps * bench.steps_per_call,
        "steps_per_call": bench.steps_per_call,
        "warmup": warmup,
        "examples_per_s": round(w.batch / (median / 1000.0), 2),
        "page_faults_per_step": round(faults / (steps * bench.steps_per_call), 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "peak_device_mb": device_peak_mb(),
        "first_loss": round(first_loss, 5),
        "last_loss": round(float(loss), 5),
    }


def _minor_page_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024.0 if sys.platform != "darwin" else kb / 2**20


def device_peak_mb() -> float | None:
    """Peak accelerator memory of the library this process ran (one per process), or None.

    JAX: the default device's allocator statistics (None on CPU, where JAX keeps
    none); PyTorch: `torch.cuda.max_memory_allocated()` when CUDA was used.
    """
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if "jax" in sys.modules:
        jax = sys.modules["jax"]
        dev = jax.devices()[0]
        stats = dev.memory_stats() if dev.platform != "cpu" else None
        if stats and "peak_bytes_in_use" in stats:
            return round(stats["peak_bytes_in_use"] / 2**20, 1)
    return None


def parse_args(framework: str, variants: tuple[str, ...]):
    p = argparse.ArgumentParser(
        prog=f"python -m benchmarks.frameworks.{framework}_bench",
        description=f"Time one training step of {framework} on a benchmark workload.")
    p.add_argument("--workload", default="mlp",
                   help=f"one or more of {','.join(workloads.names())}, comma-separated")
    p.add_argument("--variant", default=variants[0], choices=variants)
    p.add_argument("--steps", type=int, default=None, help="timed steps (default: per workload)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--tiny", action="store_true", help="smoke-test shapes (2 steps)")
    p.add_argument("--json", action="store_true", help="print one JSON line per workload")
    return p.parse_args()


def main(build: Callable[[workloads.Workload, str], Bench], framework: str,
         variants: tuple[str, ...] = ("default",)) -> None:
    """Command line of a framework module: build, time, report each workload."""
    args = parse_args(framework, variants)
    for name in args.workload.split(","):
        w = workloads.get(name.strip(), tiny=args.tiny)
        if os.environ.get("BENCH_LARGE_ON_CPU") and not args.tiny:   # run --size large, CPU
            w = workloads.large_on_cpu(w)
        steps = w.steps if args.steps is None else args.steps
        warmup = w.warmup if args.warmup is None else args.warmup
        bench = build(w, args.variant)
        numbers = run(bench, w, steps, warmup)
        label = framework if args.variant == variants[0] else f"{framework}_{args.variant}"
        line = {"framework": label, "workload": w.name, "batch": w.batch,
                "input_shape": list(w.input_shape), "tiny": args.tiny, **numbers,
                "precision": "float32" if args.variant == "float32" else PRECISION,
                "threads": THREADS, "cpu_count": os.cpu_count(),
                "machine": platform.machine(), "python": platform.python_version(),
                "xla_flags": os.environ.get("XLA_FLAGS", ""),
                "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""), "versions": bench.versions}
        if args.json:
            print(json.dumps(line), flush=True)
        else:
            ms = numbers["ms_per_step"]
            print(f"{label:>18} {w.name:>9}: {ms['median']:9.3f} ms/step "
                  f"(p10 {ms['p10']:.3f}, p90 {ms['p90']:.3f}), "
                  f"compile {numbers['compile_s']:.2f} s, {numbers['examples_per_s']:,.0f} ex/s, "
                  f"peak RSS {numbers['peak_rss_mb']:.0f} MB", flush=True)
        del bench
