"""Logging as rules (`fnn.train.rules`): per-epoch and per-step records as JSON lines,
CSV or TensorBoard event files.

    rules = [fnn.train.log_epochs("run/epochs.jsonl"),
             *fnn.train.log_steps("run/steps.csv", every=50, format="csv")]
    fnn.train.fit(..., rules=rules, checkpoint_dir="run/ckpt")

- `log_epochs(path, format=...)`: one record per epoch, `{"epoch": e, "loss": ...,
  "val_loss": ..., "time": seconds}` (the epoch's history entries).
- `log_steps(path, every=k, format=...)`: one record per `k` training steps,
  `{"epoch": e, "step": s, "loss": ..., "accuracy": ...}` (the means over those `k`
  steps; `s` is the number of updates done). It is two rules: a per-step rule that
  adds the step's metrics into a buffer **on the device** (inside the compiled step:
  no host transfer, no sync), and a per-epoch rule that reads the buffer once per
  epoch, writes the records and empties it.

Files are rewritten atomically after each epoch (`fnn._atomic`: a crash leaves the
previous or the new file, never a part), keeping only the records of earlier epochs:
a run resumed from a checkpoint continues its files without duplicates, even when it
crashed after logging an epoch it had not yet saved. TensorBoard files
(`format="tensorboard"`, `path` a folder; needs `pip install 'fnn[tensorboard]'`,
tensorboardX) are append-only event files; a resumed run writes TensorBoard's
`purge_step` marker, so TensorBoard drops the older events from that step on.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from fnn._atomic import atomic_file
from fnn._checks import BadType, BadValue, named, positive_int
from fnn.train.rules import EpochInfo, Rule, StepInfo

__all__ = ["FORMATS", "log_epochs", "log_steps"]

FORMATS = ("jsonl", "csv", "tensorboard")


def _format(format: str) -> str:
    if format not in FORMATS:
        raise BadValue(f"format must be one of {list(FORMATS)}, got {format!r}.")
    return format


def _path(path) -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise BadType(f"path must be a file path (a str or os.PathLike; a folder for "
                      f"format='tensorboard'), got {path!r}.")
    return os.fspath(path)


def _read_records(path: str, format: str) -> list[dict]:
    if not os.path.isfile(path):
        return []
    with open(path, newline="") as f:
        text = f.read()
    if format == "jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return [{k: float(v) for k, v in row.items() if v != ""}
            for row in csv.DictReader(io.StringIO(text))]


def _text(records: list[dict], format: str) -> str:
    if format == "jsonl":
        return "".join(json.dumps(r) + "\n" for r in records)
    columns = list(dict.fromkeys(k for r in records for k in r))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: _csv_value(v) for k, v in r.items()} for r in records)
    return out.getvalue()


def _csv_value(v):
    return int(v) if isinstance(v, float) and v.is_integer() and abs(v) < 2**53 else v


class _Writer:
    """Writes one log's records after each epoch; `epoch` is the epoch being logged."""

    def __init__(self, path: str, format: str, where: str):
        self.path, self.format, self.where = path, format, where
        self.tensorboard = None

    def write(self, epoch: int, records: list[dict], x_axis: str) -> None:
        if self.format == "tensorboard":
            self._tensorboard(records, x_axis)
            return
        kept = [r for r in _read_records(self.path, self.format) if r.get("epoch", 0) < epoch]
        with atomic_file(self.path, self.where) as f:
            f.write(_text(kept + records, self.format).encode())

    def _tensorboard(self, records: list[dict], x_axis: str) -> None:
        if self.tensorboard is None:
            try:
                from tensorboardX import SummaryWriter
            except ImportError:
                raise ImportError(f"{self.where}: format='tensorboard' needs tensorboardX: "
                                  "pip install 'fnn[tensorboard]' (or pip install "
                                  "tensorboardX).") from None
            first = int(records[0][x_axis]) if records else None
            self.tensorboard = SummaryWriter(self.path, purge_step=first)
        for r in records:
            for k, v in r.items():
                if k not in ("epoch", "step"):
                    self.tensorboard.add_scalar(k, v, int(r[x_axis]))
        self.tensorboard.flush()

    def close(self) -> None:
        if self.tensorboard is not None:
            self.tensorboard.close()
            self.tensorboard = None


@named("log_epochs")
def log_epochs(path, *, format: str = "jsonl", name: str | None = None) -> Rule:
    """A per-epoch rule that logs each epoch's record (the history entries of that epoch,
    plus `"epoch"` and `"time"` in seconds) to `path`.

    **Arguments:**
    - `path`: the file (`format` `"jsonl"` or `"csv"`) or the folder (`"tensorboard"`,
      scalars keyed by metric name, x-axis the epoch).
    - `format`: `"jsonl"` (one JSON object per line), `"csv"` (a header, one row per
      epoch) or `"tensorboard"` (event files through tensorboardX).
    - `name`: the rule's name (default `"log_epochs_<format>"`).

    Keeps no state; see `help(fnn.train.logging)` for atomic writes and resuming.
    """
    format, path = _format(format), _path(path)
    writer = _Writer(path, format, "log_epochs")

    def update(state, ts, info: EpochInfo):
        record = {"epoch": info.epoch, **{k: float(v) for k, v in info.logs.items()},
                  "time": time.perf_counter() - info.started}
        writer.write(info.epoch, [record], "epoch")
        return state, ts, info

    return Rule(lambda ts: None, update, name=name or f"log_epochs_{format}",
                final=lambda state, ts: (writer.close(), ts)[1])


_STEP_METRICS = ("loss", "accuracy")


@named("log_steps")
def log_steps(path, *, every: int = 10, format: str = "jsonl", capacity: int = 4096,
              name: str | None = None) -> tuple[Rule, Rule]:
    """Two rules that log the training loss and accuracy every `every` steps:
    `rules=[*log_steps("steps.jsonl", every=50)]`.

    Each record is `{"epoch": e, "step": s, "loss": m, "accuracy": a}`: the means of
    the `every` steps that end at update `s` (accuracy NaN, "nan" in JSON, when the loss
    has none). The per-step rule keeps the records in a device buffer of `capacity`
    entries (part of the train state, so it is checkpointed); the per-epoch rule
    copies them to the host once per epoch and writes them.

    **Arguments:**
    - `path`: the file (`"jsonl"`, `"csv"`) or folder (`"tensorboard"`, x-axis the step).
    - `every`: steps per record, a positive int (windows may span epochs).
    - `format`: `"jsonl"`, `"csv"` or `"tensorboard"`.
    - `capacity`: records the buffer holds per epoch (an epoch of more than
      `capacity · every` steps is a `ValueError` after that epoch, naming both).
    - `name`: the rules' base name (default `"log_steps_<format>"`; the per-step one
      is `name + "_buffer"`).

    **Returns** `(buffer_rule, writer_rule)`.
    """
    format, path = _format(format), _path(path)
    every, capacity = positive_int("every", every), positive_int("capacity", capacity)
    name = name or f"log_steps_{format}"
    tag = f"log_steps_{name}"          # how the writer finds its buffer in ts.rules
    writer = _Writer(path, format, "log_steps")

    def empty():
        zeros = jnp.zeros((capacity,), jnp.float32)
        return {tag: {"count": jnp.zeros((), jnp.int32), "window": jnp.zeros((), jnp.int32),
                      "sums": {m: jnp.zeros((), jnp.float32) for m in _STEP_METRICS},
                      "values": {m: zeros for m in _STEP_METRICS},
                      "step": jnp.zeros((capacity,), jnp.int32)}}

    def add(state, ts, info: StepInfo):
        s = state[tag]
        window = s["window"] + 1
        full = window == every
        sums = {m: s["sums"][m] + jnp.asarray(info.metrics.get(m, jnp.nan), jnp.float32)
                for m in _STEP_METRICS}
        slot = jnp.minimum(s["count"], capacity - 1)
        values = {m: s["values"][m].at[slot].set(
            jnp.where(full, sums[m] / every, s["values"][m][slot])) for m in _STEP_METRICS}
        steps = s["step"].at[slot].set(
            jnp.where(full, ts.opt_state.step.astype(jnp.int32), s["step"][slot]))
        new = {"count": s["count"] + full.astype(jnp.int32),
               "window": jnp.where(full, 0, window),
               "sums": {m: jnp.where(full, 0.0, v) for m, v in sums.items()},
               "values": values, "step": steps}
        return {tag: new}, ts, info

    def find(ts) -> int:
        for i, s in enumerate(ts.rules):
            if isinstance(s, dict) and tag in s:
                return i
        raise BadValue(f"log_steps: the rule {name!r} found no buffer in the train state; "
                       f"pass both rules: rules=[*log_steps(...)].")

    def flush(state, ts, info: EpochInfo):
        i = find(ts)
        s = jax.device_get(ts.rules[i][tag])
        count = int(s["count"])
        if count > capacity:
            raise BadValue(f"log_steps: epoch {info.epoch} made {count} records (one every "
                           f"{every} steps) but the buffer holds capacity={capacity}; raise "
                           "capacity or every.")
        records = []
        for j in range(count):
            r = {"epoch": info.epoch, "step": int(s["step"][j])}
            r.update({m: _finite_or_nan(s["values"][m][j]) for m in _STEP_METRICS})
            records.append(r)
        writer.write(info.epoch, records, "step")
        buffers = list(ts.rules)
        buffers[i] = {tag: dict(ts.rules[i][tag], count=jnp.zeros((), jnp.int32))}
        return state, ts._replace(rules=tuple(buffers)), info

    buffer = Rule(lambda ts: empty(), add, every="step", name=name + "_buffer")
    write = Rule(lambda ts: None, flush, name=name,
                 final=lambda state, ts: (writer.close(), ts)[1])
    return buffer, write


def _finite_or_nan(v) -> float:
    v = float(np.asarray(v))
    return v if math.isfinite(v) else float("nan")
