"""A 2-D convolution lowered to im2col + one matrix product (a CPU fast path).

`conv2d_im2col(x, w, strides, padding, dilation)` computes exactly what
`jax.lax.conv_general_dilated(x, w, strides, padding, rhs_dilation=dilation,
dimension_numbers=("NHWC", "HWIO", "NHWC"))` computes, as

    patches = concat over taps (i, j) of x̃[:, i·d_h :: s_h, j·d_w :: s_w, :]   (N, H', W', kh·kw·C)
    y       = patches.reshape(N·H'·W', kh·kw·C) @ w.reshape(kh·kw·C, O)

where `x̃` is the padded input; the tap order `(i, j, c)` is the row-major order
of the HWIO kernel, so `w` is reshaped, never transposed. Gradients come from
autodiff: the weight gradient is one product `patchesᵀ @ dy` (the part XLA:CPU
compiles slowest as a convolution) and the input gradient `dy @ wᵀ` scattered
back by the transposes of the slices (pads, fused into one loop).

`Conv2D` takes this path wherever `prefer_im2col` says so.

When it pays (measured on 2 AMD EPYC cores, XLA:CPU, jax 0.10.2; see
benchmarks/RESULTS.md): on LeNet-5's unpadded 5×5 convolutions (6→16 and
16→120 channels, batch 128) the whole training step got 15–20 % faster
(two sessions, five repeats; one noisier run had 1.14–1.47×); per pass, the
16→120 layer (1×1 output) gained most, 3× on forward plus gradients. On
ResNet-20's padded 3×3 convolutions with 16–64 channels it was 2.2× SLOWER
(XLA's own convolution runs those near the matmul rate, and the 9 × larger
patch buffer does not fit in cache); on LeNet's padded 1→6 C1, forward plus
weight gradient were 1.3–1.5× faster (another −13 % on the step).
`prefer_im2col` encodes that boundary.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

__all__ = ["conv2d_im2col", "explicit_padding", "prefer_im2col"]


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
    taps = [jax.lax.slice(x, (0, i * dh, j * dw, 0),
                          (n, i * dh + (ho - 1) * sh + 1, j * dw + (wo - 1) * sw + 1, c),
                          (1, sh, sw, 1))
            for i in range(kh) for j in range(kw)]
    return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def conv2d_im2col(x, w, strides=(1, 1), padding="VALID", dilation=(1, 1)):
    """NHWC × HWIO convolution as im2col + one matmul (see the module docstring).

    **Arguments:** `x: (N, H, W, C)`, `w: (kh, kw, C, O)`; `strides`, `dilation`:
    pairs of ints >= 1; `padding`: `"SAME"`, `"VALID"` or `((top, bottom), (left, right))`.
    **Returns:** `(N, H', W', O)`, equal to `jax.lax.conv_general_dilated` with
    dimension numbers `("NHWC", "HWIO", "NHWC")` up to float32 rounding (the
    sums run in a different order), values and gradients alike.
    """
    if x.ndim != 4 or w.ndim != 4 or x.shape[-1] != w.shape[2]:
        raise ValueError(
            f"conv2d_im2col: expected x (N, H, W, C) and w (kh, kw, C, O) with the same C, "
            f"got shapes {tuple(x.shape)} and {tuple(w.shape)}.")
    strides, dilation = tuple(strides), tuple(dilation)
    pads = explicit_padding(x.shape[1:3], tuple(w.shape[:2]), strides, padding, dilation)
    return _im2col_conv(x, w, strides, pads, dilation)


@partial(jax.jit, static_argnums=(2, 3, 4))
def _im2col_conv(x, w, strides, pads, dilation):
    # A named inner jit (inlined by XLA, so free at run time): it marks the
    # convolution in a traced step, which `fnn.fused.uses_convolution` looks for.
    patches = _patches(x, tuple(w.shape[:2]), strides, pads, dilation)
    n, ho, wo, k = patches.shape
    y = patches.reshape(n * ho * wo, k) @ w.reshape(k, w.shape[-1])
    return y.reshape(n, ho, wo, w.shape[-1])


IM2COL_NAME = _im2col_conv.__name__   # the name of that jit in a jaxpr


def prefer_im2col(x_shape, w_shape, strides, padding, dilation=(1, 1)) -> bool:
    """True where `conv2d_im2col` measured faster than XLA:CPU's convolution.

    On the CPU backend only, for unit-stride, undilated kernels of at least 5×5
    that are either unpadded ("VALID": LeNet-5's C3 and C5) or read a single
    input channel (LeNet-5's padded C1: forward + weight gradient 1.3–1.5×
    faster, the training step −13 %). Padded convolutions with more channels stay
    on `lax.conv_general_dilated`: ResNet's 3×3 with 16–64 channels ran about
    2× faster there, 5×5 with 16–32 channels 1.5–3× faster; with 3 input
    channels the winner changed from shape to shape (3×3→16 and 5×5→32 im2col,
    5×5→16 lax), so no rule is drawn. GPU/TPU: always `lax` (cuDNN and friends).
    """
    if jax.default_backend() != "cpu":
        return False
    if tuple(strides) != (1, 1) or tuple(dilation) != (1, 1) or min(w_shape[:2]) < 5:
        return False
    pads = explicit_padding(x_shape[1:3], w_shape[:2], strides, padding, dilation)
    return all(p == (0, 0) for p in pads) or w_shape[2] == 1
