"""Generated sequence data sets (no download): long-range memory, sine waves, image rows.

Sequences are batch-first `(N, T, F)` float32, ready for the recurrent layers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from fnn._array_checks import require_array
from fnn._checks import (
    NON_NEGATIVE,
    BadType,
    BadValue,
    checked,
    named,
    number,
    positive_int,
    shape_str,
)
from fnn.datasets._rules import a_key

__all__ = ["adding_problem", "sine_sequences", "image_rows"]


def _length(name: str, value) -> int:
    """A positive int >= 2 (room for the two marked steps)."""
    value = positive_int(name, value)
    if value < 2:
        raise BadValue(f"{name} must be >= 2 (two marked steps), got {value}.")
    return value


@checked("adding_problem", key=a_key, n=positive_int, length=_length)
def adding_problem(key, n: int, length: int):
    """The adding problem (Hochreiter & Schmidhuber 1997; Le et al. 2015).

    Each sequence has `length` steps of two features: a value drawn from U(0, 1)
    and a marker that is 1 at exactly two steps — one in the first half
    `[0, length//2)`, one in the second half `[length//2, length)` — and 0
    elsewhere. The target is the sum of the two marked values. The model must
    remember the first marked value across up to `length` steps, which a vanilla
    RNN fails to learn for long sequences (vanishing gradients) and an LSTM does.

    Always predicting 1 (the mean target) scores MSE 1/6 ≈ 0.167 (the variance
    of a sum of two U(0, 1)), the baseline to beat.

    **Returns:** `x: (n, length, 2)` float32 (`x[..., 0]` values, `x[..., 1]`
    markers) and `y: (n, 1)` float32 (shaped like a `Dense(1)` output, so
    `mse(pred, y)` needs no reshaping).
    """
    kv, k1, k2 = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(kv, (n, length), jnp.float32)
    first = jax.random.randint(k1, (n,), 0, half)
    second = jax.random.randint(k2, (n,), half, length)
    steps = jnp.arange(length).reshape(1, length)
    markers = (steps == first.reshape(n, 1)) | (steps == second.reshape(n, 1))
    markers = markers.astype(jnp.float32)
    x = jnp.stack([values, markers], axis=-1)
    y = jnp.sum(values * markers, axis=1, keepdims=True)
    return x, y


def _low_high(name: str, pair) -> tuple[float, float]:
    """A pair `(low, high)` of finite numbers with `low <= high`."""
    try:
        low, high = (number(name, v) for v in pair)
    except (TypeError, ValueError) as e:
        bad = BadType if isinstance(e, TypeError) else BadValue
        raise bad(f"{name} must be a pair (low, high) of numbers, got {pair!r}.") from None
    if low > high:
        raise BadValue(f"{name} must have low <= high, got {pair!r}.")
    return low, high


@checked("sine_sequences", key=a_key, n=positive_int, length=positive_int, noise=NON_NEGATIVE,
         freq_range=_low_high, amplitude_range=_low_high)
def sine_sequences(key, n: int, length: int, *, freq_range=(0.1, 0.5),
                   amplitude_range=(0.5, 1.5), noise: float = 0.0):
    """Sine waves with random frequency, amplitude and phase, for next-step prediction.

    Series `s_t = A sin(ω t + φ) + noise·ε_t` for `t = 0 .. length`, with
    `ω ~ U(freq_range)` in radians per step, `A ~ U(amplitude_range)`,
    `φ ~ U(0, 2π)`, `ε_t ~ N(0, 1)`, one draw per sequence.

    **Returns:** `x: (n, length, 1)` (`s_0 .. s_{length-1}`) and the next values
    `y: (n, length, 1)` (`s_1 .. s_length`), both float32: `y[:, t]` is what a
    `return_sequences=True` model should predict after reading `x[:, :t+1]`.
    """
    (w_lo, w_hi), (a_lo, a_hi) = freq_range, amplitude_range
    kw, ka, kp, kn = jax.random.split(key, 4)
    omega = jax.random.uniform(kw, (n, 1), jnp.float32, w_lo, w_hi)
    amp = jax.random.uniform(ka, (n, 1), jnp.float32, a_lo, a_hi)
    phase = jax.random.uniform(kp, (n, 1), jnp.float32, 0.0, 2 * jnp.pi)
    t = jnp.arange(length + 1, dtype=jnp.float32).reshape(1, length + 1)
    s = amp * jnp.sin(omega * t + phase)
    if noise:
        s = s + noise * jax.random.normal(kn, s.shape, jnp.float32)
    return s[:, :-1, None], s[:, 1:, None]


@named("image_rows")
def image_rows(images):
    """Read images row by row: an `H × W` image becomes `H` steps of `W` features.

    `(N, H, W)` is returned as is; `(N, H, W, C)` becomes `(N, H, W·C)` (for
    `C = 1`, e.g. MNIST `(N, 28, 28, 1) -> (N, 28, 28)`: 28 steps of 28 pixels,
    the "sequential MNIST by rows" task). Works on numpy and jax arrays and
    keeps the dtype (scale integer pixels yourself).
    """
    require_array(images)
    if images.ndim not in (3, 4):
        raise BadValue(f"expected images (N, H, W) or (N, H, W, C), got shape "
                       f"{shape_str(images.shape)} (rank {images.ndim}).")
    n, h, w = images.shape[:3]
    c = images.shape[3] if images.ndim == 4 else 1
    return images.reshape(n, h, w * c)  # explicit sizes: -1 is ambiguous when N = 0
