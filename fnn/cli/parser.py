"""The `fnn` command's argument parser, and the tables it offers: the library's
registries of named models, data sets and optimizers."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from fnn import datasets, models, optim, precision

__all__ = [
    "EXIT_USAGE", "MODELS", "DATASETS", "OPTIMIZERS", "DEFAULT_LR", "MAX_SEED", "build_parser",
    "AUGMENTATIONS", "LOG_FORMATS", "FILE_DATASETS", "names_list",
    "PRECISIONS",
]

EXIT_USAGE = 2


# ---------------------------------------------------------------------------
# the tables: the library's registries of named models, optimizers and data sets

MODELS = models.REGISTRY  # name -> NamedModel(build, input_shape, about)
DATASETS = datasets.REGISTRY  # name -> NamedDataSet(load, num_classes, about, source)
OPTIMIZERS = tuple(optim.REGISTRY)  # name -> NamedOptimizer(make, default_lr)
DEFAULT_LR = {name: entry.default_lr for name, entry in optim.REGISTRY.items()}
PRECISIONS = precision.POLICIES  # fnn.precision.get's names

# the data sets read from files (--data-dir), the augmentations and log formats by name
FILE_DATASETS = ("mnist", "fashion-mnist")
AUGMENTATIONS = ("crop", "flip")      # fnn.augment.random_crop (padding 2), random_flip
LOG_FORMATS = ("jsonl", "csv", "tensorboard")


def _metric_names() -> tuple:
    """The metric names `fit(metrics=...)` accepts."""
    from fnn.train.options import METRICS
    return tuple(METRICS)


def names_list(allowed) -> Callable:
    """An argparse `type=`: comma-separated names from `allowed()` (a tuple, or a function
    giving one), each at most once, e.g. `crop,flip`."""
    def parse(text: str) -> list:
        choices = allowed() if callable(allowed) else allowed
        names = [t.strip() for t in text.split(",")]
        for name in names:
            if name not in choices:
                raise argparse.ArgumentTypeError(
                    f"expected comma-separated names from {', '.join(choices)}, got {name!r}")
        if len(set(names)) != len(names):
            raise argparse.ArgumentTypeError(f"a name is repeated in {text!r}")
        return names
    return parse


# jax.random.key takes a C long; the data split uses seed + 1
MAX_SEED = 2**63 - 2


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
_seed = _number(int, f"an integer from 0 to {MAX_SEED}", lambda v: 0 <= v <= MAX_SEED)
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
                    "10 % of the training set held out for validation. --dataset fashion-mnist\n"
                    "defaults to its recipe: --model cnn, batch 128, 10 epochs, Adam lr 2e-3.",
        epilog=f"models:\n{_listing(MODELS)}\n\ndata sets:\n{_listing(DATASETS)}\n\n"
               f"optimizers and their default learning rates:\n  "
               + ", ".join(f"{k} {v:g}" for k, v in DEFAULT_LR.items()) + "\n\n"
               "A run interrupted (Ctrl-C, crash) resumes from its last finished epoch with\n"
               "'fnn train --resume RUN_DIR' and ends bit-identical to an uninterrupted run.\n"
               "Compiled programs are cached in ~/.cache/fnn/jax (or $FNN_CACHE_DIR/jax,\n"
               "$JAX_COMPILATION_CACHE_DIR); FNN_CACHE_DIR=off disables the cache.")
    t.add_argument("--model", choices=sorted(MODELS), metavar="NAME",
                   help="model (default: lenet5 for mnist, cnn for fashion-mnist, mlp for "
                        "the others); "
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
                   help="folder with the IDX files, for --dataset mnist or fashion-mnist "
                        "(default: $FNN_DATA_DIR, /usr/share/datasets/NAME, ~/.keras/datasets)")
    t.add_argument("--augment", type=names_list(AUGMENTATIONS), metavar="LIST",
                   help="augment the training images on the device, in this order: "
                        "crop (pad 2, random 28x28 crop), flip (left-right, p 0.5); "
                        "e.g. crop,flip (default: none)")
    t.add_argument("--log", type=names_list(LOG_FORMATS), metavar="LIST",
                   help="also log every epoch and every 50 steps into the run folder: "
                        "jsonl (epochs.jsonl, steps.jsonl), csv (epochs.csv, steps.csv), "
                        "tensorboard (tensorboard/, needs tensorboardX); e.g. jsonl,tensorboard")
    t.add_argument("--metrics", type=names_list(_metric_names), metavar="LIST",
                   help="metrics recorded in the history, from: "
                        + ", ".join(_metric_names()) + " (default: all of them)")
    t.add_argument("--out", metavar="DIR", help="folder for run folders (default: runs)")
    t.add_argument("--name", metavar="NAME",
                   help="run folder name (default: MODEL-DATASET-YYYYmmdd-HHMMSS)")
    t.add_argument("--resume", metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its latest checkpoint, with its "
                        "saved options (only --epochs and --no-progress may be given)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is also off when stderr is not a terminal)")
    t.add_argument("--precision", choices=PRECISIONS, metavar="NAME",
                   help="precision policy (default: float32); one of: " + ", ".join(PRECISIONS)
                        + "; with --resume: the policy from here on (master params stay float32)")

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
    x = sub.add_parser(
        "export", formatter_class=fmt, help="a run's model as a serialised jax.export program",
        description="Export the latest checkpoint of a run folder for inference (batch size "
                    "symbolic, weights inside) as jax.export bytes, which\n"
                    "jax.export.deserialize(open(OUT, 'rb').read()).call(x) runs with only jax.")
    x.add_argument("run_dir", metavar="RUN_DIR", help="a run folder written by 'fnn train'")
    x.add_argument("--out", metavar="FILE", default="model.bin",
                   help="the file to write (default: model.bin)")
    parser.epilog = (
        "commands and their options (what each option means: 'fnn COMMAND --help'):\n"
        + "".join(p.format_usage() for p in (t, e, s, x))
        + "\nQuick start: 'fnn train' trains LeNet-5 on MNIST in under 30 s on 2 CPU cores.")
    return parser


# ---------------------------------------------------------------------------
# train
