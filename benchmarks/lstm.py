"""LSTM training-step time: `lstm_classifier(128, 10)` on (128, T, 28) input.

For each sequence length T in (28, 100, 500) and each scan `unroll`, times one
jitted Adam training step (forward, backward, update) of an LSTM with 128
hidden units and a Dense(10) head, batch 128, 28 input features (sequential
MNIST by rows has T = 28). Reports the compile time and the median wall time
per step over `--repeats` runs, prints a table and writes JSON.

    python benchmarks/lstm.py                      # full run
    python benchmarks/lstm.py --quick              # T = 28 and 100, few repeats
    python benchmarks/lstm.py --unroll 1 8 --lengths 100
"""
import argparse
import json
import os
import platform
import statistics
import time

import jax
import jax.numpy as jnp

import fnn

HERE = os.path.dirname(os.path.abspath(__file__))


def bench(length: int, unroll: int, args) -> dict:
    model = fnn.models.lstm_classifier(args.hidden, 10, unroll=unroll)
    k_init, k_x, k_y = jax.random.split(jax.random.key(0), 3)
    params, state = model.init(k_init, (length, args.features))
    opt = fnn.optim.adam(1e-3)
    opt_state = opt.init(params)
    x = jax.random.normal(k_x, (args.batch, length, args.features))
    y = jax.random.randint(k_y, (args.batch,), 0, 10)

    def loss_fn(params, x, y):
        logits, _ = model.apply(params, state, x)
        return fnn.losses.softmax_cross_entropy(logits, y)

    def step(opt_state, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(opt_state.params, x, y)
        opt_state, _ = opt.update(opt_state, grads)
        return opt_state, loss

    start = time.perf_counter()
    compiled = jax.jit(step, donate_argnums=0).lower(opt_state, x, y).compile()
    compile_s = time.perf_counter() - start
    for _ in range(args.warmup):
        opt_state, loss = compiled(opt_state, x, y)
    jax.block_until_ready(opt_state)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        opt_state, loss = compiled(opt_state, x, y)
        jax.block_until_ready((opt_state, loss))
        times.append(time.perf_counter() - start)
    ms = 1000 * statistics.median(times)
    return {"T": length, "unroll": unroll, "compile_s": round(compile_s, 3),
            "median_ms_per_step": round(ms, 3), "min_ms_per_step": round(1000 * min(times), 3),
            "sequences_per_s": round(args.batch / (ms / 1000), 1), "repeats": args.repeats}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[28, 100, 500])
    parser.add_argument("--unroll", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="T = 28, 100; unroll 1, 4; 3 repeats")
    parser.add_argument("--out", default=None,
                        help="JSON path (default results/lstm.json, --quick: lstm_quick.json)")
    args = parser.parse_args()
    if args.quick:
        args.lengths, args.unroll, args.repeats, args.warmup = [28, 100], [1, 4], 3, 1
    if args.out is None:
        name = "lstm_quick.json" if args.quick else "lstm.json"
        args.out = os.path.join(HERE, "results", name)

    device = jax.devices()[0]
    print(f"LSTM training step (Adam): batch {args.batch}, hidden {args.hidden}, "
          f"{args.features} features, Dense(10) head")
    print(f"jax {jax.__version__} on {device.platform} ({device.device_kind}), "
          f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}\n")
    header = f"{'T':>5} {'unroll':>6} {'compile s':>10} {'ms/step':>10} {'seq/s':>10}"
    print(header)
    print("-" * len(header))
    rows = []
    for length in args.lengths:
        for unroll in args.unroll:
            row = bench(length, unroll, args)
            rows.append(row)
            print(f"{row['T']:>5} {row['unroll']:>6} {row['compile_s']:>10.2f} "
                  f"{row['median_ms_per_step']:>10.2f} {row['sequences_per_s']:>10.0f}", flush=True)

    result = {
        "benchmark": "lstm_training_step",
        "model": f"lstm_classifier({args.hidden}, 10)",
        "batch": args.batch, "hidden": args.hidden, "features": args.features,
        "jax": jax.__version__, "backend": device.platform, "device": device.device_kind,
        "cpu_count": os.cpu_count(), "machine": platform.machine(),
        "quick": args.quick, "results": rows,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    jnp.zeros(())
    main()
