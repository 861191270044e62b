"""The "accuracy" metric follows the loss: argmax for class scores, the threshold's
side for binary losses (per label), none for regression losses.

References are float64 numpy computations on the same predictions, so each test
fails if `make_train_step`, `evaluate` or `fit` report another rule (before this,
a multi-label sigmoid loss got argmax-against-argmax and `(N, 1)` logits none).
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses, optim, train
from fnn.layers import Dense

RNG = np.random.default_rng(0)
X = RNG.normal(size=(16, 3)).astype(np.float32)
KEY = jax.random.key(0)


def _step_and_eval(out, loss, y):
    """Accuracy from `evaluate` and from one training step (of the params before it;
    the step donates them, so it runs last), and the predictions of those params."""
    model, opt = Dense(out), optim.sgd(0.0)        # lr 0: the params stay put
    ts = train.init_train_state(model, opt, KEY, X.shape[1:])
    params, state = ts.opt_state.params, ts.model_state
    pred = np.asarray(model.apply(params, state, X)[0], np.float64)
    evaluated = train.evaluate(model, params, state, loss, X, y, batch_size=5)
    _, metrics = train.make_train_step(model, loss, opt)(ts, jnp.asarray(X), jnp.asarray(y))
    return metrics.get("accuracy"), evaluated.get("accuracy"), pred


@pytest.mark.parametrize("loss, t_pred, targets", [
    (losses.sigmoid_binary_cross_entropy, 0.0, lambda y: y.astype(np.float32)),
    (losses.hinge, 0.0, lambda y: (2.0 * y - 1).astype(np.float32)),
    (losses.exponential, 0.0, lambda y: (2.0 * y - 1).astype(np.float32)),
    (losses.binary_cross_entropy, 0.5, lambda y: y.astype(np.float32)),   # on probabilities
], ids=["sigmoid-bce", "hinge", "exponential", "bce"])
@pytest.mark.parametrize("out", [1, 4], ids=["binary-(N,1)", "multi-label-(N,4)"])
def test_binary_losses_count_each_label_on_its_side_of_the_threshold(loss, t_pred, targets, out):
    y01 = RNG.integers(0, 2, size=(16, out))
    step_acc, eval_acc, pred = _step_and_eval(out, loss, targets(y01))
    want = np.mean((pred > t_pred) == (y01 == 1))
    assert step_acc is not None and eval_acc is not None
    np.testing.assert_allclose(float(step_acc), want, rtol=1e-6)
    np.testing.assert_allclose(eval_acc, want, rtol=1e-6)


def _ids_loss(scores, labels):
    """A user's own loss on class ids (not from fnn.losses)."""
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(scores), labels[:, None], 1))


@pytest.mark.parametrize("loss, targets", [
    (losses.softmax_cross_entropy, lambda y: y.astype(np.int32)),
    (losses.softmax_cross_entropy, lambda y: np.eye(3, dtype=np.float32)[y]),
    (losses.multiclass_hinge, lambda y: y.astype(np.int32)),
    (_ids_loss, lambda y: y.astype(np.int32)),
], ids=["softmax-ids", "softmax-one-hot", "multiclass-hinge", "custom-loss-ids"])
def test_class_scores_count_the_argmax(loss, targets):
    y = RNG.integers(0, 3, size=16)
    step_acc, eval_acc, pred = _step_and_eval(3, loss, targets(y))
    want = np.mean(pred.argmax(axis=1) == y)
    np.testing.assert_allclose(float(step_acc), want, rtol=1e-6)
    np.testing.assert_allclose(eval_acc, want, rtol=1e-6)


@pytest.mark.parametrize("loss", [losses.mse, functools.partial(losses.huber, delta=2.0)],
                         ids=["mse", "huber-partial"])
def test_regression_losses_report_no_accuracy(loss):
    y = RNG.normal(size=(16, 3)).astype(np.float32)
    step_acc, eval_acc, _ = _step_and_eval(3, loss, y)
    assert step_acc is None and eval_acc is None


def test_fit_records_binary_accuracy_for_one_logit():
    y = (X[:, :1] > 0).astype(np.float32)          # learnable from the first feature
    _, history = train.fit(Dense(1), optim.adam(0.05), losses.sigmoid_binary_cross_entropy,
                           (X, y), epochs=30, batch_size=16, key=KEY, progress=False,
                           val_data=(X, y))
    assert set(history) >= {"accuracy", "val_accuracy"}
    assert history["val_accuracy"][-1] == 1.0
