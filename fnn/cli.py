"""The `fnn` command: train, evaluate and summarise models from the shell.

    fnn train                              # LeNet-5 on MNIST with Adam, a few minutes on a CPU
    fnn train --model mlp --dataset spiral --epochs 200 --batch-size 32
    fnn train --resume runs/lenet5-mnist-20250101-120000 --epochs 20
    fnn evaluate runs/lenet5-mnist-20250101-120000
    fnn summary --model resnet20

Each `fnn train` writes a run folder `<out>/<name>/`:

    config.json     the resolved options, data set sizes, versions
    history.json    per-epoch loss/accuracy (train and validation), rewritten every epoch
    checkpoints/    ckpt_<epoch>.npz: the whole TrainState (the last 3 epochs)
    curves.png      loss and accuracy curves (when matplotlib is installed)
    results.json    final test loss and accuracy, training time

Invalid arguments (also a damaged config.json) exit with status 2 and a one-line
message; a training error (non-finite loss, missing or damaged data files, a damaged
checkpoint) exits with status 1.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable
from typing import NamedTuple

from fnn import datasets, models, optim
from fnn._atomic import atomic_file

EXIT_USAGE = 2


class _Failure(Exception):
    """A failure `main` reports as one line with exit status 1 (not a usage error)."""


# ---------------------------------------------------------------------------
# the tables: the library's registries of named models, optimizers and data sets

MODELS = models.REGISTRY  # name -> NamedModel(build, input_shape, about)
DATASETS = datasets.REGISTRY  # name -> NamedDataSet(load, num_classes, about, source)
OPTIMIZERS = tuple(optim.REGISTRY)  # name -> NamedOptimizer(make, default_lr)
DEFAULT_LR = {name: entry.default_lr for name, entry in optim.REGISTRY.items()}


def _optimizer(name: str, lr: float):
    return optim.REGISTRY[name].make(lr)


class _Data(NamedTuple):
    train: tuple
    test: tuple
    num_classes: int
    source: str


def _load_dataset(name: str, seed: int, data_dir: str | None) -> _Data:
    """Train and test splits as numpy arrays (sets without a test split: 80 % / 20 %)."""
    import jax

    from fnn.data import train_val_split

    entry = DATASETS[name]
    train, test = entry.load(jax.random.key(seed), data_dir)
    source = entry.source(data_dir, seed)
    if test is None:
        train, test = train_val_split(jax.random.key(seed + 1), *train, val_fraction=0.2)
        source += ", 20 % held out for testing"
    return _Data(train, test, entry.num_classes, source)


def _default_model(dataset: str) -> str:
    return "lenet5" if dataset == "mnist" else "mlp"


# ---------------------------------------------------------------------------
# argument parsing


class _Parser(argparse.ArgumentParser):
    """argparse, but every usage error is ONE line on stderr and exit status 2."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _number(convert: Callable, expected: str, ok: Callable) -> Callable:
    """An argparse `type=`: `convert(text)`, refused with "expected ..." unless `ok(value)`."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text}")
        return value

    return parse


_positive_int = _number(int, "a positive integer", lambda v: v >= 1)
# jax.random.key takes a C long; the data split uses seed + 1
_MAX_SEED = 2**63 - 2
_seed = _number(int, f"an integer from 0 to {_MAX_SEED}", lambda v: 0 <= v <= _MAX_SEED)
_positive_float = _number(float, "a positive number", lambda v: math.isfinite(v) and v > 0)
_fraction = _number(float, "a number in (0, 1)", lambda v: 0.0 < v < 1.0)
# at least one training and one validation example
_limit = _number(int, "an integer >= 2", lambda v: v >= 2)


def _shape(text: str) -> tuple:
    try:
        shape = tuple(int(s) for s in text.replace("x", ",").split(",") if s.strip())
    except ValueError:
        shape = ()
    if not shape or any(s < 1 for s in shape):
        raise argparse.ArgumentTypeError(
            f"expected positive integers separated by commas, e.g. 28,28,1, got {text!r}")
    return shape


def _listing(table: dict) -> str:
    """One `  name       about` line per entry; a second line of `about` is indented under
    the first."""
    return "\n".join(f"  {k:<10} " + v.about.replace("\n", "\n" + " " * 13)
                     for k, v in table.items())


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = _Parser(
        prog="fnn", formatter_class=fmt,
        description="Train, evaluate and inspect fnn models (pure-function neural networks "
                    "on JAX).",
    )
    from fnn import __version__
    parser.add_argument("--version", action="version", version=f"fnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser(
        "train", formatter_class=fmt, help="train a model, writing a run folder",
        description="Train a model and write a run folder OUT/NAME/ with config.json,\n"
                    "history.json, checkpoints/ (every epoch), curves.png and results.json.\n"
                    "With no options: LeNet-5 on MNIST, Adam (lr 1e-3), 10 epochs of batch 32,\n"
                    "10 % of the training set held out for validation.",
        epilog=f"models:\n{_listing(MODELS)}\n\ndata sets:\n{_listing(DATASETS)}\n\n"
               f"optimizers and their default learning rates:\n  "
               + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + "\n\n"
               "A run interrupted (Ctrl-C, crash) resumes from its last finished epoch with\n"
               "'fnn train --resume RUN_DIR' and ends bit-identical to an uninterrupted run.\n"
               "Compiled programs are cached in ~/.cache/fnn/jax (or $FNN_CACHE_DIR/jax,\n"
               "$JAX_COMPILATION_CACHE_DIR); FNN_CACHE_DIR=off disables the cache.")
    t.add_argument("--model", choices=sorted(MODELS), metavar="NAME",
                   help="model (default: lenet5 for mnist, mlp for the others); "
                        "one of: " + ", ".join(MODELS))
    t.add_argument("--dataset", choices=list(DATASETS), metavar="NAME",
                   help="data set (default: mnist); one of: " + ", ".join(DATASETS))
    t.add_argument("--optimizer", choices=OPTIMIZERS, metavar="NAME",
                   help="optimizer (default: adam); one of: " + ", ".join(OPTIMIZERS))
    t.add_argument("--lr", type=_positive_float, metavar="LR",
                   help="learning rate (default: depends on the optimizer, see below)")
    t.add_argument("--epochs", type=_positive_int, metavar="N",
                   help="number of epochs (default: 10); with --resume: the run's new total, "
                        "at least the epochs it already holds (default: its saved total)")
    t.add_argument("--batch-size", type=_positive_int, metavar="N",
                   help="mini-batch size (default: 32; a larger one than the training set "
                        "means the whole set)")
    t.add_argument("--val-fraction", type=_fraction, metavar="F",
                   help="fraction of the training set held out for validation (default: 0.1)")
    t.add_argument("--seed", type=_seed, metavar="N",
                   help="random seed for init, shuffling and splits (default: 0)")
    t.add_argument("--limit", type=_limit, metavar="N",
                   help="use only the first N training examples, N >= 2 (quick tests)")
    t.add_argument("--data-dir", metavar="DIR",
                   help="folder with the MNIST IDX files, for --dataset mnist only "
                        "(default: $FNN_DATA_DIR)")
    t.add_argument("--out", metavar="DIR", help="folder for run folders (default: runs)")
    t.add_argument("--name", metavar="NAME",
                   help="run folder name (default: MODEL-DATASET-YYYYmmdd-HHMMSS)")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its latest checkpoint, with its "
                        "saved options (only --epochs and --no-progress may be given)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is also off when stderr is not a terminal)")

    e = sub.add_parser(
        "evaluate", formatter_class=fmt, help="test loss, accuracy and confusion matrix of a run",
        description="Load the latest checkpoint of a run folder and print the loss, the "
                    "accuracy and the confusion matrix (rows: true class, columns: predicted) "
                    "on its test split.")
    e.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by 'fnn train'")
    e.add_argument("--split", choices=("test", "train"), default="test",
                   help="which split to evaluate (default: test)")
    e.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                   help="evaluation batch size (default: 256)")

    s = sub.add_parser(
        "summary", formatter_class=fmt, help="per-layer table of a model",
        description="Print a model's layers with output shapes, parameters, MACs and FLOPs.",
        epilog=f"models:\n{_listing(MODELS)}")
    s.add_argument("--model", choices=sorted(MODELS), metavar="NAME", default="lenet5",
                   help="model (default: lenet5); one of: " + ", ".join(MODELS))
    s.add_argument("--input-shape", type=_shape, metavar="H,W,C",
                   help="shape of one example (default: the model's usual input, "
                        "e.g. 28,28,1 for lenet5)")
    s.add_argument("--num-classes", type=_positive_int, default=10, metavar="N",
                   help="number of output classes (default: 10)")
    parser.epilog = (
        "commands and their options (what each option means: 'fnn COMMAND --help'):\n"
        + "".join(p.format_usage() for p in (t, e, s))
        + "\nQuick start: 'fnn train' trains LeNet-5 on MNIST in a few minutes on a CPU.")
    return parser


# ---------------------------------------------------------------------------
# train


_TRAIN_DEFAULTS = {"dataset": "mnist", "optimizer": "adam", "lr": None, "epochs": 10,
                   "batch_size": 32, "val_fraction": 0.1, "seed": 0, "limit": None,
                   "data_dir": None}
_RESUMABLE = ("epochs", "no_progress", "resume")


def _write_json(path: str, obj) -> None:
    """Write `obj` as JSON atomically: `path` holds the old or the new content, never a part."""
    text = json.dumps(obj, indent=2) + "\n"  # serialise first: a bad value writes nothing
    with atomic_file(path, "fnn") as f:
        f.write(text.encode())


def _fail(parser, message: str):
    parser.error(message)  # exits with status 2


# what `fnn train` and `fnn evaluate` read from a run folder's config.json
_CONFIG_KEYS = ("model", "dataset", "optimizer", "lr", "epochs", "batch_size", "val_fraction",
                "seed")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


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
    "epochs": ("a positive integer", lambda v: _is_int(v) and v >= 1),
    "batch_size": ("a positive integer", lambda v: _is_int(v) and v >= 1),
    "val_fraction": ("a number in (0, 1)", lambda v: _is_real(v) and 0 < v < 1),
    "seed": (f"an integer from 0 to {_MAX_SEED}",
             lambda v: _is_int(v) and 0 <= v <= _MAX_SEED),
    "limit": ("null or an integer >= 2", lambda v: v is None or _is_int(v) and v >= 2),
    "data_dir": ("null or a folder path", lambda v: v is None or isinstance(v, str)),
}


def _read_config(parser, run_dir: str, keys=_CONFIG_KEYS) -> dict:
    """`run_dir`/config.json; a usage error naming the file if it is missing or damaged."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        _fail(parser, f"{run_dir} is not a run folder (no config.json)")
    try:
        with open(path) as f:
            config = json.load(f)
    except ValueError as e:  # not JSON, not UTF-8
        _fail(parser, f"{path} is damaged: not valid JSON ({e})")
    if not isinstance(config, dict):
        _fail(parser, f"{path} is damaged: expected a JSON object, got {type(config).__name__}")
    missing = [k for k in keys if k not in config]
    if missing:
        _fail(parser, f"{path} is damaged: it lacks {', '.join(missing)}")
    for key, (expected, ok) in _CONFIG_RULES.items():
        if key in config and not ok(config[key]):
            _fail(parser, f"{path} is damaged: {key} must be {expected}, got "
                          f"{json.dumps(config[key])}")
    return config


def _latest_epoch(run_dir: str) -> int:
    """The epoch of the run's latest checkpoint (0 when there is none)."""
    from fnn.checkpoint import CheckpointManager
    folder = os.path.join(run_dir, "checkpoints")
    if not os.path.isdir(folder):  # the manager would create it: a reader must not
        return 0
    return CheckpointManager(folder).latest() or 0


def _claim_run_dir(parser, out: str, name: str | None, base: str) -> str:
    """Create a new, empty run folder `out/name`, or `out/base`, `out/base-2`, ... with no
    name. `os.mkdir` fails when the folder exists, so two runs never share one, even
    when started in the same second."""
    os.makedirs(out, exist_ok=True)
    i = 1
    while True:
        run_dir = os.path.join(out, name or (base if i == 1 else f"{base}-{i}"))
        try:
            os.mkdir(run_dir)
            return run_dir
        except FileExistsError:
            if name:
                _name_taken(parser, run_dir)
            i += 1


def _nearest_existing(path: str) -> str:
    """`path`, or its nearest ancestor that exists (`.` for a relative path with none)."""
    path = os.path.normpath(path)
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent in ("", path):
            return parent or "."
        path = parent
    return path


def _name_taken(parser, run_dir: str):
    _fail(parser, f"run folder {run_dir} already exists; choose another --name or "
                  f"continue it with --resume {run_dir}")


def _resolve_train_config(parser, args) -> tuple[dict, str | None]:
    """The run's config, and its folder with `--resume RUN_DIR` (None: a new run, whose
    folder `_claim_run_dir` creates once the data and model are ready)."""
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                 if k not in _RESUMABLE + ("command",) and v is not None]
        if given:
            _fail(parser, f"--resume uses the run's saved options; do not combine it with "
                          f"{', '.join(given)} (only --epochs and --no-progress)")
        run_dir = args.resume
        config = _read_config(parser, run_dir)
        done = _latest_epoch(run_dir)
        finished = [f for f in ("history.json", "results.json")
                    if os.path.exists(os.path.join(run_dir, f))]
        if not done and finished:  # both are written only after a checkpoint was saved
            _fail(parser, f"{run_dir} has no checkpoint to resume from, but its "
                          f"{' and '.join(finished)} show finished epochs: its checkpoints/ "
                          f"folder was removed or emptied, and training again from epoch 1 "
                          f"would overwrite them; start a new run instead")
        if args.epochs is not None:
            if args.epochs < done:
                _fail(parser, f"--epochs {args.epochs}: {run_dir} already holds {done} epochs; "
                              f"give --epochs {done} or more")
            config["epochs"] = args.epochs
        return config, run_dir
    config = {k: (getattr(args, k) if getattr(args, k) is not None else v)
              for k, v in _TRAIN_DEFAULTS.items()}
    config["model"] = args.model or _default_model(config["dataset"])
    if config["lr"] is None:
        config["lr"] = DEFAULT_LR[config["optimizer"]]
    if args.data_dir is not None and config["dataset"] != "mnist":
        _fail(parser, f"--data-dir is only read for --dataset mnist; --dataset "
                      f"{config['dataset']} is generated or bundled (leave --data-dir out)")
    out = args.out or "runs"
    existing = _nearest_existing(out)  # a file there, or above: say so before the data loads
    if not os.path.isdir(existing):
        what = (f"--out {out}" if existing == os.path.normpath(out)
                else f"{existing} (in --out {out})")
        _fail(parser, f"{what} is a file, not a folder; give a folder for the run folders")
    if args.name is not None:
        if not args.name or os.sep in args.name or args.name in (".", ".."):
            _fail(parser, f"--name must be a plain folder name, got {args.name!r}")
        run_dir = os.path.join(out, args.name)
        if os.path.exists(run_dir):  # say so before loading the data; _claim_run_dir decides
            _name_taken(parser, run_dir)
    return config, None


def _prepare(config: dict, parser=None, config_path: str | None = None):
    """Data splits, model and input shape for a config (shared by train and evaluate).
    A model that cannot take the data set's examples is a usage error with `parser`,
    blamed on the options, or on `config_path` when the config was read from a run."""
    import jax

    from fnn.data import train_val_split

    try:
        data = _load_dataset(config["dataset"], config["seed"], config.get("data_dir"))
    except ValueError as e:  # damaged data files: read_idx names the file and the defect
        raise _Failure(_one_line(e)) from None
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
            _fail(parser, message)
        raise
    return data, (x_tr, y_tr), val, model, shape


def _eval_batch(config: dict, batch_size: int = 256) -> int:
    """One evaluation batch size for validation and test (at most the validation set's
    size), so a single compiled evaluation program serves both."""
    return max(1, min(batch_size, config.get("num_val") or batch_size))


def _format_logs(logs: dict) -> str:
    parts = []
    for k in ("loss", "accuracy", "val_loss", "val_accuracy"):
        if k in logs:
            parts.append(f"{k} {logs[k]:.4f}")
    if "lr" in logs:
        parts.append(f"lr {logs['lr']:.3g}")
    if "time" in logs:
        parts.append(f"{logs['time']:.1f}s")
    return "  ".join(parts)


def _train(parser, args) -> int:
    config, run_dir = _resolve_train_config(parser, args)
    _enable_compile_cache()
    config_path = os.path.join(run_dir, "config.json") if run_dir else None
    data, train_data, val_data, model, shape = _prepare(config, parser, config_path)

    import jax

    from fnn import losses, train
    from fnn.checkpoint import CheckpointManager
    from fnn.summary import summary

    n_params = summary(model, shape).total_params
    config.update({
        "num_classes": data.num_classes, "input_shape": list(shape),
        "num_train": int(len(train_data[1])), "num_val": int(len(val_data[1])),
        "num_test": int(len(data.test[1])), "data_source": data.source,
        "params": int(n_params),
    })
    resuming = run_dir is not None
    ckpt_dir = os.path.join(run_dir, "checkpoints") if resuming else None
    history: dict = {}
    if resuming and _latest_epoch(run_dir):
        manager = CheckpointManager(ckpt_dir)
        try:  # read all of it (every CRC) before anything in the run folder is rewritten
            history = manager.load_metadata().get("history", {})
            manager.restore()
        except ValueError as e:
            print(f"fnn train: error: cannot resume {run_dir}: "
                  f"{_damaged_checkpoint(manager, e)}", file=sys.stderr)
            return 1
    if not resuming:
        run_dir = _claim_run_dir(
            parser, args.out or "runs", args.name,
            f"{config['model']}-{config['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}")
    from fnn import __version__
    config.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    config.update({"fnn_version": __version__, "jax_version": jax.__version__})
    _write_json(os.path.join(run_dir, "config.json"), config)

    ckpt_dir = os.path.join(run_dir, "checkpoints")
    batch_size = min(config["batch_size"], len(train_data[1]))
    batch_note = (f" (all the training examples: --batch-size {config['batch_size']} is more "
                  f"than {batch_size})" if batch_size < config["batch_size"] else "")
    print(f"{'resuming' if resuming else 'training'} {config['model']} ({n_params:,} params) "
          f"on {config['dataset']}: {config['num_train']:,} train / {config['num_val']:,} val / "
          f"{config['num_test']:,} test examples of shape {tuple(shape)}")
    limit, available = config.get("limit"), len(data.train[1])
    limit_note = (f" (all of its {available:,} training examples: --limit {limit} is more)"
                  if limit and limit > available else "")
    print(f"  data: {data.source}{limit_note}")
    print(f"  {config['optimizer']} lr {config['lr']:g}, batch {batch_size}{batch_note}, "
          f"{config['epochs']} epochs, seed {config['seed']} -> {run_dir}")
    if resuming and history:
        print(f"  continuing after epoch {len(history.get('loss', []))}")
    sys.stdout.flush()

    def on_epoch_end(epoch, logs):
        for k, v in logs.items():
            if k != "time":
                history.setdefault(k, []).append(v)
        _write_json(os.path.join(run_dir, "history.json"), history)
        print(f"epoch {epoch}/{config['epochs']}  {_format_logs(logs)}", flush=True)

    loss = losses.softmax_cross_entropy
    optimizer = _optimizer(config["optimizer"], config["lr"])
    start = time.perf_counter()
    try:
        ts, history = train.fit(
            model, optimizer, loss, train_data, epochs=config["epochs"],
            batch_size=batch_size, key=jax.random.key(config["seed"]), val_data=val_data,
            checkpoint_dir=ckpt_dir, progress=False if args.no_progress else "transient",
            eval_batch_size=_eval_batch(config),
            on_epoch_end=on_epoch_end)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: fnn train --resume {run_dir}", file=sys.stderr)
        return 130
    except FloatingPointError:
        print(f"fnn train: error: {_diverged_message(run_dir, config)}", file=sys.stderr)
        return 1
    except ValueError as e:  # e.g. a checkpoint that does not fit the run's model
        print(f"fnn train: error: {_one_line(e)}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    _write_json(os.path.join(run_dir, "history.json"), history)

    test = train.evaluate(model, ts.params, ts.model_state, loss, *data.test,
                          batch_size=_eval_batch(config))
    results = {"test_loss": test["loss"], "test_accuracy": test.get("accuracy"),
               "epochs": int(ts.epoch), "train_seconds": round(seconds, 2)}
    _write_json(os.path.join(run_dir, "results.json"), results)
    print(f"test  loss {test['loss']:.4f}  accuracy {test.get('accuracy', float('nan')):.4f}  "
          f"({data.source.split(',')[0]}, {config['num_test']:,} examples)")
    message = _plot_curves(history, os.path.join(run_dir, "curves.png"))
    print(message)
    print(f"run folder: {run_dir}  (evaluate with: fnn evaluate {run_dir})")
    return 0


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def _damaged_checkpoint(manager, error: ValueError) -> str:
    """The load error, and how to go back to the checkpoint before a damaged latest one."""
    steps = manager.all_steps()
    damaged = len(steps) > 1 and f"{manager.path(steps[-1])} is not a valid" in str(error)
    hint = (f" Move {manager.path(steps[-1])} away to continue from epoch {steps[-2]}."
            if damaged else "")
    return _one_line(error) + hint


def _diverged_message(run_dir: str, config: dict) -> str:
    """What happened and what to do when the loss or the weights became NaN or infinite."""
    done = _latest_epoch(run_dir)
    saved = (f"the checkpoint of epoch {done} in {os.path.join(run_dir, 'checkpoints')} is "
             f"the last good one (fnn evaluate {run_dir} uses it)" if done else
             "no checkpoint was saved")
    return (f"the loss or the weights became NaN or infinite in epoch {done + 1}, so training "
            f"stopped; {saved}. Start a new run with a smaller --lr (this one used "
            f"{config['lr']:g}) or another --optimizer.")


def _plot_curves(history: dict, path: str) -> str:
    """Write loss and accuracy curves (train and validation) to `path`, if matplotlib exists
    (`fnn.plot.training_curves`, which replaces the old picture atomically)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed: skipped curves.png (pip install matplotlib)"
    from fnn.plot import training_curves

    training_curves(history, path)
    return f"wrote {path}"


# ---------------------------------------------------------------------------
# evaluate and summary


def _confusion_matrix(y_true, y_pred, num_classes: int):
    import numpy as np
    m = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def _format_confusion(m) -> str:
    k = m.shape[0]
    width = max(len(str(int(m.max()))), len(str(k - 1)), 3)
    lines = ["true \\ predicted".ljust(8)]
    header = " " * 6 + " ".join(f"{j:>{width}}" for j in range(k))
    lines = [header] + [f"{i:>4}  " + " ".join(f"{int(v):>{width}}" for v in row)
                        for i, row in enumerate(m)]
    return "rows: true class, columns: predicted class\n" + "\n".join(lines)


def _evaluate(parser, args) -> int:
    config = _read_config(parser, args.run_dir)
    _enable_compile_cache()

    import jax
    import numpy as np

    from fnn import losses, train
    from fnn.checkpoint import CheckpointManager

    step = _latest_epoch(args.run_dir)  # before the manager, which would create the folder
    if not step:
        print(f"fnn evaluate: error: {args.run_dir} has no checkpoint yet", file=sys.stderr)
        return 1
    manager = CheckpointManager(os.path.join(args.run_dir, "checkpoints"))
    data, train_data, _, model, shape = _prepare(
        config, parser, os.path.join(args.run_dir, "config.json"))
    saved = config.get("data_source")
    if saved and saved != data.source:  # e.g. MNIST's IDX files appeared after training
        print(f"fnn evaluate: warning: the run was trained on {saved}, but its data set now "
              f"reads {data.source}", file=sys.stderr)
    optimizer = _optimizer(config["optimizer"], config["lr"])
    like = {"train_state": train.init_train_state(model, optimizer, jax.random.key(0), shape)}
    try:
        ts = train.restore_tree(manager, step, like)["train_state"]  # also fnn 0.1's runs
    except ValueError as e:
        print(f"fnn evaluate: error: {_damaged_checkpoint(manager, e)}", file=sys.stderr)
        return 1
    x, y = data.test if args.split == "test" else train_data
    loss = losses.softmax_cross_entropy
    batch = _eval_batch(config, args.batch_size)
    metrics = train.evaluate(model, ts.params, ts.model_state, loss, x, y, batch)
    logits = train.predict(model, ts.params, ts.model_state, x, batch)
    pred = np.asarray(np.argmax(np.asarray(logits), axis=-1))
    print(f"{config['model']} on {config['dataset']} ({args.split} split, {len(y):,} examples), "
          f"checkpoint of epoch {step} in {args.run_dir}")
    print(f"loss {metrics['loss']:.4f}  accuracy {metrics.get('accuracy', float('nan')):.4f}")
    print(_format_confusion(_confusion_matrix(np.asarray(y), pred, data.num_classes)))
    return 0


def _summary(parser, args) -> int:
    from fnn.summary import summary
    spec = MODELS[args.model]
    shape = args.input_shape or spec.input_shape
    model = spec.build(args.num_classes)
    try:
        table = summary(model, shape)
    except (ValueError, TypeError) as e:
        _fail(parser, f"--model {args.model} cannot take --input-shape "
                      f"{','.join(map(str, shape))}: {str(e).splitlines()[0]}")
    print(table)
    return 0


def _enable_compile_cache() -> None:
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


def main(argv=None) -> int:
    """Entry point of the `fnn` console script and `python -m fnn`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    sub = parser._subparsers._group_actions[0].choices[args.command]
    handler = {"train": _train, "evaluate": _evaluate, "summary": _summary}[args.command]
    try:
        return handler(sub, args)
    except (_Failure, ImportError, OSError) as e:
        print(f"fnn {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside training (which names the run to resume)
        print(f"fnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
