"""On-device data augmentation: pure functions of a `key` and a batch (API.md §6.5).

Every function takes images `(N, H, W, C)` (NHWC, any float dtype), draws each
example's randomness independently from one `key`, and works under `jax.jit`,
`jax.vmap` (e.g. over groups of batches) and `jax.grad` (with respect to the
images). Two shapes of augmentation exist, and `fit(..., augment=fn)` takes either:

    x        = fn(key, x)          # random_crop, random_flip, lambda key, x: normalize(x, m, s)
    (x, y)   = fn(key, x, y)       # mixup, cutmix: the labels change with the images

`chain(f, g, ...)` composes them into one `fn(key, x, y) -> (x, y)` (a key per
function, split from `key`); `apply(fn, key, x, y)` calls either shape and returns
`(x, y)`. Inside `fit` the key is drawn from the run's key stream (the step's key,
`fnn.train.state.step_key`), so a resumed run augments exactly as an uninterrupted one.

    aug = fnn.augment.chain(fnn.augment.random_crop, fnn.augment.random_flip)
    ts, history = fnn.train.fit(model, opt, loss, (x, y), ..., augment=aug)
"""
from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from fnn._array_checks import require_floating, require_rank
from fnn._checks import BadType, BadValue, checked, hyper, named, prng_key, shape_str

__all__ = ["random_crop", "random_flip", "normalize", "mixup", "cutmix", "chain", "apply",
           "takes_labels"]

_NHWC = "(N, H, W, C)"


def _images(name: str, images):
    """A floating rank-4 batch `(N, H, W, C)` (a `checked` table rule)."""
    require_rank(images, 4, _NHWC)
    require_floating(images)
    return images


def _non_negative_int(name: str, value) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__") or int(value) < 0:
        raise BadValue(f"{name} must be a non-negative int, got {value!r}.")
    return int(value)


def _alpha(name: str, value):
    return hyper(name, value, low=0.0, low_open=True)


@checked("random_crop", key=prng_key, images=_images, padding=_non_negative_int)
def random_crop(key, images, padding: int = 4):
    """Pad each image with `padding` zeros on every side, then crop a random window
    of the input's size: `out[n] = pad(x[n])[dy_n : dy_n + H, dx_n : dx_n + W]` with
    `dy_n, dx_n` uniform over `{0, ..., 2·padding}`, independently per example
    (torchvision's `RandomCrop(H, padding=padding)`, the CIFAR recipe).

    **Arguments:**
    - `key`: a PRNG key.
    - `images`: `(N, H, W, C)` floats.
    - `padding`: the zero border, `>= 0` (0 returns the images unchanged).

    **Returns** `(N, H, W, C)`, the same dtype.
    """
    if padding == 0:
        return images
    n, h, w, c = images.shape
    offsets = jax.random.randint(key, (n, 2), 0, 2 * padding + 1)
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))

    def crop(image, offset):
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, c))

    return jax.vmap(crop)(padded, offsets)


@checked("random_flip", key=prng_key, images=_images)
def random_flip(key, images):
    """Mirror each image left-right (along W) with probability 0.5, independently:
    `out[n] = x[n, :, ::-1]` if `b_n` else `x[n]`, `b_n ~ Bernoulli(0.5)`.

    **Arguments:** `key`, a PRNG key; `images`, `(N, H, W, C)` floats.
    **Returns** `(N, H, W, C)`.
    """
    flip = jax.random.bernoulli(key, 0.5, (images.shape[0],))
    return jnp.where(flip[:, None, None, None], images[:, :, ::-1], images)


def _stats(name: str, value):
    """A scalar or a per-channel vector `(C,)` of floats (checked against C later)."""
    value = jnp.asarray(value) if not isinstance(value, jax.Array) else value
    if value.ndim > 1 or not jnp.issubdtype(value.dtype, jnp.number):
        raise BadValue(f"{name} must be a number or a per-channel vector (C,), got shape "
                       f"{shape_str(value.shape)} of dtype {value.dtype}.")
    return value


@checked("normalize", images=_images, mean=_stats, std=_stats)
def normalize(images, mean, std):
    """Per-channel standardisation `out = (x − mean) / std` (torchvision's `Normalize`,
    channels last).

    **Arguments:**
    - `images`: `(N, H, W, C)` floats.
    - `mean`, `std`: numbers or vectors `(C,)`; `std` must be positive (checked when
      its values are known, i.e. outside `jit`).

    **Returns** `(N, H, W, C)` in the images' dtype. It draws nothing, so it takes no
    key; in `chain` or `fit(augment=)` write it as `lambda key, x: normalize(x, m, s)`.
    """
    c = images.shape[-1]
    for name, v in (("mean", mean), ("std", std)):
        if v.ndim == 1 and v.shape[0] != c:
            raise BadValue(f"{name} has {v.shape[0]} values but the images have {c} channels "
                           f"(last axis of {shape_str(images.shape)}).")
    try:
        known = np.asarray(std)
    except jax.errors.JAXTypeError:   # traced under jit: the values are not known
        known = None
    if known is not None and bool(np.any(known <= 0)):
        raise BadValue(f"std must be positive, got {known.tolist()}.")
    mean, std = (v.reshape(1, 1, 1, -1) for v in (mean, std))   # scalars or (C,): no promotion
    return ((images - mean) / std).astype(images.dtype)


def _labels(x, y) -> None:
    """`y` must be float targets `(N, K)` for the `N` images of `x`."""
    require_rank(y, 2, "(N, num_classes) of one-hot or probability targets")
    require_floating(y)
    if y.shape[0] != x.shape[0]:
        raise BadValue(f"y_onehot has {y.shape[0]} rows but the images are {x.shape[0]}.")


def _partner(key, n: int):
    """Each example's partner: a random permutation of the batch."""
    return jax.random.permutation(key, n)


@checked("mixup", key=prng_key, x=_images, alpha=_alpha)
def mixup(key, x, y_onehot, alpha: float = 0.2):
    """mixup (Zhang et al. 2018), one mixing weight per example:

        λ_n ~ Beta(alpha, alpha),   p = a random permutation of the batch
        x'_n = λ_n x_n + (1 − λ_n) x_p(n),    y'_n = λ_n y_n + (1 − λ_n) y_p(n)

    so each target row keeps its mass (`Σ_k y'_nk = Σ_k y_nk`, 1 for one-hot rows).

    **Arguments:**
    - `key`: a PRNG key; `x`: images `(N, H, W, C)` floats.
    - `y_onehot`: float targets `(N, K)`, one-hot or probabilities (`jax.nn.one_hot(y, K)`).
    - `alpha`: the Beta distribution's parameter, `> 0`.

    **Returns** `(x', y')` of the same shapes and dtypes.
    """
    _labels(x, y_onehot)
    k_lam, k_perm = jax.random.split(key)
    lam = jax.random.beta(k_lam, alpha, alpha, (x.shape[0],))
    perm = _partner(k_perm, x.shape[0])
    lx = lam.astype(x.dtype)[:, None, None, None]
    ly = lam.astype(y_onehot.dtype)[:, None]
    return lx * x + (1 - lx) * x[perm], ly * y_onehot + (1 - ly) * y_onehot[perm]


@checked("cutmix", key=prng_key, x=_images, alpha=_alpha)
def cutmix(key, x, y_onehot, alpha: float = 1.0):
    """CutMix (Yun et al. 2019), one box per example:

        λ_n ~ Beta(alpha, alpha),  box of size (⌊H·√(1−λ_n)⌉, ⌊W·√(1−λ_n)⌉) around a
        uniform centre, clipped to the image;  p = a random permutation of the batch
        x'_n = x_p(n) inside the box, x_n outside
        y'_n = (1 − a_n) y_n + a_n y_p(n),  a_n = (box area after clipping) / (H·W)

    The label weight is the pasted area exactly, so each target row keeps its mass.

    **Arguments:** as `mixup` (`alpha > 0`, default 1: λ uniform).
    **Returns** `(x', y')` of the same shapes and dtypes.
    """
    _labels(x, y_onehot)
    n, h, w, _ = x.shape
    k_lam, k_cy, k_cx, k_perm = jax.random.split(key, 4)
    lam = jax.random.beta(k_lam, alpha, alpha, (n,))
    side = jnp.sqrt(1.0 - lam)
    ch, cw = jnp.round(h * side).astype(jnp.int32), jnp.round(w * side).astype(jnp.int32)
    cy = jax.random.randint(k_cy, (n,), 0, h)
    cx = jax.random.randint(k_cx, (n,), 0, w)
    y0, y1 = jnp.clip(cy - ch // 2, 0, h), jnp.clip(cy - ch // 2 + ch, 0, h)
    x0, x1 = jnp.clip(cx - cw // 2, 0, w), jnp.clip(cx - cw // 2 + cw, 0, w)
    rows, cols = jnp.arange(h)[None, :], jnp.arange(w)[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])           # (N, H)
    in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])           # (N, W)
    box = in_rows[:, :, None] & in_cols[:, None, :]                  # (N, H, W)
    perm = _partner(k_perm, n)
    area = ((y1 - y0) * (x1 - x0)).astype(y_onehot.dtype) / (h * w)
    mixed_x = jnp.where(box[..., None], x[perm], x)
    mixed_y = (1 - area)[:, None] * y_onehot + area[:, None] * y_onehot[perm]
    return mixed_x, mixed_y


def takes_labels(fn: Callable) -> bool:
    """Whether an augmentation is `fn(key, x, y) -> (x, y)` (True) or `fn(key, x) -> x`
    (False), from its required positional parameters (2 or 3)."""
    if not callable(fn):
        raise BadType(f"an augmentation must be a callable fn(key, x) or fn(key, x, y), "
                      f"got {fn!r}.")
    if getattr(fn, "takes_labels", None) is not None:
        return bool(fn.takes_labels)
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        raise BadType(f"cannot read the signature of the augmentation {fn!r}; wrap it as "
                      "lambda key, x: ... or lambda key, x, y: ...") from None
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in kinds and p.default is inspect.Parameter.empty]
    if len(required) not in (2, 3):
        raise BadValue(f"an augmentation takes (key, x) or (key, x, y), but "
                       f"{getattr(fn, '__name__', fn)!r} requires {len(required)} positional "
                       f"arguments ({', '.join(p.name for p in required)}).")
    return len(required) == 3


@named("fnn.augment.apply")
def apply(fn: Callable, key, x, y):
    """`fn(key, x, y)` if `fn` takes labels (`takes_labels`), else `(fn(key, x), y)`."""
    if takes_labels(fn):
        out = fn(key, x, y)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise BadValue(f"the augmentation {getattr(fn, '__name__', fn)!r} takes (key, x, y) "
                           f"and must return a pair (x, y), got {type(out).__name__}.")
        return out
    return fn(key, x), y


@named("chain")
def chain(*fns: Callable) -> Callable:
    """One augmentation `aug(key, x, y) -> (x, y)` that runs `fns` in order, each with
    its own key (`jax.random.split(key, len(fns))[i]`):
    `chain(random_crop, random_flip)` is crop, then flip. Each of `fns` is
    `f(key, x) -> x` or `f(key, x, y) -> (x, y)` (see `takes_labels`); options are
    bound with `functools.partial(random_crop, padding=2)`.
    """
    if not fns:
        raise BadValue("chain needs at least one augmentation, got none.")
    for f in fns:
        takes_labels(f)

    def aug(key, x, y):
        keys = jax.random.split(key, len(fns))
        for i, f in enumerate(fns):
            x, y = apply(f, keys[i], x, y)
        return x, y

    aug.takes_labels = True
    aug.__name__ = "chain(" + ", ".join(_name(f) for f in fns) + ")"
    return aug


def _name(fn) -> str:
    if isinstance(fn, functools.partial):
        return _name(fn.func)
    return getattr(fn, "__name__", type(fn).__name__)
