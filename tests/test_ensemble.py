"""An ensemble trained with one vmapped step equals K separately trained models."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
import fnn.losses
from fnn import ensemble

K = 3
LOSS = fnn.losses.softmax_cross_entropy


def _data():
    x, y = fnn.datasets.spiral(jax.random.key(0), num_per_class=8, num_classes=3)
    return x, y


def _separate(model, optimizer, keys, x, y, steps, dropout_keys=None):
    """Reference: train each member alone with the same keys and batches."""

    @jax.jit
    def step(opt_state, model_state, key):
        def objective(p):
            pred, s = model.apply(p, model_state, x, key=key, train=True)
            return LOSS(pred, y), s

        (loss, s), g = jax.value_and_grad(objective, has_aux=True)(opt_state.params)
        return optimizer.update(opt_state, g)[0], s, loss

    out = []
    for i in range(len(keys)):
        params, state = model.init(keys[i], (2,))
        opt_state = optimizer.init(params)
        for t in range(steps):
            k = None if dropout_keys is None else jax.random.split(dropout_keys[t], len(keys))[i]
            opt_state, state, _ = step(opt_state, state, k)
        out.append(opt_state.params)
    return out


def test_init_ensemble_members_equal_single_inits():
    model = fnn.models.mlp([5, 3])
    keys = jax.random.split(jax.random.key(1), K)
    params, state = ensemble.init_ensemble(model, keys, (2,))
    assert ensemble.ensemble_size(params) == K
    for i in range(K):
        single, _ = model.init(keys[i], (2,))
        jax.tree.map(np.testing.assert_array_equal, ensemble.member(params, i), single)


def test_ensemble_training_equals_separate_training():
    model = fnn.models.mlp([6, 3], activation="tanh")
    optimizer = fnn.optim.adam(0.05)
    keys = jax.random.split(jax.random.key(2), K)
    x, y = _data()
    params, state = ensemble.init_ensemble(model, keys, (2,))
    opt_state = jax.vmap(optimizer.init)(params)
    step = ensemble.make_ensemble_step(model, LOSS, optimizer)
    for _ in range(4):
        opt_state, state, losses = step(opt_state, state, x, y)
    assert losses.shape == (K,)
    for i, ref in enumerate(_separate(model, optimizer, keys, x, y, 4)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                     ensemble.member(opt_state.params, i), ref)
    assert int(opt_state.step[0]) == 4


def test_ensemble_with_dropout_keys_equals_separate_training():
    model = fnn.serial(fnn.layers.Dense(6), fnn.relu, fnn.layers.Dropout(0.3),
                       fnn.layers.Dense(3))
    optimizer = fnn.optim.sgd(0.1)
    keys = jax.random.split(jax.random.key(3), K)
    dropout_keys = jax.random.split(jax.random.key(4), 2)
    x, y = _data()
    params, state = ensemble.init_ensemble(model, keys, (2,))
    opt_state = jax.vmap(optimizer.init)(params)
    step = ensemble.make_ensemble_step(model, LOSS, optimizer)
    for t in range(2):
        opt_state, state, _ = step(opt_state, state, x, y, dropout_keys[t])
    for i, ref in enumerate(_separate(model, optimizer, keys, x, y, 2, dropout_keys)):
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6),
                     ensemble.member(opt_state.params, i), ref)


def test_bagging_gives_each_member_its_batch_and_predict_mean():
    model = fnn.models.mlp([4, 3])
    optimizer = fnn.optim.sgd(0.5)
    keys = jax.random.split(jax.random.key(5), 2)
    x, y = _data()
    xs, ys = jnp.stack([x[:12], x[12:]]), jnp.stack([y[:12], y[12:]])
    params, state = ensemble.init_ensemble(model, keys, (2,))
    opt_state = jax.vmap(optimizer.init)(params)
    step = ensemble.make_ensemble_step(model, LOSS, optimizer, shared_data=False)
    opt_state, state, _ = step(opt_state, state, xs, ys)
    for i in range(2):
        p0, _ = model.init(keys[i], (2,))
        g = jax.grad(lambda p, i=i: LOSS(model.apply(p, {}, xs[i])[0], ys[i]))(p0)
        want = jax.tree.map(lambda p, g: p - 0.5 * g, p0, g)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                     ensemble.member(opt_state.params, i), want)
    mean = ensemble.predict_mean(model, opt_state.params, state, x, transform=fnn.softmax)
    each = [fnn.softmax(model.apply(ensemble.member(opt_state.params, i), {}, x)[0])
            for i in range(2)]
    np.testing.assert_allclose(mean, (each[0] + each[1]) / 2, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(jnp.sum(mean, axis=1), jnp.ones(x.shape[0]), rtol=1e-5)


def test_bad_keys_raise():
    with pytest.raises(ValueError, match="init_ensemble: keys must be a batch of K keys"):
        ensemble.init_ensemble(fnn.models.mlp([2]), jax.random.PRNGKey(0), (2,))


def test_member_out_of_range_is_an_error_not_the_last_member():
    tree = {"w": jnp.arange(3.0)}
    assert float(ensemble.member(tree, -1)["w"]) == 2.0
    with pytest.raises(ValueError, match=r"ensemble\.member: i must be an int in \[-3, 3\) .*got 5"):
        ensemble.member(tree, 5)
    picked = jax.jit(lambda i: ensemble.member(tree, i)["w"])(jnp.int32(1))
    assert float(picked) == 1.0


def test_bad_keys_and_step_arguments_are_named_errors():
    """Raw AttributeErrors (an int or a list of keys) or errors only at the first step
    (a loss given as a string; shared_data="no" meant shared data)."""
    model = fnn.models.mlp([2])
    with pytest.raises(TypeError, match="init_ensemble: keys must be a batch of K keys.* "
                                        "got a value of type list"):
        ensemble.init_ensemble(model, [jax.random.key(0)] * 2, (2,))
    with pytest.raises(TypeError, match="init_ensemble: keys .* got an array of dtype float32"):
        ensemble.init_ensemble(model, jnp.ones((3, 2)), (2,))
    with pytest.raises(ValueError, match=r"init_ensemble: keys .* got an array of shape \(0,\)"):
        ensemble.init_ensemble(model, jax.random.split(jax.random.key(0), 0), (2,))
    opt = fnn.optim.sgd(0.1)
    with pytest.raises(TypeError, match="make_ensemble_step: loss must be a function"):
        ensemble.make_ensemble_step(model, "mse", opt)
    with pytest.raises(TypeError, match="make_ensemble_step: shared_data must be True or False"):
        ensemble.make_ensemble_step(model, LOSS, opt, shared_data="no")
    with pytest.raises(TypeError, match="make_ensemble_step: regularizer must be a function"):
        ensemble.make_ensemble_step(model, LOSS, opt, regularizer=0.1)


def test_unstacked_or_mismatched_trees_name_the_step_and_predict():
    """These were raw `vmap got inconsistent sizes` errors."""
    model = fnn.serial(fnn.layers.Dense(4), fnn.layers.BatchNorm())  # 4 features, K = 3
    params, state = ensemble.init_ensemble(model, jax.random.split(jax.random.key(0), K), (2,))
    opt = fnn.optim.sgd(0.1)
    opt_state = jax.vmap(opt.init)(params)
    x, y = jnp.ones((5, 2)), jnp.zeros((5, 4))
    step = ensemble.make_ensemble_step(model, fnn.losses.mse, opt, jit=False)
    with pytest.raises(ValueError, match=r"ensemble step: every leaf of opt_state \(made by "
                                         r"jax\.vmap\(optimizer\.init\)\(params\)\) needs a "
                                         "leading member axis K"):
        step(opt.init(ensemble.member(params, 0)), state, x, y)
    with pytest.raises(ValueError, match="ensemble step: every leaf of model_state .* K=3"):
        step(opt_state, ensemble.member(state, 0), x, y)
    with pytest.raises(TypeError, match="ensemble step: key must be a PRNG key"):
        step(opt_state, state, x, y, key=3)
    bagged = ensemble.make_ensemble_step(model, fnn.losses.mse, opt, shared_data=False,
                                         jit=False)
    with pytest.raises(ValueError, match=r"ensemble step: every leaf of x \(with "
                                         r"shared_data=False, x is \(K, N, \.\.\.\)\) .* K=3"):
        bagged(opt_state, state, x, y)
    with pytest.raises(ValueError, match="predict_all: every leaf of params"):
        ensemble.predict_all(model, ensemble.member(params, 0), state, x)
    with pytest.raises(ValueError, match="predict_mean: every leaf of state .* K=3"):
        ensemble.predict_mean(model, params, ensemble.member(state, 0), x)
    with pytest.raises(TypeError, match="predict_mean: transform must be a function"):
        ensemble.predict_mean(model, params, state, x, transform="softmax")
    with pytest.raises(TypeError, match="predict_all: model must be a fnn.Layer"):
        ensemble.predict_all(3, params, state, x)
