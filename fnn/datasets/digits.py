"""scikit-learn's bundled 8×8 handwritten digits (1,797 images, no download)."""
from __future__ import annotations

import numpy as np

__all__ = ["digits"]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """The UCI 8×8 digits that ship with scikit-learn, as NHWC images.

    **Returns** `(x, y)`: `x` float32 of shape `(1797, 8, 8, 1)` in [0, 1] (the
    original 0–16 pixel counts divided by 16) and `y` int32 labels 0–9, in
    scikit-learn's order (not shuffled; split with `fnn.data.train_val_split`).

    Needs scikit-learn, which is in the optional `data` extra:
    `pip install 'fnn[data]'`.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as e:
        raise ImportError(
            "fnn.datasets.digits needs scikit-learn: pip install 'fnn[data]' "
            "(or pip install scikit-learn)."
        ) from e
    bunch = load_digits()
    x = np.asarray(bunch.images, dtype=np.float32).reshape(-1, 8, 8, 1) / np.float32(16.0)
    y = np.asarray(bunch.target, dtype=np.int32)
    return x, y
