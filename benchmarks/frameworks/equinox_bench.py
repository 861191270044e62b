"""Equinox + Optax, written as the Equinox examples write it: `eqx.Module` models
on ONE example (images channel-first, CHW), `jax.vmap` over the batch (with
`axis_name="batch"` for BatchNorm and `eqx.nn.State`), `eqx.filter_value_and_grad`,
`optax.adam`, one `eqx.filter_jit` step with everything donated."""
from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from benchmarks import workloads
from benchmarks.frameworks._common import Bench, as_float32, jax_sync, jax_versions, main, mixed


class MLP(eqx.Module):
    layers: list

    def __init__(self, sizes, key):
        keys = jax.random.split(key, len(sizes) - 1)
        pairs = zip(sizes, sizes[1:], keys, strict=False)
        self.layers = [eqx.nn.Linear(a, b, key=k) for a, b, k in pairs]

    def __call__(self, x, state):
        for layer in self.layers[:-1]:
            x = jax.nn.relu(layer(x))
        return self.layers[-1](x), state


class LeNet5(eqx.Module):
    c1: eqx.nn.Conv2d
    c3: eqx.nn.Conv2d
    c5: eqx.nn.Conv2d
    f6: eqx.nn.Linear
    out: eqx.nn.Linear
    pool: eqx.nn.AvgPool2d

    def __init__(self, num_classes, key):
        k = jax.random.split(key, 5)
        self.c1 = eqx.nn.Conv2d(1, 6, 5, padding=2, key=k[0])
        self.c3 = eqx.nn.Conv2d(6, 16, 5, key=k[1])
        self.c5 = eqx.nn.Conv2d(16, 120, 5, key=k[2])
        self.f6 = eqx.nn.Linear(120, 84, key=k[3])
        self.out = eqx.nn.Linear(84, num_classes, key=k[4])
        self.pool = eqx.nn.AvgPool2d(2, 2)

    def __call__(self, x, state):
        x = self.pool(jnp.tanh(self.c1(x)))
        x = self.pool(jnp.tanh(self.c3(x)))
        x = jnp.tanh(self.c5(x)).reshape(-1)
        return self.out(jnp.tanh(self.f6(x))), state


class LSTMClassifier(eqx.Module):
    cell: eqx.nn.LSTMCell
    out: eqx.nn.Linear

    def __init__(self, n_in, hidden, num_classes, key):
        k1, k2 = jax.random.split(key)
        self.cell = eqx.nn.LSTMCell(n_in, hidden, key=k1)
        self.out = eqx.nn.Linear(hidden, num_classes, key=k2)

    def __call__(self, xs, state):                   # xs: (T, F), one sequence
        def step(carry, x_t):
            return self.cell(x_t, carry), None

        zeros = jnp.zeros((self.cell.hidden_size,))
        (h, _), _ = jax.lax.scan(step, (zeros, zeros), xs)
        return self.out(h), state


class Block(eqx.Module):
    conv1: eqx.nn.Conv2d
    bn1: eqx.nn.BatchNorm
    conv2: eqx.nn.Conv2d
    bn2: eqx.nn.BatchNorm
    stride: int = eqx.field(static=True)
    extra: int = eqx.field(static=True)

    def __init__(self, c_in, c_out, stride, key):
        k1, k2 = jax.random.split(key)
        self.conv1 = eqx.nn.Conv2d(c_in, c_out, 3, stride, padding=1, use_bias=False, key=k1)
        self.conv2 = eqx.nn.Conv2d(c_out, c_out, 3, 1, padding=1, use_bias=False, key=k2)
        self.bn1 = eqx.nn.BatchNorm(c_out, "batch", momentum=0.9, mode="batch")
        self.bn2 = eqx.nn.BatchNorm(c_out, "batch", momentum=0.9, mode="batch")
        self.stride, self.extra = stride, c_out - c_in

    def __call__(self, x, state):                    # x: (C, H, W)
        y, state = self.bn1(self.conv1(x), state)
        y, state = self.bn2(self.conv2(jax.nn.relu(y)), state)
        if self.stride != 1 or self.extra:
            e = self.extra
            x = jnp.pad(x[:, ::self.stride, ::self.stride], ((e // 2, e - e // 2), (0, 0), (0, 0)))
        return jax.nn.relu(y + x), state


class ResNet(eqx.Module):
    stem: eqx.nn.Conv2d
    bn: eqx.nn.BatchNorm
    blocks: list
    fc: eqx.nn.Linear

    def __init__(self, depth, num_classes, key):
        n = (depth - 2) // 6
        keys = iter(jax.random.split(key, 3 * n + 2))
        self.stem = eqx.nn.Conv2d(3, 16, 3, padding=1, use_bias=False, key=next(keys))
        self.bn = eqx.nn.BatchNorm(16, "batch", momentum=0.9, mode="batch")
        self.blocks, c_in = [], 16
        for c_out in (16, 32, 64):
            for i in range(n):
                stride = 2 if (i == 0 and c_out != 16) else 1
                self.blocks.append(Block(c_in, c_out, stride, next(keys)))
                c_in = c_out
        self.fc = eqx.nn.Linear(64, num_classes, key=next(keys))

    def __call__(self, x, state):
        x, state = self.bn(self.stem(x), state)
        x = jax.nn.relu(x)
        for block in self.blocks:
            x, state = block(x, state)
        return self.fc(jnp.mean(x, axis=(1, 2))), state


class TransformerBlock(eqx.Module):
    """Pre-norm block on one sequence (T, F); exact GELU, as fnn's and torch's."""
    ln1: eqx.nn.LayerNorm
    attention: eqx.nn.MultiheadAttention
    ln2: eqx.nn.LayerNorm
    w1: eqx.nn.Linear
    w2: eqx.nn.Linear

    def __init__(self, f, heads, width, key):
        k1, k2, k3 = jax.random.split(key, 3)
        self.ln1, self.ln2 = eqx.nn.LayerNorm(f), eqx.nn.LayerNorm(f)
        self.attention = eqx.nn.MultiheadAttention(heads, f, use_query_bias=True,
                                                   use_key_bias=True, use_value_bias=True,
                                                   use_output_bias=True, key=k1)
        self.w1, self.w2 = eqx.nn.Linear(f, width, key=k2), eqx.nn.Linear(width, f, key=k3)

    def __call__(self, x):                           # x: (T, F), one sequence
        h = jax.vmap(self.ln1)(x)
        x = x + self.attention(h, h, h)
        h = jax.vmap(self.w1)(jax.vmap(self.ln2)(x))
        return x + jax.vmap(self.w2)(jax.nn.gelu(h, approximate=False))


class TransformerClassifier(eqx.Module):
    blocks: list
    ln: eqx.nn.LayerNorm
    out: eqx.nn.Linear

    def __init__(self, f, blocks, heads, width, num_classes, key):
        keys = jax.random.split(key, blocks + 1)
        self.blocks = [TransformerBlock(f, heads, width, k) for k in keys[:-1]]
        self.ln, self.out = eqx.nn.LayerNorm(f), eqx.nn.Linear(f, num_classes, key=keys[-1])

    def __call__(self, x, state):
        for block in self.blocks:
            x = block(x)
        return self.out(jnp.mean(jax.vmap(self.ln)(x), axis=0)), state


def make_model(w: workloads.Workload, key):
    if w.name == "mlp":
        return eqx.nn.make_with_state(MLP)([w.input_shape[0], *w.config["features"]], key)
    if w.name == "lenet5":
        return eqx.nn.make_with_state(LeNet5)(w.num_classes, key)
    if w.name.startswith("lstm"):
        return eqx.nn.make_with_state(LSTMClassifier)(w.input_shape[-1], w.config["hidden"],
                                                      w.num_classes, key)
    if w.name == "transformer":
        c = w.config
        return eqx.nn.make_with_state(TransformerClassifier)(
            w.input_shape[-1], c["blocks"], c["heads"], c["mlp"], w.num_classes, key)
    return eqx.nn.make_with_state(ResNet)(w.config["depth"], w.num_classes, key)


def build(w: workloads.Workload, variant: str) -> Bench:
    x, y = workloads.synthetic_batch(w)
    if x.ndim == 4:                                  # NHWC -> NCHW, Equinox's layout
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    x, y = jax.device_put(x), jax.device_put(y)
    model, state = eqx.filter_jit(lambda key: make_model(w, key))(jax.random.key(0))
    tx = optax.adam(1e-3)
    opt_state = tx.init(eqx.filter(model, eqx.is_inexact_array))

    def loss_fn(model, state, x, y):
        model, x, state = mixed((model, x, state))
        batched = jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
        logits, state = batched(x, state)
        state = jax.tree.map(lambda a: a.astype(jnp.float32)
                             if getattr(a, "dtype", None) == jnp.bfloat16 else a, state)
        logits = as_float32(logits)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state

    @eqx.filter_jit(donate="all")
    def step(carry, x, y):
        model, state, opt_state = carry
        (loss, state), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(
            model, state, x, y)
        updates, opt_state = tx.update(grads, opt_state, eqx.filter(model, eqx.is_inexact_array))
        return (eqx.apply_updates(model, updates), state, opt_state), loss

    return Bench(lambda c: step(c, x, y), (model, state, opt_state), jax_sync,
                 jax_versions(equinox=eqx.__version__, optax=optax.__version__))


if __name__ == "__main__":
    main(build, "equinox")
