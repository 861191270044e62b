"""The test suite's one list of layers and optimizers.

Tests that run something over "every layer" or "every optimizer" take their
list from here, and `tests/test_registry.py` checks that the lists name every
public layer constructor of `fnn.layers` and every optimizer of `fnn.optim`: a
new layer or optimizer fails that test until it is added here, and is then
covered by every test that walks these lists.

- `LAYERS`: name -> `(make, input_shape)`, a small instance of every layer
  constructor (and a combinator) and the shape of one example it takes. Some
  expected messages in `test_bad_input.py` quote these sizes (e.g. "expected
  input features 4"): change an entry together with them.
- `CONSTRUCTORS`: the optimizer constructors, each called as `name(learning_rate, ...)`.
- `WRAPPERS`: the functions that wrap an optimizer (`name(optimizer, ...)`).
- `OPTIMIZERS`: name -> a hypothesis strategy drawing an optimizer with random valid
  hyperparameters (every constructor and wrapper, a schedule among them).
"""
from __future__ import annotations

from hypothesis import strategies as st

import fnn
from fnn import layers as L
from fnn import optim

LAYERS = {
    "dense": (lambda: L.Dense(3), (4,)),
    "maxout": (lambda: L.Maxout(3, pieces=2), (4,)),
    "conv": (lambda: L.Conv2D(2, 3, padding="VALID"), (5, 5, 1)),
    "maxpool": (lambda: L.MaxPool(2), (4, 4, 1)),
    "avgpool": (lambda: L.AvgPool(2), (4, 4, 1)),
    "gap": (lambda: L.GlobalAvgPool(), (4, 4, 1)),
    "dropout": (lambda: L.Dropout(0.5), (4,)),
    "batchnorm": (lambda: L.BatchNorm(), (3,)),
    "layernorm": (lambda: L.LayerNorm(), (3,)),
    "prelu": (lambda: L.PReLU(), (3,)),
    "embedding": (lambda: L.Embedding(10, 4), (5,)),
    "rnn": (lambda: L.SimpleRNN(4), (5, 3)),
    "lstm": (lambda: L.LSTM(4), (5, 3)),
    "gru": (lambda: L.GRU(4), (5, 3)),
    "bidir": (lambda: L.Bidirectional(L.LSTM(4)), (5, 3)),
    "bidir_dense": (lambda: L.Bidirectional(L.Dense(4)), (5, 3)),
    "flatten": (lambda: L.Flatten(), (2, 3)),
    "serial": (lambda: fnn.serial(L.Dense(3), fnn.relu, L.Dense(2)), (4,)),
    "mha": (lambda: L.MultiHeadAttention(2), (5, 4)),
    "transformer_block": (lambda: L.TransformerBlock(2, 8), (5, 4)),
    "positional_embedding": (lambda: L.PositionalEmbedding(6), (5, 4)),
    "sinusoidal_embedding": (lambda: L.SinusoidalEmbedding(), (5, 4)),
    "conv1d": (lambda: L.Conv1D(4, 3, groups=2), (6, 2)),
    "conv3d": (lambda: L.Conv3D(2, 2, padding="VALID"), (3, 3, 3, 1)),
    "conv_transpose1d": (lambda: L.ConvTranspose1D(2, 3, stride=2), (4, 1)),
    "conv_transpose2d": (lambda: L.ConvTranspose2D(2, 3, stride=2, padding="SAME"), (3, 3, 1)),
    "conv_transpose3d": (lambda: L.ConvTranspose3D(2, 2, stride=2), (2, 2, 2, 1)),
    "upsample": (lambda: L.Upsample(2, "bilinear"), (3, 3, 1)),
    "maxpool1d": (lambda: L.MaxPool1D(2), (4, 1)),
    "avgpool1d": (lambda: L.AvgPool1D(2), (4, 1)),
    "maxpool3d": (lambda: L.MaxPool3D(2), (2, 2, 2, 1)),
    "avgpool3d": (lambda: L.AvgPool3D(2), (2, 2, 2, 1)),
    "gmp": (lambda: L.GlobalMaxPool(), (4, 4, 1)),
}

CONSTRUCTORS = ("sgd", "momentum", "adagrad", "adadelta", "rmsprop", "adam", "adamw", "nadam",
                "radam", "adamax", "lion")
WRAPPERS = ("clip_by_global_norm", "clip_by_value", "masked", "partition", "ema")

_lr = st.floats(1e-3, 0.1)
_unit = st.floats(0.0, 0.95)
_eps = st.floats(1e-8, 1e-4)

OPTIMIZERS = {
    "sgd": st.builds(optim.sgd, _lr),
    "momentum": st.builds(optim.momentum, _lr, beta=st.floats(0.0, 0.9),
                          nesterov=st.booleans()),
    "adagrad": st.builds(optim.adagrad, _lr, eps=_eps,
                         initial_accumulator=st.floats(0.0, 0.1)),
    "adadelta": st.builds(optim.adadelta, st.floats(0.5, 1.0), rho=st.floats(0.5, 0.95),
                          eps=st.floats(1e-6, 1e-4)),
    "rmsprop": st.builds(optim.rmsprop, st.floats(1e-3, 1e-2), decay=st.floats(0.5, 0.99),
                         eps=_eps),
    "adam": st.builds(optim.adam, _lr, b1=_unit, b2=st.floats(0.5, 0.999), eps=_eps),
    "adamw_no_decay": st.builds(optim.adamw, _lr, b1=_unit, eps=_eps, weight_decay=st.just(0.0)),
    "clip_by_global_norm(sgd)": st.builds(optim.clip_by_global_norm, st.builds(optim.sgd, _lr),
                                          st.floats(0.1, 10.0)),
    "clip_by_value(adam)": st.builds(optim.clip_by_value, st.builds(optim.adam, _lr),
                                     st.floats(0.1, 10.0)),
    "sgd_schedule": st.builds(optim.sgd, st.builds(optim.schedules.exponential_decay, _lr,
                                                   st.floats(0.5, 1.0), st.integers(1, 10))),
    "masked(momentum)": st.builds(lambda lr: optim.masked(optim.momentum(lr),
                                                          {"w": True, "b": False}), _lr),
    "rmsprop_momentum": st.builds(optim.rmsprop, st.floats(1e-3, 1e-2), momentum=_unit,
                                  centered=st.booleans()),
    "adam_amsgrad": st.builds(optim.adam, _lr, b2=st.floats(0.5, 0.999), amsgrad=st.just(True)),
    "nadam": st.builds(optim.nadam, _lr, b1=_unit, b2=st.floats(0.5, 0.999), eps=_eps,
                       momentum_decay=st.floats(0.0, 0.01)),
    "radam": st.builds(optim.radam, _lr, b1=_unit, b2=st.floats(0.5, 0.999), eps=_eps),
    "adamax": st.builds(optim.adamax, _lr, b1=_unit, b2=st.floats(0.5, 0.999), eps=_eps),
    "lion": st.builds(optim.lion, st.floats(1e-4, 1e-2), b1=_unit, b2=st.floats(0.5, 0.99)),
    "partition(adam, sgd)": st.builds(lambda a, b: optim.partition(
        {"x": optim.adam(a), "y": optim.sgd(b)}, {"w": "x", "b": "y"}), _lr, _lr),
    "ema(momentum)": st.builds(lambda lr, d: optim.ema(optim.momentum(lr), d), _lr,
                               st.floats(0.0, 0.999)),
}
LAYERS["groupnorm"] = (lambda: L.GroupNorm(2), (3, 3, 4))
LAYERS["instancenorm"] = (lambda: L.InstanceNorm(), (3, 3, 2))
LAYERS["rmsnorm"] = (lambda: L.RMSNorm(), (3,))
LAYERS["layernorm_no_bias"] = (lambda: L.LayerNorm(use_bias=False), (2, 3))
LAYERS["droppath"] = (lambda: L.DropPath(0.5), (2, 3))
# repeat's leaves are stacked (a bias becomes (n, C)); test_optim_groups' decay-mask test
# equates "decays" with rank >= 2, so the catalog's repeat holds a bias-free Dense.
LAYERS["repeat"] = (lambda: fnn.repeat(L.Dense(4, use_bias=False), 2), (4,))
LAYERS["remat"] = (lambda: fnn.remat(fnn.serial(L.Dense(3), L.BatchNorm())), (4,))
