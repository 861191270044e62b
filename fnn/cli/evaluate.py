"""`fnn evaluate`: the loss, accuracy, macro precision/recall/F1 and confusion matrix of a
run's latest checkpoint (through `fnn.train.evaluate` and `fnn.metrics.streaming`)."""
from __future__ import annotations

import os
import sys

from fnn.cli import runs

__all__ = ["run"]


def _format_confusion(m) -> str:
    k = m.shape[0]
    width = max(len(str(int(m.max()))), len(str(k - 1)), 3)
    header = " " * 6 + " ".join(f"{j:>{width}}" for j in range(k))
    lines = [header] + [f"{i:>4}  " + " ".join(f"{int(v):>{width}}" for v in row)
                        for i, row in enumerate(m)]
    return "rows: true class, columns: predicted class\n" + "\n".join(lines)


def run(parser, args) -> int:
    config = runs.read_config(parser, args.run_dir)
    runs.enable_compile_cache()

    import jax

    from fnn import losses, train
    from fnn.checkpoint import CheckpointManager
    from fnn.metrics import streaming

    step = runs.latest_epoch(args.run_dir)  # before the manager, which would create the folder
    if not step:
        print(f"fnn evaluate: error: {args.run_dir} has no checkpoint yet", file=sys.stderr)
        return 1
    manager = CheckpointManager(os.path.join(args.run_dir, "checkpoints"))
    data, train_data, _, model, shape = runs.prepare(
        config, parser, os.path.join(args.run_dir, "config.json"))
    saved = config.get("data_source")
    if saved and saved != data.source:  # e.g. MNIST's IDX files appeared after training
        print(f"fnn evaluate: warning: the run was trained on {saved}, but its data set now "
              f"reads {data.source}", file=sys.stderr)
    optimizer = runs.make_optimizer(config["optimizer"], config["lr"])
    like = {"train_state": train.init_train_state(model, optimizer, jax.random.key(0), shape)}
    try:
        ts = train.restore_tree(manager, step, like)["train_state"]  # also fnn 0.1's runs
    except ValueError as e:
        print(f"fnn evaluate: error: {runs.damaged_checkpoint(manager, e)}", file=sys.stderr)
        return 1
    x, y = data.test if args.split == "test" else train_data
    loss = losses.softmax_cross_entropy
    batch = runs.eval_batch(config, args.batch_size)
    k = data.num_classes
    metrics = train.evaluate(model, ts.params, ts.model_state, loss, x, y, batch,
                             metrics=[streaming.confusion_matrix(k),
                                      streaming.precision_recall_f1(k, "macro")])
    print(f"{config['model']} on {config['dataset']} ({args.split} split, {len(y):,} examples), "
          f"checkpoint of epoch {step} in {args.run_dir}")
    print(f"loss {metrics['loss']:.4f}  accuracy {metrics.get('accuracy', float('nan')):.4f}")
    print(f"macro precision {metrics['macro_precision']:.4f}  recall "
          f"{metrics['macro_recall']:.4f}  F1 {metrics['macro_f1']:.4f}")
    print(_format_confusion(metrics["confusion_matrix"]))
    return 0
