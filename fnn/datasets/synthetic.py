"""Small generated 2-D classification data sets (no download needed).

Each takes a `key` and returns `(x, y)`: `x` float32 `(N, 2)`, `y` int32 `(N,)`.
Bad arguments raise errors naming the generator: `key` must be one PRNG key, sizes
positive ints, `noise`/`std` finite numbers >= 0.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._checks import NON_NEGATIVE, BadValue, checked, positive_int
from fnn.datasets._rules import a_key

__all__ = [
    "spiral", "planar_flower", "xor", "blobs",
]


@checked("spiral", key=a_key, num_per_class=positive_int, num_classes=positive_int,
         noise=NON_NEGATIVE)
def spiral(key, num_per_class: int = 100, num_classes: int = 3, noise: float = 0.2):
    """The CS231n spiral: `num_classes` interleaved arms of `num_per_class` points.

    For class k and t = linspace(0, 1, N): radius r = t, angle
    θ = 4k + 4t + noise·ε (ε ~ N(0,1)), point (r sin θ, r cos θ). Not linearly
    separable: a linear classifier fails on it, a small MLP fits it (accuracies: see
    benchmarks/RESULTS.md, "Measurements quoted from docstrings").

    **Returns:** `x: (num_classes·num_per_class, 2)` float32, `y` int32 in [0, K).
    """
    n, k = num_per_class, num_classes
    t = jnp.linspace(0.0, 1.0, n)
    cls = jnp.arange(k, dtype=jnp.float32)[:, None]
    theta = cls * 4.0 + t[None, :] * 4.0 + noise * jax.random.normal(key, (k, n))
    r = jnp.broadcast_to(t[None, :], (k, n))
    x = jnp.stack([r * jnp.sin(theta), r * jnp.cos(theta)], axis=-1).reshape(k * n, 2)
    y = jnp.repeat(jnp.arange(k, dtype=jnp.int32), n)
    return x.astype(jnp.float32), y


def _even(name: str, value) -> int:
    """A positive, even int (two classes of equal size)."""
    value = positive_int(name, value)
    if value % 2:
        raise BadValue(f"{name} must be even (two equal classes), got {value}.")
    return value


@checked("planar_flower", key=a_key, num_points=_even, petals=positive_int, noise=NON_NEGATIVE)
def planar_flower(key, num_points: int = 400, petals: int = 4, noise: float = 0.2):
    """The two-class "flower" of the classic one-hidden-layer exercise.

    Class j ∈ {0, 1} gets half of the points, with angle
    θ = linspace(3.12·j, 3.12·(j+1)) + noise·ε and radius r = 4·sin(petals·θ) + noise·ε
    (ε ~ N(0, 1)); the point is (r sin θ, r cos θ). Logistic regression fails on it;
    one hidden layer of a few tanh units fits it (accuracies: see benchmarks/RESULTS.md,
    "Measurements quoted from docstrings").

    **Returns:** `x: (num_points, 2)` float32, `y: (num_points,)` int32 in {0, 1}.
    """
    m = num_points
    half, a = m // 2, 4.0
    k_theta, k_r = jax.random.split(key)
    j = jnp.arange(2, dtype=jnp.float32)[:, None]
    base = j * 3.12 + jnp.linspace(0.0, 3.12, half)[None, :]
    theta = base + noise * jax.random.normal(k_theta, (2, half))
    r = a * jnp.sin(petals * theta) + noise * jax.random.normal(k_r, (2, half))
    x = jnp.stack([r * jnp.sin(theta), r * jnp.cos(theta)], axis=-1).reshape(m, 2)
    y = jnp.repeat(jnp.arange(2, dtype=jnp.int32), half)
    return x.astype(jnp.float32), y


@checked("xor", key=a_key, num_points=positive_int, noise=NON_NEGATIVE)
def xor(key, num_points: int = 200, noise: float = 0.1):
    """XOR: points around the four corners (±1, ±1); label 1 where the signs differ.

    Corners are drawn uniformly, then Gaussian noise of std `noise` is added.
    The classic problem a single neuron cannot solve and one hidden layer can.

    **Returns:** `x: (num_points, 2)` float32, `y: (num_points,)` int32 in {0, 1}.
    """
    m = num_points
    k_corner, k_noise = jax.random.split(key)
    signs = jax.random.bernoulli(k_corner, 0.5, (m, 2))
    corners = jnp.where(signs, 1.0, -1.0)
    x = corners + noise * jax.random.normal(k_noise, (m, 2))
    y = (signs[:, 0] != signs[:, 1]).astype(jnp.int32)
    return x.astype(jnp.float32), y


@checked("blobs", key=a_key, num_points=positive_int, num_classes=positive_int,
         std=NON_NEGATIVE, radius={})
def blobs(key, num_points: int = 300, num_classes: int = 3, std: float = 0.5,
          radius: float = 3.0):
    """Isotropic Gaussian blobs with centres evenly spaced on a circle.

    Class k has centre radius·(cos 2πk/K, sin 2πk/K) and std `std`; labels cycle
    0, 1, ..., K−1 so every class gets ⌊N/K⌋ or ⌈N/K⌉ points. Linearly separable
    when std ≪ radius·sin(π/K).

    **Returns:** `x: (num_points, 2)` float32, `y: (num_points,)` int32 in [0, K).
    """
    m, k = num_points, num_classes
    y = jnp.arange(m, dtype=jnp.int32) % k
    angle = 2.0 * jnp.pi * y / k
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    x = centres + std * jax.random.normal(key, (m, 2))
    return x.astype(jnp.float32), y
