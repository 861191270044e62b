"""One training-step benchmark per framework, each runnable on its own:

    python -m benchmarks.frameworks.fnn_bench --workload lenet5 --json

Every module prints one JSON line per workload (see `_common.report`). This
package sets the thread settings shared by every framework *before* any of
them imports its library, so that a framework run on its own gets the same
settings as one started by `benchmarks.run`:

- `BENCH_THREADS` (default: the number of CPU cores) becomes `OMP_NUM_THREADS`,
  `MKL_NUM_THREADS`, `OPENBLAS_NUM_THREADS` and `torch.set_num_threads`; XLA:CPU
  sizes its own thread pool from the core count;
- `XLA_FLAGS` is passed through unchanged (empty by default).
"""
import os

THREADS = int(os.environ.get("BENCH_THREADS") or os.cpu_count() or 1)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# `BENCH_PRECISION` (`benchmarks.run --precision`): "float32" (default) or
# "mixed_bfloat16" (float32 params, bfloat16 compute, each framework its own way)
PRECISION = os.environ.get("BENCH_PRECISION") or "float32"
