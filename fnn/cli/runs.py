"""What the `fnn` commands share: a run folder's config.json and checkpoints, the data
and model a config names, errors reported in one line, and the compilation cache."""
from __future__ import annotations

import json
import math
import os
from typing import NamedTuple

from fnn import optim
from fnn._atomic import atomic_file
from fnn._checks import is_int
from fnn.cli.parser import AUGMENTATIONS, DATASETS, LOG_FORMATS, MAX_SEED, MODELS, OPTIMIZERS

__all__ = [
    "Failure", "Data", "make_optimizer", "write_json", "fail", "CONFIG_KEYS", "read_config",
    "latest_epoch", "prepare", "eval_batch", "one_line", "damaged_checkpoint",
    "enable_compile_cache", "augmentation", "log_rules",
]


class Failure(Exception):
    """A failure `main` reports as one line with exit status 1 (not a usage error)."""


def make_optimizer(name: str, lr: float):
    """The optimizer registered as `name` (`fnn.optim.REGISTRY`), at learning rate `lr`."""
    return optim.REGISTRY[name].make(lr)


class Data(NamedTuple):
    train: tuple
    test: tuple
    num_classes: int
    source: str


# the official Fashion-MNIST training set starts with these labels (MNIST's: 5 0 4 1 9 ...)
_FASHION_FIRST_LABELS = [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]


def _load_dataset(name: str, seed: int, data_dir: str | None) -> Data:
    """Train and test splits as numpy arrays (sets without a test split: 80 % / 20 %)."""
    import jax

    from fnn.data import train_val_split

    entry = DATASETS[name]
    train, test = entry.load(jax.random.key(seed), data_dir)
    source = entry.source(data_dir, seed)
    if name == "mnist" and train[1][:10].tolist() == _FASHION_FIRST_LABELS:
        source = ("Fashion-MNIST files read as --dataset mnist (their first ten training "
                  "labels are Fashion-MNIST's; use --dataset fashion-mnist): " + source)
    if test is None:
        train, test = train_val_split(jax.random.key(seed + 1), *train, val_fraction=0.2)
        source += ", 20 % held out for testing"
    return Data(train, test, entry.num_classes, source)


def write_json(path: str, obj) -> None:
    """Write `obj` as JSON atomically: `path` holds the old or the new content, never a part."""
    text = json.dumps(obj, indent=2) + "\n"  # serialise first: a bad value writes nothing
    with atomic_file(path, "fnn") as f:
        f.write(text.encode())


def fail(parser, message: str):
    parser.error(message)  # exits with status 2


# what `fnn train` and `fnn evaluate` read from a run folder's config.json
CONFIG_KEYS = ("model", "dataset", "optimizer", "lr", "epochs", "batch_size", "val_fraction",
               "seed")



def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# config.json entry -> (what it must be, test); the same rules as the options that set them
_CONFIG_RULES = {
    "model": ("one of " + ", ".join(MODELS), lambda v: isinstance(v, str) and v in MODELS),
    "dataset": ("one of " + ", ".join(DATASETS),
                lambda v: isinstance(v, str) and v in DATASETS),
    "optimizer": ("one of " + ", ".join(OPTIMIZERS),
                  lambda v: isinstance(v, str) and v in OPTIMIZERS),
    "lr": ("a positive number", lambda v: _is_real(v) and v > 0),
    "epochs": ("a positive integer", lambda v: is_int(v) and v >= 1),
    "batch_size": ("a positive integer", lambda v: is_int(v) and v >= 1),
    "val_fraction": ("a number in (0, 1)", lambda v: _is_real(v) and 0 < v < 1),
    "seed": (f"an integer from 0 to {MAX_SEED}",
             lambda v: is_int(v) and 0 <= v <= MAX_SEED),
    "limit": ("null or an integer >= 2", lambda v: v is None or is_int(v) and v >= 2),
    "data_dir": ("null or a folder path", lambda v: v is None or isinstance(v, str)),
    "augment": ("null or a list of names from " + ", ".join(AUGMENTATIONS),
                lambda v: _names_or_null(v, AUGMENTATIONS)),
    "log": ("null or a list of names from " + ", ".join(LOG_FORMATS),
            lambda v: _names_or_null(v, LOG_FORMATS)),
    "metrics": ("null or a list of metric names",
                lambda v: v is None or (isinstance(v, list) and all(isinstance(m, str)
                                                                    for m in v))),
}


def _names_or_null(v, allowed) -> bool:
    return v is None or (isinstance(v, list) and all(isinstance(n, str) and n in allowed
                                                     for n in v))


def augmentation(names):
    """The augmentation `--augment` names (`AUGMENTATIONS`), chained in the order given, or
    None: `crop` is `fnn.augment.random_crop` with padding 2, `flip` `random_flip`."""
    if not names:
        return None
    import functools

    from fnn import augment

    table = {"crop": functools.partial(augment.random_crop, padding=2),
             "flip": augment.random_flip}
    return augment.chain(*(table[n] for n in names))


def log_rules(formats, run_dir: str, every: int) -> list:
    """The logging rules `--log` names: per epoch and every `every` steps, into the run
    folder (`epochs.jsonl`/`steps.jsonl`, `.csv`, `tensorboard/`)."""
    from fnn.train import log_epochs, log_steps

    rules = []
    for f in formats or ():
        if f == "tensorboard":
            path = os.path.join(run_dir, "tensorboard")
            rules += [log_epochs(os.path.join(path, "epochs"), format=f),
                      *log_steps(os.path.join(path, "steps"), every=every, format=f)]
        else:
            rules += [log_epochs(os.path.join(run_dir, f"epochs.{f}"), format=f),
                      *log_steps(os.path.join(run_dir, f"steps.{f}"), every=every, format=f)]
    return rules


def read_config(parser, run_dir: str, keys=CONFIG_KEYS) -> dict:
    """`run_dir`/config.json; a usage error naming the file if it is missing or damaged."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        fail(parser, f"{run_dir} is not a run folder (no config.json)")
    try:
        with open(path) as f:
            config = json.load(f)
    except ValueError as e:  # not JSON, not UTF-8
        fail(parser, f"{path} is damaged: not valid JSON ({e})")
    if not isinstance(config, dict):
        fail(parser, f"{path} is damaged: expected a JSON object, got {type(config).__name__}")
    missing = [k for k in keys if k not in config]
    if missing:
        fail(parser, f"{path} is damaged: it lacks {', '.join(missing)}")
    for key, (expected, ok) in _CONFIG_RULES.items():
        if key in config and not ok(config[key]):
            fail(parser, f"{path} is damaged: {key} must be {expected}, got "
                          f"{json.dumps(config[key])}")
    return config


def latest_epoch(run_dir: str) -> int:
    """The epoch of the run's latest checkpoint (0 when there is none)."""
    from fnn.checkpoint import CheckpointManager
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):  # the manager would create it: a reader must not
        return 0
    return CheckpointManager(folder).latest() or 0

def prepare(config: dict, parser=None, config_path: str | None = None):
    """Data splits, model and input shape for a config (shared by train and evaluate).
    A model that cannot take the data set's examples is a usage error with `parser`,
    blamed on the options, or on `config_path` when the config was read from a run."""
    import jax

    from fnn.data import train_val_split

    try:
        data = _load_dataset(config["dataset"], config["seed"], config.get("data_dir"))
    except ValueError as e:  # damaged data files: read_idx names the file and the defect
        raise Failure(one_line(e)) from None
    x, y = data.train
    if config.get("limit"):
        x, y = x[: config["limit"]], y[: config["limit"]]
    (x_tr, y_tr), val = train_val_split(jax.random.key(config["seed"]), x, y,
                                        val_fraction=config["val_fraction"])
    model = MODELS[config["model"]].build(data.num_classes)
    shape = tuple(x.shape[1:])
    try:
        jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), shape))
    except (ValueError, TypeError) as e:
        dash = "" if config_path else "--"
        message = (f"{dash}model {config['model']} cannot take {dash}dataset "
                   f"{config['dataset']} examples of shape {shape}: {str(e).splitlines()[0]}")
        if config_path:
            message = f"{config_path} is damaged: {message}"
        if parser is not None:
            fail(parser, message)
        raise
    return data, (x_tr, y_tr), val, model, shape


def eval_batch(config: dict, batch_size: int = 256) -> int:
    """One evaluation batch size for validation and test (at most the validation set's
    size), so a single compiled evaluation program serves both."""
    return max(1, min(batch_size, config.get("num_val") or batch_size))


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def damaged_checkpoint(manager, error: ValueError) -> str:
    """The load error, and how to go back to the checkpoint before a damaged latest one."""
    steps = manager.all_steps()
    damaged = len(steps) > 1 and f"{manager.path(steps[-1])} is not a valid" in str(error)
    hint = (f" Move {manager.path(steps[-1])} away to continue from epoch {steps[-2]}."
            if damaged else "")
    return one_line(error) + hint



def enable_compile_cache() -> None:
    """Keep compiled XLA programs between runs (JAX's persistent compilation cache).

    A second `fnn train`/`fnn evaluate` of the same model then starts in seconds.
    The folder is `$JAX_COMPILATION_CACHE_DIR` when set, else `$FNN_CACHE_DIR/jax`,
    else `$XDG_CACHE_HOME/fnn/jax` (default `~/.cache/fnn/jax`); set
    `FNN_CACHE_DIR=off` to disable it.
    """
    import jax

    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return  # jax reads it itself
    base = os.environ.get("FNN_CACHE_DIR")
    if base == "off":
        return
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(xdg, "fnn")
    try:
        path = os.path.join(base, "jax")
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except (OSError, AttributeError, ValueError):  # read-only home, old jax: no cache
        pass

