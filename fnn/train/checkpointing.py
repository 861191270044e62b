"""The checkpoint rule: save the run after every epoch, and bring it back to resume.

    rules=[..., fnn.train.checkpoint("runs/a/checkpoints", keep=3)]   # or checkpoint_dir=

After every epoch it saves, with `fnn.checkpoint.CheckpointManager` (the last
`keep` kept; None keeps all), the tree

    {"train_state": TrainState, <rule name>: <rule state>, ...}   (rules with a state)

and the metadata `{"format": "fnn.train.fit/1", "epoch", "history", "config",
"stopped"}` (and, for streamed `train_data`, `"data"`: the data position,
`fnn.train.streaming`). It saves the run as the rules listed before it left it, so `fit`
runs it after them (rules listed after it must keep no state). Its `restore`
reads the latest checkpoint against the tree a fresh run would save (`like`), so a
resumed run continues exactly as the uninterrupted one (same key stream, same
rule states, same results).

**Runs written by fnn 0.1** (`TrainState(opt_state, model_state, key, epoch,
lr_scale)`, optimizer states without `lr_scale`, the plateau state under
`"plateau"`) are converted on the fly: the scale moves into the optimizer state,
`"plateau"` becomes `"reduce_lr"`. 0.1 applied the scale by shortening each
update (`p + s·(p_opt − p)`), fnn now scales the learning rate: a resumed run
with a scale of 1 continues bit for bit, with another scale up to float rounding.
"""
from __future__ import annotations

import os

import jax
import numpy as np

from fnn._checks import BadType, BadValue, named, positive_int
from fnn.checkpoint import CheckpointManager
from fnn.optim import copy_hyperparams
from fnn.train.rules import EpochInfo, Resumed, Rule, append_record

__all__ = [
    "FORMAT", "RESUME_KEEPS", "checkpoint", "restore_tree", "from_fnn_01",
]

FORMAT = "fnn.train.fit/1"
#: config entries a resumed run must share with the run that wrote the checkpoint
RESUME_KEEPS = ("batch_size", "num_examples", "accumulate", "metrics", "val_data")
_FNN_01_TRAIN_STATE = ("opt_state", "model_state", "key", "epoch", "lr_scale")


@named("checkpoint")
def checkpoint(directory, keep: int | None = 3, *, name: str = "checkpoint",
               every_steps: int | None = None) -> Rule:
    """A rule that saves the run in the folder `directory` after every epoch and
    resumes from its latest checkpoint (see `help(fnn.train.checkpointing)`). The folder is
    created when `fit` starts.

    `every_steps=N` (streamed `train_data` only, `fnn.train.streaming`): also save after
    every `N` steps of the run, mid-epoch, with the data position; checkpoints are then
    numbered by the steps of the run (not by epoch) and `keep` counts both kinds."""
    if not isinstance(directory, (str, os.PathLike)):
        raise BadType(f"directory must be a folder path (a str or os.PathLike), got "
                      f"{directory!r}.")
    if every_steps is not None:
        every_steps = positive_int("every_steps", every_steps)
    path = os.fspath(directory)
    managers: list[CheckpointManager] = []

    def manager() -> CheckpointManager:
        if not managers:
            try:
                managers.append(CheckpointManager(path, keep=keep))
            except (FileExistsError, NotADirectoryError):
                raise BadValue(f"checkpoint_dir must be a folder path (created if missing), "
                               f"got {path!r}, which is or lies under an existing file.") from None
        return managers[0]

    def restore(like: dict, config: dict) -> Resumed:
        latest = manager().latest()
        if latest is None:
            return Resumed(None, {}, False, path)
        try:
            tree = restore_tree(manager(), latest, like)
        except ValueError as e:
            raise BadValue(f"cannot resume from {path}: {e} Resume with the same model, "
                           "optimizer, early_stopping and reduce_lr as the run that wrote it, or "
                           "use a new checkpoint_dir.") from None
        meta = manager().load_metadata(latest)
        saved = meta.get("config", {})
        for k in RESUME_KEEPS:
            if k in saved and saved[k] != config[k]:
                raise BadValue(f"the checkpoint in {path} was written with {k}={saved[k]}, this "
                               f"call has {k}={config[k]}; resume with the same settings or use "
                               "a new checkpoint_dir.")
        history = {k: [float(v) for v in vs] for k, vs in meta.get("history", {}).items()}
        # the optimizer passed now decides the hyperparameters (e.g. a lower learning rate
        # to fine-tune); the checkpoint gives the step, slots, params and lr_scale
        ts = tree["train_state"]
        ts = ts._replace(opt_state=copy_hyperparams(ts.opt_state, like["train_state"].opt_state))
        return Resumed({**tree, "train_state": ts}, history, bool(meta.get("stopped", False)),
                       path, meta.get("data"))

    def write(ts, states: dict, epoch: int, history: dict, config: dict, stop: bool,
              position):
        tree = {"train_state": ts, **{k: s for k, s in states.items() if s is not None}}
        meta = {"format": FORMAT, "epoch": epoch, "history": history, "config": config,
                "stopped": bool(stop)}
        if position is not None:
            meta["data"] = position
        number = epoch if every_steps is None else position["total"]
        manager().save(number, tree, metadata=meta)

    def update(state, ts, info: EpochInfo):
        history = append_record(info.history, info.logs, info.epoch, path)
        write(ts, info.states, info.epoch, history, info.config, info.stop, info.position)
        return state, ts, info

    def save(ts, states: dict, history: dict, config: dict, position: dict):
        write(ts, states, position["epoch"], history, config, False, position)

    return Rule(lambda ts: None, update, name=name, restore=restore, every_steps=every_steps,
                save=save)


def restore_tree(manager: CheckpointManager, step: int, like: dict):
    """Checkpoint `step` of `manager` read against `like` (the tree a fresh run would
    save), or converted from fnn 0.1's layout (see `help(fnn.train.checkpointing)`); the
    `ValueError` of the read against `like` when neither fits. For a run's folder:
    `restore_tree(CheckpointManager(d), step, {"train_state": init_train_state(...)})`."""
    try:
        return manager.restore(step, like=like)
    except ValueError as e:
        error = e
    try:
        converted = from_fnn_01(manager.restore(step), like)
    except ValueError:
        converted = None
    if converted is None:
        raise error
    return converted


def from_fnn_01(tree, like: dict):
    """A run saved by fnn 0.1's `fit` (`tree`, read without a template) in the layout of
    `like`; None if `tree` is not such a run or does not fit `like` leaf for leaf."""
    old = tree.get("train_state") if isinstance(tree, dict) else None
    if getattr(old, "_fields", None) != _FNN_01_TRAIN_STATE:
        return None
    now = like["train_state"]
    try:
        opt_state = now.opt_state._replace(**old.opt_state._asdict(), lr_scale=old.lr_scale)
    except (AttributeError, TypeError, ValueError):
        return None
    converted = {"train_state": now._replace(opt_state=opt_state, model_state=old.model_state,
                                             key=old.key, epoch=old.epoch)}
    converted.update({"reduce_lr" if k == "plateau" else k: v for k, v in tree.items()
                      if k != "train_state"})
    flat, flat_like = (jax.tree_util.tree_flatten_with_path(t)[0] for t in (converted, like))
    same = len(flat) == len(flat_like) and all(
        p == q and np.shape(a) == np.shape(b) and np.dtype(a.dtype) == np.dtype(b.dtype)
        for (p, a), (q, b) in zip(flat, flat_like))
    return jax.tree.unflatten(jax.tree.structure(like), [a for _, a in flat]) if same else None
