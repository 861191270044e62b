"""Fused steps: `fnn.fused` and `fit(steps_per_call=K)`.

References are the single jitted steps run one after the other: fused forms
must give the same params and metrics (up to float rounding), and the rule
`choose_form` must keep convolutions out of a scan on the CPU.
"""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import fused, losses, optim, train
from fnn._jaxpr import sub_jaxprs
from fnn.checkpoint import CheckpointManager
from fnn.layers import LSTM, Conv2D, Dense, Dropout, Flatten

CE = losses.softmax_cross_entropy
ADAM = optim.adam(1e-2)
MLP = fnn.serial(Dense(8), fnn.relu, Dropout(0.2), Dense(3))   # Dropout: per-step keys
CNN = fnn.serial(Conv2D(2, 3), fnn.relu, Flatten(), Dense(3))
LENET_LIKE = fnn.serial(Conv2D(2, 5, padding="VALID"), fnn.relu, Flatten(), Dense(3))  # im2col on CPU
RNN = fnn.serial(LSTM(4), Dense(3))


def _blobs(n, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    centers = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]], np.float32)
    return (centers[y] + rng.normal(size=(n, 2))).astype(np.float32), y


def _state(model, shape, key):
    return train.init_train_state(model, ADAM, key, shape)


def _batch(model_shape, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(n, *model_shape)).astype(np.float32)),
            jnp.asarray(rng.integers(0, 3, n).astype(np.int32)))


@pytest.mark.parametrize("form", ["scan", "unroll"])
def test_fused_steps_equal_single_steps(form, key):
    x, y = _blobs(5 * 4)
    xs, ys = jnp.asarray(x.reshape(5, 4, 2)), jnp.asarray(y.reshape(5, 4))
    single = train.make_train_step(MLP, CE, ADAM)
    ts = _state(MLP, (2,), key)
    losses_ = []
    for i in range(5):
        ts, m = single(ts, xs[i], ys[i])
        losses_.append(float(m["loss"]))
    step = train.make_train_step(MLP, CE, ADAM, jit=False)
    ts_f, metrics = fused.make_fused_step(step, form)(_state(MLP, (2,), key), xs, ys)
    chex.assert_shape(metrics["loss"], (5,))
    chex.assert_shape(metrics["accuracy"], (5,))
    np.testing.assert_allclose(np.asarray(metrics["loss"]), losses_, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(ts_f.params, ts.params, atol=1e-5)
    chex.assert_trees_all_equal(ts_f.key, ts.key)          # same key stream
    assert int(ts_f.step) == 5


def test_choose_form_keeps_convolutions_out_of_a_scan_on_cpu(key):
    cases = [(CNN, (5, 5, 1), "single"), (LENET_LIKE, (6, 6, 2), "single"), (MLP, (2,), "scan"),
             (RNN, (3, 2), "scan")]
    for model, shape, want in cases:
        step = train.make_train_step(model, CE, ADAM, jit=False)
        ts, (x, y) = _state(model, shape, key), _batch(shape)
        assert fused.choose_form(step, ts, x, y, backend="cpu") == want, model
        # on GPU/TPU the trap does not apply (cuDNN convolutions): scan
        assert fused.choose_form(step, ts, x, y, backend="gpu") == "scan"


def test_uses_convolution_finds_a_convolution_at_any_depth():
    w = jnp.ones((3, 3, 1, 2))

    def conv(x):
        return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))

    x = jnp.ones((1, 4, 4, 1))
    nested = jax.jit(lambda x: jax.lax.cond(True, conv, conv, x))       # jit > cond > conv
    in_scan = lambda x: jax.lax.scan(lambda c, _: (conv(c)[..., :1], None), x, None, length=2)
    assert fused.uses_convolution(conv, x)
    assert fused.uses_convolution(nested, x)
    assert fused.uses_convolution(in_scan, x)
    assert not fused.uses_convolution(lambda x: jnp.tanh(x) @ jnp.ones((1, 2)), x)
    # Conv2D's im2col lowering (slices + one matmul) counts as a convolution too
    im2col = lambda x: fnn.layers._fast_conv.conv2d_im2col(x, jnp.ones((3, 3, 1, 2)))
    assert fused.uses_convolution(im2col, x)


def test_gradient_accumulation_keeps_convolutions_out_of_loops(key):
    # the same trap as fused steps: the micro-batches must not run in a scan/while
    step = train.make_train_step(CNN, CE, ADAM, accumulate=4, jit=False)
    ts, (x, y) = _state(CNN, (5, 5, 1), key), _batch((5, 5, 1), n=8)
    jaxpr = jax.make_jaxpr(step)(ts, x, y).jaxpr

    def eqns(jaxpr):  # every equation, at any depth
        for eqn in jaxpr.eqns:
            yield eqn
            for v in eqn.params.values():
                for sub in sub_jaxprs(v):
                    yield from eqns(sub)

    loops = [e for e in eqns(jaxpr) if e.primitive.name in ("scan", "while")]
    assert not any(e.primitive.name == "conv_general_dilated" for loop in loops
                   for sub in sub_jaxprs(list(loop.params.values())) for e in eqns(sub))
    assert fused.uses_convolution(step, ts, x, y)


@pytest.mark.parametrize("model, shape, form", [(MLP, (2,), "scan"), (RNN, (3, 2), "auto")])
def test_fit_with_steps_per_call_matches_single_steps(model, shape, form, key, tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(44, *shape)).astype(np.float32)     # batch 4: 11 steps = 2 x 4 + 3
    y = rng.integers(0, 3, 44).astype(np.int32)
    kw = dict(epochs=2, batch_size=4, key=key, progress=False)
    ts1, h1 = train.fit(model, ADAM, CE, (x, y), **kw)
    ts4, h4 = train.fit(model, ADAM, CE, (x, y), steps_per_call=4, fused_form=form,
                        checkpoint_dir=tmp_path, **kw)
    np.testing.assert_allclose(h4["loss"], h1["loss"], rtol=1e-5)
    np.testing.assert_allclose(h4["accuracy"], h1["accuracy"], rtol=1e-6)
    chex.assert_trees_all_close(ts4.params, ts1.params, atol=1e-5)
    meta = CheckpointManager(tmp_path).load_metadata(2)
    assert meta["config"]["fused_form"] == "scan"


def test_fit_auto_form_runs_single_steps_for_a_cnn_on_cpu(key, tmp_path):
    if jax.default_backend() != "cpu":
        pytest.skip("the rule under test is the CPU one")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(12, 5, 5, 1)).astype(np.float32)
    y = rng.integers(0, 3, 12).astype(np.int32)
    kw = dict(epochs=1, batch_size=4, key=key, progress=False)
    ts1, h1 = train.fit(CNN, ADAM, CE, (x, y), **kw)
    ts4, h4 = train.fit(CNN, ADAM, CE, (x, y), steps_per_call=4, checkpoint_dir=tmp_path, **kw)
    assert h4 == h1                                                   # the very same steps
    chex.assert_trees_all_equal(ts4.params, ts1.params)
    assert CheckpointManager(tmp_path).load_metadata(1)["config"]["fused_form"] == "single"
    misses = fnn._util._memo.cache_info().misses
    train.fit(CNN, ADAM, CE, (x, y), steps_per_call=4, **kw)   # the form is not traced again,
    assert fnn._util._memo.cache_info().misses == misses          # nor any program rebuilt


def test_fit_reports_a_nan_inside_a_fused_call(key):
    x, y = _blobs(16)
    x[:] = np.nan                     # NaN logits from the first step on (no relu to hide them)
    with pytest.raises(FloatingPointError, match=r"training loss became nan at epoch 1/1, step 1/4"):
        train.fit(fnn.serial(Dense(3)), ADAM, CE, (x, y), epochs=1, batch_size=4, key=key, progress=False,
                  steps_per_call=4)


def test_bad_fused_arguments_are_clear_errors(key):
    x, y = _blobs(16)
    kw = dict(epochs=1, batch_size=4, key=key, progress=False)
    with pytest.raises(ValueError, match=r"fit: steps_per_call must be a positive int, got 0"):
        train.fit(MLP, ADAM, CE, (x, y), steps_per_call=0, **kw)
    with pytest.raises(ValueError, match=r"fit: unknown fused_form 'fast'; expected one of "
                                         r"\['auto', 'scan', 'unroll', 'single'\]"):
        train.fit(MLP, ADAM, CE, (x, y), steps_per_call=2, fused_form="fast", **kw)
    step = train.make_train_step(MLP, CE, ADAM, jit=False)
    with pytest.raises(ValueError, match=r"make_fused_step: form must be 'scan' or 'unroll', "
                                         r"got 'auto'"):
        fused.make_fused_step(step, "auto")
    xs = jnp.zeros((3, 4, 2))
    with pytest.raises(ValueError, match=r"make_fused_step: xs and ys must stack the same "
                                         r"number K of batches on their first axis, got shapes "
                                         r"\(3, 4, 2\) and \(2, 4\)"):
        fused.make_fused_step(step, "scan")(_state(MLP, (2,), key), xs,
                                            jnp.zeros((2, 4), jnp.int32))
