"""`summary(model, input_shape)`: per-layer output shapes, parameters, MACs and FLOPs.

Nothing here is a hand-kept table: the walk follows each layer's `children`
(recursing into `serial`, `concat`, `residual`, `remat` and `repeat`, whose block's
rows count `n` times, under the path `"{n}x/..."`), parameter counts are the
sizes of the parameter arrays `init` would create (traced abstractly with
`jax.eval_shape`, so even ResNet-18 costs no memory), and multiply-accumulates
are counted in the jaxpr of each leaf layer's `apply` (`jax.make_jaxpr` on
abstract inputs). A new layer is therefore counted without any registration.

Counting rules, per example (batch 1), with `train=False`:
- MACs: every `dot_general` contributes `output size × contracted size`, every
  `conv_general_dilated` contributes `output size × kernel taps × input channels
  per group` (padded positions included, the usual convention). Sub-jaxprs are
  entered: `scan` bodies count `length` times, `cond` its costliest branch,
  `while` bodies once (their trip count is unknown), `jit`/`custom_jvp`/
  `custom_vjp` calls once.
- FLOPs: `2 × MACs` plus one FLOP per output element of every `add` that takes
  a matrix product or convolution result directly (the bias add, and in
  recurrent cells the sum `x w_x + h w_h`). Activations, normalisation and
  pooling are not counted, as in the usual tables.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import jax
from jax.extend import core as jcore

from fnn._array_checks import example_shape, to_dtype
from fnn._checks import BadValue, named, shape_str
from fnn._jaxpr import sub_jaxprs
from fnn.core import Layer, as_layer, output_struct
from fnn.layers import _onednn_conv


class Row(NamedTuple):
    """One leaf layer of the model."""

    path: str             # e.g. "3_Residual/block/0_Conv2D"
    name: str             # the layer's name, e.g. "Conv2D"
    output_shape: tuple   # per example, without the batch axis
    params: int           # number of parameters (scalars) of this layer
    macs: int             # multiply-accumulates per example
    flops: int            # 2 × macs + bias adds, per example


class Summary:
    """The result of `fnn.summary`: `rows` (a list of `Row`) and the totals.

    **Attributes:** `rows`, `input_shape`, `output_shape`, `total_params`,
    `total_macs`, `total_flops`, `name`. `str(summary)` (and `print`) gives an
    aligned table; `summary.as_dict()` a JSON-friendly dict.
    """

    def __init__(self, name, input_shape, output_shape, rows, total_params):
        self.name = name
        self.input_shape = tuple(input_shape)
        self.output_shape = tuple(output_shape)
        self.rows = list(rows)
        self.total_params = int(total_params)
        self.total_macs = sum(r.macs for r in self.rows)
        self.total_flops = sum(r.flops for r in self.rows)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "rows": [r._replace(output_shape=list(r.output_shape))._asdict() for r in self.rows],
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "total_flops": self.total_flops,
        }

    def __str__(self) -> str:
        head = ("Layer (path)", "Output shape", "Params", "MACs", "FLOPs")
        body = [(r.path, str(r.output_shape), f"{r.params:,}", f"{r.macs:,}", f"{r.flops:,}")
                for r in self.rows]
        total = ("Total", str(self.output_shape), f"{self.total_params:,}",
                 f"{self.total_macs:,}", f"{self.total_flops:,}")
        widths = [max(len(line[i]) for line in [head, *body, total]) for i in range(5)]

        def fmt(line):
            return "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(
                    zip(line, widths, strict=True)))

        rule = "-" * len(fmt(head))
        return "\n".join([
            f"{self.name}  input {self.input_shape} (per example; counts per example)",
            rule, fmt(head), rule, *(fmt(b) for b in body), rule, fmt(total), rule,
        ])

    __repr__ = __str__


# ---------------------------------------------------------------------------
# counting in jaxprs

_SHAPE_ONLY = {"reshape", "broadcast_in_dim", "convert_element_type", "transpose", "squeeze",
               "expand_dims", "copy", "copy_p"}


def _size(aval) -> int:
    return math.prod(getattr(aval, "shape", ()))


def _eqn_macs(eqn) -> int:
    prim = eqn.primitive.name
    if prim == "dot_general":
        (lhs_contract, _), _ = eqn.params["dimension_numbers"]
        lhs = eqn.invars[0].aval
        k = math.prod(lhs.shape[d] for d in lhs_contract)
        return _size(eqn.outvars[0].aval) * k
    if prim == "conv_general_dilated":
        # A kernel (k..., C/g, O): each output cell takes k·C/g products. With an input
        # dilated by a stride (a transposed convolution) most of those meet inserted
        # zeros, so count as fvcore does: each input cell meets k·O/g kernel entries.
        rhs, spec = eqn.invars[1].aval, eqn.params["dimension_numbers"].rhs_spec
        if any(d > 1 for d in eqn.params["lhs_dilation"]):
            per_input = _size(rhs) // rhs.shape[spec[1]] // eqn.params["feature_group_count"]
            return _size(eqn.invars[0].aval) * per_input
        return _size(eqn.outvars[0].aval) * (_size(rhs) // rhs.shape[spec[0]])
    if prim == _onednn_conv.fwd_p.name:          # Conv2D on oneDNN: kernel (kh, kw, C/g, O)
        rhs = eqn.invars[1].aval
        return _size(eqn.outvars[0].aval) * (_size(rhs) // rhs.shape[-1])
    if prim == _onednn_conv.bwd_data_p.name:     # ConvTranspose on oneDNN: each cell of
        rhs = eqn.invars[1].aval                 # dy (N, H, W, O) meets kh·kw·C/g entries
        return _size(eqn.invars[0].aval) * (_size(rhs) // rhs.shape[-1])
    return 0


def _count(jaxpr, product_inputs=frozenset()):
    """(macs, bias_adds, indices of outvars that are matrix-product results)."""
    macs = adds = 0
    products = {v for i, v in enumerate(jaxpr.invars) if i in product_inputs}

    def is_product(v):
        return not isinstance(v, jcore.Literal) and v in products

    for eqn in jaxpr.eqns:
        prim = eqn.primitive.name
        own = _eqn_macs(eqn)
        if own:
            macs += own
            products.update(eqn.outvars)
            continue
        if prim == "add" and any(is_product(v) for v in eqn.invars):
            adds += _size(eqn.outvars[0].aval)
            continue
        if prim in _SHAPE_ONLY and any(is_product(v) for v in eqn.invars):
            products.update(eqn.outvars)
            continue
        subs = [(name, j) for name, val in eqn.params.items() for j in sub_jaxprs(val)]
        if not subs:
            continue
        inner = frozenset(i for i, v in enumerate(eqn.invars) if is_product(v))
        if prim == "cond":  # branches take the operands after the predicate
            inner = frozenset(i - 1 for i in inner if i > 0)
            results = [_count(j, inner) for _, j in subs]
            m, a, outs = max(results, key=lambda r: (r[0], r[1]))
        elif prim == "while":
            body = dict(subs)["body_jaxpr"]
            m, a, outs = _count(body)
            outs = frozenset()
        else:
            # scan/jit/custom_jvp/custom_vjp/remat: the first sub-jaxpr is the computation
            # (custom calls also carry rules as callables, which are skipped).
            body = subs[0][1]
            reps = int(eqn.params.get("length", 1)) if prim == "scan" else 1
            same_arity = len(body.invars) == len(eqn.invars)
            m, a, outs = _count(body, inner if same_arity else frozenset())
            m, a = m * reps, a * reps
            if prim == "scan":
                outs = frozenset()
        macs += m
        adds += a
        products.update(eqn.outvars[i] for i in outs if i < len(eqn.outvars))
    out_idx = frozenset(i for i, v in enumerate(jaxpr.outvars) if is_product(v))
    return macs, adds, out_idx


def count_macs(layer: Layer, params, state, x) -> tuple[int, int]:
    """(MACs, bias-add FLOPs) of `layer.apply(params, state, x)` (abstract inputs allowed)."""
    closed = jax.make_jaxpr(lambda p, s, x: layer.apply(p, s, x)[0])(params, state, x)
    macs, adds, _ = _count(closed.jaxpr)
    return macs, adds


def _per_example(out) -> tuple:
    """The per-example shape of an output struct; of each part of a tuple output (a
    recurrent layer with `return_state=True` gives `(y, carry)`)."""
    if isinstance(out, tuple):
        return tuple(_per_example(part) for part in out)
    return tuple(out.shape[1:])


def _n_params(tree) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


# ---------------------------------------------------------------------------
# the walk


def _repeat_rows(layer, path, params, state, x, rows):
    """A `repeat`'s rows: those of one copy (params sliced), counted `n` times."""
    n, child = len(layer.children), layer.children[0][1]
    p, s = (jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape[1:], a.dtype), t)
            for t in (params, state))
    copy: list[Row] = []
    _walk(child, f"{path}/{n}x" if path else f"{n}x", p, s, x, copy)
    rows.extend(r._replace(params=n * r.params, macs=n * r.macs, flops=n * r.flops)
                for r in copy)
    return output_struct(layer, x.shape[1:], x.dtype, params, state)


def _walk(layer, path, params, state, x, rows):
    kind = layer.combinator
    if kind == "repeat":
        return _repeat_rows(layer, path, params, state, x, rows)
    if kind == "remat":   # the same params: the child's rows, at the same path
        return _walk(layer.children[0][1], path, params, state, x, rows)
    if kind is None:
        out = output_struct(layer, x.shape[1:], x.dtype, params, state)
        macs, adds = count_macs(layer, params, state, x)
        rows.append(Row(path or layer.name, layer.name, _per_example(out),
                        _n_params(params), macs, 2 * macs + adds))
        return out
    for key, child in layer.children:
        sub = f"{path}/{key}" if path else key
        p, s = params.get(key, {}), state.get(key, {})
        y = _walk(child, sub, p, s, x, rows)
        if kind == "serial":
            x = jax.ShapeDtypeStruct(y.shape, y.dtype)
    if kind == "serial":
        return x
    return output_struct(layer, x.shape[1:], x.dtype, params, state)


@named("summary")
def summary(model, input_shape, dtype=None) -> Summary:
    """Per-layer output shapes, parameter counts, MACs and FLOPs of `model`.

    **Arguments:**
    - `model`: a `fnn.Layer` (or a whole model built with `serial`/`concat`/`residual`).
    - `input_shape`: the shape of ONE example, e.g. `(32, 32, 3)`.
    - `dtype`: the input dtype (default: float32, or what the first layer asks for).

    Returns a `Summary`: `rows` (one per leaf layer, with its path such as
    `"3_Residual/block/0_Conv2D"`), `total_params`, `total_macs`, `total_flops`;
    print it for a table. Everything is traced abstractly: no parameters are
    allocated and no FLOPs are spent.

    Counting rules, per example (batch 1), with `train=False`: MACs are, for every
    `dot_general`, `output size × contracted size`, and for every convolution
    `output size × kernel taps × input channels per group` (padded positions
    included); `scan` bodies count `length` times, `cond` its costliest branch,
    `while` bodies once. FLOPs are `2 × MACs` plus one per output element of an `add`
    that takes a matrix product or convolution directly (the bias add; `x w_x + h w_h`
    in recurrent cells); activations, normalisation and pooling are not counted.

    >>> import fnn
    >>> fnn.summary(fnn.layers.Conv2D(100, 3, padding="SAME"), (32, 32, 3)).total_macs
    2764800
    """
    model = as_layer(model)
    input_shape = example_shape(input_shape, "(d1, ..., dk)")
    dtype = model.input_dtype if dtype is None else to_dtype(dtype)
    try:
        params, state = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), input_shape))
    except ValueError as err:
        if len(input_shape) < 2 or input_shape[0] != 1:
            raise
        raise BadValue(  # the usual slip: a batch axis in front
            f"{err} Is the leading 1 of input_shape {shape_str(input_shape)} a batch axis? "
            f"Pass the shape of ONE example, e.g. {shape_str(input_shape[1:])}.") from err
    out = output_struct(model, input_shape, dtype, params, state)
    rows: list[Row] = []
    _walk(model, "", params, state, jax.ShapeDtypeStruct((1, *input_shape), dtype), rows)
    return Summary(model.name, input_shape, _per_example(out), rows, _n_params(params))


__all__ = ["Row", "Summary", "count_macs", "summary"]
