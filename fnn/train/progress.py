"""`fit`'s progress bar (tqdm, optional): the bar, its clock and its metrics line."""
from __future__ import annotations

import sys

__all__ = ["progress_bar", "clock", "format_logs"]


def progress_bar(show, total: int, desc: str):
    """A tqdm bar of `total` steps on stderr, or None (`show` false, or no tqdm);
    `show="transient"` erases it when it closes."""
    if not show:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # no tqdm: train without a bar
        return None
    return tqdm(total=total, desc=desc, unit="step", leave=show != "transient",
                dynamic_ncols=True, file=sys.stderr)


def clock(seconds: float) -> str:
    """`12:34` (minutes:seconds) or `1:02:03`, like tqdm's own times."""
    m, sec = divmod(int(seconds + 0.5), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"


def format_logs(logs: dict) -> str:
    """`loss 0.1234, acc 0.9650, val_loss ...` for a progress bar."""
    return ", ".join(f"{k.replace('accuracy', 'acc')} {v:.4f}" for k, v in logs.items()
                     if k in ("loss", "accuracy", "val_loss", "val_accuracy"))
