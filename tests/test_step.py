"""`make_train_step`, `init_train_state` and `evaluate` name the mistake.

Each case used to fail with a raw Python error (`'str' object has no attribute
'update'`, `'dict' object has no attribute 'key'`), a misleading one (a batch of
12 "cannot be split into accumulate=4 micro-batches" when y had 8 rows), or no
error at all (`evaluate` returned a NaN loss for out-of-range class ids).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses, optim, serial, train
from fnn.layers import Dense, Embedding, Flatten

MODEL, SGD, CE = Dense(3), optim.sgd(0.1), losses.softmax_cross_entropy
X = np.random.default_rng(0).normal(size=(12, 5)).astype(np.float32)
Y = (np.arange(12) % 3).astype(np.int32)
KEY = jax.random.key(0)


def test_optimizer_must_be_an_fnn_optimizer():
    with pytest.raises(TypeError, match=r"^make_train_step: expected a fnn\.optim\.Optimizer"):
        train.make_train_step(MODEL, CE, "sgd")
    with pytest.raises(TypeError, match=r"^init_train_state: expected a fnn\.optim\.Optimizer"):
        train.init_train_state(MODEL, "sgd", KEY, (5,))
    with pytest.raises(TypeError, match=r"^init_train_state: model must be a fnn\.Layer"):
        train.init_train_state("dense", SGD, KEY, (5,))


def test_step_needs_a_train_state():
    params, _ = MODEL.init(KEY, (5,))
    with pytest.raises(TypeError, match=r"expected the TrainState from init_train_state .* got "
                                        r"dict\."):
        train.make_train_step(MODEL, CE, SGD)(params, X, Y)


@pytest.mark.parametrize("accumulate", [1, 4])
def test_step_names_unequal_batch_sizes(accumulate):
    step = train.make_train_step(MODEL, CE, SGD, accumulate=accumulate)
    ts = train.init_train_state(MODEL, SGD, KEY, (5,))
    with pytest.raises(ValueError, match=r"^make_train_step's step: x has 12 examples but y "
                                         r"has 8; x and y must have the same batch size\."):
        step(ts, jnp.asarray(X), jnp.asarray(Y[:8]))


def test_step_accumulate_must_be_a_positive_int():
    with pytest.raises(TypeError, match=r"^make_train_step: accumulate must be a positive int, "
                                        r"got 2\.5\.$"):
        train.make_train_step(MODEL, CE, SGD, accumulate=2.5)


@pytest.mark.parametrize("loss, labels, lo, hi", [
    (losses.softmax_cross_entropy, Y + 1, 1, 3),
    (losses.nll, Y - 1, -1, 1),
    (losses.multiclass_hinge, Y + 5, 5, 7),
], ids=["softmax", "nll", "multiclass-hinge"])
def test_evaluate_checks_class_ids_against_the_model_outputs(loss, labels, lo, hi):
    params, state = MODEL.init(KEY, (5,))
    with pytest.raises(ValueError, match=rf"^evaluate: y holds class ids from {lo} to {hi}, but "
                                         r"the model has 3 outputs, so \w+ needs ids in \[0, 2\]"):
        train.evaluate(MODEL, params, state, loss, X, labels)
    # ids in range evaluate to the loss of the whole set (a float64 reference)
    got = train.evaluate(MODEL, params, state, loss, X, np.clip(labels, 0, 2))
    want = float(loss(MODEL.apply(params, state, X)[0], jnp.asarray(np.clip(labels, 0, 2))))
    np.testing.assert_allclose(got["loss"], want, rtol=1e-5)


def test_nan_from_an_embedding_id_out_of_range_says_so():
    model = serial(Embedding(5, 3), Flatten(), Dense(3))
    ids = (np.arange(24).reshape(12, 2) % 7).astype(np.int32)       # up to 6 >= vocabulary 5
    with pytest.raises(FloatingPointError, match=r"x holds integer ids, and inside the jitted "
                                                 r"step an id outside an Embedding's vocabulary "
                                                 r"gives NaN .* \(x ranges from 0 to 6\)\.$"):
        train.fit(model, SGD, CE, (ids, Y), epochs=1, batch_size=12, key=KEY, progress=False)
