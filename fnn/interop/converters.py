"""The table of layer converters: for each fnn layer kind, its PyTorch twin's layout.

`CONVERTERS` maps a layer's `name` (its kind: `"Dense"`, `"Conv2D"`, ...) to a
`Converter`: the state_dict keys of the torch module (relative to the module,
`"weight"`, `"running_mean"`, `"out_proj.weight"`), and two pure NumPy functions
between fnn's `(params, state)` of one layer and those tensors. A layer kind that
another engineer adds later is one entry here (or one `register` call in user code).

Layouts (fnn = torch; API.md §1 and §6.1):
- `Dense`: `w: (in, out)` = `Linear.weight.T`, `b` = `bias`.
- `Conv1D/2D/3D`: `w: (*k, in/groups, out)` = `weight: (out, in/groups, *k)` transposed.
- `ConvTranspose1D/2D/3D`: `w: (*k, in, out)` = `weight: (in, out, *k)` transposed.
- `BatchNorm`: `scale, bias` = `weight, bias`; state `mean, var` = `running_mean,
  running_var` (`num_batches_tracked` is read and ignored, written as 0).
- `LayerNorm`, `GroupNorm`, `InstanceNorm`, `RMSNorm`: `scale`, `bias` = `weight`, `bias`.
- `Embedding`: `table: (V, F)` = `weight`. `PReLU`: `alpha: (C,)` = `weight`
  (`nn.PReLU(num_parameters=C)`).
- `SimpleRNN`, `LSTM`: `w_x: (in, G)` = `weight_ih_l0.T`, `w_h: (H, G)` = `weight_hh_l0.T`,
  `b: (G,)` = `bias_ih_l0 + bias_hh_l0`. `GRU`: the same weights, `b_x` = `bias_ih_l0`,
  `b_h` = `bias_hh_l0`. Gate blocks are in PyTorch's order in both.
- `Bidirectional` of one of those three: `forward` as above, `backward` with the keys
  ending in `_reverse` (torch's `bidirectional=True`).
- `MultiHeadAttention`: `in_proj_weight = concat(w_q, w_k, w_v, axis=1).T`, `in_proj_bias
  = concat(b_q, b_k, b_v)`, `out_proj.weight = w_o.T`, `out_proj.bias = b_o`.

Torch's two recurrent biases (`bias_ih`, `bias_hh`) always act as their sum in
SimpleRNN and LSTM, which fnn keeps as one `b`: `to_torch` writes `bias_ih = b`,
`bias_hh = 0`. A `Dense` after a `Flatten` of an image `(H, W, C)` gets its rows
reordered, since torch flattens `(C, H, W)` (`Site.flattened`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from fnn._checks import BadValue, shape_str

__all__ = ["Site", "Converter", "CONVERTERS", "register", "KindMismatch"]


class KindMismatch(Exception):
    """The torch tensors are not those of this fnn layer's twin; `args[0]` says why."""


class Site(NamedTuple):
    """One fnn layer with params or state, as `from_torch`/`to_torch` meet it."""

    path: tuple[str, ...]         # its keys in the model's params/state, e.g. ("3_Dense",)
    kind: str                     # its `Layer.name`, the key of `CONVERTERS`
    params: dict                  # its params (arrays or jax.ShapeDtypeStructs)
    state: dict                   # its state
    input_shape: tuple            # one example's input shape
    flattened: tuple | None       # (*spatial, C) when a Flatten of that shape came just before


class Converter(NamedTuple):
    """How one fnn layer kind maps onto its torch module's state_dict entries.

    - `keys`: every key the torch module may have (relative to the module).
    - `from_torch(tensors, site) -> (params, state)`: `tensors` maps those keys to
      NumPy arrays; may raise `KindMismatch` (wrong ranks: not this layer's twin).
    - `to_torch(params, state, site) -> {key: array}`.
    - `optional`: keys `to_torch` writes that a torch state_dict may lack.
    Shapes are checked by the caller, by comparing with `to_torch` of the fnn layer.
    """

    keys: tuple[str, ...]
    from_torch: Callable
    to_torch: Callable
    optional: tuple[str, ...] = ()


CONVERTERS: dict[str, Converter] = {}


def register(kind: str, converter: Converter) -> None:
    """Add (or replace) the converter of the fnn layers named `kind`."""
    if not isinstance(kind, str) or not isinstance(converter, Converter):
        raise BadValue(f"register(kind: str, converter: Converter), got {kind!r}, "
                       f"{type(converter).__name__}.")
    CONVERTERS[kind] = converter


def _rank(tensors: dict, key: str, rank: int, what: str) -> np.ndarray:
    a = tensors[key]
    if a.ndim != rank:
        raise KindMismatch(f"{key} has shape {shape_str(a.shape)}, while the twin of this "
                           f"layer ({what}) has a rank-{rank} {key}")
    return a


# ---------------------------------------------------------------------------
# Dense (with the Flatten reordering), convolutions


def _to_channels_first(w: np.ndarray, flattened) -> np.ndarray:
    """Rows of `w: (prod(flattened), out)` from fnn's `(*spatial, C)` order to torch's
    `(C, *spatial)` order (a Dense after a Flatten)."""
    if flattened is None or w.shape[0] != math.prod(flattened):
        return w
    k = len(flattened)
    return w.reshape(*flattened, -1).transpose(k - 1, *range(k - 1), k).reshape(w.shape)


def _to_channels_last(w: np.ndarray, flattened) -> np.ndarray:
    if flattened is None or w.shape[0] != math.prod(flattened):
        return w
    k = len(flattened)
    torch_order = (flattened[-1], *flattened[:-1])
    return w.reshape(*torch_order, -1).transpose(*range(1, k), 0, k).reshape(w.shape)


def _dense_from(t, site):
    params = {"w": _to_channels_last(_rank(t, "weight", 2, "Linear").T, site.flattened)}
    if "bias" in t:
        params["b"] = t["bias"]
    return params, {}


def _dense_to(params, state, site):
    out = {"weight": _to_channels_first(params["w"], site.flattened).T}
    if "b" in params:
        out["bias"] = params["b"]
    return out


def _conv(rank: int, transposed: bool) -> Converter:
    """`ConvND`: torch `(out, in/groups, *k)` = fnn `(*k, in/groups, out)` transposed;
    `ConvTransposeND`: torch `(in, out, *k)` = fnn `(*k, in, out)`."""
    r = rank + 2
    what = f"ConvTranspose{rank}d" if transposed else f"Conv{rank}d"
    io = (0, 1) if transposed else (1, 0)    # where fnn's (in, out) sit in torch's layout

    def from_torch(t, site):
        w = _rank(t, "weight", r, what).transpose(*range(2, r), *io)
        return ({"w": w, "b": t["bias"]} if "bias" in t else {"w": w}), {}

    def to_torch(params, state, site):
        w = params["w"]
        out = {"weight": w.transpose(*((r - 2, r - 1) if transposed else (r - 1, r - 2)),
                                     *range(r - 2))}
        if "b" in params:
            out["bias"] = params["b"]
        return out

    return Converter(("weight", "bias"), from_torch, to_torch)


# ---------------------------------------------------------------------------
# normalisation, embedding, PReLU: renamed vectors


def _renamed(names: dict[str, str], state_names: dict[str, str] = (), *,
             extra: tuple[str, ...] = (), rank: int = 1, what: str = "") -> Converter:
    """fnn `params[p] = tensors[t]` for `names = {t: p}` (and `state` for `state_names`);
    keys in `extra` are read and ignored, and written as 0 (`num_batches_tracked`)."""
    state_names = dict(state_names)

    def from_torch(t, site):
        for key in (*names, *state_names):
            if key in t:
                _rank(t, key, rank, what)
        params = {p: t[k] for k, p in names.items() if k in t}
        return params, {p: t[k] for k, p in state_names.items() if k in t}

    def to_torch(params, state, site):
        out = {k: params[p] for k, p in names.items() if p in params}
        out.update({k: state[p] for k, p in state_names.items() if p in state})
        out.update({k: np.zeros((), np.int64) for k in extra})
        return out

    return Converter((*names, *state_names, *extra), from_torch, to_torch, extra)


# ---------------------------------------------------------------------------
# recurrent layers


_RNN_KEYS = ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")


def _recurrent_from(t, suffix: str = "", what: str = "RNN/LSTM/GRU"):
    w_x = _rank(t, "weight_ih_l0" + suffix, 2, what).T
    w_h = _rank(t, "weight_hh_l0" + suffix, 2, what).T
    b_ih, b_hh = t.get("bias_ih_l0" + suffix), t.get("bias_hh_l0" + suffix)
    return w_x, w_h, b_ih, b_hh


def _single_bias(suffix: str = ""):
    """SimpleRNN and LSTM: torch's two biases are added; fnn keeps their sum `b`."""

    def from_torch(t, site):
        w_x, w_h, b_ih, b_hh = _recurrent_from(t, suffix)
        if b_ih is None or b_hh is None:
            raise KindMismatch("torch's module has no biases (bias=False); fnn's recurrent "
                               "layers always have them")
        return {"w_x": w_x, "w_h": w_h, "b": b_ih + b_hh}, {}

    def to_torch(params, state, site):
        b = params["b"]
        return {"weight_ih_l0" + suffix: params["w_x"].T, "weight_hh_l0" + suffix: params["w_h"].T,
                "bias_ih_l0" + suffix: b, "bias_hh_l0" + suffix: np.zeros_like(b)}

    return Converter(tuple(k + suffix for k in _RNN_KEYS), from_torch, to_torch)


def _gru(suffix: str = ""):
    def from_torch(t, site):
        w_x, w_h, b_ih, b_hh = _recurrent_from(t, suffix)
        if b_ih is None or b_hh is None:
            raise KindMismatch("torch's GRU has no biases (bias=False); fnn's GRU always "
                               "has them")
        return {"w_x": w_x, "w_h": w_h, "b_x": b_ih, "b_h": b_hh}, {}

    def to_torch(params, state, site):
        return {"weight_ih_l0" + suffix: params["w_x"].T, "weight_hh_l0" + suffix: params["w_h"].T,
                "bias_ih_l0" + suffix: params["b_x"], "bias_hh_l0" + suffix: params["b_h"]}

    return Converter(tuple(k + suffix for k in _RNN_KEYS), from_torch, to_torch)


def _inner_kind(params: dict) -> str:
    """The recurrent layer inside a Bidirectional, read off its params."""
    if "b_x" in params:
        return "GRU"
    w_h = params.get("w_h")
    if w_h is None or len(w_h.shape) != 2:
        raise BadValue("Bidirectional converts only a single SimpleRNN, LSTM or GRU (torch's "
                       f"bidirectional=True), got params with keys {sorted(params)}.")
    return "LSTM" if w_h.shape[1] == 4 * w_h.shape[0] else "SimpleRNN"


def _bidirectional() -> Converter:
    forward = {"GRU": _gru(), "LSTM": _single_bias(), "SimpleRNN": _single_bias()}
    backward = {"GRU": _gru("_reverse"), "LSTM": _single_bias("_reverse"),
                "SimpleRNN": _single_bias("_reverse")}

    def from_torch(t, site):
        kind = _inner_kind(site.params["forward"])
        return {"forward": forward[kind].from_torch(t, site)[0],
                "backward": backward[kind].from_torch(t, site)[0]}, {}

    def to_torch(params, state, site):
        kind = _inner_kind(site.params["forward"])
        return {**forward[kind].to_torch(params["forward"], {}, site),
                **backward[kind].to_torch(params["backward"], {}, site)}

    keys = _RNN_KEYS + tuple(k + "_reverse" for k in _RNN_KEYS)
    return Converter(keys, from_torch, to_torch)


# ---------------------------------------------------------------------------
# attention (API.md §6.1: in_proj_weight = concat(w_q, w_k, w_v, axis=1).T)


def _attention() -> Converter:
    def from_torch(t, site):
        w = _rank(t, "in_proj_weight", 2, "MultiheadAttention").T
        w_q, w_k, w_v = np.split(w, 3, axis=1)
        params = {"w_q": w_q, "w_k": w_k, "w_v": w_v,
                  "w_o": _rank(t, "out_proj.weight", 2, "MultiheadAttention").T}
        if "in_proj_bias" in t:
            params.update(zip(("b_q", "b_k", "b_v"), np.split(t["in_proj_bias"], 3)))
        if "out_proj.bias" in t:
            params["b_o"] = t["out_proj.bias"]
        return params, {}

    def to_torch(params, state, site):
        out = {"in_proj_weight": np.concatenate(
            [params["w_q"], params["w_k"], params["w_v"]], axis=1).T}
        if "b_q" in params:
            out["in_proj_bias"] = np.concatenate([params["b_q"], params["b_k"], params["b_v"]])
        out["out_proj.weight"] = params["w_o"].T
        if "b_o" in params:
            out["out_proj.bias"] = params["b_o"]
        return out

    return Converter(("in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"),
                     from_torch, to_torch)


_AFFINE = {"weight": "scale", "bias": "bias"}

CONVERTERS.update({
    "Dense": Converter(("weight", "bias"), _dense_from, _dense_to),
    **{f"Conv{n}D": _conv(n, transposed=False) for n in (1, 2, 3)},
    **{f"ConvTranspose{n}D": _conv(n, transposed=True) for n in (1, 2, 3)},
    "BatchNorm": _renamed(_AFFINE, {"running_mean": "mean", "running_var": "var"},
                          extra=("num_batches_tracked",), what="BatchNorm"),
    "LayerNorm": _renamed(_AFFINE, what="LayerNorm"),
    "GroupNorm": _renamed(_AFFINE, what="GroupNorm"),
    "InstanceNorm": _renamed(_AFFINE, what="InstanceNorm"),
    "RMSNorm": _renamed({"weight": "scale"}, what="RMSNorm"),
    "Embedding": _renamed({"weight": "table"}, rank=2, what="Embedding"),
    "PReLU": _renamed({"weight": "alpha"}, what="PReLU"),
    "SimpleRNN": _single_bias(),
    "LSTM": _single_bias(),
    "GRU": _gru(),
    "Bidirectional": _bidirectional(),
    "MultiHeadAttention": _attention(),
})
