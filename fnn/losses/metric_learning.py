"""Metric-learning losses: embeddings pulled together or pushed apart by distance.

`triplet_margin(anchor, positive, negative, margin=1.0)`: PyTorch's
`triplet_margin_loss` with `p = 2`. It has no accuracy (`fit` and `evaluate`
report the loss alone) and takes three arrays, so it goes into a step of your own
(or a `loss(pred, y)` wrapper that splits `pred`).
"""
from __future__ import annotations

import jax.numpy as jnp

from fnn._checks import POSITIVE, BadValue, shape_str
from fnn.losses._inputs import named_loss, not_empty, predictions
from fnn.losses._reduce import reduced
from fnn.metrics import declare_accuracy

__all__ = ["triplet_margin"]

#: Added to every coordinate of a difference before its norm, as PyTorch's
#: `pairwise_distance` (its `eps`), so the distance (and its gradient) stays finite at 0.
_DISTANCE_EPS = 1e-6


def _distance(a, b):
    """`‖a − b + ε‖₂` over the last axis (PyTorch's `pairwise_distance`, p = 2)."""
    return jnp.sqrt(jnp.sum(jnp.square(a - b + _DISTANCE_EPS), axis=-1))


@declare_accuracy(None)
@named_loss(margin=POSITIVE)
def triplet_margin(anchor, positive, negative, margin: float = 1.0, *, weights=None,
                   reduction: str = "mean"):
    """Triplet margin loss (Schroff et al. 2015, FaceNet), PyTorch's `triplet_margin_loss` (p = 2).

    Per triplet, with `d(u, v) = ‖u − v + ε‖₂` (`ε = 1e-6`, as PyTorch's
    `pairwise_distance`) over the feature axis:

        max(d(a, p) − d(a, n) + margin, 0)

    then the mean over the triplets: `triplet_margin_loss(anchor, positive,
    negative, margin=margin)` with PyTorch's defaults (`p=2`, `eps=1e-6`, `swap=False`).

    **Arguments:**
    - `anchor`, `positive`, `negative`: embeddings of the same shape `(N, D)` (or
      `(..., D)`), float.
    - `margin > 0`, as PyTorch (checked when concrete; may be traced).
    - `weights` (broadcast to `(N,)`), `reduction` as every loss (`fnn.losses`).

    **Returns:** a scalar (`reduction="none"`: `(N,)`).
    """
    a = predictions(anchor, "anchor")
    p = predictions(positive, "positive")
    n = predictions(negative, "negative")
    if not a.shape == p.shape == n.shape or a.ndim < 1:
        raise BadValue(f"anchor, positive and negative must have one shape (N, D), got "
                       f"{shape_str(a.shape)}, {shape_str(p.shape)} and {shape_str(n.shape)}.")
    not_empty(a, "anchor")
    dtype = jnp.promote_types(jnp.result_type(a, p, n), jnp.float32)  # half: in float32
    a, p, n = (v.astype(dtype) for v in (a, p, n))
    gap = _distance(a, p) - _distance(a, n) + margin
    per_triplet = jnp.where(gap > 0, gap, jnp.zeros_like(gap))   # gradient 0 at the kink
    return reduced(per_triplet, weights, reduction)
