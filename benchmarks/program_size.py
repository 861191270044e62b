"""How big each framework's training step is: jaxpr equations and compiled kernels.

    python -m benchmarks.program_size                       # 4 workloads x the JAX frameworks
    python -m benchmarks.program_size --workloads mlp --frameworks fnn,fnn_manual,rawjax

When a step is launch-bound (small models on a GPU, see RESULTS.md item 6), its
time follows the number of kernels it launches, not its FLOPs. For every
(workload, JAX framework) this builds the benchmark step (`benchmarks.frameworks`),
compiles it for the default device and counts:

- `jaxpr_eqns`: equations of the traced step, nested jaxprs included (what the
  framework asks XLA to compute; the same on every backend);
- `kernels`: instructions of the compiled entry computation that do work
  (fusions, library calls, loops, ...; not parameters, tuples, constants or
  bitcasts), with the opcodes counted in `by_opcode`. On a GPU each is about
  one kernel launch (XLA may still group them into CUDA graphs);
- `loops`: `while` instructions among them.

The program counted is the benchmark step under `jax.jit` (state donated) on one fixed
batch: on a GPU exactly what runs; on CPU fnn's own programs would add
`fnn.compiler`'s options. Nothing is timed. Prints a table, writes JSON (and, with
`--hlo DIR`, each optimised module's text). `benchmarks.ab` times the same steps.
"""
from __future__ import annotations

import argparse
import collections
import os
import re

from benchmarks import workloads
from benchmarks._report import jax_device, write_json
from benchmarks.run import FRAMEWORKS, build_in_process, missing_modules

HERE = os.path.dirname(os.path.abspath(__file__))
JAX_FRAMEWORKS = ("fnn", "fnn_manual", "rawjax", "flax_linen", "equinox", "haiku")
TRIVIAL = {"parameter", "get-tuple-element", "tuple", "constant", "bitcast", "copy-start",
           "copy-done", "opt-barrier"}


def count_eqns(jaxpr) -> int:
    """Equations of a jaxpr, those of nested jaxprs (jit, scan, cond, custom rules) included."""
    from fnn._jaxpr import sub_jaxprs  # the nested jaxprs of an equation's params

    return sum(1 + sum(count_eqns(j) for v in eqn.params.values() for j in sub_jaxprs(v))
               for eqn in jaxpr.eqns)


def entry_opcodes(hlo: str) -> collections.Counter:
    """Opcodes of the non-trivial instructions of a compiled module's ENTRY computation."""
    entry = hlo[hlo.index("\nENTRY"):]
    entry = entry[:entry.index("\n}")]
    ops = collections.Counter()
    for line in entry.splitlines()[1:]:
        if " = " not in line:
            continue
        rest = line.split(" = ", 1)[1]
        if rest.startswith("("):                 # a tuple type: skip to its closing paren
            depth = 0
            for i, ch in enumerate(rest):
                depth += {"(": 1, ")": -1}.get(ch, 0)
                if depth == 0:
                    rest = rest[i + 1:]
                    break
        else:
            rest = rest.split(" ", 1)[1]
        match = re.match(r"\s*([a-z][\w\-]*)\(", rest)
        if match and match.group(1) not in TRIVIAL:
            ops[match.group(1)] += 1
    return ops


def measure(framework: str, workload: workloads.Workload, hlo_dir: str | None = None) -> dict:
    import jax

    bench = build_in_process(framework, workload)
    # Array leaves are the program's inputs; anything else (Equinox keeps functions in
    # its model pytree) is closed over, as `eqx.filter_jit` does.
    leaves, treedef = jax.tree.flatten(bench.state)
    arrays = [isinstance(leaf, jax.Array) for leaf in leaves]

    def step_on_arrays(inputs):
        given = iter(inputs)
        full = [next(given) if a else leaf for leaf, a in zip(leaves, arrays, strict=True)]
        out = bench.step(jax.tree.unflatten(treedef, full))
        return [leaf for leaf in jax.tree.leaves(out) if isinstance(leaf, jax.Array)]

    inputs = [leaf for leaf, a in zip(leaves, arrays, strict=True) if a]
    step = jax.jit(step_on_arrays, donate_argnums=0)   # as every benchmark step is
    jaxpr = step.trace(inputs).jaxpr.jaxpr
    hlo = step.lower(inputs).compile().as_text()
    if hlo_dir:
        os.makedirs(hlo_dir, exist_ok=True)
        with open(os.path.join(hlo_dir, f"{workload.name}_{framework}.hlo.txt"), "w") as fh:
            fh.write(hlo)
    ops = entry_opcodes(hlo)
    return {"jaxpr_eqns": count_eqns(jaxpr), "kernels": sum(ops.values()),
            "loops": ops.get("while", 0), "by_opcode": dict(ops.most_common())}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.program_size",
                                description=__doc__.splitlines()[0])
    p.add_argument("--workloads", default=",".join(workloads.DEFAULT))
    p.add_argument("--frameworks", default=",".join(JAX_FRAMEWORKS))
    p.add_argument("--tiny", action="store_true", help="the smoke-test shapes")
    p.add_argument("--out", default=os.path.join(HERE, "results", "program_size.json"))
    p.add_argument("--hlo", metavar="DIR", help="also write each compiled module's text here "
                   "(<workload>_<framework>.hlo.txt), to diff two frameworks' programs")
    args = p.parse_args(argv)
    import jax

    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    fws = [f.strip() for f in args.frameworks.split(",") if f.strip()]
    bad = [f for f in fws if f not in FRAMEWORKS or not FRAMEWORKS[f].jax]
    if bad:
        raise SystemExit(f"not JAX frameworks of benchmarks.run: {bad}")
    device = jax_device()
    rows = {}
    for name in names:
        w = workloads.get(name, tiny=args.tiny)
        for f in fws:
            missing = missing_modules(FRAMEWORKS[f])
            rows[f"{name}/{f}"] = ({"skipped": f"not installed: {', '.join(missing)}"}
                                   if missing else measure(f, w, args.hlo))
    print(f"training-step program size on {device}")
    print(f"{'workload/framework':28s} {'jaxpr eqns':>10s} {'kernels':>8s} {'loops':>6s}  "
          "top opcodes")
    for key, row in rows.items():
        if "skipped" in row:
            print(f"{key:28s} {row['skipped']}")
            continue
        top = ", ".join(f"{k} {v}" for k, v in list(row["by_opcode"].items())[:4])
        print(f"{key:28s} {row['jaxpr_eqns']:10d} {row['kernels']:8d} {row['loops']:6d}  {top}")
    result = {"device": device, "jax": jax.__version__, "tiny": args.tiny, "steps": rows}
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
