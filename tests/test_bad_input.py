"""The bad-input table: every mistake a user plausibly makes, and the error fnn gives.

One parametrised test over `CASES`. Each case is

    case(id, trigger, exception_type, message_regex)

where `trigger()` makes the mistake. The regex pins the function or layer name,
what was expected and what was given (API.md: "raises ValueError or TypeError at
trace time with a message that names the layer/function, what was expected and
what was given — never a raw XLA error").

A mistake found to give an unclear error (or none) is fixed in the library
before its row is added: every row passes.

To extend: add one `case(...)` line. Layers that several cases share are built
once (`_built`), and inputs are tiny, so the whole table runs in seconds.
"""
from __future__ import annotations

import atexit
import functools
import os
import pickle
import shutil
import tempfile

import _catalog
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import activations, checkpoint, data, datasets, initializers, losses, optim, regularizers
from fnn import layers as L
from fnn.optim import schedules

KEY = jax.random.PRNGKey(0)
NAN = float("nan")


def case(id_, trigger, exc, match):
    return pytest.param(trigger, exc, match, id=id_)


# ---------------------------------------------------------------------------
# shared, lazily built layers (built on first use, once per session)


@functools.cache
def _built(name):
    """(layer, params, state) for the named test layer."""
    make, shape = _catalog.LAYERS[name]  # the suite's one list of layers
    layer = make()
    params, state = layer.init(KEY, shape)
    return layer, params, state


def apply(name, x, **kwargs):
    """A trigger: apply the shared layer `name` to `x`."""
    def trigger():
        layer, params, state = _built(name)
        return layer.apply(params, state, x, **kwargs)
    return trigger


def init(layer_fn, shape):
    """A trigger: build a layer and init it for one example of `shape`."""
    return lambda: layer_fn().init(KEY, shape)


def f32(*shape):
    return jnp.ones(shape, jnp.float32)


def i32(*shape):
    return jnp.ones(shape, jnp.int32)


# ---------------------------------------------------------------------------
# optimizers and checkpoints helpers

PARAMS = {"w": jnp.ones((2,)), "b": jnp.zeros(())}


def update_with(opt, grads):
    def trigger():
        return opt.update(opt.init(PARAMS), grads)
    return trigger


@functools.cache
def _files():
    """A folder with a checkpoint and some non-checkpoints (made once, removed at exit)."""
    folder = tempfile.mkdtemp(prefix="fnn-bad-input-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    checkpoint.save(os.path.join(folder, "good.npz"),
                    {"w": np.ones((2, 3), np.float32), "b": np.zeros((3,), np.float32)})
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("hello, not a checkpoint\n")
    with open(os.path.join(folder, "evil.pkl"), "wb") as f:
        pickle.dump({"w": [1, 2, 3]}, f)
    np.save(os.path.join(folder, "array.npy"), np.ones(3))
    return folder


def ckpt_file(name):
    return os.path.join(_files(), name)


def load(name, like=None):
    return lambda: checkpoint.load(ckpt_file(name), like=like)


GOOD_LIKE = {"w": np.zeros((2, 3), np.float32), "b": np.zeros((3,), np.float32)}


# ---------------------------------------------------------------------------
# the table

LAYER_CONSTRUCTORS = [
    case("Dense-features-zero", lambda: L.Dense(0), ValueError,
         r"Dense: features must be a positive int, got 0"),
    case("Dense-features-float", lambda: L.Dense(2.5), TypeError,
         r"Dense: features must be a positive int, got 2\.5"),
    case("Dense-w_init-typo", lambda: L.Dense(3, w_init="he_nromal"), ValueError,
         r"Dense: .*unknown initializer 'he_nromal'.*he_normal"),
    case("Conv2D-features-negative", lambda: L.Conv2D(-1, 3), ValueError,
         r"Conv2D: features must be a positive int, got -1"),
    case("Conv2D-kernel-zero", lambda: L.Conv2D(8, 0), ValueError,
         r"Conv2D: kernel_size must be positive, got 0"),
    case("Conv2D-stride-triple", lambda: L.Conv2D(8, 3, stride=(1, 2, 3)), TypeError,
         r"Conv2D: stride must be an int or a pair of ints, got \(1, 2, 3\)"),
    case("Conv2D-padding-unknown", lambda: L.Conv2D(8, 3, padding="FULL"), ValueError,
         r"Conv2D: unknown padding 'FULL'; expected \"SAME\", \"VALID\""),
    case("Conv2D-padding-negative", lambda: L.Conv2D(8, 3, padding=-1), ValueError,
         r"Conv2D: padding must be >= 0, got -1"),
    case("Conv2D-dilation-zero", lambda: L.Conv2D(8, 3, dilation=0), ValueError,
         r"Conv2D: dilation must be positive, got 0"),
    case("MaxPool-window-zero", lambda: L.MaxPool(0), ValueError,
         r"MaxPool: window must be positive, got 0"),
    case("AvgPool-padding-unknown", lambda: L.AvgPool(2, padding="full"), ValueError,
         r"AvgPool: unknown padding 'full'; expected"),
    case("AvgPool-stride-float", lambda: L.AvgPool(2, stride=1.5), TypeError,
         r"AvgPool: stride must be an int or a pair of ints, got 1\.5"),
    case("Dropout-rate-one", lambda: L.Dropout(1.0), ValueError,
         r"Dropout: rate must be in \[0\.0, 1\.0\), got 1\.0"),
    case("Dropout-rate-negative", lambda: L.Dropout(-0.1), ValueError,
         r"Dropout: rate must be in \[0\.0, 1\.0\), got -0\.1"),
    case("Dropout-rate-nan", lambda: L.Dropout(NAN), ValueError,
         r"Dropout: rate must be finite, got nan"),
    case("BatchNorm-decay-above-one", lambda: L.BatchNorm(decay=1.5), ValueError,
         r"BatchNorm: decay must be in \[0\.0, 1\.0\], got 1\.5"),
    case("BatchNorm-eps-zero", lambda: L.BatchNorm(eps=0.0), ValueError,
         r"BatchNorm: eps must be > 0\.0, got 0\.0"),
    case("BatchNorm-axis-float", lambda: L.BatchNorm(axis=1.5), TypeError,
         r"BatchNorm: axis must be an int, got 1\.5"),
    case("LayerNorm-eps-negative", lambda: L.LayerNorm(eps=-1e-5), ValueError,
         r"LayerNorm: eps must be > 0\.0, got -1e-05"),
    case("PReLU-init-string", lambda: L.PReLU(init="0.25"), TypeError,
         r"PReLU: init must be a number, got '0\.25'"),
    case("Maxout-pieces-zero", lambda: L.Maxout(4, pieces=0), ValueError,
         r"Maxout: pieces must be a positive int, got 0"),
    case("Embedding-vocab-zero", lambda: L.Embedding(0, 4), ValueError,
         r"Embedding: vocab_size must be a positive int, got 0"),
    case("Embedding-features-negative", lambda: L.Embedding(10, -4), ValueError,
         r"Embedding: features must be a positive int, got -4"),
    case("SimpleRNN-hidden-zero", lambda: L.SimpleRNN(0), ValueError,
         r"SimpleRNN: hidden must be a positive int, got 0"),
    case("SimpleRNN-activation-typo", lambda: L.SimpleRNN(4, activation="rleu"), ValueError,
         r"SimpleRNN: .*unknown activation 'rleu'.*relu"),
    case("LSTM-return_sequences-string", lambda: L.LSTM(4, return_sequences="yes"), TypeError,
         r"LSTM: return_sequences must be True or False, got 'yes'"),
    case("LSTM-forget_bias-nan", lambda: L.LSTM(4, forget_bias=NAN), ValueError,
         r"LSTM: forget_bias must be finite, got nan"),
    case("GRU-unroll-zero", lambda: L.GRU(4, unroll=0), ValueError,
         r"GRU: unroll must be a positive int, got 0"),
    case("GRU-hidden-float", lambda: L.GRU(4.0), TypeError,
         r"GRU: hidden must be a positive int, got 4\.0"),
    case("Bidirectional-merge-unknown", lambda: L.Bidirectional(L.LSTM(4), merge="avg"),
         ValueError, r"Bidirectional: unknown merge 'avg'; expected one of .*'mean'"),
]

LAYER_INIT = [
    case("Dense-init-scalar-shape", init(lambda: L.Dense(3), ()), ValueError,
         r"Dense: expected input_shape \(\.\.\., in_features\), got \(\)"),
    case("Conv2D-init-rank-2-shape", init(lambda: L.Conv2D(4, 3), (8, 8)), ValueError,
         r"Conv2D: expected input_shape \(H, W, C\) for one image, got \(8, 8\)"),
    case("Conv2D-init-kernel-larger-than-image",
         init(lambda: L.Conv2D(4, 5, padding="VALID"), (3, 3, 1)), ValueError,
         r"Conv2D: the kernel \(5, 5, 1, 4\) .* is larger than the input \(3, 3, 1\)"),
    case("MaxPool-init-window-larger-than-image", init(lambda: L.MaxPool(3), (2, 2, 1)),
         ValueError, r"MaxPool: the window \(3, 3\) .* is larger than the input \(2, 2, 1\)"),
    case("AvgPool-init-rank-1-shape", init(lambda: L.AvgPool(2), (4,)), ValueError,
         r"AvgPool: expected input_shape \(H, W, C\) for one image, got \(4,\)"),
    case("GlobalAvgPool-init-rank-1-shape", init(L.GlobalAvgPool, (4,)), ValueError,
         r"GlobalAvgPool: expected input_shape \(H, W, C\), got \(4,\)"),
    case("BatchNorm-init-axis-out-of-range", init(lambda: L.BatchNorm(axis=3), (4,)),
         ValueError, r"BatchNorm: axis=3 must name a non-batch axis .*rank 2, shape \(N, 4\)"),
    case("LSTM-init-rank-1-shape", init(lambda: L.LSTM(4), (5,)), ValueError,
         r"LSTM: expected input_shape \(T, features\) for one sequence, got \(5,\)"),
    case("GRU-init-image-shape", init(lambda: L.GRU(4), (8, 8, 1)), ValueError,
         r"GRU: expected input_shape \(T, features\) for one sequence, got \(8, 8, 1\)"),
]

LAYER_APPLY = [
    case("Dense-apply-rank-1", apply("dense", f32(4)), ValueError,
         r"Dense: expected an input of rank >= 2 \(N, \.\.\., 4\), got shape \(4,\) .*x\[None\]"),
    case("Dense-apply-wrong-features", apply("dense", f32(2, 5)), ValueError,
         r"Dense: expected input features \(last axis\) 4 \(from init\), got 5"),
    case("Dense-apply-int-input", apply("dense", i32(2, 4)), TypeError,
         r"Dense: expected a floating-point input, got dtype int32"),
    case("Maxout-apply-wrong-features", apply("maxout", f32(2, 6)), ValueError,
         r"Maxout: expected input features \(last axis\) 4 \(from init\), got 6"),
    case("Conv2D-apply-rank-3", apply("conv", f32(5, 5, 1)), ValueError,
         r"Conv2D: expected a rank-4 input \(N, H, W, C\), got shape \(5, 5, 1\) \(rank 3\)"
         r".*x\[None\]"),
    case("Conv2D-apply-wrong-channels", apply("conv", f32(2, 5, 5, 3)), ValueError,
         r"Conv2D: the kernel of shape \(3, 3, 1, 2\) .* expects 1 input channels, got input "
         r"of shape \(2, 5, 5, 3\) with 3"),
    case("Conv2D-apply-int-images", apply("conv", i32(2, 5, 5, 1)), TypeError,
         r"Conv2D: expected a floating-point input, got dtype int32"),
    case("Conv2D-apply-uint8-images",
         apply("conv", jnp.ones((2, 5, 5, 1), jnp.uint8)), TypeError,
         r"Conv2D: expected a floating-point input, got dtype uint8"),
    case("Conv2D-apply-nchw-images", apply("conv", f32(2, 1, 5, 5)), ValueError,
         r"Conv2D: the kernel of shape \(3, 3, 1, 2\) .* expects 1 input channels, got input "
         r"of shape \(2, 1, 5, 5\) with 5"),
    case("Conv2D-apply-image-too-small", apply("conv", f32(2, 2, 2, 1)), ValueError,
         r"Conv2D: the kernel \(3, 3, 1, 2\) .* is larger than the input \(2, 2, 2, 1\)"),
    case("MaxPool-apply-rank-3", apply("maxpool", f32(4, 4, 1)), ValueError,
         r"MaxPool: expected a rank-4 input \(N, H, W, C\), got shape \(4, 4, 1\)"),
    case("AvgPool-apply-int-images", apply("avgpool", i32(1, 4, 4, 1)), TypeError,
         r"AvgPool: expected a floating-point input, got dtype int32"),
    case("GlobalAvgPool-apply-rank-2", apply("gap", f32(2, 4)), ValueError,
         r"GlobalAvgPool: expected an input \(N, H, W, C\), got shape \(2, 4\) \(rank 2\)"),
    case("Dropout-apply-train-without-key", apply("dropout", f32(2, 4), train=True),
         ValueError, r"Dropout: train=True with rate=0\.5 needs a PRNG key, got key=None"),
    case("Dropout-apply-int-input", apply("dropout", i32(2, 4), train=True, key=KEY),
         TypeError, r"Dropout: expected a floating-point input, got dtype int32"),
    case("BatchNorm-apply-wrong-channels", apply("batchnorm", f32(2, 4)), ValueError,
         r"BatchNorm: expected channels on axis -1 3 \(from init\), got 4"),
    case("BatchNorm-apply-train-batch-of-one", apply("batchnorm", f32(1, 3), train=True),
         ValueError, r"BatchNorm: train=True needs more than one value per channel .*"
                     r"got input of shape \(1, 3\)"),
    case("BatchNorm-apply-rank-1", apply("batchnorm", f32(3)), ValueError,
         r"BatchNorm: expected an input of rank >= 2 \(N, \.\.\., C\), got shape \(3,\)"),
    case("BatchNorm-apply-int-input", apply("batchnorm", i32(2, 3)), TypeError,
         r"BatchNorm: expected a floating-point input, got dtype int32"),
    case("LayerNorm-apply-wrong-features", apply("layernorm", f32(2, 5)), ValueError,
         r"LayerNorm: expected features \(last axis\) 3 \(from init\), got 5"),
    case("LayerNorm-apply-rank-1", apply("layernorm", f32(3)), ValueError,
         r"LayerNorm: expected an input of rank >= 2 .*got shape \(3,\)"),
    case("LayerNorm-apply-int-input", apply("layernorm", i32(2, 3)), TypeError,
         r"LayerNorm: expected a floating-point input, got dtype int32"),
    case("PReLU-apply-wrong-channels", apply("prelu", f32(2, 4)), ValueError,
         r"PReLU: expected channels \(last axis\) 3 \(from init\), got 4"),
    case("PReLU-apply-int-input", apply("prelu", i32(2, 3)), TypeError,
         r"PReLU: expected a floating-point input, got dtype int32"),
    case("Embedding-apply-float-ids", apply("embedding", f32(2, 5)), TypeError,
         r"Embedding: expected integer ids, got dtype float32 \(input shape \(2, 5\)\)"),
    case("Embedding-apply-id-too-large", apply("embedding", jnp.full((2, 5), 10)), ValueError,
         r"Embedding: ids must be in \[0, 9\] \(vocab_size 10\), got ids from 10 to 10"),
    case("Embedding-apply-negative-id", apply("embedding", jnp.full((2, 5), -1)), ValueError,
         r"Embedding: ids must be in \[0, 9\] \(vocab_size 10\), got ids from -1 to -1"),
    case("SimpleRNN-apply-rank-2", apply("rnn", f32(5, 3)), ValueError,
         r"SimpleRNN: expected a rank-3 input \(N, T, 3\).*got shape \(5, 3\) \(rank 2\)"),
    case("LSTM-apply-wrong-features", apply("lstm", f32(2, 5, 4)), ValueError,
         r"LSTM: expected input features \(last axis\) 3 \(from init\), got 4"),
    case("LSTM-apply-misspelt-keyword",
         apply("lstm", f32(2, 5, 3), length=jnp.array([5, 4])), TypeError,
         r"^LSTM\.apply\(\) got an unexpected keyword argument 'length'"),
    case("LSTM-apply-no-time-steps", apply("lstm", f32(2, 0, 3)), ValueError,
         r"LSTM: expected at least one time step, got input \(2, 0, 3\)"),
    case("GRU-apply-int-input", apply("gru", i32(2, 5, 3)), TypeError,
         r"GRU: expected a floating-point input, got dtype int32"),
    case("LSTM-apply-lengths-wrong-shape",
         apply("lstm", f32(2, 5, 3), lengths=jnp.array([5, 4, 3])), ValueError,
         r"LSTM: expected lengths of shape \(2,\) .*got shape \(3,\)"),
    case("LSTM-apply-lengths-float",
         apply("lstm", f32(2, 5, 3), lengths=jnp.array([5.0, 4.0])), TypeError,
         r"LSTM: expected integer lengths, got dtype float32"),
    case("GRU-apply-lengths-longer-than-T",
         apply("gru", f32(2, 5, 3), lengths=jnp.array([5, 6])), ValueError,
         r"GRU: every length must be in \[1, 5\] .*got 6"),
    case("SimpleRNN-apply-lengths-zero",
         apply("rnn", f32(2, 5, 3), lengths=jnp.array([0, 5])), ValueError,
         r"SimpleRNN: every length must be in \[1, 5\] .*got 0"),
    case("SimpleRNN-apply-lengths-typo", apply("rnn", f32(2, 5, 3), lenghts=jnp.array([5, 5])),
         TypeError, r"unexpected keyword argument 'lenghts'"),
    case("Bidirectional-apply-rank-2", apply("bidir", f32(5, 3)), ValueError,
         r"Bidirectional: expected a rank-3 input \(N, T, features\).*got shape \(5, 3\)"),
    case("Bidirectional-apply-lengths-wrong-shape",
         apply("bidir", f32(2, 5, 3), lengths=jnp.array([5])), ValueError,
         r"Bidirectional: expected lengths of shape \(2,\) .*got shape \(1,\)"),
    case("Bidirectional-apply-lengths-into-Dense",
         apply("bidir_dense", f32(2, 5, 3), lengths=jnp.array([5, 5])), TypeError,
         r"Bidirectional: the wrapped layer Dense does not accept lengths"),
    case("Flatten-apply-scalar", apply("flatten", f32()), ValueError,
         r"Flatten: expected an input of rank >= 1 \(N, \.\.\.\), got shape \(\) \(rank 0\)"),
]

COMBINATORS = [
    case("concat-branch-returns-a-list",
         lambda: fnn.concat(lambda x: [x], lambda x: x).apply({}, {}, f32(2, 3)), TypeError,
         r"^concat\.apply: branch 0, <lambda> returned a list, not an array; each branch"),
    case("residual-block-returns-a-list",
         lambda: fnn.residual(lambda x: [x]).apply({}, {}, f32(2, 3)), TypeError,
         r"^residual\.apply: the block, <lambda> returned a list, not an array"),
    case("lstm_cell-int-carry",
         lambda: L.lstm_cell(_built("lstm")[1], L.LSTMCarry(jnp.zeros((2, 4), jnp.int32),
                                                            jnp.zeros((2, 4), jnp.int32)),
                             f32(2, 3)), TypeError,
         r"^lstm_cell: carry\.h: expected a floating-point input, got dtype int32"),
    case("serial-empty", lambda: fnn.serial(), ValueError,
         r"serial: expected at least one layer, got none"),
    case("serial-constructor-not-called", lambda: fnn.serial(L.Dense(3), L.Flatten), TypeError,
         r"serial/concat/residual: expected a fnn\.Layer or a callable .*got <function Flatten"
         r".*Did you forget to call the constructor"),
    case("serial-not-a-layer", lambda: fnn.serial(L.Dense(3), 5), TypeError,
         r"serial/concat/residual: expected a fnn\.Layer or a callable f\(x\) -> y, got 5"),
    case("serial-apply-unknown-keyword", apply("serial", f32(2, 4), lengths=jnp.array([1, 1])),
         TypeError, r"serial\.apply: got unexpected keyword argument\(s\) \['lengths'\]; its "
                    r"layers accept only key and train"),
    case("serial-apply-wrong-features", apply("serial", f32(2, 5)), ValueError,
         r"Dense: expected input features \(last axis\) 4 \(from init\), got 5"),
    case("concat-empty", lambda: fnn.concat(), ValueError,
         r"concat: expected at least one branch, got none"),
    case("concat-branches-mismatch",
         init(lambda: fnn.concat(L.Dense(3), L.Flatten()), (2, 2)), ValueError,
         r"concat: branch outputs must match on all axes but axis=-1; got \(2, 3\) from "
         r"0_Dense and \(4,\) from 1_Flatten"),
    case("concat-class-not-instance", lambda: fnn.concat(L.Dense), TypeError,
         r"serial/concat/residual: expected a fnn\.Layer .*Did you forget to call"),
    case("residual-shape-mismatch", init(lambda: fnn.residual(L.Dense(5)), (4,)), ValueError,
         r"residual: block output \(5,\) and shortcut output \(4,\) differ for input \(4,\)"),
    case("residual-shortcut-mismatch",
         init(lambda: fnn.residual(L.Dense(4), L.Dense(3)), (4,)), ValueError,
         r"residual: block output \(4,\) and shortcut output \(3,\) differ"),
    case("residual-not-a-layer", lambda: fnn.residual("Dense"), TypeError,
         r"serial/concat/residual: expected a fnn\.Layer or a callable f\(x\) -> y, "
         r"got 'Dense'"),
    case("output_shape-wrong-rank", lambda: fnn.output_shape(L.Conv2D(4, 3), (8, 8)),
         ValueError, r"Conv2D: expected input_shape \(H, W, C\) for one image, got \(8, 8\)"),
    case("summary-wrong-rank",
         lambda: fnn.summary(fnn.serial(L.Conv2D(2, 3), L.Flatten(), L.Dense(2)), (8, 8)),
         ValueError, r"Conv2D: expected input_shape \(H, W, C\) for one image, got \(8, 8\)"),
    case("summary-image-too-small",
         lambda: fnn.summary(fnn.serial(L.MaxPool(2), L.Conv2D(2, 5, padding="VALID")),
                             (6, 6, 1)),
         ValueError, r"Conv2D: the kernel \(5, 5, 1, 2\) .* is larger than the input "
                     r"\(3, 3, 1\)"),
    case("summary-not-a-model", lambda: fnn.summary("lenet5", (28, 28, 1)), TypeError,
         r"expected a fnn\.Layer or a callable f\(x\) -> y, got 'lenet5'"),
    case("conv_output_size-size-zero", lambda: fnn.conv_output_size(0, 3), ValueError,
         r"conv_output_size: size must be a positive int, got 0"),
    case("conv_output_size-kernel-too-large", lambda: fnn.conv_output_size(5, 7), ValueError,
         r"conv_output_size: kernel 7 \(dilation 1\) is larger than the padded input 5"),
    case("conv_output_size-dilated-kernel-too-large",
         lambda: fnn.conv_output_size(5, 3, dilation=3), ValueError,
         r"conv_output_size: kernel 7 \(dilation 3\) is larger than the padded input 5"),
    case("conv_output_size-padding-unknown",
         lambda: fnn.conv_output_size(5, 3, padding="FULL"), ValueError,
         r"conv_output_size: unknown padding 'FULL'"),
    case("conv_output_size-padding-triple",
         lambda: fnn.conv_output_size(5, 3, padding=(1, 1, 1)), ValueError,
         r"conv_output_size: invalid padding \(1, 1, 1\); expected"),
    case("conv_output_size-stride-zero", lambda: fnn.conv_output_size(5, 3, 0), ValueError,
         r"conv_output_size: stride must be a positive int, got 0"),
    case("conv_output_size-size-float", lambda: fnn.conv_output_size(5.0, 3), TypeError,
         r"conv_output_size: size must be a positive int, got 5\.0"),
]

_Z4 = jnp.zeros((4,))
_Z41 = jnp.zeros((4, 1))
_LOGITS = jnp.zeros((4, 3))


def _shape_case(name, fn, pred_name="predictions", y_name="targets"):
    return case(f"{name}-shape-(N,1)-vs-(N,)", lambda: fn(_Z41, _Z4), ValueError,
                rf"fnn\.losses\.{name}: {pred_name} and {y_name} must have the same shape, got "
                rf"{pred_name} \(4, 1\) and {y_name} \(4,\)")


LOSSES = [
    _shape_case("mse", losses.mse),
    _shape_case("mae", losses.mae),
    _shape_case("msle", losses.msle),
    _shape_case("mape", losses.mape),
    _shape_case("huber", losses.huber),
    _shape_case("smooth_l1", losses.smooth_l1),
    _shape_case("sigmoid_binary_cross_entropy", losses.sigmoid_binary_cross_entropy, "logits"),
    _shape_case("binary_cross_entropy", losses.binary_cross_entropy, "probabilities"),
    _shape_case("hinge", losses.hinge, "scores"),
    _shape_case("exponential", losses.exponential, "scores"),
    case("mse-int-predictions", lambda: losses.mse(jnp.zeros((4,), jnp.int32), _Z4), TypeError,
         r"fnn\.losses\.mse: expected floating-point predictions, got dtype int32"),
    case("mse-empty-batch", lambda: losses.mse(jnp.zeros((0, 2)), jnp.zeros((0, 2))),
         ValueError, r"fnn\.losses\.mse: got an empty batch \(predictions of shape \(0, 2\)\)"),
    case("huber-delta-zero", lambda: losses.huber(_Z4, _Z4, delta=0.0), ValueError,
         r"fnn\.losses\.huber: delta must be > 0\.0, got 0\.0"),
    case("smooth_l1-beta-negative", lambda: losses.smooth_l1(_Z4, _Z4, beta=-1.0), ValueError,
         r"fnn\.losses\.smooth_l1: beta must be >= 0\.0, got -1\.0"),
    case("softmax_cross_entropy-float-labels",
         lambda: losses.softmax_cross_entropy(_LOGITS, jnp.zeros((4,))), TypeError,
         r"fnn\.losses\.softmax_cross_entropy: class-id labels must have an integer dtype, got "
         r"labels of shape \(4,\) \(dtype float32\) for logits of shape \(4, 3\)"),
    case("softmax_cross_entropy-labels-(N,1)",
         lambda: losses.softmax_cross_entropy(_LOGITS, jnp.zeros((4, 1), jnp.int32)), ValueError,
         r"fnn\.losses\.softmax_cross_entropy: class-id labels must have shape \(4,\), got "
         r"labels of shape \(4, 1\).*labels\.reshape\(\(4,\)\)"),
    case("softmax_cross_entropy-empty-batch",
         lambda: losses.softmax_cross_entropy(jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)),
         ValueError, r"fnn\.losses\.softmax_cross_entropy: got an empty batch \(logits of shape "
                     r"\(0, 3\)\)"),
    case("softmax_cross_entropy-scalar-logits",
         lambda: losses.softmax_cross_entropy(jnp.zeros(()), jnp.zeros((), jnp.int32)),
         ValueError, r"fnn\.losses\.softmax_cross_entropy: expected logits of shape \(N, C\) "
                     r".*got a scalar"),
    case("nll-float-labels", lambda: losses.nll(_LOGITS, jnp.zeros((4,))), TypeError,
         r"fnn\.losses\.nll: class-id labels must have an integer dtype, got labels of shape "
         r"\(4,\) \(dtype float32\)"),
    case("nll-one-hot-labels", lambda: losses.nll(_LOGITS, jnp.zeros((4, 3))), ValueError,
         r"fnn\.losses\.nll: class-id labels must have shape \(4,\), got labels of shape "
         r"\(4, 3\).*jnp\.argmax\(onehot, axis=-1\)"),
    case("nll-empty-batch",
         lambda: losses.nll(jnp.zeros((0, 3)), jnp.zeros((0,), jnp.int32)), ValueError,
         r"fnn\.losses\.nll: got an empty batch"),
    case("multiclass_hinge-float-labels",
         lambda: losses.multiclass_hinge(_LOGITS, jnp.zeros((4,))), TypeError,
         r"fnn\.losses\.multiclass_hinge: class-id labels must have an integer dtype"),
    case("multiclass_hinge-margin-negative",
         lambda: losses.multiclass_hinge(_LOGITS, jnp.zeros((4,), jnp.int32), margin=-1.0),
         ValueError, r"fnn\.losses\.multiclass_hinge: margin must be >= 0\.0, got -1\.0"),
    case("cross_entropy-class-ids", lambda: losses.cross_entropy(_LOGITS, jnp.zeros((4,))),
         ValueError, r"fnn\.losses\.cross_entropy: .*\(4, 3\).*\(4,\)"),
    case("cross_entropy-empty-batch",
         lambda: losses.cross_entropy(jnp.zeros((0, 3)), jnp.zeros((0, 3))), ValueError,
         r"fnn\.losses\.cross_entropy: got an empty batch"),
    case("sigmoid_bce-empty-batch",
         lambda: losses.sigmoid_binary_cross_entropy(jnp.zeros((0,)), jnp.zeros((0,))),
         ValueError, r"fnn\.losses\.sigmoid_binary_cross_entropy: got an empty batch"),
    case("mse-under-jit-shape-mismatch", lambda: jax.jit(losses.mse)(_Z41, _Z4), ValueError,
         r"fnn\.losses\.mse: predictions and targets must have the same shape"),
]

_BOUNDED = [  # (id, constructor, exception, regex) for optimizer hyperparameters
    ("sgd-lr-negative", lambda: optim.sgd(-0.1), ValueError,
     r"sgd: learning_rate must be >= 0\.0, got -0\.1"),
    ("sgd-lr-nan", lambda: optim.sgd(NAN), ValueError,
     r"sgd: learning_rate must be finite, got nan"),
    ("sgd-lr-string", lambda: optim.sgd("0.1"), TypeError,
     r"sgd: learning_rate must be a number or a schedule step -> lr, got '0\.1'"),
    ("sgd-lr-missing-inf", lambda: optim.sgd(float("inf")), ValueError,
     r"sgd: learning_rate must be finite, got inf"),
    ("momentum-beta-one", lambda: optim.momentum(0.1, beta=1.0), ValueError,
     r"momentum: beta must be in \[0\.0, 1\.0\), got 1\.0"),
    ("momentum-nesterov-int", lambda: optim.momentum(0.1, nesterov=1), TypeError,
     r"momentum: nesterov must be a bool, got 1"),
    ("adagrad-eps-zero", lambda: optim.adagrad(eps=0.0), ValueError,
     r"adagrad: eps must be > 0\.0, got 0\.0"),
    ("adagrad-initial_accumulator-negative", lambda: optim.adagrad(initial_accumulator=-1.0),
     ValueError, r"adagrad: initial_accumulator must be >= 0\.0, got -1\.0"),
    ("adagrad-lr-negative", lambda: optim.adagrad(-0.01), ValueError,
     r"adagrad: learning_rate must be >= 0\.0, got -0\.01"),
    ("adadelta-rho-above-one", lambda: optim.adadelta(rho=1.5), ValueError,
     r"adadelta: rho must be in .*1\.0.*, got 1\.5"),
    ("adadelta-eps-negative", lambda: optim.adadelta(eps=-1e-6), ValueError,
     r"adadelta: eps must be > 0\.0, got -1e-06"),
    ("rmsprop-decay-negative", lambda: optim.rmsprop(decay=-0.1), ValueError,
     r"rmsprop: decay must be in .*, got -0\.1"),
    ("rmsprop-eps-zero", lambda: optim.rmsprop(eps=0.0), ValueError,
     r"rmsprop: eps must be > 0\.0, got 0\.0"),
    ("adam-b1-one", lambda: optim.adam(b1=1.0), ValueError,
     r"adam: b1 must be in \[0\.0, 1\.0\), got 1\.0"),
    ("adam-b2-negative", lambda: optim.adam(b2=-0.1), ValueError,
     r"adam: b2 must be in \[0\.0, 1\.0\), got -0\.1"),
    ("adam-eps-zero", lambda: optim.adam(eps=0.0), ValueError,
     r"adam: eps must be > 0\.0, got 0\.0"),
    ("adam-lr-nan", lambda: optim.adam(NAN), ValueError,
     r"adam: learning_rate must be finite, got nan"),
    ("adamw-weight_decay-negative", lambda: optim.adamw(weight_decay=-0.01), ValueError,
     r"adamw: weight_decay must be >= 0\.0, got -0\.01"),
    ("adamw-b1-nan", lambda: optim.adamw(b1=NAN), ValueError, r"adamw: b1 must be finite, got nan"),
    ("clip_by_global_norm-max_norm-zero", lambda: optim.clip_by_global_norm(optim.sgd(0.1), 0.0),
     ValueError, r"clip_by_global_norm: max_norm must be > 0\.0, got 0\.0"),
    ("clip_by_global_norm-not-an-optimizer", lambda: optim.clip_by_global_norm("adam", 1.0),
     TypeError, r"clip_by_global_norm: expected a fnn\.optim\.Optimizer .*got 'adam'"),
    ("clip_tree_by_global_norm-max_norm-zero",
     lambda: optim.clip_tree_by_global_norm({"w": jnp.ones(2)}, 0.0),
     ValueError, r"^clip_tree_by_global_norm: max_norm must be > 0\.0, got 0\.0\.$"),
    ("clip_by_value-limit-negative", lambda: optim.clip_by_value(optim.sgd(0.1), -1.0),
     ValueError, r"clip_by_value: limit must be > 0\.0, got -1\.0"),
    ("masked-int-mask", lambda: optim.masked(optim.sgd(0.1), {"w": 1, "b": True}), TypeError,
     r"masked: mask leaves must be Python bools .*got 1 at \['w'\]"),
    ("sgd-weight_decay-negative", lambda: optim.sgd(0.1, weight_decay=-0.1), ValueError,
     r"sgd: weight_decay must be >= 0\.0, got -0\.1"),
    ("momentum-weight_decay-nan", lambda: optim.momentum(0.1, weight_decay=NAN), ValueError,
     r"momentum: weight_decay must be finite, got nan"),
    ("adagrad-weight_decay-string", lambda: optim.adagrad(weight_decay="0.1"), TypeError,
     r"adagrad: weight_decay must be a number, got '0\.1'"),
    ("rmsprop-momentum-one", lambda: optim.rmsprop(momentum=1.0), ValueError,
     r"rmsprop: momentum must be in \[0\.0, 1\.0\), got 1\.0"),
    ("rmsprop-centered-string", lambda: optim.rmsprop(centered="yes"), TypeError,
     r"rmsprop: centered must be True or False, got 'yes'"),
    ("adam-amsgrad-int", lambda: optim.adam(amsgrad=1), TypeError,
     r"adam: amsgrad must be True or False, got 1"),
    ("adam-weight_decay-negative", lambda: optim.adam(weight_decay=-1.0), ValueError,
     r"adam: weight_decay must be >= 0\.0, got -1\.0"),
    ("adamw-mask-int-leaf", lambda: optim.adamw(mask={"w": 1}), TypeError,
     r"adamw: mask leaves must be Python bools \(True = decay\), got 1 at \['w'\]"),
    ("nadam-momentum_decay-negative", lambda: optim.nadam(momentum_decay=-1e-3), ValueError,
     r"nadam: momentum_decay must be >= 0\.0, got -0\.001"),
    ("radam-b2-one", lambda: optim.radam(b2=1.0), ValueError,
     r"radam: b2 must be in \[0\.0, 1\.0\), got 1\.0"),
    ("adamax-eps-zero", lambda: optim.adamax(eps=0.0), ValueError,
     r"adamax: eps must be > 0\.0, got 0\.0"),
    ("lion-b1-negative", lambda: optim.lion(b1=-0.5), ValueError,
     r"lion: b1 must be in \[0\.0, 1\.0\), got -0\.5"),
    ("lion-lr-negative", lambda: optim.lion(-1e-4), ValueError,
     r"lion: learning_rate must be >= 0\.0, got -0\.0001"),
    ("partition-not-a-dict", lambda: optim.partition([optim.sgd(0.1)], {"w": "a"}), TypeError,
     r"partition: optimizers must be a non-empty dict label -> Optimizer"),
    ("partition-label-not-a-string", lambda: optim.partition({"a": optim.sgd(0.1)}, {"w": 0}),
     TypeError, r"partition: labels leaves must be group labels \(strings\), got 0 at \['w'\]"),
    ("ema-decay-one", lambda: optim.ema(optim.sgd(0.1), 1.0), ValueError,
     r"ema: decay must be in \[0\.0, 1\.0\), got 1\.0"),
    ("ema-not-an-optimizer", lambda: optim.ema("adam"), TypeError,
     r"ema: expected a fnn\.optim\.Optimizer .*got 'adam'"),
]

OPTIMIZERS = [case(i, f, e, m) for i, f, e, m in _BOUNDED] + [
    case("sgd-update-grads-missing-leaf", update_with(optim.sgd(0.1), {"w": jnp.ones((2,))}),
         ValueError, r"(?s)sgd\.update: grads must have the same pytree structure as "
                     r"params; grads lacks \['b'\], which params has\."
                     r".*params: PyTreeDef\(\{'b': \*, 'w': \*\}\)"
                     r".*grads: PyTreeDef\(\{'w': \*\}\)"),
    case("adam-update-grads-wrong-keys",
         update_with(optim.adam(), {"w": jnp.ones((2,)), "bias": jnp.zeros(())}), ValueError,
         r"adam\.update: grads must have the same pytree structure as params; grads has "
         r"\['bias'\] where params has \['b'\]"),
    case("sgd-update-grads-extra-leaf",
         update_with(optim.sgd(0.1), {**PARAMS, "c": jnp.zeros(())}), ValueError,
         r"sgd\.update: grads must have the same pytree structure as params; grads has "
         r"\['c'\], which params lacks"),
    case("momentum-update-grads-wrong-shape",
         update_with(optim.momentum(0.1), {"w": jnp.ones((3,)), "b": jnp.zeros(())}),
         ValueError, r"momentum\.update: grads leaf \['w'\] has shape \(3,\) but the parameter "
                     r"has shape \(2,\)"),
    case("rmsprop-update-grads-as-list",
         update_with(optim.rmsprop(), [jnp.zeros(()), jnp.ones((2,))]), ValueError,
         r"rmsprop\.update: grads must have the same pytree structure as params"),
    case("clip-update-grads-mismatch",
         update_with(optim.clip_by_global_norm(optim.adam(), 1.0), {"w": jnp.ones((2,))}),
         ValueError, r"clip_by_global_norm\(adam\)\.update: grads must have the same pytree "
                     r"structure"),
    case("masked-init-mask-mismatch",
         lambda: optim.masked(optim.sgd(0.1), {"w": True}).init(PARAMS), ValueError,
         r"masked\(sgd\)\.init: mask must have the same pytree structure as params"),
    case("sgd-init-int-params", lambda: optim.sgd(0.1).init({"w": jnp.ones((2,), jnp.int32)}),
         TypeError, r"sgd\.init: parameters must be floating-point arrays, got dtype int32 at "
                    r"\['w'\]"),
    case("schedule-returns-vector",
         lambda: optim.sgd(lambda step: jnp.ones((2,)) * 0.1).init(PARAMS), ValueError,
         r"sgd: the learning_rate schedule must return a scalar, got shape \(2,\)"),
    case("schedule-returns-vector-under-jit",
         lambda: jax.jit(optim.adam(lambda step: jnp.full((3,), 1e-3)).init)(PARAMS), ValueError,
         r"adam: the learning_rate schedule must return a scalar, got shape \(3,\)"),
    case("schedule-returns-string", lambda: optim.sgd(lambda step: "0.1").init(PARAMS),
         TypeError, r"sgd: the learning_rate schedule must return a number \(a float or a scalar "
                    r"array\), got '0\.1' of type str"),
    case("current_lr-not-a-state", lambda: optim.current_lr({"lr": 0.1}), TypeError,
         r"current_lr: expected the state of a fnn\.optim optimizer .*got dict"),
    case("partition-init-unknown-label",
         lambda: optim.partition({"a": optim.sgd(0.1)}, {"w": "b", "b": "a"}).init(PARAMS),
         ValueError, r"partition\(a=sgd\)\.init: labels must name a group of optimizers "
                     r"\['a'\], got 'b' at \['w'\]"),
    case("adamw-init-mask-mismatch", lambda: optim.adamw(mask={"w": True}).init(PARAMS),
         ValueError, r"adamw\.init: mask must have the same pytree structure as params"),
    case("ema-update-with-adam-state",
         lambda: optim.ema(optim.adam()).update(optim.adam().init(PARAMS), PARAMS), TypeError,
         r"ema\(adam\)\.update: expected the state from ema\(adam\)\.init \(a state with an "
         r"`ema` field\), got AdamState"),
    case("ema_params-not-an-ema-state", lambda: optim.ema_params(optim.sgd(0.1).init(PARAMS)),
         TypeError, r"ema_params: expected the state of a fnn\.optim\.ema optimizer .*got "
                    r"SGDState"),
    case("set_hyperparams-unknown-name",
         lambda: optim.set_hyperparams(optim.adam().init(PARAMS), lr=0.1), ValueError,
         r"set_hyperparams: the state has no hyperparameter 'lr'; it has \['b1', 'b2', 'eps', "
         r"'learning_rate'\]"),
    case("set_hyperparams-out-of-range",
         lambda: optim.set_hyperparams(optim.adam().init(PARAMS), b2=1.5), ValueError,
         r"set_hyperparams: b2 must be in \[0\.0, 1\.0\), got 1\.5"),
    case("set_hyperparams-schedule-learning-rate",
         lambda: optim.set_hyperparams(optim.sgd(schedules.constant(0.1)).init(PARAMS),
                                       learning_rate=0.2), ValueError,
         r"set_hyperparams: the state has no hyperparameter 'learning_rate'; .*a schedule"),
    case("set_hyperparams-not-a-state", lambda: optim.set_hyperparams({}, b1=0.5), TypeError,
         r"set_hyperparams: expected the state of a fnn\.optim optimizer .*got dict"),
]

SCHEDULES = [
    case("constant-lr-negative", lambda: schedules.constant(-1.0), ValueError,
         r"constant: lr must be >= 0\.0, got -1\.0"),
    case("step_decay-rate-zero", lambda: schedules.step_decay(0.1, 0.0, 10), ValueError,
         r"step_decay: decay_rate must be > 0\.0, got 0\.0"),
    case("step_decay-steps-zero", lambda: schedules.step_decay(0.1, 0.5, 0), ValueError,
         r"step_decay: decay_steps must be a positive int, got 0"),
    case("exponential_decay-rate-negative",
         lambda: schedules.exponential_decay(0.1, -0.5, 10), ValueError,
         r"exponential_decay: decay_rate must be > 0\.0, got -0\.5"),
    case("exponential_decay-steps-float",
         lambda: schedules.exponential_decay(0.1, 0.5, 10.5), TypeError,
         r"exponential_decay: decay_steps must be a positive int, got 10\.5"),
    case("inverse_time-steps-zero", lambda: schedules.inverse_time(0.1, 0.5, 0), ValueError,
         r"inverse_time: decay_steps must be a positive int, got 0"),
    case("cosine_decay-alpha-above-one", lambda: schedules.cosine_decay(0.1, 100, alpha=2.0),
         ValueError, r"cosine_decay: alpha must be in \[0\.0, 1\.0\], got 2\.0"),
    case("cosine_decay-lr-nan", lambda: schedules.cosine_decay(NAN, 100), ValueError,
         r"cosine_decay: lr must be finite, got nan"),
    case("warmup_cosine-decay-before-warmup", lambda: schedules.warmup_cosine(0.1, 10, 5),
         ValueError, r"warmup_cosine: decay_steps counts all steps including warm-up, so it "
                     r"must exceed warmup_steps=10; got decay_steps=5"),
    case("warmup_cosine-warmup-negative", lambda: schedules.warmup_cosine(0.1, -1, 10),
         ValueError, r"warmup_cosine: warmup_steps must be an int >= 0, got -1"),
    case("warmup_cosine-peak-negative", lambda: schedules.warmup_cosine(-0.1, 1, 10),
         ValueError, r"warmup_cosine: peak_lr must be >= 0\.0, got -0\.1"),
    case("multistep-milestones-decreasing", lambda: schedules.multistep(0.1, [30, 10]),
         ValueError, r"multistep: milestones must be strictly increasing ints >= 1, got "
                     r"\[30, 10\]"),
    case("multistep-milestones-int", lambda: schedules.multistep(0.1, 30), TypeError,
         r"multistep: milestones must be a non-empty list of ints, got 30"),
    case("one_cycle-pct_start-one", lambda: schedules.one_cycle(0.1, 100, pct_start=1.0),
         ValueError, r"one_cycle: pct_start must be in \[0\.0, 1\.0\), got 1\.0"),
    case("one_cycle-total_steps-float", lambda: schedules.one_cycle(0.1, 100.0), TypeError,
         r"one_cycle: total_steps must be a positive int, got 100\.0"),
    case("cosine_restarts-period_mult-zero", lambda: schedules.cosine_restarts(0.1, 10, 0),
         ValueError, r"cosine_restarts: period_mult must be a positive int, got 0"),
    case("linear_warmup-float-schedule", lambda: schedules.linear_warmup(0.1, 10), TypeError,
         r"linear_warmup: schedule must be a schedule step -> lr .*got 0\.1"),
    case("piecewise_constant-values-count",
         lambda: schedules.piecewise_constant([10, 20], [0.1, 0.01]), ValueError,
         r"piecewise_constant: values must have one more entry than boundaries, got 2 values "
         r"for 2 boundaries"),
]

NAMES = [
    case("initializer-name-typo", lambda: initializers.get("he_nromal"), ValueError,
         r"fnn\.initializers\.get: unknown initializer 'he_nromal'; expected a callable "
         r".*'he_normal'"),
    case("initializer-not-callable", lambda: initializers.get(3), ValueError,
         r"fnn\.initializers\.get: unknown initializer 3"),
    case("initializer-normal-negative-std", lambda: initializers.normal(-1.0), ValueError,
         r"fnn\.initializers\.normal: stddev must be >= 0\.0, got -1\.0"),
    case("initializer-constant-nan", lambda: initializers.constant(NAN), ValueError,
         r"fnn\.initializers\.constant: value must be finite, got nan"),
    case("initializer-orthogonal-rank-1", lambda: initializers.orthogonal(KEY, (3,)),
         ValueError, r"fnn\.initializers\.orthogonal: expected a shape of rank >= 2, got \(3,\)"),
    case("initializer-truncated_normal-negative-std", lambda: initializers.truncated_normal(-1.0),
         ValueError, r"fnn\.initializers\.truncated_normal: stddev must be >= 0\.0, got -1\.0"),
    case("initializer-variance_scaling-mode-typo",
         lambda: initializers.variance_scaling(1.0, "fan-in", "normal"), ValueError,
         r"^fnn\.initializers\.variance_scaling: mode must be one of \['fan_in', 'fan_out', "
         r"'fan_avg', 'fan_geo_avg'\], got 'fan-in'\.$"),
    case("initializer-variance_scaling-distribution-typo",
         lambda: initializers.variance_scaling(2.0, "fan_in", "truncated"), ValueError,
         r"fnn\.initializers\.variance_scaling: distribution must be one of \['normal', "
         r"'truncated_normal', 'uniform'\], got 'truncated'"),
    case("initializer-variance_scaling-scale-zero",
         lambda: initializers.variance_scaling(0.0, "fan_in", "normal"), ValueError,
         r"fnn\.initializers\.variance_scaling: scale must be > 0\.0, got 0\.0"),
    case("activation-name-typo", lambda: activations.get("rleu"), ValueError,
         r"fnn\.activations\.get: unknown activation 'rleu'; expected a callable or one of "
         r".*'relu'"),
    case("Conv2D-w_init-typo", lambda: L.Conv2D(4, 3, w_init="glorot"), ValueError,
         r"Conv2D: .*unknown initializer 'glorot'"),
    case("regularizer-l2-weight-negative", lambda: regularizers.l2(PARAMS, -1e-4), ValueError,
         r"l2: weight must be >= 0\.0, got -0\.0001"),
    case("regularizer-l1-include-string", lambda: regularizers.l1(PARAMS, 1e-4, include="bias"),
         ValueError, r"l1: include must be None .*\"all\".*got the string 'bias'"),
]

CHECKPOINTS = [
    case("checkpoint-load-text-file", load("notes.txt"), ValueError,
         r"fnn\.checkpoint\.load: .*notes\.txt is not a valid fnn checkpoint: not a zip"),
    case("checkpoint-load-pickle", load("evil.pkl"), ValueError,
         r"fnn\.checkpoint\.load: .*evil\.pkl is not a valid fnn checkpoint: a raw pickle"),
    case("checkpoint-load-npy", load("array.npy"), ValueError,
         r"fnn\.checkpoint\.load: .*array\.npy is not a valid fnn checkpoint: a single \.npy"),
    case("checkpoint-load-missing", load("nothing-here.npz"), FileNotFoundError,
         r"nothing-here\.npz"),
    case("checkpoint-load-like-shape",
         load("good.npz", like={**GOOD_LIKE, "w": np.zeros((3, 2), np.float32)}), ValueError,
         r"fnn\.checkpoint\.load: .*good\.npz does not match `like` at \['w'\]: expected "
         r".*\(3, 2\).*found.*\(2, 3\)"),
    case("checkpoint-load-like-dtype",
         load("good.npz", like={**GOOD_LIKE, "b": np.zeros((3,), np.int32)}), ValueError,
         r"fnn\.checkpoint\.load: .*does not match `like` at \['b'\]: expected .*int32.*found "
         r".*float32"),
    case("checkpoint-load-like-extra-key",
         load("good.npz", like={**GOOD_LIKE, "c": np.zeros(())}), ValueError,
         r"fnn\.checkpoint\.load: .*does not match `like`.*'c'"),
    case("checkpoint-load-like-missing-key", load("good.npz", like={"w": GOOD_LIKE["w"]}),
         ValueError, r"fnn\.checkpoint\.load: .*does not match `like`.*'b'"),
    case("checkpoint-save-object-array",
         lambda: checkpoint.save(ckpt_file("x.npz"), {"w": np.array([1, "a"], object)}),
         TypeError, r"fnn\.checkpoint\.save: leaf \['w'\] is an object array"),
    case("checkpoint-save-string-leaf",
         lambda: checkpoint.save(ckpt_file("x.npz"), {"name": "lenet"}), TypeError,
         r"fnn\.checkpoint\.save: unsupported value of type str at \['name'\]"),
    case("checkpoint-manager-keep-zero",
         lambda: checkpoint.CheckpointManager(ckpt_file("mgr"), keep=0), ValueError,
         r"CheckpointManager: keep must be a positive int or None, got 0"),
]

_X10, _Y10 = np.zeros((10, 2), np.float32), np.zeros((10,), np.int32)

DATA = [
    case("batches-batch_size-zero", lambda: data.batches(KEY, _X10, _Y10, batch_size=0),
         ValueError, r"batches: batch_size must be in \[1, 10\] for 10 examples, got 0"),
    case("batches-batch_size-too-large", lambda: data.batches(KEY, _X10, _Y10, batch_size=11),
         ValueError, r"batches: batch_size must be in \[1, 10\] for 10 examples, got 11"),
    case("batches-batch_size-float", lambda: data.batches(KEY, _X10, _Y10, batch_size=2.5),
         TypeError, r"batches: batch_size must be None .*got 2\.5"),
    case("batches-lengths-differ",
         lambda: data.batches(KEY, _X10, _Y10[:9], batch_size=2), ValueError,
         r"batches: all arrays must have the same first \(batch\) dimension, got first "
         r"dimensions \[10, 9\]"),
    case("batches-shuffle-without-key", lambda: data.batches(None, _X10, batch_size=2),
         ValueError, r"batches: shuffle=True needs a key"),
    case("batches-no-arrays", lambda: data.batches(KEY, batch_size=2), ValueError,
         r"batches: expected at least one array, got none"),
    case("batches-list-not-array", lambda: data.batches(KEY, [1, 2, 3], batch_size=2),
         TypeError, r"batches: argument 0 must be an array \(numpy or jax\), got list"),
    case("train_val_split-fraction-above-one",
         lambda: data.train_val_split(KEY, _X10, _Y10, val_fraction=1.5), ValueError,
         r"train_val_split: val_fraction must be in \(0, 1\), got 1\.5"),
    case("spiral-num_per_class-zero", lambda: datasets.spiral(KEY, num_per_class=0),
         ValueError, r"spiral: num_per_class must be a positive int, got 0"),
    case("spiral-noise-negative", lambda: datasets.spiral(KEY, noise=-0.1), ValueError,
         r"spiral: noise must be >= 0\.0, got -0\.1"),
    case("planar_flower-odd-points", lambda: datasets.planar_flower(KEY, num_points=3),
         ValueError, r"planar_flower: num_points must be even .*got 3"),
    case("xor-num_points-negative", lambda: datasets.xor(KEY, num_points=-1), ValueError,
         r"xor: num_points must be a positive int, got -1"),
    case("blobs-num_classes-zero", lambda: datasets.blobs(KEY, num_classes=0), ValueError,
         r"blobs: num_classes must be a positive int, got 0"),
    case("blobs-std-nan", lambda: datasets.blobs(KEY, std=NAN), ValueError,
         r"blobs: std must be finite, got nan"),
    case("adding_problem-length-one", lambda: datasets.adding_problem(KEY, 4, 1), ValueError,
         r"adding_problem: length must be >= 2 .*got 1"),
    case("sine_sequences-range-reversed",
         lambda: datasets.sine_sequences(KEY, 4, 5, freq_range=(0.5, 0.1)), ValueError,
         r"sine_sequences: freq_range must have low <= high, got \(0\.5, 0\.1\)"),
    case("image_rows-rank-2", lambda: datasets.image_rows(np.zeros((4, 8), np.float32)),
         ValueError, r"image_rows: .*\(4, 8\)"),
    case("mnist-split-unknown", lambda: datasets.mnist("val"), ValueError,
         r"mnist: split must be 'train' or 'test', got 'val'"),
    case("cifar10-split-unknown", lambda: datasets.cifar10("dev"), ValueError,
         r"cifar10: split must be 'train' or 'test', got 'dev'"),
]

MODELS = [
    case("mlp-empty", lambda: fnn.models.mlp([]), ValueError,
         r"mlp: expected a non-empty list of layer sizes"),
    case("lenet5-num_classes-zero", lambda: fnn.models.lenet5(0), ValueError,
         r"lenet5: num_classes must be a positive int, got 0"),
    case("resnet-depth-not-6n+2", lambda: fnn.models.resnet(depth=19), ValueError,
         r"resnet: .*19"),
    case("lenet5-init-rank-2-shape", init(fnn.models.lenet5, (28, 28)), ValueError,
         r"lenet5: expected input_shape \(H, W, C\), e\.g\. \(28, 28, 1\) .*got \(28, 28\)"),
]

_FX, _FY = np.zeros((4, 4), np.float32), np.zeros((4, 3), np.float32)


def fit(**overrides):
    """A trigger: `fnn.train.fit` of a Dense layer with one argument made wrong."""
    def trigger():
        from fnn import train

        kwargs = dict(model=L.Dense(3), optimizer=optim.sgd(0.1), loss=losses.mse,
                      train_data=(_FX, _FY), epochs=1, batch_size=2, key=KEY, progress=False)
        kwargs.update(overrides)
        if kwargs.get("early_stopping") == "EarlyStopping()":
            kwargs["early_stopping"] = train.EarlyStopping()
        return train.fit(**kwargs)
    return trigger


FIT = [
    case("fit-epochs-zero", fit(epochs=0), ValueError,
         r"fit: epochs must be a positive int, got 0"),
    case("fit-key-missing", fit(key=None), ValueError,
         r"fit: a key is required, e\.g\. fit\(\.\.\., key=jax\.random\.key\(0\)\)"),
    case("fit-key-int", fit(key=0), ValueError,
         r"fit: expected a PRNG key from jax\.random\.key\(seed\) .*got an array of dtype "
         r"int32 and shape \(\)"),
    case("fit-batch_size-zero", fit(batch_size=0), ValueError,
         r"fit: batch_size must be in \[1, 4\] for 4 examples, got 0"),
    case("fit-train_data-not-a-pair", fit(train_data=_FX), TypeError,
         r"fit: train_data must be a pair \(x, y\), got ndarray"),
    case("fit-x-y-lengths-differ", fit(train_data=(_FX, _FY[:3])), ValueError,
         r"fit \(train_data\): all arrays must have the same first \(batch\) dimension, got "
         r"first dimensions \[4, 3\]"),
    case("fit-metric-typo", fit(metrics=("acc",)), ValueError,
         r"fit: unknown metric 'acc'; expected some of \['loss', 'accuracy'\]"),
    case("fit-early-stopping-without-val-data", fit(early_stopping="EarlyStopping()"),
         ValueError, r"fit: early_stopping monitors 'val_loss' but no val_data was given"),
]


def _tuple_params():
    layer, params, state = _built("dense")
    return layer.apply((params, state), state, f32(2, 4))


def _other_models_params():
    layer, _, state = _built("serial")
    return layer.apply({}, state, f32(2, 4))


def _params_of_a_conv_model():
    layer, _, state = _built("serial")
    other, _ = fnn.serial(L.Conv2D(2, 3)).init(KEY, (5, 5, 1))
    return layer.apply(other, state, f32(2, 4))


def _missing_state():
    model = fnn.serial(L.Dense(3), L.BatchNorm())
    params, _ = model.init(KEY, (4,))
    return model.apply(params, {}, f32(2, 4))


def _serial_tuple_params():
    layer, params, state = _built("serial")
    return layer.apply((params, state), state, f32(2, 4))


def _lstm_without(name):
    def trigger():
        layer, params, state = _built("lstm")
        return layer.apply({k: v for k, v in params.items() if k != name}, state, f32(2, 5, 3))
    return trigger


def _traced_train(name):
    def trigger():
        layer, params, state = _built(name)
        return jax.jit(lambda t: layer.apply(params, state, f32(2, 3), key=KEY, train=t))(True)
    return trigger


# Mistakes that used to give an unclear error (a raw Python/JAX error, or none): the
# params/state, key, input_shape and train checks every layer shares, and a few more.
ARGUMENTS = [
    case("Dense-apply-(params,state)-tuple-as-params", _tuple_params, TypeError,
         r"Dense: params must be a dict with 'w' and 'b' \(as returned by Dense\.init\), got a "
         r"tuple of length 2 — did you pass the \(params, state\) pair from init\?"),
    case("serial-apply-params-of-another-model", _other_models_params, ValueError,
         r"serial\.apply: params has no entry '0_Dense' \(for layer 0, Dense\), got an empty "
         r"dict\. Pass the params this model's init returned"),
    case("serial-apply-params-of-a-conv-model", _params_of_a_conv_model, ValueError,
         r"serial\.apply: params has no entry '0_Dense' \(for layer 0, Dense\), got a dict "
         r"with keys \['0_Conv2D'\]"),
    case("serial-apply-state-missing", _missing_state, ValueError,
         r"serial\.apply: state has no entry '1_BatchNorm' \(for layer 1, BatchNorm\), got an "
         r"empty dict"),
    case("serial-apply-(params,state)-tuple-as-params", _serial_tuple_params, TypeError,
         r"serial\.apply: params must be a dict \(as returned by serial\.init\), got a tuple "
         r"of length 2 — did you pass the \(params, state\) pair"),
    case("LSTM-apply-params-missing-entry", _lstm_without("w_h"), ValueError,
         r"LSTM: params must be a dict with 'w_x', 'w_h' and 'b' .*got a dict with keys "
         r"\['b', 'w_x'\]; 'w_h' is missing"),
    case("Dense-init-int-shape", init(lambda: L.Dense(3), 4), TypeError,
         r"Dense: input_shape must be a tuple \(\.\.\., in_features\) such as \(4,\), without "
         r"the batch axis, got 4"),
    case("Conv2D-init-int-shape", init(lambda: L.Conv2D(2, 3), 28), TypeError,
         r"Conv2D: input_shape must be a tuple \(H, W, C\) for one image, without the batch "
         r"axis, got 28"),
    case("serial-init-int-shape", init(lambda: fnn.serial(L.Dense(3)), 4), TypeError,
         r"serial\.init: input_shape must be a tuple \(d1, \.\.\., dk\), without the batch "
         r"axis, got 4"),
    case("Dense-init-under-eval_shape", lambda: jax.eval_shape(L.Dense(3).init, KEY, (4,)),
         TypeError, r"^Dense: input_shape must be static \(a tuple of Python ints\), got a traced "
         r"value: jax\.eval_shape, jit and vmap trace their arguments\. Close over the shape "
         r"instead: jax\.eval_shape\(lambda k: layer\.init\(k, input_shape\), key\)\."),
    case("serial-init-under-eval_shape",
         lambda: jax.eval_shape(fnn.serial(L.Conv2D(2, 3)).init, KEY, (8, 8, 1)), TypeError,
         r"^serial\.init: input_shape must be static \(a tuple of Python ints\), got a traced"),
    case("output_shape-unknown-dtype",
         lambda: fnn.output_shape(L.Dense(3), (4,), dtype="foo"), TypeError,
         r"^output_shape: dtype must be a dtype such as jnp\.float32 or 'int32', got 'foo'\.$"),
    case("output_shape-none-shape", lambda: fnn.output_shape(L.Dense(3), None), TypeError,
         r"output_shape: input_shape must be a tuple .*got None"),
    case("Conv2D-init-negative-size", init(lambda: L.Conv2D(2, 3), (8, -8, 1)), ValueError,
         r"Conv2D: input_shape sizes must be >= 0, got \(8, -8, 1\)"),
    case("concat-axis-float", lambda: fnn.concat(L.Dense(2), axis=1.0), TypeError,
         r"concat: axis must be an int, got 1\.0"),
    case("BatchNorm-apply-state-missing-var",
         lambda: L.BatchNorm().apply(_built("batchnorm")[1], {"mean": jnp.zeros(3)}, f32(2, 3)),
         ValueError, r"BatchNorm: state must be a dict with 'mean' and 'var' .*'var' is missing"),
    case("Maxout-init-scalar-shape", init(lambda: L.Maxout(3), ()), ValueError,
         r"Maxout: expected input_shape \(\.\.\., in_features\), got \(\)"),
    case("LayerNorm-init-scalar-shape", init(L.LayerNorm, ()), ValueError,
         r"LayerNorm: expected input_shape \(\.\.\., C\), got \(\)"),
    case("PReLU-init-scalar-shape", init(L.PReLU, ()), ValueError,
         r"PReLU: expected input_shape \(\.\.\., C\), got \(\)"),
    case("Dense-init-key-None", lambda: L.Dense(3).init(None, (4,)), ValueError,
         r"Dense\.init: key must be a PRNG key from jax\.random\.key\(seed\) .*got None"),
    case("LSTM-init-int-key", lambda: L.LSTM(3).init(7, (5, 2)), TypeError,
         r"LSTM\.init: key must be a PRNG key from jax\.random\.key\(seed\) .*got 7"),
    case("serial-init-int-key", lambda: fnn.serial(L.Dense(3)).init(0, (4,)), TypeError,
         r"serial\.init: key must be a PRNG key .*got 0"),
    case("Dropout-apply-int-key", apply("dropout", f32(2, 4), key=0, train=True), TypeError,
         r"Dropout: key must be a PRNG key from jax\.random\.key\(seed\) .*got 0"),
    case("Dropout-apply-batch-of-keys",
         apply("dropout", f32(2, 4), key=jax.random.split(jax.random.key(0), 3), train=True),
         TypeError, r"Dropout: key must be a PRNG key .*got a batch of keys of shape \(3,\)"),
    case("batches-int-key", lambda: data.batches(0, _X10, batch_size=2), TypeError,
         r"batches: key must be a PRNG key from jax\.random\.key\(seed\) .*got 0"),
    case("BatchNorm-apply-traced-train", _traced_train("batchnorm"), TypeError,
         r"BatchNorm: train must be a Python bool, got a traced value — under jit it must be "
         r"static: jax\.jit\(step, static_argnames='train'\)"),
    case("Dropout-apply-traced-train", _traced_train("dropout"), TypeError,
         r"Dropout: train must be a Python bool, got a traced value"),
    case("BatchNorm-apply-train-string", apply("batchnorm", f32(2, 3), train="no"), TypeError,
         r"BatchNorm: train must be a Python bool, got 'no'"),
    case("concat-axis-out-of-range",
         init(lambda: fnn.concat(L.Dense(2), L.Dense(2), axis=3), (4,)), ValueError,
         r"concat: axis=3 is out of range for the branch outputs \(N, 2\) \(rank 2, from "
         r"0_Dense\); use axis=1 or axis=-1"),
    case("concat-axis-batch",
         init(lambda: fnn.concat(L.Flatten(), L.Flatten(), axis=0), (2, 2)), ValueError,
         r"concat: axis=0 is out of range for the branch outputs \(N, 4\) .*\(axis 0 is the batch "
         r"axis\)"),
    case("AvgPool-padding-not-smaller-than-window",
         lambda: L.AvgPool(2, padding=2), ValueError,
         r"AvgPool: padding 2 must be smaller than the window 2 on every side .*NaN"),
    case("MaxPool-padding-not-smaller-than-window",
         lambda: L.MaxPool(1, padding=1), ValueError,
         r"MaxPool: padding 1 must be smaller than the window 1 on every side .*-inf"),
    case("MaxPool-explicit-pads-one-too-large",
         lambda: L.MaxPool((3, 2), padding=((0, 0), (2, 0))), ValueError,
         r"MaxPool: padding .* must be smaller than the window \(3, 2\) .*a pad of 2 on the W "
         r"axis"),
]

# Value, dtype and state-type mistakes in losses and optimizers (also fixed).
VALUES = [
    case("softmax_cross_entropy-label-out-of-range",
         lambda: losses.softmax_cross_entropy(_LOGITS, jnp.array([0, 1, 2, 5])), ValueError,
         r"fnn\.losses\.softmax_cross_entropy: class ids must be in \[0, 2\] \(logits have 3 "
         r"classes\), got 5"),
    case("nll-label-negative",
         lambda: losses.nll(_LOGITS, jnp.array([0, 1, 2, -1])), ValueError,
         r"fnn\.losses\.nll: class ids must be in \[0, 2\] .*got -1"),
    case("multiclass_hinge-label-out-of-range-numpy",
         lambda: losses.multiclass_hinge(_LOGITS, np.array([3, 0, 0, 0])), ValueError,
         r"fnn\.losses\.multiclass_hinge: class ids must be in \[0, 2\] .*got 3"),
    case("mse-string-targets", lambda: losses.mse(_Z4, np.array(["a"] * 4)), TypeError,
         r"fnn\.losses\.mse: targets must be numeric, got dtype <U1"),
    case("softmax_cross_entropy-string-labels",
         lambda: losses.softmax_cross_entropy(_LOGITS, ["a", "b", "c", "d"]), TypeError,
         r"fnn\.losses\.softmax_cross_entropy: labels must be numeric, got dtype <U1"),
    case("adam-update-with-sgd-state",
         lambda: optim.adam().update(optim.sgd(0.1).init(PARAMS), PARAMS), TypeError,
         r"adam\.update: expected the state from adam\.init \(AdamState\), got SGDState"),
    case("schedule-returns-string-under-jit",
         lambda: jax.jit(optim.adam(lambda step: "1e-3").init)(PARAMS), TypeError,
         r"adam: the learning_rate schedule must return a number .*got '1e-3' of type str"),
]

def _apply_with(layer_fn, params, x, state=None):
    """A trigger: apply a fresh layer to hand-made (wrong) params."""
    return lambda: layer_fn().apply(params, {} if state is None else state, x)


def _params_of(layer_fn, shape):
    return layer_fn().init(KEY, shape)[0]


# Params or state whose shapes do not fit the layer (made by another layer, or by the
# same layer with other settings), and inputs that are not arrays. These used to give a
# raw broadcasting/dot_general/reshape error, an IndexError, an AttributeError or, for a
# Conv2D kernel larger than the one it was built with, an empty output and no error.
SHAPES = [
    case("Conv2D-apply-kernel-of-another-size",
         _apply_with(lambda: L.Conv2D(4, 3, padding="VALID"),
                     {"w": f32(5, 5, 3, 4), "b": f32(4)}, f32(1, 4, 4, 3)), ValueError,
         r"Conv2D: params 'w' must have shape \(3, 3, in, 4\), got \(5, 5, 3, 4\); use the "
         r"params Conv2D\.init returns"),
    case("Conv2D-apply-dense-params", _apply_with(lambda: L.Conv2D(3, 3),
                                                  {"w": f32(2, 3), "b": f32(3)}, f32(1, 4, 4, 2)),
         ValueError, r"Conv2D: params 'w' must have shape \(3, 3, in, 3\), got \(2, 3\)"),
    case("Dense-apply-more-features-than-built",
         _apply_with(lambda: L.Dense(3), {"w": f32(4, 5), "b": f32(5)}, f32(2, 4)), ValueError,
         r"Dense: params 'w' must have shape \(4, 3\), got \(4, 5\)"),
    case("Dense-apply-bias-wrong-size",
         _apply_with(lambda: L.Dense(3), {"w": f32(4, 3), "b": f32(5)}, f32(2, 4)), ValueError,
         r"Dense: params 'b' must have shape \(3,\), got \(5,\)"),
    case("Maxout-apply-params-with-other-pieces",
         _apply_with(lambda: L.Maxout(3, 2), _params_of(lambda: L.Maxout(3, 3), (4,)),
                     f32(2, 4)), ValueError,
         r"Maxout: params 'w' must have shape \(4, 6\), got \(4, 9\)"),
    case("LSTM-apply-params-of-another-hidden-size",
         _apply_with(lambda: L.LSTM(4), _params_of(lambda: L.LSTM(5), (3, 2)), f32(2, 3, 2)),
         ValueError, r"LSTM: params 'w_x' must have shape \(2, 16\), got \(2, 20\)"),
    case("GRU-apply-bias-wrong-size",
         _apply_with(lambda: L.GRU(4), {**_params_of(lambda: L.GRU(4), (3, 2)), "b_h": f32(4)},
                     f32(2, 3, 2)), ValueError,
         r"GRU: params 'b_h' must have shape \(12,\), got \(4,\)"),
    case("SimpleRNN-apply-recurrent-weights-wrong-shape",
         _apply_with(lambda: L.SimpleRNN(4),
                     {**_params_of(lambda: L.SimpleRNN(4), (3, 2)), "w_h": f32(4, 5)},
                     f32(2, 3, 2)), ValueError,
         r"SimpleRNN: params 'w_h' must have shape \(4, 4\), got \(4, 5\)"),
    case("BatchNorm-apply-state-of-another-size",
         _apply_with(lambda: L.BatchNorm(), {"scale": f32(3), "bias": f32(3)}, f32(2, 3),
                     state={"mean": f32(4), "var": f32(4)}), ValueError,
         r"BatchNorm: state 'mean' must have shape \(3,\), got \(4,\); use the state "
         r"BatchNorm\.init returns"),
    case("LayerNorm-apply-bias-wrong-size",
         _apply_with(lambda: L.LayerNorm(), {"scale": f32(3), "bias": f32(4)}, f32(2, 3)),
         ValueError, r"LayerNorm: params 'bias' must have shape \(3,\), got \(4,\)"),
    case("Embedding-apply-table-rank-1",
         _apply_with(lambda: L.Embedding(4, 2), {"table": f32(4)}, i32(1, 1)), ValueError,
         r"Embedding: params 'table' must have shape \(4, 2\), got \(4,\)"),
    case("PReLU-apply-scalar-alpha",
         _apply_with(lambda: L.PReLU(), {"alpha": f32()}, f32(2, 3)), ValueError,
         r"PReLU: params 'alpha' must have shape \(C,\), got \(\)"),
    case("Dense-apply-list-params",
         _apply_with(lambda: L.Dense(3), {"w": [[1.0] * 3] * 4, "b": [0.0] * 3}, f32(2, 4)),
         TypeError, r"^Dense: params 'w' must be an array \(as returned by Dense\.init\), "
                    r"got a list\.$"),
    case("Dense-apply-list-input", apply("dense", [[1.0, 2.0, 3.0, 4.0]]), TypeError,
         r"Dense: expected an array \(a jax\.Array or numpy\.ndarray\), got a list; "
         r"convert it with jnp\.asarray\(x\)"),
    case("MaxPool-apply-list-input", apply("maxpool", [[1.0]]), TypeError,
         r"MaxPool: expected an array .*got a list"),
    case("GlobalAvgPool-apply-float-input", apply("gap", 1.0), TypeError,
         r"GlobalAvgPool: expected an array .*got a float"),
    case("Dropout-apply-list-input", apply("dropout", [[1.0]], key=KEY, train=True), TypeError,
         r"Dropout: expected an array .*got a list"),
    case("serial-apply-list-input", apply("serial", [[1.0, 2.0, 3.0, 4.0]]), TypeError,
         r"Dense: expected an array .*got a list"),
    case("Dense-use_bias-string", lambda: L.Dense(3, use_bias="no"), TypeError,
         r"Dense: use_bias must be True or False, got 'no'"),
    case("Conv2D-use_bias-none", lambda: L.Conv2D(3, 3, use_bias=None), TypeError,
         r"Conv2D: use_bias must be True or False, got None"),
    case("LSTM-return_sequences-int", lambda: L.LSTM(3, return_sequences=1), TypeError,
         r"LSTM: return_sequences must be True or False, got 1"),
    case("mse-ragged-list-targets", lambda: losses.mse(f32(2), [[1.0], [1.0, 2.0]]), TypeError,
         r"fnn\.losses\.mse: targets must be an array or a rectangular nested list of numbers"),
    case("mse-complex-targets", lambda: losses.mse(f32(2), jnp.array([1 + 5j, 1 + 5j])),
         TypeError, r"fnn\.losses\.mse: targets must be real, got dtype complex64"),
]

CASES = (LAYER_CONSTRUCTORS + LAYER_INIT + LAYER_APPLY + COMBINATORS + LOSSES + OPTIMIZERS
         + SCHEDULES + NAMES + CHECKPOINTS + DATA + MODELS + FIT + ARGUMENTS + VALUES + SHAPES)


@pytest.mark.parametrize("trigger, exc, match", CASES)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()


def test_table_is_big_and_ids_unique():
    ids = [p.id for p in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(ids) >= 80
