"""K training steps in one compiled call: `make_fused_step` and the rule that picks its form.

A jitted training step costs one dispatch from Python per step. Fusing
`K` steps into one compiled call removes `K − 1` of them, which matters for
small steps whose time is mostly dispatch (see benchmarks/RESULTS.md,
"Measurements quoted from docstrings"). Two forms:

- `"scan"`: `lax.scan` of the step over `K` stacked batches. Compile time does
  not grow with `K`.
- `"unroll"`: the `K` steps written out one after the other (a Python loop
  under one `jit`). Compile time grows linearly with `K`.

**The convolution trap.** On XLA:CPU, a convolution's weight gradient inside a
`lax.scan`/`while` body is compiled into a much slower loop than the same
convolution at the top level, several times slower per step for a CNN and worse
for one convolution in isolation, and unrolling gains nothing over single steps
there (benchmarks/RESULTS.md, item 3, and "Measurements quoted from
docstrings"). `Conv2D` runs some passes on im2col + matmul instead
(`fnn.layers._fast_conv.conv_plan`), but its weight gradients stay on XLA's
kernel, so LeNet-5 scanned falls into the trap too; the im2col lowering counts as
a convolution here all the same. So `choose_form` (`form="auto"`) keeps
single steps for a step that contains a convolution on the CPU backend, and
scans otherwise. The rule looks at the traced step (its jaxpr), not at the model's
class, so it also catches a convolution hidden in a user's own layer.

Fused steps run the same maths as single steps; the results agree up to float
rounding (XLA may fuse the fused program differently), which the tests check.
"""
from __future__ import annotations

from collections.abc import Callable

import jax

from fnn import compiler
from fnn._jaxpr import sub_jaxprs as _sub_jaxprs
from fnn.layers import _fast_conv, _onednn_conv

__all__ = ["FORMS", "uses_convolution", "step_options", "choose_form", "fuse",
           "make_fused_step"]

FORMS = ("auto", "scan", "unroll", "single")


def _has_eqn(jaxpr, match: Callable) -> bool:
    for eqn in jaxpr.eqns:
        if match(eqn):
            return True
        if any(_has_eqn(sub, match) for v in eqn.params.values() for sub in _sub_jaxprs(v)):
            return True
    return False


def _has_primitive(jaxpr, name: str) -> bool:
    return _has_eqn(jaxpr, lambda eqn: eqn.primitive.name == name)


def _is_convolution(eqn) -> bool:
    """`lax.conv_general_dilated`, `Conv2D`'s im2col lowering (a jit named so), or one of
    the oneDNN convolution primitives (`fnn.layers._onednn_conv`)."""
    return (eqn.primitive.name == "conv_general_dilated"
            or eqn.params.get("name") == _fast_conv.IM2COL_NAME
            or eqn.primitive.name in _onednn_conv.PRIMITIVE_NAMES)


def uses_convolution(fn: Callable, *args) -> bool:
    """True if `fn(*args)` runs a convolution, at any depth: `conv_general_dilated`
    or `Conv2D`'s im2col + matmul lowering (`fnn.layers._fast_conv`).

    Traces `fn` abstractly (`jax.make_jaxpr`); nothing is compiled or run.
    """
    return _has_eqn(jax.make_jaxpr(fn)(*args).jaxpr, _is_convolution)


def _is_grouped_convolution(eqn) -> bool:
    """A `conv_general_dilated` with feature or batch groups: what `vmap` makes of a
    convolution's weight gradient (per-example gradients), or a grouped convolution."""
    return eqn.primitive.name == "conv_general_dilated" and (
        eqn.params.get("feature_group_count", 1) > 1 or eqn.params.get("batch_group_count", 1) > 1)


def step_options(closed_jaxpr) -> dict | None:
    """The XLA options for a single training step, chosen from its program.

    `compiler.options()` (convolutions and products off XLA:CPU's YNNPACK
    fusions) when the step has a convolution or a loop (`scan`/`while`: an
    LSTM), where they are faster; XLA's defaults (None) for a step of matrix
    products and element-wise work only (an MLP), whose products run faster on
    YNNPACK (benchmarks/RESULTS.md, item 4.0, and "Measurements quoted from
    docstrings"), and for a step with a grouped convolution on XLA's kernel, such as
    the per-example weight gradients of a DP-SGD step (`vmap` of `grad`), which the
    options make slower (`python -m benchmarks.dp_sgd`; RESULTS.md, "DP-SGD").

    The rule for any jitted function of the user's: `fnn.compiler.jit(fn, step_options)`
    runs `fn` with these options where they help and as a plain `jax.jit` elsewhere.
    """
    def heavy(eqn):
        return _is_convolution(eqn) or eqn.primitive.name in ("scan", "while")

    jaxpr = closed_jaxpr.jaxpr
    if _has_eqn(jaxpr, _is_grouped_convolution) or not _has_eqn(jaxpr, heavy):
        return None
    return compiler.options()


def choose_form(step: Callable, train_state, x, y, *, backend: str | None = None) -> str:
    """The form `form="auto"` uses for `step(train_state, x, y)` (one batch `x, y`).

    `"single"` (no fusion) when the step contains a convolution and the backend
    is the CPU (the convolution trap, see `help(fnn.fused)`); `"scan"` otherwise.
    `backend` defaults to `jax.default_backend()`.
    """
    backend = jax.default_backend() if backend is None else backend
    if backend == "cpu" and uses_convolution(step, train_state, x, y):
        return "single"
    return "scan"


def fuse(step: Callable, form: str = "scan") -> Callable:
    """`fused(train_state, xs, ys) -> (train_state, metrics)`, NOT jitted: `len(xs)`
    steps of `step` (an un-jitted step) as one `form` (`"scan"` or `"unroll"`).

    For callers that jit it themselves (`fnn.distributed.data_parallel(fused,
    mesh, stacked=True)` adds shardings); `make_fused_step` is this under `jax.jit`.
    """
    if form not in ("scan", "unroll"):
        raise ValueError(
            f"make_fused_step: form must be 'scan' or 'unroll', got {form!r} "
            "(use choose_form(...) to pick one, or call the single step directly).")

    def fused(train_state, xs, ys):
        if xs.ndim < 1 or ys.ndim < 1 or xs.shape[0] != ys.shape[0]:
            raise ValueError(
                f"make_fused_step: xs and ys must stack the same number K of batches on their "
                f"first axis, got shapes {tuple(xs.shape)} and {tuple(ys.shape)}.")
        if form == "scan":
            return jax.lax.scan(lambda ts, batch: step(ts, *batch), train_state, (xs, ys))
        per_step = []
        for i in range(xs.shape[0]):
            train_state, metrics = step(train_state, xs[i], ys[i])
            per_step.append(metrics)
        return train_state, jax.tree.map(lambda *m: jax.numpy.stack(m), *per_step)

    fused.__doc__ = (f"fused(train_state, xs, ys) -> (train_state, metrics): the steps as "
                     f"one {form}; see fnn.fused.make_fused_step.")
    return fused


def make_fused_step(step: Callable, form: str = "scan"):
    """`fused(train_state, xs, ys) -> (train_state, metrics)`: `len(xs)` steps in one call.

    **Arguments:**
    - `step(train_state, x, y) -> (train_state, metrics)`: an UN-jitted step
      (`fnn.train.make_train_step(..., jit=False)`).
    - `form`: `"scan"` or `"unroll"` (see `help(fnn.fused)`; `choose_form`
      picks one for a given step).

    **Returns:** a jitted function (its `train_state` argument donated) taking
    `xs: (K, batch, ...)`, `ys: (K, batch, ...)`: the `K` batches, run in order.
    Every leaf of `metrics` gets a leading axis of size `K` (step `i`'s value at
    index `i`). `K` is read from `xs` at trace time; each new `K` compiles once.
    On a mesh: `fnn.distributed.data_parallel(fuse(step, form), mesh, stacked=True)`.
    """
    return compiler.jit(fuse(step, form), compiler.options(), donate_argnums=0)
