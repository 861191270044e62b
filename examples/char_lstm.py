"""A character-level LSTM language model: train on a text file, then sample from it.

    python examples/char_lstm.py                     # default text, about a minute on 2 CPU cores
    python examples/char_lstm.py my_book.txt --steps 5000 --hidden 256
    python examples/char_lstm.py --quick             # smoke run (seconds)

Without a file it trains on text that ships with every Python: the Zen of
Python (decoded from the `this` module's source, without printing it) followed
by the essay on heaps in `heapq.__about__`.

The model is `fnn.models.char_lstm`: Embedding → LSTM (all steps) → Dense(vocab),
trained with cross-entropy to predict each next character. Sampling runs the
same parameters one character at a time with `fnn.layers.lstm_cell` inside a
`lax.scan`, dividing the logits by a temperature (low: safe and repetitive,
high: inventive and misspelt).
"""
import argparse
import ast
import codecs
import heapq
import importlib.util
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import fnn
from fnn.layers import LSTMCarry, lstm_cell


def default_text() -> str:
    """The Zen of Python and heapq's essay: offline, in every Python install."""
    with open(importlib.util.find_spec("this").origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    rot13 = next(node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and node.targets[0].id == "s")
    zen = "The Zen of Python, by Tim Peters\n\n" + codecs.decode(rot13, "rot13").split("\n\n", 1)[1]
    return zen + "\n" + heapq.__about__


def sample(params, vocab, prime: str, length: int, temperature: float, key) -> str:
    """Generate `length` characters after `prime`, one LSTM step at a time."""
    table, lstm, dense = params["0_Embedding"]["table"], params["1_LSTM"], params["2_Dense"]
    index = {c: i for i, c in enumerate(vocab)}
    prime_ids = jnp.array([index[c] for c in prime if c in index] or [0])

    def logits_of(carry, char_id):
        carry, h = lstm_cell(lstm, carry, table[char_id][None, :])
        return carry, h[0] @ dense["w"] + dense["b"]

    @jax.jit
    def generate(key):
        carry = LSTMCarry.zeros(1, lstm["w_h"].shape[0])
        carry, logits = jax.lax.scan(logits_of, carry, prime_ids)   # read the prime

        def step(state, key):
            carry, logits = state
            char_id = jax.random.categorical(key, logits[-1] / temperature)
            carry, new_logits = logits_of(carry, char_id)
            return (carry, new_logits[None, :]), char_id

        _, ids = jax.lax.scan(step, (carry, logits[-1:]), jax.random.split(key, length))
        return ids

    return prime + "".join(vocab[i] for i in np.asarray(generate(key)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("text_file", nargs="?", help="a UTF-8 text file (default: built-in text)")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--sample-len", type=int, default=400)
    parser.add_argument("--prime", default="Beautiful is ")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, 30 steps")
    args = parser.parse_args()
    if args.quick:
        args.hidden, args.steps, args.seq_len, args.sample_len = 32, 30, 32, 80

    if args.text_file:
        with open(args.text_file, encoding="utf-8") as f:
            text = f.read()
    else:
        text = default_text()
    if len(text) <= args.seq_len + 1:
        raise SystemExit(f"char_lstm: the text has {len(text)} characters; need more than "
                         f"--seq-len + 1 = {args.seq_len + 1}.")
    vocab = sorted(set(text))
    data = jnp.array([vocab.index(c) for c in text], jnp.int32)
    print(f"{len(text)} characters, vocabulary of {len(vocab)}; "
          f"uniform guessing scores {math.log(len(vocab)):.2f} nats/char")

    model = fnn.models.char_lstm(len(vocab), args.hidden)
    key = jax.random.key(args.seed)
    k_init, k_data, k_sample = jax.random.split(key, 3)
    params, state = model.init(k_init, (args.seq_len,))
    opt = fnn.optim.clip_by_global_norm(fnn.optim.adam(args.lr), 5.0)
    opt_state = opt.init(params)

    def loss_fn(params, ids):
        logits, _ = model.apply(params, state, ids[:, :-1])          # (N, T, vocab)
        targets = ids[:, 1:]                                          # the next characters
        return fnn.losses.softmax_cross_entropy(logits.reshape(-1, len(vocab)),
                                                targets.reshape(-1))

    @jax.jit
    def step(opt_state, key):
        starts = jax.random.randint(key, (args.batch, 1), 0, len(text) - args.seq_len - 1)
        ids = data[starts + jnp.arange(args.seq_len + 1).reshape(1, -1)]  # random windows
        loss, grads = jax.value_and_grad(loss_fn)(opt_state.params, ids)
        opt_state, _ = opt.update(opt_state, grads)
        return opt_state, loss

    start, log_every = time.perf_counter(), max(args.steps // 10, 1)
    for i, k in enumerate(jax.random.split(k_data, args.steps)):
        opt_state, loss = step(opt_state, k)
        if (i + 1) % log_every == 0:
            print(f"step {i + 1:5d}  loss {float(loss):.3f} nats/char"
                  f"  ({time.perf_counter() - start:.0f}s)", flush=True)

    print(f"\n--- sample (temperature {args.temperature}) ---")
    print(sample(opt_state.params, vocab, args.prime, args.sample_len, args.temperature, k_sample))


if __name__ == "__main__":
    main()
