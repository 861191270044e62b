"""2-D convolution on oneDNN, as three JAX primitives over the `fnn_onednn` extension.

`fnn_onednn` (native/fnn_onednn, installed separately: `pip install ./native/fnn_onednn`)
registers oneDNN's convolution passes as XLA FFI targets on the CPU backend. This module
wraps each pass as a primitive, all three bilinear in their two operands:

| primitive | operands -> result | equation |
|---|---|---|
| `onednn_conv_fwd` | `x (N,H,W,C)`, `w (kh,kw,C/g,O)` -> `y (N,H',W',O)` | `y = x ⋆ w` |
| `onednn_conv_bwd_data` | `dy (N,H',W',O)`, `w` -> `dx (N,H,W,C)` | `dx = (· ⋆ w)ᵀ dy` |
| `onednn_conv_bwd_weights` | `x`, `dy` -> `dw (kh,kw,C/g,O)` | `dw = (x ⋆ ·)ᵀ dy` |

where `x ⋆ w` is `jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=
dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=g)`. Each is
the transpose of another in either operand (`⟨x ⋆ w, dy⟩ = ⟨x, bwd_data(dy, w)⟩ =
⟨w, bwd_weights(x, dy)⟩`), so `grad` runs oneDNN's backward-data and backward-weights
kernels, and forward mode (`jvp`), higher derivatives, `jit`, `lax.scan` and
`jax.checkpoint` work as for any primitive. `vmap`: a mapped image operand alone is
folded into the batch axis `N`; a mapped kernel (per-example weight gradients, an
ensemble's weights) becomes `B·g` groups of one grouped convolution, the way XLA maps
its own convolution.

On the CPU backend the primitives lower to the FFI calls while `enabled()`; off the
CPU, or switched off, to the same `jax.lax` convolution and its transposes (so a program
traced on CPU still compiles for another backend, and the rules above are tested
without the kernels too).

Element types: float32; bfloat16 too where the CPU has bfloat16 instructions of its own
(`dtypes()`), with float32 accumulation and one rounding of each result, as XLA's.

`conv2d` is the entry point; `Conv2D` reaches it through `fnn.layers._fast_conv` where
`supports(...)` says so; `ConvTranspose1D/2D` reach `conv2d_transpose` (the backward-data
primitive alone) from `fnn.layers.conv_transpose`. Switch: the environment variable
`FNN_ONEDNN=0` or `use_onednn(False)`, read when a program is traced and lowered; a program compiled
before a switch keeps the kernels it was compiled with.
"""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive
from jax.interpreters import ad, batching, mlir

try:
    import fnn_onednn
except (ImportError, OSError) as err:   # not installed, or libdnnl.so.3 missing
    fnn_onednn, LOAD_ERROR = None, f"{type(err).__name__}: {err}"
else:
    LOAD_ERROR = None

__all__ = ["available", "enabled", "use_onednn", "dtypes", "supports", "conv2d",
           "conv2d_transpose",
           "PRIMITIVE_NAMES", "LOAD_ERROR"]

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
_switch: dict[str, bool] = {}      # use_onednn's setting, if any
_DTYPES = (np.dtype(np.float32),) + (
    (np.dtype(jnp.bfloat16),) if fnn_onednn is not None and fnn_onednn.native_bfloat16()
    else ())


def available() -> bool:
    """Whether the `fnn_onednn` extension imported (`LOAD_ERROR` says why not)."""
    return fnn_onednn is not None


def use_onednn(on: bool | None) -> None:
    """Turn oneDNN convolutions on or off for programs traced from now on.

    `None` goes back to the default: on when the extension is installed, unless the
    environment variable `FNN_ONEDNN` is `"0"`.
    """
    if on is None:
        _switch.pop("on", None)
    else:
        _switch["on"] = bool(on)


def enabled() -> bool:
    """Installed, and not switched off (`use_onednn`, else `FNN_ONEDNN != "0"`)."""
    on = _switch.get("on", os.environ.get("FNN_ONEDNN", "1") != "0")
    return on and available()


def dtypes() -> tuple:
    """The element types `supports` sends to oneDNN: float32, and bfloat16 where the CPU
    has bfloat16 instructions of its own (AVX512-BF16 or AMX)."""
    return _DTYPES


def supports(x_shape, w_shape, dtype, padding) -> bool:
    """Whether fnn should run this convolution on oneDNN here and now: `enabled()`, the
    CPU backend with one device, an input and kernel of non-zero size and of one of
    `dtypes()`, padding pairs >= 0.

    One device: the FFI calls have no SPMD partitioning rule, so in a program sharded
    over several CPU devices (`--xla_force_host_platform_device_count`) XLA would gather
    the whole batch onto every device for them; XLA's own convolution splits it.
    """
    return (enabled() and jax.default_backend() == "cpu" and jax.device_count() == 1
            and np.dtype(dtype) in dtypes()
            and all(int(np.prod(s)) > 0 for s in (x_shape, w_shape))
            and min(v for pair in padding for v in pair) >= 0)


# ---- the lax reference: the primitives' meaning, and their lowering off the CPU ----

def _lax_fwd(x, w, *, strides, padding, dilation, groups):
    return jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
                                        dimension_numbers=DIMENSION_NUMBERS,
                                        feature_group_count=groups)


def _lax_bwd_data(dy, w, *, in_hw, strides, padding, dilation, groups):
    x = jax.ShapeDtypeStruct((dy.shape[0], *in_hw, w.shape[2] * groups), dy.dtype)
    fwd = functools.partial(_lax_fwd, w=w, strides=strides, padding=padding,
                            dilation=dilation, groups=groups)
    return jax.linear_transpose(fwd, x)(dy)[0]


def _lax_bwd_weights(x, dy, *, kernel_hw, strides, padding, dilation, groups):
    w = jax.ShapeDtypeStruct((*kernel_hw, x.shape[3] // groups, dy.shape[3]), x.dtype)
    fwd = functools.partial(_lax_fwd, x, strides=strides, padding=padding,
                            dilation=dilation, groups=groups)
    return jax.linear_transpose(fwd, w)(dy)[0]


# ---- the primitives ----

def _out_hw(in_hw, kernel_hw, strides, padding, dilation):
    return tuple((n + lo + hi - (d * (k - 1) + 1)) // s + 1 for n, k, s, (lo, hi), d
                 in zip(in_hw, kernel_hw, strides, padding, dilation))


def _fwd_shape(x, w, *, strides, padding, dilation, groups):
    hw = _out_hw(x.shape[1:3], w.shape[:2], strides, padding, dilation)
    return jax.core.ShapedArray((x.shape[0], *hw, w.shape[3]), x.dtype)


def _bwd_data_shape(dy, w, *, in_hw, strides, padding, dilation, groups):
    return jax.core.ShapedArray((dy.shape[0], *in_hw, w.shape[2] * groups), dy.dtype)


def _bwd_weights_shape(x, dy, *, kernel_hw, strides, padding, dilation, groups):
    return jax.core.ShapedArray((*kernel_hw, x.shape[3] // groups, dy.shape[3]), x.dtype)


def _primitive(name, shape_rule, reference, target):
    prim = Primitive(name)
    prim.def_abstract_eval(shape_rule)

    @functools.cache
    def compiled(params, on):    # `on`: a program per switch setting
        return jax.jit(functools.partial(prim.bind, **dict(params)))

    prim.def_impl(lambda a, b, **params: compiled(tuple(sorted(params.items())), enabled())(a, b))
    lax_rule = mlir.lower_fun(reference, multiple_results=False)
    mlir.register_lowering(prim, lax_rule)
    mlir.register_lowering(prim, functools.partial(_cpu_lowering, target, lax_rule),
                           platform="cpu")
    return prim


def _cpu_lowering(target, lax_rule, ctx, a, b, *, strides, padding, dilation, groups,
                  **shape):
    """The FFI call when `enabled()` at lowering time, else the lax convolution."""
    if not enabled():
        return lax_rule(ctx, a, b, strides=strides, padding=padding, dilation=dilation,
                        groups=groups, **shape)
    (pt, pb), (pl, pr) = padding
    ints = dict(stride_h=strides[0], stride_w=strides[1], pad_top=pt, pad_bottom=pb,
                pad_left=pl, pad_right=pr, dil_h=dilation[0], dil_w=dilation[1],
                groups=groups)
    return jax.ffi.ffi_lowering(fnn_onednn.TARGETS[target])(
        ctx, a, b, **{k: np.int64(v) for k, v in ints.items()})


fwd_p = _primitive("onednn_conv_fwd", _fwd_shape, _lax_fwd, "forward")
bwd_data_p = _primitive("onednn_conv_bwd_data", _bwd_data_shape, _lax_bwd_data, "input_grad")
bwd_weights_p = _primitive("onednn_conv_bwd_weights", _bwd_weights_shape, _lax_bwd_weights,
                           "weight_grad")
PRIMITIVE_NAMES = (fwd_p.name, bwd_data_p.name, bwd_weights_p.name)


def _in_hw(x):
    return tuple(x.aval.shape[1:3])


def _kernel_hw(w):
    return tuple(w.aval.shape[:2])


# Transposes: each primitive is linear in either operand, and its transpose in one is
# another of the three with the other operand kept. The rule for an operand gets that
# operand as an undefined primal, of which only the shape (`.aval`) is known.
ad.defbilinear(
    fwd_p,
    lambda ct, x, w, **p: bwd_data_p.bind(ct, w, in_hw=_in_hw(x), **p),
    lambda ct, x, w, **p: bwd_weights_p.bind(x, ct, kernel_hw=_kernel_hw(w), **p))
ad.defbilinear(
    bwd_data_p,
    lambda ct, dy, w, *, in_hw, **p: fwd_p.bind(ct, w, **p),
    lambda ct, dy, w, *, in_hw, **p: bwd_weights_p.bind(ct, dy, kernel_hw=_kernel_hw(w), **p))
ad.defbilinear(
    bwd_weights_p,
    lambda ct, x, dy, *, kernel_hw, **p: bwd_data_p.bind(dy, ct, in_hw=_in_hw(x), **p),
    lambda ct, x, dy, *, kernel_hw, **p: fwd_p.bind(x, ct, **p))


# ---- vmap ----

def _front(a, axis, size):
    """`a` with its mapped axis first (broadcast to `size` if unmapped)."""
    if axis is None:
        return jnp.broadcast_to(a[None], (size, *a.shape))
    return jnp.moveaxis(a, axis, 0)


def _fold_batch(prim, image, other, params):
    """Mapped image operand, unmapped kernel/other: the map axis joins `N`."""
    b, n = image.shape[:2]
    out = prim.bind(image.reshape(b * n, *image.shape[2:]), other, **params)
    return out.reshape(b, n, *out.shape[1:]), 0


def _channels(a):
    """`(B, ..., C)` -> `(..., B·C)`: the map axis as the major part of the channels."""
    return jnp.moveaxis(a, 0, -2).reshape(*a.shape[1:-1], a.shape[0] * a.shape[-1])


def _grouped(prim, a, b, params, size):
    """Both operands mapped over `size`: one convolution with `size·g` groups, whose
    result's channel axis is `(size, ·)`; returned as `(out, its map axis)`."""
    out = prim.bind(_channels(a), _channels(b), **{**params, "groups": params["groups"] * size})
    return out.reshape(*out.shape[:3], size, out.shape[3] // size), 3


def _fwd_batch(args, dims, **params):
    (x, w), (bx, bw) = args, dims
    size = x.shape[bx] if bx is not None else w.shape[bw]
    if bw is None:
        return _fold_batch(fwd_p, jnp.moveaxis(x, bx, 0), w, params)
    if bx is None and params["groups"] == 1:   # the map axis joins the output channels
        wb = _channels(jnp.moveaxis(w, bw, 0))
        y = fwd_p.bind(x, wb, **params)
        return y.reshape(*y.shape[:-1], size, w.shape[-1]), 3
    return _grouped(fwd_p, _front(x, bx, size), _front(w, bw, size), params, size)


def _bwd_data_batch(args, dims, **params):
    (dy, w), (bdy, bw) = args, dims
    size = dy.shape[bdy] if bdy is not None else w.shape[bw]
    if bw is None:
        return _fold_batch(bwd_data_p, jnp.moveaxis(dy, bdy, 0), w, params)
    return _grouped(bwd_data_p, _front(dy, bdy, size), _front(w, bw, size), params, size)


def _bwd_weights_batch(args, dims, **params):
    (x, dy), (bx, bdy) = args, dims
    size = x.shape[bx] if bx is not None else dy.shape[bdy]
    return _grouped(bwd_weights_p, _front(x, bx, size), _front(dy, bdy, size), params, size)


batching.primitive_batchers[fwd_p] = _fwd_batch
batching.primitive_batchers[bwd_data_p] = _bwd_data_batch
batching.primitive_batchers[bwd_weights_p] = _bwd_weights_batch


def conv2d(x, w, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1), groups=1):
    """NHWC × HWIO convolution, every pass on oneDNN (on CPU, with `fnn_onednn`).

    **Arguments:** `x: (N, H, W, C)`; `w: (kh, kw, C/groups, O)`; `strides`,
    `dilation`: pairs of ints >= 1; `padding`: explicit `((top, bottom), (left,
    right))`, each >= 0; `groups`: divides `C` and `O` (output channel `o` reads
    input group `o // (O/groups)`, as XLA's `feature_group_count`).
    **Returns:** `(N, H', W', O)`, `H' = ⌊(H + top + bottom − d_h·(kh − 1) − 1)/s_h⌋ + 1`,
    equal to `jax.lax.conv_general_dilated` with dimension numbers
    `("NHWC", "HWIO", "NHWC")` up to float32 rounding (bfloat16's, for bfloat16
    operands), values and derivatives alike. Callers check the shapes and `supports`
    (`Conv2D`, through `fnn.layers._fast_conv`); this function does not.
    """
    return fwd_p.bind(x, w, strides=tuple(map(int, strides)),
                      padding=tuple((int(lo), int(hi)) for lo, hi in padding),
                      dilation=tuple(map(int, dilation)), groups=int(groups))


def conv2d_transpose(x, w, out_hw, strides=(1, 1), padding=((0, 0), (0, 0)), dilation=(1, 1),
                     groups=1):
    """The adjoint in its input of `conv2d(·, w, strides, padding, dilation, groups)` on
    an input of spatial size `out_hw`: a transposed convolution, on oneDNN's
    backward-data kernel (`onednn_conv_bwd_data`, with its transposes and vmap rule).

    **Arguments:** `x: (N, H, W, O)`; `w: (kh, kw, C/groups, O)`; `out_hw`: `(H', W')`
    with `conv2d` of an `(N, H', W', C)` input giving `(N, H, W, O)`; the rest as `conv2d`.
    **Returns:** `(N, H', W', C)`. Callers check the shapes and `supports` (for the
    output `(N, H', W', C)`), as for `conv2d`.
    """
    return bwd_data_p.bind(x, w, in_hw=tuple(map(int, out_hw)),
                           strides=tuple(map(int, strides)),
                           padding=tuple((int(lo), int(hi)) for lo, hi in padding),
                           dilation=tuple(map(int, dilation)), groups=int(groups))
