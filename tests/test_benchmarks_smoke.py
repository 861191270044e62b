"""Smoke test of the benchmark suite (`python -m benchmarks.run --smoke`).

Tiny shapes, 2 timed steps: this checks that every framework file builds and
trains every workload and that the JSON report has its fields, never how fast
anything is (timings belong in benchmarks/, not in tests). fnn and raw JAX
always run; a peer library that is not installed is skipped with the reason.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FIELDS = {"benchmark", "command", "date", "machine", "settings", "flops_convention",
              "matmul_peak_gflops", "matmul", "load_range", "skipped", "workloads", "runs"}
ROW_FIELDS = {"ms_per_step", "ms_p10", "ms_p90", "compile_s", "examples_per_s", "peak_rss_mb",
              "page_faults_per_step", "gflops", "fraction_of_peak", "ratio_to_fnn", "repeats"}
LINE_FIELDS = {"framework", "workload", "batch", "compile_s", "ms_per_step", "examples_per_s",
               "peak_rss_mb", "page_faults_per_step", "steps", "versions", "threads",
               "glibc_tunables"}


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("BENCH_THREADS", "1")
    return env


def _run(args, timeout=600):
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout


def _check_line(line: dict, framework: str, workload: str):
    assert LINE_FIELDS <= set(line), sorted(LINE_FIELDS - set(line))
    assert line["framework"] == framework and line["workload"] == workload
    assert line["tiny"] is True and line["steps"] == 2
    ms = line["ms_per_step"]
    assert {"median", "p10", "p90"} <= set(ms)
    assert 0 < ms["p10"] <= ms["median"] <= ms["p90"]
    assert line["compile_s"] > 0 and line["examples_per_s"] > 0 and line["peak_rss_mb"] > 0
    assert line["page_faults_per_step"] >= 0
    assert line["last_loss"] == line["last_loss"]          # finite, not NaN


def test_run_smoke_writes_a_complete_report(tmp_path):
    """fnn and raw JAX on all four workloads, through `benchmarks.run` (one process each)."""
    out = tmp_path / "smoke.json"
    text = _run(["benchmarks.run", "--smoke", "--frameworks", "fnn,rawjax", "--out", str(out)])
    assert "peer/fnn" in text                              # the table was printed
    report = json.loads(out.read_text())
    assert RUN_FIELDS <= set(report), sorted(RUN_FIELDS - set(report))
    assert report["settings"]["smoke"] is True
    assert set(report["machine"]) >= {"cpu", "simd", "cpu_count", "platform", "python"}
    assert report["matmul_peak_gflops"] > 0
    assert set(report["workloads"]) == {"mlp", "lenet5", "lstm", "resnet20"}
    for name, entry in report["workloads"].items():
        assert entry["flops_per_step"] == 6 * entry["macs_per_example"] * entry["batch"] > 0
        for fw in ("fnn", "rawjax"):
            row = entry["frameworks"][fw]
            assert "error" not in row, (name, fw, row)
            assert ROW_FIELDS <= set(row), sorted(ROW_FIELDS - set(row))
            assert row["gflops"] > 0 and 0 < row["fraction_of_peak"]
        assert entry["frameworks"]["fnn"]["ratio_to_fnn"] == 1.0
    assert len(report["runs"]) == 8 and not any("error" in r for r in report["runs"])
    for r in report["runs"]:
        _check_line(r, r["framework"], r["workload"])
        assert r["glibc_tunables"] == report["settings"]["glibc_tunables"]


@pytest.mark.parametrize("framework, needs, extra", [
    ("flax_linen", ("flax", "optax"), []),
    ("equinox", ("equinox", "optax"), []),
    ("haiku", ("haiku", "optax"), []),
    ("torch", ("torch",), []),
    ("torch", ("torch",), ["--variant", "channels_last"]),
])
def test_peer_framework_smoke(framework, needs, extra):
    """Each peer file trains the four tiny workloads and prints one JSON line for each."""
    for module in needs:
        pytest.importorskip(module, reason=f"{module} is not installed (the bench extra)")
    text = _run([f"benchmarks.frameworks.{framework}_bench", "--tiny", "--json",
                 "--workload", "mlp,lenet5,lstm,resnet20", *extra])
    lines = [json.loads(s) for s in text.splitlines() if s.startswith("{")]
    label = framework + ("_channels_last" if extra else "")
    assert [ln["workload"] for ln in lines] == ["mlp", "lenet5", "lstm", "resnet20"]
    for line in lines:
        _check_line(line, label, line["workload"])


def test_flops_convention_and_unknown_names():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from benchmarks import workloads
    from benchmarks.run import main

    w = workloads.get("mlp")
    macs = 784 * 512 + 512 * 256 + 256 * 10
    assert workloads.macs_per_example(w) == macs
    assert workloads.flops_per_step(w) == 6 * macs * 128
    with pytest.raises(ValueError, match="unknown workload"):
        workloads.get("vgg")
    with pytest.raises(SystemExit, match="unknown framework"):
        main(["--smoke", "--frameworks", "fnn,mxnet", "--workloads", "mlp"])


def test_hugepages_adds_the_glibc_tunable_and_keeps_the_others(monkeypatch):
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from benchmarks.run import subprocess_env, with_hugetlb

    assert with_hugetlb("") == "glibc.malloc.hugetlb=1"
    assert (with_hugetlb("glibc.malloc.arena_max=1:glibc.malloc.hugetlb=0")
            == "glibc.malloc.arena_max=1:glibc.malloc.hugetlb=1")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0")
    assert subprocess_env()["GLIBC_TUNABLES"] == "glibc.malloc.mmap_max=0"
    assert (subprocess_env(hugepages=True)["GLIBC_TUNABLES"]
            == "glibc.malloc.mmap_max=0:glibc.malloc.hugetlb=1")
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.mmap_max=0"   # this process untouched


def test_cpu_simd_names_the_widest_vector_extension():
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    from benchmarks.run import cpu_model, cpu_simd

    zen4 = ("processor\t: 0\nmodel name\t: AMD EPYC\n"
            "flags\t\t: fpu sse2 avx fma avx2 avx512f avx512bw\n")
    assert cpu_model(zen4) == "AMD EPYC"
    assert cpu_simd(zen4) == "AVX-512"
    assert cpu_simd(zen4.replace(" avx512f avx512bw", "")) == "AVX2"
    assert cpu_simd("Features\t: fp asimd evtstrm aes\n") == "NEON"
    assert cpu_simd("Features\t: fp asimd sve\n") == "SVE"
    assert cpu_simd("flags\t\t: fpu vme\n") == ""
    assert cpu_simd("") == ""


def test_program_size_counts_kernels_and_loops(tmp_path):
    """`benchmarks.program_size` on tiny shapes: the LSTM step has its two scans (forward
    and backward) as `while` loops, the MLP none; every step compiles to some kernels.
    `rawjax_fnn_options` (jitted with compiler options) also traces inside another jit."""
    out = tmp_path / "size.json"
    frameworks = ("fnn", "rawjax", "rawjax_fnn_options")
    text = _run(["benchmarks.program_size", "--tiny", "--workloads", "mlp,lstm",
                 "--frameworks", ",".join(frameworks), "--out", str(out),
                 "--hlo", str(tmp_path / "hlo")])
    assert "jaxpr eqns" in text
    hlo = {p.name: p.read_text() for p in (tmp_path / "hlo").iterdir()}
    assert set(hlo) == {f"{w}_{f}.hlo.txt" for w in ("mlp", "lstm") for f in frameworks}
    assert all("\nENTRY" in text for text in hlo.values())
    steps = json.loads(out.read_text())["steps"]
    assert set(steps) == {f"{w}/{f}" for w in ("mlp", "lstm") for f in frameworks}
    for key, row in steps.items():
        assert row["jaxpr_eqns"] > 20 and row["kernels"] > 5, key
        assert row["kernels"] == sum(row["by_opcode"].values())
        assert row["loops"] == (2 if key.startswith("lstm") else 0), key


def test_ab_times_steps_in_one_process(tmp_path):
    """`benchmarks.ab` on tiny shapes: every step gets ordered percentiles, and the time
    to dispatch a call is part of the time to finish it (so its median is no larger)."""
    out = tmp_path / "ab.json"
    text = _run(["benchmarks.ab", "--tiny", "--workload", "mlp", "--frameworks",
                 "fnn,fnn_manual", "--rounds", "8", "--warmup", "1", "--out", str(out)])
    assert "alternating rounds" in text
    steps = json.loads(out.read_text())["steps"]
    assert set(steps) == {"fnn", "fnn_manual"}
    for row in steps.values():
        assert 0 < row["p10_ms"] <= row["median_ms"] <= row["p90_ms"]
        assert 0 < row["dispatch_ms"] <= row["median_ms"]
        assert row["compile_s"] > 0


@pytest.mark.parametrize("frameworks", ["fnn,torch", "fnn,fnn_laxconv", "fnn,nope"])
def test_ab_refuses_what_cannot_share_a_process(frameworks):
    from benchmarks.ab import main

    with pytest.raises(SystemExit, match="cannot run in one process"):
        main(["--frameworks", frameworks, "--rounds", "1"])


def test_dp_sgd_benchmark_compares_equal_steps(tmp_path):
    """`benchmarks.dp_sgd --tiny`: fnn's DP-SGD step and stax's give the same params after a
    noiseless step, and every variant is timed with its ratio to stax."""
    out = tmp_path / "dp.json"
    text = _run(["benchmarks.dp_sgd", "--tiny", "--rounds", "2", "--warmup", "1",
                 "--out", str(out)])
    assert "fnn+chosen" in text
    result = json.loads(out.read_text())
    assert result["max_param_diff_fnn_vs_stax"] < 1e-5
    assert set(result["rows"]) == {"fnn", "fnn+options", "fnn+chosen", "stax"}
    assert result["rows"]["stax"]["vs_stax"] == 1.0


@pytest.mark.parametrize("framework, needs", [
    ("fnn", ()), ("rawjax", ()), ("flax_linen", ("flax", "optax")),
    ("equinox", ("equinox", "optax")), ("haiku", ("haiku", "optax")), ("torch", ("torch",)),
])
def test_transformer_workload_smoke(framework, needs):
    """The transformer workload (not a default one) trains, tiny, in every framework file."""
    for module in needs:
        pytest.importorskip(module, reason=f"{module} is not installed (the bench extra)")
    text = _run([f"benchmarks.frameworks.{framework}_bench", "--tiny", "--json",
                 "--workload", "transformer"])
    lines = [json.loads(s) for s in text.splitlines() if s.startswith("{")]
    assert [ln["workload"] for ln in lines] == ["transformer"]
    _check_line(lines[0], framework, "transformer")
