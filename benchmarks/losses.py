"""What `weights=`, `label_smoothing=` and streaming metrics cost, against their plain peers.

1. A jitted `value_and_grad` of `softmax_cross_entropy` on sequence logits `(N, T, C)`:
   the plain mean, `weights=mask` (a padding mask from lengths), `label_smoothing=0.1`;
   and PyTorch's `cross_entropy` forward + backward on the same shape, plain and with
   `ignore_index` (its masked form), so each variant is a ratio to its own plain peer.
2. `fnn.train.evaluate` of a Dense classifier on `M` examples, without and with the
   streaming metrics `top5_accuracy` and `precision_recall_f1(C)`.

All variants run interleaved in one process (round-robin, median of `--repeats`), so
the machine's load hits them alike. Prints a table, writes JSON with the CPU's flags.

    python benchmarks/losses.py            # full
    python benchmarks/losses.py --quick    # small shapes, few repeats
"""
import argparse
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def cpu_flags() -> list:
    """The SIMD flags that matter for these kernels (avx512f, avx512_bf16, amx_*)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next(line for line in f if line.startswith("flags")).split()
    except (OSError, StopIteration):
        return []
    return sorted(f for f in flags if f.startswith(("avx512f", "avx512_bf16", "amx", "avx2")))


def _timed(fns: dict, repeats: int) -> dict:
    """Median wall milliseconds per call of each `fn()` (which blocks), round-robin."""
    for fn in fns.values():
        fn()
        fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - start)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def loss_variants(n, t, c, repeats):
    import torch

    from fnn import losses

    torch.set_num_threads(1)   # OpenMP workers spinning against JAX's threads made it erratic

    rng = np.random.default_rng(0)
    z = jnp.asarray(rng.normal(size=(n, t, c)), jnp.float32)
    y = jnp.asarray(rng.integers(0, c, (n, t)), jnp.int32)
    mask = jnp.asarray(np.arange(t)[None, :] < rng.integers(t // 4, t + 1, n)[:, None])

    def grad_of(**kw):
        f = jax.jit(jax.value_and_grad(lambda z: losses.softmax_cross_entropy(z, y, **kw)))
        return lambda: jax.block_until_ready(f(z))

    zt = torch.tensor(np.asarray(z)).permute(0, 2, 1).contiguous().requires_grad_()
    yt = torch.tensor(np.asarray(y)).long()
    yt_ignored = torch.where(torch.tensor(np.asarray(mask)), yt, torch.full_like(yt, -100))

    def torch_of(labels, **kw):
        def run():
            loss = torch.nn.functional.cross_entropy(zt, labels, **kw)
            torch.autograd.grad(loss, zt)
        return run

    ms = _timed({"fnn mean": grad_of(), "fnn weights=mask": grad_of(weights=mask),
                 "fnn label_smoothing=0.1": grad_of(label_smoothing=0.1),
                 "torch mean": torch_of(yt), "torch ignore_index": torch_of(yt_ignored),
                 "torch label_smoothing=0.1": torch_of(yt, label_smoothing=0.1)}, repeats)
    return [{"variant": k, "ms": round(v, 3),
             "vs_plain": round(v / ms[k.split()[0] + " mean"], 3)} for k, v in ms.items()]


def evaluate_variants(m, features, c, repeats):
    from fnn import losses, optim, train
    from fnn.layers import Dense
    from fnn.metrics import streaming

    rng = np.random.default_rng(0)
    x = rng.normal(size=(m, features)).astype(np.float32)
    y = rng.integers(0, c, m).astype(np.int32)
    model = Dense(c)
    ts = train.init_train_state(model, optim.sgd(0.1), jax.random.key(0), (features,))
    extra = ("top5_accuracy", streaming.precision_recall_f1(c))

    def run(metrics):
        return lambda: train.evaluate(model, ts.params, ts.model_state,
                                      losses.softmax_cross_entropy, x, y, 256, metrics=metrics)

    ms = _timed({"evaluate": run(()), "evaluate + top5, macro P/R/F1": run(extra)}, repeats)
    return [{"variant": k, "ms": round(v, 3), "vs_plain": round(v / ms["evaluate"], 3)}
            for k, v in ms.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    n, t, c, m = (8, 32, 100, 2048) if args.quick else (32, 128, 1000, 16384)
    repeats = 5 if args.quick else args.repeats
    out = args.out or os.path.join(HERE, "results", "losses_quick.json" if args.quick
                                   else "losses.json")

    from benchmarks._report import jax_device, write_json

    print(f"jax {jax.__version__} on {jax_device()}, {os.cpu_count()} CPU cores, "
          f"{platform.machine()}, flags {' '.join(cpu_flags())}")
    rows = {"loss_grad": loss_variants(n, t, c, repeats),
            "evaluate": evaluate_variants(m, 64, 10, repeats)}
    print(f"\nsoftmax_cross_entropy value+grad, logits ({n}, {t}, {c}); "
          f"evaluate on ({m}, 64) -> 10 classes; median of {repeats}")
    print(f"{'variant':<34} {'ms':>9} {'vs plain':>9}")
    for group in rows.values():
        for r in group:
            print(f"{r['variant']:<34} {r['ms']:>9.3f} {r['vs_plain']:>9.3f}")
    write_json(out, {"benchmark": "losses", "shape": [n, t, c], "evaluate_examples": m,
                     "repeats": repeats, "jax": jax.__version__, "device": jax_device(),
                     "cpu_count": os.cpu_count(), "cpu_flags": cpu_flags(), "results": rows})
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
