"""`fnn export`: a run's latest checkpoint as a serialised `jax.export` program."""
from __future__ import annotations

import os
import sys

from fnn.cli import runs

__all__ = ["run"]


def run(parser, args) -> int:
    config = runs.read_config(parser, args.run_dir)
    runs.enable_compile_cache()

    import jax

    from fnn import train
    from fnn._atomic import atomic_file
    from fnn.checkpoint import CheckpointManager
    from fnn.export import export

    step = runs.latest_epoch(args.run_dir)  # before the manager, which would create the folder
    if not step:
        print(f"fnn export: error: {args.run_dir} has no checkpoint yet", file=sys.stderr)
        return 1
    manager = CheckpointManager(os.path.join(args.run_dir, "checkpoints"))
    _, _, _, model, shape = runs.prepare(config, parser,
                                         os.path.join(args.run_dir, "config.json"))
    optimizer = runs.make_optimizer(config["optimizer"], config["lr"])
    like = {"train_state": train.init_train_state(model, optimizer, jax.random.key(0), shape)}
    try:
        ts = train.restore_tree(manager, step, like)["train_state"]
    except ValueError as e:
        print(f"fnn export: error: {runs.damaged_checkpoint(manager, e)}", file=sys.stderr)
        return 1
    exported = export(model, ts.params, ts.model_state, shape)
    blob = exported.serialize()
    with atomic_file(args.out, "fnn export") as f:
        f.write(blob)
    print(f"{config['model']} of {args.run_dir} (epoch {step}) exported to {args.out}: "
          f"{len(blob):,} bytes, input (N, {', '.join(map(str, shape))}) "
          f"{exported.in_avals[0].dtype}, output {exported.out_avals[0].str_short()}")
    print("run it with only jax: jax.export.deserialize(open(path, 'rb').read()).call(x)")
    return 0
