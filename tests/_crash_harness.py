"""Run `fnn train ...` and SIGKILL this process at a chosen point (for test_crash_resume.py).

    FNN_CRASH=POINT:N[:FRACTION] python tests/_crash_harness.py train --resume RUN ...

The arguments are those of the `fnn` command. `FNN_CRASH` picks where the
process kills itself with SIGKILL (no cleanup, no `finally`, no atexit: for
the files on disk, a crash of the process at that instruction), counting
events from the start of THIS process:

| POINT | the N-th ... | state on disk at the kill |
|---|---|---|
| `step` | training step, just before it runs | mid-epoch |
| `write` | checkpoint write, after FRACTION of its bytes | a partial hidden `.tmp` file |
| `replace` | rename of a complete, fsynced `.tmp` onto `ckpt_*.npz`, just before it | no new checkpoint |
| `renamed` | rename onto `ckpt_*.npz`, just after it (before the folder fsync and pruning) | new checkpoint, old ones not pruned |
| `remove` | deletion of an old `ckpt_*.npz` by pruning, just after it | mid-pruning |
| `history` | rename onto `history.json`, just before it | checkpoint newer than history.json |

The file-system points patch `os.replace`/`os.remove`/`os.unlink` of this
process and act only on paths named `ckpt_<digits>.npz` or `history.json`, so
they do not depend on how `fnn.checkpoint` and `fnn.cli` arrange their writes.
Without `FNN_CRASH` it is plain `fnn`. `FNN_HARNESS_NO_PLOT=1` skips
`curves.png` (matplotlib's import costs seconds per run). No library file is
modified.
"""
from __future__ import annotations

import io
import os
import re
import signal
import sys

_CKPT = re.compile(r"ckpt_\d+\.npz")


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _counter(target: int):
    count = 0

    def hit() -> bool:
        nonlocal count
        count += 1
        return count == target

    return hit


def _need(module, name: str):
    if not hasattr(module, name):
        raise SystemExit(f"_crash_harness: {module.__name__}.{name} no longer exists; "
                         "update tests/_crash_harness.py")
    return getattr(module, name)


def _is_ckpt(path) -> bool:
    return bool(_CKPT.fullmatch(os.path.basename(os.fspath(path))))


def install(point: str, n: int, fraction: float) -> None:
    hit = _counter(n)

    if point == "step":
        from fnn.train import loop

        real_build = _need(loop, "compiled_step")

        def build(*args, **kwargs):
            step = real_build(*args, **kwargs)

            def crashing_step(ts, x, y):
                if hit():
                    _die()
                return step(ts, x, y)

            return crashing_step

        loop.compiled_step = build

    elif point == "write":
        import fnn.checkpoint as ckpt

        real_write = _need(ckpt, "_write_npz")

        def write(fileobj, arrays):
            if not hit():
                return real_write(fileobj, arrays)
            buf = io.BytesIO()
            real_write(buf, arrays)
            data = buf.getvalue()
            fileobj.write(data[: int(len(data) * fraction)])
            fileobj.flush()
            os.fsync(fileobj.fileno())
            _die()

        ckpt._write_npz = write

    elif point in ("replace", "renamed", "history"):
        real_replace = os.replace

        def replace(src, dst, **kwargs):
            wanted = (os.path.basename(os.fspath(dst)) == "history.json" if point == "history"
                      else _is_ckpt(dst))
            before = wanted and point != "renamed" and hit()
            if before:
                _die()
            real_replace(src, dst, **kwargs)
            if wanted and point == "renamed" and hit():
                _die()

        os.replace = replace

    elif point == "remove":
        def patched(real):
            def remove(path, *args, **kwargs):
                real(path, *args, **kwargs)
                if _is_ckpt(path) and hit():
                    _die()
            return remove

        os.remove = patched(os.remove)
        os.unlink = patched(os.unlink)

    else:
        raise SystemExit(f"_crash_harness: unknown crash point {point!r}")


def main() -> int:
    spec = os.environ.get("FNN_CRASH")
    if spec:
        point, n, *rest = spec.split(":")
        install(point, int(n), float(rest[0]) if rest else 0.5)
    import fnn.cli as cli
    from fnn.cli import train as cli_train

    if os.environ.get("FNN_HARNESS_NO_PLOT"):
        cli_train._plot_curves = lambda history, path: "curves.png skipped (FNN_HARNESS_NO_PLOT)"
    return cli.main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
