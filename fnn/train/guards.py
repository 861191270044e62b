"""Guards against non-finite numbers in `fit`: what to check, and the messages.

- before training (`check_finite=True`): `first_nonfinite` names the first
  example of the data holding NaN/Inf;
- every step: a non-finite training loss stops the run (`nan_message`); with
  `check_finite=True` the step's flags (`make_train_step`) name the culprit: the
  input batch, the loss, or the first non-finite gradient leaf (`report_nonfinite`);
- after every epoch: `all_finite` of the params and model state.

Nothing is saved for an epoch that fails, so the last checkpoint is the last good one.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from fnn._checks import BadValue

__all__ = [
    "record_step",
    "all_finite", "first_nonfinite", "nan_message", "report_nonfinite",
]


@jax.jit
def all_finite(tree) -> jax.Array:
    """Whether every floating leaf of `tree` is finite (a bool scalar on the device)."""
    leaves = [jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(tree)
              if jnp.issubdtype(a.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)


def first_nonfinite(name: str, a) -> None:
    """`BadValue` naming the first example of the array `a` that holds NaN/Inf."""
    a = np.asarray(a)
    if not np.issubdtype(a.dtype, np.inexact):
        return
    bad = ~np.isfinite(a.reshape(a.shape[0], -1)).all(axis=1) if a.ndim else ~np.isfinite(a)
    if np.any(bad):
        i = int(np.argmax(bad))
        value = a[i].reshape(-1)[~np.isfinite(a[i].reshape(-1))][0]
        raise BadValue(f"{name} has non-finite values ({value}) in {int(np.sum(bad))} "
                       f"example(s), the first at index {i}; clean or impute the data before "
                       "training.")


def nan_message(what: str, epoch: int, epochs: int, i: int, steps: int, checkpoint_dir,
                check_finite: bool) -> str:
    """`fit`'s message for a run stopped at step `i` of epoch `epoch` (0-based)."""
    msg = (f"fit: {what} at epoch {epoch + 1}/{epochs}, step {i + 1}/{steps} "
           "(1-based); training stopped.")
    if checkpoint_dir is not None and epoch > 0:  # every completed epoch was saved
        msg += (f" Nothing was saved for this epoch: the latest checkpoint in "
                f"{checkpoint_dir} (epoch {epoch}) is the last good one.")
    elif checkpoint_dir is not None:
        msg += f" No checkpoint was saved in {checkpoint_dir}: no epoch completed."
    msg += " Try a smaller learning rate, gradient clipping"
    msg += (", or check_finite=True to find where NaN/Inf first appear." if not check_finite
            else ".")
    return msg


def report_nonfinite(flags, epoch, epochs, i, steps, checkpoint_dir) -> None:
    """`FloatingPointError` for the first flag `make_train_step(check_finite=True)` raised:
    the input batch, else the loss, else the first non-finite gradient leaf."""
    bad = [jax.tree_util.keystr(p) or "(root)"
           for p, v in jax.tree_util.tree_flatten_with_path(flags["grads"])[0] if bool(v)]
    what = (f"the input batch {'x' if flags['x'] else 'y'} holds NaN/Inf"
            if flags["x"] or flags["y"] else
            "the loss became NaN/Inf (inputs were finite)" if flags["loss"] else
            f"non-finite gradients (loss finite) in {len(bad)} leaf/leaves, first "
            f"params{bad[0]}" if bad else None)
    if what is not None:
        raise FloatingPointError(nan_message(f"check_finite: {what}", epoch, epochs, i, steps,
                                             checkpoint_dir, True))


def record_step(m: dict, sums: dict, epoch: int, epochs: int, step, steps, source,
                check_finite: bool) -> bool:
    """One step's host-side metrics `m`: raise on a non-finite loss (or, with
    `check_finite`, on the first non-finite value the step reports), add the metrics
    into `sums`, and return whether a rule asked to stop (`m["stop"]`)."""
    if check_finite:
        report_nonfinite(m["nonfinite"], epoch, epochs, step, steps, source)
    value = float(m["loss"])
    if not math.isfinite(value):
        raise FloatingPointError(nan_message(
            f"the training loss became {value}", epoch, epochs, step, steps, source,
            check_finite))
    for name, v in m.items():
        if name not in ("nonfinite", "stop"):
            sums[name] = sums.get(name, 0.0) + float(v)
    return bool(m.get("stop", False))
