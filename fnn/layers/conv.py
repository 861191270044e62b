"""Convolutions over 1, 2 or 3 spatial axes (`Conv1D`, `Conv2D`, `Conv3D`, one N-D
builder) and the output-size rule (`conv_output_size`).

Inputs are channels-last (`(N, L, C)`, NHWC `(N, H, W, C)`, `(N, D, H, W, C)`) and
kernels spatial-first, then in, then out (HWIO `(kh, kw, in/groups, out)`). The
padding forms, shared with the pooling layers (shown for 2-D; one pair per spatial
axis in general):

| `padding` | pads per spatial axis | output size for input `n`, kernel `k`, stride `s` |
|---|---|---|
| `"SAME"` | total `max((⌈n/s⌉−1)·s + k − n, 0)`, the extra cell at the end | `⌈n/s⌉` |
| `"VALID"` | none | `⌊(n − k)/s⌋ + 1` |
| `p` (int) | `p` on every side | `⌊(n + 2p − k)/s⌋ + 1` |
| `((top, bottom), (left, right))` | as given | `⌊(n + p₁ + p₂ − k)/s⌋ + 1` |

With dilation `d` the kernel acts as one of size `k_eff = d·(k − 1) + 1`.
`"same"`/`"valid"` are accepted case-insensitively. `"SAME"` follows
TensorFlow/`jax.lax` (an odd total pad puts the extra cell bottom/right);
PyTorch's symmetric `padding=p` is the int form.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn import initializers
from fnn._array_checks import (
    example_shape,
    require_array,
    require_floating,
    require_key_and_train,
    require_params,
)
from fnn._checks import (
    BadType,
    BadValue,
    checked,
    flag,
    int_pair,
    is_int,
    labelled,
    lookup,
    named,
    positive_int,
    require_key,
    shape_str,
)
from fnn.core import Layer
from fnn.layers import _fast_conv

__all__ = [
    "IMAGE_LAYOUT", "BATCH_LAYOUTS", "EXAMPLE_LAYOUTS", "padding_form", "positive_pair",
    "positive_tuple", "conv_output_size", "require_image_batch", "require_batch",
    "window_output", "conv_layer", "Conv1D", "Conv2D", "Conv3D",
]

#: How the image layers describe their `input_shape` in messages.
IMAGE_LAYOUT = "(H, W, C) for one image"
#: One example and a batch, per number of spatial axes.
EXAMPLE_LAYOUTS = {1: "(L, C) for one sequence", 2: IMAGE_LAYOUT, 3: "(D, H, W, C) for one volume"}
BATCH_LAYOUTS = {1: "(N, L, C)", 2: "(N, H, W, C)", 3: "(N, D, H, W, C)"}
_ONE = {1: "sequence", 2: "image", 3: "volume"}

_PADDING_FORMS = '"SAME", "VALID", an int p (p on every side), or ((top, bottom), (left, right))'
# One axis: the forms Conv2D takes per axis (not its pair of pairs).
_AXIS_PADDING_FORMS = '"SAME", "VALID", an int p (p on both sides) or a pair (before, after)'


def _padding_forms(ndim: int) -> str:
    if ndim == 2:
        return _PADDING_FORMS
    pairs = ", ".join(["(before, after)"] * ndim)
    return f'"SAME", "VALID", an int p (p on every side), or ({pairs})'


def padding_form(name: str, padding, ndim: int = 2):
    """`padding` -> "SAME" | "VALID" | `ndim` pairs `((before, after), ...)`; else
    `BadValue` (2-D: `((top, bottom), (left, right))`)."""
    if isinstance(padding, str):
        up = padding.upper()
        if up in ("SAME", "VALID"):
            return up
        raise BadValue(f"unknown {name} {padding!r}; expected {_padding_forms(ndim)}.")
    if is_int(padding):
        p = int(padding)
        if p < 0:
            raise BadValue(f"{name} must be >= 0, got {p}.")
        return ((p, p),) * ndim
    if isinstance(padding, (tuple, list)) and len(padding) == ndim and all(
        isinstance(q, (tuple, list)) and len(q) == 2 and all(map(is_int, q)) for q in padding
    ):
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        if any(v < 0 for q in pads for v in q):
            raise BadValue(f"{name} must be >= 0, got {pads}.")
        return pads
    raise BadValue(f"invalid {name} {padding!r}; expected {_padding_forms(ndim)}.")


def positive_tuple(name: str, value, ndim: int) -> tuple[int, ...]:
    """An int or `ndim` ints, each >= 1 (kernel sizes, strides, dilations) -> a tuple."""
    if ndim == 2:
        values = int_pair(name, value)
    elif is_int(value):
        values = (int(value),) * ndim
    elif isinstance(value, (tuple, list)) and len(value) == ndim and all(map(is_int, value)):
        values = tuple(int(v) for v in value)
    else:
        what = "an int" if ndim == 1 else f"an int or a tuple of {ndim} ints"
        raise BadType(f"{name} must be {what}, got {value!r}.")
    if min(values) < 1:
        raise BadValue(f"{name} must be positive, got {value!r}.")
    return values


def positive_pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1 (kernel sizes, strides, dilations)."""
    return positive_tuple(name, value, 2)


def _padded_output(size: int, kernel: int, stride: int, pad, dilation: int = 1):
    """(output size, padded input size, effective kernel) on one axis; output may be < 1."""
    k_eff = dilation * (kernel - 1) + 1
    if pad == "SAME":
        return -(-size // stride), size, k_eff
    lo, hi = (0, 0) if pad == "VALID" else pad
    padded = size + lo + hi
    return (padded - k_eff) // stride + 1, padded, k_eff


def _axis_padding(padding):
    """One axis's `padding` (`conv_output_size`) as "SAME", "VALID" or `(before, after)`."""
    if isinstance(padding, str) and padding.upper() in ("SAME", "VALID"):
        return padding.upper()
    if isinstance(padding, str):
        raise BadValue(f"unknown padding {padding!r}; expected {_AXIS_PADDING_FORMS}.")
    if is_int(padding):
        return padding_form("padding", padding)[0]
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(map(is_int, padding)):
        pad = (int(padding[0]), int(padding[1]))
        if min(pad) < 0:
            raise BadValue(f"padding must be >= 0, got {pad}.")
        return pad
    raise BadValue(f"invalid padding {padding!r}; expected {_AXIS_PADDING_FORMS}.")


@checked("conv_output_size", size=positive_int, kernel=positive_int, stride=positive_int,
         dilation=positive_int)
def conv_output_size(size: int, kernel: int, stride: int = 1, padding="VALID", *,
                     dilation: int = 1) -> int:
    """Output length of a convolution or pooling window along one spatial axis.

    - `"SAME"`: `⌈n/s⌉`
    - `"VALID"`: `⌊(n − k_eff)/s⌋ + 1`
    - `p` (int, both sides) or `(p₁, p₂)`: `⌊(n + p₁ + p₂ − k_eff)/s⌋ + 1`

    where `k_eff = dilation·(k − 1) + 1`. Example: `conv_output_size(32, 5)` is 28,
    `conv_output_size(224, 11, 4, 2)` is 55, `conv_output_size(7, 3, 2, "SAME")` is 4.

    Raises `ValueError` when the (dilated) kernel is larger than the padded input.
    """
    out, padded, k_eff = _padded_output(size, kernel, stride, _axis_padding(padding), dilation)
    if out < 1:
        raise BadValue(f"kernel {k_eff} (dilation {dilation}) is larger than the padded "
                       f"input {padded} (size {size}, padding {padding!r}).")
    return out


def require_batch(x, ndim: int) -> None:
    """`BadValue`/`BadType` unless `x` is a floating-point batch with `ndim` spatial axes
    (`BATCH_LAYOUTS[ndim]`, e.g. `(N, H, W, C)` for images)."""
    require_array(x)
    if x.ndim != ndim + 2:
        hint = (f" Add a batch axis with x[None] for one {_ONE[ndim]}." if x.ndim == ndim + 1
                else "")
        raise BadValue(f"expected a rank-{ndim + 2} input {BATCH_LAYOUTS[ndim]}, got shape "
                       f"{shape_str(x.shape)} (rank {x.ndim}).{hint}")
    require_floating(x)


def require_image_batch(x) -> None:
    """`BadValue`/`BadType` unless `x` is a floating-point batch of images `(N, H, W, C)`."""
    require_batch(x, 2)


def window_output(spatial, window, stride, padding, dilation=(1, 1), *, x_shape,
                  kernel_shape, what="kernel") -> tuple[int, int]:
    """Output sizes (H', W', ...) of a window op on `spatial` (H, W, ...); `BadValue`
    naming both shapes."""
    if not all(spatial):   # an empty H or W: no padding or kernel size can help
        raise BadValue(f"the input {shape_str(x_shape)} has an empty spatial axis (H or W is "
                       "0); a window needs at least one cell on every spatial axis.")
    per_axis = padding if not isinstance(padding, str) else (padding,) * len(spatial)
    outs = [_padded_output(int(n), k, s, p, d)
            for n, k, s, d, p in zip(spatial, window, stride, dilation, per_axis, strict=True)]
    if any(out < 1 for out, _, _ in outs):
        eff = tuple(k for _, _, k in outs)
        padded = tuple(p for _, p, _ in outs)
        raise BadValue(
            f"the {what} {shape_str(kernel_shape)} (effective spatial size {shape_str(eff)}) "
            f"is larger than the input {shape_str(x_shape)} after padding={padding!r} (padded "
            f"spatial size {shape_str(padded)}); use a smaller kernel, more padding or "
            'padding="SAME".')
    return tuple(out for out, _, _ in outs)


def _spatial_dims(ndim: int) -> tuple[str, str, str]:
    """lax dimension numbers with `ndim` spatial axes: channels-last, kernel `(..., I, O)`."""
    sp = "DHW"[3 - ndim:]
    return f"N{sp}C", f"{sp}IO", f"N{sp}C"


def _conv_nd(x, w, strides, pad, dilations, groups):
    """`x ⋆ w` with `len(strides)` spatial axes: Conv2D's per-pass plan (`_fast_conv`) for
    1-D (a unit H axis) and 2-D, `lax.conv_general_dilated` for 3-D."""
    ndim = len(strides)
    grouped = {"groups": groups} if groups != 1 else {}   # one group: conv2d's 0.1 call
    if ndim == 1:
        pad2 = pad if isinstance(pad, str) else ((0, 0), *pad)
        y = _fast_conv.conv2d(x[:, None], w[None], (1, *strides), pad2, (1, *dilations),
                              **grouped)
        return y[:, 0]
    if ndim == 2:
        return _fast_conv.conv2d(x, w, strides, pad, dilations, **grouped)
    return jax.lax.conv_general_dilated(x, w, strides, pad if isinstance(pad, str) else list(pad),
                                        rhs_dilation=dilations,
                                        dimension_numbers=_spatial_dims(ndim),
                                        feature_group_count=groups)


def conv_layer(name: str, ndim: int, features: int, kernel_size, *, stride=1, padding="SAME",
               dilation=1, groups: int = 1, use_bias: bool = True,
               w_init=initializers.lecun_normal, b_init=initializers.zeros) -> Layer:
    """The convolution layer `name` over `ndim` spatial axes (`Conv1D`/`Conv2D`/`Conv3D`,
    which check the scalar arguments first): `w: (*kernel, in/groups, features)`."""
    kernel = positive_tuple("kernel_size", kernel_size, ndim)
    strides = positive_tuple("stride", stride, ndim)
    dilations = positive_tuple("dilation", dilation, ndim)
    pad = padding_form("padding", padding, ndim)
    if features % groups:
        raise BadValue(f"features {features} must be divisible by groups={groups} (each group "
                       f"makes features/groups outputs).")
    w_init, b_init = lookup(initializers.get, w_init), lookup(initializers.get, b_init)
    # "in" as in 0.1's messages when there is one group
    param_shapes = {"w": (*kernel, "in" if groups == 1 else "in/groups", features),
                    "b": (features,)}
    if not use_bias:
        del param_shapes["b"]
    kernel_axes = ", ".join(f"k{i}" for i in range(ndim)) if ndim != 2 else "kh, kw"

    def require_channels(cin, what) -> None:
        if cin % groups:
            raise BadValue(f"{what} has {cin} input channels, not divisible by groups="
                           f"{groups}.")

    @named(name)
    def init(key, input_shape):
        input_shape = example_shape(input_shape, EXAMPLE_LAYOUTS[ndim], rank=ndim + 1)
        cin = input_shape[-1]
        require_channels(cin, f"input_shape {shape_str(input_shape)}")
        window_output(input_shape[:ndim], kernel, strides, pad, dilations, x_shape=input_shape,
                      kernel_shape=(*kernel, cin // groups, features))
        labelled(f"{name}.init", require_key, key)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (*kernel, cin // groups, features))}
        if use_bias:
            params["b"] = b_init(kb, (features,))
        return params, {}

    @named(name)
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, param_shapes, name)
        w = params["w"]
        require_batch(x, ndim)
        if x.shape[-1] != w.shape[-2] * groups:
            per = "" if groups == 1 else f" ({w.shape[-2]} per group × groups={groups})"
            raise BadValue(f"the kernel of shape {shape_str(w.shape)} ({kernel_axes}, in, out) "
                           f"expects {w.shape[-2] * groups} input channels{per}, got input of "
                           f"shape {shape_str(x.shape)} with {x.shape[-1]}.")
        window_output(x.shape[1:-1], kernel, strides, pad, dilations, x_shape=x.shape,
                      kernel_shape=w.shape)

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        dtype = jnp.result_type(x, params["w"])
        x, w = x.astype(dtype), params["w"].astype(dtype)
        y = _conv_nd(x, w, strides, pad, dilations, groups)
        if use_bias:
            y = y + params["b"].astype(dtype).reshape((1,) * (ndim + 1) + (-1,))
        return y, state

    return Layer(init, apply, name)


_SCALARS = dict(features=positive_int, groups=positive_int, use_bias=flag)


@checked("Conv1D", **_SCALARS)
def Conv1D(features: int, kernel_size, *, stride=1, padding="SAME", dilation=1, groups: int = 1,
           use_bias: bool = True, w_init=initializers.lecun_normal,
           b_init=initializers.zeros) -> Layer:
    """1-D convolution over sequences: `(N, L, in) -> (N, L', features)`.

    `y[n, i, o] = b[o] + Σ_{a, c} x̃[n, i·s + a·d, g(o)·C_g + c] · w[a, c, o]` where `x̃` is
    the padded input, `C_g = in/groups` and `g(o) = o // (features/groups)` the group of
    output `o`. = torch `conv1d(x.transpose(0, 2, 1), w.transpose(2, 1, 0), b, stride,
    padding, dilation, groups)` for int `padding` (channels last here). Runs as `Conv2D`
    on a unit H axis, so it takes the same per-pass CPU plan (`fnn.layers._fast_conv`).

    **Arguments:**
    - `features`: output channels; divisible by `groups`.
    - `kernel_size`, `stride`, `dilation`: ints >= 1.
    - `padding`: `"SAME"`, `"VALID"`, an int `p` or `((before, after),)` (as `Conv2D`).
    - `groups`: split the channels into `groups` independent convolutions
      (`groups = in` is a depthwise convolution); `in` must be divisible by it.
    - `use_bias`, `w_init`, `b_init`: as `Conv2D`; `fan_in = k·in/groups`.

    **Params:** `w: (k, in/groups, features)`, `b: (features,)`.

    **Shapes:** `L' = conv_output_size(L, k, s, padding, dilation=d)`.
    """
    return conv_layer("Conv1D", 1, features, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, use_bias=use_bias, w_init=w_init,
                      b_init=b_init)


@checked("Conv2D", **_SCALARS)
def Conv2D(features: int, kernel_size, *, stride=1, padding="SAME", dilation=1, groups: int = 1,
           use_bias: bool = True, w_init=initializers.lecun_normal,
           b_init=initializers.zeros) -> Layer:
    """2-D convolution (cross-correlation, as in every deep-learning library).

    `y[n, i, j, o] = b[o] + Σ_{a, b, c} x̃[n, i·s_h + a·d_h, j·s_w + b·d_w, g(o)·C_g + c] ·
    w[a, b, c, o]` where `x̃` is the padded input, `C_g = in/groups` and
    `g(o) = o // (features/groups)` the group of output `o` (one group: `C_g = in`).
    = torch `conv2d(groups=groups)` with weight `w.transpose(3, 2, 0, 1)` on NCHW input.
    Runs on `jax.lax.conv_general_dilated` with dimension numbers
    `("NHWC", "HWIO", "NHWC")`, except on CPU where `fnn.layers._fast_conv.conv_plan`
    puts a pass (forward, input gradient or weight gradient) on im2col + one matrix
    product or oneDNN where that measured faster (one-channel first layers, unpadded
    5×5 kernels' input gradients; grouped convolutions on oneDNN where installed; see
    benchmarks/RESULTS.md, "Measurements quoted from docstrings", and
    benchmarks/conv_variants.py); all agree up to float32 rounding.

    **Arguments:**
    - `features`: number of output channels (kernels); divisible by `groups`.
    - `kernel_size`, `stride`, `dilation`: an int or a pair `(h, w)`, each >= 1.
    - `padding`: `"SAME"`, `"VALID"`, an int `p`, or `((top, bottom), (left, right))`
      (see `help(fnn.layers.conv)`; output sizes follow `fnn.conv_output_size`).
    - `groups`: split the channels into `groups` independent convolutions
      (`groups = in` is a depthwise convolution); `in` must be divisible by it.
    - `use_bias`: add `b` (default True; turn it off before a BatchNorm).
    - `w_init`, `b_init`: initialisers or their names; `fan_in = kh·kw·in/groups`.

    **Params:** `w: (kh, kw, in/groups, features)`, `b: (features,)`
    (`kh·kw·in/groups·features + features` numbers).

    **Shapes:** `(N, H, W, in) -> (N, H', W', features)` with
    `H' = conv_output_size(H, kh, s_h, padding, dilation=d_h)`, likewise `W'`.
    """
    return conv_layer("Conv2D", 2, features, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, use_bias=use_bias, w_init=w_init,
                      b_init=b_init)


@checked("Conv3D", **_SCALARS)
def Conv3D(features: int, kernel_size, *, stride=1, padding="SAME", dilation=1, groups: int = 1,
           use_bias: bool = True, w_init=initializers.lecun_normal,
           b_init=initializers.zeros) -> Layer:
    """3-D convolution over volumes: `(N, D, H, W, in) -> (N, D', H', W', features)`.

    `y[n, p, i, j, o] = b[o] + Σ_{a, b, e, c} x̃[n, p·s_d + a·d_d, i·s_h + b·d_h,
    j·s_w + e·d_w, g(o)·C_g + c] · w[a, b, e, c, o]` (as `Conv2D`, one more axis).
    = torch `conv3d(groups=groups)` with weight `w.transpose(4, 3, 0, 1, 2)` on NCDHW
    input. Runs on `jax.lax.conv_general_dilated` (`("NDHWC", "DHWIO", "NDHWC")`).

    **Arguments:** as `Conv2D`, with ints or triples `(d, h, w)` for `kernel_size`,
    `stride`, `dilation`, and `padding` `"SAME"`, `"VALID"`, an int or three pairs.

    **Params:** `w: (kd, kh, kw, in/groups, features)`, `b: (features,)`.

    **Shapes:** each spatial size follows `conv_output_size` on its axis.
    """
    return conv_layer("Conv3D", 3, features, kernel_size, stride=stride, padding=padding,
                      dilation=dilation, groups=groups, use_bias=use_bias, w_init=w_init,
                      b_init=b_init)
