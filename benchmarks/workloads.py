"""The four benchmark workloads, shared by every framework, and their FLOP counts.

| name | model | input (one example) | batch |
|---|---|---|---|
| `mlp` | Dense 784-512-256-10, relu | `(784,)` | 128 |
| `lenet5` | LeNet-5 (tanh, average pooling; 28×28 padded to 32×32) | `(28, 28, 1)` | 128 |
| `lstm` | `lstm_classifier(128, 10)`: LSTM(128), Dense(10) on the last h | `(28, 28)` | 128 |
| `resnet20` | CIFAR ResNet-20, BatchNorm, option-A shortcuts | `(32, 32, 3)` | 64 |
| `transformer` | 4 pre-norm blocks (4 heads, width 128), mean, Dense(10) | `(128, 128)` | 32 |

`transformer` (not in the default set) classifies sequences: four non-causal pre-norm
`TransformerBlock`s (exact GELU), a final LayerNorm, the mean over time, Dense(10).

One training step = forward + backward + Adam update (lr 1e-3, PyTorch's
defaults), float32, softmax cross-entropy on integer labels, on one fixed
device-resident batch of synthetic data (`synthetic_batch`, the same numbers
for every framework).

**FLOPs per step** (the convention, stated once): `6 × MACs × batch`, where
`MACs` is fnn.summary's multiply-accumulate count of ONE forward pass of ONE
example (matrix products and convolutions only, padded positions included).
A MAC is 2 FLOPs, and the backward pass is counted as twice the forward (one
product for the input gradient, one for the weight gradient), hence 2 × 3.
Bias adds, activations, normalisation, pooling and the optimizer are not
counted, and neither is the fact that the first layer needs no input gradient
(so LeNet-5 and the MLP are slightly over-counted).

`tiny=True` gives the smoke-test variants (small widths, batch 4, 2 steps).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Workload", "WORKLOADS", "DEFAULT", "get", "names", "synthetic_batch", "fnn_model",
           "flops_per_step", "macs_per_example", "LARGE", "large_on_cpu", "resnet50_model"]


@dataclass(frozen=True)
class Workload:
    """One benchmark problem: what every framework builds and trains."""

    name: str                 # "mlp", "lenet5", "lstm", "resnet20"
    title: str                # for tables
    input_shape: tuple        # one example, batch-first layouts (NHWC images, (T, F) sequences)
    batch: int
    num_classes: int
    steps: int                # timed steps per process in a full run
    warmup: int               # untimed steps after the first (compiling) one
    config: dict = field(default_factory=dict)  # model hyperparameters (see below)


# config keys: mlp "features"; lstm, lstm_long "hidden"; resnet20 "depth"; lenet5 none;
# transformer "blocks", "heads", "mlp" (the width is the input's feature size).
WORKLOADS = {
    "mlp": Workload("mlp", "MLP 784-512-256-10", (784,), 128, 10, steps=300, warmup=20,
                    config={"features": (512, 256, 10)}),
    "lenet5": Workload("lenet5", "LeNet-5 28x28x1", (28, 28, 1), 128, 10, steps=60,
                       warmup=5),
    "lstm": Workload("lstm", "LSTM T=28 F=28 H=128", (28, 28), 128, 10, steps=60, warmup=5,
                     config={"hidden": 128}),
    "resnet20": Workload("resnet20", "ResNet-20 CIFAR BN", (32, 32, 3), 64, 10, steps=15,
                         warmup=2, config={"depth": 20}),
    # not in the default set: the same LSTM on 10x longer sequences, to check that
    # compile time does not grow with T (issue 7, item 5)
    "lstm_long": Workload("lstm_long", "LSTM T=280 F=28 H=128", (280, 28), 128, 10, steps=10,
                          warmup=1, config={"hidden": 128}),
    # not in the default set (it would slow the smoke test's full-size siblings): a
    # transformer encoder classifying sequences, T = 128 steps of width 128
    "transformer": Workload("transformer", "Transformer 4x(4 heads, 128) T=128", (128, 128), 32,
                            10, steps=10, warmup=2,
                            config={"blocks": 4, "heads": 4, "mlp": 512}),
}
DEFAULT = ("mlp", "lenet5", "lstm", "resnet20")

# `benchmarks.run --size large` (issue 24): accelerator-sized problems, reported as MFU;
# on a CPU they run a few steps as a smoke test. (A transformer at width 512 joins them
# once the transformer workload is on main.)
WORKLOADS["resnet50"] = Workload("resnet50", "ResNet-50 224x224 BN", (224, 224, 3), 128, 1000,
                                 steps=5, warmup=1, config={"blocks": (3, 4, 6, 3)})
WORKLOADS["lstm_large"] = Workload("lstm_large", "LSTM T=128 F=256 H=1024", (128, 256), 64, 10,
                                   steps=5, warmup=1, config={"hidden": 1024})
LARGE = ("resnet50", "lstm_large")
_LARGE_ON_CPU = {"resnet50": dict(batch=8, steps=2), "lstm_large": dict(batch=8, steps=2)}

_TINY = {
    "mlp": dict(input_shape=(784,), config={"features": (32, 16, 10)}),
    "lenet5": dict(),
    "lstm": dict(input_shape=(5, 3), config={"hidden": 8}),
    "resnet20": dict(input_shape=(8, 8, 3), config={"depth": 8}),
    "lstm_long": dict(input_shape=(50, 3), config={"hidden": 8}),
    "transformer": dict(input_shape=(6, 8), config={"blocks": 2, "heads": 2, "mlp": 16}),
    "resnet50": dict(input_shape=(32, 32, 3), num_classes=10, config={"blocks": (1, 1, 1, 1)}),
    "lstm_large": dict(input_shape=(6, 4), config={"hidden": 16}),
}


def names() -> list[str]:
    return list(WORKLOADS)


def get(name: str, *, tiny: bool = False) -> Workload:
    """The workload called `name`; `tiny=True` for the smoke-test variant."""
    if name not in WORKLOADS:
        raise ValueError(f"unknown workload {name!r}; expected one of {names()}.")
    w = WORKLOADS[name]
    if tiny:
        w = replace(w, batch=4, steps=2, warmup=0, **_TINY[name])
    return w


def synthetic_batch(w: Workload, seed: int = 0):
    """`(x, y)` as float32 / int32 numpy arrays: `x: (batch, *input_shape)` standard
    normal, `y: (batch,)` labels in `[0, num_classes)`. Identical in every framework."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((w.batch, *w.input_shape), dtype=np.float32)
    y = rng.integers(0, w.num_classes, size=(w.batch,), dtype=np.int32)
    return x, y


def fnn_model(w: Workload):
    """The workload's model built from fnn's model zoo (a `fnn.Layer`)."""
    import fnn

    if w.name == "mlp":
        return fnn.models.mlp(list(w.config["features"]))
    if w.name == "lenet5":
        return fnn.models.lenet5(w.num_classes)
    if w.name.startswith("lstm"):
        return fnn.models.lstm_classifier(w.config["hidden"], w.num_classes)
    if w.name == "resnet20":
        return fnn.models.resnet(w.config["depth"], w.num_classes)
    if w.name == "transformer":
        blocks = [fnn.layers.TransformerBlock(w.config["heads"], w.config["mlp"])
                  for _ in range(w.config["blocks"])]
        return fnn.serial(*blocks, fnn.layers.LayerNorm(), mean_over_time,
                          fnn.layers.Dense(w.num_classes))
    if w.name == "resnet50":
        return resnet50_model(w.config["blocks"], w.num_classes)
    raise ValueError(f"no fnn model for workload {w.name!r}")


def mean_over_time(x):
    """`(N, T, F) -> (N, F)`: the transformer workload's pooling."""
    import jax.numpy as jnp

    return jnp.mean(x, axis=1)


def large_on_cpu(w: Workload) -> Workload:
    """A large workload cut to a few steps of a small batch (the CPU smoke test)."""
    return replace(w, **_LARGE_ON_CPU.get(w.name, {}))


def resnet50_model(blocks=(3, 4, 6, 3), num_classes: int = 1000):
    """ResNet-50 (He et al. 2016, torchvision's layout): bottleneck blocks
    `1×1 (c) → 3×3 (c, stride) → 1×1 (4c)` + BatchNorm, projection shortcuts where the
    shape changes, stages of 64/128/256/512 with `blocks` blocks each."""
    import fnn
    from fnn import layers as L

    def conv(c, k, s=1):
        return L.Conv2D(c, k, stride=s, padding=(k - 1) // 2, use_bias=False)

    def bottleneck(c, stride, project):
        body = fnn.serial(conv(c, 1), L.BatchNorm(), fnn.relu, conv(c, 3, stride),
                          L.BatchNorm(), fnn.relu, conv(4 * c, 1), L.BatchNorm())
        short = fnn.serial(conv(4 * c, 1, stride), L.BatchNorm()) if project else None
        return fnn.serial(fnn.residual(body, short), fnn.relu)

    layers = [conv(64, 7, 2), L.BatchNorm(), fnn.relu, L.MaxPool(3, 2, padding=1)]
    for i, (c, n) in enumerate(zip((64, 128, 256, 512), blocks)):
        for j in range(n):
            layers.append(bottleneck(c, 2 if (j == 0 and i > 0) else 1, j == 0))
    layers += [L.GlobalAvgPool(), L.Dense(num_classes)]
    return fnn.serial(*layers)._replace(name="ResNet50")


def macs_per_example(w: Workload) -> int:
    """Forward multiply-accumulates for one example, from `fnn.summary`."""
    import fnn

    return int(fnn.summary(fnn_model(w), w.input_shape).total_macs)


def flops_per_step(w: Workload) -> int:
    """FLOPs of one training step: `6 × MACs × batch` (see the module docstring)."""
    return 6 * macs_per_example(w) * w.batch


def params_count(w: Workload) -> int:
    import fnn

    return int(fnn.summary(fnn_model(w), w.input_shape).total_params)
