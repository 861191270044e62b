"""`fnn summary`: the per-layer table of a named model."""
from __future__ import annotations

from fnn.cli import runs
from fnn.cli.parser import MODELS

__all__ = ["run"]


def run(parser, args) -> int:
    from fnn.summary import summary
    spec = MODELS[args.model]
    shape = args.input_shape or spec.input_shape
    model = spec.build(args.num_classes)
    try:
        table = summary(model, shape)
    except (ValueError, TypeError) as e:
        runs.fail(parser, f"--model {args.model} cannot take --input-shape "
                          f"{','.join(map(str, shape))}: {str(e).splitlines()[0]}")
    print(table)
    return 0

