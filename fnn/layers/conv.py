"""2-D convolution (`Conv2D`) and the output-size rule (`conv_output_size`).

Images are NHWC `(N, H, W, C)` and kernels HWIO `(kh, kw, in, out)`. The
padding forms, shared with the pooling layers:

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
    "IMAGE_LAYOUT", "padding_form", "positive_pair", "conv_output_size", "require_image_batch",
    "window_output", "Conv2D",
]

#: How the image layers describe their `input_shape` in messages.
IMAGE_LAYOUT = "(H, W, C) for one image"

_PADDING_FORMS = '"SAME", "VALID", an int p (p on every side), or ((top, bottom), (left, right))'
# One axis: the forms Conv2D takes per axis (not its pair of pairs).
_AXIS_PADDING_FORMS = '"SAME", "VALID", an int p (p on both sides) or a pair (before, after)'


def padding_form(name: str, padding):
    """`padding` -> "SAME" | "VALID" | ((top, bottom), (left, right)); else `BadValue`."""
    if isinstance(padding, str):
        up = padding.upper()
        if up in ("SAME", "VALID"):
            return up
        raise BadValue(f"unknown {name} {padding!r}; expected {_PADDING_FORMS}.")
    if is_int(padding):
        p = int(padding)
        if p < 0:
            raise BadValue(f"{name} must be >= 0, got {p}.")
        return ((p, p), (p, p))
    if isinstance(padding, (tuple, list)) and len(padding) == 2 and all(
        isinstance(q, (tuple, list)) and len(q) == 2 and all(map(is_int, q)) for q in padding
    ):
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
        if any(v < 0 for q in pads for v in q):
            raise BadValue(f"{name} must be >= 0, got {pads}.")
        return pads
    raise BadValue(f"invalid {name} {padding!r}; expected {_PADDING_FORMS}.")


def positive_pair(name: str, value) -> tuple[int, int]:
    """An int or a pair of ints, each >= 1 (kernel sizes, strides, dilations)."""
    pr = int_pair(name, value)
    if min(pr) < 1:
        raise BadValue(f"{name} must be positive, got {value!r}.")
    return pr


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


def require_image_batch(x) -> None:
    """`BadValue`/`BadType` unless `x` is a floating-point batch of images `(N, H, W, C)`."""
    require_array(x)
    if x.ndim != 4:
        hint = " Add a batch axis with x[None] for one image." if x.ndim == 3 else ""
        raise BadValue(f"expected a rank-4 input (N, H, W, C), got shape {shape_str(x.shape)} "
                       f"(rank {x.ndim}).{hint}")
    require_floating(x)


def window_output(spatial, window, stride, padding, dilation=(1, 1), *, x_shape,
                  kernel_shape, what="kernel") -> tuple[int, int]:
    """Output (H', W') of a window op on `spatial` (H, W); `BadValue` naming both shapes."""
    if not all(spatial):   # an empty H or W: no padding or kernel size can help
        raise BadValue(f"the input {shape_str(x_shape)} has an empty spatial axis (H or W is "
                       "0); a window needs at least one row and one column.")
    per_axis = padding if not isinstance(padding, str) else (padding, padding)
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


@checked("Conv2D", features=positive_int, kernel_size=positive_pair, stride=positive_pair,
         dilation=positive_pair, padding=padding_form, use_bias=flag)
def Conv2D(features: int, kernel_size, *, stride=1, padding="SAME", dilation=1,
           use_bias: bool = True, w_init=initializers.lecun_normal,
           b_init=initializers.zeros) -> Layer:
    """2-D convolution (cross-correlation, as in every deep-learning library).

    `y[n, i, j, o] = b[o] + Σ_{a, b, c} x̃[n, i·s_h + a·d_h, j·s_w + b·d_w, c] · w[a, b, c, o]`
    where `x̃` is the padded input. Runs on `jax.lax.conv_general_dilated` with
    dimension numbers `("NHWC", "HWIO", "NHWC")`, except on CPU where
    `fnn.layers._fast_conv.conv_plan` puts a pass (forward, input gradient or
    weight gradient) on im2col + one matrix product where that measured faster
    (one-channel first layers, unpadded 5×5 kernels' input gradients; see
    benchmarks/RESULTS.md, "Measurements quoted from docstrings"); both agree up to
    float32 rounding.

    **Arguments:**
    - `features`: number of output channels (kernels).
    - `kernel_size`, `stride`, `dilation`: an int or a pair `(h, w)`, each >= 1.
    - `padding`: `"SAME"`, `"VALID"`, an int `p`, or `((top, bottom), (left, right))`
      (see `help(fnn.layers.conv)`; output sizes follow `fnn.conv_output_size`).
    - `use_bias`: add `b` (default True; turn it off before a BatchNorm).
    - `w_init`, `b_init`: initialisers or their names; `fan_in = kh·kw·in`.

    **Params:** `w: (kh, kw, in, features)`, `b: (features,)`
    (`kh·kw·in·features + features` numbers).

    **Shapes:** `(N, H, W, in) -> (N, H', W', features)` with
    `H' = conv_output_size(H, kh, s_h, padding, dilation=d_h)`, likewise `W'`.
    """
    kernel, strides, dilations, pad = kernel_size, stride, dilation, padding
    w_init, b_init = lookup(initializers.get, w_init), lookup(initializers.get, b_init)
    param_shapes = {"w": (*kernel, "in", features), "b": (features,)}
    if not use_bias:
        del param_shapes["b"]

    @named("Conv2D")
    def init(key, input_shape):
        input_shape = example_shape(input_shape, IMAGE_LAYOUT, rank=3)
        cin = input_shape[-1]
        window_output(input_shape[:2], kernel, strides, pad, dilations, x_shape=input_shape,
                      kernel_shape=(*kernel, cin, features))
        labelled("Conv2D.init", require_key, key)
        kw, kb = jax.random.split(key)
        params = {"w": w_init(kw, (*kernel, cin, features))}
        if use_bias:
            params["b"] = b_init(kb, (features,))
        return params, {}

    @named("Conv2D")
    def check(params, x, key, train) -> None:
        require_key_and_train(key, train)
        require_params(params, param_shapes, "Conv2D")
        w = params["w"]
        require_image_batch(x)
        if x.shape[-1] != w.shape[2]:
            raise BadValue(f"the kernel of shape {shape_str(w.shape)} (kh, kw, in, out) expects "
                           f"{w.shape[2]} input channels, got input of shape "
                           f"{shape_str(x.shape)} with {x.shape[-1]}.")
        window_output(x.shape[1:3], kernel, strides, pad, dilations, x_shape=x.shape,
                      kernel_shape=w.shape)

    def apply(params, state, x, *, key=None, train=False):
        check(params, x, key, train)
        dtype = jnp.result_type(x, params["w"])
        x, w = x.astype(dtype), params["w"].astype(dtype)
        y = _fast_conv.conv2d(x, w, strides, pad, dilations)
        if use_bias:
            y = y + params["b"].astype(dtype).reshape(1, 1, 1, -1)
        return y, state

    return Layer(init, apply, "Conv2D")

