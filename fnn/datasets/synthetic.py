"""Small generated 2-D classification data sets (no download needed).

Each takes a `key` and returns `(x, y)`: `x` float32 `(N, 2)`, `y` int32 `(N,)`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._checks import check_key, check_number, check_positive_int


def spiral(key, num_per_class: int = 100, num_classes: int = 3, noise: float = 0.2):
    """The CS231n spiral: `num_classes` interleaved arms of `num_per_class` points.

    For class k and t = linspace(0, 1, N): radius r = t, angle
    θ = 4k + 4t + noise·ε (ε ~ N(0,1)), point (r sin θ, r cos θ). Not linearly
    separable: a linear classifier reaches about 50 %, a small MLP ~99 %.

    **Returns:** `x: (num_classes·num_per_class, 2)` float32, `y` int32 in [0, K).
    """
    check_key("spiral", key)
    n = check_positive_int("spiral", "num_per_class", num_per_class)
    k = check_positive_int("spiral", "num_classes", num_classes)
    noise = check_number("spiral", "noise", noise, low=0.0)
    t = jnp.linspace(0.0, 1.0, n)
    cls = jnp.arange(k, dtype=jnp.float32)[:, None]
    theta = cls * 4.0 + t[None, :] * 4.0 + noise * jax.random.normal(key, (k, n))
    r = jnp.broadcast_to(t[None, :], (k, n))
    x = jnp.stack([r * jnp.sin(theta), r * jnp.cos(theta)], axis=-1).reshape(k * n, 2)
    y = jnp.repeat(jnp.arange(k, dtype=jnp.int32), n)
    return x.astype(jnp.float32), y


def planar_flower(key, num_points: int = 400, petals: int = 4, noise: float = 0.2):
    """The two-class "flower" of the classic one-hidden-layer exercise.

    Class j ∈ {0, 1} gets half of the points, with angle
    θ = linspace(3.12·j, 3.12·(j+1)) + noise·ε and radius r = 4·sin(petals·θ) + noise·ε
    (ε ~ N(0, 1)); the point is (r sin θ, r cos θ). Logistic regression gets
    about 47 %; one hidden layer of 4 tanh units about 90 %.

    **Returns:** `x: (num_points, 2)` float32, `y: (num_points,)` int32 in {0, 1}.
    """
    check_key("planar_flower", key)
    m = check_positive_int("planar_flower", "num_points", num_points)
    if m % 2:
        raise ValueError(f"planar_flower: num_points must be even (two equal classes), got {m}.")
    petals = check_positive_int("planar_flower", "petals", petals)
    noise = check_number("planar_flower", "noise", noise, low=0.0)
    half, a = m // 2, 4.0
    k_theta, k_r = jax.random.split(key)
    j = jnp.arange(2, dtype=jnp.float32)[:, None]
    base = j * 3.12 + jnp.linspace(0.0, 3.12, half)[None, :]
    theta = base + noise * jax.random.normal(k_theta, (2, half))
    r = a * jnp.sin(petals * theta) + noise * jax.random.normal(k_r, (2, half))
    x = jnp.stack([r * jnp.sin(theta), r * jnp.cos(theta)], axis=-1).reshape(m, 2)
    y = jnp.repeat(jnp.arange(2, dtype=jnp.int32), half)
    return x.astype(jnp.float32), y


def xor(key, num_points: int = 200, noise: float = 0.1):
    """XOR: points around the four corners (±1, ±1); label 1 where the signs differ.

    Corners are drawn uniformly, then Gaussian noise of std `noise` is added.
    The classic problem a single neuron cannot solve and one hidden layer can.

    **Returns:** `x: (num_points, 2)` float32, `y: (num_points,)` int32 in {0, 1}.
    """
    check_key("xor", key)
    m = check_positive_int("xor", "num_points", num_points)
    noise = check_number("xor", "noise", noise, low=0.0)
    k_corner, k_noise = jax.random.split(key)
    signs = jax.random.bernoulli(k_corner, 0.5, (m, 2))
    corners = jnp.where(signs, 1.0, -1.0)
    x = corners + noise * jax.random.normal(k_noise, (m, 2))
    y = (signs[:, 0] != signs[:, 1]).astype(jnp.int32)
    return x.astype(jnp.float32), y


def blobs(key, num_points: int = 300, num_classes: int = 3, std: float = 0.5,
          radius: float = 3.0):
    """Isotropic Gaussian blobs with centres evenly spaced on a circle.

    Class k has centre radius·(cos 2πk/K, sin 2πk/K) and std `std`; labels cycle
    0, 1, ..., K−1 so every class gets ⌊N/K⌋ or ⌈N/K⌉ points. Linearly separable
    when std ≪ radius·sin(π/K).

    **Returns:** `x: (num_points, 2)` float32, `y: (num_points,)` int32 in [0, K).
    """
    check_key("blobs", key)
    m = check_positive_int("blobs", "num_points", num_points)
    k = check_positive_int("blobs", "num_classes", num_classes)
    std = check_number("blobs", "std", std, low=0.0)
    radius = check_number("blobs", "radius", radius)
    y = jnp.arange(m, dtype=jnp.int32) % k
    angle = 2.0 * jnp.pi * y / k
    centres = radius * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=-1)
    x = centres + std * jax.random.normal(key, (m, 2))
    return x.astype(jnp.float32), y
