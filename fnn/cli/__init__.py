"""The `fnn` command: train, evaluate and summarise models from the shell.

    fnn train                              # LeNet-5 on MNIST with Adam, under 30 s on 2 CPU cores
    fnn train --model mlp --dataset spiral --epochs 200 --batch-size 32
    fnn train --resume runs/lenet5-mnist-20250101-120000 --epochs 20
    fnn evaluate runs/lenet5-mnist-20250101-120000
    fnn summary --model resnet20
    fnn export runs/lenet5-mnist-20250101-120000 --out model.bin

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

import sys

from fnn.cli import evaluate, export, runs, summary, train
from fnn.cli.parser import DATASETS, DEFAULT_LR, EXIT_USAGE, MODELS, OPTIMIZERS, build_parser

__all__ = ["main", "build_parser", "MODELS", "DATASETS", "OPTIMIZERS", "DEFAULT_LR", "EXIT_USAGE"]

_COMMANDS = {"train": train.run, "evaluate": evaluate.run, "summary": summary.run}
_COMMANDS["export"] = export.run


def main(argv=None) -> int:
    """Entry point of the `fnn` console script and `python -m fnn`."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    sub = parser._subparsers._group_actions[0].choices[args.command]
    handler = _COMMANDS[args.command]
    try:
        return handler(sub, args)
    except (runs.Failure, ImportError, OSError) as e:
        print(f"fnn {args.command}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # outside training (which names the run to resume)
        print(f"fnn {args.command}: interrupted", file=sys.stderr)
        return 130
