"""CPU convolutions: each pass (forward, input or weight gradient) on its fastest lowering.

XLA:CPU's convolution kernel is fast for many channels and slow for few: a
forward pass that reads one input channel, or the input gradient of an
unpadded 5×5 kernel (a "full" convolution with 4 pixels of padding), runs at a
fraction of the matrix-product rate. The other lowering is im2col + one matrix
product:

    patches = the input under every kernel tap (i, j, c), (N, H', W', kh·kw·C)
    y       = patches.reshape(N·H'·W', kh·kw·C) @ w.reshape(kh·kw·C, O)

(`conv2d_im2col`; the tap order `(i, j, c)` is the row-major order of the HWIO
kernel, so `w` is reshaped, never transposed). Its weight gradient is
`patchesᵀ @ dy`, its input gradient `dy @ wᵀ` scattered back onto the taps.
`patches` is built in two stacks, the `kw` column taps of every row first, then
the `kh` row taps of those (`(N, Hp, W', kw, C)` then `(N, H', W', kh, kw, C)`):
each copy moves `kw·C` contiguous numbers where one concatenation of the
`kh·kw` taps along the channel axis moved `C` (2× faster for one channel).

Which lowering wins depends on the pass, so `conv_plan` picks one per pass
(`ConvPlan`) and `conv2d` runs that plan as a `jax.custom_jvp`: the primal on
the forward lowering, the tangent in `x` on the input-gradient lowering and the
tangent in `w` on the weight-gradient one. Reverse mode transposes those
tangents, so `grad` runs exactly the chosen passes, and forward mode (`jvp`,
`jacfwd`), `vmap` and higher derivatives keep working. A tangent that is zero
(the input of a first layer) is skipped, not computed.

The rule `conv_plan` follows was measured per pass and per training step on
XLA:CPU (the table and timings are in benchmarks/RESULTS.md, item 4, and
"Measurements quoted from docstrings"): im2col where it won, `lax` elsewhere.
GPUs and TPUs: always `lax`.

Grouped convolutions (`w: (kh, kw, C/g, O)`, `g = C / w.shape[2]` groups, depthwise
when `g = C`; XLA's `feature_group_count`) run on `lax` or, where `supports(...)`,
every pass on oneDNN, whose primitive takes the group count; im2col is for `g = 1`
only (a grouped convolution is `g` smaller products, not one).
"""
from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.custom_derivatives import SymbolicZero

from fnn._checks import BadValue, named
from fnn.layers import _onednn_conv

__all__ = ["ConvPlan", "LAX", "conv2d", "conv2d_im2col", "conv_plan", "explicit_padding",
           "groups_of"]

DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")
LOWERINGS = ("lax", "im2col", "onednn")
MAX_TAPS_ONE_CHANNEL = 49   # kh·kw up to which im2col's one-channel forward was measured faster


class ConvPlan(NamedTuple):
    """The lowering (`"lax"` or `"im2col"`) of each pass of one convolution."""

    forward: str
    input_grad: str
    weight_grad: str


LAX = ConvPlan("lax", "lax", "lax")
IM2COL = ConvPlan("im2col", "im2col", "im2col")
ONEDNN = ConvPlan("onednn", "onednn", "onednn")


def explicit_padding(spatial, kernel, strides, padding, dilation=(1, 1)):
    """`padding` ("SAME", "VALID" or pairs) as `((top, bottom), (left, right))`."""
    if isinstance(padding, str):
        eff = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation, strict=True))
        return tuple(tuple(p) for p in jax.lax.padtype_to_pads(
            tuple(spatial), eff, tuple(strides), padding.upper()))
    return tuple((int(lo), int(hi)) for lo, hi in padding)


def _patches(x, kernel, strides, pads, dilation):
    """`(N, H', W', kh·kw·C)`: the input under each kernel tap, taps in HWIO row-major order."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, strides, dilation
    if any(v for pair in pads for v in pair):
        x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)))
    n, hp, wp, c = x.shape
    ho = (hp - (dh * (kh - 1) + 1)) // sh + 1
    wo = (wp - (dw * (kw - 1) + 1)) // sw + 1
    if (kh, kw) == (hp, wp):                     # the kernel covers the input: no copies
        return x.reshape(n, 1, 1, kh * kw * c)
    cols = jnp.stack([jax.lax.slice(x, (0, 0, j * dw, 0), (n, hp, j * dw + (wo - 1) * sw + 1, c),
                                    (1, 1, sw, 1)) for j in range(kw)], axis=3)
    rows = jnp.stack([jax.lax.slice(cols, (0, i * dh, 0, 0, 0),
                                    (n, i * dh + (ho - 1) * sh + 1, wo, kw, c), (1, sh, 1, 1, 1))
                      for i in range(kh)], axis=3)  # (N, H', W', kh, kw, C)
    return rows.reshape(n, ho, wo, kh * kw * c)


def _require_conv_shapes(x, w, groups=1) -> None:
    if (x.ndim != 4 or w.ndim != 4 or x.shape[-1] != w.shape[2] * groups
            or w.shape[3] % groups):
        raise BadValue(f"expected x (N, H, W, C) and w (kh, kw, C/groups, O) with groups="
                       f"{groups} dividing C and O, got shapes {tuple(x.shape)} and "
                       f"{tuple(w.shape)}.")


def groups_of(x_shape, w_shape) -> int:
    """The number of groups of an NHWC × HWIO convolution: `C / w.shape[2]`."""
    return int(x_shape[-1]) // int(w_shape[2])


@named("conv2d_im2col")
def conv2d_im2col(x, w, strides=(1, 1), padding="VALID", dilation=(1, 1)):
    """NHWC × HWIO convolution as im2col + one matmul, every pass (see the module docstring).

    **Arguments:** `x: (N, H, W, C)`, `w: (kh, kw, C, O)`; `strides`, `dilation`:
    pairs of ints >= 1; `padding`: `"SAME"`, `"VALID"` or `((top, bottom), (left, right))`.
    **Returns:** `(N, H', W', O)`, equal to `jax.lax.conv_general_dilated` with
    dimension numbers `("NHWC", "HWIO", "NHWC")` up to float32 rounding (the
    sums run in a different order), values and gradients alike.
    """
    _require_conv_shapes(x, w)
    strides, dilation = tuple(strides), tuple(dilation)
    pads = explicit_padding(x.shape[1:3], tuple(w.shape[:2]), strides, padding, dilation)
    return _im2col_conv(x, w, strides, pads, dilation)


@partial(jax.jit, static_argnums=(2, 3, 4, 5))
def _im2col_conv(x, w, strides, pads, dilation, groups=1):
    # A named inner jit (inlined by XLA, so free at run time): it marks the
    # convolution in a traced step, which `fnn.fused.uses_convolution` looks for.
    del groups   # always 1: `conv2d` sends no grouped convolution here
    patches = _patches(x, tuple(w.shape[:2]), strides, pads, dilation)
    n, ho, wo, k = patches.shape
    y = patches.reshape(n * ho * wo, k) @ w.reshape(k, w.shape[-1])
    return y.reshape(n, ho, wo, w.shape[-1])


IM2COL_NAME = _im2col_conv.__name__   # the name of that jit in a jaxpr


def _lax_conv(x, w, strides, pads, dilation, groups=1):
    return jax.lax.conv_general_dilated(x, w, strides, list(pads), rhs_dilation=dilation,
                                        dimension_numbers=DIMENSION_NUMBERS,
                                        feature_group_count=groups)


_LOWERING = {"lax": _lax_conv, "im2col": _im2col_conv, "onednn": _onednn_conv.conv2d}


@partial(jax.custom_jvp, nondiff_argnums=(2, 3, 4, 5, 6))
def _planned_conv(x, w, strides, pads, dilation, groups, plan):
    return _LOWERING[plan.forward](x, w, strides, pads, dilation, groups)


@partial(_planned_conv.defjvp, symbolic_zeros=True)
def _planned_conv_jvp(strides, pads, dilation, groups, plan, primals, tangents):
    # The convolution is bilinear: d(x * w) = dx * w + x * dw, each term on the
    # lowering whose transpose is the pass chosen for that gradient.
    x, w = primals
    dx, dw = tangents
    y = _planned_conv(x, w, strides, pads, dilation, groups, plan)
    terms = []
    if not isinstance(dx, SymbolicZero):
        terms.append(_LOWERING[plan.input_grad](dx, w, strides, pads, dilation, groups))
    if not isinstance(dw, SymbolicZero):
        terms.append(_LOWERING[plan.weight_grad](x, dw, strides, pads, dilation, groups))
    return y, sum(terms[1:], terms[0]) if terms else jnp.zeros_like(y)


@named("conv2d")
def conv2d(x, w, strides=(1, 1), padding="VALID", dilation=(1, 1), plan: ConvPlan | None = None,
           groups: int = 1):
    """NHWC × HWIO convolution, each pass on the lowering `plan` names.

    **Arguments:** as `conv2d_im2col`; `plan`: a `ConvPlan`, by default
    `conv_plan(...)` for these shapes on the current backend; `groups`: divides `C`
    and `O`, `w: (kh, kw, C/groups, O)` (XLA's `feature_group_count`; im2col takes
    `groups=1` only).
    **Returns:** `(N, H', W', O)`, equal to `jax.lax.conv_general_dilated` up to
    float32 rounding, values and derivatives of every order alike.
    """
    _require_conv_shapes(x, w, groups)
    strides, dilation = tuple(strides), tuple(dilation)
    pads = explicit_padding(x.shape[1:3], tuple(w.shape[:2]), strides, padding, dilation)
    if plan is None:
        plan = conv_plan(x.shape, w.shape, strides, pads, dilation, x.dtype)
    if not isinstance(plan, ConvPlan) or not set(plan) <= set(LOWERINGS):
        raise BadValue(f"plan must be a ConvPlan of {LOWERINGS}, got {plan!r}.")
    if groups != 1 and "im2col" in plan:
        raise BadValue(f"im2col takes groups=1 only, got groups={groups} with plan {plan!r}.")
    if plan == LAX:
        return _lax_conv(x, w, strides, pads, dilation, groups)
    if plan == IM2COL:
        return _im2col_conv(x, w, strides, pads, dilation)
    if plan == ONEDNN:
        return _onednn_conv.conv2d(x, w, strides, pads, dilation, groups)
    return _planned_conv(x, w, strides, pads, dilation, groups, plan)


def conv_plan(x_shape, w_shape, strides, padding, dilation=(1, 1),
              dtype=jnp.float32) -> ConvPlan:
    """The lowering of each pass that measured fastest for these shapes (the table above).

    With the oneDNN extension (`fnn.layers._onednn_conv.supports`: installed, not
    switched off, CPU, one device, float32 or native bfloat16): every pass on oneDNN, at
    any stride and dilation, except where im2col stays faster: a kernel that covers the
    input (`IM2COL`) and the input gradient of a one-channel input. Without it:

    On the CPU backend, for unit-stride, undilated kernels:
    - the kernel covers the (unpadded) input, a 1×1 output: im2col for every pass
      (it is one matrix product; LeNet-5's C5);
    - forward: im2col for one input channel and kernels up to 7×7 (the first layer
      on grayscale images), XLA's kernel otherwise;
    - input gradient: im2col for those and for unpadded kernels of 5×5 and up
      (LeNet-5's C3), XLA's kernel otherwise (ResNet's 3×3);
    - weight gradient: XLA's kernel.
    Everything else, and every pass on a GPU or TPU: `LAX`. (Three channels with a
    3×3 kernel, ResNet-20's first layer, stay on XLA's kernel: im2col's faster
    forward pass did not make the training step measurably faster and compiled
    longer.) The timings behind each choice: benchmarks/RESULTS.md, item 4.

    A grouped convolution (`x_shape[-1] / w_shape[2]` groups > 1): `ONEDNN` where
    `supports(...)`, else `LAX` (benchmarks/conv_variants.py).
    """
    if jax.default_backend() != "cpu":
        return LAX
    kh, kw, c = w_shape[:3]
    if groups_of(x_shape, w_shape) != 1:
        pads = explicit_padding(x_shape[1:3], (kh, kw), strides, padding, dilation)
        return ONEDNN if _onednn_conv.supports(x_shape, w_shape, dtype, pads) else LAX
    pads = explicit_padding(x_shape[1:3], (kh, kw), strides, padding, dilation)
    unit = tuple(strides) == (1, 1) and tuple(dilation) == (1, 1)
    unpadded = all(p == (0, 0) for p in pads)
    if unit and unpadded and (kh, kw) == tuple(x_shape[1:3]):
        return IM2COL
    one_channel = unit and c == 1 and kh * kw <= MAX_TAPS_ONE_CHANNEL
    if _onednn_conv.supports(x_shape, w_shape, dtype, pads):
        return ConvPlan("onednn", "im2col" if one_channel else "onednn", "onednn")
    if not unit:
        return LAX
    return ConvPlan(forward="im2col" if one_channel else "lax",
                    input_grad="im2col" if one_channel or (unpadded and min(kh, kw) >= 5)
                    else "lax",
                    weight_grad="lax")
