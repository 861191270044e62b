"""Checkpoints written by fnn 0.1, kept so that every later fnn is tested on reading them.

Regenerate (only ever with fnn 0.1.0: the point is what *that* version wrote), from a
folder outside the repository so that the `fnn` on `PYTHONPATH` is the one imported:

    cd /tmp && PYTHONPATH=/path/to/fnn-0.1 python /path/to/repo/tests/data/fnn_0_1/make_fixtures.py

(`/path/to/fnn-0.1` is a checkout of fnn 0.1.0; the script refuses any other version.)
It writes, next to itself:

- `tree.npz`: `fnn.checkpoint.save(path, build_tree(), metadata=METADATA)`: every node
  kind the 0.1 codec supports (dicts with odd keys, OrderedDict/defaultdict, lists,
  tuples, NamedTuples, None, Python bool/int/float/complex, NumPy and JAX arrays of
  many dtypes, extension dtypes, 0-d arrays, NumPy scalars, weakly typed scalars,
  typed and raw PRNG keys, a big-endian and a Fortran-ordered array, an Adam state).
- `x64.npz`: `build_x64_tree()`, 64-bit JAX arrays saved with `jax_enable_x64` on.
- `run/`: the checkpoint folder of `run_fit(folder, epochs=2)`, a 2-epoch `fnn.train.fit`
  with `early_stopping` and `reduce_lr` (`ckpt_00000001.npz`, `ckpt_00000002.npz`).
- `expected.json`: what fnn 0.1's own `fnn.checkpoint.load` read back from every file
  above (`describe(tree)`: types, dtypes, shapes and SHA-256 of the bytes), their
  metadata, and `describe` of the final checkpoint and the history of an uninterrupted
  `run_fit(folder, epochs=3)`: a resume of `run/` to 3 epochs must give exactly that.

The builders below use only NumPy and JAX (never fnn), so that a test can rebuild the
same trees with any fnn and compare bit for bit.
"""
from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import sys
import tempfile
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
METADATA = {"step": 12, "config": {"lr": 0.001, "name": "ünï/code", "layers": [3, 4, 2],
                                   "flag": True, "none": None, "ratio": -2.5e-08}}


class AdamState(NamedTuple):
    """The field layout of fnn 0.1's `fnn.optim.AdamState`."""

    step: Any
    lr: Any
    params: Any
    m: Any
    v: Any


def build_tree() -> dict:
    """The every-node-kind tree saved as `tree.npz` (deterministic, NumPy and JAX only)."""
    params = {"0_Dense": {"w": jnp.arange(12, dtype=jnp.float32).reshape(3, 4) / 7,
                          "b": jnp.zeros(4)},
              "2_Dense": {"w": jnp.asarray(np.linspace(-2, 2, 8).reshape(4, 2), jnp.bfloat16),
                          "b": jnp.asarray([0.1, -65504.0], jnp.float16)}}
    w = params["0_Dense"]["w"]
    big_endian = np.arange(4, dtype=">f4") - 1.5
    return {
        "params": params,
        "opt": AdamState(jnp.asarray(5, jnp.int32), jnp.asarray(1e-3, jnp.float32), {"w": w},
                         {"w": jnp.zeros_like(w)}, {"w": w * w}),
        "jax": {
            "float32": jnp.asarray([[1.5, -0.0], [np.inf, np.nan]], jnp.float32),
            "bfloat16": jnp.asarray([1.5, -2.0, 3.0e38], jnp.bfloat16),
            "float16": jnp.asarray([0.5, 6.1e-5], jnp.float16),
            "int8": jnp.asarray([-128, 0, 127], jnp.int8),
            "uint8": jnp.asarray([0, 255], jnp.uint8),
            "int16": jnp.asarray([-32768], jnp.int16),
            "uint32": jnp.asarray([0, 2**32 - 1], jnp.uint32),
            "int32": jnp.asarray(-(2**31), jnp.int32),
            "bool": jnp.asarray([True, False, True]),
            "complex64": jnp.asarray([1 - 2j, 0.5j], jnp.complex64),
            "scalar": jnp.asarray(2.5, jnp.float32),
            "empty": jnp.zeros((0, 3), jnp.float32),
        },
        "weak": {"float": jnp.asarray(1.5), "int": jnp.asarray(-3),
                 "complex": jnp.asarray(1 - 2j),
                 "vector": jnp.broadcast_to(jnp.asarray(0.25), (3,))},
        "numpy": {
            "float32": np.asarray([1.0, -1.0, 1e-45], np.float32),
            "float64": np.asarray([np.pi, -np.e, 5e-324]),
            "float16": np.asarray([65504.0], np.float16),
            "bfloat16": np.asarray([1.0, -0.5], jnp.bfloat16),
            "float8_e4m3fn": np.asarray([1.0, -448.0], jnp.float8_e4m3fn),
            "float8_e5m2": np.asarray([0.5, 57344.0], jnp.float8_e5m2),
            "int4": np.asarray([-8, 7], jnp.int4),
            "uint4": np.asarray([0, 15], jnp.uint4),
            "int8": np.asarray([-1], np.int8),
            "uint16": np.asarray([65535], np.uint16),
            "uint32": np.asarray([7], np.uint32),
            "int64": np.asarray([-(2**63), 2**63 - 1], np.int64),
            "uint64": np.asarray([2**64 - 1], np.uint64),
            "bool": np.asarray([[True], [False]]),
            "complex128": np.asarray([1e300 + 1e-300j]),
            "zero_d": np.asarray(2.5),
            "empty": np.zeros((2, 0), np.int32),
            "fortran": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
            "big_endian": big_endian,
        },
        "numpy_scalars": [np.float32(1.25), np.float64(-0.5), np.int64(-7), np.uint8(200),
                          np.bool_(True), np.complex128(1 + 1j), np.float16(0.1),
                          jnp.bfloat16(1.5)],
        "python": (True, False, 0, -(2**63), 2**63 - 1, 1.5, -0.0, float("nan"),
                   float("-inf"), 1 - 2j),
        "keys": {"threefry": jax.random.key(42), "batch": jax.random.split(jax.random.key(7), 3),
                 "rbg": jax.random.key(3, impl="rbg"), "raw": jax.random.PRNGKey(9)},
        "containers": {"none": None, "empty_dict": {}, "empty_list": [], "empty_tuple": (),
                       "ordered": collections.OrderedDict(b=1, a=2),
                       "default": collections.defaultdict(list, x=[1.0]),
                       "nested": [({"a": None},), [[]]]},
        "odd keys": {"": 1, "a/b": 2, "a%2Fb": 3, "..": 4, ".": 5, "ü": 6, "x.npy": 7,
                     "sp ace": 8, "tree": 9, "__fnn_meta__": 10, "日本": 11, "%": 12},
    }


def build_x64_tree() -> dict:
    """64-bit JAX arrays, made with `jax_enable_x64` on (saved as `x64.npz`)."""
    with jax.enable_x64(True):
        return {"float64": jnp.asarray([1 / 3, -1e300]), "int64": jnp.asarray([2**40], jnp.int64),
                "weak_float64": jnp.asarray(0.1), "uint64": jnp.asarray(2**63, jnp.uint64)}


def run_data():
    """(train_data, val_data) of the fixture run: 64 + 32 examples, 4 features, 3 classes."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=96).astype(np.int32)
    return (x[:64], y[:64]), (x[64:], y[64:])


def run_fit(checkpoint_dir: str, epochs: int):
    """The fixture run: `fnn.models.mlp([8, 3])`, Adam(1e-2), batches of 16, early
    stopping on val_loss, reduce-on-plateau; returns `fit`'s `(train_state, history)`."""
    import fnn

    train, val = run_data()
    return fnn.train.fit(
        fnn.models.mlp([8, 3]), fnn.optim.adam(1e-2), fnn.losses.softmax_cross_entropy,
        train, epochs=epochs, batch_size=16, key=jax.random.key(0), val_data=val,
        early_stopping=fnn.train.EarlyStopping(patience=3),
        reduce_lr=fnn.train.reduce_on_plateau(factor=0.5, patience=1),
        checkpoint_dir=checkpoint_dir, progress=False)


def _bytes(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]


def describe(x):
    """A JSON-able, bit-exact description of a tree (containers, types, dtypes, shapes,
    weak types, SHA-256 prefixes of the bytes), independent of any checkpoint code."""
    if x is None:
        return ["none"]
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return ["key", str(jax.random.key_impl(x)), list(x.shape),
                _bytes(np.asarray(jax.random.key_data(x)))]
    if isinstance(x, jax.Array):
        return ["jax", str(x.dtype), list(x.shape), bool(x.weak_type), _bytes(np.asarray(x))]
    if isinstance(x, np.ndarray):
        return ["numpy", str(x.dtype), list(x.shape), _bytes(x)]
    if isinstance(x, np.generic):
        return ["numpy_scalar", str(x.dtype), _bytes(np.asarray(x))]
    if isinstance(x, (bool, int)):
        return [type(x).__name__, repr(x)]
    if isinstance(x, float):
        return ["float", x.hex()]
    if isinstance(x, complex):
        return ["complex", x.real.hex(), x.imag.hex()]
    if isinstance(x, dict):
        return [type(x).__name__, [[k, describe(v)] for k, v in x.items()]]
    if isinstance(x, tuple) and hasattr(type(x), "_fields"):
        return ["namedtuple", type(x).__name__, list(type(x)._fields), [describe(v) for v in x]]
    if isinstance(x, (list, tuple)):
        return [type(x).__name__, [describe(v) for v in x]]
    raise TypeError(f"describe: unexpected {type(x).__name__}")


def main() -> None:
    import fnn
    from fnn import checkpoint

    if fnn.__version__ != "0.1.0":
        sys.exit(f"make_fixtures.py: run it with fnn 0.1.0 on PYTHONPATH, got fnn "
                 f"{fnn.__version__} from {fnn.__file__}.")
    expected = {"fnn": fnn.__version__, "jax": jax.__version__, "files": {}}
    run_dir = os.path.join(HERE, "run")
    shutil.rmtree(run_dir, ignore_errors=True)
    checkpoint.save(os.path.join(HERE, "tree.npz"), build_tree(), metadata=METADATA)
    checkpoint.save(os.path.join(HERE, "x64.npz"), build_x64_tree())
    _, history = run_fit(run_dir, epochs=2)
    names = ["tree.npz", "x64.npz"] + [f"run/{n}" for n in sorted(os.listdir(run_dir))]
    for name in names:
        path = os.path.join(HERE, name)
        expected["files"][name] = {"tree": describe(checkpoint.load(path)),
                                   "metadata": checkpoint.load_metadata(path)}
    expected["run_history"] = history
    with tempfile.TemporaryDirectory() as folder:
        _, history3 = run_fit(folder, epochs=3)
        manager = checkpoint.CheckpointManager(folder)
        expected["run_3_epochs"] = {"step": manager.latest(), "history": history3,
                                    "tree": describe(manager.restore())}
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        f.write("{\n" + ",\n".join(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                                    for k, v in expected.items()) + "\n}\n")
    print("wrote", ", ".join(names), "and expected.json in", HERE)


if __name__ == "__main__":
    main()
