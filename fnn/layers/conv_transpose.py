"""Transposed convolutions (`ConvTranspose1D/2D/3D`) and their output-size rule.

A transposed convolution maps each input cell to a `k`-cell patch of the output,
`stride` cells apart: it is the adjoint (the input gradient) of a strided convolution,
and the usual learned upsampling. On one axis, with kernel `k`, stride `s`,
dilation `d` (`k_eff = d·(k − 1) + 1`), padding `p` and output padding `q`:

    full output (no padding):  (n − 1)·s + k_eff
    output:                    (n − 1)·s − 2p + k_eff + q

`p` crops `p` cells from both ends of the full output and `q` gives back `q` of
those at the end, as PyTorch's `padding` and `output_padding` (which resolve the
sizes that one strided convolution maps to the same output). `"SAME"` makes the
output `n·s`: it crops `c = k_eff − s` cells, `⌊c/2⌋` at the start and the rest at
the end (or pads `−c` zeros at the end when `c < 0`), so that it is exactly the
adjoint of `Conv2D(padding="SAME", stride=s)` on an input of size `n·s`
(TensorFlow's `conv2d_transpose` with `"SAME"`).

On CPU with the oneDNN extension (`fnn.layers._onednn_conv.supports`), 1-D and 2-D
transposed convolutions whose crops are >= 0 (every int `padding` >= `output_padding`,
and `"SAME"` with `k_eff >= s`) run on oneDNN's backward-data kernel: the crops are the
padding of the convolution they are the adjoint of (1-D as 2-D with a unit axis). It
measured 2–3× faster forward and ~20× faster backward than XLA's convolution of the
dilated input (benchmarks/conv_variants.py). Everywhere else the transposed convolution
is one `jax.lax.conv_general_dilated` over the input dilated by the stride
(`lhs_dilation`), the kernel flipped, padded by `k_eff − 1 − crop` on each side.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import initializers
from fnn._array_checks import example_shape, require_key_and_train, require_params
from fnn._checks import (
    BadType,
    BadValue,
    checked,
    flag,
    is_int,
    labelled,
    lookup,
    named,
    positive_int,
    require_key,
    shape_str,
)
from fnn.core import Layer
from fnn.layers import _onednn_conv
from fnn.layers.conv import EXAMPLE_LAYOUTS, positive_tuple, require_batch

__all__ = ["conv_transpose_output_size", "ConvTranspose1D", "ConvTranspose2D",
           "ConvTranspose3D"]

_DIMS = {1: ("NHC", "HIO", "NHC"), 2: ("NHWC", "HWIO", "NHWC"),
         3: ("NDHWC", "DHWIO", "NDHWC")}


def _int_tuple(name: str, value, ndim: int) -> tuple[int, ...]:
    """An int or `ndim` ints, each >= 0 (PyTorch's `padding`, `output_padding`)."""
    if is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(map(is_int, value)):
        values = tuple(int(v) for v in value)
    else:
        raise BadType(f"{name} must be an int or a tuple of {ndim} ints, got {value!r}.")
    if min(values) < 0:
        raise BadValue(f"{name} must be >= 0, got {value!r}.")
    return values


def _padding(padding, ndim: int):
    """`"SAME"`, or PyTorch's per-axis `p` (`"VALID"` is `p = 0`)."""
    if isinstance(padding, str):
        up = padding.upper()
        if up in ("SAME", "VALID"):
            return "SAME" if up == "SAME" else (0,) * ndim
        raise BadValue(f'unknown padding {padding!r}; expected "SAME", "VALID" or an int p '
                       f"(PyTorch's padding: p cells cropped from both ends) per axis.")
    return _int_tuple("padding", padding, ndim)


def _crops(size, kernel, stride, pad, out_pad, dilation):
    """`(crop at the start, crop at the end)` of the full output on one axis (an end
    crop < 0 pads zeros instead)."""
    k_eff = dilation * (kernel - 1) + 1
    if pad == "SAME":
        c = k_eff - stride
        return max(c, 0) // 2, c - max(c, 0) // 2
    return pad, pad - out_pad


def _out_size(size, kernel, stride, pad, out_pad, dilation):
    lo, hi = _crops(size, kernel, stride, pad, out_pad, dilation)
    return (size - 1) * stride + dilation * (kernel - 1) + 1 - lo - hi


@checked("conv_transpose_output_size", size=positive_int, kernel=positive_int,
         stride=positive_int, dilation=positive_int)
def conv_transpose_output_size(size: int, kernel: int, stride: int = 1, padding=0,
                               output_padding: int = 0, *, dilation: int = 1) -> int:
    """Output length of a transposed convolution along one axis.

    `(n − 1)·s − 2p + d·(k − 1) + 1 + output_padding` for an int `padding` `p`
    (PyTorch's `ConvTranspose` shape rule), `n·s` for `"SAME"`. Example:
    `conv_transpose_output_size(7, 3, 2, 1, 1)` is 14.

    Raises `ValueError` for an `output_padding` not smaller than the stride or the
    dilation, or an output smaller than one cell.
    """
    pad = _padding(padding, 1)
    pad = pad if pad == "SAME" else pad[0]
    (out_pad,) = _int_tuple("output_padding", output_padding, 1)
    _require_output_padding((out_pad,), (stride,), (dilation,), pad)
    out = _out_size(size, kernel, stride, pad, out_pad, dilation)
    if out < 1:
        raise BadValue(f"padding {padding!r} crops the whole output (size {size}, kernel "
                       f"{kernel}, stride {stride}): {out} cells.")
    return out


def _require_output_padding(out_pad, strides, dilations, pad) -> None:
    if pad == "SAME" and any(out_pad):
        raise BadValue(f'output_padding must be 0 with padding="SAME" (the output is '
                       f"input·stride), got {out_pad}.")
    for q, s, d in zip(out_pad, strides, dilations, strict=True):
        if q >= max(s, d):
            raise BadValue(f"output_padding {out_pad} must be smaller than the stride "
                           f"{strides} or the dilation {dilations} on every axis (PyTorch's "
                           f"rule), got {q} where stride is {s} and dilation {d}.")


def _conv_transpose_layer(name: str, ndim: int, features: int, kernel_size, *, stride=1,
                         padding=0, output_padding=0, dilation=1, use_bias: bool = True,
                         w_init=initializers.lecun_normal,
                         b_init=initializers.zeros) -> Layer:
    """The transposed convolution `name` over `ndim` spatial axes: `w: (*kernel, in, features)`."""
    kernel = positive_tuple("kernel_size", kernel_size, ndim)
    strides = positive_tuple("stride", stride, ndim)
    dilations = positive_tuple("dilation", dilation, ndim)
    pad = _padding(padding, ndim)
    out_pad = _int_tuple("output_padding", output_padding, ndim)
    _require_output_padding(out_pad, strides, dilations, pad)
    w_init, b_init = lookup(initializers.get, w_init), lookup(initializers.get, b_init)
    param_shapes = {"w": (*kernel, "in", features), "b": (features,)}
    if not use_bias:
        del param_shapes["b"]

    def axes(spatial):
        per_axis = (pad,) * ndim if pad == "SAME" else pad
        return list(zip(spatial, kernel, strides, per_axis, out_pad, dilations, strict=True))

    def output_spatial(spatial, x_shape):
        if not all(spatial):
            raise BadValue(f"the input {shape_str(x_shape)} has an empty spatial axis.")
        out = tuple(_out_size(*a) for a in axes(spatial))
        if min(out) < 1:
            raise BadValue(f"padding {padding!r} crops the whole output of the input "
                           f"{shape_str(x_shape)} with kernel {kernel} and stride {strides}: "
                           f"output spatial size {out}.")
        return out

    @named(name)
    def init(key, input_shape):
        input_shape = example_shape(input_shape, EXAMPLE_LAYOUTS[ndim], rank=ndim + 1)
        output_spatial(input_shape[:ndim], input_shape)
        labelled(f"{name}.init", require_key, key)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (*kernel, input_shape[-1], features))}
        if use_bias:
            params["b"] = b_init(kb, (features,))
        return params, {}

    @named(name)
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, param_shapes, name)
        w = params["w"]
        require_batch(x, ndim)
        if x.shape[-1] != w.shape[-2]:
            raise BadValue(f"the kernel of shape {shape_str(w.shape)} (..., in, out) expects "
                           f"{w.shape[-2]} input channels, got input of shape "
                           f"{shape_str(x.shape)} with {x.shape[-1]}.")
        output_spatial(x.shape[1:-1], x.shape)

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        dtype = jnp.result_type(x, params["w"])
        x, w = x.astype(dtype), params["w"].astype(dtype)
        crops = [_crops(*a) for a in axes(x.shape[1:-1])]
        out = output_spatial(x.shape[1:-1], x.shape)
        y = _transpose(x, w, out, strides, crops, dilations)
        if use_bias:
            y = y + params["b"].astype(dtype).reshape((1,) * (ndim + 1) + (-1,))
        return y, state

    return Layer(init, apply, name)


def _transpose(x, w, out, strides, crops, dilations):
    """`(N, *spatial, in) -> (N, *out, features)` with `w: (*k, in, features)`; `crops`:
    `(start, end)` per axis, cut from the full output (< 0: zeros added)."""
    ndim = len(strides)
    on_onednn = ndim <= 2 and min(v for c in crops for v in c) >= 0
    if on_onednn:
        unit = ((1,), ((0, 0),)) if ndim == 1 else ((), ())
        x2, w2 = (x[:, None], w[None]) if ndim == 1 else (x, w)
        out2, pads2 = (*unit[0], *out), (*unit[1], *crops)
        w2 = jnp.swapaxes(w2, 2, 3)    # the kernel of the convolution (features -> in)
        if _onednn_conv.supports((x.shape[0], *out2, w.shape[-1]), w2.shape, x.dtype, pads2):
            y = _onednn_conv.conv2d_transpose(x2, w2, out2, (*unit[0], *strides), pads2,
                                              (*unit[0], *dilations))
            return y[:, 0] if ndim == 1 else y
    pads = [(d * (k - 1) - lo, d * (k - 1) - hi)
            for (lo, hi), k, d in zip(crops, w.shape[:ndim], dilations, strict=True)]
    return jax.lax.conv_general_dilated(
        x, jnp.flip(w, axis=tuple(range(ndim))), (1,) * ndim, pads, lhs_dilation=strides,
        rhs_dilation=dilations, dimension_numbers=_DIMS[ndim])


_SCALARS = dict(features=positive_int, use_bias=flag)
_ARGS_DOC = """
    **Arguments:**
    - `features`: output channels.
    - `kernel_size`, `stride`, `dilation`: an int or one int per spatial axis, each >= 1.
    - `padding`: an int `p` or one per axis (PyTorch's meaning: `p` cells cropped from
      both ends of the full output; `"VALID"` is 0), or `"SAME"` (output = input·stride;
      see `help(fnn.layers.conv_transpose)`).
    - `output_padding`: an int or one per axis, `q < max(stride, dilation)` on each
      axis; cells given back at the end (0 with `"SAME"`).
    - `use_bias`, `w_init`, `b_init`: as `Conv2D` (`fan_in` = kernel taps × in).

    **Shapes:** each spatial size `n -> (n − 1)·s − 2p + d·(k − 1) + 1 + q`
    (`fnn.layers.conv_transpose_output_size`), `n·s` with `"SAME"`.
"""


def _doc(fn):
    fn.__doc__ = fn.__doc__.rstrip() + "\n" + _ARGS_DOC
    return fn


@checked("ConvTranspose1D", **_SCALARS)
@_doc
def ConvTranspose1D(features: int, kernel_size, *, stride=1, padding=0, output_padding=0,
                    dilation=1, use_bias: bool = True, w_init=initializers.lecun_normal,
                    b_init=initializers.zeros) -> Layer:
    """1-D transposed convolution: `(N, L, in) -> (N, L', features)`.

    `y[n, i·s + a·d − p, o] += x[n, i, c] · w[a, c, o]`, plus `b[o]`. = torch
    `conv_transpose1d(x.transpose(0, 2, 1), w.transpose(1, 2, 0), b, stride, padding,
    output_padding, dilation=dilation)` (channels last here).
    **Params:** `w: (k, in, features)`, `b: (features,)`.
    """
    return _conv_transpose_layer("ConvTranspose1D", 1, features, kernel_size, stride=stride,
                                padding=padding, output_padding=output_padding,
                                dilation=dilation, use_bias=use_bias, w_init=w_init,
                                b_init=b_init)


@checked("ConvTranspose2D", **_SCALARS)
@_doc
def ConvTranspose2D(features: int, kernel_size, *, stride=1, padding=0, output_padding=0,
                    dilation=1, use_bias: bool = True, w_init=initializers.lecun_normal,
                    b_init=initializers.zeros) -> Layer:
    """2-D transposed convolution: `(N, H, W, in) -> (N, H', W', features)`.

    `y[n, i·s_h + a·d_h − p_h, j·s_w + b·d_w − p_w, o] += x[n, i, j, c] · w[a, b, c, o]`,
    plus `b[o]`. = torch `conv_transpose2d` with weight `w.transpose(2, 3, 0, 1)` and the
    same stride, padding, output_padding and dilation, on NCHW input.
    **Params:** `w: (kh, kw, in, features)`, `b: (features,)`.
    """
    return _conv_transpose_layer("ConvTranspose2D", 2, features, kernel_size, stride=stride,
                                padding=padding, output_padding=output_padding,
                                dilation=dilation, use_bias=use_bias, w_init=w_init,
                                b_init=b_init)


@checked("ConvTranspose3D", **_SCALARS)
@_doc
def ConvTranspose3D(features: int, kernel_size, *, stride=1, padding=0, output_padding=0,
                    dilation=1, use_bias: bool = True, w_init=initializers.lecun_normal,
                    b_init=initializers.zeros) -> Layer:
    """3-D transposed convolution: `(N, D, H, W, in) -> (N, D', H', W', features)`.

    As `ConvTranspose2D` with one more axis. = torch `conv_transpose3d` with weight
    `w.transpose(3, 4, 0, 1, 2)` on NCDHW input.
    **Params:** `w: (kd, kh, kw, in, features)`, `b: (features,)`.
    """
    return _conv_transpose_layer("ConvTranspose3D", 3, features, kernel_size, stride=stride,
                                padding=padding, output_padding=output_padding,
                                dilation=dilation, use_bias=use_bias, w_init=w_init,
                                b_init=b_init)
