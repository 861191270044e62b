"""Test configuration that makes mistakes loud.

- `jax_numpy_rank_promotion="raise"`: an accidental `(N,) + (N, 1)` broadcast errors.
- `key`: a PRNG key fixture whose seed is printed, so a failure can be replayed
  with `FNN_TEST_SEED=<seed> pytest ...`.
"""
import os

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def seed():
    value = int(os.environ.get("FNN_TEST_SEED", "0"))
    print(f"[fnn test seed: {value}]")
    return value


@pytest.fixture
def key(seed):
    return jax.random.key(seed)
