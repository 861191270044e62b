"""Hyperparameters held in the optimizer state (fnn.optim.hyperparams): the updates stay
bit-identical to fnn 0.1's constants, `set_hyperparams` equals building the optimizer with
the new values, and a learning-rate sweep compiles the step once."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_optim import make_problem

from fnn import checkpoint, optim
from fnn.optim import schedules


def problem(seed=26, n_steps=5):
    """test_optim's problem (params (2, 3) and (3,), random grads) with this file's seed:
    the bit patterns below were recorded on it."""
    return make_problem(seed, n_steps)


def run(opt, params, grads, state=None, update=None):
    update = update or jax.jit(opt.update)
    state = opt.init(params) if state is None else state
    for g in grads:
        state, new = update(state, g)
    return state, new


# ---------------------------------------------------------------------------
# bit-identical to the constants compiled in: float32 bits of b then w after 5 jitted
# updates, computed with fnn before the hyperparameters moved into the state (commit
# e060d91, /tmp/fnn_base)

BITS_BEFORE = {
    "sgd": "be253c12 be9c40fb 3fe2eee3 bfde4fd0 c0540eb6 3f7fbce2 3f68c662 3fc70b30 be55c884",
    "momentum": "be8ac912 bda48ec7 402851a4 bfa744bd c0742ac3 3f43cbb0 3b5e7c43 3fd26059 3e5b5e22",
    "nesterov": "beadefef bdebbce7 403a2490 bf971606 c080f66d 3f25f72f befd0405 3feb38d7 3ebdc7b0",
    "adagrad": "bd930eef be9330f2 3fb1ea32 bff6244c c0433ddb 3f92d65b 3fc445c8 3fab13ca bed49a58",
    "adadelta": "bd987e0b be95e981 3fb05224 bff61c60 c0423241 3f938b66 3fc64de1 3faaf00b bed8b1db",
    "rmsprop": "bd7e59b6 be80c638 3fcb0cd0 bff3bba0 c05598ef 3f8a751d 3fa24680 3fb3303f be9247b5",
    "adam": "bd95ffec be9457c8 3fafaee6 bff6576b c0417456 3f939d84 3fc77744 3faa3f0d beda97bf",
    "adamw": "bd95fe03 be9455e0 3fafaca7 bff65443 c04171dd 3f939ba0 3fc774b5 3faa3ce0 beda94ee",
    "adam_b1_zero": "bd9c4d55 be963d63 3fb30754 bff57d70 c0441995 3f92a5c5 3fc215a5 3facc17b "
                    "bed19669",
    "adam_schedule": "bd91dd56 be8e650a 3fb21d45 bff6c228 c042a567 3f92cd3d 3fc5167f 3fa9a4d3 "
                     "bed4bc67",
}
BEFORE_CASES = {
    "sgd": lambda: optim.sgd(0.1), "momentum": lambda: optim.momentum(0.1),
    "nesterov": lambda: optim.momentum(0.1, nesterov=True), "adagrad": optim.adagrad,
    "adadelta": optim.adadelta, "rmsprop": optim.rmsprop, "adam": optim.adam,
    "adamw": optim.adamw, "adam_b1_zero": lambda: optim.adam(0.01, b1=0.0),
    "adam_schedule": lambda: optim.adam(schedules.cosine_decay(0.01, 4)),
}


@pytest.mark.parametrize("name", BEFORE_CASES)
def test_defaults_are_bit_identical_to_constants_compiled_in(name):
    params, grads = problem()
    _, new = run(BEFORE_CASES[name](), params, grads)
    bits = np.concatenate([np.asarray(new[k]).ravel() for k in ("b", "w")]).view(np.uint32)
    assert " ".join(f"{b:08x}" for b in bits) == BITS_BEFORE[name]


# ---------------------------------------------------------------------------
# set_hyperparams(state, x=v) is the optimizer built with x=v, bit for bit

SET_CASES = [  # (constructor, built with, then set to)
    ("sgd", dict(learning_rate=0.1, weight_decay=0.1), dict(learning_rate=0.03, weight_decay=0.2)),
    ("momentum", dict(learning_rate=0.1), dict(beta=0.5, learning_rate=0.2)),
    ("adagrad", dict(), dict(eps=1e-3)),
    ("adadelta", dict(), dict(rho=0.5, eps=1e-4)),
    ("rmsprop", dict(momentum=0.9, centered=True), dict(decay=0.9, momentum=0.3)),
    ("adam", dict(), dict(learning_rate=0.05, b1=0.8, b2=0.99, eps=1e-6)),
    ("adam", dict(b1=0.0, weight_decay=0.1), dict(b1=0.5, weight_decay=0.01)),
    ("adamw", dict(amsgrad=True), dict(weight_decay=0.3, b2=0.9)),
    ("adamw", dict(mask={"w": True, "b": False}), dict(weight_decay=0.3)),
    ("nadam", dict(), dict(momentum_decay=0.01, b1=0.8)),
    ("radam", dict(), dict(b2=0.9)),
    ("adamax", dict(), dict(b1=0.5, learning_rate=0.01)),
    ("lion", dict(weight_decay=0.1), dict(b1=0.5, b2=0.9, weight_decay=0.3)),
]


@pytest.mark.parametrize("name,built,values", SET_CASES,
                         ids=[f"{c[0]}-{'-'.join(c[2])}" for c in SET_CASES])
def test_set_hyperparams_equals_building_with_the_values(name, built, values):
    params, grads = problem()
    opt = getattr(optim, name)(**built)
    state = optim.set_hyperparams(opt.init(params), **values)
    got_state, got = run(opt, params, grads, state=state)
    want_state, want = run(getattr(optim, name)(**{**built, **values}), params, grads)
    chex.assert_trees_all_equal(got, want)
    chex.assert_trees_all_equal(got_state.hyper, want_state.hyper)
    for k, v in values.items():
        assert float(optim.hyperparams(got_state)[k]) == np.float32(v)


def test_a_learning_rate_sweep_compiles_once():
    opt = optim.adam(1e-3)
    params, grads = problem()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, g):
        return opt.update(state, g)[0]

    finals = {}
    for lr in np.geomspace(1e-4, 1e-1, 8):
        state = optim.set_hyperparams(opt.init(params), learning_rate=lr)
        for g in grads:
            state = step(state, g)
        finals[lr] = state.params
        _, want = run(optim.adam(float(lr)), params, grads)
        chex.assert_trees_all_equal(state.params, want)
    assert len({float(p["b"][0]) for p in finals.values()}) == 8


def test_changing_a_hyperparameter_mid_run_reuses_the_step():
    opt = optim.momentum(0.1, beta=0.9)
    params, grads = problem()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, g):
        return opt.update(state, g)

    state = opt.init(params)
    for t, g in enumerate(grads):
        if t == 2:   # a learning-rate drop and a momentum change after two updates
            state = optim.set_hyperparams(state, learning_rate=0.01, beta=0.5)
        state, _ = step(state, g)
    p = {k: np.float64(v) for k, v in params.items()}
    v = {k: 0.0 for k in p}
    for t, g in enumerate(grads):   # float64 reference
        lr, beta = (0.1, 0.9) if t < 2 else (0.01, 0.5)
        for k in p:
            v[k] = beta * v[k] + g[k]
            p[k] = p[k] - lr * v[k]
    chex.assert_trees_all_close(state.params, p, rtol=1e-6, atol=1e-7)
    assert int(state.step) == len(grads) and float(optim.current_lr(state)) == np.float32(0.01)


def test_set_hyperparams_under_jit_and_scan():
    """A traced value passes unchecked; its derived terms (1 − b1, log b1) are computed in
    float32 inside the step."""
    opt = optim.adam(0.01)
    params, grads = problem()
    stacked = jax.tree.map(lambda *g: jnp.stack(g), *grads)

    @jax.jit
    def sweep(b1):
        state = optim.set_hyperparams(opt.init(params), b1=b1)
        return jax.lax.scan(opt.update, state, stacked)[0].params

    got = jax.vmap(sweep)(jnp.array([0.5, 0.8]))
    for i, b1 in enumerate((0.5, 0.8)):
        _, want = run(optim.adam(0.01, b1=b1), params, grads)
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], got), want, rtol=1e-6)


def test_hyperparams_through_wrappers():
    params, grads = problem()
    mask = {"w": True, "b": False}
    for wrap in (lambda o: optim.masked(o, mask), lambda o: optim.clip_by_global_norm(o, 1e9),
                 lambda o: optim.ema(o, 0.5), lambda o: optim.ema(optim.masked(o, mask), 0.5)):
        opt = wrap(optim.adamw(0.05))
        state = optim.set_hyperparams(opt.init(params), learning_rate=0.01, weight_decay=0.2)
        assert {"learning_rate", "b1", "b2", "eps", "weight_decay"} == set(
            optim.hyperparams(state))
        _, got = run(opt, params, grads, state=state)
        _, want = run(wrap(optim.adamw(0.01, weight_decay=0.2)), params, grads)
        chex.assert_trees_all_equal(got, want)


def test_hyperparams_of_a_partition_are_per_group():
    params, grads = problem()
    labels = {"w": "body", "b": "head"}
    opt = optim.partition({"body": optim.sgd(0.1), "head": optim.adam(0.1)}, labels)
    state = optim.set_hyperparams(opt.init(params), body={"learning_rate": 0.02},
                                  head={"b1": 0.5})
    assert float(optim.hyperparams(state)["body"]["learning_rate"]) == np.float32(0.02)
    assert float(optim.hyperparams(state)["head"]["b1"]) == 0.5
    _, got = run(opt, params, grads, state=state)
    _, want = run(optim.partition({"body": optim.sgd(0.02), "head": optim.adam(0.1, b1=0.5)},
                                  labels), params, grads)
    chex.assert_trees_all_equal(got, want)


def test_the_hyper_field():
    state = optim.adam(0.01, b1=0.0).init({"w": jnp.ones(2)})
    assert set(state.hyper) == {"learning_rate", "b1", "b2", "eps", "one_minus_b1",
                                "one_minus_b2", "log_b1", "log_b2"}
    assert all(v.dtype == jnp.float32 and v.shape == () for v in state.hyper.values())
    assert float(state.hyper["log_b1"]) == -np.inf    # b1 = 0: b1^t = 0 exactly
    # derived on the host in float64, rounded once: 1 − 0.999 is not float32 1 − float32(0.999)
    assert state.hyper["one_minus_b2"] == np.float32(1 - 0.999)
    assert state.hyper["one_minus_b2"] != 1 - np.float32(0.999)
    assert set(optim.hyperparams(state)) == {"learning_rate", "b1", "b2", "eps"}
    assert "learning_rate" not in optim.adam(schedules.constant(0.1)).init({}).hyper
    assert "weight_decay" not in optim.sgd(0.1).init({}).hyper           # built without it
    assert "momentum" not in optim.rmsprop().init({}).hyper
    with jax.enable_x64(True):
        state = optim.adam(0.1).init({"w": jnp.ones(2, jnp.float64)})
        assert state.hyper["learning_rate"].dtype == jnp.float64
        state = optim.set_hyperparams(state, learning_rate=0.2)
        assert state.hyper["learning_rate"].dtype == jnp.float64
        assert float(state.hyper["learning_rate"]) == 0.2


@pytest.mark.parametrize("opt", [
    optim.ema(optim.adamw(0.01, amsgrad=True), 0.9),
    optim.ema(optim.masked(optim.adamw(0.01), {"w": True, "b": False}), 0.9),  # None slots
    optim.partition({"a": optim.nadam(), "b": optim.rmsprop(momentum=0.5)}, {"w": "a", "b": "b"}),
], ids=["ema_amsgrad", "ema_masked", "partition"])
def test_a_state_with_its_hyperparameters_survives_a_checkpoint(tmp_path, opt):
    params, grads = problem()
    state, _ = run(opt, params, grads[:2])
    checkpoint.save(tmp_path / "state", state)
    loaded = checkpoint.load(tmp_path / "state", like=opt.init(params))
    assert type(loaded) is type(state)
    chex.assert_trees_all_equal(loaded, state)
    a, _ = run(opt, params, grads[2:], state=state)
    b, _ = run(opt, params, grads[2:], state=loaded)
    chex.assert_trees_all_equal(a, b)


@pytest.mark.parametrize("call,error,message", [
    (lambda s: optim.set_hyperparams(s, lr=0.1), ValueError,
     r"^set_hyperparams: the state has no hyperparameter 'lr'; it has \['b1', 'b2', 'eps', "
     r"'learning_rate'\]"),
    (lambda s: optim.set_hyperparams(s, one_minus_b1=0.1), ValueError,
     r"^set_hyperparams: the state has no hyperparameter 'one_minus_b1'"),
    (lambda s: optim.set_hyperparams(s, b1=1.0), ValueError,
     r"^set_hyperparams: b1 must be in \[0\.0, 1\.0\), got 1\.0"),
    (lambda s: optim.set_hyperparams(s, learning_rate=-0.1), ValueError,
     r"^set_hyperparams: learning_rate must be >= 0\.0, got -0\.1"),
    (lambda s: optim.set_hyperparams(s, eps="small"), TypeError,
     r"^set_hyperparams: eps must be a number, got 'small'"),
    (lambda s: optim.set_hyperparams({"b1": 0.9}, b1=0.5), TypeError,
     r"^set_hyperparams: expected the state of a fnn\.optim optimizer .*got dict"),
    (lambda s: jax.jit(lambda s, v: optim.set_hyperparams(s, b1=v))(s, jnp.ones(2)), ValueError,
     r"^set_hyperparams: b1 must be a scalar, got shape \(2,\)"),
    (lambda s: optim.hyperparams(None), TypeError,
     r"^hyperparams: expected the state of a fnn\.optim optimizer .*got NoneType"),
])
def test_bad_hyperparameters(call, error, message):
    state = optim.adam(0.1).init({"w": jnp.ones(2)})
    with pytest.raises(error, match=message):
        call(state)


def test_hyperparameters_fixed_when_built():
    with pytest.raises(ValueError, match=r"set_hyperparams: the state has no hyperparameter "
                                         r"'learning_rate'.*given as a schedule is not one"):
        optim.set_hyperparams(optim.sgd(schedules.constant(0.1)).init({}), learning_rate=0.2)
    with pytest.raises(ValueError, match=r"'weight_decay'.*built as 0\.0"):
        optim.set_hyperparams(optim.adam().init({}), weight_decay=0.1)
    opt = optim.partition({"a": optim.sgd(0.1)}, {"w": "a"})
    state = opt.init({"w": jnp.ones(2)})
    with pytest.raises(ValueError, match=r"^set_hyperparams: the partition has no group 'b'; "
                                         r"its groups are \['a'\]"):
        optim.set_hyperparams(state, b={"learning_rate": 0.1})
    with pytest.raises(TypeError, match=r"^set_hyperparams: a partition's hyperparameters are "
                                        r"set per group, as a dict"):
        optim.set_hyperparams(state, a=0.1)


def test_copy_hyperparams_resumes_with_the_optimizer_given_now():
    """A checkpointed state continued with the hyperparameters of the optimizer passed now
    (what `fit` does on resume); step, slots, params and scale stay the checkpoint's."""
    params, grads = problem()
    old = optim.partition({"a": optim.ema(optim.adamw(0.1, amsgrad=True), 0.9),
                           "b": optim.momentum(0.1)}, {"w": "a", "b": "b"})
    new = optim.partition({"a": optim.ema(optim.adamw(0.003, amsgrad=True), 0.9),
                           "b": optim.momentum(0.02, beta=0.5)}, {"w": "a", "b": "b"})
    saved, _ = run(old, params, grads[:2])
    saved = optim.set_lr_scale(saved, 0.5)
    state = optim.copy_hyperparams(saved, new.init(params))
    for label in ("a", "b"):   # derived terms included: exactly a fresh init's
        chex.assert_trees_all_equal(state.groups[label].hyper,
                                    new.init(params).groups[label].hyper)
    chex.assert_trees_all_equal(jax.tree.map(lambda x: x, state._replace(groups=None)),
                                saved._replace(groups=None))
    chex.assert_trees_all_equal(state.groups["a"].v_max, saved.groups["a"].v_max)
    _, got = jax.jit(new.update)(state, grads[2])
    v = 0.5 * saved.groups["b"].v["b"] + grads[2]["b"]   # momentum with the new β and rate
    np.testing.assert_allclose(got["b"], saved.params["b"] - 0.5 * 0.02 * v, rtol=1e-6)
    with pytest.raises(ValueError, match=r"^copy_hyperparams: source must be a state of the same "
                                         r"optimizer as state; its hyperparameters are "
                                         r"\['learning_rate'\], the state's \['b1'"):
        optim.copy_hyperparams(optim.adam().init({}), optim.sgd(0.1).init({}))
