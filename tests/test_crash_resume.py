"""Crash and resume: `fnn train` killed with SIGKILL at the worst moments loses nothing.

One run is killed again and again, each time at a different point (mid-epoch,
mid-checkpoint-write, between the write and the rename, after the rename but
before pruning, during pruning, between the checkpoint and `history.json`),
and resumed with `fnn train --resume RUN_DIR` after every crash. Its final
checkpoint must be bit-identical to an uninterrupted run's, and after every
crash every checkpoint left on disk must load.

The kills are made by `tests/_crash_harness.py`, which runs the `fnn` command
in a subprocess that SIGKILLs itself at the chosen point (see its docstring):
no library file is patched, only module attributes inside that subprocess.
The data set is the generated spiral (no download, no optional dependency),
a small MLP, 256 examples (230 for training: 7 steps of 32 per epoch), 4 epochs.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from fnn import checkpoint
from fnn.checkpoint import CheckpointManager

HARNESS = Path(__file__).with_name("_crash_harness.py")
EPOCHS = 4
TRAIN = ["--dataset", "spiral", "--model", "mlp", "--limit", "256", "--epochs", str(EPOCHS),
         "--batch-size", "32", "--seed", "3", "--no-progress"]
STEPS_PER_EPOCH = 7  # 230 training examples // 32

# (crash point for FNN_CRASH, latest checkpoint on disk after the kill).
# Counts are per process: each line is one resumed process (the first is the fresh run).
CRASHES = [
    (f"step:{STEPS_PER_EPOCH + 3}", 1),   # mid-epoch 2 (its 3rd step), after checkpoint 1
    ("write:1:0.5", 1),                   # half of checkpoint 2 written to the .tmp file
    ("write:1:0.01", 1),                  # only the first bytes of checkpoint 2
    ("replace:1", 1),                     # checkpoint 2 complete in .tmp, not yet renamed
    ("renamed:1", 2),                     # checkpoint 2 renamed; folder not fsynced, not pruned
    ("step:4", 2),                        # mid-epoch 3 of a resumed run
    ("history:1", 3),                     # checkpoint 3 saved, history.json not yet updated
    ("remove:1", 4),                      # checkpoint 4 saved, pruning deleted checkpoint 1
]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment of the subprocesses: CPU, no plots, and a compilation cache shared
    by all of them that keeps every program (halves the test's time)."""
    e = dict(os.environ)
    for name in ("FNN_CRASH", "JAX_COMPILATION_CACHE_DIR"):
        e.pop(name, None)
    e.update(JAX_PLATFORMS="cpu", FNN_HARNESS_NO_PLOT="1",
             FNN_CACHE_DIR=str(tmp_path_factory.mktemp("jax-cache")),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    return e


def fnn_train(env, *args, crash=None, timeout=180):
    """Run `fnn train ARGS` through the harness; return the CompletedProcess."""
    e = dict(env)
    if crash is not None:
        e["FNN_CRASH"] = crash
    return subprocess.run([sys.executable, str(HARNESS), "train", *args], env=e,
                          capture_output=True, text=True, timeout=timeout)


def describe(proc) -> str:
    return f"exit {proc.returncode}\nstdout:\n{proc.stdout[-2000:]}\nstderr:\n{proc.stderr[-3000:]}"


def leaves(tree):
    """{path: numpy array} of a loaded checkpoint tree (typed keys as their raw data)."""
    def raw(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {jax.tree_util.keystr(p): raw(x) for p, x in flat}


def assert_bit_identical(a, b):
    la, lb = leaves(a), leaves(b)
    assert la.keys() == lb.keys()
    for k in la:
        assert la[k].dtype == lb[k].dtype and la[k].shape == lb[k].shape, k
        assert np.array_equal(la[k], lb[k], equal_nan=True), f"{k} differs"
        assert la[k].tobytes() == lb[k].tobytes(), f"{k} differs in its bits"


def check_disk(ckpt_dir: Path) -> list[int]:
    """Every checkpoint on disk loads and says which epoch it is; leftovers are inert.

    Returns the steps of the checkpoints on disk.
    """
    manager = CheckpointManager(ckpt_dir)
    steps = manager.all_steps()
    for step in steps:
        tree = checkpoint.load(manager.path(step))
        assert int(np.asarray(tree["train_state"].epoch)) == step
        assert manager.load_metadata(step)["step"] == step
    for name in os.listdir(ckpt_dir):
        path = ckpt_dir / name
        if name.endswith(".tmp"):  # an interrupted write: never taken for a checkpoint,
            try:                   # and loading it gives the tree or a clear ValueError
                checkpoint.load(path)
            except ValueError as e:
                assert "is not a valid fnn checkpoint" in str(e)
        else:
            assert name.startswith("ckpt_") and name.endswith(".npz"), name
    return steps


def test_sigkill_at_every_crash_point_then_resume_is_bit_identical(tmp_path, env):
    out = tmp_path / "runs"
    reference = fnn_train(env, *TRAIN, "--out", str(out), "--name", "reference")
    assert reference.returncode == 0, describe(reference)

    run_dir = out / "crashed"
    ckpt_dir = run_dir / "checkpoints"
    seen_tmp = False
    for i, (crash, latest) in enumerate(CRASHES):
        args = (TRAIN + ["--out", str(out), "--name", "crashed"] if i == 0
                else ["--resume", str(run_dir), "--no-progress"])
        proc = fnn_train(env, *args, crash=crash)
        assert proc.returncode == -signal.SIGKILL, f"{crash} was not reached: " + describe(proc)
        steps = check_disk(ckpt_dir)
        assert steps and steps[-1] == latest, (crash, steps)
        seen_tmp |= any(n.endswith(".tmp") for n in os.listdir(ckpt_dir))
        if crash == "history:1":  # the checkpoint is ahead of history.json: resume copes
            history = json.loads((run_dir / "history.json").read_text())
            assert len(history["loss"]) < latest
    assert seen_tmp, "no crash left an interrupted checkpoint write behind"

    final = fnn_train(env, "--resume", str(run_dir), "--no-progress")
    assert final.returncode == 0, describe(final)

    ref_dir = out / "reference" / "checkpoints"
    assert check_disk(ckpt_dir) == check_disk(ref_dir) == [2, 3, 4]
    for step in (2, 3, 4):  # the whole TrainState: params, optimizer slots, key, epoch
        assert_bit_identical(checkpoint.load(ckpt_dir / f"ckpt_{step:08d}.npz"),
                             checkpoint.load(ref_dir / f"ckpt_{step:08d}.npz"))
        assert (checkpoint.load_metadata(ckpt_dir / f"ckpt_{step:08d}.npz")["history"]
                == checkpoint.load_metadata(ref_dir / f"ckpt_{step:08d}.npz")["history"])
    for name in ("history.json", "results.json"):
        got = json.loads((run_dir / name).read_text())
        want = json.loads((out / "reference" / name).read_text())
        got.pop("train_seconds", None)
        want.pop("train_seconds", None)
        assert got == want, name
