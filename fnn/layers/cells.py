"""Recurrent cells: one step of a vanilla RNN, an LSTM or a GRU, carry first.

Carries are NamedTuples with named fields (`RNNCarry(h)`, `LSTMCarry(h, c)`) and
start at zeros. The cell functions `simple_rnn_cell`, `lstm_cell`, `gru_cell`
are carry-first (`cell(params, carry, x_t) -> (carry, h_t)`) and drop straight
into `lax.scan` for users who write their own loops; their params are those of
the layers `SimpleRNN`, `LSTM`, `GRU` (`fnn.layers.recurrent`), which scan the
steps below (`simple_rnn_step`, `lstm_step`, `gru_step`: the same maths on an input
already projected, `x_t @ w_x + b`). Gate blocks follow PyTorch's order.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from fnn import activations
from fnn._array_checks import require_axis_size, require_floating, require_params, require_rank
from fnn._checks import BadType, BadValue, describe_value, flag, lookup, named, shape_str, within

__all__ = ["RNNCarry", "LSTMCarry", "initial_carry", "simple_rnn_step", "lstm_step", "gru_step",
           "simple_rnn_cell", "lstm_cell", "gru_cell"]


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


def initial_carry(initial_state, carry_type, n: int, hidden: int, dtype):
    """The carry a layer starts from: `carry_type.zeros(n, hidden, dtype)`, or
    `initial_state` checked and converted to `carry_type` (an `(N, H)` array `h`, or for
    `LSTMCarry` a pair `(h, c)` of them); else `BadValue`/`BadType` for the layer to name."""
    if initial_state is None:
        return carry_type.zeros(n, hidden, dtype)
    fields = carry_type._fields
    if len(fields) == 1 and not isinstance(initial_state, tuple):
        parts = (initial_state,)
    elif isinstance(initial_state, tuple) and len(initial_state) == len(fields):
        parts = tuple(initial_state)
    else:
        want = "an (N, H) array h" if len(fields) == 1 else "a pair (h, c) of (N, H) arrays"
        raise BadType(f"initial_state must be {want} (as return_state=True returns), got "
                      f"{describe_value(initial_state)}.")
    for field, part in zip(fields, parts):
        within(f"initial_state.{field}", require_floating, part)
        if tuple(part.shape) != (n, hidden):
            raise BadValue(f"initial_state.{field} must have shape ({n}, {hidden}) (batch, "
                           f"hidden), got {shape_str(part.shape)}.")
    return carry_type(*(jnp.asarray(part, dtype) for part in parts))


# ---------------------------------------------------------------------------
# steps: the maths, on a precomputed input projection `xw` (N, G·H); the layers scan
# these (`fnn.layers.recurrent`), the public cells below wrap them


def _row(b):
    """A bias `(G,)` as `(1, G)`: explicit broadcasting (rank promotion may be off)."""
    return b.reshape(1, -1)


def simple_rnn_step(activation, w_h, carry, xw):
    """`h_t = act(xw + h_{t-1} w_h)` with `xw = x_t w_x + b` `(N, H)`: `(RNNCarry(h_t), h_t)`."""
    h = activation(xw + carry.h @ w_h)
    return RNNCarry(h), h


def lstm_step(w_h, carry, xw):
    """`lstm_cell`'s equations with `xw = x_t w_x + b` `(N, 4H)` given:
    `(LSTMCarry(h_t, c_t), h_t)`."""
    # one fused matmul for all four gates, in the weights' dtype (bfloat16 under a mixed
    # precision policy); the carry keeps its own dtype (the layers use float32 or wider)
    z = xw + carry.h.astype(w_h.dtype) @ w_h
    zi, zf, zg, zo = jnp.split(z, 4, axis=-1)    # PyTorch order: input, forget, cell, output
    c = activations.sigmoid(zf) * carry.c + activations.sigmoid(zi) * activations.tanh(zg)
    h = activations.sigmoid(zo) * activations.tanh(c)
    return LSTMCarry(h.astype(carry.h.dtype), c.astype(carry.c.dtype)), h.astype(carry.h.dtype)


def gru_step(w_h, b_h, carry, xw):
    """`gru_cell`'s equations with `xw = x_t w_x + b_x` `(N, 3H)` given (`b_h` is added
    to `h_{t-1} w_h`, inside the reset gate): `(RNNCarry(h_t), h_t)`."""
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
# The layers scan the `*_step` functions above, never these wrappers, so the
# argument checks below cost a layer nothing; for a user's own `lax.scan` over a
# cell they run once, while tracing the step (they read only types and shapes).

# the params a cell reads, by name -> shape with named sizes (H: hidden, G: gates·H)
_CELL_PARAM_SHAPES = {"w_h": ("H", "G"), "w_x": ("in", "G"), "b": ("G",), "b_x": ("G",),
                      "b_h": ("G",)}


def _cell_args(layer: str, params, carry, x_t, carry_type, blocks: int,
               names: tuple[str, ...], projected) -> bool:
    """A public cell's arguments against each other (trace time, shapes and types).

    - `params`: a dict with `w_h: (H, blocks·H)` and the other `names` in the
      layout of the params of the layer `layer` (a wrong dict is named after
      `layer`, whose `init` makes them); with `projected`, `w_x` and the input
      bias are not read and so not required;
    - `x_t`: a floating `(N, in)` array (rank 2 only), `in` from `w_x`, or `(N, blocks·H)`
      with `projected`;
    - `carry`: a `carry_type` whose fields are `(N, H)` arrays.

    Returns `projected` as a bool.
    """
    projected = flag("projected", projected)
    if projected:
        names = tuple(n for n in names if n not in ("w_x", "b", "b_x"))
    shapes = {n: _CELL_PARAM_SHAPES[n] for n in ("w_h", *names)}
    sizes = within(layer, require_params, params, shapes, layer)
    hidden = sizes["H"]
    if sizes["G"] != blocks * hidden:  # e.g. SimpleRNN params given to lstm_cell
        within(layer, require_params, params, {"w_h": (hidden, blocks * hidden)}, layer)
    if projected:
        gates = "H" if blocks == 1 else f"{blocks}·H"
        features, what = blocks * hidden, f"projected features (last axis, {gates})"
    else:
        features, what = sizes["in"], "input features (last axis)"
    require_rank(x_t, 2, f"(N, {features}) — batch, features (one time step)")
    require_floating(x_t)
    require_axis_size(x_t, -1, features, what)
    if not isinstance(carry, carry_type):
        raise BadType(f"carry must be an {carry_type.__name__}({', '.join(carry_type._fields)}), "
                      f"got {describe_value(carry)}; start from {carry_type.__name__}.zeros(N, "
                      "H).")
    expected = (x_t.shape[0], hidden)
    for field, value in zip(carry._fields, carry):
        within(f"carry.{field}", require_floating, value)
        if tuple(value.shape) != expected:
            raise BadValue(f"expected carry.{field} of shape {shape_str(expected)} (N from x_t, "
                           f"H from params['w_h']), got {shape_str(value.shape)}; start from "
                           f"{carry_type.__name__}.zeros({expected[0]}, {hidden}).")
    return projected


@named("simple_rnn_cell")
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
    projected = _cell_args("SimpleRNN", params, carry, x_t, RNNCarry, 1, ("w_x", "b"), projected)
    activation = lookup(activations.get, activation)
    xw = x_t if projected else x_t @ params["w_x"] + _row(params["b"])
    return simple_rnn_step(activation, params["w_h"], carry, xw)


@named("lstm_cell")
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
    projected = _cell_args("LSTM", params, carry, x_t, LSTMCarry, 4, ("w_x", "b"), projected)
    xw = x_t if projected else x_t @ params["w_x"] + _row(params["b"])
    return lstm_step(params["w_h"], carry, xw)


@named("gru_cell")
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
    projected = _cell_args("GRU", params, carry, x_t, RNNCarry, 3, ("w_x", "b_x", "b_h"),
                           projected)
    xw = x_t if projected else x_t @ params["w_x"] + _row(params["b_x"])
    return gru_step(params["w_h"], params["b_h"], carry, xw)
