"""Determinism on CPU: the same seed gives bit-identical results in separate processes.

Two fresh Python processes train the same two small models (an MLP with
Dropout, and a CNN with BatchNorm, MaxPool and Dropout) for two epochs of four
steps with `fnn.train.fit`. Everything random (init, dropout masks, shuffling)
comes from the seed; the data are fixed. Process A trains with seeds 0 and 1,
process B with seed 0: A's and B's seed-0 params, model state, run key and
loss history must be equal bit for bit, and seed 1 must differ from seed 0.
(On GPU this is not guaranteed; see the README's "Determinism" section.)
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import numpy as np

from fnn import checkpoint

WORKER = textwrap.dedent('''
    import sys

    import jax
    import numpy as np

    import fnn
    from fnn import checkpoint, losses, optim, train
    from fnn import layers as L


    # built once, so a second seed reuses every compiled program
    MODELS = {
        "mlp": (fnn.serial(L.Dense(16), fnn.relu, L.Dropout(0.3), L.Dense(3)), (5,)),
        "cnn": (fnn.serial(L.Conv2D(4, 3), L.BatchNorm(), fnn.relu, L.MaxPool(2), L.Flatten(),
                           L.Dropout(0.25), L.Dense(3)), (8, 8, 1)),
    }
    ADAM = optim.adam(1e-2)


    def run(seed):
        rng = np.random.default_rng(1234)  # fixed data: only the seed may change the results
        out = {}
        for name, (model, shape) in MODELS.items():
            x = rng.normal(size=(64, *shape)).astype(np.float32)
            y = rng.integers(0, 3, 64).astype(np.int32)
            ts, history = train.fit(model, ADAM, losses.softmax_cross_entropy, (x, y),
                                    epochs=2, batch_size=16, key=jax.random.key(seed),
                                    progress=False)
            out[name + "_fit"] = {"params": ts.params, "state": ts.model_state, "key": ts.key,
                                  "loss": np.asarray(history["loss"])}
        return out


    path, *seeds = sys.argv[1:]
    checkpoint.save(path, {f"seed{s}": run(int(s)) for s in seeds})
''')


def _leaves(tree) -> dict[str, np.ndarray]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in flat}


def test_same_seed_is_bit_identical_across_processes_and_seeds_differ(tmp_path):
    paths = [tmp_path / "a.npz", tmp_path / "b.npz"]
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(paths[0]), "0", "1"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True),
             subprocess.Popen([sys.executable, "-c", WORKER, str(paths[1]), "0"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
    a, b = (checkpoint.load(p) for p in paths)

    same_a, same_b = _leaves(a["seed0"]), _leaves(b["seed0"])
    assert same_a.keys() == same_b.keys()
    assert len(same_a) > 10  # params, BatchNorm state, run keys and losses of 2 runs
    for k in same_a:
        assert same_a[k].dtype == same_b[k].dtype, k
        assert same_a[k].tobytes() == same_b[k].tobytes(), f"seed 0 differs between runs at {k}"

    other = _leaves(a["seed1"])
    for run in ("mlp_fit", "cnn_fit"):
        keys = [k for k in same_a if k.startswith(f"['{run}']['params']")]
        assert keys
        assert any(not np.array_equal(same_a[k], other[k]) for k in keys), (
            f"{run}: seeds 0 and 1 gave the same params")
        loss = f"['{run}']['loss']"
        assert not np.array_equal(same_a[loss], other[loss]), f"{run}: same loss curve"
