"""Recurrent layers on `jax.lax.scan`: `SimpleRNN`, `LSTM`, `GRU`, `Bidirectional`.

Sequences are batch-first `(N, T, F)`. Each layer runs ONE compiled step with
`lax.scan`, so compile time and program size do not grow with `T`.

How a layer runs:

1. inside the scan, one fused `h_{t-1} @ w_h` computes all gates at once
   (G = 1, 4, 3 gate blocks of `H` columns);
2. the input projection `x_t @ w_x + b` is, by default
   (`input_projection="per_step"`), computed inside each step, as Haiku and Flax
   do. The cuDNN recipe, `input_projection="hoisted"`, projects all steps with
   one matrix product `(N·T, F) @ (F, G·H)` before the scan; on XLA:CPU that
   measured 1.6–1.9× SLOWER per training step (LSTM T=28, F=28, H=128, batch
   128: 53 vs 33 ms; the backward pass through the stacked projection is what
   costs), so it is opt-in. Both give the same results (tests);
3. `unroll` (constructor keyword, default 1) is passed to `lax.scan`: unrolling a
   few steps per loop iteration lets XLA fuse across steps (see `benchmarks/lstm.py`;
   on CPU unroll 2–8 measured no faster);
4. the gates use `fnn.activations.sigmoid` / `tanh`, whose derivatives are
   written through their outputs, so the backward pass keeps only the gate
   values: an LSTM step's scan stacks 7 arrays per step for the backward pass
   instead of 12 (4 % faster per training step on CPU; GRU 5 %).

Padded batches: `apply(..., lengths=lengths)` with `lengths: (N,)` integer, each in
`[1, T]`. Inside the scan each sequence's carry is frozen after its last valid
step (a `jnp.where` on a mask), so the last output is the hidden state at that
sequence's own last step, and padding never changes any result: padded inputs
are zeroed before the projection, so even non-finite padding leaves outputs and
gradients untouched. With `return_sequences=True` the outputs past a sequence's
length are zeros.

Carries are NamedTuples with named fields (`RNNCarry(h)`, `LSTMCarry(h, c)`) and
start at zeros. The cell functions `simple_rnn_cell`, `lstm_cell`, `gru_cell`
are carry-first (`cell(params, carry, x_t) -> (carry, h_t)`) and drop straight
into `lax.scan` for users who write their own loops.

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
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from fnn import activations, initializers
from fnn._checks import (
    check_axis_size,
    check_flag,
    check_floating,
    check_input_shape,
    check_key,
    check_key_and_train,
    check_number,
    check_params,
    check_positive_int,
    check_rank,
    concrete_range,
    describe_value,
    shape_str,
)
from fnn.core import Layer, _accepted_keywords, as_layer

__all__ = [
    "RNNCarry", "LSTMCarry", "simple_rnn_cell", "lstm_cell", "gru_cell",
    "SimpleRNN", "LSTM", "GRU", "Bidirectional", "reverse_sequences",
]


# ---------------------------------------------------------------------------
# carries


class RNNCarry(NamedTuple):
    """Carry of `SimpleRNN` and `GRU` (and of their cells)."""

    h: jax.Array  # (N, H): hidden state, which is also the output h_t

    @classmethod
    def zeros(cls, batch: int, hidden: int, dtype=jnp.float32) -> RNNCarry:
        """The initial carry: `h = 0` of shape `(batch, hidden)`."""
        return cls(jnp.zeros((batch, hidden), dtype))


class LSTMCarry(NamedTuple):
    """Carry of `LSTM` and `lstm_cell`: hidden state `h` and cell state `c`."""

    h: jax.Array  # (N, H): hidden state, the output h_t = o ⊙ tanh(c_t)
    c: jax.Array  # (N, H): cell state (the long-term memory)

    @classmethod
    def zeros(cls, batch: int, hidden: int, dtype=jnp.float32) -> LSTMCarry:
        """The initial carry: `h = c = 0` of shape `(batch, hidden)`."""
        z = jnp.zeros((batch, hidden), dtype)
        return cls(z, z)


# ---------------------------------------------------------------------------
# steps: the maths, on a precomputed input projection `xw` (N, G·H)


def _row(b):
    """A bias `(G,)` as `(1, G)`: explicit broadcasting (rank promotion may be off)."""
    return b.reshape(1, -1)


def _simple_rnn_step(activation, w_h, carry, xw):
    h = activation(xw + carry.h @ w_h)
    return RNNCarry(h), h


def _lstm_step(w_h, carry, xw):
    z = xw + carry.h @ w_h                       # one fused matmul for all four gates
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)    # PyTorch order: input, forget, cell, output
    c = activations.sigmoid(zf) * carry.c + activations.sigmoid(zi) * activations.tanh(zg)
    h = activations.sigmoid(zo) * activations.tanh(c)
    return LSTMCarry(h, c), h


def _gru_step(w_h, b_h, carry, xw):
    hw = carry.h @ w_h + _row(b_h)               # one fused matmul for all three gates
    xr, xz, xn = jnp.split(xw, 3, axis=-1)       # PyTorch order: reset, update, new
    hr, hz, hn = jnp.split(hw, 3, axis=-1)
    r = activations.sigmoid(xr + hr)
    z = activations.sigmoid(xz + hz)
    n = activations.tanh(xn + r * hn)
    h = (1.0 - z) * n + z * carry.h
    return RNNCarry(h), h


# ---------------------------------------------------------------------------
# public cells: raw input x_t (N, in), or its projection with projected=True
#
# The layers scan the `_*_step` functions above, never these wrappers, so the
# argument checks below cost a layer nothing; for a user's own `lax.scan` over a
# cell they run once, while tracing the step (they read only types and shapes).

# the params a cell reads, by name -> shape with named sizes (H: hidden, G: gates·H)
_CELL_PARAM_SHAPES = {"w_h": ("H", "G"), "w_x": ("in", "G"), "b": ("G",), "b_x": ("G",),
                      "b_h": ("G",)}


def _check_cell(where: str, layer: str, params, carry, x_t, carry_type, blocks: int,
                names: tuple[str, ...], projected) -> None:
    """Check a public cell's arguments against each other (trace time, shapes and types).

    - `params`: a dict with `w_h: (H, blocks·H)` and the other `names` in the
      layout of `layer`'s params (`check_params`; a wrong dict is a TypeError or
      ValueError naming `where` and `layer.init`); with `projected`, `w_x` and the
      input bias are not read and so not required;
    - `x_t`: a floating `(N, in)` array (rank 2 only), `in` from `w_x`, or `(N, blocks·H)`
      with `projected`;
    - `carry`: a `carry_type` whose fields are `(N, H)` arrays.
    """
    projected = check_flag(where, "projected", projected)
    if projected:
        names = tuple(n for n in names if n not in ("w_x", "b", "b_x"))
    try:
        sizes = check_params(layer, params, {n: _CELL_PARAM_SHAPES[n] for n in ("w_h", *names)})
        hidden = sizes["H"]
        if sizes["G"] != blocks * hidden:  # e.g. SimpleRNN params given to lstm_cell
            check_params(layer, params, {"w_h": (hidden, blocks * hidden)})
    except (TypeError, ValueError) as e:
        raise type(e)(f"{where}: {e}") from None
    if projected:
        gates = "H" if blocks == 1 else f"{blocks}·H"
        features, what = blocks * hidden, f"projected features (last axis, {gates})"
    else:
        features, what = sizes["in"], "input features (last axis)"
    check_rank(where, x_t, 2, f"(N, {features}) — batch, features (one time step)")
    check_floating(where, x_t)
    check_axis_size(where, x_t, -1, features, what)
    fields = ", ".join(carry_type._fields)
    if not isinstance(carry, carry_type):
        raise TypeError(
            f"{where}: carry must be an {carry_type.__name__}({fields}), got "
            f"{describe_value(carry)}; start from {carry_type.__name__}.zeros(N, H)."
        )
    expected = (x_t.shape[0], hidden)
    for field, value in zip(carry._fields, carry):
        check_floating(f"{where}: carry.{field}", value)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"{where}: expected carry.{field} of shape {shape_str(expected)} (N from x_t, "
                f"H from params['w_h']), got {shape_str(value.shape)}; start from "
                f"{carry_type.__name__}.zeros({expected[0]}, {hidden})."
            )


def simple_rnn_cell(params, carry: RNNCarry, x_t, *, activation: str | Callable = activations.tanh,
                    projected: bool = False):
    """One step of a vanilla RNN: `h_t = act(x_t w_x + h_{t-1} w_h + b)`.

    **Arguments:**
    - `params`: `{"w_x": (in, H), "w_h": (H, H), "b": (H,)}` (a `SimpleRNN`'s params).
    - `carry`: `RNNCarry(h)` with `h: (N, H)`; start from `RNNCarry.zeros(N, H)`.
    - `x_t`: `(N, in)`; with `projected=True`, the precomputed `x_t @ w_x + b` `(N, H)`.
    - `activation`: a callable or a name (`"relu"`), default `tanh`.

    **Returns:** `(RNNCarry(h_t), h_t)`. See `lstm_cell` for a `lax.scan` loop and
    for the argument checks.
    """
    _check_cell("simple_rnn_cell", "SimpleRNN", params, carry, x_t, RNNCarry, 1, ("w_x", "b"),
                projected)
    try:
        activation = activations.get(activation)
    except ValueError as e:
        raise ValueError(f"simple_rnn_cell: {e}") from None
    xw = x_t if projected else x_t @ params["w_x"] + _row(params["b"])
    return _simple_rnn_step(activation, params["w_h"], carry, xw)


def lstm_cell(params, carry: LSTMCarry, x_t, *, projected: bool = False):
    """One LSTM step (PyTorch gate order and equations).

    With `z = x_t w_x + h_{t-1} w_h + b` split into four blocks of `H`:

        i = σ(z_i)   f = σ(z_f)   g = tanh(z_g)   o = σ(z_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t)

    **Arguments:**
    - `params`: `{"w_x": (in, 4H), "w_h": (H, 4H), "b": (4H,)}` (an `LSTM`'s params);
      the columns are the gate blocks `[i | f | g | o]`.
    - `carry`: `LSTMCarry(h, c)`, each `(N, H)`; start from `LSTMCarry.zeros(N, H)`.
    - `x_t`: `(N, in)`. With `projected=True`, `x_t` is instead the precomputed
      `x_t @ w_x + b` of shape `(N, 4H)` (`w_x` and `b` are then not read), for
      loops that project all steps with one matmul before the scan.

    **Returns:** `(LSTMCarry(h_t, c_t), h_t)` — carry first, so it drops into `lax.scan`:

        def run(params, xs):                       # xs: (N, T, in)
            n, hidden = xs.shape[0], params["w_h"].shape[0]
            carry = LSTMCarry.zeros(n, hidden)
            step = lambda carry, x_t: lstm_cell(params, carry, x_t)
            carry, hs = jax.lax.scan(step, carry, jnp.swapaxes(xs, 0, 1))
            return carry.h, jnp.swapaxes(hs, 0, 1)  # (N, H), (N, T, H)

    **Checks** (all cells, while tracing: types and shapes only, so a scan over the
    cell runs exactly as fast): `params` holds the entries read, in the layer's
    layout (else TypeError/ValueError naming the cell and the layer whose `init`
    makes them); `x_t` is a floating `(N, in)` array matching `w_x`; `carry` is an
    `LSTMCarry` (`RNNCarry` for the others) of `(N, H)` arrays matching `x_t` and `w_h`.
    """
    _check_cell("lstm_cell", "LSTM", params, carry, x_t, LSTMCarry, 4, ("w_x", "b"), projected)
    xw = x_t if projected else x_t @ params["w_x"] + _row(params["b"])
    return _lstm_step(params["w_h"], carry, xw)


def gru_cell(params, carry: RNNCarry, x_t, *, projected: bool = False):
    """One GRU step (PyTorch gate order and equations, two biases).

        r = σ(x_t w_xr + b_xr + h_{t-1} w_hr + b_hr)
        z = σ(x_t w_xz + b_xz + h_{t-1} w_hz + b_hz)
        n = tanh(x_t w_xn + b_xn + r ⊙ (h_{t-1} w_hn + b_hn))
        h_t = (1 − z) ⊙ n + z ⊙ h_{t-1}

    **Arguments:**
    - `params`: `{"w_x": (in, 3H), "w_h": (H, 3H), "b_x": (3H,), "b_h": (3H,)}`,
      gate blocks `[r | z | n]`.
    - `carry`: `RNNCarry(h)` with `h: (N, H)`.
    - `x_t`: `(N, in)`; with `projected=True`, the precomputed `x_t @ w_x + b_x` `(N, 3H)`.

    **Returns:** `(RNNCarry(h_t), h_t)`. See `lstm_cell` for a `lax.scan` loop and
    for the argument checks.
    """
    _check_cell("gru_cell", "GRU", params, carry, x_t, RNNCarry, 3, ("w_x", "b_x", "b_h"),
                projected)
    xw = x_t if projected else x_t @ params["w_x"] + _row(params["b_x"])
    return _gru_step(params["w_h"], params["b_h"], carry, xw)


# ---------------------------------------------------------------------------
# the shared layer machinery


def _init_fn(where, x_init, h_init):
    try:
        return initializers.get(x_init), initializers.get(h_init)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def _blockwise(init, key, hidden: int, blocks: int):
    """`init` drawn separately for each `(H, H)` block of an `(H, blocks·H)` matrix."""
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([init(k, (hidden, hidden)) for k in keys], axis=1)


_SEQUENCE_LAYOUT = "(T, features) for one sequence"


def _check_input_shape(where, input_shape):
    return check_input_shape(where, input_shape, _SEQUENCE_LAYOUT, rank=2,
                             hint=" Sequences are batch-first (N, T, features).")[-1]


def _check_lengths(where: str, lengths, n: int, t: int):
    """Validate a `lengths: (N,)` integer array against a batch of `n` sequences of `t` steps.

    Shape and dtype are always checked; values (each in `[1, t]`) only when
    concrete — under `jit` they are traced and cannot be inspected.
    """
    if lengths is None:
        return None
    if not hasattr(lengths, "dtype"):
        lengths = np.asarray(lengths)
    if tuple(lengths.shape) != (n,):
        raise ValueError(
            f"{where}: expected lengths of shape ({n},) (one per sequence in the batch), "
            f"got shape {shape_str(lengths.shape)}."
        )
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(
            f"{where}: expected integer lengths, got dtype {lengths.dtype}. "
            "Convert with lengths.astype(jnp.int32)."
        )
    bounds = concrete_range(lengths)
    if bounds is not None:
        lo, hi = bounds
        if lo < 1 or hi > t:
            bad = lo if lo < 1 else hi
            raise ValueError(
                f"{where}: every length must be in [1, {t}] (the time axis of x has {t} steps), "
                f"got {bad} (lengths range from {lo} to {hi})."
            )
    return jnp.asarray(lengths)


def _check_sequence(where, x, in_features):
    check_rank(where, x, 3, f"(N, T, {in_features}) — batch, time, features")
    check_floating(where, x)
    check_axis_size(where, x, -1, in_features, "input features (last axis)")
    if x.shape[1] < 1:
        raise ValueError(
            f"{where}: expected at least one time step, got input {shape_str(x.shape)}.")


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
                     return_sequences, unroll, input_projection):
    """Build the `Layer` shared by SimpleRNN / LSTM / GRU.

    `make_params(key, in_features)` draws the params, whose names and shapes are
    `param_shapes` (checked in `apply`, see `check_params`); `params[bias]` is the bias
    added to the input projection `x @ w_x`; `make_step(params)` returns the scan
    step on a projected input; `input_projection` is `"per_step"` or `"hoisted"`.
    """

    def init(key, input_shape):
        in_features = _check_input_shape(name, input_shape)
        check_key(f"{name}.init", key)
        return make_params(key, in_features), {}

    def apply(params, state, x, *, key=None, train=False, lengths=None):
        check_key_and_train(name, key, train)
        check_params(name, params, param_shapes)
        _check_sequence(name, x, params["w_x"].shape[0])
        n, t = x.shape[0], x.shape[1]
        lengths = _check_lengths(name, lengths, n, t)
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
        carry, ys = _run(step, carry_type.zeros(n, hidden, dtype), xs.astype(dtype),
                         mask, return_sequences, unroll)
        y = jnp.swapaxes(ys, 0, 1) if return_sequences else carry.h
        return y, state

    # named for Python's own argument errors ("LSTM.apply() got an unexpected keyword ...")
    init.__qualname__, apply.__qualname__ = f"{name}.init", f"{name}.apply"
    return Layer(init, apply, name)


def _project(params, x, bias: str):
    """All steps at once: `(N, T, in) @ (in, G) + b` -> time-major `(T, N, G)`."""
    xw = jnp.einsum("ntf,fg->tng", x, params["w_x"])
    return xw + params[bias].reshape(1, 1, -1)


def _project_then(step, w_x, b, carry, x_t):
    """`step` on this step's input projection `x_t @ w_x + b` (`input_projection="per_step"`)."""
    return step(carry, x_t @ w_x + _row(b))


_INPUT_PROJECTIONS = ("per_step", "hoisted")


def _common_options(where, hidden, unroll, return_sequences, input_projection):
    hidden = check_positive_int(where, "hidden", hidden)
    unroll = check_positive_int(where, "unroll", unroll)
    check_flag(where, "return_sequences", return_sequences)
    if input_projection not in _INPUT_PROJECTIONS:
        raise ValueError(f"{where}: unknown input_projection {input_projection!r}; expected one "
                         f"of {list(_INPUT_PROJECTIONS)}.")
    return hidden, unroll


# ---------------------------------------------------------------------------
# layers


def SimpleRNN(hidden: int, *, activation: str | Callable = activations.tanh,
              return_sequences: bool = False, w_x_init=initializers.lecun_normal,
              w_h_init=initializers.orthogonal, b_init=initializers.zeros,
              unroll: int = 1, input_projection: str = "per_step") -> Layer:
    """Vanilla (Elman) RNN: `h_t = act(x_t w_x + h_{t-1} w_h + b)`, `h_0 = 0`.

    **Arguments:**
    - `hidden`: the state size `H`.
    - `activation`: a callable or a name (`"tanh"`, `"relu"`; see `fnn.activations.get`).
    - `return_sequences`: return all `h_t` `(N, T, H)` instead of the last `(N, H)`.
    - `w_x_init`, `w_h_init`, `b_init`: defaults `lecun_normal`, `orthogonal`, `zeros`
      (why: see the module docstring).
    - `unroll`: steps per `lax.scan` iteration (speed only; results are identical).
    - `input_projection`: `"per_step"` (default) or `"hoisted"` — where `x_t @ w_x`
      is computed (speed only; see the module docstring).

    **Params:** `w_x: (in, H)`, `w_h: (H, H)`, `b: (H,)`.
    **Shapes:** `(N, T, in) -> (N, H)`, or `(N, T, H)` with `return_sequences`.
    **apply keyword:** `lengths: (N,)` integer, for padded batches (module docstring).
    """
    hidden, unroll = _common_options("SimpleRNN", hidden, unroll, return_sequences,
                                     input_projection)
    try:
        act = activations.get(activation)
    except ValueError as e:
        raise ValueError(f"SimpleRNN: {e}") from None
    x_init, h_init = _init_fn("SimpleRNN", w_x_init, w_h_init)
    b_init = initializers.get(b_init)

    def make_params(key, in_features):
        kx, kh, kb = jax.random.split(key, 3)
        return {"w_x": x_init(kx, (in_features, hidden)), "w_h": h_init(kh, (hidden, hidden)),
                "b": b_init(kb, (hidden,))}

    return _recurrent_layer(
        "SimpleRNN", hidden, make_params,
        {"w_x": ("in", hidden), "w_h": (hidden, hidden), "b": (hidden,)}, "b",
        lambda p: partial(_simple_rnn_step, act, p["w_h"]), RNNCarry, return_sequences, unroll,
        input_projection)


def LSTM(hidden: int, *, return_sequences: bool = False, forget_bias: float = 1.0,
         w_x_init=initializers.lecun_normal, w_h_init=initializers.orthogonal,
         b_init=initializers.zeros, unroll: int = 1,
         input_projection: str = "per_step") -> Layer:
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
      is computed (speed only; see the module docstring).

    **Params:** `w_x: (in, 4H)`, `w_h: (H, 4H)`, `b: (4H,)`.
    **Shapes:** `(N, T, in) -> (N, H)`, or `(N, T, H)` with `return_sequences`.
    **apply keyword:** `lengths: (N,)` integer, for padded batches (module docstring).
    """
    hidden, unroll = _common_options("LSTM", hidden, unroll, return_sequences,
                                     input_projection)
    forget_bias = check_number("LSTM", "forget_bias", forget_bias)
    x_init, h_init = _init_fn("LSTM", w_x_init, w_h_init)
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
        lambda p: partial(_lstm_step, p["w_h"]), LSTMCarry, return_sequences, unroll,
        input_projection)


def GRU(hidden: int, *, return_sequences: bool = False, w_x_init=initializers.lecun_normal,
        w_h_init=initializers.orthogonal, b_init=initializers.zeros, unroll: int = 1,
        input_projection: str = "per_step") -> Layer:
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
      is computed (speed only; see the module docstring).

    **Params:** `w_x: (in, 3H)`, `w_h: (H, 3H)`, `b_x: (3H,)`, `b_h: (3H,)`.
    **Shapes:** `(N, T, in) -> (N, H)`, or `(N, T, H)` with `return_sequences`.
    **apply keyword:** `lengths: (N,)` integer, for padded batches (module docstring).
    """
    hidden, unroll = _common_options("GRU", hidden, unroll, return_sequences,
                                     input_projection)
    x_init, h_init = _init_fn("GRU", w_x_init, w_h_init)
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
        lambda p: partial(_gru_step, p["w_h"], p["b_h"]), RNNCarry, return_sequences, unroll,
        input_projection)


# ---------------------------------------------------------------------------
# Bidirectional


def reverse_sequences(x, lengths=None):
    """Reverse each sequence of `x: (N, T, ...)` in time.

    With `lengths: (N,)` only the valid prefix is reversed, and the padding stays
    in place: `y[n, t] = x[n, lengths[n] − 1 − t]` for `t < lengths[n]`, else `x[n, t]`.
    The map is its own inverse.
    """
    if lengths is None:
        return jnp.flip(x, axis=1)
    t = x.shape[1]
    steps = jnp.arange(t).reshape(1, t)
    lengths = lengths.reshape(-1, 1)
    idx = jnp.where(steps < lengths, lengths - 1 - steps, steps)          # (N, T)
    return jax.vmap(lambda xi, ii: jnp.take(xi, ii, axis=0))(x, idx)


_MERGES = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "mean": lambda a, b: 0.5 * (a + b),
}


def Bidirectional(layer: Layer, merge: str = "concat") -> Layer:
    """Run `layer` forward in time and on the time-reversed sequence, then merge.

    The backward copy reads each sequence from its last valid step to its first
    (with `lengths`, only the valid prefix is reversed, so padding stays at the
    end). With `return_sequences`, the backward outputs are re-aligned to forward
    time, so `y[:, t]` combines the forward state after `x_0..x_t` and the
    backward state after `x_{L-1}..x_t`; otherwise the backward part is its final
    state (after reading `x_0`), as in PyTorch and Keras.

    **Arguments:**
    - `layer`: a recurrent layer (or a `serial` stack of them) taking `(N, T, F)`.
    - `merge`: `"concat"` (default, on the feature axis: `2H` features), `"sum"`,
      `"mul"` or `"mean"`.

    **Params:** `{"forward": <layer params>, "backward": <layer params>}`, drawn
    with independent keys. **apply keyword:** `lengths: (N,)`, as for the layer.
    """
    if merge not in _MERGES:
        raise ValueError(
            f"Bidirectional: unknown merge {merge!r}; expected one of {sorted(_MERGES)}.")
    merge_fn = _MERGES[merge]
    inner = as_layer(layer)
    accepted = _accepted_keywords(inner.apply)
    takes_lengths = accepted is None or "lengths" in accepted

    def init(key, input_shape):
        input_shape = check_input_shape("Bidirectional", input_shape, _SEQUENCE_LAYOUT)
        check_key("Bidirectional.init", key)
        kf, kb = jax.random.split(key)
        pf, sf = inner.init(kf, input_shape)
        pb, sb = inner.init(kb, input_shape)
        params = {"forward": pf, "backward": pb} if (pf or pb) else {}
        state = {"forward": sf, "backward": sb} if (sf or sb) else {}
        return params, state

    def apply(params, state, x, *, key=None, train=False, lengths=None):
        check_rank("Bidirectional", x, 3, "(N, T, features) — batch, time, features")
        check_params("Bidirectional", params, ())
        check_params("Bidirectional", state, (), what="state")
        if key is not None:
            check_key("Bidirectional", key)
        n, t = x.shape[0], x.shape[1]
        lengths = _check_lengths("Bidirectional", lengths, n, t)
        extra = {}
        if lengths is not None:
            if not takes_lengths:
                raise TypeError(
                    f"Bidirectional: the wrapped layer {inner.name} does not accept lengths; "
                    "wrap a recurrent layer (SimpleRNN, LSTM, GRU) or a serial stack of them.")
            extra["lengths"] = lengths
        kf, kb = (None, None) if key is None else tuple(jax.random.split(key))
        yf, sf = inner.apply(params.get("forward", {}), state.get("forward", {}), x,
                             key=kf, train=train, **extra)
        yb, sb = inner.apply(params.get("backward", {}), state.get("backward", {}),
                             reverse_sequences(x, lengths), key=kb, train=train, **extra)
        if yb.ndim >= 3:
            if yb.shape[1] != t:
                raise ValueError(
                    f"Bidirectional: expected the wrapped layer to return (N, T, ...) with "
                    f"T = {t} or a last state (N, H), got {shape_str(yb.shape)}.")
            yb = reverse_sequences(yb, lengths)
        new_state = {"forward": sf, "backward": sb} if (sf or sb) else state
        return merge_fn(yf, yb), new_state

    return Layer(init, apply, "Bidirectional")
