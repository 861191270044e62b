"""Training: the train state, a pure step, evaluation, rules, and `fit`.

The pieces, from the inside out (one module each):

- `state`: `TrainState` (optimizer state with the params, model state, the run's
  key, the epoch count, the per-step rules' states) and its key stream.
- `step`: `make_train_step(model, loss, optimizer, regularizer=None)` returns
  `step(train_state, x, y) -> (train_state, metrics)`: pure (`jit=False`) or
  jitted once with its `train_state` argument donated.
- `evaluation`: `evaluate` / `predict`, `train=False`, fixed-shape padded batches.
- `rules`: one protocol, `(init, update)` pure functions with their own state,
  for everything that acts between steps or epochs; `stopping`
  (`EarlyStopping`), `plateau` (`reduce_on_plateau`), `checkpointing`
  (`checkpoint`) and the small rules `callback`, `write_history`.
- `loop`: `fit(...)` (API.md §4), with a progress bar, checkpoints every
  epoch, exact resume, and guards against non-finite losses (`guards`);
  `options`: its `FitOptions` and the keyword shorthands for rules.
"""
from fnn.train.checkpointing import checkpoint, restore_tree
from fnn.train.evaluation import evaluate, predict
from fnn.train.loop import fit
from fnn.train.options import FitOptions
from fnn.train.plateau import PlateauState, ReduceOnPlateau, reduce_on_plateau
from fnn.train.rules import EpochInfo, Resumed, Rule, StepInfo, as_rule, callback, write_history
from fnn.train.state import TrainState, init_train_state
from fnn.train.step import make_train_step
from fnn.train.stopping import EarlyStopping, early_stopping

__all__ = [
    "TrainState", "init_train_state", "make_train_step", "evaluate", "predict",
    "EarlyStopping", "ReduceOnPlateau", "PlateauState", "reduce_on_plateau", "fit",
    "FitOptions", "Rule", "StepInfo", "EpochInfo", "Resumed", "as_rule", "early_stopping",
    "checkpoint", "restore_tree", "callback", "write_history",
]

from fnn.train.logging import log_epochs, log_steps  # noqa: E402  (logging as rules)

__all__ += ["log_epochs", "log_steps"]
