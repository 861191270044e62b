"""`fit` rejects bad arguments with an error naming `fit`, before any training.

Each case used to fail with a raw Python/JAX error (`'int' object is not
iterable`, "Gradient only defined for scalar-output functions", os errors), with
an error naming another function, or only after an epoch had trained; a resume
with other metrics or val_data left history lists of different lengths.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import losses, optim, train
from fnn.checkpoint import CheckpointManager
from fnn.layers import Dense

MODEL, SGD, CE = Dense(2), optim.sgd(0.1), losses.softmax_cross_entropy
X = np.random.default_rng(0).normal(size=(8, 3)).astype(np.float32)
Y = (np.arange(8) % 2).astype(np.int32)


def _fit(loss=CE, y=Y, **kw):
    """fit on the tiny problem; returns (history, the epochs that ended)."""
    ended = []
    kw = {"epochs": 1, "batch_size": 4, **kw}
    _, history = train.fit(MODEL, SGD, loss, (X, y), key=jax.random.key(0), progress=False,
                           on_epoch_end=lambda e, logs: ended.append(e), **kw)
    return history, ended


@pytest.mark.parametrize("kw, error, match", [
    ({"metrics": 5}, TypeError,
     r"^fit: metrics must be a metric name or a sequence of them .* got 5\.$"),
    ({"regularizer": "l2"}, TypeError,
     r"^fit: regularizer must be None or a callable regularizer\(params\).* got 'l2'\.$"),
    ({"regularizer": lambda p: jnp.ones(3)}, ValueError,
     r"^fit: regularizer must return a scalar, got shape \(3,\)\.$"),
    ({"checkpoint_dir": 123}, TypeError,
     r"^fit: checkpoint_dir must be None or a folder path .* got 123\.$"),
    ({"mesh": "cpu"}, TypeError, r"^fit \(mesh\): expected a jax\.sharding\.Mesh .* got str\.$"),
    ({"eval_batch_size": 0, "val_data": (X, Y)}, ValueError,
     r"^fit: eval_batch_size must be a positive int, got 0\.$"),
    ({"eval_batch_size": "all", "val_data": (X, Y)}, TypeError,
     r"^fit: eval_batch_size must be a positive int, got 'all'\.$"),
    ({"keep_checkpoints": 0}, ValueError, r"^fit: keep_checkpoints must be a positive int, got 0\.$"),
    ({"keep_checkpoints": 2.5}, TypeError,
     r"^fit: keep_checkpoints must be a positive int, got 2\.5\.$"),
    ({"accumulate": "a"}, TypeError, r"^fit: accumulate must be a positive int, got 'a'\.$"),
    ({"accumulate": 2.7}, TypeError, r"^fit: accumulate must be a positive int, got 2\.7\.$"),
    ({"input_shape": 3}, TypeError, r"^fit: input_shape must be a tuple .* got 3\.$"),
    ({"on_epoch_end": 3}, TypeError,
     r"^fit: on_epoch_end must be None or a callable on_epoch_end\(epoch, logs\), got 3\.$"),
    ({"check_finite": "yes"}, TypeError, r"^fit: check_finite must be True or False, got 'yes'"),
    ({"early_stopping": train.EarlyStopping(patience="a")}, ValueError,
     r"^EarlyStopping: patience must be an int >= 0, got 'a'\.$"),
    ({"early_stopping": train.EarlyStopping(patience=2.5)}, ValueError,
     r"^EarlyStopping: patience must be an int >= 0, got 2\.5\.$"),
    ({"early_stopping": train.EarlyStopping(monitor=5)}, TypeError,
     r"^EarlyStopping: monitor must be a history key such as 'val_loss', got 5\.$"),
    ({"early_stopping": train.EarlyStopping(min_delta=float("nan"), monitor="loss")}, ValueError,
     r"^EarlyStopping: min_delta must be finite, got nan\.$"),
    ({"early_stopping": train.EarlyStopping(restore_best="no", monitor="loss")}, TypeError,
     r"^EarlyStopping: restore_best must be True or False, got 'no'\.$"),
    ({"y": Y + 1}, ValueError,
     r"^fit: train_data's y holds class ids from 1 to 2, but the model has 2 outputs, so "
     r"softmax_cross_entropy needs ids in \[0, 1\]"),
    ({"val_data": (X, Y - 1)}, ValueError,
     r"^fit: val_data's y holds class ids from -1 to 0, but the model has 2 outputs"),
    ({"loss": losses.mse, "y": np.eye(2, dtype=np.float32)[Y],
      "early_stopping": train.EarlyStopping(monitor="accuracy")}, ValueError,
     r"^fit: early_stopping monitors 'accuracy', but accuracy does not apply to this loss"),
], ids=["metrics-int", "regularizer-str", "regularizer-vector", "checkpoint_dir-int",
        "mesh-str", "eval_batch_size-zero", "eval_batch_size-str", "keep-zero", "keep-float",
        "accumulate-str", "accumulate-float", "input_shape-int", "on_epoch_end-int",
        "check_finite-str", "patience-str", "patience-float", "monitor-int", "min_delta-nan",
        "restore_best-str", "class-ids-train", "class-ids-val", "accuracy-not-applicable"])
def test_bad_argument_is_refused_before_training(kw, error, match):
    ended = []
    kw = {"on_epoch_end": lambda e, logs: ended.append(e), **kw}
    loss, y = kw.pop("loss", CE), kw.pop("y", Y)
    with pytest.raises(error, match=match):
        train.fit(MODEL, SGD, loss, (X, y), epochs=1, batch_size=4, key=jax.random.key(0),
                  progress=False, **kw)
    assert ended == []


@pytest.mark.parametrize("sub", ["", "sub"])
def test_checkpoint_dir_through_a_file_is_refused(tmp_path, sub):
    path = tmp_path / "file"
    path.write_text("keep me")
    with pytest.raises(ValueError, match=r"^fit: checkpoint_dir must be a folder path .*"
                                         r"is or lies under an existing file\.$"):
        _fit(checkpoint_dir=path / sub if sub else path)
    assert path.read_text() == "keep me"


def test_make_train_step_checks_the_regularizer():
    with pytest.raises(TypeError, match=r"^make_train_step: regularizer must be None or a "):
        train.make_train_step(MODEL, CE, SGD, "l2")
    step = train.make_train_step(MODEL, CE, SGD, lambda p: jnp.ones(3))
    ts = train.init_train_state(MODEL, SGD, jax.random.key(0), (3,))
    with pytest.raises(ValueError, match=r"^make_train_step: regularizer must return a scalar, "
                                         r"got shape \(3,\)\."):
        step(ts, X, Y)


@pytest.mark.parametrize("first, then, match", [
    ({}, {"metrics": "loss"},
     r"written with metrics=\['loss', 'accuracy'\], this call has metrics=\['loss'\]"),
    ({}, {"val_data": (X, Y)}, r"written with val_data=None, this call has val_data=\(x, y\)"),
    ({"val_data": (X, Y)}, {}, r"written with val_data=\(x, y\), this call has val_data=None"),
], ids=["metrics", "val_data-added", "val_data-dropped"])
def test_resume_refuses_other_history_keys(tmp_path, first, then, match):
    history, _ = _fit(epochs=2, checkpoint_dir=tmp_path, **first)
    with pytest.raises(ValueError, match=r"^fit: the checkpoint in .* " + match):
        _fit(epochs=4, checkpoint_dir=tmp_path, **then)
    history, ended = _fit(epochs=4, checkpoint_dir=tmp_path, **first)  # same settings: fine
    assert ended == [3, 4]
    assert {len(v) for v in history.values()} == {4}


def test_resume_with_another_kind_of_loss_keeps_the_history_aligned(tmp_path):
    onehot = np.eye(2, dtype=np.float32)[Y]
    history, _ = _fit(loss=losses.mse, y=onehot, epochs=2, checkpoint_dir=tmp_path)
    assert "accuracy" not in history  # a regression loss records no accuracy
    with pytest.raises(ValueError, match=r"^fit: epoch 3 records \['accuracy', 'loss', 'lr'\], "
                                         r"but the history resumed from .* has \['loss', 'lr'\]"):
        _fit(y=onehot, epochs=4, checkpoint_dir=tmp_path)
    assert CheckpointManager(tmp_path).latest() == 2  # nothing saved for the refused epoch
