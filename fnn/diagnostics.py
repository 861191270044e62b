"""Why won't it train? Activation and gradient diagnostics as plain dicts.

    fnn.diagnostics.dead_relu_fraction(model, params, state, x)   # {"1_relu": 0.12, ...}
    fnn.diagnostics.saturation_fraction(model, params, state, x)  # sigmoid/tanh layers
    fnn.diagnostics.activation_stats(model, params, state, x)     # mean/std/min/max per layer
    fnn.diagnostics.gradient_norms(grads)                         # {"0_Dense/w": 0.31, ...}
    fnn.diagnostics.update_ratios(old_params, new_params)         # ‖Δp‖/‖p‖, aim for ~1e-3
    print(fnn.diagnostics.format_table(stats))

Layer outputs come from `fnn.intermediates` (so the model must be a
`fnn.serial`) and are keyed by "/"-joined paths like `"2_Serial/1_relu"`.
Activations are computed over `x` in batches of `batch_size` with
`train=False`; the statistics are accumulated on the host in float64.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import (
    POSITIVE,
    BadType,
    BadValue,
    checked,
    describe_value,
    named,
    number,
    positive_int,
    shape_str,
)
from fnn.core import Layer
from fnn.gradcheck import leaf_paths
from fnn.intermediates import flatten, intermediates, layer_paths, require_serial, require_trees

__all__ = [
    "dead_relu_fraction", "saturation_fraction", "activation_stats",
    "gradient_norms", "update_ratios", "format_table", "SATURATING",
]

#: Output ranges of the saturating activations `saturation_fraction` looks for by default.
SATURATING = {"sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0)}

_INDEX_PREFIX = re.compile(r"\d+_(.+)")


def _layer_name(path: str) -> str:
    """`"2_Serial/1_relu"` -> `"relu"`."""
    last = path.split("/")[-1]
    m = _INDEX_PREFIX.fullmatch(last)
    return m.group(1) if m else last


def _activation_batches(model, params, state, x, batch_size):
    """Yield flat `{path: np.ndarray}` of every layer's output, batch by batch."""
    if not isinstance(model, Layer):
        raise BadType(f"model must be a fnn.Layer built with fnn.serial, got {model!r}.")
    require_serial(model)
    require_trees(params, state)
    batch_size = positive_int("batch_size", batch_size)
    n = int(jnp.shape(x)[0]) if jnp.ndim(x) else 0
    if n == 0:
        raise BadValue(f"expected a non-empty batch x of shape (N, ...), got shape "
                       f"{tuple(jnp.shape(x))}.")
    paths = layer_paths(model)  # jit returns dicts with sorted keys: keep the layer order
    fn = jax.jit(lambda p, s, xb: [flatten(intermediates(model, p, s, xb))[k] for k in paths])
    for start in range(0, n, batch_size):
        acts = fn(params, state, x[start:start + batch_size])
        yield {k: np.asarray(v, np.float64) for k, v in zip(paths, acts, strict=True)}


def _select(paths, layers, default_names, what):
    """The layer paths to inspect: `layers` (checked against `paths`), or by default those
    whose layer name is in `default_names` (`what` names them in the error)."""
    if layers is None:
        chosen = [p for p in paths if _layer_name(p) in default_names]
        if not chosen:
            raise BadValue(f"the model has no {what} layers (layer outputs: {paths}); "
                           f"pass layers=[...] with the paths to inspect.")
        return chosen
    if isinstance(layers, str):
        layers = [layers]
    elif not (isinstance(layers, (list, tuple)) and all(isinstance(p, str) for p in layers)):
        raise BadType(f"layers must be a layer path or a list of them, such as {paths[:2]}, "
                      f"got {layers!r}.")
    unknown = [p for p in layers if p not in paths]
    if unknown:
        raise BadValue(f"unknown layer path(s) {unknown}; the model's layer outputs are "
                       f"{paths}.")
    return layers


@checked("dead_relu_fraction", threshold=number)
def dead_relu_fraction(model: Layer, params, state, x, *, layers=None,
                       batch_size: int = 1024, threshold: float = 0.0) -> dict[str, float]:
    """Fraction of ReLU units that are never active over the data set `x`.

    A unit is one element of a layer's per-example output (a hidden neuron;
    one position of one channel for feature maps). It is *dead* when its output
    is `<= threshold` for every example in `x`; a dead ReLU passes no gradient
    and never recovers (e.g. after a too-large learning rate pushed its bias
    far negative).

    **Arguments:** `layers`: the layer paths to inspect (default: every layer
    named `relu`, e.g. `"1_relu"`); `threshold`: activity threshold (0).

    **Returns:** `{path: fraction in [0, 1]}`.
    """
    active, chosen = None, None
    for acts in _activation_batches(model, params, state, x, batch_size):
        if chosen is None:
            chosen = _select(list(acts), layers, ("relu",), "relu")
            active = {p: np.zeros(acts[p].shape[1:], bool) for p in chosen}
        for p in chosen:
            active[p] |= np.any(acts[p] > threshold, axis=0)
    return {p: float(1.0 - np.mean(active[p])) for p in chosen}


@checked("saturation_fraction", tol=POSITIVE)
def saturation_fraction(model: Layer, params, state, x, *, tol: float = 0.01, layers=None,
                        ranges: Mapping[str, tuple[float, float]] | None = None,
                        batch_size: int = 1024) -> dict[str, float]:
    """Fraction of sigmoid/tanh activations within `tol` of either end of their range.

    An activation `a` of a layer with output range `(low, high)` is saturated
    when `a − low < tol` or `high − a < tol`: sigmoid `a < 0.01` or `a > 0.99`,
    tanh `|a| > 0.99` with the default `tol=0.01`. There the local gradient
    (`σ(1−σ)` or `1 − tanh²`) is below ~0.01, so a mostly saturated layer
    barely learns (large weights, unscaled inputs).

    **Arguments:**
    - `tol`: distance to the end of the range counted as saturated (0.01).
    - `ranges`: `{layer name: (low, high)}` of the activations to look for,
      default `SATURATING = {"sigmoid": (0, 1), "tanh": (-1, 1)}`; add your own
      activation's name to inspect it.
    - `layers`: explicit layer paths (their names must be in `ranges`).

    **Returns:** `{path: fraction of all (example, unit) activations}`.
    """
    ranges = _ranges(SATURATING if ranges is None else ranges)
    counts, total, chosen = {}, {}, None
    for acts in _activation_batches(model, params, state, x, batch_size):
        if chosen is None:
            chosen = _select(list(acts), layers, tuple(ranges), "sigmoid/tanh")
            for p in chosen:
                if _layer_name(p) not in ranges:
                    raise BadValue(f"layer {p!r} is not one of the activations in ranges "
                                   f"{sorted(ranges)}; add its (low, high) range.")
            counts = {p: 0 for p in chosen}
            total = {p: 0 for p in chosen}
        for p in chosen:
            low, high = ranges[_layer_name(p)]
            a = acts[p]
            counts[p] += int(np.sum((a - low < tol) | (high - a < tol)))
            total[p] += a.size
    return {p: counts[p] / total[p] for p in chosen}


def _ranges(ranges) -> dict[str, tuple[float, float]]:
    """`{name: (low, high)}` with `low < high` as floats, else an error naming the entry."""
    if not isinstance(ranges, Mapping):
        raise BadType(f"ranges must be a dict {{layer name: (low, high)}}, such as "
                      f"{SATURATING}, got {ranges!r}.")
    def is_number(v):
        return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)

    out = {}
    for name, bounds in ranges.items():
        # an infinite end is allowed: (-1, inf) looks at one end only (ELU)
        if not (isinstance(bounds, (tuple, list)) and len(bounds) == 2
                and all(map(is_number, bounds)) and float(bounds[0]) < float(bounds[1])):
            raise BadValue(f"ranges[{name!r}] must be a pair of numbers (low, high) with "
                           f"low < high, got {bounds!r}.")
        out[name] = (float(bounds[0]), float(bounds[1]))
    return out


@named("activation_stats")
def activation_stats(model: Layer, params, state, x, *, layers=None,
                     batch_size: int = 1024) -> dict[str, dict[str, float]]:
    """Mean, standard deviation, min, max and fraction of zeros of every layer's output.

    Over all examples of `x` and all units. Watch the std through depth: it
    should stay roughly constant (He/Glorot initialisation); shrinking towards
    0 means vanishing activations (e.g. `0.01·randn` init in a deep net),
    growing means exploding ones.

    **Returns:** `{path: {"mean", "std", "min", "max", "zero_fraction"}}` for
    every layer (or the paths in `layers`). The std is the population std,
    combined over batches with Chan's pairwise update (no `E[x²] − E[x]²`
    cancellation).
    """
    acc, chosen = {}, None
    for acts in _activation_batches(model, params, state, x, batch_size):
        if chosen is None:
            chosen = list(acts) if layers is None else _select(list(acts), layers, (), "")
            acc = {p: [0, 0.0, 0.0, math.inf, -math.inf, 0] for p in chosen}
        for p in chosen:
            a = acts[p].ravel()
            n_b, mean_b = a.size, float(np.mean(a))
            m2_b = float(np.sum(np.square(a - mean_b)))
            n, mean, m2, lo, hi, zeros = acc[p]
            tot = n + n_b
            delta = mean_b - mean
            acc[p] = [tot, mean + delta * n_b / tot, m2 + m2_b + delta * delta * n * n_b / tot,
                      min(lo, float(np.min(a))), max(hi, float(np.max(a))),
                      zeros + int(np.sum(a == 0))]
    return {p: {"mean": v[1], "std": math.sqrt(v[2] / v[0]), "min": v[3], "max": v[4],
                "zero_fraction": v[5] / v[0]} for p, v in acc.items()}


def _group_sq_norms(tree, by: str) -> dict[str, float]:
    """Σ leaf² per leaf path (`by="leaf"`) or per layer, the path up to its last "/"."""
    if by not in ("leaf", "layer"):
        raise BadValue(f"by must be 'leaf' or 'layer', got {by!r}.")
    out: dict[str, float] = {}
    for path, leaf in leaf_paths(tree):
        name = path if by == "leaf" else (path.rsplit("/", 1)[0] if "/" in path else path)
        out[name] = out.get(name, 0.0) + float(np.sum(np.square(_as_float64(path, leaf))))
    return out


def _as_float64(path: str, leaf) -> np.ndarray:
    """A numeric leaf as a float64 array; anything else (a string, a PRNG key) a `BadType`."""
    dtype = getattr(leaf, "dtype", None)
    if not (isinstance(leaf, (int, float)) or (dtype is not None and (
            jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, jnp.bool_)))):
        raise BadType(f"leaf {path!r} must be a numeric array, got {describe_value(leaf)}.")
    return np.asarray(leaf, np.float64)


def _params_of(tree):
    """Params, or the params held by an optimizer/train state (`.params`)."""
    return tree.params if hasattr(tree, "params") and not isinstance(tree, Mapping) else tree


@named("gradient_norms")
def gradient_norms(grads, *, by: str = "leaf") -> dict[str, float]:
    """L2 norm of each gradient leaf (`by="leaf"`, keys like `"0_Dense/w"`) or of
    each layer's leaves together (`by="layer"`, keys like `"0_Dense"`).

    Norms that shrink layer by layer towards the input signal vanishing
    gradients; a few orders of magnitude between layers is a red flag.
    """
    return {k: math.sqrt(v) for k, v in _group_sq_norms(grads, by).items()}


@named("update_ratios")
def update_ratios(params, new_params, *, by: str = "leaf") -> dict[str, float]:
    """The update-to-parameter ratio `‖p_new − p‖ / ‖p‖` per leaf (or per layer).

    The CS231n rule of thumb: around `1e-3` per step is healthy; much lower
    means the learning rate is too small, much higher (`1e-1`) too large.
    `params`/`new_params` are parameter pytrees or optimizer states (their
    `.params` are used), e.g. `update_ratios(opt_state, new_opt_state)`.
    A leaf whose norm is 0 (a bias at its zero init) gives `inf`
    (`nan` when it did not move either).
    """
    old, new = _params_of(params), _params_of(new_params)
    if jax.tree.structure(old) != jax.tree.structure(new):
        raise BadValue(f"params and new_params have different structures: "
                       f"{jax.tree.structure(old)} vs {jax.tree.structure(new)}.")
    for (path, a), (_, b) in zip(leaf_paths(old), leaf_paths(new), strict=True):
        if np.shape(_as_float64(path, a)) != np.shape(_as_float64(path, b)):
            raise BadValue(f"leaf {path!r} has shape {shape_str(np.shape(a))} in params but "
                           f"{shape_str(np.shape(b))} in new_params.")
    delta = jax.tree.map(lambda a, b: np.asarray(b, np.float64) - np.asarray(a, np.float64),
                         old, new)
    num = _group_sq_norms(delta, by)
    den = _group_sq_norms(old, by)
    out = {}
    for k in num:
        if den[k] > 0:
            out[k] = math.sqrt(num[k] / den[k])
        else:
            out[k] = math.nan if num[k] == 0 else math.inf
    return out


def _fmt(v, precision: int) -> str:
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    try:
        return f"{float(v):.{precision}g}"
    except (TypeError, ValueError):
        return str(v)


@named("format_table")
def format_table(stats: Mapping, *, precision: int = 4, column: str = "value",
                 title: str | None = None) -> str:
    """A dict as an aligned text table, one row per key.

    `{name: number}` gives two columns (name, `column`); `{name: {col: number}}`
    (e.g. `activation_stats`) one column per inner key. Numbers are printed with
    `precision` significant digits.
    """
    if not isinstance(stats, Mapping):
        raise BadType(f"expected a dict, got {type(stats).__name__}.")
    precision = positive_int("precision", precision)
    rows = list(stats.items())
    nested = any(isinstance(v, Mapping) for _, v in rows)
    if nested:
        cols: list[str] = []
        for _, v in rows:
            for c in (v if isinstance(v, Mapping) else {}):
                if c not in cols:
                    cols.append(c)
        body = [[str(k)] + [_fmt(v[c], precision) if isinstance(v, Mapping) and c in v else ""
                            for c in cols] for k, v in rows]
    else:
        cols = [column]
        body = [[str(k), _fmt(v, precision)] for k, v in rows]
    header = ["layer", *cols]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    out = [title] if title else []
    out += [line(header), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in body]
    return "\n".join(out)
