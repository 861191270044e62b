"""The XLA options fnn compiles its programs with (`jax.jit(..., compiler_options=...)`).

Two kinds of program, two measured choices, both for the CPU backend only
(`None`, XLA's defaults, elsewhere):

- `options()`: training steps (single, fused, data-parallel, ensembles),
  evaluation and prediction. XLA:CPU hands convolutions, matrix products and
  reductions to the YNNPACK library by default; fnn keeps only the reductions
  there (`xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_REDUCE`), so
  convolutions and products run on XLA's own (Eigen) kernels. Measured on 2 CPU
  cores, jax 0.10.2, training step, default / these options: ResNet-20
  (batch 64) 449 / 234 ms, ResNet-8 1.6×, ResNet-20 with projection shortcuts
  1.7×, Inception 1.4×, ResNet-18 1.08×, AlexNet 1.02×, LeNet-5 1.07–1.12×,
  LSTM 1.12×, MLP 0.96–1.0×; forward passes alike (ResNet-20 1.5×, Inception 2.2×,
  MLP 1.35×, LeNet-5 1.00×). Keeping no YNNPACK fusion at all lost ~20 % of that
  on ResNet-20 (its BatchNorm reductions), keeping element-wise fusions too slowed
  the MLP and the LSTM by 30 %. Results agree with XLA's defaults up to float32
  rounding (the ResNet-20 loss to all printed digits).
  The second option, `xla_cpu_copy_insertion_use_region_analysis`, lets XLA's
  copy insertion analyse `while` loops region by region, so the loop carries
  are no longer copied on every iteration (an LSTM step: 21 copies → 15). It
  changes no program without a loop; with one, in one process, alternating:
  LSTM step 4–7 % faster (3 A/Bs of 100–250 rounds), GRU 1.4 %, 4 MLP steps
  fused in a `lax.scan` 3.5 %, same values.
  The single training step (`make_train_step`) takes them only when it has a
  convolution or a loop (`fnn.fused.step_options`): a step of matrix products
  and element-wise work alone (an MLP) runs 5 % faster under XLA's defaults.
- `init_options()`: initialisations (`fnn.init`, `fnn.train.init_train_state`):
  optimisation level 1 (random initialisers are compile-bound; see its docstring).

Both are plain XLA debug options, so a user's own `jax.jit` takes them too:
`jax.jit(step, compiler_options=fnn.compiler.options())`; and a step fnn builds runs
under XLA's defaults when jitted plainly: `jax.jit(make_train_step(..., jit=False))`
(what the benchmark's `fnn_xladefaults` does). They are checked once
per process against the installed jaxlib, one by one: an option it does not know
is left out (its default) instead of failing the compile.

One cost on CPU is outside any compiler option: XLA:CPU gives each call one block for
all its temporaries (ResNet-20's step at batch 64: 170 MB), which glibc maps afresh
every call. Where Linux backs it with 4 KB pages (`transparent_hugepage/enabled` =
`madvise`, Debian's and Ubuntu's default), starting Python with
`GLIBC_TUNABLES=glibc.malloc.hugetlb=1` made that step 15–25 % faster
(benchmarks/RESULTS.md, item 4, point 10). glibc reads it at process start, so fnn
cannot set it.

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
    products on XLA's own kernels, 1.0–1.9× faster steps; fewer copies in loops,
    1–7 % faster recurrent and fused steps; see the module docstring), less any
    option the installed jaxlib does not know. Other backends, or a jaxlib that
    knows neither: `None`.
    """
    return _on_cpu(_CPU_STEP_OPTIONS)


def init_options() -> dict | None:
    """XLA options for compiling an initialisation: optimisation level 1 on CPU.

    Initialisers are compile-bound: XLA:CPU compiles a program with ten
    `jax.random.normal` calls in ~14 s at its default level (superlinear in their
    number) and the random bits and values come out bit-identical at level 1,
    at half the compile time (LeNet-5 3.1 → 1.9 s, ResNet-20 9.7 → 5.0 s,
    AlexNet 6.4 → 3.3 s, with the same run time). Level 0 compiles faster still
    but runs AlexNet's init 5× slower and changes float rounding, so 1 it is.
    Other backends: None (not measured).
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
        # trace-state check saves ~20 µs of dispatch (measured on the MLP step)
        if chosen.get("jit") is nested or \
                jax.extend.core.get_opaque_trace_state() != _TOP_LEVEL:
            return nested(*args, **kwargs)
        return top(args, kwargs)(*args, **kwargs)

    call.lower = lambda *args, **kwargs: top(args, kwargs).lower(*args, **kwargs)
    call.trace = lambda *args, **kwargs: top(args, kwargs).trace(*args, **kwargs)
    return call
