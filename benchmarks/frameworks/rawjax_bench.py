"""Hand-written raw JAX: parameter dicts, `jax.lax` ops, Adam in six lines.

The same maths as fnn's models (layouts NHWC/HWIO, the LSTM's input
projected inside each scan step as fnn's default does, BatchNorm with the biased batch variance and
decay-0.9 running statistics, option-A ResNet shortcuts, PyTorch's Adam), but
no layer abstraction, no validation and no extras in the step: the baseline
for "fnn adds no abstraction tax" (issue 7, item 2).

Variant `fnn_options`: the same step jitted with `fnn.compiler.options()` (the
XLA options fnn compiles its own steps with), so that fnn and raw JAX can also
be compared at equal compiler settings.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import workloads
from benchmarks.frameworks._common import Bench, as_float32, jax_sync, jax_versions, main, mixed

# ---------------------------------------------------------------------------
# layers as plain functions


def _normal(key, shape, fan_in):
    return jax.random.normal(key, shape, jnp.float32) / np.sqrt(fan_in)


def dense_init(key, n_in, n_out):
    return {"w": _normal(key, (n_in, n_out), n_in), "b": jnp.zeros((n_out,), jnp.float32)}


def dense(p, x):
    return x @ p["w"] + p["b"]


def conv_init(key, k, c_in, c_out, bias=True, gain=1.0):
    p = {"w": gain * _normal(key, (k, k, c_in, c_out), k * k * c_in)}
    if bias:
        p["b"] = jnp.zeros((c_out,), jnp.float32)
    return p


def conv(p, x, stride=1, padding="VALID"):
    y = jax.lax.conv_general_dilated(x, p["w"], (stride, stride), padding,
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + p["b"] if "b" in p else y


def avg_pool2(x):
    s = jax.lax.reduce_window(x, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return s * 0.25


def bn_init(c):
    return {"scale": jnp.ones((c,), jnp.float32), "bias": jnp.zeros((c,), jnp.float32)}, \
        {"mean": jnp.zeros((c,), jnp.float32), "var": jnp.ones((c,), jnp.float32)}


def batch_norm(p, s, x, decay=0.9, eps=1e-5):
    mean = jnp.mean(x, axis=(0, 1, 2))
    var = jnp.mean(jnp.square(x - mean), axis=(0, 1, 2))
    m = x.shape[0] * x.shape[1] * x.shape[2]
    new_s = {"mean": decay * s["mean"] + (1 - decay) * mean,
             "var": decay * s["var"] + (1 - decay) * var * (m / (m - 1))}
    y = (x - mean) * (jax.lax.rsqrt(var + eps) * p["scale"]) + p["bias"]
    return y, new_s


# ---------------------------------------------------------------------------
# models: init(key) -> (params, state); apply(params, state, x) -> (logits, state)


def mlp(w: workloads.Workload):
    sizes = [w.input_shape[0], *w.config["features"]]

    def init(key):
        keys = jax.random.split(key, len(sizes) - 1)
        return [dense_init(k, a, b) for k, a, b in zip(keys, sizes, sizes[1:], strict=False)], {}

    def apply(params, state, x):
        for p in params[:-1]:
            x = jax.nn.relu(dense(p, x))
        return dense(params[-1], x), state

    return init, apply


def lenet5(w: workloads.Workload):
    def init(key):
        k = jax.random.split(key, 5)
        return {"c1": conv_init(k[0], 5, 1, 6), "c3": conv_init(k[1], 5, 6, 16),
                "c5": conv_init(k[2], 5, 16, 120), "f6": dense_init(k[3], 120, 84),
                "out": dense_init(k[4], 84, w.num_classes)}, {}

    def apply(p, state, x):
        x = avg_pool2(jnp.tanh(conv(p["c1"], x, padding=((2, 2), (2, 2)))))
        x = avg_pool2(jnp.tanh(conv(p["c3"], x)))
        x = jnp.tanh(conv(p["c5"], x)).reshape(x.shape[0], -1)
        x = jnp.tanh(dense(p["f6"], x))
        return dense(p["out"], x), state

    return init, apply


def lstm(w: workloads.Workload):
    n_in, hidden = w.input_shape[-1], w.config["hidden"]

    def init(key):
        kx, kh, kd = jax.random.split(key, 3)
        b = jnp.zeros((4 * hidden,), jnp.float32).at[hidden:2 * hidden].set(1.0)
        return {"w_x": _normal(kx, (n_in, 4 * hidden), n_in),
                "w_h": _normal(kh, (hidden, 4 * hidden), hidden), "b": b,
                "out": dense_init(kd, hidden, w.num_classes)}, {}

    def apply(p, state, x):
        def cell(carry, x_t):
            h, c = carry
            z = x_t @ p["w_x"] + h @ p["w_h"] + p["b"]
            i, f, g, o = jnp.split(z, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), None

        zeros = jnp.zeros((x.shape[0], hidden), jnp.float32)
        (h, _), _ = jax.lax.scan(cell, (zeros, zeros), jnp.swapaxes(x, 0, 1))
        return dense(p["out"], h), state

    return init, apply


def resnet(w: workloads.Workload):
    n = (w.config["depth"] - 2) // 6
    plan = []                                  # (c_in, c_out, stride) per basic block
    c_in = 16
    for c_out in (16, 32, 64):
        for i in range(n):
            stride = 2 if (i == 0 and c_out != 16) else 1
            plan.append((c_in, c_out, stride))
            c_in = c_out

    def init(key):
        keys = iter(jax.random.split(key, 2 * len(plan) + 2))
        gain = np.sqrt(2.0)                    # He-normal
        params = {"stem": conv_init(next(keys), 3, 3, 16, bias=False, gain=gain)}
        params["stem_bn"], state = bn_init(16)
        state = {"stem_bn": state}
        for j, (ci, co, _) in enumerate(plan):
            params[f"b{j}"] = {"c1": conv_init(next(keys), 3, ci, co, False, gain),
                               "c2": conv_init(next(keys), 3, co, co, False, gain)}
            params[f"b{j}"]["bn1"], s1 = bn_init(co)
            params[f"b{j}"]["bn2"], s2 = bn_init(co)
            state[f"b{j}"] = {"bn1": s1, "bn2": s2}
        params["fc"] = dense_init(next(keys), 64, w.num_classes)
        return params, state

    def apply(p, s, x):
        new = {}
        x = conv(p["stem"], x, padding=((1, 1), (1, 1)))
        x, new["stem_bn"] = batch_norm(p["stem_bn"], s["stem_bn"], x)
        x = jax.nn.relu(x)
        for j, (ci, co, stride) in enumerate(plan):
            pb, sb = p[f"b{j}"], s[f"b{j}"]
            y = conv(pb["c1"], x, stride, ((1, 1), (1, 1)))
            y, s1 = batch_norm(pb["bn1"], sb["bn1"], y)
            y = conv(pb["c2"], jax.nn.relu(y), 1, ((1, 1), (1, 1)))
            y, s2 = batch_norm(pb["bn2"], sb["bn2"], y)
            new[f"b{j}"] = {"bn1": s1, "bn2": s2}
            short = x
            if stride != 1 or ci != co:        # option A: subsample, zero-pad channels
                extra = co - ci
                short = jnp.pad(x[:, ::stride, ::stride, :],
                                ((0, 0), (0, 0), (0, 0), (extra // 2, extra - extra // 2)))
            x = jax.nn.relu(y + short)
        x = jnp.mean(x, axis=(1, 2))
        return dense(p["fc"], x), new

    return init, apply


def transformer(w: workloads.Workload):
    """Pre-norm blocks: x + MHA(LN(x)), x + W2 gelu(W1 LN(x)); then LN, mean over time, Dense."""
    f, heads, width, blocks = w.input_shape[-1], w.config["heads"], w.config["mlp"], \
        w.config["blocks"]
    d = f // heads

    def ln_init():
        return {"g": jnp.ones((f,), jnp.float32), "b": jnp.zeros((f,), jnp.float32)}

    def layer_norm(p, x, eps=1e-5):
        mean = jnp.mean(x, axis=-1, keepdims=True)
        var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
        return (x - mean) * jax.lax.rsqrt(var + eps) * p["g"] + p["b"]

    def init(key):
        keys = iter(jax.random.split(key, 6 * blocks + 1))
        params = {"blocks": [{"ln1": ln_init(), "ln2": ln_init(),
                              "qkv": dense_init(next(keys), f, 3 * f),
                              "o": dense_init(next(keys), f, f),
                              "w1": dense_init(next(keys), f, width),
                              "w2": dense_init(next(keys), width, f)} for _ in range(blocks)],
                  "ln": ln_init(), "out": dense_init(next(keys), f, w.num_classes)}
        return params, {}

    def attention(p, x):
        n, t, _ = x.shape
        q, k, v = jnp.split(dense(p["qkv"], x).reshape(n, t, 3 * heads, d), 3, axis=2)
        a = jax.nn.softmax(jnp.einsum("nthd,nshd->nhts", q, k) / np.sqrt(d), axis=-1)
        return dense(p["o"], jnp.einsum("nhts,nshd->nthd", a, v).reshape(n, t, f))

    def apply(p, state, x):
        for b in p["blocks"]:
            x = x + attention(b, layer_norm(b["ln1"], x))
            x = x + dense(b["w2"], jax.nn.gelu(dense(b["w1"], layer_norm(b["ln2"], x)),
                                               approximate=False))
        return dense(p["out"], jnp.mean(layer_norm(p["ln"], x), axis=1)), state

    return init, apply


MODELS = {"mlp": mlp, "lenet5": lenet5, "lstm": lstm, "lstm_long": lstm, "resnet20": resnet,
          "transformer": transformer}


# ---------------------------------------------------------------------------
# loss, Adam, step


def cross_entropy(logits, labels):
    logp = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def adam_init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)   # two separate buffers (donated)
    return (jnp.zeros((), jnp.int32), params, zeros(), zeros())


def adam_update(opt, grads, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8):
    t, params, m, v = opt
    t = t + 1
    tf = t.astype(jnp.float32)
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    c1, c2 = 1 - b1 ** tf, 1 - b2 ** tf
    params = jax.tree.map(lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps),
                          params, m, v)
    return (t, params, m, v)


VARIANTS = ("default", "fnn_options")


def build(w: workloads.Workload, variant: str) -> Bench:
    init, apply = MODELS[w.name](w)
    params, model_state = jax.jit(init)(jax.random.key(0))
    x, y = map(jax.device_put, workloads.synthetic_batch(w))

    def loss_fn(params, model_state, x, y):
        logits, model_state = apply(*mixed((params, model_state, x)))
        model_state = jax.tree.map(lambda a: a.astype(jnp.float32), model_state)
        return cross_entropy(as_float32(logits), y), model_state

    def step(carry, x, y):
        opt, model_state = carry
        (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            opt[1], model_state, x, y)
        return (adam_update(opt, grads), model_state), loss

    if variant == "fnn_options":
        import fnn.compiler
        # fnn.compiler.jit: the options at the top level, a plain jit inside another
        # trace (benchmarks.program_size traces every step inside its own jit)
        step = fnn.compiler.jit(step, fnn.compiler.options(), donate_argnums=0)
    else:
        step = jax.jit(step, donate_argnums=0)
    return Bench(lambda c: step(c, x, y), (adam_init(params), model_state), jax_sync,
                 jax_versions())


if __name__ == "__main__":
    main(build, "rawjax", VARIANTS)
