"""`fit` over streamed `train_data` (`fnn.train.feed`, `fnn.train.streaming`).

The reference is `fit`'s own in-memory path: fed the very batches `epoch_batches`
draws from the run's key stream, every kind of iterable (a callable, a list, a
one-shot iterator with `steps_per_epoch`, dict batches, a PyTorch DataLoader) must
give bit-identical params and history. The padded ragged batch is checked against
steps on the unpadded batches (float32 tolerance); streamed evaluation against the
in-memory `evaluate`.
"""
from __future__ import annotations

import json
import threading

import chex
import jax
import numpy as np
import pytest

import fnn
from fnn.data import epoch_batches
from fnn.train import fit, make_train_step
from fnn.train.feed import Prefetch, masked_loss
from fnn.train.state import init_train_state
from fnn.train.streaming import decode_state, encode_state

KEY = jax.random.key(7)
N, BS, EPOCHS = 60, 12, 2
MODEL = fnn.models.mlp([8, 3])
OPT = fnn.optim.momentum(0.05, 0.9)
LOSS = fnn.losses.softmax_cross_entropy


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(N, 5)).astype(np.float32)
    return x, (x[:, 0] > 0).astype(np.int32) + (x[:, 1] > 1).astype(np.int32)


def run_batches(x, y, epochs=EPOCHS):
    """The batches fit's in-memory path trains on, per epoch (its key stream)."""
    _, run_key = jax.random.split(jax.random.key_data(KEY))
    out = []
    for _ in range(epochs):
        run_key, shuffle = jax.random.split(run_key)
        xb, yb = epoch_batches(shuffle, (x, y), BS)
        out.append([(np.asarray(a), np.asarray(b)) for a, b in zip(xb, yb)])
    return out


def train(train_data, loss=LOSS, **kw):
    kw = dict(dict(epochs=EPOCHS, batch_size=BS, key=KEY, progress=False), **kw)
    return fit(MODEL, OPT, loss, train_data, **kw)


@pytest.fixture(scope="module")
def reference(data):
    return train(data)


def same_run(a, b):
    chex.assert_trees_all_equal(a[0].params, b[0].params)
    assert a[1] == b[1]


def test_a_callable_per_epoch_equals_the_in_memory_path(data, reference):
    per_epoch = run_batches(*data)
    same_run(train(lambda epoch: per_epoch[epoch]), reference)


def test_dict_batches_and_a_one_shot_stream_equal_the_in_memory_path(data, reference):
    per_epoch = run_batches(*data)
    dicts = lambda epoch: ({"image": a, "label": b} for a, b in per_epoch[epoch])  # noqa: E731
    same_run(train(dicts, input_key="image", target_key="label", prefetch=1), reference)
    stream = iter([b for epoch in per_epoch for b in epoch])
    same_run(train(stream, steps_per_epoch=N // BS), reference)


def test_target_key_none_gives_the_loss_the_rest_of_the_dict(data, reference):
    per_epoch = run_batches(*data)
    weighted = [[{"x": a, "y": b, "w": np.ones(len(b), np.float32)} for a, b in epoch]
                for epoch in per_epoch]

    def loss(pred, batch):      # the reference loss, weighted by an all-ones "w"
        return LOSS(pred, batch["y"]) * batch["w"].mean()

    ts, history = train(lambda e: weighted[e], loss=loss, target_key=None,
                        val_data=weighted[0])
    chex.assert_trees_all_close(ts.params, reference[0].params, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(history["loss"], reference[1]["loss"], rtol=1e-6)
    assert "accuracy" not in history and "val_loss" in history


def test_a_list_is_read_again_every_epoch(data):
    batches = run_batches(*data, epochs=1)[0]
    ts, history = train(batches)
    ts2, _ = train(lambda epoch: batches)
    chex.assert_trees_all_equal(ts.params, ts2.params)
    assert len(history["loss"]) == EPOCHS and int(ts.step) == EPOCHS * len(batches)


def test_a_torch_dataloader(data):
    torch = pytest.importorskip("torch")
    x, y = data
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)),
        batch_size=BS, shuffle=False)
    fixed = [(x[i:i + BS], y[i:i + BS]) for i in range(0, N, BS)]
    same_run(train(loader), train(fixed))


def test_a_grain_dataloader_and_its_bytes_state(data):
    grain = pytest.importorskip("grain")
    x, y = data
    loader = grain.DataLoader(
        data_source=fnn.sources.ArraySource(x, y), operations=[grain.transforms.Batch(BS)],
        sampler=grain.samplers.IndexSampler(N, shuffle=False, num_epochs=1, seed=0),
        worker_count=0)
    fixed = [(x[i:i + BS], y[i:i + BS]) for i in range(0, N, BS)]
    same_run(train(loader), train(fixed))
    it = iter(loader)
    next(it)
    state = it.get_state()
    assert isinstance(state, bytes)
    assert decode_state(json.loads(json.dumps(encode_state(state)))) == state


def test_drop_skips_the_ragged_batch(data):
    x, y = data
    ragged = [(x[i:i + 25], y[i:i + 25]) for i in range(0, N, 25)]   # 25, 25, 10
    same_run(train(ragged, batch_size=25), train(ragged[:2], batch_size=25))


def test_pad_masks_the_ragged_batch_out_of_loss_and_accuracy(data):
    x, y = data
    ragged = [(x[i:i + 25], y[i:i + 25]) for i in range(0, N, 25)]
    ts, history = train(ragged, batch_size=25, ragged="pad", epochs=1)
    # reference: plain steps on the unpadded batches, the last one of 10 examples
    state = init_train_state(MODEL, OPT, KEY, (5,))
    state = state._replace(key=jax.random.split(state.key)[0])      # the epoch's key split
    step = make_train_step(MODEL, LOSS, OPT)
    losses, accs = [], []
    for bx, by in ragged:
        state, m = step(state, bx, by)
        losses.append(float(m["loss"]))
        accs.append(float(m["accuracy"]))
    chex.assert_trees_all_close(ts.params, state.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(history["loss"][0], np.mean(losses), rtol=1e-5)
    np.testing.assert_allclose(history["accuracy"][0], np.mean(accs), rtol=1e-6)


def test_masked_loss_equals_the_loss_of_the_real_examples(data):
    x, y = data
    pred = x[:, :3] * 2.0
    mask = np.arange(N) < 17
    np.testing.assert_allclose(jax.jit(masked_loss(LOSS))(pred, (y, mask)), LOSS(pred[:17], y[:17]),
                               rtol=1e-6)
    assert masked_loss(LOSS) is masked_loss(LOSS)          # one compiled step per loss


def test_val_data_and_evaluate_over_batches_equal_the_arrays(data, reference):
    x, y = data
    batches = [(x[i:i + 7], y[i:i + 7]) for i in range(0, N, 7)]      # ragged last batch
    ts, history = train(data, val_data=batches)
    _, with_arrays = train(data, val_data=(x, y))
    for k in ("val_loss", "val_accuracy"):
        np.testing.assert_allclose(history[k], with_arrays[k], rtol=1e-6)
    got = fnn.train.evaluate(MODEL, ts.params, ts.model_state, LOSS, batches)
    want = fnn.train.evaluate(MODEL, ts.params, ts.model_state, LOSS, x, y)
    np.testing.assert_allclose([got["loss"], got["accuracy"]],
                               [want["loss"], want["accuracy"]], rtol=1e-6)


def test_a_one_device_mesh(data, reference):
    per_epoch = run_batches(*data)
    ts, history = train(lambda e: per_epoch[e], mesh=fnn.distributed.make_mesh())
    chex.assert_trees_all_close(ts.params, reference[0].params, rtol=1e-5, atol=1e-6)


def prefetch_threads():
    return [t for t in threading.enumerate() if t.name == "fnn-prefetch" and t.is_alive()]


def test_iterator_errors_name_the_step_and_stop_the_thread(data):
    batches = run_batches(*data, epochs=1)[0]

    def failing(epoch):
        yield from batches[:2]
        raise OSError("disk gone")

    with pytest.raises(RuntimeError, match=r"epoch 1 raised OSError at step 3: disk gone"):
        train(failing)
    assert not prefetch_threads()


def test_early_stop_and_interrupt_stop_the_thread(data):
    batches = run_batches(*data, epochs=1)[0]
    endless = lambda epoch: (batches[i % 5] for i in range(10**9))   # noqa: E731
    _, history = train(endless, steps_per_epoch=3, epochs=50, on_epoch_end=lambda e, logs: True)
    assert len(history["loss"]) == 1 and not prefetch_threads()

    def interrupt(epoch, logs):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(endless, steps_per_epoch=3, on_epoch_end=interrupt)
    assert not prefetch_threads()


def test_prefetch_runs_ahead_by_its_depth():
    drawn = []

    def source():
        for i in range(10):
            drawn.append(i)
            yield i

    feed = Prefetch(source(), lambda raw, i: raw * 10, depth=2)
    assert next(feed) == (0, None)
    for _ in range(100):          # the thread fills the queue: 2 waiting, 1 blocked in put
        if len(drawn) == 4:
            break
        threading.Event().wait(0.01)
    assert len(drawn) == 4
    feed.close()
    assert not prefetch_threads()


def steps(n):
    return lambda epoch: [(np.zeros((4, 5), np.float32), np.zeros(4, np.int32))] * n


def gen_batches(*batches):
    return lambda epoch: iter(batches)


def bad(train_data, **kw):
    return train(train_data, **dict(dict(batch_size=None), **kw))


X4, Y4 = np.zeros((4, 5), np.float32), np.zeros(4, np.int32)

BAD_INPUT = [
    ("one-shot", lambda: bad(iter([(X4, Y4)])), ValueError,
     "fit: train_data is a one-shot iterator .* cannot restart for epoch 2 of 2"),
    ("one array", lambda: bad(X4), TypeError,
     r"fit: train_data must be a pair \(x, y\), got ndarray of shape \(4, 5\)"),
    ("val one array", lambda: bad(steps(1), val_data=X4), TypeError,
     r"fit: val_data must be a pair \(x, y\) or None"),
    ("not iterable", lambda: bad(3), TypeError,
     "fit: train_data must be a pair .* got int"),
    ("callable returns junk", lambda: bad(lambda e: 3), TypeError,
     r"fit: train_data\(0\) must return an iterable of batches, got int"),
    ("empty", lambda: bad([]), ValueError, r"fit: train_data \(a re-iterable\) yielded no batch"),
    ("empty epoch 2", lambda: bad(lambda e: [(X4, Y4)] if e == 0 else []), ValueError,
     r"epoch 2 yielded no batch \(an iterator that ends early\?\)"),
    ("all ragged", lambda: bad(steps(2), batch_size=8), ValueError,
     r"epoch 1 yielded no batch of full size \(ragged='drop' dropped them\)"),
    ("wrong structure", lambda: bad(gen_batches((X4, Y4), {"x": X4, "y": Y4}), batch_size=4),
     TypeError, r"batch 2 must be a tuple \(x, y\) like the first batch, got dict"),
    ("first batch triple", lambda: bad([(X4, Y4, Y4)]), TypeError,
     r"first batch must be a tuple \(x, y\) or a dict of arrays, got tuple of length 3"),
    ("shape change", lambda: bad(gen_batches((X4, Y4), (np.zeros((4, 6), np.float32), Y4))),
     ValueError, r"batch 2: 'x' has shape \(4, 6\) float32, the first batch's has examples of "
                 r"shape \(5,\) float32"),
    ("dtype change", lambda: bad(gen_batches((X4, Y4), (X4, Y4.astype(np.int64)))),
     ValueError, r"'y' has shape \(4,\) int64"),
    ("non-array leaf", lambda: bad(gen_batches((X4, Y4), (X4, [0, 0, 0, 0])), batch_size=4),
     TypeError, r"batch 2\['y'\] must be an array .* got list"),
    ("x and y sizes", lambda: bad([(X4, Y4[:3])]), ValueError,
     r"different batch sizes \{'x': 4, 'y': 3\}"),
    ("too large", lambda: bad(gen_batches((X4, Y4)), batch_size=2), ValueError,
     r"has 4 examples, more than batch_size=2"),
    ("missing key", lambda: bad([{"x": X4, "label": Y4}]), ValueError,
     r"fit: train_data's first batch has no key 'y' \(the loss's target\); its keys are "
     r"\['label', 'x'\]"),
    ("keys change", lambda: bad(gen_batches({"x": X4, "y": Y4}, {"x": X4, "z": Y4})),
     ValueError, r"batch 2 has keys \['x', 'z'\], the first batch had \['x', 'y'\]"),
    ("short epoch", lambda: bad(steps(2), steps_per_epoch=3), ValueError,
     r"ended after 2 of steps_per_epoch=3 batches"),
    ("ragged error", lambda: bad(gen_batches((X4, Y4), (X4[:2], Y4[:2])), ragged="error"),
     ValueError, r"batch 2 has 2 examples, not batch_size=4 \(a ragged batch\)"),
    ("ragged value", lambda: bad(steps(1), ragged="fill"), ValueError,
     r"fit: ragged must be one of \['drop', 'pad', 'error'\], got 'fill'"),
    ("prefetch", lambda: bad(steps(1), prefetch=0), ValueError,
     "fit: prefetch must be a positive int"),
    ("steps_per_epoch", lambda: bad(steps(1), steps_per_epoch=-1), ValueError,
     "fit: steps_per_epoch must be a positive int"),
    ("input_key", lambda: bad(steps(1), input_key=0), TypeError,
     "fit: input_key must be a str"),
    ("target_key", lambda: bad(steps(1), target_key=1), TypeError,
     "fit: target_key must be a str or None"),
    ("loss key", lambda: bad([{"x": X4, "y": Y4, "w": Y4}], target_key=None,
                             loss=lambda pred, b: LOSS(pred, b["label"])), ValueError,
     r"fit: the loss reads the key 'label' of the batch, which has \['w', 'y'\] besides the "
     r"model's input 'x'"),
    ("nothing for the loss", lambda: bad([{"x": X4}], target_key=None), ValueError,
     r"holds only \['x'\]: nothing for the loss"),
    ("batch_size", lambda: bad(steps(1), batch_size=0), ValueError,
     "fit: batch_size must be a positive int"),
    ("steps_per_call", lambda: bad(steps(1), steps_per_call=2), ValueError,
     "fit: steps_per_call=2 needs"),
    ("check_finite pad", lambda: bad(steps(1), check_finite=True, ragged="pad"), ValueError,
     "fit: check_finite=True needs array targets"),
    ("accumulate dict", lambda: bad(steps(1), accumulate=2, target_key=None), ValueError,
     "fit: accumulate=2 needs array targets: not with ragged='pad' or target_key=None"),
    ("every_steps arrays", lambda: bad((X4, Y4), batch_size=2, rules=[
        fnn.train.checkpoint("/tmp/fnn-unused", every_steps=2)]), ValueError,
     r"fit: checkpoint\(every_steps=...\) saves mid-epoch positions of streamed"),
    ("every_steps value", lambda: fnn.train.checkpoint("/tmp/x", every_steps=0), ValueError,
     "checkpoint: every_steps must be a positive int"),
    ("state not JSON", lambda: encode_state(object()), ValueError,
     "the state of train_data's iterator .* must be JSON or bytes to be checkpointed, got "
     "object"),
    ("evaluate empty", lambda: fnn.train.evaluate(MODEL, {}, {}, LOSS, []), ValueError,
     "evaluate: data yielded no batch"),
]


@pytest.mark.parametrize("make, error, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()
    assert not prefetch_threads()
