"""fnn's benchmark suite: `python -m benchmarks.run` (see benchmarks/RESULTS.md).

Nothing here is imported by `fnn` itself; the peer libraries (Flax, Equinox,
Haiku, Optax, PyTorch) are needed only by their own framework files.
"""
