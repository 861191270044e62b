"""`fnn.layers._onednn_conv`: oneDNN's convolution passes (the `fnn_onednn` extension)
equal `lax.conv_general_dilated` and its transposes to float32 rounding, for values,
gradients, forward-mode and second derivatives, under jit, vmap (per-example gradients),
scan and checkpoint; the switch turns them off; `Conv2D` runs on them when routed there.

The primitives run on the kernels where the extension is built and not switched off
(`FNN_ONEDNN=0`), else on their lax lowering: the same tests then check the derivative
and batching rules alone. Tests of the kernels themselves are skipped, with the reason,
where the extension is not built."""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn.layers import _fast_conv, _onednn_conv
from fnn.layers.conv import Conv2D

needs_kernels = pytest.mark.skipif(
    not _onednn_conv.available() or jax.default_backend() != "cpu",
    reason=f"the fnn_onednn extension is not built ({_onednn_conv.LOAD_ERROR}; "
           "pip install ./native/fnn_onednn) or the backend is not the CPU")

DN = ("NHWC", "HWIO", "NHWC")


def _lax(x, w, strides, pads, dilation, groups=1):
    return jax.lax.conv_general_dilated(x, w, strides, pads, rhs_dilation=dilation,
                                        dimension_numbers=DN, feature_group_count=groups,
                                        precision=jax.lax.Precision.HIGHEST)


def _onednn(x, w, strides, pads, dilation, groups=1):
    return _onednn_conv.conv2d(x, w, strides, pads, dilation, groups)


def _close(actual, expected, rtol=1e-5):
    """Float32 rounding: within rtol of the largest magnitude of the reference."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rtol * scale)


def _pads(x_shape, kernel, strides, padding, dilation):
    return _fast_conv.explicit_padding(x_shape[1:3], kernel, strides, padding, dilation)


def _passes(conv, x, w, dy, **kw):
    """(y, dx, dw): the forward pass and the two gradients of `<conv(x, w), dy>`."""
    y, vjp = jax.vjp(lambda x, w: conv(x, w, **kw), x, w)
    return (y, *vjp(dy))


def _operands(seed, x_shape, w_shape, strides, pads, dilation, groups=1):
    """Standard normal `x`, `w` and a cotangent `dy` of the output's shape (numpy arrays:
    no eager JAX operations, each of which would compile a program)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape, dtype=np.float32)
    w = rng.standard_normal(w_shape, dtype=np.float32)
    y = jax.eval_shape(functools.partial(_lax, strides=strides, pads=pads, dilation=dilation,
                                         groups=groups), x, w)
    return x, w, rng.standard_normal(y.shape, dtype=np.float32)


# (x shape, kernel (kh, kw, O), strides, padding, dilation)
CASES = [
    ((1, 7, 9, 1), (3, 3, 1), (1, 1), "SAME", (1, 1)),            # batch 1, one channel
    ((3, 8, 8, 5), (3, 3, 7), (1, 1), "VALID", (1, 1)),           # batch 3: uneven chunks
    ((2, 9, 10, 16), (3, 3, 32), (2, 2), "SAME", (1, 1)),         # stride 2, many channels
    ((2, 11, 9, 4), (5, 3, 6), (2, 1), ((2, 1), (0, 3)), (1, 1)),  # asymmetric pairs
    ((2, 12, 12, 3), (3, 3, 4), (1, 1), "SAME", (2, 3)),          # dilation
    ((4, 10, 10, 6), (5, 5, 16), (1, 1), "VALID", (1, 1)),        # LeNet's C3, smaller
    ((2, 5, 5, 16), (5, 5, 12), (1, 1), "VALID", (1, 1)),         # kernel covers the input
    ((2, 6, 7, 64), (1, 1, 64), (1, 1), "VALID", (1, 1)),         # 1x1, 64 channels
    ((2, 8, 8, 3), (2, 2, 5), (3, 2), ((1, 0), (2, 2)), (2, 1)),  # everything at once
]


@pytest.mark.parametrize("x_shape,kernel,strides,padding,dilation", CASES)
def test_passes_equal_lax(seed, x_shape, kernel, strides, padding, dilation):
    kh, kw, o = kernel
    pads = _pads(x_shape, (kh, kw), strides, padding, dilation)
    x, w, dy = _operands(seed, x_shape, (kh, kw, x_shape[3], o), strides, pads, dilation)
    kw_ = dict(strides=strides, pads=pads, dilation=dilation)
    ours = jax.jit(functools.partial(_passes, _onednn, **kw_))(x, w, dy)
    ref = jax.jit(functools.partial(_passes, _lax, **kw_))(x, w, dy)
    for a, b in zip(ours, ref):
        assert a.shape == b.shape
        _close(a, b)


@pytest.mark.skipif(_onednn_conv.enabled() and jnp.bfloat16 not in _onednn_conv.dtypes(),
                    reason="oneDNN has no native bfloat16 convolution on this CPU")
@pytest.mark.parametrize("x_shape,kernel,strides,padding,dilation", CASES[1:4])
def test_bfloat16_passes_within_bfloat16_rounding(seed, x_shape, kernel, strides, padding,
                                                  dilation):
    """bfloat16 operands and results: the float32 passes on the same (rounded) operands,
    to bfloat16's rounding (8 bits: 2⁻⁸ ≈ 4e-3 of the largest magnitude, with margin)."""
    kh, kw, o = kernel
    pads = _pads(x_shape, (kh, kw), strides, padding, dilation)
    x, w, dy = (jnp.asarray(a, jnp.bfloat16) for a in _operands(
        seed, x_shape, (kh, kw, x_shape[3], o), strides, pads, dilation))
    kw_ = dict(strides=strides, pads=pads, dilation=dilation)
    ours = jax.jit(functools.partial(_passes, _onednn, **kw_))(x, w, dy)
    ref = jax.jit(functools.partial(_passes, _lax, **kw_))(
        *(a.astype(jnp.float32) for a in (x, w, dy)))
    for a, b in zip(ours, ref):
        assert a.dtype == jnp.bfloat16
        _close(a.astype(jnp.float32), b, rtol=1e-2)


def test_forward_equals_float64_numpy(seed):
    """An independent reference: the convolution's sum written out in float64."""
    x, w, _ = _operands(seed, (2, 6, 5, 3), (3, 2, 3, 4), (2, 1), ((1, 1), (0, 1)), (1, 1))
    xp = np.pad(np.asarray(x, np.float64), ((0, 0), (1, 1), (0, 1), (0, 0)))
    wn = np.asarray(w, np.float64)
    want = np.zeros((2, 3, 5, 4))
    for i in range(3):
        for j in range(5):
            want[:, i, j] = np.einsum("nabc,abco->no", xp[:, 2 * i:2 * i + 3, j:j + 2], wn)
    _close(_onednn(x, w, (2, 1), ((1, 1), (0, 1)), (1, 1)), want)


@pytest.mark.parametrize("groups,c,o", [(2, 4, 6), (3, 3, 3), (4, 8, 4)])
def test_groups_equal_lax(seed, groups, c, o):
    pads = ((1, 1), (1, 1))
    x, w, dy = _operands(seed, (2, 6, 6, c), (3, 3, c // groups, o), (1, 1), pads, (1, 1),
                         groups)
    kw_ = dict(strides=(1, 1), pads=pads, dilation=(1, 1), groups=groups)
    for a, b in zip(jax.jit(functools.partial(_passes, _onednn, **kw_))(x, w, dy),
                    jax.jit(functools.partial(_passes, _lax, **kw_))(x, w, dy)):
        _close(a, b)


def _compiled_passes(seed, on):
    x, w, dy = _operands(seed, (2, 8, 8, 4), (3, 3, 4, 8), (1, 1), ((1, 1), (1, 1)), (1, 1))
    fn = functools.partial(_passes, _onednn, strides=(1, 1), pads=((1, 1), (1, 1)),
                           dilation=(1, 1))
    _onednn_conv.use_onednn(on)
    try:
        return jax.jit(fn).lower(x, w, dy).compile().as_text()
    finally:
        _onednn_conv.use_onednn(None)


TARGETS = ("fnn_onednn_conv_fwd", "fnn_onednn_conv_bwd_data", "fnn_onednn_conv_bwd_weights")


@needs_kernels
def test_runs_on_onednn_kernels(seed):
    """On the CPU the compiled program calls the three FFI targets, not XLA's convolution."""
    text = _compiled_passes(seed, True)
    assert all(target in text for target in TARGETS)
    assert "convolution(" not in text


def test_switched_off_runs_on_xla(seed):
    text = _compiled_passes(seed, False)
    assert not any(target in text for target in TARGETS)
    assert "convolution(" in text


def test_other_backends_lower_to_lax(seed):
    """Traced here, exported for a GPU: the primitives lower to XLA's convolution."""
    x, w, dy = _operands(seed, (2, 8, 8, 4), (3, 3, 4, 8), (1, 1), ((1, 1), (1, 1)), (1, 1))
    fn = functools.partial(_passes, _onednn, strides=(1, 1), pads=((1, 1), (1, 1)),
                           dilation=(1, 1))
    text = jax.export.export(jax.jit(fn), platforms=["cuda"])(x, w, dy).mlir_module()
    assert "stablehlo.convolution" in text and "fnn_onednn" not in text


def test_eager_and_empty_batch(seed):
    x, w, _ = _operands(seed, (2, 5, 5, 3), (3, 3, 3, 2), (1, 1), ((0, 0), (0, 0)), (1, 1))
    _close(_onednn(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1)),
           _lax(x, w, (1, 1), ((0, 0), (0, 0)), (1, 1)))
    empty = np.zeros((0, 5, 5, 3), np.float32)
    y, vjp = jax.vjp(lambda w: _onednn(empty, w, (1, 1), ((0, 0), (0, 0)), (1, 1)), w)
    assert y.shape == (0, 3, 3, 2)
    np.testing.assert_array_equal(vjp(np.zeros(y.shape, np.float32))[0], np.zeros(w.shape))


def test_forward_mode_and_second_derivatives(seed):
    pads = ((1, 1), (0, 2))
    x, w, _ = _operands(seed, (2, 6, 5, 3), (3, 3, 3, 4), (2, 1), pads, (1, 1))
    kw_ = dict(strides=(2, 1), pads=pads, dilation=(1, 1))
    tx, tw = np.cos(x), np.sin(w)

    def jvp(conv):
        return jax.jit(lambda: jax.jvp(functools.partial(conv, **kw_), (x, w), (tx, tw)))()

    for a, b in zip(jvp(_onednn), jvp(_lax)):
        _close(a, b)

    def loss(conv, x, w):
        return jnp.sum(jnp.tanh(conv(x, w, **kw_)) ** 2)

    def hvp(conv):    # Hessian-vector product in (x, w): forward over reverse
        grad = jax.grad(functools.partial(loss, conv), argnums=(0, 1))
        return jax.jvp(grad, (x, w), (tx, tw))[1]

    for a, b in zip(jax.jit(lambda: hvp(_onednn))(), jax.jit(lambda: hvp(_lax))()):
        _close(a, b, rtol=2e-5)


def _loss(conv, w, x):
    return jnp.sum(jnp.sin(conv(x, w, strides=(1, 1), pads=((1, 1), (1, 1)),
                                dilation=(1, 1))))


def test_per_example_gradients_equal_a_loop(seed):
    """vmap(grad) over examples: each example's weight gradient, as a loop computes it."""
    x, w, _ = _operands(seed, (5, 6, 6, 3), (3, 3, 3, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))
    per_example = jax.jit(jax.vmap(jax.grad(lambda w, xi: _loss(_onednn, w, xi[None])),
                                   in_axes=(None, 0)))(w, x)
    grad = jax.jit(jax.grad(functools.partial(_loss, _lax)))
    _close(per_example, np.stack([grad(w, x[i:i + 1]) for i in range(5)]))
    dx = jax.jit(jax.vmap(jax.grad(lambda xi: _loss(_onednn, w, xi[None]))))(x)
    _close(dx, jax.jit(jax.grad(lambda x: _loss(_lax, w, x)))(x))


@pytest.mark.parametrize("x_axis,w_axis,groups",
                         [(None, 0, 1), (None, 0, 2), (1, 0, 2), (0, 3, 1), (2, None, 2)])
def test_vmap_over_kernels_and_images(seed, x_axis, w_axis, groups):
    """An ensemble's kernels (mapped w), mapped images, both, on any axis, with groups."""
    pads = ((1, 0), (1, 1))
    x, w, _ = _operands(seed, (2, 6, 5, 4), (3, 3, 4 // groups, 6), (1, 1), pads, (1, 1),
                        groups)
    xs = x if x_axis is None else np.stack([x, 2 * x, -x], axis=x_axis)
    ws = w if w_axis is None else np.stack([w, w + 1, -w], axis=w_axis)

    def run(conv):
        def f(x, w):
            y, vjp = jax.vjp(lambda x, w: conv(x, w, (1, 1), pads, (1, 1), groups), x, w)
            return (y, *vjp(jnp.cos(y)))
        return jax.vmap(f, in_axes=(x_axis, w_axis))(xs, ws)

    for a, b in zip(jax.jit(lambda: run(_onednn))(), jax.jit(lambda: run(_lax))()):
        _close(a, b)


def test_scan_and_checkpoint(seed):
    """The same kernel applied in a scan, each step rematerialised; gradients as lax's."""
    x, w, _ = _operands(seed, (2, 6, 6, 4), (3, 3, 4, 4), (1, 1), ((1, 1), (1, 1)), (1, 1))

    def loss(conv, w, x):
        def step(h, _):
            return jnp.tanh(conv(h, w, (1, 1), ((1, 1), (1, 1)), (1, 1))), None
        h, _ = jax.lax.scan(jax.checkpoint(step), x, None, length=3)
        return jnp.sum(h ** 2)

    ours = jax.jit(jax.value_and_grad(functools.partial(loss, _onednn), argnums=(0, 1)))(w, x)
    ref = jax.jit(jax.value_and_grad(functools.partial(loss, _lax), argnums=(0, 1)))(w, x)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        _close(a, b)


def test_switch(monkeypatch):
    monkeypatch.delenv("FNN_ONEDNN", raising=False)
    args = ((2, 8, 8, 3), (3, 3, 3, 4), np.float32, ((1, 1), (1, 1)))
    built = _onednn_conv.available()
    assert not _onednn_conv.supports((2, 8, 8, 3), (3, 3, 3, 4), np.float16, args[3])
    assert _onednn_conv.supports((2, 8, 8, 3), (3, 3, 3, 4), jnp.bfloat16, args[3]) == (
        jnp.dtype(jnp.bfloat16) in _onednn_conv.dtypes())
    assert not _onednn_conv.supports((0, 8, 8, 3), *args[1:])
    try:
        assert _onednn_conv.enabled() == _onednn_conv.supports(*args) == built
        _onednn_conv.use_onednn(False)
        assert not _onednn_conv.enabled() and not _onednn_conv.supports(*args)
        monkeypatch.setenv("FNN_ONEDNN", "1")
        assert not _onednn_conv.enabled()          # the function wins over the variable
        _onednn_conv.use_onednn(None)
        assert _onednn_conv.enabled() == built
        monkeypatch.setenv("FNN_ONEDNN", "0")
        assert not _onednn_conv.enabled()
        _onednn_conv.use_onednn(True)
        assert _onednn_conv.enabled() == built
    finally:
        _onednn_conv.use_onednn(None)


_FAST_CONV2D = _fast_conv.conv2d


def _routed(x, w, strides=(1, 1), padding="VALID", dilation=(1, 1), plan=None):
    """`_fast_conv.conv2d` sending what `supports` accepts to oneDNN."""
    pads = _fast_conv.explicit_padding(x.shape[1:3], w.shape[:2], strides, padding, dilation)
    if _onednn_conv.supports(x.shape, w.shape, x.dtype, pads):
        return _onednn_conv.conv2d(x, w, strides, pads, dilation)
    return _FAST_CONV2D(x, w, strides, padding, dilation, plan)


@pytest.mark.parametrize("on", [pytest.param(True, marks=needs_kernels), False])
def test_conv2d_layer_routed_to_onednn(seed, monkeypatch, on):
    """`Conv2D` through a dispatch to oneDNN: the same outputs and gradients as on XLA's
    kernels; switched off, no oneDNN primitive is traced."""
    layer = Conv2D(6, 3, stride=2, padding="SAME")
    params, state = layer.init(jax.random.key(seed), (9, 9, 3))
    x = np.random.default_rng(seed).standard_normal((4, 9, 9, 3), dtype=np.float32)

    def loss(params, x):
        return jnp.sum(jnp.sin(layer.apply(params, state, x)[0]))

    ref = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    monkeypatch.setattr(_fast_conv, "conv2d", _routed)
    _onednn_conv.use_onednn(on)
    try:
        jaxpr = str(jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(params, x))
        ours = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))(params, x)
    finally:
        _onednn_conv.use_onednn(None)
    assert all((name in jaxpr) == on for name in _onednn_conv.PRIMITIVE_NAMES)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
        _close(a, b)


@pytest.mark.slow
def test_benchmark_script_reports_every_pass(tmp_path):
    """`python -m benchmarks.onednn_conv` on LeNet-5's shapes, one round: a median for
    every (case, variant, pass) and the machine's description in the JSON report."""
    from benchmarks import onednn_conv

    out = tmp_path / "onednn_conv.json"
    report = onednn_conv.main(["--rounds", "1", "--repeats", "1", "--cases", "lenet5",
                               "--no-torch", "--json", str(out)])
    variants = ["xla", "fnn"] + (["onednn"] if _onednn_conv.available() else [])
    keys = {f"{c}|{v}|{p}" for c in onednn_conv.CASES["lenet5"] for v in variants
            for p in onednn_conv.PASSES}
    assert set(report["medians"]) == keys and all(t > 0 for t in report["medians"].values())
    assert {"cpu", "cpu_flags", "threads", "versions", "dtype"} <= set(report)
    assert out.exists()
