"""fnn against raw JAX, Flax linen, Equinox, Haiku and PyTorch: one training step, one run.

    python -m benchmarks.run                       # 4 workloads x all frameworks, 3 repeats
    python -m benchmarks.run --quick               # fewer steps, 2 repeats
    python -m benchmarks.run --hugepages           # every process with glibc.malloc.hugetlb=1
    python -m benchmarks.run --workloads lenet5,resnet20 --frameworks fnn,rawjax,torch
    python -m benchmarks.run --smoke --out /tmp/smoke.json   # tiny shapes, 2 steps (tests)
    python -m benchmarks.run --precision mixed_bfloat16   # each framework's mixed precision
    python -m benchmarks.run --size large          # ResNet-50 224², LSTM H=1024: MFU

Every (workload, framework) pair runs in its own process (`python -m
benchmarks.frameworks.<name>_bench --workload W --json`) with the same thread
settings (`BENCH_THREADS`, default all cores; `XLA_FLAGS` and `GLIBC_TUNABLES` passed
through; `--hugepages` adds `glibc.malloc.hugetlb=1` to `GLIBC_TUNABLES` for all of them).
Each repeat first measures the float32 n² matmul rate (`benchmarks.matmul_peak`;
n = 2048 on CPU, 8192 on a GPU)
and then runs every workload with the frameworks in an order that rotates from
repeat to repeat, so that the machine's slow drifts hit every framework alike.

Reported per pair (medians over repeats): compile time (first call), ms per
step (median, and the 10th-90th percentile of single steps), examples/s, peak
RSS (and on a GPU peak device memory), FLOPs per step (`6 × forward MACs ×
batch`, from `fnn.summary`; see `benchmarks.workloads`), achieved GFLOP/s and
its fraction of the best matmul rate measured in the same run, and
`peer/fnn`: the peer's time per step over fnn's, taken within each repeat and
then the median over repeats (> 1: fnn is faster). The load average is
recorded next to every number: on a shared machine, compare only numbers from
one run. Results go to `--out` as JSON.

The peers are optional (`pip install -e ".[bench]"`); a
framework whose library is not installed is skipped with the reason.
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from benchmarks import workloads
from benchmarks._report import write_json

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


@dataclass(frozen=True)
class Framework:
    name: str                      # the label in tables and JSON
    module: str                    # benchmarks.frameworks.<module>
    variant: str | None            # --variant, None for the module's default
    needs: tuple[str, ...]         # importable modules it needs
    only: tuple[str, ...] | None = None   # workloads it applies to (None: all)
    jax: bool = True


FRAMEWORKS = {f.name: f for f in [
    Framework("fnn", "fnn_bench", None, ("jax",)),
    Framework("fnn_manual", "fnn_bench", "manual", ("jax",)),
    # ResNet-20 scanned takes seconds per step on CPU (the convolution trap): left out
    Framework("fnn_scan4", "fnn_bench", "scan4", ("jax",), only=("mlp", "lenet5", "lstm")),
    Framework("fnn_unroll4", "fnn_bench", "unroll4", ("jax",), only=("mlp", "lenet5", "lstm")),
    Framework("fnn_laxconv", "fnn_bench", "laxconv", ("jax",), only=("lenet5",)),
    Framework("fnn_xladefaults", "fnn_bench", "xladefaults", ("jax",)),
    Framework("rawjax", "rawjax_bench", None, ("jax",)),
    Framework("rawjax_fnn_options", "rawjax_bench", "fnn_options", ("jax",)),
    Framework("flax_linen", "flax_linen_bench", None, ("flax", "optax")),
    Framework("equinox", "equinox_bench", None, ("equinox", "optax")),
    Framework("haiku", "haiku_bench", None, ("haiku", "optax")),
    Framework("torch", "torch_bench", None, ("torch",), jax=False),
    Framework("torch_channels_last", "torch_bench", "channels_last", ("torch",),
              only=("lenet5", "resnet20"), jax=False),
    # on NVIDIA GPUs: float32 products in TF32, as JAX computes them by default
    Framework("torch_tf32", "torch_bench", "tf32", ("torch",), jax=False),
    # --precision mixed_bfloat16: fnn in float32 in the same run (the own baseline)
    Framework("fnn_float32", "fnn_bench", "float32", ("jax",)),
]}
# --size large: fnn (ResNet-50, LSTM H=1024) and torch (the LSTM; no ResNet-50 there)
LARGE_FRAMEWORKS = ("fnn", "torch")
# the CPU flags that decide the half-precision speed (recorded with every run)
PRECISION_FLAGS = ("avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile",
                   "amx_int8", "avx_vnni")


def cpu_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of `PRECISION_FLAGS` the first CPU reports (x86 /proc/cpuinfo)."""
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.split(":", 1)[0].strip() == "flags":
            flags = set(line.split(":", 1)[1].split())
            return [f for f in PRECISION_FLAGS if f in flags]
    return []
DEFAULT_FRAMEWORKS = ("fnn", "rawjax", "flax_linen", "equinox", "haiku", "torch",
                      "torch_channels_last")


def missing_modules(fw: Framework) -> list[str]:
    return [m for m in fw.needs if importlib.util.find_spec(m) is None]


def build_in_process(framework: str, workload: workloads.Workload):
    """The framework's `Bench` for `workload`, built in this process (its variant, or
    its module's first one): what `benchmarks.ab` and `benchmarks.program_size` measure."""
    fw = FRAMEWORKS[framework]
    module = importlib.import_module(f"benchmarks.frameworks.{fw.module}")
    return module.build(workload, fw.variant or getattr(module, "VARIANTS", ("default",))[0])


@functools.cache
def _on_cpu() -> bool:
    """No GPU visible to this process (where `--size large` runs only a few steps)."""
    return not (os.path.exists("/dev/nvidiactl") or os.environ.get("CUDA_VISIBLE_DEVICES"))


def load() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


@functools.cache
def _cpuinfo() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return f.read()
    except OSError:
        return ""


def cpu_model(cpuinfo: str | None = None) -> str:
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


# widest first: (flag in /proc/cpuinfo, name)
_SIMD = (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX"), ("sse2", "SSE2"),
         ("sve", "SVE"), ("asimd", "NEON"))


def cpu_simd(cpuinfo: str | None = None) -> str:
    """The widest vector extension the first CPU reports ("AVX-512", "AVX2", "NEON", ...),
    "" where /proc/cpuinfo does not say.

    Recorded with every run because a CPU name does not tell it: the same 2-core
    "AMD EPYC" ran every framework 30-50 % faster, and oneDNN's convolutions 2-5x
    faster than XLA:CPU's, once it had AVX-512 (benchmarks/RESULTS.md, item 4, point 17).
    """
    for line in (_cpuinfo() if cpuinfo is None else cpuinfo).splitlines():
        key = line.split(":", 1)[0].strip()
        if key in ("flags", "Features"):          # x86 / ARM
            flags = set(line.split(":", 1)[1].split())
            return next((name for flag, name in _SIMD if flag in flags), "")
    return ""


HUGETLB = "glibc.malloc.hugetlb=1"


def with_hugetlb(tunables: str) -> str:
    """`GLIBC_TUNABLES` with malloc's transparent-huge-page mode on, other settings kept.

    glibc (>= 2.35) then advises the kernel to back each large `malloc` block with
    2 MB pages (`madvise(MADV_HUGEPAGE)`), which matters where
    `/sys/kernel/mm/transparent_hugepage/enabled` is `madvise` (the default on
    Debian and Ubuntu): XLA:CPU allocates one temporary buffer per call (170 MB for
    ResNet-20's step), mapped afresh and faulted in 4 KB at a time every step.
    """
    kept = [t for t in tunables.split(":") if t and not t.startswith("glibc.malloc.hugetlb=")]
    return ":".join([*kept, HUGETLB])


def subprocess_env(hugepages: bool = False, precision: str = "float32") -> dict:
    env = dict(os.environ)
    env["BENCH_PRECISION"] = precision
    env.pop("BENCH_LARGE_ON_CPU", None)
    if hugepages:
        env["GLIBC_TUNABLES"] = with_hugetlb(env.get("GLIBC_TUNABLES", ""))
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run_json(cmd: list[str], timeout: float, env: dict) -> tuple[list[dict], str | None]:
    """Run `cmd` in `env`; return (JSON lines it printed, error text or None)."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return [], f"timed out after {timeout:.0f} s"
    lines = []
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no stderr)"])[-1]
        return lines, f"exit code {proc.returncode}: {tail}"
    return lines, None


def bench_once(fw: Framework, workload: str, args, env: dict) -> dict:
    cmd = [sys.executable, "-m", f"benchmarks.frameworks.{fw.module}", "--workload", workload,
           "--json"]
    if fw.variant:
        cmd += ["--variant", fw.variant]
    if args.smoke:
        cmd.append("--tiny")
    steps = args.steps
    if steps is None and args.quick:
        steps = max(5, workloads.get(workload).steps // 3)
    if steps is not None:
        cmd += ["--steps", str(steps)]
    if args.warmup is not None:
        cmd += ["--warmup", str(args.warmup)]
    before = load()
    t0 = time.perf_counter()
    lines, err = run_json(cmd, args.timeout, env)
    record = {"framework": fw.name, "workload": workload, "load_before": before,
              "load_after": load(), "wall_s": round(time.perf_counter() - t0, 2)}
    if err or not lines:
        record["error"] = err or "printed no JSON line"
        return record
    line = lines[-1]
    line["framework"] = fw.name
    record.update(line)
    return record


def matmul_once(args, env: dict) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.matmul_peak", "--json",
           "--repeats", "3" if args.smoke else "10"]
    if args.smoke:
        cmd += ["--n", "256"]
    if args.precision != "float32":
        cmd += ["--dtype", "bfloat16"]
    lines, err = run_json(cmd, args.timeout, env)
    if err or not lines:
        return {"error": err or "printed no JSON line", "load": load()}
    return {**lines[-1], "load": load()}


# ---------------------------------------------------------------------------
# aggregation


def _median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def _significant(x: float, digits: int = 4) -> float:
    """`x` to `digits` significant figures (tiny GPU fractions of a peak must not round to 0)."""
    return float(f"{x:.{digits}g}")


def aggregate(runs: list[dict], names: list[str], fws: list[str], peak: float | None,
              tiny: bool) -> dict:
    """Per workload and framework: medians over repeats, GFLOP/s, ratios to fnn."""
    out = {}
    for wname in names:
        w = workloads.get(wname, tiny=tiny)
        ok = [r for r in runs if r["workload"] == wname and "error" not in r]
        if ok and ok[0].get("batch", w.batch) != w.batch:   # --size large on a CPU
            w = dataclasses.replace(w, batch=ok[0]["batch"])
        flops = workloads.flops_per_step(w)
        macs = workloads.macs_per_example(w)
        rows = {}
        fnn_by_repeat = {r["repeat"]: r["ms_per_step"]["median"] for r in ok
                         if r["framework"] == "fnn"}
        fnn_min = min((r["ms_per_step"]["min"] for r in ok if r["framework"] == "fnn"),
                      default=None)
        for fname in fws:
            mine = [r for r in ok if r["framework"] == fname]
            errors = [r["error"] for r in runs if r["workload"] == wname
                      and r["framework"] == fname and "error" in r]
            if not mine:
                if errors:
                    rows[fname] = {"error": errors[-1]}
                continue
            med = _median([r["ms_per_step"]["median"] for r in mine])
            ratios = [r["ms_per_step"]["median"] / fnn_by_repeat[r["repeat"]] for r in mine
                      if r["repeat"] in fnn_by_repeat]
            gflops = flops / (med / 1e3) / 1e9
            rows[fname] = {
                "repeats": len(mine),
                "ms_per_step": round(med, 4),
                "ms_p10": round(_median([r["ms_per_step"]["p10"] for r in mine]), 4),
                "ms_p90": round(_median([r["ms_per_step"]["p90"] for r in mine]), 4),
                "ms_min": round(min(r["ms_per_step"]["min"] for r in mine), 4),
                "ms_best_repeat": round(min(r["ms_per_step"]["median"] for r in mine), 4),
                "ms_worst_repeat": round(max(r["ms_per_step"]["median"] for r in mine), 4),
                "compile_s": round(_median([r["compile_s"] for r in mine]), 3),
                "examples_per_s": round(w.batch / (med / 1e3), 1),
                "page_faults_per_step": _median([r.get("page_faults_per_step") for r in mine]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "peak_device_mb": max((r.get("peak_device_mb") or 0 for r in mine),
                                      default=0) or None,
                "gflops": _significant(gflops),
                "fraction_of_peak": _significant(gflops / peak) if peak else None,
                "ratio_to_fnn": round(_median(ratios), 4) if ratios else None,
                "ratios_to_fnn": [round(x, 4) for x in ratios],
                "ratio_to_fnn_min": (round(min(r["ms_per_step"]["min"] for r in mine) / fnn_min, 4)
                                     if fnn_min else None),
                "load_during": [r["load_before"][0] for r in mine],
                "last_loss": mine[-1].get("last_loss"),
            }
            if errors:
                rows[fname]["errors"] = errors
        out[wname] = {"title": w.title, "batch": w.batch, "input_shape": list(w.input_shape),
                      "macs_per_example": macs, "flops_per_step": flops, "frameworks": rows}
    return out


def targets(table: dict, peak: float | None) -> list[str]:
    """The issue-7 targets, checked on the aggregated table (one line each)."""
    lines = []
    floors = {"mlp": 0.80, "lstm": 0.40, "lenet5": 0.40, "resnet20": 0.50}
    for wname, entry in table.items():
        rows = entry["frameworks"]
        fnn = rows.get("fnn")
        if not fnn or "error" in fnn:
            continue
        jax_peers = {k: v for k, v in rows.items() if "error" not in v and k in (
            "rawjax", "flax_linen", "equinox", "haiku")}
        if jax_peers:
            best = min(jax_peers, key=lambda k: jax_peers[k]["ms_per_step"])
            r, rmin = jax_peers[best]["ratio_to_fnn"], jax_peers[best].get("ratio_to_fnn_min")
            lines.append(f"{wname}: fnn vs fastest JAX peer ({best}): {r:.2f}x "
                         f"(fastest steps: {rmin or float('nan'):.2f}x) "
                         f"{'MET' if r >= 1.0 else 'not met'} (target >= 1.0)")
        for peer in ("torch", "torch_channels_last"):
            if peer in rows and "error" not in rows[peer]:
                r, rmin = rows[peer]["ratio_to_fnn"], rows[peer].get("ratio_to_fnn_min")
                lines.append(f"{wname}: fnn vs {peer}: {r:.2f}x "
                             f"(fastest steps: {rmin or float('nan'):.2f}x) "
                             f"{'MET' if r >= 1.0 else 'not met'} (target >= 1.0)")
        if "rawjax" in rows and "error" not in rows["rawjax"]:
            overhead = 1.0 / rows["rawjax"]["ratio_to_fnn"] - 1.0
            rmin = rows["rawjax"].get("ratio_to_fnn_min")
            over_min = 1.0 / rmin - 1.0 if rmin else float("nan")
            lines.append(f"{wname}: fnn step vs raw JAX: {100 * overhead:+.1f}% "
                         f"(fastest steps: {100 * over_min:+.1f}%) "
                         f"{'MET' if overhead <= 0.05 else 'not met'} (target <= +5%)")
        if peak and wname in floors:
            frac = fnn["fraction_of_peak"]
            lines.append(f"{wname}: fnn at {100 * frac:.3g}% of the matmul peak "
                         f"{'MET' if frac >= floors[wname] else 'not met'} "
                         f"(target >= {100 * floors[wname]:.0f}%)")
    return lines


# ---------------------------------------------------------------------------
# output


def peak_label(matmuls: list[dict]) -> str:
    """What the matmul peak was measured on, e.g. 'float32 8192², gpu:NVIDIA H100 80GB HBM3'."""
    done = [m for m in matmuls if "peak_gflops" in m]
    if not done:
        return "float32"
    n, device = done[0].get("n", 2048), done[0].get("device")
    return f"{done[0].get('dtype', 'float32')} {n}²" + (f", {device}" if device else "")


def _memory(row: dict) -> str:
    """Peak RSS, and the device's peak after a slash when there is one (MB)."""
    dev = row.get("peak_device_mb")
    return f"{row['peak_rss_mb']:.0f}" + (f" / {dev:.0f}" if dev else "")


def format_table(table: dict, peak: float | None, loads: list, label: str = "float32") -> str:
    head = ("workload", "framework", "ms/step", "p10-p90", "min", "compile s", "ex/s",
            "RSS (/dev) MB",
            "GFLOP/s", "% peak", "peer/fnn", "(min)")
    body = []
    for wname, entry in table.items():
        for fname, row in entry["frameworks"].items():
            if "error" in row:
                body.append((wname, fname, "error", row["error"][:60], *[""] * 8))
                continue
            frac = row["fraction_of_peak"]
            ratio, ratio_min = row["ratio_to_fnn"], row.get("ratio_to_fnn_min")
            body.append((
                wname, fname, f"{row['ms_per_step']:.2f}",
                f"{row['ms_p10']:.2f}-{row['ms_p90']:.2f}", f"{row['ms_min']:.2f}",
                f"{row['compile_s']:.2f}",
                f"{row['examples_per_s']:,.0f}", _memory(row),
                f"{row['gflops']:.1f}", "" if frac is None else f"{100 * frac:.3g}",
                "" if ratio is None else f"{ratio:.2f}",
                "" if ratio_min is None else f"{ratio_min:.2f}"))
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(len(head))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths, strict=True)))
    rule = "-" * len(fmt(head))
    lo = min(x[0] for x in loads) if loads else float("nan")
    hi = max(x[0] for x in loads) if loads else float("nan")
    lines = [f"matmul peak ({label}, best of the run): "
             f"{peak:.1f} GFLOP/s" if peak else "matmul peak: not measured",
             f"1-minute load average during the run: {lo:.2f} to {hi:.2f} "
             f"on {os.cpu_count()} cores ({cpu_model()}, {cpu_simd() or 'vector unit unknown'})",
             rule, fmt(head), rule]
    last = None
    for r in body:
        if last is not None and r[0] != last:
            lines.append("")
        lines.append(fmt(r))
        last = r[0]
    lines.append(rule)
    lines.append("peer/fnn = peer's time per step / fnn's (median of per-repeat ratios of "
                 "medians); (min) = the same for the fastest single step of all repeats, the "
                 "estimate least disturbed by other load. > 1 means fnn is faster.")
    return "\n".join(lines)


def format_markdown(table: dict, peak: float | None, label: str = "float32") -> str:
    """The table as Markdown (for benchmarks/RESULTS.md)."""
    lines = ["| workload | framework | ms/step (median) | p10–p90 | min | compile s | examples/s "
             "| peak RSS (/ device) MB | GFLOP/s | % of matmul peak | peer/fnn | peer/fnn (min) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for wname, entry in table.items():
        for fname, row in entry["frameworks"].items():
            if "error" in row:
                lines.append(f"| {wname} | {fname} | – | {row['error'][:50]} |" + " |" * 8)
                continue
            frac, ratio = row["fraction_of_peak"], row["ratio_to_fnn"]
            rmin = row.get("ratio_to_fnn_min")
            lines.append(
                f"| {wname} | {fname} | {row['ms_per_step']:.2f} | {row['ms_p10']:.2f}–"
                f"{row['ms_p90']:.2f} | {row['ms_min']:.2f} | {row['compile_s']:.2f} | "
                f"{row['examples_per_s']:,.0f} | {_memory(row)} | {row['gflops']:.1f} | "
                f"{'' if frac is None else f'{100 * frac:.3g}'} | "
                f"{'' if ratio is None else f'{ratio:.2f}'} | "
                f"{'' if rmin is None else f'{rmin:.2f}'} |")
    if peak:
        lines.append(f"\nMatmul peak ({label}, best of the run): {peak:.1f} GFLOP/s.")
    return "\n".join(lines)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.run",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(workloads.DEFAULT),
                   help=f"comma-separated, from {','.join(workloads.names())}")
    p.add_argument("--frameworks", default=",".join(DEFAULT_FRAMEWORKS),
                   help=f"comma-separated, from {','.join(FRAMEWORKS)}")
    p.add_argument("--repeats", type=int, default=None, help="default 3 (--quick: 2)")
    p.add_argument("--quick", action="store_true", help="a third of the steps, 2 repeats")
    p.add_argument("--smoke", action="store_true",
                   help="tiny shapes, 2 steps, 1 repeat (what the test suite runs)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per process")
    p.add_argument("--out", default=None,
                   help="JSON path (default benchmarks/results/run.json; --quick: "
                        "run_quick.json; --smoke: run_smoke.json)")
    p.add_argument("--no-matmul", action="store_true", help="skip the matmul peak")
    p.add_argument("--hugepages", action="store_true",
                   help="run every process with glibc.malloc.hugetlb=1 in GLIBC_TUNABLES "
                        "(transparent huge pages for large allocations; Linux, glibc >= 2.35)")
    p.add_argument("--precision", choices=("float32", "mixed_bfloat16"), default="float32",
                   help="mixed_bfloat16: every framework in its own mixed precision (fnn's "
                        "policy, torch.autocast, jmp-style casts for the JAX peers), fnn in "
                        "float32 beside them (fnn_float32), the matmul peak in bfloat16")
    p.add_argument("--size", choices=("default", "large"), default="default",
                   help=f"large: {', '.join(workloads.LARGE)} with {', '.join(LARGE_FRAMEWORKS)}"
                        " (on a CPU: a few steps, a smoke test)")
    p.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    p.add_argument("--from-json", default=None,
                   help="re-print the table (and --markdown) of an earlier --out file; "
                        "runs nothing")
    args = p.parse_args(argv)
    if args.size == "large":
        given = argv if argv is not None else sys.argv[1:]
        if not any(a.startswith("--workloads") for a in given):
            args.workloads = ",".join(workloads.LARGE)
        if not any(a.startswith("--frameworks") for a in given):
            args.frameworks = ",".join(LARGE_FRAMEWORKS)
    if args.precision != "float32" and "fnn_float32" not in args.frameworks.split(","):
        args.frameworks += ",fnn_float32"
    if args.repeats is None:
        args.repeats = 1 if args.smoke else (2 if args.quick else 3)
    if args.out is None:
        name = "run_smoke.json" if args.smoke else "run_quick.json" if args.quick else "run.json"
        args.out = os.path.join(HERE, "results", name)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    child_env = subprocess_env(args.hugepages, args.precision)  # every process this run starts
    if args.size == "large" and _on_cpu():
        child_env["BENCH_LARGE_ON_CPU"] = "1"   # a small batch: the smoke test
    if args.from_json:
        with open(args.from_json) as f:
            result = json.load(f)
        peak = result["matmul_peak_gflops"]
        names = list(result["workloads"])
        fws = list(dict.fromkeys(r["framework"] for r in result["runs"]))
        table = aggregate(result["runs"], names, fws, peak, result["settings"]["smoke"])
        result["workloads"], result["targets"] = table, targets(table, peak)
        label = peak_label(result.get("matmul", []))
        print(format_table(table, peak, [r["load_before"] for r in result["runs"]], label))
        print("\n".join("  " + c for c in result["targets"]))
        if args.markdown:
            with open(args.markdown, "w") as f:
                f.write(format_markdown(table, peak, label) + "\n")
        return result
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    for n in names:
        workloads.get(n)                                 # unknown names fail here
    fws = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    unknown = [f for f in fws if f not in FRAMEWORKS]
    if unknown:
        raise SystemExit(f"unknown framework(s) {unknown}; expected some of {list(FRAMEWORKS)}")
    if "fnn" not in fws:
        fws.insert(0, "fnn")                             # the reference of every ratio
    skipped = {}
    for f in fws:
        missing = missing_modules(FRAMEWORKS[f])
        if missing:
            skipped[f] = f"not installed: {', '.join(missing)} (pip install -e '.[bench]')"
    active = [f for f in fws if f not in skipped]
    print(f"benchmarks.run: workloads {names}, frameworks {active}, {args.repeats} repeat(s)"
          + (f"; skipped {skipped}" if skipped else ""), flush=True)

    runs, matmuls, loads = [], [], []
    for repeat in range(args.repeats):
        if not args.no_matmul:
            mm = matmul_once(args, child_env)
            mm["repeat"] = repeat
            matmuls.append(mm)
            print(f"[repeat {repeat + 1}/{args.repeats}] matmul peak "
                  f"{mm.get('peak_gflops', 'n/a')} GFLOP/s, load {mm['load'][0]}", flush=True)
        for wname in names:
            eligible = [f for f in active
                        if FRAMEWORKS[f].only is None or wname in FRAMEWORKS[f].only]
            shift = repeat % len(eligible)
            order = eligible[shift:] + eligible[:shift]  # rotate the order every repeat
            for fname in order:
                record = bench_once(FRAMEWORKS[fname], wname, args, child_env)
                record["repeat"] = repeat
                runs.append(record)
                loads.append(record["load_before"])
                if "error" in record:
                    msg = f"ERROR {record['error']}"
                else:
                    ms = record["ms_per_step"]
                    msg = (f"{ms['median']:.3f} ms/step (p10 {ms['p10']:.3f}, p90 {ms['p90']:.3f}),"
                           f" compile {record['compile_s']:.2f} s,"
                           f" {record.get('page_faults_per_step', 0):,.0f} page faults/step")
                print(f"[repeat {repeat + 1}/{args.repeats}] {wname:>9} {fname:>20}: {msg}  "
                      f"(load {record['load_before'][0]})", flush=True)

    peaks = [m["peak_gflops"] for m in matmuls if "peak_gflops" in m]
    peak = max(peaks) if peaks else None
    table = aggregate(runs, names, [f for f in fws if f not in skipped], peak, args.smoke)
    for f, why in skipped.items():
        for wname in names:
            table[wname]["frameworks"][f] = {"error": f"skipped: {why}"}
    checks = [] if args.smoke else targets(table, peak)
    print()
    label = peak_label(matmuls)
    print(format_table(table, peak, loads, label))
    if checks:
        print("\nissue 7 targets:")
        print("\n".join("  " + c for c in checks))

    result = {
        "benchmark": "training_step",
        "command": " ".join([os.path.basename(sys.executable), "-m", "benchmarks.run",
                             *(sys.argv[1:] if argv is None else argv)]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpu": cpu_model(), "simd": cpu_simd(), "cpu_count": os.cpu_count(),
                    "precision_flags": cpu_flags(),
                    "devices": sorted({r["versions"]["device"] for r in runs
                                       if "device" in r.get("versions", {})}),
                    "platform": platform.platform(), "python": platform.python_version()},
        "settings": {"threads": os.environ.get("BENCH_THREADS") or os.cpu_count(),
                     "xla_flags": os.environ.get("XLA_FLAGS", ""),
                     "glibc_tunables": child_env.get("GLIBC_TUNABLES", ""),
                     "repeats": args.repeats, "smoke": args.smoke, "quick": args.quick,
                     "precision": args.precision, "size": args.size},
        "flops_convention": "6 x forward MACs per example (fnn.summary) x batch: 2 FLOPs per "
                            "MAC, backward = 2 x forward; bias, activations, normalisation, "
                            "pooling and the optimizer not counted",
        "matmul_peak_gflops": peak,
        "matmul": matmuls,
        "load_range": [min(x[0] for x in loads), max(x[0] for x in loads)] if loads else None,
        "skipped": skipped,
        "workloads": table,
        "targets": checks,
        "runs": runs,
    }
    write_json(args.out, result)
    print(f"\nwrote {args.out}")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(format_markdown(table, peak, label) + "\n")
        print(f"wrote {args.markdown}")
    return result


if __name__ == "__main__":
    main()
