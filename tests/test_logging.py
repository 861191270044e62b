"""fnn.train.logging: per-epoch and per-step records (JSONL, CSV, TensorBoard) against the
history fit returns, resume without duplicates, and bad input."""
import csv
import json
import os
import struct

import jax
import numpy as np
import pytest

import fnn
from fnn import layers as L
from fnn import losses, optim, train


def _data(n=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 0).astype(np.int32)
    return x, y


MODEL = fnn.serial(L.Dense(8), fnn.relu, L.Dense(2))


def _fit(rules, epochs, batch_size=8, ckpt=None, lr=0.05):
    x, y = _data()
    return train.fit(MODEL, optim.sgd(lr), losses.softmax_cross_entropy, (x, y), epochs=epochs,
                     batch_size=batch_size, key=jax.random.key(0), val_data=(x[:8], y[:8]),
                     rules=rules, checkpoint_dir=ckpt, progress=False)


def _jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def _csv(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.mark.parametrize("format, read", [("jsonl", _jsonl), ("csv", _csv)])
def test_epoch_records_equal_the_history(tmp_path, format, read):
    path = tmp_path / f"epochs.{format}"
    _, history = _fit([train.log_epochs(path, format=format)], 3)
    records = read(path)
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for key, values in history.items():
        np.testing.assert_allclose([r[key] for r in records], values, rtol=1e-12)
    assert all(r["time"] >= 0 for r in records)


@pytest.mark.parametrize("format, read", [("jsonl", _jsonl), ("csv", _csv)])
def test_step_records_are_means_of_every_k_steps(tmp_path, format, read):
    """Full-batch gradient descent: one step per epoch, so history["loss"][e] is step e+1's
    loss, and each record (every 2 steps, windows spanning epochs) is the mean of a pair."""
    path = tmp_path / f"steps.{format}"
    _, history = _fit([*train.log_steps(path, every=2, format=format)], 6, batch_size=None)
    records = read(path)
    assert [(r["epoch"], r["step"]) for r in records] == [(2, 2), (4, 4), (6, 6)]
    losses_ = np.asarray(history["loss"]).reshape(3, 2).mean(1)
    np.testing.assert_allclose([r["loss"] for r in records], losses_, rtol=1e-6)
    acc = np.asarray(history["accuracy"]).reshape(3, 2).mean(1)
    np.testing.assert_allclose([r["accuracy"] for r in records], acc, rtol=1e-6)


def test_step_records_within_epochs(tmp_path):
    path = tmp_path / "steps.jsonl"
    _fit([*train.log_steps(path, every=3)], 2)   # 4 steps per epoch
    assert [(r["epoch"], r["step"]) for r in _jsonl(path)] == [(1, 3), (2, 6)]


def test_resume_continues_the_files_without_duplicates(tmp_path):
    def rules(folder):
        return [train.log_epochs(folder / "e.jsonl"),
                *train.log_steps(folder / "s.csv", every=2, format="csv")]

    os.makedirs(tmp_path / "a")
    os.makedirs(tmp_path / "b")
    _fit(rules(tmp_path / "a"), 4, ckpt=tmp_path / "a" / "ckpt")
    _fit(rules(tmp_path / "b"), 2, ckpt=tmp_path / "b" / "ckpt")
    # a crash after logging epoch 3 but before saving it: its records are in the files
    with open(tmp_path / "b" / "e.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "loss": 99.0}) + "\n")
    with open(tmp_path / "b" / "s.csv", "a") as f:
        f.write("3,10,99.0,0.5\n")
    _fit(rules(tmp_path / "b"), 4, ckpt=tmp_path / "b" / "ckpt")
    whole, resumed = _jsonl(tmp_path / "a" / "e.jsonl"), _jsonl(tmp_path / "b" / "e.jsonl")
    assert [r["epoch"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(whole, resumed):
        assert {k: v for k, v in a.items() if k != "time"} == {
            k: v for k, v in b.items() if k != "time"}
    assert _csv(tmp_path / "a" / "s.csv") == _csv(tmp_path / "b" / "s.csv")


def _events(folder):
    """(tag, step, value) of every scalar in the TFRecord event files of `folder`, read
    with the protobuf classes alone; and the steps of SessionLog START markers."""
    from tensorboardX.proto import event_pb2

    scalars, starts = [], []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            raw = f.read()
        i = 0
        while i < len(raw):
            (length,) = struct.unpack("<Q", raw[i:i + 8])
            event = event_pb2.Event.FromString(raw[i + 12:i + 12 + length])
            i += 12 + length + 4
            if event.HasField("session_log") and event.session_log.status == 1:
                starts.append(event.step)
            for v in event.summary.value:
                scalars.append((v.tag, event.step, v.simple_value))
    return scalars, starts


def test_tensorboard_scalars_equal_the_history(tmp_path):
    pytest.importorskip("tensorboardX")
    rules = [train.log_epochs(tmp_path / "tb" / "epochs", format="tensorboard"),
             *train.log_steps(tmp_path / "tb" / "steps", every=4, format="tensorboard")]
    _, history = _fit(rules, 2)
    scalars, _ = _events(tmp_path / "tb" / "epochs")
    for key, values in history.items():
        got = [v for tag, _, v in sorted(scalars, key=lambda s: s[1]) if tag == key]
        np.testing.assert_allclose(got, values, rtol=1e-6)
    steps, _ = _events(tmp_path / "tb" / "steps")
    assert sorted(s for tag, s, _ in steps if tag == "loss") == [4, 8]


def test_a_resumed_tensorboard_log_purges_the_stale_steps(tmp_path):
    pytest.importorskip("tensorboardX")
    ckpt = tmp_path / "ckpt"

    def rules():
        return [train.log_epochs(tmp_path / "tb", format="tensorboard")]

    _fit(rules(), 1, ckpt=ckpt)
    _fit(rules(), 2, ckpt=ckpt)
    _, starts = _events(tmp_path / "tb")
    assert 2 in starts   # TensorBoard drops older events from epoch 2 on


def test_the_buffer_rule_adds_no_host_work_to_the_step():
    """The per-step rule is pure device code: the jitted step with it has no host
    callback, and it changes no training result (bit-identical params)."""
    x, y = _data()
    buffer, _ = train.log_steps("unused.jsonl", every=2)
    opt = optim.sgd(0.1)
    step = train.make_train_step(MODEL, losses.softmax_cross_entropy, opt, rules=[buffer],
                                 jit=False)
    ts = train.init_train_state(MODEL, opt, jax.random.key(0), (5,), rules=[buffer])
    text = str(jax.make_jaxpr(step)(ts, x[:8], y[:8]))
    assert "callback" not in text
    plain = train.make_train_step(MODEL, losses.softmax_cross_entropy, opt, jit=False)
    ts0 = train.init_train_state(MODEL, opt, jax.random.key(0), (5,))
    a, _ = step(ts, x[:8], y[:8])
    b, _ = plain(ts0, x[:8], y[:8])
    np.testing.assert_array_equal(a.params["0_Dense"]["w"], b.params["0_Dense"]["w"])


BAD_INPUT = [
    ("format", lambda: train.log_epochs("a.log", format="xml"), ValueError,
     r"^log_epochs: format must be one of \['jsonl', 'csv', 'tensorboard'\], got 'xml'"),
    ("path", lambda: train.log_epochs(3), TypeError, r"^log_epochs: path must be a file path"),
    ("every", lambda: train.log_steps("a.jsonl", every=0), ValueError,
     r"^log_steps: every must be a positive int, got 0"),
    ("capacity", lambda: train.log_steps("a.jsonl", capacity=1.5), TypeError,
     r"^log_steps: capacity must be a positive int, got 1.5"),
    ("steps format", lambda: train.log_steps("a.jsonl", format="txt"), ValueError,
     r"^log_steps: format must be one of"),
]


@pytest.mark.parametrize("trigger, exc, match", [pytest.param(*c[1:], id=c[0])
                                                 for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()


def test_the_writer_without_its_buffer_is_an_error(tmp_path):
    _, writer = train.log_steps(tmp_path / "s.jsonl")
    with pytest.raises(ValueError, match=r"log_steps: the rule 'log_steps_jsonl' found no "
                                         r"buffer .*rules=\[\*log_steps\(...\)\]"):
        _fit([writer], 1)


def test_a_full_buffer_names_capacity_and_every(tmp_path):
    with pytest.raises(ValueError, match=r"epoch 1 made 4 records .*capacity=2; raise capacity"):
        _fit([*train.log_steps(tmp_path / "s.jsonl", every=1, capacity=2)], 1)
