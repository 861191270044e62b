"""Test configuration that makes mistakes loud.

- `jax_numpy_rank_promotion="raise"`: an accidental `(N,) + (N, 1)` broadcast errors.
- `jax_default_matmul_precision="highest"` off CPU: GPUs and TPUs otherwise run
  float32 products and convolutions in TF32/bfloat16 passes (~1e-3 relative
  error), and the tests compare against float64 references at float32
  tolerances. On CPU float32 is already exact float32, so nothing changes there.
- Under pytest-xdist (`-n N`) each worker is its own JAX process; on a GPU each
  would preallocate 75 % of the device's memory and the second one fails with
  CUDA_ERROR_OUT_OF_MEMORY, so workers allocate on demand instead
  (`XLA_PYTHON_CLIENT_PREALLOCATE=false`, unless set). It is read when the backend
  starts, which is below.
- `key`: a PRNG key fixture whose seed is printed, so a failure can be replayed
  with `FNN_TEST_SEED=<seed> pytest ...`.
"""
import os

import jax
import pytest

if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
jax.config.update("jax_numpy_rank_promotion", "raise")
if jax.default_backend() != "cpu":
    jax.config.update("jax_default_matmul_precision", "highest")


@pytest.fixture
def seed():
    value = int(os.environ.get("FNN_TEST_SEED", "0"))
    print(f"[fnn test seed: {value}]")
    return value


@pytest.fixture
def key(seed):
    return jax.random.key(seed)


@pytest.fixture
def crashing_savefig(monkeypatch):
    """matplotlib's `Figure.savefig` replaced by a renderer that writes half a file to its
    target, then raises RuntimeError("renderer crashed")."""
    figure = pytest.importorskip("matplotlib.figure").Figure

    def crash(self, target, **kwargs):
        if isinstance(target, (str, os.PathLike)):
            with open(target, "wb") as f:
                f.write(b"half")
        else:
            target.write(b"half")
        raise RuntimeError("renderer crashed")

    monkeypatch.setattr(figure, "savefig", crash)
