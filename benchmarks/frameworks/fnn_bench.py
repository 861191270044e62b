"""fnn, written the way a user writes it: the model zoo, `fnn.optim.adam`,
`fnn.losses.softmax_cross_entropy` and `fnn.train.make_train_step`.

Variants (`--variant`):
- `train_step` (default): `fnn.train.init_train_state` + `fnn.train.make_train_step`
  (the step `fit` runs: jitted once, the state donated, loss and accuracy returned);
- `manual`: a hand-written `jax.jit` step on the same model and optimizer
  (`value_and_grad` of `model.apply` + `opt.update`, state donated): the
  difference to `train_step` is the cost of `make_train_step`'s extras;
- `scan4` / `unroll4` (issue 7, item 3): K = 4 steps of `make_train_step(jit=False)`
  fused into one jitted call by `fnn.fused.make_fused_step` (what
  `fit(steps_per_call=4)` runs), as a `lax.scan` over K stacked batches or
  unrolled (reported per step). Here the K batches are the same batch;
- `laxconv` (issue 7, item 4): `train_step` with `Conv2D`'s per-pass plan
  (`fnn.layers._fast_conv.conv_plan`) switched off in this process, so every
  pass of every convolution runs on `lax.conv_general_dilated`: what the plan gains;
- `xladefaults` (issue 7, item 4): `make_train_step(jit=False)` under a plain
  `jax.jit(..., donate_argnums=0)`, i.e. without `fnn.compiler.options()`:
  what fnn's XLA options gain;
- `float32`: `train_step` in float32 whatever `BENCH_PRECISION` says (the baseline
  of `benchmarks.run --precision mixed_bfloat16`, which runs the other variants
  under `fnn.precision.get(BENCH_PRECISION)`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

import fnn
import fnn.fused
import fnn.train
from benchmarks import workloads
from benchmarks.frameworks import PRECISION
from benchmarks.frameworks._common import Bench, jax_sync, jax_versions, main

VARIANTS = ("train_step", "manual", "scan4", "unroll4", "laxconv", "xladefaults", "float32")


def _disable_fast_conv() -> None:
    """Send every pass of every convolution to `lax.conv_general_dilated` (this process only)."""
    from fnn.layers import _fast_conv

    _fast_conv.conv_plan = lambda *args, **kwargs: _fast_conv.LAX


def build(w: workloads.Workload, variant: str) -> Bench:
    # `BENCH_PRECISION` (benchmarks.run --precision): fnn's policy of that name; the
    # `float32` variant ignores it (the own baseline in a mixed-precision table)
    precision = "float32" if variant == "float32" else PRECISION
    variant = "train_step" if variant == "float32" else variant
    if variant == "laxconv":
        _disable_fast_conv()
        variant = "train_step"
    model = workloads.fnn_model(w)
    opt = fnn.optim.adam(1e-3)
    loss = fnn.losses.softmax_cross_entropy
    x, y = map(jax.device_put, workloads.synthetic_batch(w))
    key = jax.random.key(0)
    versions = jax_versions(fnn=fnn.__version__)

    if variant in ("train_step", "xladefaults"):
        ts = fnn.train.init_train_state(model, opt, key, w.input_shape, precision=precision)
        if variant == "xladefaults":
            train_step = jax.jit(fnn.train.make_train_step(model, loss, opt, jit=False,
                                                           precision=precision),
                                 donate_argnums=0)
        else:
            train_step = fnn.train.make_train_step(model, loss, opt, precision=precision)

        def step(ts):
            ts, metrics = train_step(ts, x, y)
            return ts, metrics["loss"]

        return Bench(step, ts, jax_sync, versions)

    if variant in ("scan4", "unroll4"):
        k = 4
        ts = fnn.train.init_train_state(model, opt, key, w.input_shape)
        one = fnn.train.make_train_step(model, loss, opt, jit=False)
        fused = fnn.fused.make_fused_step(one, variant.removesuffix("4"))
        xs, ys = jnp.stack([x] * k), jnp.stack([y] * k)

        def step(ts):
            ts, metrics = fused(ts, xs, ys)
            return ts, metrics["loss"][-1]

        return Bench(step, ts, jax_sync, versions, steps_per_call=k)

    params, model_state = model.init(key, w.input_shape)
    opt_state = opt.init(params)

    def loss_fn(params, model_state, x, y):
        logits, model_state = model.apply(params, model_state, x, train=True)
        return loss(logits, y), model_state

    def manual_step(carry, x, y):
        opt_state, model_state = carry
        (value, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            opt_state.params, model_state, x, y)
        opt_state, _ = opt.update(opt_state, grads)
        return (opt_state, model_state), value

    manual_step = jax.jit(manual_step, donate_argnums=0)
    return Bench(lambda c: manual_step(c, x, y), (opt_state, model_state), jax_sync, versions)


if __name__ == "__main__":
    main(build, "fnn", VARIANTS)
