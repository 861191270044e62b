"""Recurrent layers on `jax.lax.scan`: `SimpleRNN`, `LSTM`, `GRU`.

Sequences are batch-first `(N, T, F)`. Each layer runs ONE compiled step with
`lax.scan`, so compile time and program size do not grow with `T`.

How a layer runs:

1. inside the scan, one fused `h_{t-1} @ w_h` computes all gates at once
   (G = 1, 4, 3 gate blocks of `H` columns);
2. the input projection `x_t @ w_x + b` is, by default
   (`input_projection="per_step"`), computed inside each step, as Haiku and Flax
   do. The cuDNN recipe, `input_projection="hoisted"`, projects all steps with
   one matrix product `(N·T, F) @ (F, G·H)` before the scan; on XLA:CPU that
   measured slower per training step (the backward pass through the stacked
   projection is what costs; see benchmarks/RESULTS.md, "Measurements quoted from
   docstrings"), so it is opt-in. Both give the same results (tests);
3. `unroll` (constructor keyword, default 1) is passed to `lax.scan`: unrolling a
   few steps per loop iteration lets XLA fuse across steps (see `benchmarks/lstm.py`;
   on CPU it measured no faster, see benchmarks/RESULTS.md);
4. the gates use `fnn.activations.sigmoid` / `tanh`, whose derivatives are
   written through their outputs, so the backward pass keeps only the gate
   values: an LSTM step's scan stacks 7 arrays per step for the backward pass
   instead of 12 (faster per training step on CPU; see benchmarks/RESULTS.md).

Padded batches: `apply(..., lengths=lengths)` with `lengths: (N,)` integer, each in
`[1, T]`. Inside the scan each sequence's carry is frozen after its last valid
step (a `jnp.where` on a mask), so the last output is the hidden state at that
sequence's own last step, and padding never changes any result: padded inputs
are zeroed before the projection, so even non-finite padding leaves outputs and
gradients untouched. With `return_sequences=True` the outputs past a sequence's
length are zeros.

State across calls: `initial_state=` in `apply` starts from a given carry instead of
zeros (`h: (N, H)`, or for the LSTM the pair `(h, c)`, PyTorch's `h0`/`c0` without the
layer axis); a layer built with `return_state=True` returns `((y, final_carry), state)`,
`final_carry` being `h` (or `(h, c)`) after each sequence's last valid step (with
`lengths`, at its own last step: PyTorch's `h_n`/`c_n` of a packed sequence). So a long
sequence can be run in pieces, each starting from the carry the last one returned.

The steps the layers scan, their carries (`RNNCarry(h)`, `LSTMCarry(h, c)`, zeros
at `t = 0`) and the public cells (`lstm_cell`, ...) live in `fnn.layers.cells`.

Default initialisers (all overridable by keyword):

- `w_x`: `lecun_normal`, N(0, 1/in): unit-variance inputs (e.g. N(0, 1) embeddings)
  give unit-variance gate pre-activations, as in `Dense`.
- `w_h`: `orthogonal`, drawn separately for each `(H, H)` gate block: an
  orthogonal map preserves the norm of `h` step after step, so at initialisation
  signals and gradients neither explode nor vanish through the recurrence
  (Saxe et al. 2014; Le et al. 2015). Keras and Flax make the same choice.
- biases: zeros, except the LSTM forget-gate block, set to `forget_bias=1.0`
  (Gers et al. 2000; Jozefowicz et al. 2015; Keras `unit_forget_bias=True`): the
  cell starts out remembering, which matters on long-range tasks. PyTorch
  starts from 0 — pass `forget_bias=0.0` for that.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from fnn import activations, initializers
from fnn._array_checks import (
    concrete_range,
    example_shape,
    require_axis_size,
    require_floating,
    require_key_and_train,
    require_params,
    require_rank,
)
from fnn._checks import (
    BadType,
    BadValue,
    checked,
    flag,
    labelled,
    lookup,
    named,
    number,
    positive_int,
    require_key,
    shape_str,
)
from fnn.core import Layer
from fnn.layers.cells import (
    LSTMCarry,
    RNNCarry,
    gru_step,
    initial_carry,
    lstm_step,
    simple_rnn_step,
)

__all__ = ["SimpleRNN", "LSTM", "GRU", "SEQUENCE_LAYOUT", "sequence_lengths"]


# ---------------------------------------------------------------------------
# the shared layer machinery


def _blockwise(init, key, hidden: int, blocks: int):
    """`init` drawn separately for each `(H, H)` block of an `(H, blocks·H)` matrix."""
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([init(k, (hidden, hidden)) for k in keys], axis=1)


#: How the sequence layers describe their `input_shape` in messages.
SEQUENCE_LAYOUT = "(T, features) for one sequence"


def sequence_lengths(lengths, n: int, t: int):
    """A `lengths: (N,)` integer array (or None) for a batch of `n` sequences of `t` steps,
    as a jax array; else `BadValue`/`BadType`.

    Shape and dtype are always checked; values (each in `[1, t]`) only when
    concrete — under `jit` they are traced and cannot be inspected.
    """
    if lengths is None:
        return None
    if not hasattr(lengths, "dtype"):
        lengths = np.asarray(lengths)
    if tuple(lengths.shape) != (n,):
        raise BadValue(f"expected lengths of shape ({n},) (one per sequence in the batch), "
                       f"got shape {shape_str(lengths.shape)}.")
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise BadType(f"expected integer lengths, got dtype {lengths.dtype}. "
                      "Convert with lengths.astype(jnp.int32).")
    lo, hi = concrete_range(lengths) or (1, t)
    if lo < 1 or hi > t:
        raise BadValue(f"every length must be in [1, {t}] (the time axis of x has {t} steps), "
                       f"got {lo if lo < 1 else hi} (lengths range from {lo} to {hi}).")
    return jnp.asarray(lengths)


def _require_sequence(x, in_features: int) -> None:
    """A floating batch of sequences `(N, T, in_features)` with at least one step."""
    require_rank(x, 3, f"(N, T, {in_features}) — batch, time, features")
    require_floating(x)
    require_axis_size(x, -1, in_features, "input features (last axis)")
    if x.shape[1] < 1:
        raise BadValue(f"expected at least one time step, got input {shape_str(x.shape)}.")


def _time_mask(lengths, t: int):
    """`(T, N, 1)` boolean: step `t` of sequence `n` is valid (`t < lengths[n]`)."""
    return (jnp.arange(t).reshape(t, 1) < lengths.reshape(1, -1))[:, :, None]


def _run(step, carry, xw, mask, return_sequences: bool, unroll: int):
    """Scan `step(carry, xw_t) -> (carry, h_t)` over time-major `xw: (T, N, G)`.

    Returns the final carry and, with `return_sequences`, the outputs `(T, N, H)`.
    With a `mask: (T, N, 1)`, the carry is frozen (and the output zeroed) where invalid.
    """
    if mask is None:
        def body(c, xw_t):
            c, h = step(c, xw_t)
            return c, (h if return_sequences else None)

        return jax.lax.scan(body, carry, xw, unroll=unroll)

    def masked_body(c, inputs):
        xw_t, m_t = inputs
        new, h = step(c, xw_t)
        new = jax.tree.map(lambda a, b: jnp.where(m_t, a, b), new, c)
        return new, (jnp.where(m_t, h, jnp.zeros_like(h)) if return_sequences else None)

    return jax.lax.scan(masked_body, carry, (xw, mask), unroll=unroll)


def _recurrent_layer(name, hidden, make_params, param_shapes, bias, make_step, carry_type,
                     return_sequences, unroll, input_projection, return_state=False):
    """Build the `Layer` shared by SimpleRNN / LSTM / GRU.

    `make_params(key, in_features)` draws the params, whose names and shapes are
    `param_shapes` (checked in `apply`, see `check_params`); `params[bias]` is the bias
    added to the input projection `x @ w_x`; `make_step(params)` returns the scan
    step on a projected input; `input_projection` is `"per_step"` or `"hoisted"`.
    """

    @named(name)
    def init(key, input_shape):
        shape = example_shape(input_shape, SEQUENCE_LAYOUT, rank=2,
                              hint=" Sequences are batch-first (N, T, features).")
        labelled(f"{name}.init", require_key, key)
        return make_params(key, shape[-1]), {}

    @named(name)
    def check(params, x, key, train, lengths, initial_state):
        """`(lengths, carry)`: `lengths` as a jax array (or None) and the initial carry,
        after every argument is checked."""
        require_key_and_train(key, train)
        require_params(params, param_shapes, name)
        _require_sequence(x, params["w_x"].shape[0])
        dtype = jnp.result_type(x, params["w_x"], params["w_h"])
        # the carry in float32 at least: it accumulates over T steps (half-precision
        # inputs and weights, e.g. under fnn.precision's mixed policies, keep their
        # dtype in the products)
        carry = initial_carry(initial_state, carry_type, x.shape[0], hidden,
                              jnp.promote_types(dtype, jnp.float32))
        return sequence_lengths(lengths, x.shape[0], x.shape[1]), carry

    def apply(params, state, x, *, key=None, train=False, lengths=None, initial_state=None):
        lengths, carry = check(params, x, key, train, lengths, initial_state)
        t = x.shape[1]
        mask = None if lengths is None else _time_mask(lengths, t)
        if mask is not None:  # zero the padding, so it cannot reach values or gradients
            x = jnp.where(jnp.swapaxes(mask, 0, 1), x, jnp.zeros_like(x))
        dtype = jnp.result_type(x, params["w_x"], params["w_h"])
        step = make_step(params)
        if input_projection == "hoisted":
            xs = _project(params, x, bias)                         # (T, N, G·H)
        else:
            xs = jnp.swapaxes(x, 0, 1)                             # (T, N, in)
            step = partial(_project_then, step, params["w_x"], params[bias])
        carry, ys = _run(step, carry, xs.astype(dtype), mask, return_sequences, unroll)
        y = jnp.swapaxes(ys, 0, 1) if return_sequences else carry.h
        if return_state:   # LSTM: the pair (h, c); SimpleRNN and GRU: h
            return (y, carry if len(carry) > 1 else carry.h), state
        return y, state

    # named for Python's own argument errors ("LSTM.apply() got an unexpected keyword ...")
    init.__qualname__ = init.__wrapped__.__qualname__ = f"{name}.init"
    apply.__qualname__ = f"{name}.apply"
    return Layer(init, apply, name, keywords=frozenset({"lengths", "initial_state"}))


def _project(params, x, bias: str):
    """All steps at once: `(N, T, in) @ (in, G) + b` -> time-major `(T, N, G)`."""
    xw = jnp.einsum("ntf,fg->tng", x, params["w_x"])
    return xw + params[bias].reshape(1, 1, -1)


def _project_then(step, w_x, b, carry, x_t):
    """`step` on this step's input projection `x_t @ w_x + b` (`input_projection="per_step"`)."""
    return step(carry, x_t @ w_x + b.reshape(1, -1))


_INPUT_PROJECTIONS = ("per_step", "hoisted")


def _projection(name: str, value) -> str:
    """`input_projection`: one of `_INPUT_PROJECTIONS` (else `BadValue`)."""
    if value not in _INPUT_PROJECTIONS:
        raise BadValue(f"unknown {name} {value!r}; expected one of {list(_INPUT_PROJECTIONS)}.")
    return value


#: The checks of the options every recurrent layer takes (for `checked`).
_OPTIONS = {"hidden": positive_int, "unroll": positive_int, "return_sequences": flag,
            "return_state": flag, "input_projection": _projection}


# ---------------------------------------------------------------------------
# layers


@checked("SimpleRNN", **_OPTIONS)
def SimpleRNN(hidden: int, *, activation: str | Callable = activations.tanh,
              return_sequences: bool = False, w_x_init=initializers.lecun_normal,
              w_h_init=initializers.orthogonal, b_init=initializers.zeros,
              unroll: int = 1, input_projection: str = "per_step",
              return_state: bool = False) -> Layer:
    """Vanilla (Elman) RNN: `h_t = act(x_t w_x + h_{t-1} w_h + b)`, `h_0 = 0`.

    **Arguments:**
    - `hidden`: the state size `H`.
    - `activation`: a callable or a name (`"tanh"`, `"relu"`; see `fnn.activations.get`).
    - `return_sequences`: return all `h_t` `(N, T, H)` instead of the last `(N, H)`.
    - `w_x_init`, `w_h_init`, `b_init`: defaults `lecun_normal`, `orthogonal`, `zeros`
      (why: see `help(fnn.layers.recurrent)`).
    - `unroll`: steps per `lax.scan` iteration (speed only; results are identical).
    - `input_projection`: `"per_step"` (default) or `"hoisted"` — where `x_t @ w_x`
      is computed (speed only; see `help(fnn.layers.recurrent)`).
    - `return_state`: `apply` returns `((y, final_carry), state)`, the final carry being
      h `(N, H)` after each sequence's last valid step (the carry to pass
      as `initial_state` to continue the sequence).

    **Params:** `w_x: (in, H)`, `w_h: (H, H)`, `b: (H,)`.
    **Shapes:** `(N, T, in) -> (N, H)`, or `(N, T, H)` with `return_sequences`.
    **apply keywords:** `lengths: (N,)` integer, for padded batches (see
    `help(fnn.layers.recurrent)`); `initial_state`, the carry at `t = 0` (default zeros).
    """
    act = lookup(activations.get, activation)
    x_init, h_init = lookup(initializers.get, w_x_init), lookup(initializers.get, w_h_init)
    b_init = initializers.get(b_init)

    def make_params(key, in_features):
        kx, kh, kb = jax.random.split(key, 3)
        return {"w_x": x_init(kx, (in_features, hidden)), "w_h": h_init(kh, (hidden, hidden)),
                "b": b_init(kb, (hidden,))}

    return _recurrent_layer(
        "SimpleRNN", hidden, make_params,
        {"w_x": ("in", hidden), "w_h": (hidden, hidden), "b": (hidden,)}, "b",
        lambda p: partial(simple_rnn_step, act, p["w_h"]), RNNCarry, return_sequences, unroll,
        input_projection, return_state)


@checked("LSTM", **_OPTIONS, forget_bias=number)
def LSTM(hidden: int, *, return_sequences: bool = False, forget_bias: float = 1.0,
         w_x_init=initializers.lecun_normal, w_h_init=initializers.orthogonal,
         b_init=initializers.zeros, unroll: int = 1,
         input_projection: str = "per_step", return_state: bool = False) -> Layer:
    """Long short-term memory (Hochreiter & Schmidhuber 1997), PyTorch gate order.

    With `z = x_t w_x + h_{t-1} w_h + b` split into blocks `[i | f | g | o]` of `H`:
    `i, f, o = σ(z_i), σ(z_f), σ(z_o)`, `g = tanh(z_g)`,
    `c_t = f ⊙ c_{t-1} + i ⊙ g`, `h_t = o ⊙ tanh(c_t)`; `h_0 = c_0 = 0`.

    **Arguments:**
    - `hidden`: the state size `H`.
    - `return_sequences`: return all `h_t` `(N, T, H)` instead of the last `(N, H)`.
    - `forget_bias`: initial value of the forget-gate block of `b` (default 1.0, as
      Keras `unit_forget_bias`; PyTorch's default init corresponds to 0.0). It is
      added to whatever `b_init` draws for that block.
    - `w_x_init`, `w_h_init`, `b_init`: defaults `lecun_normal`, `orthogonal`
      (drawn per `(H, H)` gate block), `zeros`.
    - `unroll`: steps per `lax.scan` iteration (speed only; results are identical).
    - `input_projection`: `"per_step"` (default) or `"hoisted"` — where `x_t @ w_x`
      is computed (speed only; see `help(fnn.layers.recurrent)`).
    - `return_state`: `apply` returns `((y, final_carry), state)`, the final carry being
      the pair `(h, c)` (an `LSTMCarry`, each `(N, H)`) after each sequence's last valid
      step (the carry to pass as `initial_state` to continue the sequence).

    **Params:** `w_x: (in, 4H)`, `w_h: (H, 4H)`, `b: (4H,)`.
    **Shapes:** `(N, T, in) -> (N, H)`, or `(N, T, H)` with `return_sequences`.
    **apply keywords:** `lengths: (N,)` integer, for padded batches (see
    `help(fnn.layers.recurrent)`); `initial_state`, the carry at `t = 0` (default zeros).
    """
    x_init, h_init = lookup(initializers.get, w_x_init), lookup(initializers.get, w_h_init)
    b_init = initializers.get(b_init)

    def make_params(key, in_features):
        kx, kh, kb = jax.random.split(key, 3)
        b = b_init(kb, (4 * hidden,))
        b = b.at[hidden:2 * hidden].add(forget_bias)
        return {"w_x": x_init(kx, (in_features, 4 * hidden)),
                "w_h": _blockwise(h_init, kh, hidden, 4), "b": b}

    return _recurrent_layer(
        "LSTM", hidden, make_params,
        {"w_x": ("in", 4 * hidden), "w_h": (hidden, 4 * hidden), "b": (4 * hidden,)}, "b",
        lambda p: partial(lstm_step, p["w_h"]), LSTMCarry, return_sequences, unroll,
        input_projection, return_state)


@checked("GRU", **_OPTIONS)
def GRU(hidden: int, *, return_sequences: bool = False, w_x_init=initializers.lecun_normal,
        w_h_init=initializers.orthogonal, b_init=initializers.zeros, unroll: int = 1,
        input_projection: str = "per_step", return_state: bool = False) -> Layer:
    """Gated recurrent unit (Cho et al. 2014), PyTorch gate order and equations.

    Blocks `[r | z | n]`: `r = σ(x w_xr + b_xr + h w_hr + b_hr)`,
    `z = σ(x w_xz + b_xz + h w_hz + b_hz)`, `n = tanh(x w_xn + b_xn + r ⊙ (h w_hn + b_hn))`,
    `h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}`; `h_0 = 0`. (The reset gate acts on
    `h w_hn + b_hn`, as in PyTorch/cuDNN, not on `h` before the product.)

    **Arguments:**
    - `hidden`: the state size `H`.
    - `return_sequences`: return all `h_t` `(N, T, H)` instead of the last `(N, H)`.
    - `w_x_init`, `w_h_init`, `b_init`: defaults `lecun_normal`, `orthogonal`
      (per `(H, H)` gate block), `zeros` (both biases).
    - `unroll`: steps per `lax.scan` iteration (speed only; results are identical).
    - `input_projection`: `"per_step"` (default) or `"hoisted"` — where `x_t @ w_x`
      is computed (speed only; see `help(fnn.layers.recurrent)`).
    - `return_state`: `apply` returns `((y, final_carry), state)`, the final carry being
      h `(N, H)` after each sequence's last valid step (the carry to pass
      as `initial_state` to continue the sequence).

    **Params:** `w_x: (in, 3H)`, `w_h: (H, 3H)`, `b_x: (3H,)`, `b_h: (3H,)`.
    **Shapes:** `(N, T, in) -> (N, H)`, or `(N, T, H)` with `return_sequences`.
    **apply keywords:** `lengths: (N,)` integer, for padded batches (see
    `help(fnn.layers.recurrent)`); `initial_state`, the carry at `t = 0` (default zeros).
    """
    x_init, h_init = lookup(initializers.get, w_x_init), lookup(initializers.get, w_h_init)
    b_init = initializers.get(b_init)

    def make_params(key, in_features):
        kx, kh, kbx, kbh = jax.random.split(key, 4)
        return {"w_x": x_init(kx, (in_features, 3 * hidden)),
                "w_h": _blockwise(h_init, kh, hidden, 3),
                "b_x": b_init(kbx, (3 * hidden,)), "b_h": b_init(kbh, (3 * hidden,))}

    return _recurrent_layer(
        "GRU", hidden, make_params,
        {"w_x": ("in", 3 * hidden), "w_h": (hidden, 3 * hidden), "b_x": (3 * hidden,),
         "b_h": (3 * hidden,)}, "b_x",
        lambda p: partial(gru_step, p["w_h"], p["b_h"]), RNNCarry, return_sequences, unroll,
        input_projection, return_state)
