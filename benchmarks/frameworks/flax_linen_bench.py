"""Flax linen + Optax, written as the Flax examples write it: `nn.Module`s with
`@nn.compact`, `mutable=["batch_stats"]` for BatchNorm, `optax.adam`, one
`jax.jit` step with the state donated."""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from benchmarks import workloads
from benchmarks.frameworks._common import Bench, as_float32, jax_sync, jax_versions, main, mixed


class MLP(nn.Module):
    features: tuple

    @nn.compact
    def __call__(self, x, train=True):
        for f in self.features[:-1]:
            x = nn.relu(nn.Dense(f)(x))
        return nn.Dense(self.features[-1])(x)


class LeNet5(nn.Module):
    num_classes: int

    @nn.compact
    def __call__(self, x, train=True):
        x = nn.tanh(nn.Conv(6, (5, 5), padding=((2, 2), (2, 2)))(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
        x = nn.tanh(nn.Conv(16, (5, 5), padding="VALID")(x))
        x = nn.avg_pool(x, (2, 2), (2, 2))
        x = nn.tanh(nn.Conv(120, (5, 5), padding="VALID")(x))
        x = x.reshape(x.shape[0], -1)
        x = nn.tanh(nn.Dense(84)(x))
        return nn.Dense(self.num_classes)(x)


class LSTMClassifier(nn.Module):
    hidden: int
    num_classes: int

    @nn.compact
    def __call__(self, x, train=True):
        h = nn.RNN(nn.OptimizedLSTMCell(self.hidden))(x)[:, -1]
        return nn.Dense(self.num_classes)(h)


class BasicBlock(nn.Module):
    features: int
    stride: int

    @nn.compact
    def __call__(self, x, train=True):
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5)
        conv = lambda s: nn.Conv(self.features, (3, 3), (s, s), padding=((1, 1), (1, 1)),
                                 use_bias=False, kernel_init=nn.initializers.he_normal())
        y = nn.relu(norm()(conv(self.stride)(x)))
        y = norm()(conv(1)(y))
        if self.stride != 1 or x.shape[-1] != self.features:
            extra = self.features - x.shape[-1]
            x = jnp.pad(x[:, ::self.stride, ::self.stride, :],
                        ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
        return nn.relu(y + x)


class ResNet(nn.Module):
    depth: int
    num_classes: int

    @nn.compact
    def __call__(self, x, train=True):
        n = (self.depth - 2) // 6
        x = nn.Conv(16, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                    kernel_init=nn.initializers.he_normal())(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.9,
                                 epsilon=1e-5)(x))
        for features in (16, 32, 64):
            for i in range(n):
                x = BasicBlock(features, 2 if (i == 0 and features != 16) else 1)(x, train)
        x = jnp.mean(x, axis=(1, 2))
        return nn.Dense(self.num_classes)(x)


class TransformerClassifier(nn.Module):
    """Pre-norm blocks (as fnn's TransformerBlock and torch's norm_first=True), exact GELU."""
    blocks: int
    heads: int
    mlp: int
    num_classes: int

    @nn.compact
    def __call__(self, x, train=True):
        f = x.shape[-1]
        for _ in range(self.blocks):
            x = x + nn.MultiHeadDotProductAttention(self.heads, qkv_features=f)(
                nn.LayerNorm(epsilon=1e-5)(x))
            h = nn.Dense(self.mlp)(nn.LayerNorm(epsilon=1e-5)(x))
            x = x + nn.Dense(f)(nn.gelu(h, approximate=False))
        x = jnp.mean(nn.LayerNorm(epsilon=1e-5)(x), axis=1)
        return nn.Dense(self.num_classes)(x)


def make_model(w: workloads.Workload) -> nn.Module:
    if w.name == "mlp":
        return MLP(tuple(w.config["features"]))
    if w.name == "lenet5":
        return LeNet5(w.num_classes)
    if w.name.startswith("lstm"):
        return LSTMClassifier(w.config["hidden"], w.num_classes)
    if w.name == "transformer":
        return TransformerClassifier(w.config["blocks"], w.config["heads"], w.config["mlp"],
                                     w.num_classes)
    return ResNet(w.config["depth"], w.num_classes)


def build(w: workloads.Workload, variant: str) -> Bench:
    model = make_model(w)
    x, y = map(jax.device_put, workloads.synthetic_batch(w))
    tx = optax.adam(1e-3)

    @jax.jit
    def init(key):
        variables = model.init(key, x[:1], train=False)
        params = variables["params"]
        return params, variables.get("batch_stats", {}), tx.init(params)

    params, batch_stats, opt_state = init(jax.random.key(0))
    has_bn = bool(batch_stats)

    def loss_fn(master, batch_stats, x, y):
        params, x = mixed((master, x))
        if has_bn:
            logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                          train=True, mutable=["batch_stats"])
            batch_stats = updates["batch_stats"]
        else:
            logits = model.apply({"params": params}, x, train=True)
        loss = optax.softmax_cross_entropy_with_integer_labels(as_float32(logits), y).mean()
        return loss, batch_stats

    def step(state: Any, x, y):
        params, batch_stats, opt_state = state
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, batch_stats, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return (params, batch_stats, opt_state), loss

    step = jax.jit(step, donate_argnums=0)
    return Bench(lambda s: step(s, x, y), (params, batch_stats, opt_state), jax_sync,
                 jax_versions(flax=flax.__version__, optax=optax.__version__))


if __name__ == "__main__":
    main(build, "flax_linen")
