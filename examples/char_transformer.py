"""A character-level transformer against an LSTM of the same size, on the same text.

    python examples/char_transformer.py                 # default text, a few minutes on 2 cores
    python examples/char_transformer.py my_book.txt --steps 3000
    python examples/char_transformer.py --quick         # smoke run (seconds)

Both models see the same random windows of the training text (the first 90 %) for
the same number of Adam steps (warm-up over the first 10 %, then cosine decay), and
are scored on the held-out last 10 %:

- `fnn.models.char_transformer`: Embedding + learned positions, causal pre-norm
  `TransformerBlock`s (dropout 0.2: on this small text it overfits without), LayerNorm,
  Dense;
- `fnn.models.char_lstm`: Embedding, LSTM, Dense, its hidden size chosen so that
  the parameter counts match (within a few percent).

It plots both validation losses (`--plot`, default docs/char_transformer_vs_lstm.png)
and prints samples from a prompt at two temperatures with `fnn.models.generate` (the
transformer re-runs its causal window; the LSTM steps its carry, `initial_state`).
"""
import argparse
import importlib.util
import math
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import fnn
import fnn.plot

sys.path.insert(0, str(Path(__file__).parent))
default_text = importlib.import_module("char_lstm").default_text   # the same built-in text


def n_params(model, shape) -> int:
    return fnn.summary(model, shape).total_params


def lstm_hidden_for(target: int, vocab: int) -> int:
    """The LSTM hidden size whose char_lstm has the parameter count closest to `target`:
    Embedding V·H, LSTM 8H² + 4H (input size H), Dense H·V + V."""
    count = lambda h: vocab * h + 8 * h * h + 4 * h + h * vocab + vocab  # noqa: E731
    return min(range(4, 1025), key=lambda h: abs(count(h) - target))


def train(model, data, val, args, key, label):
    """Adam on random windows of `data`; validation loss on fixed windows of `val` every
    `--eval-every` steps. Returns `(params, [(step, val_loss), ...])`."""
    k_init, k_data = jax.random.split(key)
    params, state = model.init(k_init, (args.seq_len,))
    lr = fnn.optim.schedules.warmup_cosine(args.lr, max(args.steps // 10, 1), args.steps)
    opt = fnn.optim.clip_by_global_norm(fnn.optim.adam(lr), 1.0)
    opt_state = opt.init(params)
    vocab = model.apply(params, state, jnp.zeros((1, 1), jnp.int32))[0].shape[-1]

    def loss_fn(params, ids, key=None):
        logits, _ = model.apply(params, state, ids[:, :-1], key=key, train=key is not None)
        return fnn.losses.softmax_cross_entropy(logits.reshape(-1, vocab), ids[:, 1:].reshape(-1))

    @jax.jit
    def step(opt_state, key):
        k_batch, k_drop = jax.random.split(key)
        starts = jax.random.randint(k_batch, (args.batch, 1), 0, len(data) - args.seq_len - 1)
        ids = data[starts + jnp.arange(args.seq_len + 1).reshape(1, -1)]
        loss, grads = jax.value_and_grad(loss_fn)(opt_state.params, ids, k_drop)
        return opt.update(opt_state, grads)[0], loss

    n_windows = (len(val) - 1) // args.seq_len
    val_ids = val[: n_windows * args.seq_len + 1]
    windows = jnp.stack([val_ids[i * args.seq_len: (i + 1) * args.seq_len + 1]
                         for i in range(n_windows)])
    evaluate = jax.jit(loss_fn)
    history, start = [], time.perf_counter()
    for i, k in enumerate(jax.random.split(k_data, args.steps)):
        opt_state, loss = step(opt_state, k)
        if (i + 1) % args.eval_every == 0 or i + 1 == args.steps:
            v = float(evaluate(opt_state.params, windows))
            history.append((i + 1, v))
            print(f"{label:16s} step {i + 1:5d}  train {float(loss):.3f}  val {v:.3f} nats/char"
                  f"  ({time.perf_counter() - start:.0f}s)", flush=True)
    return opt_state.params, history, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text_file", nargs="?", help="a UTF-8 text file (default: built-in text)")
    parser.add_argument("--features", type=int, default=64)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--dropout", type=float, default=0.2,
                        help="the transformer's dropout (the text is small: it overfits)")
    parser.add_argument("--prompt", default="Beautiful is ")
    parser.add_argument("--sample-len", type=int, default=200)
    parser.add_argument("--plot", default="docs/char_transformer_vs_lstm.png")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny models, 20 steps")
    args = parser.parse_args()
    if args.quick:
        args.features, args.layers, args.seq_len, args.steps = 16, 1, 16, 20
        args.eval_every, args.sample_len, args.plot = 10, 40, ""

    text = open(args.text_file, encoding="utf-8").read() if args.text_file else default_text()
    vocab = sorted(set(text))
    ids = jnp.array([vocab.index(c) for c in text], jnp.int32)
    split = int(0.9 * len(ids))
    data, val = ids[:split], ids[split:]
    print(f"{len(text)} characters ({split} train, {len(text) - split} validation), vocabulary "
          f"of {len(vocab)}; uniform guessing scores {math.log(len(vocab)):.2f} nats/char")

    transformer = fnn.models.char_transformer(len(vocab), args.features, args.heads,
                                              args.layers, args.seq_len, dropout=args.dropout)
    target = n_params(transformer, (args.seq_len,))
    hidden = lstm_hidden_for(target, len(vocab))
    lstm = fnn.models.char_lstm(len(vocab), hidden)
    print(f"char_transformer: {target:,} params; char_lstm (hidden {hidden}): "
          f"{n_params(lstm, (args.seq_len,)):,} params; {args.steps} steps of batch "
          f"{args.batch} x {args.seq_len} for each")

    key = jax.random.key(args.seed)
    k_model, k_sample = jax.random.split(key)
    results = {}
    for label, model in (("char_transformer", transformer), ("char_lstm", lstm)):
        results[label] = train(model, data, val, args, k_model, label)

    print("\nbest validation loss (nats/char), the number compared:")
    for label, (_, history, seconds) in results.items():
        print(f"  {label:16s} {min(v for _, v in history):.3f} (final {history[-1][1]:.3f}; "
              f"{seconds:.0f}s for {args.steps} steps)")
    if args.plot:
        series = {label: ([s for s, _ in h], [v for _, v in h])
                  for label, (_, h, _) in results.items()}
        fnn.plot.curves(series, args.plot, ylabel="validation loss (nats/char)",
                        title="same text, same step budget, ~same parameter count")
        print(f"plot written to {args.plot}")

    index = {c: i for i, c in enumerate(vocab)}
    prompt = jnp.array([[index[c] for c in args.prompt if c in index] or [0]], jnp.int32)
    samplers = {"char_transformer": (transformer, {"window": args.seq_len}),
                "char_lstm": (fnn.models.char_lstm(len(vocab), hidden, return_state=True), {})}
    for label, (model, extra) in samplers.items():
        for temperature in (0.5, 1.0):
            out = fnn.models.generate(model, results[label][0], {}, prompt, args.sample_len,
                                      key=k_sample, temperature=temperature, **extra)
            text_out = args.prompt + "".join(vocab[i] for i in np.asarray(out[0]))
            print(f"\n--- {label}, temperature {temperature} ---\n{text_out}")


if __name__ == "__main__":
    main()
