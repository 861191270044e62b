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
patch buffer does not fit in cache); on LeNet's padded 1→6 C1 it was even.
`prefer_im2col` encodes that boundary.
"""
from __future__ import annotations

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
    kernel = tuple(w.shape[:2])
    strides, dilation = tuple(strides), tuple(dilation)
    pads = explicit_padding(x.shape[1:3], kernel, strides, padding, dilation)
    patches = _patches(x, kernel, strides, pads, dilation)
    n, ho, wo, k = patches.shape
    y = patches.reshape(n * ho * wo, k) @ w.reshape(k, w.shape[-1])
    return y.reshape(n, ho, wo, w.shape[-1])


def prefer_im2col(x_shape, w_shape, strides, padding, dilation=(1, 1)) -> bool:
    """True where `conv2d_im2col` measured faster than XLA:CPU's convolution.

    That is an unpadded ("VALID"), unit-stride, undilated convolution with a
    kernel of at least 5×5 (LeNet-style layers), on the CPU backend only. Padded
    3×3 convolutions (ResNet, VGG) stay on `lax.conv_general_dilated`, which was
    about 2× faster there; so does everything on GPU/TPU (cuDNN and friends).
    """
    if jax.default_backend() != "cpu":
        return False
    pads = explicit_padding(x_shape[1:3], w_shape[:2], strides, padding, dilation)
    return (all(p == (0, 0) for p in pads) and tuple(strides) == (1, 1)
            and tuple(dilation) == (1, 1) and min(w_shape[:2]) >= 5)
