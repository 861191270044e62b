"""oneDNN's convolution (`fnn_onednn`) against XLA's and fnn's own lowering, per pass.

    python -m benchmarks.onednn_conv [--rounds 40] [--repeats 2] [--cases resnet20,lenet5]
                                     [--no-torch]

For ResNet-20's 3×3 convolutions (batch 64) and LeNet-5's three (batch 128), times
each pass alone, in milliseconds (median of `--rounds`):

- `forward`: `y = x ⋆ w`; `input_grad`: `dx` from `dy`; `weight_grad`: `dw` from `x`, `dy`;
- variants: `xla` (`jax.lax.conv_general_dilated` and its transposes), `fnn`
  (`fnn.layers._fast_conv.conv2d` with oneDNN switched off: today's per-pass plan of
  XLA's kernel and im2col), `onednn` (`fnn.layers._onednn_conv.conv2d`), and, when torch
  imports, `torch` (NCHW) and `torch_cl` (channels_last): `torch.nn.functional.conv2d`
  under `no_grad` and `torch.ops.aten.convolution_backward` for one gradient at a time.

Every JAX variant is jitted with `fnn.compiler.options()`, the options fnn's steps use.
The JAX variants run in one process, round-robin in an order that rotates every round,
so a slow phase of a shared machine hits them alike; PyTorch runs in a child process
(its OpenMP threads, spinning after each call, slow the JAX calls beside them), in
`--repeats` turns alternating with the JAX rounds. Thread settings are those of the framework
benchmarks (`benchmarks.frameworks`). The table and a JSON report (written to
`benchmarks/results/onednn_conv.json`) record the CPU model and its AVX-512/AMX flags.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import time

import numpy as np

from benchmarks.frameworks import THREADS  # sets the thread variables before JAX loads
from benchmarks.run import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
PASSES = ("forward", "input_grad", "weight_grad")

# name: (N, H, W, C, O, k, stride, symmetric padding)
CASES = {
    "resnet20": {
        "R1 32²×3→16": (64, 32, 32, 3, 16, 3, 1, 1),
        "R2 32²×16→16": (64, 32, 32, 16, 16, 3, 1, 1),
        "R3 32²×16→32 s2": (64, 32, 32, 16, 32, 3, 2, 1),
        "R4 16²×32→32": (64, 16, 16, 32, 32, 3, 1, 1),
        "R5 16²×32→64 s2": (64, 16, 16, 32, 64, 3, 2, 1),
        "R6 8²×64→64": (64, 8, 8, 64, 64, 3, 1, 1),
    },
    "lenet5": {
        "C1 28²×1→6 p2": (128, 28, 28, 1, 6, 5, 1, 2),
        "C3 14²×6→16": (128, 14, 14, 6, 16, 5, 1, 0),
        "C5 5²×16→120": (128, 5, 5, 16, 120, 5, 1, 0),
    },
}


def cpu_flags() -> str:
    """The AVX-512 and AMX flags of /proc/cpuinfo, sorted ("" where it does not say)."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return ""
    return " ".join(sorted(set(re.findall(r"\b(avx512[a-z_0-9]*|amx[a-z_0-9]*)\b", text))))


def _jax_passes(conv, x, w, dy):
    """The three passes of `conv(x, w)` as jitted closures over device arrays."""
    import jax

    from fnn import compiler

    def jit(fn):
        return jax.jit(fn, compiler_options=compiler.options())

    fwd = jit(conv)
    dx = jit(lambda x, w, dy: jax.vjp(lambda x: conv(x, w), x)[1](dy)[0])
    dw = jit(lambda x, w, dy: jax.vjp(lambda w: conv(x, w), w)[1](dy)[0])
    return {"forward": lambda: fwd(x, w), "input_grad": lambda: dx(x, w, dy),
            "weight_grad": lambda: dw(x, w, dy)}


def _operands(case, rng, channels_first=False):
    """float32 `x`, `w` (scaled by 1/√fan-in) and `dy` for `case`: NHWC/HWIO, or NCHW/OIHW."""
    n, h, w_, c, o, k, s, p = case
    ho = (h + 2 * p - k) // s + 1
    x = rng.standard_normal((n, h, w_, c), dtype=np.float32)
    w = rng.standard_normal((k, k, c, o), dtype=np.float32) / np.sqrt(k * k * c)
    dy = rng.standard_normal((n, ho, ho, o), dtype=np.float32)
    if channels_first:
        return x.transpose(0, 3, 1, 2), w.transpose(3, 2, 0, 1), dy.transpose(0, 3, 1, 2)
    return x, w, dy


def jax_variants(case, rng, dtype) -> dict:
    import jax
    import jax.numpy as jnp

    from fnn.layers import _fast_conv, _onednn_conv

    s, p = case[6:]
    x, w, dy = (jax.device_put(a.astype(jnp.dtype(dtype))) for a in _operands(case, rng))
    pads, strides = ((p, p), (p, p)), (s, s)

    def xla(x, w):
        return jax.lax.conv_general_dilated(x, w, strides, pads,
                                            dimension_numbers=_fast_conv.DIMENSION_NUMBERS)

    def fnn_plan(x, w):
        _onednn_conv.use_onednn(False)   # today's plan, even where conv_plan knows oneDNN
        try:
            return _fast_conv.conv2d(x, w, strides, pads)
        finally:
            _onednn_conv.use_onednn(None)

    out = {"xla": _jax_passes(xla, x, w, dy), "fnn": _jax_passes(fnn_plan, x, w, dy)}
    if _onednn_conv.available():
        out["onednn"] = _jax_passes(lambda x, w: _onednn_conv.conv2d(x, w, strides, pads),
                                    x, w, dy)
    return out, jax.block_until_ready


def torch_variants(case, rng, dtype) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    s, p = case[6:]
    x, w, dy = (torch.from_numpy(a).to(getattr(torch, dtype))
                for a in _operands(case, rng, channels_first=True))
    out = {}
    for name, fmt in (("torch", torch.contiguous_format), ("torch_cl", torch.channels_last)):
        xf, wf, dyf = (t.contiguous(memory_format=fmt) for t in (x, w, dy))

        def backward(mask, xf=xf, wf=wf, dyf=dyf):
            return torch.ops.aten.convolution_backward(dyf, xf, wf, None, [s, s], [p, p],
                                                       [1, 1], False, [0, 0], 1, mask)

        def forward(xf=xf, wf=wf):
            with torch.no_grad():
                return torch.nn.functional.conv2d(xf, wf, stride=s, padding=p)

        out[name] = {"forward": forward,
                     "input_grad": lambda b=backward: b([True, False, False]),
                     "weight_grad": lambda b=backward: b([False, True, False])}
    return out, lambda r: r


def build_calls(case_names: list[str], frameworks: str, dtype: str) -> dict:
    """`{(case, variant, pass): (fn, sync)}`, each compiled and run once."""
    rng = np.random.default_rng(0)
    build = jax_variants if frameworks == "jax" else torch_variants
    calls = {}
    for group in case_names:
        for label, case in CASES[group].items():
            variants, sync = build(case, rng, dtype)
            for variant, passes in variants.items():
                for pas, fn in passes.items():
                    sync(fn())
                    calls[(label, variant, pas)] = (fn, sync)
    return calls


def time_calls(calls: dict, rounds: int) -> dict:
    """`{key: [ms, ...]}`: every call once per round, in an order rotating each round."""
    times = {key: [] for key in calls}
    keys = list(calls)
    for r in range(rounds):
        shift = (r * 7) % len(keys)
        for key in keys[shift:] + keys[:shift]:
            fn, sync = calls[key]
            t0 = time.perf_counter()
            sync(fn())
            times[key].append((time.perf_counter() - t0) * 1e3)
    return {"|".join(key): t for key, t in times.items()}


def torch_times(case_names: list[str], rounds: int, dtype: str) -> dict:
    """PyTorch's times from a child process: its OpenMP threads spin after each call and
    would slow the JAX calls beside them (and JAX's threads PyTorch's)."""
    out = subprocess.run([sys.executable, "-m", "benchmarks.onednn_conv", "--torch-child",
                          "--rounds", str(rounds), "--cases", ",".join(case_names),
                          "--dtype", dtype],
                         capture_output=True, text=True, check=True, cwd=os.path.dirname(HERE))
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(case_names: list[str], rounds: int, repeats: int, use_torch: bool,
            dtype: str) -> dict:
    """Medians in ms; JAX in this process and PyTorch in a child, in `repeats` turns."""
    calls = build_calls(case_names, "jax", dtype)
    times: dict[str, list] = {}
    per_turn = max(1, rounds // repeats)
    for _ in range(repeats):
        turn = time_calls(calls, per_turn)
        if use_torch:
            turn.update(torch_times(case_names, per_turn, dtype))
        for key, t in turn.items():
            times.setdefault(key, []).extend(t)
    return {key: round(statistics.median(t), 3) for key, t in times.items()}


def format_table(medians: dict, variants: list[str]) -> str:
    cases = list(dict.fromkeys(k.split("|")[0] for k in medians))
    lines = ["| convolution | pass | " + " | ".join(variants) + " | xla/onednn | fnn/onednn |",
             "|---|---|" + "---:|" * (len(variants) + 2)]
    for c in cases:
        for p in PASSES:
            row = [medians.get(f"{c}|{v}|{p}") for v in variants]
            one = medians.get(f"{c}|onednn|{p}")
            ratios = [f"{medians[f'{c}|{v}|{p}'] / one:.2f}×" if one else "–"
                      for v in ("xla", "fnn")]
            lines.append(f"| {c} | {p} | " + " | ".join("–" if t is None else f"{t:.2f}"
                                                        for t in row) + " | "
                         + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=2,
                    help="turns of JAX (in process) and PyTorch (a child process)")
    ap.add_argument("--cases", default="resnet20,lenet5",
                    help=f"comma-separated, of {sorted(CASES)}")
    ap.add_argument("--no-torch", action="store_true", help="leave PyTorch out")
    ap.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"),
                    help="of every operand (PyTorch: tensors of that type)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "onednn_conv.json"))
    ap.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cases = args.cases.split(",")
    if args.torch_child:
        print(json.dumps(time_calls(build_calls(cases, "torch", args.dtype), args.rounds)))
        return {}
    use_torch = not args.no_torch and importlib.util.find_spec("torch") is not None

    import jax

    from benchmarks._report import jax_device, write_json
    from fnn.layers import _onednn_conv

    medians = measure(cases, args.rounds, args.repeats, use_torch, args.dtype)
    variants = [v for v in ("xla", "fnn", "onednn", "torch", "torch_cl")
                if any(k.split("|")[1] == v for k in medians)]
    versions = {"jax": jax.__version__}
    if _onednn_conv.available():
        import fnn_onednn

        versions["onednn"] = fnn_onednn.onednn_version()
    if use_torch:
        versions["torch"] = importlib.metadata.version("torch")
    report = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": THREADS,
              "device": jax_device(), "versions": versions, "rounds": args.rounds,
              "dtype": args.dtype,
              "unit": "ms per pass, median", "medians": medians}
    print(f"{report['cpu']} ({report['cpu_flags'] or 'no AVX-512/AMX flags'}), "
          f"{THREADS} threads, {versions}, {args.rounds} rounds; {args.dtype}, ms per pass")
    print(format_table(medians, variants))
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
