"""Training: the jitted step, accumulation, fit, early stopping, resume, guards.

Models, losses and optimizers are module-level objects so that `fit`'s step
cache reuses one compiled program across tests (compiling dominates the cost).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import losses, optim, regularizers, train
from fnn.checkpoint import CheckpointManager
from fnn.layers import BatchNorm, Conv2D, Dense, Dropout, Flatten

CE = losses.softmax_cross_entropy
ADAM = optim.adam(1e-2)
SGD = optim.sgd(0.1)
# Dense + BatchNorm (model state) + Dropout (step keys): exercises everything a
# checkpoint must carry.
NET = fnn.serial(Dense(16), BatchNorm(), fnn.relu, Dropout(0.1), Dense(3))
MLP = fnn.models.mlp([16, 3])


def _blobs(n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n).astype(np.int32)
    centers = np.array([[0.0, 3.0], [3.0, 0.0], [-3.0, -3.0]], np.float32)
    x = (centers[y] + rng.normal(size=(n, 2))).astype(np.float32)
    return x, y


X, Y = _blobs()
TRAIN, VAL = (X[:200], Y[:200]), (X[200:], Y[200:])


def _leaves_equal(a, b) -> bool:
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    return len(la) == len(lb) and all(
        np.array_equal(np.asarray(u), np.asarray(v)) for u, v in zip(la, lb, strict=True))


# ---------------------------------------------------------------------------
# the step


def test_step_traces_once_across_a_whole_fit(key):
    traces = []

    def apply(params, state, x, *, key=None, train=False):
        if train:
            traces.append(x.shape)
        return MLP.apply(params, state, x, key=key, train=train)

    counted = fnn.Layer(MLP.init, apply, "Counted")
    # 203 examples, batch 16: a ragged tail every epoch, dropped, never retraced.
    x, y = _blobs(203, seed=1)
    _, history = train.fit(counted, ADAM, CE, (x, y), epochs=3, batch_size=16, key=key,
                           val_data=VAL, progress=False)
    assert traces == [(16, 2)]
    assert len(history["loss"]) == 3


def test_each_step_draws_its_dropout_key_by_folding_in_the_update_count(key):
    """The step's key is `fold_in(ts.key, step)`: new every step, `ts.key` untouched."""

    def apply(params, state, x, *, key=None, train=False):
        y, _ = MLP.apply(params, {}, x)
        return y, {"seen": key}                 # the key the model was given, as state

    spy = fnn.Layer(lambda k, shape: (MLP.init(k, shape)[0], {"seen": jnp.zeros(2, jnp.uint32)}),
                    apply, "Spy")
    ts = train.init_train_state(spy, SGD, key, (2,))
    step = train.make_train_step(spy, CE, SGD)
    run_key = np.asarray(ts.key)
    seen = []
    for n in range(3):
        ts, _ = step(ts, X[:8], Y[:8])
        np.testing.assert_array_equal(np.asarray(ts.key), run_key)
        seen.append(np.asarray(ts.model_state["seen"]))
        np.testing.assert_array_equal(seen[-1], np.asarray(jax.random.fold_in(run_key, n)))
    assert len({tuple(k) for k in seen}) == 3


def test_gradient_accumulation_equals_full_batch_gradient(key):
    model = fnn.serial(Conv2D(4, 3), fnn.relu, Flatten(), Dense(3))
    x = jax.random.normal(key, (8, 6, 6, 1))
    y = jnp.arange(8, dtype=jnp.int32) % 3
    sgd = optim.sgd(1.0)  # p_new = p - g: the update IS the gradient
    ts = train.init_train_state(model, sgd, key, (6, 6, 1))
    params = jax.tree.map(jnp.array, ts.params)

    def full_loss(p):
        return CE(model.apply(p, {}, x)[0], y)

    loss, grads = jax.jit(jax.value_and_grad(full_loss))(params)
    step = train.make_train_step(model, CE, sgd, accumulate=4)
    new, metrics = step(jax.tree.map(jnp.array, ts), x, y)
    np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
    accumulated = jax.tree.map(lambda p, q: p - q, params, new.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
                 accumulated, grads)
    with pytest.raises(ValueError, match="cannot be split into accumulate=3"):
        train.make_train_step(model, CE, sgd, accumulate=3)(ts, x, y)


def _copy(tree):
    return jax.tree.map(jnp.array, tree)  # a jitted step donates its train_state


def test_regularizer_changes_the_loss_by_exactly_the_penalty(key):
    penalty = lambda p: regularizers.l2(p, 0.01)
    ts = train.init_train_state(MLP, SGD, key, (2,))
    p0 = _copy(ts.params)
    x, y = jnp.asarray(X[:32]), jnp.asarray(Y[:32])
    plain, m0 = train.make_train_step(MLP, CE, SGD)(_copy(ts), x, y)
    reg, m1 = train.make_train_step(MLP, CE, SGD, penalty)(_copy(ts), x, y)
    assert float(m0["loss"]) == float(m1["loss"])  # "loss" is the data loss
    np.testing.assert_allclose(m1["objective"], m1["loss"] + penalty(p0), rtol=1e-6)
    # the update differs by exactly lr * d(penalty)/dp = lr * 2 * 0.01 * w (weights only)
    extra = jax.tree.map(lambda a, b: a - b, reg.params, plain.params)
    expect = jax.tree.map(lambda g: -0.1 * g, jax.grad(penalty)(p0))
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), extra, expect)
    assert float(jnp.abs(extra["0_Dense"]["b"]).max()) == 0.0  # biases not penalised

    # the optimizer state's lr_scale scales the learning rate: p - s * lr * g
    scaled = _copy(ts)._replace(opt_state=optim.set_lr_scale(_copy(ts).opt_state, 0.5))
    half, _ = train.make_train_step(MLP, CE, SGD)(scaled, x, y)
    jax.tree.map(lambda p, f, h: np.testing.assert_allclose(h - p, 0.5 * (f - p), atol=1e-6),
                 p0, plain.params, half.params)


# ---------------------------------------------------------------------------
# evaluation


def test_evaluate_pads_and_masks_so_every_example_counts_once(key):
    ts = train.init_train_state(MLP, ADAM, key, (2,))
    x, y = X[:10], Y[:10]
    logits = np.asarray(train.predict(MLP, ts.params, {}, x, batch_size=4))
    assert logits.shape == (10, 3)
    got = train.evaluate(MLP, ts.params, {}, CE, x, y, batch_size=4)
    np.testing.assert_allclose(got["loss"], CE(logits, y), rtol=1e-6)
    assert got["accuracy"] == pytest.approx(np.mean(np.argmax(logits, -1) == y))
    reg = train.evaluate(MLP, ts.params, {}, losses.mse, x, np.zeros((10, 3), np.float32), 4)
    assert set(reg) == {"loss"}  # no accuracy for a regression loss
    np.testing.assert_allclose(reg["loss"], np.mean(logits ** 2), rtol=1e-5)


# ---------------------------------------------------------------------------
# fit


def test_fit_learns_spiral(key):
    x, y = fnn.datasets.spiral(jax.random.key(1), num_per_class=100)
    model = fnn.models.mlp([64, 3])
    ts, history = train.fit(model, optim.adam(0.02), CE, (x, y), epochs=150,
                            batch_size=None, key=key, progress=False)
    assert history["accuracy"][-1] > 0.95
    assert train.evaluate(model, ts.params, ts.model_state, CE, x, y)["accuracy"] > 0.95


def test_fit_learns_blobs_and_records_history(key):
    ts, history = train.fit(NET, ADAM, CE, TRAIN, epochs=4, batch_size=16, key=key,
                            val_data=VAL, progress=False)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr"}
    assert all(len(v) == 4 and all(isinstance(f, float) for f in v) for v in history.values())
    assert history["val_accuracy"][-1] >= 0.95
    assert int(ts.epoch) == 4 and int(ts.step) == 4 * (200 // 16)


def test_fit_is_deterministic_and_accepts_raw_keys(seed):
    a = train.fit(NET, ADAM, CE, TRAIN, epochs=2, batch_size=16, key=jax.random.key(seed),
                  val_data=VAL, progress=False)
    b = train.fit(NET, ADAM, CE, TRAIN, epochs=2, batch_size=16,
                  key=jax.random.PRNGKey(seed), val_data=VAL, progress=False)
    assert _leaves_equal(a[0], b[0])
    assert a[1] == b[1]
    c = train.fit(NET, ADAM, CE, TRAIN, epochs=2, batch_size=16, key=jax.random.key(seed + 1),
                  val_data=VAL, progress=False)
    assert not _leaves_equal(a[0].params, c[0].params)


def test_early_stopping_stops_and_restores_the_best_params(key):
    # Validation labels are shifted: the better the model fits, the worse val_loss.
    bad_val = (TRAIN[0], (TRAIN[1] + 1) % 3)
    es = train.EarlyStopping(patience=2)
    ts, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=20, batch_size=16, key=key,
                            val_data=bad_val, early_stopping=es, progress=False)
    assert len(history["val_loss"]) == 3  # best at epoch 1, then 2 epochs without improvement
    assert int(np.argmin(history["val_loss"])) == 0
    best, _ = train.fit(MLP, ADAM, CE, TRAIN, epochs=1, batch_size=16, key=key,
                        val_data=bad_val, progress=False)
    assert _leaves_equal(ts.params, best.params)
    assert int(ts.epoch) == 3


def test_early_stopping_state_survives_a_resume(key, tmp_path):
    bad_val = (TRAIN[0], (TRAIN[1] + 1) % 3)
    kwargs = dict(batch_size=16, key=key, val_data=bad_val, progress=False,
                  early_stopping=train.EarlyStopping(patience=2))
    straight, h_straight = train.fit(MLP, ADAM, CE, TRAIN, epochs=20, **kwargs)
    train.fit(MLP, ADAM, CE, TRAIN, epochs=2, checkpoint_dir=tmp_path, **kwargs)
    resumed, h_resumed = train.fit(MLP, ADAM, CE, TRAIN, epochs=20, checkpoint_dir=tmp_path,
                                   **kwargs)
    assert h_resumed == h_straight and len(h_resumed["loss"]) == 3
    assert _leaves_equal(resumed, straight)
    assert CheckpointManager(tmp_path).load_metadata()["stopped"] is True


def test_early_stopping_needs_what_it_monitors(key):
    with pytest.raises(ValueError, match="monitors 'val_loss' but no val_data"):
        train.fit(MLP, ADAM, CE, TRAIN, epochs=1, batch_size=16, key=key,
                  early_stopping=train.EarlyStopping(), progress=False)


def test_reduce_on_plateau_is_a_pure_transform():
    rule = train.reduce_on_plateau(factor=0.5, patience=2)
    state, scales = rule.init(), []
    for metric in [1.0, 0.9, 0.95, 0.95, 0.95, 0.95, 0.5]:
        state = jax.jit(rule.update)(state, metric)
        scales.append(float(state.scale))
    assert scales == [1.0, 1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match=r"factor must be in \(0, 1\)"):
        train.reduce_on_plateau(factor=2.0)


def test_fit_with_reduce_lr_scales_the_learning_rate(key):
    rule = train.reduce_on_plateau(factor=0.5, patience=0, monitor="loss")  # cut every epoch
    _, history = train.fit(MLP, ADAM, CE, TRAIN, epochs=3, batch_size=16, key=key,
                           reduce_lr=rule, progress=False)
    assert history["lr_scale"] == [0.5, 0.25, 0.125]
    np.testing.assert_allclose(history["lr"], [1e-2, 5e-3, 2.5e-3], rtol=1e-6)


def test_resume_is_bit_identical_and_continues_the_key_stream(key, tmp_path):
    kwargs = dict(batch_size=16, key=key, val_data=VAL, progress=False)
    straight, h_straight = train.fit(NET, ADAM, CE, TRAIN, epochs=4, **kwargs)
    half, _ = train.fit(NET, ADAM, CE, TRAIN, epochs=2, checkpoint_dir=tmp_path, **kwargs)
    assert CheckpointManager(tmp_path).latest() == 2
    resumed, h_resumed = train.fit(NET, ADAM, CE, TRAIN, epochs=4, checkpoint_dir=tmp_path,
                                   **kwargs)
    assert _leaves_equal(straight, resumed)  # params, optimizer slots, BN stats, key, epoch
    assert h_straight == h_resumed
    # the key stream continued from epoch 2 instead of restarting
    assert not np.array_equal(np.asarray(half.key), np.asarray(resumed.key))
    assert np.array_equal(np.asarray(straight.key), np.asarray(resumed.key))
    meta = CheckpointManager(tmp_path).load_metadata()
    assert meta["epoch"] == 4 and meta["history"] == h_straight
    # a finished run resumes to itself without training
    again, h_again = train.fit(NET, ADAM, CE, TRAIN, epochs=4, checkpoint_dir=tmp_path, **kwargs)
    assert _leaves_equal(again, straight) and h_again == h_straight


def test_resume_refuses_a_different_batch_size(key, tmp_path):
    train.fit(MLP, ADAM, CE, TRAIN, epochs=1, batch_size=16, key=key,
              checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="written with batch_size=16, this call has batch_size=8"):
        train.fit(MLP, ADAM, CE, TRAIN, epochs=2, batch_size=8, key=key,
                  checkpoint_dir=tmp_path, progress=False)


def test_nan_guard_names_epoch_and_step_and_keeps_the_last_good_checkpoint(key, tmp_path):
    model = fnn.models.mlp([1])
    x = X.astype(np.float32)
    y = (x[:, :1] * 2.0).astype(np.float32)
    train.fit(model, optim.sgd(0.01), losses.mse, (x, y), epochs=1, batch_size=40, key=key,
              checkpoint_dir=tmp_path, progress=False)
    good = CheckpointManager(tmp_path).restore()
    # same optimizer structure, a learning rate that overflows at once
    with pytest.raises(FloatingPointError, match=r"epoch 2/3, step 2/6 .*\(epoch 1\) is the "
                                                  r"last good one"):
        train.fit(model, optim.sgd(1e30), losses.mse, (x, y), epochs=3, batch_size=40,
                  key=key, checkpoint_dir=tmp_path, progress=False)
    fresh = tmp_path / "fresh"   # failing in the first epoch: there is no good checkpoint
    with pytest.raises(FloatingPointError, match=r"epoch 1/3.* No checkpoint was saved in "):
        train.fit(model, optim.sgd(1e30), losses.mse, (x, y), epochs=3, batch_size=40,
                  key=key, checkpoint_dir=fresh, progress=False)
    assert CheckpointManager(fresh).all_steps() == []
    manager = CheckpointManager(tmp_path)
    assert manager.all_steps() == [1]
    assert _leaves_equal(manager.restore(), good)
    assert all(np.isfinite(np.asarray(p)).all()
               for p in jax.tree.leaves(manager.restore()["train_state"].opt_state.params))


def test_check_finite_reports_a_nan_input(key):
    x = X[:200].copy()
    x[7, 1] = np.nan
    with pytest.raises(ValueError, match=r"train_data x has non-finite values \(nan\).*index 7"):
        train.fit(MLP, ADAM, CE, (x, TRAIN[1]), epochs=1, batch_size=16, key=key,
                  check_finite=True, progress=False)
    # unchecked, relu hides the NaN from the loss but not from the weight gradient:
    # the end-of-epoch guard catches the non-finite params
    with pytest.raises(FloatingPointError, match=r"non-finite at epoch 1/1.*check_finite=True"):
        train.fit(MLP, ADAM, CE, (x, TRAIN[1]), epochs=1, batch_size=16, key=key,
                  progress=False)


def test_check_finite_names_the_gradient_leaf(key):
    # sqrt has an infinite derivative at 0: the loss is finite, the gradient is not
    def init(k, shape):
        return {"w": jnp.ones((shape[-1], 1))}, {}

    def apply(params, state, x, *, key=None, train=False):
        return jnp.sqrt(x @ params["w"]), state

    model = fnn.Layer(init, apply, "Sqrt")
    x = np.zeros((8, 2), np.float32)
    y = np.ones((8, 1), np.float32)
    with pytest.raises(FloatingPointError, match=r"non-finite gradients.*params\['w'\]"):
        train.fit(model, optim.sgd(0.1), losses.mse, (x, y), epochs=1, batch_size=8, key=key,
                  check_finite=True, progress=False)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"epochs": 0}, ValueError, "epochs must be a positive int"),
        ({"batch_size": 0}, ValueError, r"batch_size must be in \[1, 200\]"),
        ({"metrics": ("loss", "f1")}, ValueError, "unknown metric 'f1'"),
        ({"accumulate": 3}, ValueError, "positive divisor of the batch size 16"),
        ({"key": None}, ValueError, "a key is required"),
        ({"train_data": X}, TypeError, r"train_data must be a pair \(x, y\)"),
    ],
)
def test_fit_rejects_bad_arguments(key, kwargs, exc, match):
    args = dict(epochs=1, batch_size=16, key=key, progress=False, train_data=TRAIN)
    args.update(kwargs)
    data = args.pop("train_data")
    with pytest.raises(exc, match=match):
        train.fit(MLP, ADAM, CE, data, **args)
