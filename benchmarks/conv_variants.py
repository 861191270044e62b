"""The new convolutions (grouped/depthwise Conv2D, Conv1D, Conv3D, ConvTranspose2D): XLA
against fnn's chosen plan and PyTorch, per pass.

    python -m benchmarks.conv_variants [--rounds 30] [--repeats 2] [--no-torch]

For each case, times `forward` (`y = layer(x)`) and `backward` (the input and weight
gradients of `Σ y·dy` together, as a training step needs them), in milliseconds
(median of `--rounds`). Variants:

- `xla`: `jax.lax.conv_general_dilated` (and its transposes) written directly;
- `fnn`: the layer's `apply`, i.e. the plan `fnn.layers._fast_conv.conv_plan` chose
  (oneDNN for grouped 2-D and 1-D convolutions where `fnn_onednn` is installed);
- `fnn_no_onednn`: the same with oneDNN switched off (`use_onednn(False)`);
- `torch`: `torch.nn.functional.conv*` (NCHW) under `no_grad`, and
  `torch.autograd.grad` for the two gradients, in a child process (as in
  `benchmarks.onednn_conv`: PyTorch's spinning OpenMP threads would slow JAX beside them).

JAX variants are jitted with `fnn.compiler.options()` and timed round-robin in a
rotating order. The table gives each time and the ratios `xla/fnn` and `torch/fnn`
(> 1: fnn faster); the JSON report (`benchmarks/results/conv_variants.json`) records
the CPU model and its AVX-512/AMX flags.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import statistics
import subprocess
import sys

import numpy as np

from benchmarks.frameworks import THREADS  # sets the thread variables before JAX loads
from benchmarks.onednn_conv import cpu_flags, time_calls
from benchmarks.run import cpu_model

HERE = os.path.dirname(os.path.abspath(__file__))
PASSES = ("forward", "backward")

# name: (layer kind, x shape (channels last), features, kernel, keyword arguments)
CASES = {
    "depthwise 3×3 32²×64": ("Conv2D", (32, 32, 32, 64), 64, 3, dict(groups=64)),
    "depthwise 3×3 s2 32²×32": ("Conv2D", (32, 32, 32, 32), 32, 3, dict(groups=32, stride=2)),
    "grouped g=4 16²×64→64": ("Conv2D", (32, 16, 16, 64), 64, 3, dict(groups=4)),
    "conv1d k5 L256 32→64": ("Conv1D", (32, 256, 32), 64, 5, {}),
    "conv1d depthwise k9 L256×64": ("Conv1D", (32, 256, 64), 64, 9, dict(groups=64)),
    "conv3d 3³ 8×16²×8→16": ("Conv3D", (8, 8, 16, 16, 8), 16, 3, {}),
    "convT2d 4×4 s2 16²×32→16": ("ConvTranspose2D", (32, 16, 16, 32), 16, 4,
                                 dict(stride=2, padding=1)),
}
QUICK = {"depthwise 3×3 32²×64", "conv1d k5 L256 32→64", "convT2d 4×4 s2 16²×32→16"}


def _operands(case, rng):
    kind, x_shape, features, k, kw = CASES[case]
    import jax

    from fnn import layers

    layer = getattr(layers, kind)(features, k, **kw)
    params, _ = layer.init(jax.random.key(0), x_shape[1:])
    params = {n: np.asarray(v) for n, v in params.items()}
    x = rng.standard_normal(x_shape, dtype=np.float32)
    y_shape = jax.eval_shape(lambda p, x: layer.apply(p, {}, x)[0], params, x).shape
    dy = rng.standard_normal(y_shape, dtype=np.float32)
    return layer, params, x, dy


def _xla_conv(case):
    """The same convolution written on `jax.lax` alone: `conv(x, w) -> y` without bias."""
    import jax
    import jax.numpy as jnp

    kind, x_shape, _, k, kw = CASES[case]
    ndim = len(x_shape) - 2
    sp = "DHW"[3 - ndim:] if ndim > 1 else "H"
    dims = (f"N{sp}C", f"{sp}IO", f"N{sp}C")
    stride = (kw.get("stride", 1),) * ndim
    if kind.startswith("ConvTranspose"):
        p = kw.get("padding", 0)
        pads = [(k - 1 - p, k - 1 - p)] * ndim
        return lambda x, w: jax.lax.conv_general_dilated(
            x, jnp.flip(w, tuple(range(ndim))), (1,) * ndim, pads, lhs_dilation=stride,
            dimension_numbers=dims)
    return lambda x, w: jax.lax.conv_general_dilated(
        x, w, stride, "SAME", dimension_numbers=dims, feature_group_count=kw.get("groups", 1))


def jax_calls(rng, cases) -> dict:
    import jax

    from fnn import compiler
    from fnn.layers import _onednn_conv

    def jit(fn):
        return jax.jit(fn, compiler_options=compiler.options())

    def passes(conv, w, x, dy):
        # a fresh function per variant: jit caches traces by function, and a trace made
        # with oneDNN off must not serve the variant with it on
        fwd = jit(lambda w, x: conv(w, x))
        bwd = jit(lambda w, x, dy: jax.vjp(conv, w, x)[1](dy))
        return {"forward": lambda: fwd(w, x), "backward": lambda: bwd(w, x, dy)}

    calls = {}
    for case in cases:
        layer, params, x, dy = _operands(case, rng)
        x, dy, w = jax.device_put(x), jax.device_put(dy), jax.device_put(params["w"])
        xla = _xla_conv(case)
        b = jax.device_put(params["b"])
        apply = lambda w, x, layer=layer, b=b: layer.apply({"w": w, "b": b}, {}, x)[0]
        variants = {"xla": passes(lambda w, x, f=xla: f(x, w), w, x, dy),
                    "fnn": passes(apply, w, x, dy)}
        if _onednn_conv.enabled():
            _onednn_conv.use_onednn(False)
            try:   # traced and compiled now, with oneDNN off
                variants["fnn_no_onednn"] = passes(apply, w, x, dy)
                for fn in variants["fnn_no_onednn"].values():
                    jax.block_until_ready(fn())
            finally:
                _onednn_conv.use_onednn(None)
        for variant, fns in variants.items():
            for pas, fn in fns.items():
                jax.block_until_ready(fn())
                calls[(case, variant, pas)] = (fn, jax.block_until_ready)
    return calls


def torch_calls(rng, cases) -> dict:
    import torch

    torch.set_num_threads(THREADS)
    F = torch.nn.functional
    calls = {}
    for case in cases:
        kind, x_shape, _, k, kw = CASES[case]
        _, params, x, dy = _operands(case, rng)
        ndim = len(x_shape) - 2
        first = lambda a: torch.from_numpy(np.ascontiguousarray(
            np.moveaxis(a, -1, 1)))
        xt, dyt = first(x), first(dy)
        w = np.moveaxis(np.moveaxis(params["w"], -1, 0), -1, 1)   # (O, I, k...) or (I, O, k...)
        if kind.startswith("ConvTranspose"):
            w = np.swapaxes(w, 0, 1)
            fn = getattr(F, f"conv_transpose{ndim}d")
            conv = lambda x, w, fn=fn, kw=kw: fn(x, w, None, kw.get("stride", 1),
                                                 kw.get("padding", 0))
        else:
            fn = getattr(F, f"conv{ndim}d")
            conv = lambda x, w, fn=fn, kw=kw, k=k: fn(x, w, None, kw.get("stride", 1), k // 2,
                                                      1, kw.get("groups", 1))
        wt = torch.from_numpy(np.ascontiguousarray(w))

        def forward(conv=conv, xt=xt, wt=wt):
            with torch.no_grad():
                return conv(xt, wt)

        def backward(conv=conv, xt=xt, wt=wt, dyt=dyt):
            xg, wg = xt.clone().requires_grad_(), wt.clone().requires_grad_()
            return torch.autograd.grad(conv(xg, wg), (xg, wg), dyt)

        calls[(case, "torch", "forward")] = (forward, lambda r: r)
        calls[(case, "torch", "backward")] = (backward, lambda r: r)
        for fn, _ in (calls[(case, "torch", p)] for p in PASSES):
            fn()
    return calls


def measure(cases, rounds, repeats, use_torch) -> dict:
    calls = jax_calls(np.random.default_rng(0), cases)
    times: dict[str, list] = {}
    per_turn = max(1, rounds // repeats)
    for _ in range(repeats):
        turn = time_calls(calls, per_turn)
        if use_torch:
            out = subprocess.run([sys.executable, "-m", "benchmarks.conv_variants",
                                  "--torch-child", "--rounds", str(per_turn), "--cases",
                                  ",".join(cases)], capture_output=True, text=True, check=True,
                                 cwd=os.path.dirname(HERE))
            turn.update(json.loads(out.stdout.strip().splitlines()[-1]))
        for key, t in turn.items():
            times.setdefault(key, []).extend(t)
    return {key: round(statistics.median(t), 3) for key, t in times.items()}


def format_table(medians: dict, variants: list[str]) -> str:
    cases = list(dict.fromkeys(k.split("|")[0] for k in medians))
    lines = ["| convolution | pass | " + " | ".join(variants) + " | xla/fnn | torch/fnn |",
             "|---|---|" + "---:|" * (len(variants) + 2)]
    for c in cases:
        for p in PASSES:
            row = [medians.get(f"{c}|{v}|{p}") for v in variants]
            ours = medians[f"{c}|fnn|{p}"]
            ratios = [f"{medians[f'{c}|{v}|{p}'] / ours:.2f}×" if f"{c}|{v}|{p}" in medians
                      else "–" for v in ("xla", "torch")]
            lines.append(f"| {c} | {p} | " + " | ".join("–" if t is None else f"{t:.2f}"
                                                        for t in row) + " | "
                         + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--cases", default="all", help=f"'all', 'quick' or comma-separated of "
                                                   f"{list(CASES)}")
    ap.add_argument("--no-torch", action="store_true")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "conv_variants.json"))
    ap.add_argument("--torch-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    cases = {"all": list(CASES), "quick": [c for c in CASES if c in QUICK]}.get(
        args.cases, args.cases.split(","))
    if args.torch_child:
        print(json.dumps(time_calls(torch_calls(np.random.default_rng(0), cases), args.rounds)))
        return {}
    use_torch = not args.no_torch and importlib.util.find_spec("torch") is not None

    import jax

    from benchmarks._report import jax_device, write_json

    medians = measure(cases, args.rounds, args.repeats, use_torch)
    variants = [v for v in ("xla", "fnn", "fnn_no_onednn", "torch")
                if any(k.split("|")[1] == v for k in medians)]
    versions = {"jax": jax.__version__}
    if use_torch:
        versions["torch"] = importlib.metadata.version("torch")
    report = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "threads": THREADS,
              "device": jax_device(), "versions": versions, "rounds": args.rounds,
              "unit": "ms per pass, median", "cases": {c: repr(CASES[c]) for c in cases},
              "medians": medians}
    print(f"{report['cpu']} ({report['cpu_flags'] or 'no AVX-512/AMX flags'}), "
          f"{THREADS} threads, {versions}, {args.rounds} rounds; float32, ms per pass")
    print(format_table(medians, variants))
    write_json(args.json, report)
    return report


if __name__ == "__main__":
    main()
