"""Streaming metrics (`fnn.metrics.streaming`): accumulated over any split of the data into
batches (jitted updates, padded batches with a mask), they give the numbers of one call on
all the data; `fit(metrics=...)` records them per epoch on the validation set and
`fnn.train.evaluate(..., metrics=...)` returns them, equal to the one-shot functions (and
so to scikit-learn, `tests/test_metrics.py`) on the model's predictions.
"""
import functools

import chex
import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from fnn import losses, metrics, optim, train
from fnn.layers import Dense
from fnn.metrics import streaming

N, C = 37, 5
RNG = np.random.default_rng(0)
SCORES = RNG.normal(size=(N, C)).astype(np.float32)
LABELS = RNG.integers(0, C, N).astype(np.int32)

METRICS = {   # name: (streaming metric, the one-shot value on all the data)
    "accuracy": (streaming.accuracy(), metrics.accuracy(SCORES, LABELS)),
    "top3": (streaming.top_k_accuracy(3), metrics.top_k_accuracy(SCORES, LABELS, 3)),
    "confusion": (streaming.confusion_matrix(C),
                  metrics.confusion_matrix(SCORES.argmax(1), LABELS, C)),
    "macro": (streaming.precision_recall_f1(C),
              metrics.precision_recall_f1(metrics.confusion_matrix(SCORES.argmax(1), LABELS, C))),
    "micro": (streaming.precision_recall_f1(C, "micro"),
              metrics.precision_recall_f1(metrics.confusion_matrix(SCORES.argmax(1), LABELS, C),
                                          "micro")),
}


@functools.cache
def _update(name):
    return jax.jit(METRICS[name][0].update)


@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(1, N - 1), max_size=6, unique=True),
       name=st.sampled_from(sorted(METRICS)))
def test_any_split_into_batches_gives_the_one_call_numbers(cuts, name):
    metric, want = METRICS[name]
    state = metric.init()
    bounds = [0, *sorted(cuts), N]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        state = _update(name)(state, SCORES[lo:hi], LABELS[lo:hi])
    chex.assert_trees_all_close(metric.result(state), want, rtol=1e-6)


@pytest.mark.parametrize("name", sorted(METRICS))
def test_a_mask_leaves_the_padding_out(name):
    """Fixed-shape batches of 8, the last one padded with junk: the mask drops it."""
    metric, want = METRICS[name]
    state, pad = metric.init(), (-N) % 8
    scores = np.concatenate([SCORES, RNG.normal(size=(pad, C)).astype(np.float32)])
    labels = np.concatenate([LABELS, np.zeros(pad, np.int32)])
    mask = np.arange(N + pad) < N
    for i in range(0, N + pad, 8):
        state = metric.update(state, scores[i:i + 8], labels[i:i + 8], mask[i:i + 8])
    chex.assert_trees_all_close(metric.result(state), want, rtol=1e-6)


def test_one_hot_labels_count_as_their_argmax():
    metric, want = METRICS["top3"]
    state = metric.update(metric.init(), SCORES, np.eye(C, dtype=np.float32)[LABELS])
    chex.assert_trees_all_close(metric.result(state), want, rtol=1e-6)


# ---------------------------------------------------------------------------
# fit and evaluate

X = RNG.normal(size=(48, 6)).astype(np.float32)
Y = (X[:, :C].argmax(1) + (RNG.uniform(size=48) < 0.3)).astype(np.int32) % C
XV, YV = X[:23], Y[:23]
KEY = jax.random.key(0)


def _predictions(ts):
    return np.asarray(Dense(C).apply(ts.params, ts.model_state, XV)[0])


def test_fit_records_streaming_metrics_on_the_validation_set_every_epoch():
    ts, history = train.fit(
        Dense(C), optim.adam(0.05), losses.softmax_cross_entropy, (X, Y), epochs=3,
        batch_size=16, key=KEY, val_data=(XV, YV), eval_batch_size=5, progress=False,
        metrics=("loss", "accuracy", "top2_accuracy", streaming.precision_recall_f1(C)))
    names = {"val_top2_accuracy", "val_macro_precision", "val_macro_recall", "val_macro_f1"}
    assert names <= set(history) and "top2_accuracy" not in history
    assert all(len(history[k]) == 3 and isinstance(history[k][0], float) for k in names)
    pred = _predictions(ts)                 # the last epoch's params: its numbers
    np.testing.assert_allclose(history["val_top2_accuracy"][-1],
                               skm.top_k_accuracy_score(YV, pred, k=2, labels=np.arange(C)),
                               rtol=1e-6)
    np.testing.assert_allclose(history["val_macro_f1"][-1],
                               skm.f1_score(YV, pred.argmax(1), average="macro"), rtol=1e-6)


def test_evaluate_returns_streaming_metrics_and_the_confusion_matrix():
    model = Dense(C)
    ts = train.init_train_state(model, optim.sgd(0.1), KEY, X.shape[1:])
    got = train.evaluate(model, ts.params, ts.model_state, losses.softmax_cross_entropy, XV, YV,
                         batch_size=4, metrics=["top3_accuracy", streaming.confusion_matrix(C),
                                                streaming.precision_recall_f1(C, "micro")])
    pred = _predictions(ts)
    np.testing.assert_array_equal(got["confusion_matrix"],
                                  skm.confusion_matrix(YV, pred.argmax(1), labels=np.arange(C)))
    np.testing.assert_allclose(got["top3_accuracy"],
                               skm.top_k_accuracy_score(YV, pred, k=3, labels=np.arange(C)),
                               rtol=1e-6)
    np.testing.assert_allclose(got["micro_f1"], got["accuracy"], rtol=1e-6)
    assert set(got) == {"loss", "accuracy", "top3_accuracy", "confusion_matrix",
                        "micro_precision", "micro_recall", "micro_f1"}


def test_early_stopping_may_monitor_a_streaming_metric():
    _, history = train.fit(
        Dense(C), optim.sgd(0.0), losses.softmax_cross_entropy, (X, Y), epochs=5,
        batch_size=16, key=KEY, val_data=(XV, YV), progress=False,
        metrics=("loss", "top2_accuracy"),
        early_stopping=train.EarlyStopping(patience=1, monitor="val_top2_accuracy"))
    assert len(history["val_top2_accuracy"]) == 2     # lr 0: no improvement after epoch 1


def test_a_resumed_run_keeps_its_streaming_metrics(tmp_path):
    def run(epochs, metrics):
        return train.fit(Dense(C), optim.sgd(0.1), losses.softmax_cross_entropy, (X, Y),
                         epochs=epochs, batch_size=16, key=KEY, val_data=(XV, YV),
                         progress=False, checkpoint_dir=str(tmp_path), metrics=metrics)

    _, first = run(1, ("loss", "top2_accuracy"))
    _, resumed = run(2, ("loss", "top2_accuracy"))
    assert resumed["val_top2_accuracy"][:1] == first["val_top2_accuracy"]
    assert len(resumed["val_top2_accuracy"]) == 2
    with pytest.raises(ValueError, match="metrics"):
        run(3, ("loss",))


# ---------------------------------------------------------------------------
# bad input


def _fit(**kw):
    settings_ = dict(epochs=1, batch_size=16, key=KEY, progress=False, val_data=(XV, YV))
    settings_.update(kw)
    return lambda: train.fit(Dense(C), optim.sgd(0.1), losses.softmax_cross_entropy, (X, Y),
                             **settings_)


BAD_INPUT = [
    pytest.param(lambda: streaming.from_name("top0_accuracy"), ValueError,
                 r"fnn.metrics.streaming.from_name: unknown metric 'top0_accuracy'; expected "
                 r"'top\{k\}_accuracy' with k >= 1", id="from-name-top0"),
    pytest.param(lambda: streaming.top_k_accuracy(0), ValueError,
                 r"fnn.metrics.streaming.top_k_accuracy: k must be a positive int, got 0",
                 id="streaming-top-k-zero"),
    pytest.param(lambda: streaming.top_k_accuracy(6).update(
        streaming.top_k_accuracy(6).init(), SCORES, LABELS), ValueError,
                 r"top6_accuracy.update: k must be in \[1, 5\] \(the number of classes\), "
                 r"got 6", id="streaming-top-k-above-C"),
    pytest.param(lambda: streaming.precision_recall_f1(C, "weighted"), ValueError,
                 r"fnn.metrics.streaming.precision_recall_f1: unknown average 'weighted'; "
                 r"expected one of \['macro', 'micro'\]", id="streaming-average"),
    pytest.param(lambda: streaming.confusion_matrix(0), ValueError,
                 r"streaming.confusion_matrix: num_classes must be a positive int, got 0",
                 id="streaming-num-classes"),
    pytest.param(lambda: streaming.confusion_matrix(3).update(
        streaming.confusion_matrix(3).init(), SCORES, LABELS), ValueError,
                 r"confusion_matrix.update: expected scores of shape \(B, 3\) for "
                 r"num_classes=3, got \(37, 5\)", id="streaming-scores-classes"),
    pytest.param(lambda: streaming.accuracy().update(
        streaming.accuracy().init(), SCORES, LABELS, np.ones(3, bool)), ValueError,
                 r"accuracy.update: mask must have shape \(37,\) \(one flag per example\)",
                 id="streaming-mask-shape"),
    pytest.param(_fit(metrics=("loss", "f1")), ValueError,
                 r"fit: unknown metric 'f1'; expected some of \['loss', 'accuracy'\], a name "
                 r"such as 'top5_accuracy'", id="fit-unknown-metric-name"),
    pytest.param(_fit(metrics=("loss", 3)), TypeError,
                 r"fit: a metric must be a name from \['loss', 'accuracy'\], a name such as "
                 r"'top5_accuracy', or a fnn.metrics.streaming.Metric, got 3",
                 id="fit-metric-not-a-name"),
    pytest.param(_fit(metrics=("loss", "top2_accuracy"), val_data=None), ValueError,
                 r"fit: metric 'top2_accuracy' is computed on the validation set after every "
                 r"epoch, but no val_data was given", id="fit-streaming-without-val-data"),
    pytest.param(_fit(metrics=("loss", streaming.confusion_matrix(C))), ValueError,
                 r"fit: metric 'confusion_matrix' gives a result of shape \[\(5, 5\)\], but the "
                 r"history records numbers; compute it with fnn.train.evaluate",
                 id="fit-confusion-matrix"),
    pytest.param(_fit(metrics=("loss", streaming.accuracy())), ValueError,
                 r"fit: the streaming metric named 'accuracy' would shadow fit's own "
                 r"'accuracy'; pass the name 'accuracy' instead", id="fit-shadowed-name"),
    pytest.param(_fit(metrics=("top2_accuracy", streaming.top_k_accuracy(2))), ValueError,
                 r"fit: metrics name 'top2_accuracy' twice", id="fit-duplicate-names"),
    pytest.param(_fit(metrics=("loss", "top2_accuracy"),
                      early_stopping=train.EarlyStopping(monitor="top2_accuracy")), ValueError,
                 r"fit: early_stopping monitors 'top2_accuracy', but that metric is computed on "
                 r"the validation set only; monitor 'val_top2_accuracy'",
                 id="fit-monitor-train-side-streaming"),
    pytest.param(_fit(metrics=("loss",),
                      early_stopping=train.EarlyStopping(monitor="val_top2_accuracy")),
                 ValueError, r"fit: early_stopping monitors 'val_top2_accuracy' but "
                 r"metrics=\('loss',\) does not record it; add 'top2_accuracy' to metrics",
                 id="fit-monitor-unrecorded-streaming"),
    pytest.param(lambda: train.evaluate(Dense(C), {}, {}, losses.mse, XV, YV, metrics=5),
                 TypeError, r"evaluate: metrics must be a sequence of "
                 r"fnn.metrics.streaming.Metric objects", id="evaluate-metrics-int"),
]


@pytest.mark.parametrize("trigger, exc, match", BAD_INPUT)
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()


def test_the_same_arguments_give_the_same_metric_so_evaluate_compiles_once():
    assert streaming.top_k_accuracy(5) is streaming.from_name("top5_accuracy")
    assert streaming.precision_recall_f1(C) is streaming.precision_recall_f1(C, "macro")
    assert streaming.confusion_matrix(C) is not streaming.precision_recall_f1(C)
    assert streaming.precision_recall_f1(C, "micro").name == "micro"
