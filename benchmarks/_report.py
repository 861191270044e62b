"""What every benchmark script shares when it reports: the device's name and the JSON file."""
from __future__ import annotations

import json
import os


def jax_device() -> str:
    """JAX's default device as `platform:kind`, e.g. `cpu:cpu` or `gpu:NVIDIA H100 80GB HBM3`."""
    import jax  # here: the scripts set thread and device variables before JAX loads

    dev = jax.devices()[0]
    return f"{dev.platform}:{dev.device_kind}"


def write_json(path: str, result: dict) -> None:
    """Write a report to `path` (its folder created) atomically: an interrupted run
    leaves the previous report in place, never half of one."""
    from fnn._atomic import atomic_file  # imports fnn, hence JAX: not at module level

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with atomic_file(path) as f:
        f.write(json.dumps(result, indent=1).encode())
