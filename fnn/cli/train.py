"""`fnn train`: train a model and write (or continue) its run folder."""
from __future__ import annotations

import os
import sys
import time

from fnn.cli import runs
from fnn.cli.parser import DEFAULT_LR, FILE_DATASETS

__all__ = ["run"]

_TRAIN_DEFAULTS = {"dataset": "mnist", "optimizer": "adam", "lr": None, "epochs": 10,
                   "batch_size": 32, "val_fraction": 0.1, "seed": 0, "limit": None,
                   "data_dir": None, "augment": None, "log": None, "metrics": None,
                   "precision": "float32"}
# a data set's own defaults for the options not given (its recipe; README "Recipes")
# (its "lr" is for the default optimizer, adam, and applies only with it)
_DATASET_DEFAULTS = {"fashion-mnist": {"model": "cnn", "batch_size": 128, "epochs": 10,
                                       "lr": 2e-3}}
_STEP_LOG_EVERY = 50
_RESUMABLE = ("epochs", "no_progress", "resume", "precision")


def _default_model(dataset: str) -> str:
    if dataset in _DATASET_DEFAULTS:
        return _DATASET_DEFAULTS[dataset]["model"]
    return "lenet5" if dataset == "mnist" else "mlp"


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
    runs.fail(parser, f"run folder {run_dir} already exists; choose another --name or "
                      f"continue it with --resume {run_dir}")


def _resolve_train_config(parser, args) -> tuple[dict, str | None]:
    """The run's config, and its folder with `--resume RUN_DIR` (None: a new run, whose
    folder `_claim_run_dir` creates once the data and model are ready)."""
    if args.resume:
        given = [f"--{k.replace('_', '-')}" for k, v in vars(args).items()
                 if k not in _RESUMABLE + ("command",) and v is not None]
        if given:
            runs.fail(parser, f"--resume uses the run's saved options; do not combine it with "
                              f"{', '.join(given)} (only --epochs and --no-progress)")
        run_dir = args.resume
        config = runs.read_config(parser, run_dir)
        done = runs.latest_epoch(run_dir)
        finished = [f for f in ("history.json", "results.json")
                    if os.path.exists(os.path.join(run_dir, f))]
        if not done and finished:  # both are written only after a checkpoint was saved
            runs.fail(parser, f"{run_dir} has no checkpoint to resume from, but its "
                              f"{' and '.join(finished)} show finished epochs: its checkpoints/ "
                              f"folder was removed or emptied, and training again from epoch 1 "
                              f"would overwrite them; start a new run instead")
        if args.epochs is not None:
            if args.epochs < done:
                runs.fail(parser, f"--epochs {args.epochs}: {run_dir} already holds {done} epochs; "
                                  f"give --epochs {done} or more")
            config["epochs"] = args.epochs
        if args.precision is not None:  # the checkpoint holds float32 master params
            config["precision"] = args.precision
        return config, run_dir
    config = {k: (getattr(args, k) if getattr(args, k) is not None else v)
              for k, v in _TRAIN_DEFAULTS.items()}
    for k, v in _DATASET_DEFAULTS.get(config["dataset"], {}).items():
        if k in _TRAIN_DEFAULTS and getattr(args, k) is None and (
                k != "lr" or args.optimizer is None):
            config[k] = v
    config["model"] = args.model or _default_model(config["dataset"])
    if config["lr"] is None:
        config["lr"] = DEFAULT_LR[config["optimizer"]]
    if args.data_dir is not None and config["dataset"] not in FILE_DATASETS:
        runs.fail(parser, f"--data-dir is only read for --dataset "
                          f"{' or '.join(FILE_DATASETS)}; --dataset {config['dataset']} is "
                          f"generated or bundled (leave --data-dir out)")
    out = args.out or "runs"
    existing = _nearest_existing(out)  # a file there, or above: say so before the data loads
    if not os.path.isdir(existing):
        what = (f"--out {out}" if existing == os.path.normpath(out)
                else f"{existing} (in --out {out})")
        runs.fail(parser, f"{what} is a file, not a folder; give a folder for the run folders")
    if args.name is not None:
        if not args.name or os.sep in args.name or args.name in (".", ".."):
            runs.fail(parser, f"--name must be a plain folder name, got {args.name!r}")
        run_dir = os.path.join(out, args.name)
        if os.path.exists(run_dir):  # say so before loading the data; _claim_run_dir decides
            _name_taken(parser, run_dir)
    return config, None



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


def run(parser, args) -> int:
    config, run_dir = _resolve_train_config(parser, args)
    runs.enable_compile_cache()
    config_path = os.path.join(run_dir, "config.json") if run_dir else None
    data, train_data, val_data, model, shape = runs.prepare(config, parser, config_path)
    if config.get("augment") and len(shape) != 3:
        runs.fail(parser, f"--augment {','.join(config['augment'])} needs images (H, W, C); "
                          f"--dataset {config['dataset']} examples have shape {tuple(shape)}")

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
    if resuming and runs.latest_epoch(run_dir):
        manager = CheckpointManager(ckpt_dir)
        try:  # read all of it (every CRC) before anything in the run folder is rewritten
            history = manager.load_metadata().get("history", {})
            manager.restore()
        except ValueError as e:
            print(f"fnn train: error: cannot resume {run_dir}: "
                  f"{runs.damaged_checkpoint(manager, e)}", file=sys.stderr)
            return 1
    if not resuming:
        run_dir = _claim_run_dir(
            parser, args.out or "runs", args.name,
            f"{config['model']}-{config['dataset']}-{time.strftime('%Y%m%d-%H%M%S')}")
    from fnn import __version__
    config.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S"))
    config.update({"fnn_version": __version__, "jax_version": jax.__version__})
    runs.write_json(os.path.join(run_dir, "config.json"), config)

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
          f"precision {config.get('precision', 'float32')}, "
          f"{config['epochs']} epochs, seed {config['seed']} -> {run_dir}")
    if resuming and history:
        print(f"  continuing after epoch {len(history.get('loss', []))}")
    sys.stdout.flush()

    def on_epoch_end(epoch, logs):
        for k, v in logs.items():
            if k != "time":
                history.setdefault(k, []).append(v)
        runs.write_json(os.path.join(run_dir, "history.json"), history)
        print(f"epoch {epoch}/{config['epochs']}  {_format_logs(logs)}", flush=True)

    loss = losses.softmax_cross_entropy
    optimizer = runs.make_optimizer(config["optimizer"], config["lr"])
    extra = {"metrics": tuple(config["metrics"])} if config.get("metrics") else {}
    start = time.perf_counter()
    try:
        ts, history = train.fit(
            model, optimizer, loss, train_data, epochs=config["epochs"],
            batch_size=batch_size, key=jax.random.key(config["seed"]), val_data=val_data,
            checkpoint_dir=ckpt_dir, progress=False if args.no_progress else "transient",
            eval_batch_size=runs.eval_batch(config),
            on_epoch_end=on_epoch_end, augment=runs.augmentation(config.get("augment")),
            rules=runs.log_rules(config.get("log"), run_dir, _STEP_LOG_EVERY),
            precision=config.get("precision", "float32"), **extra)
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: fnn train --resume {run_dir}", file=sys.stderr)
        return 130
    except FloatingPointError:
        print(f"fnn train: error: {_diverged_message(run_dir, config)}", file=sys.stderr)
        return 1
    except ValueError as e:  # e.g. a checkpoint that does not fit the run's model
        print(f"fnn train: error: {runs.one_line(e)}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - start
    runs.write_json(os.path.join(run_dir, "history.json"), history)

    test = train.evaluate(model, ts.params, ts.model_state, loss, *data.test,
                          batch_size=runs.eval_batch(config),
                          precision=config.get("precision", "float32"))
    results = {"test_loss": test["loss"], "test_accuracy": test.get("accuracy"),
               "epochs": int(ts.epoch), "train_seconds": round(seconds, 2)}
    runs.write_json(os.path.join(run_dir, "results.json"), results)
    print(f"test  loss {test['loss']:.4f}  accuracy {test.get('accuracy', float('nan')):.4f}  "
          f"({data.source.split(',')[0]}, {config['num_test']:,} examples)")
    message = _plot_curves(history, os.path.join(run_dir, "curves.png"))
    print(message)
    print(f"run folder: {run_dir}  (evaluate with: fnn evaluate {run_dir})")
    return 0


def _diverged_message(run_dir: str, config: dict) -> str:
    """What happened and what to do when the loss or the weights became NaN or infinite."""
    done = runs.latest_epoch(run_dir)
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
