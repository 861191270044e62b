"""Haiku + Optax: `hk.transform_with_state`, `hk.Conv2D`/`hk.BatchNorm`/`hk.LSTM`
with `hk.dynamic_unroll`, `optax.adam`, one `jax.jit` step with the state donated."""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import optax

from benchmarks import workloads
from benchmarks.frameworks._common import Bench, as_float32, jax_sync, jax_versions, main, mixed


def _he():
    return hk.initializers.VarianceScaling(2.0, "fan_in", "normal")


def _bn():
    return hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9, eps=1e-5)


def _block(x, features, stride, train):
    conv = lambda s: hk.Conv2D(features, 3, stride=s, padding=((1, 1), (1, 1)),
                               with_bias=False, w_init=_he())
    y = jax.nn.relu(_bn()(conv(stride)(x), is_training=train))
    y = _bn()(conv(1)(y), is_training=train)
    if stride != 1 or x.shape[-1] != features:
        extra = features - x.shape[-1]
        x = jnp.pad(x[:, ::stride, ::stride, :],
                    ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
    return jax.nn.relu(y + x)


def forward_fn(w: workloads.Workload):
    def mlp(x, train):
        return hk.nets.MLP(list(w.config["features"]))(x)

    def lenet5(x, train):
        x = jnp.tanh(hk.Conv2D(6, 5, padding=((2, 2), (2, 2)))(x))
        x = hk.avg_pool(x, 2, 2, "VALID")
        x = jnp.tanh(hk.Conv2D(16, 5, padding="VALID")(x))
        x = hk.avg_pool(x, 2, 2, "VALID")
        x = jnp.tanh(hk.Conv2D(120, 5, padding="VALID")(x))
        x = hk.Flatten()(x)
        x = jnp.tanh(hk.Linear(84)(x))
        return hk.Linear(w.num_classes)(x)

    def lstm(x, train):
        core = hk.LSTM(w.config["hidden"])
        xs = jnp.swapaxes(x, 0, 1)                       # time-major for dynamic_unroll
        outs, _ = hk.dynamic_unroll(core, xs, core.initial_state(x.shape[0]))
        return hk.Linear(w.num_classes)(outs[-1])

    def resnet(x, train):
        n = (w.config["depth"] - 2) // 6
        x = hk.Conv2D(16, 3, padding=((1, 1), (1, 1)), with_bias=False, w_init=_he())(x)
        x = jax.nn.relu(_bn()(x, is_training=train))
        for features in (16, 32, 64):
            for i in range(n):
                x = _block(x, features, 2 if (i == 0 and features != 16) else 1, train)
        return hk.Linear(w.num_classes)(jnp.mean(x, axis=(1, 2)))

    def transformer(x, train):   # pre-norm blocks, exact GELU (as fnn and torch)
        f, heads = x.shape[-1], w.config["heads"]
        norm = lambda: hk.LayerNorm(axis=-1, create_scale=True, create_offset=True)  # noqa: E731
        for _ in range(w.config["blocks"]):
            h = norm()(x)
            x = x + hk.MultiHeadAttention(heads, f // heads,
                                          w_init=hk.initializers.VarianceScaling(1.0))(h, h, h)
            h = hk.Linear(w.config["mlp"])(norm()(x))
            x = x + hk.Linear(f)(jax.nn.gelu(h, approximate=False))
        return hk.Linear(w.num_classes)(jnp.mean(norm()(x), axis=1))

    return {"mlp": mlp, "lenet5": lenet5, "lstm": lstm, "lstm_long": lstm,
            "resnet20": resnet, "transformer": transformer}[w.name]


def build(w: workloads.Workload, variant: str) -> Bench:
    model = hk.transform_with_state(forward_fn(w))
    x, y = map(jax.device_put, workloads.synthetic_batch(w))
    tx = optax.adam(1e-3)

    @jax.jit
    def init(key):
        params, state = model.init(key, x[:1], True)
        return params, state, tx.init(params)

    def loss_fn(params, state, x, y):
        logits, state = model.apply(*mixed((params, state)), None, mixed(x), True)
        state = jax.tree.map(lambda a: a.astype(jnp.float32), state)   # kept in float32
        logits = as_float32(logits)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state

    def step(carry, x, y):
        params, state, opt_state = carry
        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, x, y)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), state, opt_state), loss

    step = jax.jit(step, donate_argnums=0)
    return Bench(lambda c: step(c, x, y), init(jax.random.key(0)), jax_sync,
                 jax_versions(haiku=hk.__version__, optax=optax.__version__))


if __name__ == "__main__":
    main(build, "haiku")
