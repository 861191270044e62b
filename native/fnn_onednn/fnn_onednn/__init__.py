"""oneDNN's 2-D convolution as XLA FFI targets on the CPU backend (fnn's optional extension).

Importing this package loads `_kernels` (src/conv.cc) and registers its three
handlers with `jax.ffi.register_ffi_target(..., platform="cpu")`, under the names
in `TARGETS`:

| pass | target | operands -> result |
|---|---|---|
| `"forward"` | `fnn_onednn_conv_fwd` | `x (N,H,W,C)`, `w (kh,kw,C/g,O)` -> `y (N,H',W',O)` |
| `"input_grad"` | `fnn_onednn_conv_bwd_data` | `dy (N,H',W',O)`, `w` -> `dx (N,H,W,C)` |
| `"weight_grad"` | `fnn_onednn_conv_bwd_weights` | `x`, `dy` -> `dw (kh,kw,C/g,O)` |

Each takes the int64 attributes `stride_h, stride_w, pad_top, pad_bottom, pad_left,
pad_right, dil_h, dil_w, groups` (explicit padding >= 0, dilation >= 1 as in
`jax.lax.conv_general_dilated`) and float32 or bfloat16 operands (bfloat16 where
`native_bfloat16()`). fnn wraps them as
JAX primitives with derivative and batching rules (`fnn.layers._onednn_conv`).
"""
from __future__ import annotations

import ctypes
import importlib.metadata
import pathlib

import jax.ffi

__all__ = ["TARGETS", "onednn_version", "native_bfloat16"]

TARGETS = {"forward": "fnn_onednn_conv_fwd",
           "input_grad": "fnn_onednn_conv_bwd_data",
           "weight_grad": "fnn_onednn_conv_bwd_weights"}
_SYMBOLS = {"forward": "FnnOnednnConvFwd",
            "input_grad": "FnnOnednnConvBwdData",
            "weight_grad": "FnnOnednnConvBwdWeights"}


def _load_onednn() -> None:
    """Load the `onednn-cpu-gomp` wheel's libdnnl.so.3 (the rpath's fallback)."""
    try:
        files = importlib.metadata.distribution("onednn-cpu-gomp").files or ()
    except importlib.metadata.PackageNotFoundError:
        return
    for f in files:
        if f.name == "libdnnl.so.3":
            ctypes.CDLL(str(f.locate()), mode=ctypes.RTLD_GLOBAL)
            return


def _load_kernels() -> ctypes.CDLL:
    here = pathlib.Path(__file__).parent
    found = sorted(here.glob("_kernels*.so"))
    if not found:
        raise ImportError(f"fnn_onednn: no _kernels*.so in {here}; reinstall with "
                          "`pip install ./native/fnn_onednn`")
    _load_onednn()
    return ctypes.CDLL(str(found[0]))


_LIB = _load_kernels()
_LIB.FnnOnednnVersion.restype = ctypes.c_int
_LIB.FnnOnednnNativeBfloat16.restype = ctypes.c_int
for _pass, _name in TARGETS.items():
    jax.ffi.register_ffi_target(_name, jax.ffi.pycapsule(getattr(_LIB, _SYMBOLS[_pass])),
                                platform="cpu")


def onednn_version() -> str:
    """The version of the oneDNN library loaded, e.g. `"3.2.0"`."""
    v = _LIB.FnnOnednnVersion()
    return f"{v // 10000}.{v // 100 % 100}.{v % 100}"


def native_bfloat16() -> bool:
    """Whether oneDNN runs bfloat16 convolutions on this CPU's own bfloat16 instructions
    (AVX512-BF16 or AMX); elsewhere it emulates them, or has no kernel for them."""
    return bool(_LIB.FnnOnednnNativeBfloat16())
