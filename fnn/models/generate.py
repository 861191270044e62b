"""`generate`: sample a continuation of a prompt from a language model."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import require_rank
from fnn._checks import (
    NON_NEGATIVE,
    BadType,
    BadValue,
    checked,
    optional,
    positive_int,
    prng_key,
    shape_str,
)
from fnn.core import Layer, as_layer

__all__ = ["generate"]


def _sample(key, logits, temperature: float):
    """One id per row of `logits: (N, V)`: drawn from `softmax(logits / temperature)`,
    or the argmax for `temperature = 0`."""
    if temperature == 0.0:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, logits / temperature, axis=-1).astype(jnp.int32)


def _recurrent(model, params, state, prompt, steps, key, temperature):
    """Read the prompt once, then one id at a time from the carry (`initial_state`)."""
    (logits, carry), _ = model.apply(params, state, prompt)

    def step(c, k):
        carry, last = c
        ids = _sample(k, last, temperature)
        (logits, carry), _ = model.apply(params, state, ids.reshape(-1, 1), initial_state=carry)
        return (carry, logits[:, -1]), ids

    _, ids = jax.lax.scan(step, (carry, logits[:, -1]), jax.random.split(key, steps))
    return ids.T


def _windowed(model, params, state, prompt, steps, key, temperature, window):
    """Re-run the model on the last `window` ids for each new id (a causal model: the
    logits at a step depend on the ids up to it only, so what follows in the buffer —
    zeros not yet generated — cannot matter)."""
    n, p = prompt.shape
    total = p + steps
    width = min(window, total)
    seq = jnp.zeros((n, total), jnp.int32).at[:, :p].set(prompt.astype(jnp.int32))

    def step(seq, inputs):
        i, k = inputs
        length = p + i                                   # ids known so far
        start = jnp.maximum(length - width, 0)
        x = jax.lax.dynamic_slice_in_dim(seq, start, width, axis=1)
        logits, _ = model.apply(params, state, x)
        last = jax.lax.dynamic_index_in_dim(logits, length - 1 - start, axis=1,
                                            keepdims=False)
        ids = _sample(k, last, temperature)
        return jax.lax.dynamic_update_index_in_dim(seq, ids, length, axis=1), None

    seq, _ = jax.lax.scan(step, seq, (jnp.arange(steps), jax.random.split(key, steps)))
    return seq[:, p:]


@checked("generate", steps=positive_int, key=prng_key, temperature=NON_NEGATIVE,
         window=optional(positive_int))
def generate(model: Layer, params, state, prompt_ids, steps: int, *, key,
             temperature: float = 1.0, window: int | None = None):
    """Sample `steps` ids after `prompt_ids` from a language model, one at a time.

    Each new id is drawn from `softmax(logits / temperature)` of the model's logits
    at the last known step (`temperature = 0`: the most likely id; low: safe and
    repetitive; high: varied and misspelt), then appended and fed back. Two ways of
    running the model, chosen by what it declares:

    - a model whose `apply` returns `((logits, carry), state)` and takes `initial_state=`
      (`fnn.models.char_lstm(..., return_state=True)`): the prompt is read once, then
      each new id is one step from the carry (`O(1)` work per id);
    - any other causal model `(N, T) -> (N, T, vocab)` (`char_transformer`, or
      `char_lstm` without state): the model is re-run on the last `window` ids
      (default: all of them) for each new id. Pass `window=max_len` for
      `char_transformer`, whose position table has `max_len` rows.

    **Arguments:**
    - `model`, `params`, `state`: the model and its trained variables (`train=False`).
    - `prompt_ids`: integer `(N, P)`, `P >= 1`: `N` prompts of `P` ids.
    - `steps`: the number of ids to generate.
    - `key`: a PRNG key (split once per step).
    - `temperature`: `>= 0` (default 1).
    - `window`: the longest input the model is run on (windowed mode only).

    **Returns:** the generated ids `(N, steps)`, int32. Runs as one compiled `lax.scan`.
    """
    model = as_layer(model)
    require_rank(prompt_ids, 2, "prompt_ids (N, P) — N prompts of P ids")
    if not jnp.issubdtype(prompt_ids.dtype, jnp.integer):
        raise BadType(f"prompt_ids must be integer ids, got dtype {prompt_ids.dtype}.")
    if prompt_ids.shape[1] < 1:
        raise BadValue(f"prompt_ids needs at least one id per prompt, got shape "
                       f"{shape_str(prompt_ids.shape)}.")
    prompt = jnp.asarray(prompt_ids, jnp.int32)
    out = jax.eval_shape(lambda p, s, x: model.apply(p, s, x)[0], params, state, prompt)
    if isinstance(out, tuple):   # ((logits, carry), state): step from the carry
        run = jax.jit(lambda p, s, x, k: _recurrent(model, p, s, x, steps, k, temperature))
    else:
        width = prompt.shape[1] + steps if window is None else window
        run = jax.jit(lambda p, s, x, k: _windowed(model, p, s, x, steps, k, temperature,
                                                   width))
    return run(params, state, prompt, key)
