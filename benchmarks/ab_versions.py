"""Two versions of fnn in one process, alternating: does a change make the training step slower?

    cp -r OLD_CHECKOUT/fnn /tmp/old/fnn_old
    sed -i -E 's/\\bfrom fnn(\\.| )/from fnn_old\\1/g;
               s/\\bimport fnn\\b/import fnn_old as fnn/g' $(grep -rl fnn /tmp/old/fnn_old)
    FNN_OLD_PATH=/tmp/old python -m benchmarks.ab_versions mlp,lenet5,lstm 200

The old tree is imported as the package `fnn_old` (its imports rewritten as above), the
working tree as `fnn`. For each workload (benchmarks/workloads.py) both build
`make_train_step(model, softmax_cross_entropy, adam(1e-3))`, run 5 warm-up steps, then
`rounds` rounds of one synchronised step each, the order reversed every other round, so
slow phases of the machine hit both alike. Prints the median ms per step of each and
`new/old`, then the whole result as JSON.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time

import jax

from benchmarks import workloads


def _build(lib, w: workloads.Workload):
    if w.name == "mlp":
        model = lib.models.mlp(list(w.config["features"]))
    elif w.name == "lenet5":
        model = lib.models.lenet5(10)
    elif w.name == "resnet20":
        model = lib.models.resnet(w.config["depth"], 10)
    else:
        model = lib.models.lstm_classifier(w.config["hidden"], 10)
    opt = lib.optim.adam(1e-3)
    ts = lib.train.init_train_state(model, opt, jax.random.key(0), w.input_shape)
    return lib.train.make_train_step(model, lib.losses.softmax_cross_entropy, opt), ts


def compare(libs: dict, names: list[str], rounds: int) -> dict:
    out = {}
    for name in names:
        w = workloads.get(name)
        x, y = map(jax.device_put, workloads.synthetic_batch(w))
        runs = {k: list(_build(lib, w)) for k, lib in libs.items()}
        times: dict[str, list[float]] = {k: [] for k in runs}
        for run in runs.values():
            for _ in range(5):
                run[1], m = run[0](run[1], x, y)
            jax.block_until_ready(m["loss"])
        order = list(runs)
        for r in range(rounds):
            for k in order if r % 2 == 0 else order[::-1]:
                step, ts = runs[k]
                start = time.perf_counter()
                ts, m = step(ts, x, y)
                jax.block_until_ready(m["loss"])
                times[k].append(time.perf_counter() - start)
                runs[k][1] = ts
        med = {k: 1e3 * statistics.median(v) for k, v in times.items()}
        out[name] = {**med, "new/old": med["new"] / med["old"]}
        print(name, {k: round(v, 4) for k, v in out[name].items()}, flush=True)
    return out


def main() -> None:
    sys.path.insert(0, os.environ["FNN_OLD_PATH"])
    import fnn_old

    import fnn

    names = sys.argv[1].split(",") if len(sys.argv) > 1 else ["mlp", "lenet5", "lstm"]
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    print(json.dumps(compare({"old": fnn_old, "new": fnn}, names, rounds)))


if __name__ == "__main__":
    main()
