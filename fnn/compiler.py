"""The XLA options fnn compiles its programs with (`jax.jit(..., compiler_options=...)`).

Two kinds of program, two measured choices, both for the CPU backend only
(`None`, XLA's defaults, elsewhere); the measurements are in benchmarks/RESULTS.md,
"Measurements quoted from docstrings":

- `options()`: training steps (single, fused, data-parallel, ensembles),
  evaluation and prediction. XLA:CPU hands convolutions, matrix products and
  reductions to the YNNPACK library by default; fnn keeps only the reductions
  there (`xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE`), so
  convolutions and products run on XLA's own (Eigen) kernels: faster for
  convolutional networks and recurrent steps, about even for an MLP. Keeping no
  YNNPACK fusion at all loses part of that (BatchNorm's reductions), keeping the
  element-wise fusions too slows the MLP and the LSTM. Results agree with XLA's
  defaults up to float32 rounding.
  The second option, `xla_cpu_copy_insertion_use_region_analysis`, lets XLA's
  copy insertion analyse `while` loops region by region, so the loop carries
  are no longer copied on every iteration (fewer copies in an LSTM step). It
  changes no program without a loop, and makes recurrent and fused steps faster
  with the same values.
  The single training step (`make_train_step`) takes them only when it has a
  convolution or a loop (`fnn.fused.step_options`): a step of matrix products
  and element-wise work alone (an MLP) runs faster under XLA's defaults.
- `init_options()`: initialisations (`fnn.init`, `fnn.train.init_train_state`):
  optimisation level 1 (random initialisers are compile-bound; see its docstring).

Both are plain XLA debug options, so a user's own `jax.jit` takes them too. They do not
help every program: an MLP step runs faster under XLA's defaults, and a step with grouped
convolutions, such as the per-example weight gradients of DP-SGD (`vmap` of `grad`), runs
5-30 % slower with them (`python -m benchmarks.dp_sgd`). So for a step of your own use
`fnn.compiler.jit(step, fnn.fused.step_options)`, which chooses from the program (options
where they help, a plain `jax.jit` elsewhere), rather than passing `options()` to `jax.jit`
blindly. A step fnn builds runs
under XLA's defaults when jitted plainly: `jax.jit(make_train_step(..., jit=False))`
(what the benchmark's `fnn_xladefaults` does). They are checked once
per process against the installed jaxlib, one by one: an option it does not know
is left out (its default) instead of failing the compile.

One cost on CPU is outside any compiler option: XLA:CPU gives each call one block for
all its temporaries (large for a convolutional step), which glibc maps afresh every
call. Where Linux backs it with 4 KB pages (`transparent_hugepage/enabled` =
`madvise`, Debian's and Ubuntu's default), starting Python with
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1` makes such a step faster (benchmarks/RESULTS.md,
item 4, point 10). glibc reads it at process start, so fnn cannot set it.

JAX takes `compiler_options` on a top-level `jax.jit` only: called inside another
`jit`, `grad`, `lax.scan` or `make_jaxpr`, such a function raises. fnn's programs
are built with `jit(fn, options)` below, which uses the options at the top level
and a plain `jax.jit` inside another transformation (where the caller's program
is what gets compiled), so a step fnn builds composes like any jitted function.
"""
from __future__ import annotations

import functools

import jax
import jax.extend.core
import jax.numpy as jnp

__all__ = ["options", "init_options", "jit"]

_CPU_STEP_OPTIONS = (("xla_cpu_experimental_ynn_fusion_type", "LIBRARY_FUSION_TYPE_REDUCE"),
                     ("xla_cpu_copy_insertion_use_region_analysis", True))
_CPU_INIT_OPTIONS = (("xla_backend_optimization_level", 1),)


@functools.cache
def _accepted(items: tuple) -> bool:
    """Whether this jaxlib compiles a trivial program with these options."""
    try:
        jax.jit(jnp.negative, compiler_options=dict(items)).lower(jnp.float32(0)).compile()
    except jax.errors.JaxRuntimeError:     # "No such compile option", "not a valid enum value"
        return False
    return True


def _on_cpu(items: tuple) -> dict | None:
    """The options of `items` this jaxlib accepts, on CPU; None if none (or not on CPU)."""
    if jax.default_backend() != "cpu":
        return None
    return {name: value for name, value in items if _accepted(((name, value),))} or None


def options() -> dict | None:
    """XLA options for fnn's training, evaluation and prediction programs.

    On CPU: `{"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE",
    "xla_cpu_copy_insertion_use_region_analysis": True}` (convolutions and matrix
    products on XLA's own kernels; fewer copies in loops; see `help(fnn.compiler)`
    and benchmarks/RESULTS.md, "Measurements quoted from docstrings"), less any
    option the installed jaxlib does not know. Other backends, or a jaxlib that
    knows neither: `None`.
    """
    return _on_cpu(_CPU_STEP_OPTIONS)


def init_options() -> dict | None:
    """XLA options for compiling an initialisation: optimisation level 1 on CPU.

    Initialisers are compile-bound: XLA:CPU's compile time at its default level grows
    superlinearly in the number of `jax.random` calls, and at level 1 the random bits
    and values come out bit-identical, compiled in about half the time with the same
    run time. Level 0 compiles faster still but runs the init much slower and changes
    float rounding, so 1 it is (benchmarks/RESULTS.md, "Measurements quoted from
    docstrings"). Other backends: None (not measured).
    """
    return _on_cpu(_CPU_INIT_OPTIONS)


# The trace state at import (top level: no transformation active).
_TOP_LEVEL = jax.extend.core.get_opaque_trace_state()


def jit(fn, options, **jit_kwargs):
    """`jax.jit(fn, compiler_options=..., **jit_kwargs)` that also works inside a trace.

    `options`: a dict, None (XLA's defaults: plain `jax.jit`), or a function
    `options(jaxpr) -> dict | None` that chooses them from the program itself;
    it is asked once, on the first top-level call, with the jaxpr of that call
    (JAX caches the trace, so choosing costs no second trace).

    Called at the top level, the returned function runs the program compiled
    with the options; called inside another transformation (`jax.jit`, `grad`,
    `vmap`, `lax.scan`, `make_jaxpr`), it is `jax.jit(fn, **jit_kwargs)`, which
    JAX accepts there. Both compute the same values. `lower` and `trace` are the
    top-level function's.
    """
    if not options:
        return jax.jit(fn, **jit_kwargs)
    nested = jax.jit(fn, **jit_kwargs)
    chosen = {}                      # the top-level jit, once its options are known

    def top(args, kwargs):
        if "jit" not in chosen:
            opts = options(nested.trace(*args, **kwargs).jaxpr) if callable(options) else options
            chosen["jit"] = jax.jit(fn, compiler_options=opts, **jit_kwargs) if opts else nested
        return chosen["jit"]

    @functools.wraps(fn)
    def call(*args, **kwargs):
        # XLA's defaults chosen: the plain jit is valid at any level, and skipping the
        # trace-state check saves dispatch time
        if chosen.get("jit") is nested or \
                jax.extend.core.get_opaque_trace_state() != _TOP_LEVEL:
            return nested(*args, **kwargs)
        return top(args, kwargs)(*args, **kwargs)

    call.lower = lambda *args, **kwargs: top(args, kwargs).lower(*args, **kwargs)
    call.trace = lambda *args, **kwargs: top(args, kwargs).trace(*args, **kwargs)
    return call
