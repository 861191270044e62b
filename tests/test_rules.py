"""Rules (`fnn.train.rules`): one `(init, update)` protocol for everything that acts
between steps or epochs, checkpointed with the train state.

References: independent recomputations of what a rule must have seen (the history,
the gradient norms from `jax.grad` outside the step), an optimizer built with the
scaled learning rate, and an uninterrupted run (for resumes, bit for bit).
"""
import os
import signal
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import losses, optim, train
from fnn.checkpoint import CheckpointManager

CE = losses.softmax_cross_entropy
MLP = fnn.models.mlp([8, 3])
ADAM = optim.adam(1e-2)
HERE = os.path.dirname(os.path.abspath(__file__))


def _blobs(n=96, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    centers = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]], np.float32)
    return (centers[y] + rng.normal(size=(n, 2))).astype(np.float32), y


X, Y = _blobs()
TRAIN, VAL = (X[:64], Y[:64]), (X[64:], Y[64:])


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(np.asarray(u).tobytes() == np.asarray(v).tobytes()
                                      for u, v in zip(la, lb, strict=True))


def _recorder(stop_at=None):
    """An epoch rule whose state counts epochs and sums the val_loss it saw; it adds
    "seen" to the record and stops after epoch `stop_at`."""
    seen = []

    def init(ts):
        return {"epochs": np.asarray(0, np.int32), "val_sum": np.asarray(0.0)}

    def update(state, ts, info):
        seen.append(info)
        state = {"epochs": np.asarray(int(state["epochs"]) + 1, np.int32),
                 "val_sum": np.asarray(float(state["val_sum"]) + info.logs["val_loss"])}
        info = info._replace(logs=dict(info.logs, seen=float(state["val_sum"])),
                             stop=info.stop or info.epoch == stop_at)
        return state, ts, info

    return train.Rule(init, update, name="recorder", monitor="val_loss"), seen


def test_an_epoch_rule_sees_each_epoch_adds_to_the_history_and_stops(key):
    rule, seen = _recorder(stop_at=3)
    ts, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=10, batch_size=16, key=key,
                            val_data=VAL, rules=[rule], progress=False)
    assert [i.epoch for i in seen] == [1, 2, 3] and all(i.epochs == 10 for i in seen)
    assert len(history["loss"]) == 3 and int(ts.epoch) == 3
    # the rule saw each epoch's record, and the history before it
    assert [i.logs["val_loss"] for i in seen] == history["val_loss"]
    assert [len(i.history.get("loss", [])) for i in seen] == [0, 1, 2]
    np.testing.assert_allclose(history["seen"], np.cumsum(history["val_loss"]), rtol=1e-12)


def test_an_epoch_rule_state_survives_a_resume(key, tmp_path):
    kw = dict(batch_size=16, key=key, val_data=VAL, progress=False)
    straight, h_straight = train.fit(MLP, ADAM, CE, TRAIN, epochs=4, rules=[_recorder()[0]], **kw)
    train.fit(MLP, ADAM, CE, TRAIN, epochs=2, rules=[_recorder()[0]], checkpoint_dir=tmp_path,
              **kw)
    rule, seen = _recorder()
    resumed, h_resumed = train.fit(MLP, ADAM, CE, TRAIN, epochs=4, rules=[rule],
                                   checkpoint_dir=tmp_path, **kw)
    assert [i.epoch for i in seen] == [3, 4]          # only the epochs still to run
    assert h_resumed == h_straight and _leaves_equal(resumed, straight)
    state = CheckpointManager(tmp_path).restore()["recorder"]
    assert int(state["epochs"]) == 4
    assert float(state["val_sum"]) == h_straight["seen"][-1]


def _grad_norm_sum():
    """A per-step rule: its state sums the global gradient norm of every step."""
    def update(state, ts, info):
        norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(info.grads)))
        return state + norm, ts, info._replace(metrics=dict(info.metrics, grad_norm=norm))

    return train.Rule(lambda ts: jnp.zeros((), jnp.float32), update, every="step",
                      name="grad_norm_sum")


def test_a_step_rule_runs_inside_the_step_on_the_gradients(key):
    rule = _grad_norm_sum()
    ts = train.init_train_state(MLP, optim.sgd(0.1), key, (2,), rules=[rule])
    step = train.make_train_step(MLP, CE, optim.sgd(0.1), rules=[rule])
    params, norms = jax.tree.map(jnp.array, ts.params), []
    for i in range(3):
        x, y = jnp.asarray(X[16 * i:16 * (i + 1)]), jnp.asarray(Y[16 * i:16 * (i + 1)])
        g = jax.grad(lambda p, x=x, y=y: CE(MLP.apply(p, {}, x)[0], y))(params)  # reference
        norms.append(np.sqrt(sum(np.sum(np.asarray(v, np.float64) ** 2)
                                 for v in jax.tree.leaves(g))))
        params = jax.tree.map(lambda p, d: p - 0.1 * d, params, g)
        ts, metrics = step(ts, x, y)
        np.testing.assert_allclose(float(metrics["grad_norm"]), norms[-1], rtol=1e-5)
        assert not bool(metrics["stop"])
    np.testing.assert_allclose(float(ts.rules[0]), sum(norms), rtol=1e-5)


def test_fit_carries_step_rule_states_in_the_train_state(key):
    ts, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=2, batch_size=16, key=key,
                            rules=[_grad_norm_sum()], progress=False)
    assert len(ts.rules) == 1 and float(ts.rules[0]) > 0
    assert "grad_norm" not in history   # step metrics of rules stay in the step's metrics


def test_a_step_rule_that_stops_ends_training_with_its_epoch(key):
    """A per-step rule asks to stop at its 6th step (epoch 2 of 4 steps): the epoch
    runs to its end, so epochs stay whole, and training stops there."""
    def update(count, ts, info):
        return count + 1, ts, info._replace(stop=info.stop | (count + 1 >= 6))

    rule = train.Rule(lambda ts: jnp.zeros((), jnp.int32), update, every="step", name="stop6")
    ts, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=10, batch_size=16, key=key,
                            rules=[rule], progress=False)
    assert len(history["loss"]) == 2 and int(ts.step) == 8 and int(ts.rules[0]) == 8


def test_plateau_scale_is_the_optimizer_learning_rate_times_the_scale(key):
    """Scaling the rate inside the optimizer: the step with `set_lr_scale(state, s)`
    is the step of an optimizer built with `lr · s` (bit for bit for a power of two)."""
    x, y = jnp.asarray(X[:16]), jnp.asarray(Y[:16])
    for scale, exact in ((0.25, True), (0.3, False)):
        for build in (optim.adam, optim.sgd, optim.rmsprop):
            ts = train.init_train_state(MLP, build(1e-2), key, (2,))
            scaled = ts._replace(opt_state=optim.set_lr_scale(ts.opt_state, scale))
            got, _ = train.make_train_step(MLP, CE, build(1e-2), jit=False)(scaled, x, y)
            ref_state = train.init_train_state(MLP, build(1e-2 * scale), key, (2,))
            want, _ = train.make_train_step(MLP, CE, build(1e-2 * scale), jit=False)(
                ref_state, x, y)
            if exact:
                assert _leaves_equal(got.params, want.params), (build, scale)
            else:
                jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
                             got.params, want.params)
            np.testing.assert_allclose(float(got.opt_state.lr), 1e-2 * scale, rtol=1e-6)


def test_fit_with_a_plateau_equals_a_schedule_with_the_same_rates(key):
    """`reduce_lr` halving every epoch = `step_decay` halving every epoch's steps."""
    steps = 64 // 16
    kw = dict(epochs=3, batch_size=16, key=key, progress=False)
    plateau = train.reduce_on_plateau(factor=0.5, patience=0, monitor="loss")
    ts_p, h_p = train.fit(MLP, optim.adam(1e-2), CE, TRAIN, reduce_lr=plateau, **kw)
    schedule = optim.schedules.step_decay(1e-2, 0.5, steps)
    ts_s, h_s = train.fit(MLP, optim.adam(schedule), CE, TRAIN, **kw)
    assert _leaves_equal(ts_p.params, ts_s.params)
    assert h_p["loss"] == h_s["loss"] and h_p["lr"] == h_s["lr"]
    assert h_p["lr_scale"] == [0.5, 0.25, 0.125]


def test_rule_lists_are_checked(key, tmp_path):
    kw = dict(epochs=1, batch_size=16, key=key, progress=False)
    rule, _ = _recorder()
    with pytest.raises(ValueError, match=r"^fit: two rules are named 'recorder'"):
        train.fit(MLP, ADAM, CE, TRAIN, val_data=VAL, rules=[rule, rule], **kw)
    with pytest.raises(ValueError, match=r"^fit: rule 'recorder' keeps a state but comes "
                                         r"after the rule 'checkpoint'"):
        train.fit(MLP, ADAM, CE, TRAIN, val_data=VAL, rules=[train.checkpoint(tmp_path), rule],
                  **kw)
    with pytest.raises(TypeError, match=r"^fit: rules must be fnn\.train\.Rule values"):
        train.fit(MLP, ADAM, CE, TRAIN, rules=[print], **kw)
    with pytest.raises(TypeError, match=r"^fit: rules must be a list of rules, got Rule"):
        train.fit(MLP, ADAM, CE, TRAIN, rules=rule, **kw)
    with pytest.raises(ValueError, match=r"^make_train_step: rule 'recorder' acts every epoch"):
        train.make_train_step(MLP, CE, ADAM, rules=[rule])
    with pytest.raises(TypeError, match=r"^fit\(\) got an unexpected keyword argument 'epoch'"):
        train.fit(MLP, ADAM, CE, TRAIN, epoch=3, **kw)
    ts = train.init_train_state(MLP, ADAM, key, (2,))
    with pytest.raises(ValueError, match=r"step runs 1 per-step rule\(s\) but the train state "
                                         r"holds 0"):
        train.make_train_step(MLP, CE, ADAM, rules=[_grad_norm_sum()])(ts, X[:4], Y[:4])


def test_options_and_keyword_shorthands_are_the_same_run(key):
    kw = dict(epochs=1, batch_size=16, key=key, progress=False)
    a = train.fit(MLP, ADAM, CE, TRAIN, options=train.FitOptions(accumulate=2), **kw)
    b = train.fit(MLP, ADAM, CE, TRAIN, accumulate=2, **kw)
    assert _leaves_equal(a, b)
    with pytest.raises(ValueError, match=r"^fit: accumulate must be a positive int, got 0\.$"):
        train.fit(MLP, ADAM, CE, TRAIN, options=train.FitOptions(accumulate=0), **kw)


def test_a_callback_rule_can_stop_training(key):
    calls = []
    rule = train.callback(lambda epoch, logs: calls.append((epoch, sorted(logs))) or epoch == 2)
    _, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=5, batch_size=16, key=key,
                           rules=[rule], progress=False)
    assert [e for e, _ in calls] == [1, 2] and len(history["loss"]) == 2
    assert calls[0][1] == ["accuracy", "loss", "lr", "time"]


def test_write_history_rule_writes_the_history_each_epoch(key, tmp_path):
    import json

    path = tmp_path / "history.json"
    _, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=2, batch_size=16, key=key,
                           rules=[train.write_history(path)], progress=False)
    assert json.loads(path.read_text()) == history


def test_accuracy_metric_and_declarations():
    rng = np.random.default_rng(3)
    scores = rng.normal(size=(20, 4)).astype(np.float32)
    ids = rng.integers(0, 4, 20)
    want = np.mean(scores.argmax(1) == ids)
    assert float(fnn.metrics.accuracy(scores, ids)) == pytest.approx(want)
    assert float(fnn.metrics.accuracy(scores, np.eye(4)[ids])) == pytest.approx(want)
    with pytest.raises(ValueError, match=r"^accuracy: expected scores \(N, C\)"):
        fnn.metrics.accuracy(scores[:, 0], ids)

    @fnn.metrics.declare_accuracy(fnn.metrics.binary(0.0, 0.5))
    def my_logistic(logits, y):
        return losses.sigmoid_binary_cross_entropy(logits, y)

    params, state = fnn.layers.Dense(2).init(jax.random.key(0), (3,))
    x = rng.normal(size=(20, 3)).astype(np.float32)
    y = rng.integers(0, 2, (20, 2)).astype(np.float32)
    pred = np.asarray(fnn.layers.Dense(2).apply(params, state, x)[0])
    got = train.evaluate(fnn.layers.Dense(2), params, state, my_logistic, x, y)
    assert got["accuracy"] == pytest.approx(np.mean((pred > 0) == (y > 0.5)))


def test_a_run_written_by_fnn_0_1_resumes(tmp_path):
    """The 0.1 fixture (`tests/data/fnn_0_1/run`, early stopping and a plateau that halved
    the rate after epoch 2) resumed to 3 epochs: its 2 saved epochs as saved, the 3rd as
    0.1 trained it up to float rounding (0.1 shortened the update, fnn scales the rate)."""
    import json
    import shutil

    fixtures = os.path.join(HERE, "data", "fnn_0_1")
    expected = json.loads(open(os.path.join(fixtures, "expected.json")).read())["run_3_epochs"]
    shutil.copytree(os.path.join(fixtures, "run"), tmp_path / "run")
    rng = np.random.default_rng(0)                       # the fixture's data (run_data)
    x = rng.normal(size=(96, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=96).astype(np.int32)
    ts, history = train.fit(
        fnn.models.mlp([8, 3]), optim.adam(1e-2), CE, (x[:64], y[:64]), epochs=3,
        batch_size=16, key=jax.random.key(0), val_data=(x[64:], y[64:]),
        early_stopping=train.EarlyStopping(patience=3),
        reduce_lr=train.reduce_on_plateau(factor=0.5, patience=1),
        checkpoint_dir=tmp_path / "run", progress=False)
    want = expected["history"]
    assert set(history) == set(want)
    for k in want:
        assert history[k][:2] == want[k][:2], k
        np.testing.assert_allclose(history[k][2], want[k][2], rtol=1e-5, err_msg=k)
    assert int(ts.epoch) == 3 and float(ts.opt_state.lr_scale) == 0.25


# ---------------------------------------------------------------------------
# a user's own rule survives SIGKILL and a resume (the README's example)

WORKER = textwrap.dedent('''
    import sys

    import jax
    import jax.numpy as jnp
    import numpy as np

    import fnn

    sys.path.insert(0, sys.argv[3])
    import _crash_harness


    def halve_lr_on_grad_spike(factor=3.0, decay=0.9):
        """Halve the learning rate when the gradient norm exceeds `factor` times its
        running mean (a per-step rule: it runs inside the compiled step)."""
        def init(train_state):
            return {"mean": jnp.zeros((), jnp.float32), "spikes": jnp.zeros((), jnp.int32)}

        def update(state, train_state, info):
            norm = jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(info.grads)))
            spike = (state["mean"] > 0) & (norm > factor * state["mean"])
            opt = train_state.opt_state
            scale = jnp.where(spike, opt.lr_scale * 0.5, opt.lr_scale)
            train_state = train_state._replace(opt_state=fnn.optim.set_lr_scale(opt, scale))
            mean = jnp.where(state["mean"] > 0, decay * state["mean"] + (1 - decay) * norm, norm)
            return {"mean": mean, "spikes": state["spikes"] + spike}, train_state, info

        return fnn.train.Rule(init, update, every="step", name="halve_lr_on_grad_spike")


    folder, crash_at = sys.argv[1], int(sys.argv[2])
    if crash_at:
        _crash_harness.install("step", crash_at, 0.5)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 4)).astype(np.float32)
    x[::9] *= 30.0                                   # outliers: the gradient norm spikes
    y = (x[:, 0] > 0).astype(np.int32)
    fnn.train.fit(fnn.models.mlp([16, 2]), fnn.optim.sgd(0.05),
                  fnn.losses.softmax_cross_entropy, (x, y), epochs=4, batch_size=8,
                  key=jax.random.key(1), rules=[halve_lr_on_grad_spike()],
                  checkpoint_dir=folder, progress=False)
''')


def _run_worker(folder, crash_at):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    return subprocess.run([sys.executable, "-c", WORKER, str(folder), str(crash_at), HERE],
                          capture_output=True, text=True, env=env, timeout=300)


def test_a_user_step_rule_survives_sigkill_and_resume_bit_for_bit(tmp_path):
    straight, crashed = tmp_path / "straight", tmp_path / "crashed"
    assert _run_worker(straight, 0).returncode == 0
    proc = _run_worker(crashed, 16 + 5)          # mid-epoch 2 (16 steps per epoch)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert CheckpointManager(crashed).latest() == 1
    proc = _run_worker(crashed, 0)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = CheckpointManager(straight), CheckpointManager(crashed)
    assert a.all_steps() == b.all_steps() == [2, 3, 4]
    for step in (2, 3, 4):
        assert _leaves_equal(a.restore(step), b.restore(step)), step
        assert a.load_metadata(step)["history"] == b.load_metadata(step)["history"]
    final = a.restore()["train_state"]
    assert int(final.rules[0]["spikes"]) > 0         # the rule did act
    assert float(final.opt_state.lr_scale) < 1.0
    lr = a.load_metadata()["history"]["lr"]
    assert lr[-1] < 0.05


def test_fit_validates_with_the_ema_params_of_an_ema_optimizer():
    # issue 26: with fnn.optim.ema(...), val_loss is the loss of the moving average
    # (fnn.optim.ema_params), not of the raw params; the average is in the checkpointed state
    x, y = fnn.datasets.spiral(jax.random.key(0), num_per_class=20, num_classes=3)
    model = fnn.models.mlp([16, 3])
    opt = fnn.optim.ema(fnn.optim.sgd(0.5), decay=0.5)
    loss = fnn.losses.softmax_cross_entropy
    ts, history = fnn.train.fit(model, opt, loss, (x, y), epochs=2, batch_size=20,
                                key=jax.random.key(1), val_data=(x, y), progress=False)
    averaged = fnn.train.evaluate(model, fnn.optim.ema_params(ts.opt_state), ts.model_state,
                                  loss, x, y)
    raw = fnn.train.evaluate(model, ts.params, ts.model_state, loss, x, y)
    assert history["val_loss"][-1] == pytest.approx(averaged["loss"], rel=1e-6)
    assert abs(raw["loss"] - averaged["loss"]) > 1e-4   # the two differ: the test can fail
