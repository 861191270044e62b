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


# ---------------------------------------------------------------------------
# accuracy, top-k accuracy, confusion matrix, precision/recall/F1 = scikit-learn

import warnings  # noqa: E402

import chex  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from fnn import metrics  # noqa: E402


def _classified(seed, n=40, c=5, ties=False):
    rng = np.random.default_rng(seed)
    scores = (rng.integers(0, 3, (n, c)) if ties else rng.normal(size=(n, c))).astype(np.float32)
    return scores, rng.integers(0, c, n)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), ties=st.booleans(), k=st.integers(1, 5))
def test_top_k_accuracy_is_sklearn_also_with_tied_scores(seed, ties, k):
    scores, labels = _classified(seed, ties=ties)
    want = skm.top_k_accuracy_score(labels, scores, k=k, labels=np.arange(5)) if k < 5 else 1.0
    np.testing.assert_allclose(float(metrics.top_k_accuracy(scores, labels, k)), want,
                               rtol=1e-6)


def test_accuracy_and_one_hot_labels_are_sklearn():
    scores, labels = _classified(1)
    want = skm.accuracy_score(labels, scores.argmax(1))
    np.testing.assert_allclose(float(metrics.accuracy(scores, labels)), want, rtol=1e-6)
    one_hot = np.eye(5, dtype=np.float32)[labels]
    np.testing.assert_allclose(float(metrics.top_k_accuracy(scores, one_hot, 2)),
                               skm.top_k_accuracy_score(labels, scores, k=2), rtol=1e-6)


def test_confusion_matrix_is_sklearn_with_rows_true_and_weights():
    rng = np.random.default_rng(2)
    labels, pred = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    m = metrics.confusion_matrix(pred, labels, 6)      # classes 4, 5 never occur
    assert m.dtype == jnp.int32
    np.testing.assert_array_equal(np.asarray(m), skm.confusion_matrix(labels, pred,
                                                                      labels=np.arange(6)))
    w = rng.uniform(0, 2, 50).astype(np.float32)
    np.testing.assert_allclose(np.asarray(metrics.confusion_matrix(pred, labels, 6, weights=w)),
                               skm.confusion_matrix(labels, pred, labels=np.arange(6),
                                                    sample_weight=w), rtol=1e-5)
    seq = jax.jit(metrics.confusion_matrix, static_argnums=2)(pred.reshape(5, 10),
                                                              labels.reshape(5, 10), 6)
    np.testing.assert_array_equal(np.asarray(seq), np.asarray(m))    # (N, T) ids: all count


@pytest.mark.parametrize("average", ["macro", "micro"])
@pytest.mark.parametrize("case", ["random", "never-predicted", "absent-class"])
def test_precision_recall_f1_are_sklearn_with_zero_division_0(average, case):
    rng = np.random.default_rng(3)
    labels, pred = rng.integers(0, 5, 60), rng.integers(0, 5, 60)
    if case == "never-predicted":      # class 4 in the labels, never predicted: precision 0/0
        pred = np.where(pred == 4, 0, pred)
    if case == "absent-class":         # class 3 neither in the labels nor predicted (5 never is)
        labels, pred = np.where(labels == 3, 2, labels), np.where(pred == 3, 2, pred)
    got = metrics.precision_recall_f1(metrics.confusion_matrix(pred, labels, 6), average)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")    # sklearn's UndefinedMetricWarning for 0/0
        want = {"precision": skm.precision_score(labels, pred, average=average),
                "recall": skm.recall_score(labels, pred, average=average),
                "f1": skm.f1_score(labels, pred, average=average)}
    chex.assert_trees_all_close({k: float(v) for k, v in got.items()}, want, rtol=1e-6)


def test_precision_recall_f1_of_an_empty_matrix_are_zero_and_jit():
    got = jax.jit(metrics.precision_recall_f1)(jnp.zeros((3, 3), jnp.int32))
    assert {k: float(v) for k, v in got.items()} == {"precision": 0.0, "recall": 0.0, "f1": 0.0}


BAD_INPUT = [
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4, 3)), np.zeros(4, int), 0),
                 ValueError, r"fnn.metrics.top_k_accuracy: k must be a positive int, got 0",
                 id="top-k-zero"),
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4, 3)), np.zeros(4, int), 4),
                 ValueError, r"top_k_accuracy: k must be in \[1, 3\] \(the number of classes\), "
                 r"got 4", id="top-k-above-C"),
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4, 3)), np.zeros(4, int), 1.5),
                 TypeError, r"top_k_accuracy: k must be a positive int, got 1.5",
                 id="top-k-float"),
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4,)), np.zeros(4, int), 1),
                 ValueError, r"top_k_accuracy: expected scores of shape \(N, C\) with C >= 2 "
                 r"classes, got \(4,\)", id="top-k-scores-rank"),
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4, 3)), np.zeros(5, int), 1),
                 ValueError, r"top_k_accuracy: expected labels of shape \(4,\) \(class ids\) "
                 r"or \(4, 3\) \(one-hot\), got \(5,\)", id="top-k-labels-shape"),
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4, 3)), np.zeros(4), 1),
                 TypeError, r"top_k_accuracy: class-id labels must have an integer dtype",
                 id="top-k-float-labels"),
    pytest.param(lambda: metrics.top_k_accuracy(np.zeros((4, 3)), np.array([0, 1, 2, 3]), 1),
                 ValueError, r"top_k_accuracy: class ids must be in \[0, 2\] \(scores have 3 "
                 r"classes\), got ids from 0 to 3", id="top-k-id-out-of-range"),
    pytest.param(lambda: metrics.confusion_matrix(np.array([0, 4]), np.array([0, 1]), 3),
                 ValueError, r"fnn.metrics.confusion_matrix: predicted_ids hold ids from 0 to "
                 r"4, outside \[0, 2\] for num_classes=3; pass a larger num_classes",
                 id="confusion-num-classes-too-small"),
    pytest.param(lambda: metrics.confusion_matrix(np.array([0, 1]), np.array([-1, 1]), 3),
                 ValueError, r"confusion_matrix: labels hold ids from -1 to 1",
                 id="confusion-negative-label"),
    pytest.param(lambda: metrics.confusion_matrix(np.zeros(2), np.zeros(2, int), 3),
                 TypeError, r"confusion_matrix: predicted_ids must be integer class ids, got "
                 r"dtype float", id="confusion-float-ids"),
    pytest.param(lambda: metrics.confusion_matrix(np.zeros(2, int), np.zeros(3, int), 3),
                 ValueError, r"confusion_matrix: predicted_ids and labels must have one shape, "
                 r"got \(2,\) and \(3,\)", id="confusion-shapes"),
    pytest.param(lambda: metrics.confusion_matrix(np.zeros(2, int), np.zeros(2, int), 0),
                 ValueError, r"confusion_matrix: num_classes must be a positive int, got 0",
                 id="confusion-zero-classes"),
    pytest.param(lambda: metrics.confusion_matrix(np.zeros(2, int), np.zeros(2, int), 2,
                                                  weights=np.ones(3)),
                 ValueError, r"confusion_matrix: weights must have the labels' shape \(2,\), "
                 r"got \(3,\)", id="confusion-weights"),
    pytest.param(lambda: metrics.precision_recall_f1(np.eye(3), "weighted"), ValueError,
                 r"fnn.metrics.precision_recall_f1: unknown average 'weighted'; expected one "
                 r"of \['macro', 'micro'\]", id="prf-average"),
    pytest.param(lambda: metrics.precision_recall_f1(np.zeros((3, 2))), ValueError,
                 r"precision_recall_f1: expected a square confusion matrix \(C, C\), got "
                 r"\(3, 2\)", id="prf-not-square"),
]


@pytest.mark.parametrize("trigger, exc, match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
