"""Exact resume with streamed data: a run killed with SIGKILL mid-epoch and resumed from
its mid-epoch checkpoint (`checkpoint(..., every_steps=5)`) ends with params and
history bit-identical to an uninterrupted run's.

Each case runs this file as a script in a subprocess that SIGKILLs itself just before
its 17th step (`tests/_crash_harness.py`, point `step`: epoch 2, step 5, two steps after
the checkpoint at step 15); the test's own process then resumes the run from that
folder with a new `fit` call (new data iterators, state from disk only) and compares it
with the same `fit` run uninterrupted in another folder. Sources:

- `grain`: `fnn.sources.loader` on grain (per-epoch iterators with `get_state`);
- `stream`: one grain iterator for the whole run (`repeat`, `steps_per_epoch`), its
  state saved at every checkpoint;
- `stateless`: a callable returning per-epoch lists (no `get_state`): the epoch
  restarts and skips the batches already trained on, with a warning.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np

N, BS, EPOCHS, EVERY = 96, 8, 3, 5
STEPS = N // BS
CRASH_AT = 17


def make_run(source: str, directory):
    """`fit(...)`'s arguments for one source kind (the same in every process)."""
    import fnn

    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 6)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    key = jax.random.key(5)
    src = fnn.sources.ArraySource(x, y)
    settings = {}
    if source == "grain":
        data = fnn.sources.loader(src, BS, key=key, backend="grain")
    elif source == "stateless":
        def data(epoch):
            order = fnn.sources.epoch_order(key, epoch, N)
            return [src[order[b * BS:(b + 1) * BS]] for b in range(STEPS)]
    else:
        import grain
        data = iter(grain.MapDataset.source(src).shuffle(seed=3).repeat(EPOCHS)
                    .batch(BS).map(tuple).to_iter_dataset())
        settings = {"steps_per_epoch": STEPS}
    model = fnn.serial(fnn.layers.Dense(8), fnn.layers.Dropout(0.2), fnn.relu, fnn.layers.Dense(2))
    return dict(model=model, optimizer=fnn.optim.adam(0.01),
                loss=fnn.losses.softmax_cross_entropy, train_data=data, epochs=EPOCHS,
                batch_size=BS, key=key, progress=False,
                rules=[fnn.train.checkpoint(directory, every_steps=EVERY)], **settings)


def main(source: str, directory: str, crash: str) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    import _crash_harness
    _crash_harness.install("step", int(crash), 0.5)
    import fnn
    fnn.train.fit(**make_run(source, directory))


if __name__ == "__main__":
    main(*sys.argv[1:])


# --- the test ---------------------------------------------------------------------------

import warnings  # noqa: E402

import pytest  # noqa: E402

import fnn  # noqa: E402
from fnn.checkpoint import CheckpointManager  # noqa: E402


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    e = {k: v for k, v in os.environ.items() if k not in ("FNN_CRASH",)}
    e.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(Path(__file__).parents[1]),
             FNN_CACHE_DIR=str(tmp_path_factory.mktemp("jax-cache")),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return e


def child(env, source, directory, crash):
    return subprocess.run([sys.executable, __file__, source, str(directory), crash],
                          env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.parametrize("source", ["grain", "stream", "stateless"])
def test_killed_mid_epoch_and_resumed_is_bit_identical(tmp_path, env, source):
    killed = child(env, source, tmp_path / "run", str(CRASH_AT))
    assert killed.returncode == -9, killed.stderr[-3000:]
    manager = CheckpointManager(tmp_path / "run")
    assert manager.latest() == 15                       # numbered by the run's steps
    position = manager.load_metadata(15)["data"]
    assert (position["epoch"], position["step"], position["drawn"]) == (1, 3, 3)
    assert (position["state"] is None) == (source == "stateless")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resumed, resumed_history = fnn.train.fit(**make_run(source, tmp_path / "run"))
    warned = [str(w.message) for w in caught
              if "restarts and its first 3 batches are skipped" in str(w.message)]
    assert bool(warned) == (source == "stateless"), [str(w.message) for w in caught]

    ts, history = fnn.train.fit(**make_run(source, tmp_path / "reference"))
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(resumed.params),
                 jax.device_get(ts.params))
    assert resumed_history == history
    assert int(ts.step) == int(resumed.step) == EPOCHS * STEPS
