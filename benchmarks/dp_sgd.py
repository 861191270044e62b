"""DP-SGD step: fnn against the same maths in `jax.example_libraries.stax`, one process.

    python -m benchmarks.dp_sgd --rounds 100           # prints a table, writes JSON
    python -m benchmarks.dp_sgd --tiny --rounds 3      # smoke run

The program is JAX's published DP-SGD example (`examples/differentially_private_sgd.py`
in the JAX repository), written twice from the same weights:
Conv(16, 8×8, stride 2, SAME), tanh, MaxPool(2, stride 1), Conv(32, 4×4, stride 2,
VALID), tanh, MaxPool(2, stride 1), Flatten, Dense(32), tanh, Dense(10) on 28×28×1
images, batch 256. One step = per-example gradients (`vmap(grad)`), each clipped to
global L2 norm C, summed, Gaussian noise σ·C, averaged, one SGD update.

- `fnn`: fnn layers, `fnn.per_example_grads`, `fnn.optim.clip_tree_by_global_norm`,
  plain `jax.jit`;
- `fnn+options`: the same step under `jax.jit(..., compiler_options=fnn.compiler.options())`
  (what the README used to advise for any step; issue 29, point 2);
- `fnn+chosen`: `fnn.compiler.jit(step, fnn.fused.step_options)`, the options chosen from
  the program (the README's advice now): XLA's defaults for this step on XLA's kernels
  (its per-example weight gradients are grouped convolutions);
- `stax`: `jax.example_libraries.stax` layers and the example's own clipping code,
  plain `jax.jit`.

Steps are timed round-robin (each round calls every variant once, the order rotating),
so a loaded machine slows them alike; the ratio `fnn / stax` is the number to read
(target: within 5 %). The first step's gradients of the variants are compared before
timing (they must agree to float32 rounding).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.example_libraries import stax

import fnn
from benchmarks._report import jax_device, write_json

HERE = os.path.dirname(os.path.abspath(__file__))
CLIP, NOISE, LR = 1.0, 1.1, 0.15


def cpu_flags() -> str:
    """The CPU's model and the flags that decide kernel speed (AVX-512, bf16, AMX)."""
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return "unknown"
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    keep = [f for f in flags if f.startswith(("avx512f", "avx512_bf16", "amx", "avx2"))]
    return f"{model}; {' '.join(sorted(set(keep)))}"


def fnn_model():
    L = fnn.layers
    return fnn.serial(
        L.Conv2D(16, 8, stride=2, padding="SAME"), fnn.tanh, L.MaxPool(2, stride=1),
        L.Conv2D(32, 4, stride=2, padding="VALID"), fnn.tanh, L.MaxPool(2, stride=1),
        L.Flatten(), L.Dense(32), fnn.tanh, L.Dense(10))


def stax_model():
    return stax.serial(
        stax.Conv(16, (8, 8), padding="SAME", strides=(2, 2)), stax.Tanh,
        stax.MaxPool((2, 2), (1, 1)),
        stax.Conv(32, (4, 4), padding="VALID", strides=(2, 2)), stax.Tanh,
        stax.MaxPool((2, 2), (1, 1)),
        stax.Flatten, stax.Dense(32), stax.Tanh, stax.Dense(10))


def fnn_params_as_stax(params) -> list:
    """fnn's params (`serial` keys "i_Name") as stax's list of per-layer tuples, same numbers.

    Both keep a convolution's kernel HWIO for NHWC input and Dense's as (in, out); stax's
    convolution bias has shape (1, 1, 1, C)."""
    by_index = {int(k.split("_")[0]): v for k, v in params.items()}
    out = []
    for i in range(10):
        p = by_index.get(i)
        if p is None:
            out.append(())
        else:
            out.append((p["w"], p["b"].reshape((1,) * (p["w"].ndim - 1) + (-1,))
                        if p["w"].ndim == 4 else p["b"]))
    return out


def fnn_step(noise: float = NOISE):
    model = fnn_model()
    optimizer = fnn.optim.sgd(LR)

    def loss_fn(params, x, y):
        logits, _ = model.apply(params, {}, x)
        return fnn.losses.softmax_cross_entropy(logits, y)

    def step(opt_state, x, y, key):
        grads = fnn.per_example_grads(loss_fn, opt_state.params, x, y)
        clipped = jax.vmap(lambda g: fnn.optim.clip_tree_by_global_norm(g, CLIP))(grads)
        summed = jax.tree.map(lambda g: g.sum(0), clipped)
        leaves, treedef = jax.tree.flatten(summed)
        keys = jax.random.split(key, len(leaves))
        noisy = [(g + noise * CLIP * jax.random.normal(k, g.shape, g.dtype)) / x.shape[0]
                 for g, k in zip(leaves, keys, strict=True)]
        opt_state, _ = optimizer.update(opt_state, jax.tree.unflatten(treedef, noisy))
        return opt_state

    return model, optimizer, step


def stax_step(apply_fn, noise: float = NOISE):
    """The JAX example's private_grad: vmap(grad) over examples, clip, sum, noise, mean."""

    def loss(params, x, y):
        logits = apply_fn(params, x)
        logp = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
        return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

    def clipped_grad(params, x, y):
        grads = jax.grad(loss)(params, x[None], y[None])
        leaves, tree = jax.tree.flatten(grads)
        norm = jnp.linalg.norm(jnp.array([jnp.linalg.norm(g.ravel()) for g in leaves]))
        divisor = jnp.maximum(norm / CLIP, 1.0)
        return jax.tree.unflatten(tree, [g / divisor for g in leaves])

    def step(params, x, y, key):
        grads = jax.vmap(clipped_grad, (None, 0, 0))(params, x, y)
        leaves, tree = jax.tree.flatten(grads)
        keys = jax.random.split(key, len(leaves))
        noisy = [(g.sum(0) + noise * CLIP * jax.random.normal(k, g.shape[1:], g.dtype))
                 / x.shape[0] for g, k in zip(leaves, keys, strict=True)]
        new = [p - LR * g for p, g in zip(jax.tree.leaves(params), noisy, strict=True)]
        return jax.tree.unflatten(jax.tree.structure(params), new)

    return step


def build(batch: int):
    """The variants' jitted steps, their start states, one batch and a key."""
    model, optimizer, step = fnn_step()
    params, _ = model.init(jax.random.key(0), (28, 28, 1))
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.uniform(0, 1, (batch, 28, 28, 1)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 10, batch), jnp.int32)
    _, stax_apply = stax_model()
    stax_params = fnn_params_as_stax(params)
    variants = {
        "fnn": (jax.jit(step), optimizer.init(params)),
        "fnn+options": (jax.jit(step, compiler_options=fnn.compiler.options()),
                        optimizer.init(params)),
        "fnn+chosen": (fnn.compiler.jit(step, fnn.fused.step_options), optimizer.init(params)),
        "stax": (jax.jit(stax_step(stax_apply)), stax_params),
    }
    return variants, x, y


def agree(x, y) -> float:
    """Largest difference between fnn's and stax's params after one noiseless step
    from the same weights (the noise draws differ: the two trees order their leaves
    differently)."""
    model, optimizer, step = fnn_step(noise=0.0)
    params, _ = model.init(jax.random.key(0), (28, 28, 1))
    _, stax_apply = stax_model()
    key = jax.random.key(1)
    a = jax.tree.leaves(fnn_params_as_stax(jax.jit(step)(optimizer.init(params), x, y,
                                                         key).params))
    b = jax.tree.leaves(jax.jit(stax_step(stax_apply, noise=0.0))(
        fnn_params_as_stax(params), x, y, key))
    return max(float(jnp.max(jnp.abs(p - q))) for p, q in zip(a, b, strict=True))


def run(batch: int, rounds: int, warmup: int) -> dict:
    variants, x, y = build(batch)
    key = jax.random.key(1)
    rows = {}
    states = {}
    for name, (step, state) in variants.items():
        t0 = time.perf_counter()
        jax.block_until_ready(step(state, x, y, key))
        rows[name] = {"compile_s": round(time.perf_counter() - t0, 2)}
        for _ in range(warmup):
            state = step(state, x, y, key)
        states[name] = jax.block_until_ready(state)
    max_diff = agree(x, y)
    names = list(variants)
    times = {n: [] for n in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            states[name] = jax.block_until_ready(variants[name][0](states[name], x, y, key))
            times[name].append(time.perf_counter() - t0)
    for name in names:
        rows[name]["median_ms"] = round(1e3 * statistics.median(times[name]), 3)
    base = rows["stax"]["median_ms"]
    for name in names:
        rows[name]["vs_stax"] = round(rows[name]["median_ms"] / base, 3)
    # the same ratio per round, then its median: robust to slow phases of a shared machine
    for name in names:
        ratios = [a / b for a, b in zip(times[name], times["stax"], strict=True)]
        rows[name]["paired_ratio"] = round(statistics.median(ratios), 3)
    return {"rows": rows, "max_param_diff_fnn_vs_stax": max_diff}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dp_sgd",
                                description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--tiny", action="store_true", help="batch 8 (smoke test)")
    p.add_argument("--out", default=os.path.join(HERE, "results", "dp_sgd.json"))
    args = p.parse_args(argv)
    batch = 8 if args.tiny else args.batch
    result = run(batch, args.rounds, args.warmup)
    result.update(batch=batch, rounds=args.rounds, device=jax_device(), cpu=cpu_flags(),
                  jax=jax.__version__)
    print(f"DP-SGD step, batch {batch}, {args.rounds} rounds; {result['device']}; "
          f"{result['cpu']}")
    print(f"{'variant':<14}{'compile s':>10}{'median ms':>11}{'/ stax':>8}{'paired':>8}")
    for name, row in result["rows"].items():
        print(f"{name:<14}{row['compile_s']:>10}{row['median_ms']:>11}{row['vs_stax']:>8}"
              f"{row['paired_ratio']:>8}")
    print(f"largest param difference fnn vs stax after one step: "
          f"{result['max_param_diff_fnn_vs_stax']:.2e}")
    write_json(args.out, result)
    return result


if __name__ == "__main__":
    main()
