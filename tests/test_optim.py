"""Tests for fnn.optim: update rules against float64 numpy references, wrappers,
transformations (jit, vmap, chex variants), convergence, and error messages."""
import _catalog
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn import optim
from fnn.optim import schedules

# ---------------------------------------------------------------------------
# an independent float64 reference, written from the equations in API.md §3

DEFAULTS = {  # PyTorch's defaults, restated here so the constructors' defaults are tested
    "sgd": {},
    "momentum": dict(beta=0.9, nesterov=False),
    "adagrad": dict(learning_rate=0.01, eps=1e-10, initial_accumulator=0.0),
    "adadelta": dict(learning_rate=1.0, rho=0.9, eps=1e-6),
    "rmsprop": dict(learning_rate=0.01, decay=0.99, eps=1e-8),
    "adam": dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8),
    "adamw": dict(learning_rate=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.01),
    "lion": dict(learning_rate=1e-4, b1=0.9, b2=0.99, weight_decay=0.0),  # Lion's paper, optax
}


def np_leaf_step(name, hp, t, p, g, s):
    """One update of one leaf in float64; `s` is a dict of slots, updated in place."""
    lr = hp["learning_rate"]
    if name == "sgd":
        return p - lr * g
    if name == "momentum":
        s["v"] = hp["beta"] * s.get("v", 0.0) + g
        return p - lr * (g + hp["beta"] * s["v"] if hp["nesterov"] else s["v"])
    if name == "adagrad":
        s["s"] = s.get("s", hp["initial_accumulator"]) + g**2
        return p - lr * g / (np.sqrt(s["s"]) + hp["eps"])
    if name == "adadelta":
        rho, eps = hp["rho"], hp["eps"]
        s["s"] = rho * s.get("s", 0.0) + (1 - rho) * g**2
        d = np.sqrt(s.get("u", 0.0) + eps) / np.sqrt(s["s"] + eps) * g
        s["u"] = rho * s.get("u", 0.0) + (1 - rho) * d**2
        return p - lr * d
    if name == "rmsprop":
        s["s"] = hp["decay"] * s.get("s", 0.0) + (1 - hp["decay"]) * g**2
        return p - lr * g / (np.sqrt(s["s"]) + hp["eps"])
    if name in ("adam", "adamw"):
        b1, b2 = hp["b1"], hp["b2"]
        s["m"] = b1 * s.get("m", 0.0) + (1 - b1) * g
        s["v"] = b2 * s.get("v", 0.0) + (1 - b2) * g**2
        m_hat, v_hat = s["m"] / (1 - b1**t), s["v"] / (1 - b2**t)
        step = m_hat / (np.sqrt(v_hat) + hp["eps"]) + hp.get("weight_decay", 0.0) * p
        return p - lr * step
    if name == "lion":   # not in torch.optim: its rule (API.md 6.3) in float64
        b1, b2, m = hp["b1"], hp["b2"], s.get("m", 0.0)
        s["m"] = b2 * m + (1 - b2) * g
        return p - lr * (np.sign(b1 * m + (1 - b1) * g) + hp["weight_decay"] * p)
    raise AssertionError(name)


def np_reference(name, hp, params, grads_seq):
    """Params after each update, float64."""
    hp = {**DEFAULTS[name], **hp}
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    slots = {k: {} for k in p}
    out = []
    for t, grads in enumerate(grads_seq, start=1):
        p = {k: np_leaf_step(name, hp, t, p[k], np.asarray(grads[k], np.float64), slots[k])
             for k in p}
        out.append(p)
    return out


CASES = [  # (id, constructor name, kwargs): default and non-default hyperparameters
    ("sgd", "sgd", dict(learning_rate=0.1)),
    ("sgd_lr", "sgd", dict(learning_rate=0.35)),
    ("momentum", "momentum", dict(learning_rate=0.1)),
    ("momentum_beta", "momentum", dict(learning_rate=0.05, beta=0.5)),
    ("nesterov", "momentum", dict(learning_rate=0.05, beta=0.8, nesterov=True)),
    ("adagrad", "adagrad", {}),
    ("adagrad_custom", "adagrad", dict(learning_rate=0.1, eps=1e-3, initial_accumulator=0.1)),
    ("adadelta", "adadelta", {}),
    ("adadelta_custom", "adadelta", dict(learning_rate=0.5, rho=0.5, eps=1e-3)),
    ("rmsprop", "rmsprop", {}),
    ("rmsprop_custom", "rmsprop", dict(learning_rate=0.05, decay=0.9, eps=1e-3)),
    ("adam", "adam", {}),
    ("adam_custom", "adam", dict(learning_rate=0.05, b1=0.5, b2=0.9, eps=1e-3)),
    ("adamw", "adamw", {}),
    ("adamw_custom", "adamw", dict(learning_rate=0.05, b1=0.5, b2=0.9, eps=1e-3,
                                   weight_decay=0.1)),
    ("lion", "lion", {}),
    ("lion_custom", "lion", dict(learning_rate=0.05, b1=0.5, b2=0.9, weight_decay=0.1)),
]
N_STEPS = 4


def make_problem(seed=0, n_steps=N_STEPS):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(2, 3)).astype(np.float32),
              "b": rng.normal(size=(3,)).astype(np.float32)}
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
             for _ in range(n_steps)]
    return params, grads


def run_updates(opt, params, grads_seq, update=None):
    update = update or jax.jit(opt.update)
    state = opt.init(jax.tree.map(jnp.asarray, params))
    history = []
    for grads in grads_seq:
        state, new_params = update(state, jax.tree.map(jnp.asarray, grads))
        history.append(new_params)
    return state, history


def assert_matches_reference(history, reference):
    for got, want in zip(history, reference, strict=True):
        for k in want:
            np.testing.assert_allclose(np.asarray(got[k]), want[k], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case_id,name,hp", CASES, ids=[c[0] for c in CASES])
def test_update_rule_matches_float64_reference(case_id, name, hp):
    params, grads = make_problem()
    state, history = run_updates(getattr(optim, name)(**hp), params, grads)
    assert_matches_reference(history, np_reference(name, hp, params, grads))
    assert int(state.step) == N_STEPS
    assert state.step.dtype == jnp.int32 and state.lr.dtype == jnp.float32
    lr = {**DEFAULTS[name], **hp}["learning_rate"]
    np.testing.assert_allclose(float(optim.current_lr(state)), lr, rtol=1e-7)


def test_update_returns_new_state_params_object():
    opt = optim.adam()
    params, grads = make_problem()
    state, new_params = opt.update(opt.init(params), grads[0])
    assert new_params is state.params


def test_adam_first_step_closed_form():
    lr, eps = 0.01, 1e-8
    params, grads = make_problem()
    _, (p1,) = run_updates(optim.adam(lr, eps=eps), params, grads[:1])
    for k in params:
        g = grads[0][k]
        want = params[k] - lr * g / (np.abs(g) + eps)
        np.testing.assert_allclose(np.asarray(p1[k]), want, rtol=1e-6)
        np.testing.assert_allclose(np.asarray(p1[k]), params[k] - lr * np.sign(g), atol=1e-6)


@pytest.mark.parametrize("nesterov,want", [(False, [0.9, 0.71]), (True, [0.81, 0.539])])
def test_momentum_two_steps_by_hand(nesterov, want):
    # p = 1, g = 1 each step, lr = 0.1, beta = 0.9:
    # heavy ball: v = 1, p = 0.9; v = 1.9, p = 0.71
    # nesterov:   p = 1 - 0.1*(1 + 0.9) = 0.81; p = 0.81 - 0.1*(1 + 0.9*1.9) = 0.539
    opt = optim.momentum(0.1, beta=0.9, nesterov=nesterov)
    _, history = run_updates(opt, {"p": np.float32(1.0)}, [{"p": np.float32(1.0)}] * 2)
    np.testing.assert_allclose([float(h["p"]) for h in history], want, rtol=1e-6)


def test_adamw_without_decay_equals_adam():
    params, grads = make_problem()
    _, a = run_updates(optim.adam(0.05), params, grads)
    _, w = run_updates(optim.adamw(0.05, weight_decay=0.0), params, grads)
    chex.assert_trees_all_close(a, w, rtol=1e-7)


def test_state_is_a_checkpointable_pytree():
    opt = optim.clip_by_global_norm(optim.adamw(), 1.0)
    params, grads = make_problem()
    state, _ = run_updates(opt, params, grads[:2])
    assert type(state).__name__ == "AdamState" and state._fields == (
        "step", "lr", "lr_scale", "hyper", "params", "m", "v", "v_max")
    assert state.v_max is None  # amsgrad is off: no slot
    assert set(state.hyper) >= {"learning_rate", "b1", "b2", "eps", "weight_decay"}
    leaves, treedef = jax.tree.flatten(state)
    assert all(isinstance(x, jax.Array) for x in leaves)
    restored = jax.tree.unflatten(treedef, [np.asarray(x) for x in leaves])
    s1, _ = jax.jit(opt.update)(state, grads[2])
    s2, _ = jax.jit(opt.update)(jax.tree.map(jnp.asarray, restored), grads[2])
    chex.assert_trees_all_equal(s1, s2)
    chex.assert_trees_all_equal_shapes(jax.tree.map(jnp.zeros_like, state), state)


def test_params_keep_their_dtype():
    opt = optim.adam(0.1)
    params = {"a": jnp.ones(3, jnp.bfloat16), "b": 1.0}
    state = opt.init(params)
    assert state.params["b"].dtype == jnp.float32 and not state.params["b"].weak_type
    state, new = jax.jit(opt.update)(state, {"a": jnp.ones(3), "b": jnp.float32(1.0)})
    assert new["a"].dtype == jnp.bfloat16 and state.m["a"].dtype == jnp.bfloat16


# ---------------------------------------------------------------------------
# learning-rate schedules inside optimizers


def test_schedule_is_evaluated_at_the_step_before_the_update():
    schedule = lambda step: 0.1 / (step + 1.0)
    opt = optim.sgd(schedule)
    state = opt.init({"p": jnp.zeros(())})
    assert float(optim.current_lr(state)) == pytest.approx(0.1)
    update = jax.jit(opt.update)
    state, p = update(state, {"p": jnp.ones(())})
    assert float(optim.current_lr(state)) == pytest.approx(0.1)
    assert float(p["p"]) == pytest.approx(-0.1)
    state, p = update(state, {"p": jnp.ones(())})
    assert float(optim.current_lr(state)) == pytest.approx(0.05)
    assert float(p["p"]) == pytest.approx(-0.15)


def test_schedule_with_adam_matches_reference_step_by_step():
    schedule = schedules.step_decay(0.1, 0.5, 2)  # 0.1, 0.1, 0.05, 0.05
    params, grads = make_problem()
    state, history = run_updates(optim.adam(schedule), params, grads)
    # Adam's step u_t does not depend on lr or p, so p_t = p_{t-1} - lr_t * u_t where
    # u_t is read off a unit-learning-rate reference run.
    unit = np_reference("adam", dict(learning_rate=1.0), params, grads)
    prev = {k: np.asarray(v, np.float64) for k, v in params.items()}
    p = dict(prev)
    for t in range(N_STEPS):
        lr_t = 0.1 * 0.5 ** (t // 2)
        p = {k: p[k] - lr_t * (prev[k] - unit[t][k]) for k in p}
        prev = unit[t]
        for k in p:
            np.testing.assert_allclose(np.asarray(history[t][k]), p[k], rtol=1e-6)
    assert float(optim.current_lr(state)) == pytest.approx(0.05)


# ---------------------------------------------------------------------------
# wrappers


def test_clip_by_global_norm_scales_exactly():
    opt = optim.clip_by_global_norm(optim.sgd(1.0), max_norm=1.0)
    params = {"w": jnp.zeros(2), "b": jnp.zeros(1)}
    grads = {"w": jnp.array([3.0, 0.0]), "b": jnp.array([4.0])}  # global norm 5
    state, new = jax.jit(opt.update)(opt.init(params), grads)
    np.testing.assert_allclose(new["w"], [-0.6, 0.0], rtol=1e-7)
    np.testing.assert_allclose(new["b"], [-0.8], rtol=1e-7)
    assert type(state).__name__ == "SGDState" and float(optim.current_lr(state)) == 1.0


@pytest.mark.parametrize("scale", [0.0, 0.1, 0.2])  # norms 0, 0.5, 1.0 (= max_norm)
def test_clip_by_global_norm_leaves_small_gradients_alone(scale):
    opt = optim.clip_by_global_norm(optim.sgd(1.0), max_norm=1.0)
    grads = {"w": jnp.array([3.0, 0.0]) * scale, "b": jnp.array([4.0]) * scale}
    _, new = jax.jit(opt.update)(opt.init(jax.tree.map(jnp.zeros_like, grads)), grads)
    chex.assert_trees_all_close(new, jax.tree.map(jnp.negative, grads), rtol=1e-7)
    chex.assert_tree_all_finite(new)


def test_clip_by_value():
    opt = optim.clip_by_value(optim.sgd(1.0), limit=1.0)
    grads = {"w": jnp.array([-3.0, 0.5, 2.0])}
    state, new = jax.jit(opt.update)(opt.init({"w": jnp.zeros(3)}), grads)
    np.testing.assert_array_equal(new["w"], [1.0, -0.5, -1.0])
    assert float(optim.current_lr(state)) == 1.0


def test_clip_then_adam_equals_adam_on_clipped_gradients():
    params, grads = make_problem()
    clipped = []
    for g in grads:
        n = np.sqrt(sum(np.sum(np.float64(x) ** 2) for x in g.values()))
        clipped.append({k: v * min(1.0, 0.5 / n) for k, v in g.items()})
    _, history = run_updates(optim.clip_by_global_norm(optim.adam(0.1), 0.5), params, grads)
    assert_matches_reference(history, np_reference("adam", dict(learning_rate=0.1), params,
                                                   clipped))


MASK = {"w": True, "b": False}


@pytest.mark.parametrize("factory", [
    lambda: optim.adam(0.1), lambda: optim.momentum(0.1, nesterov=True),
    lambda: optim.adamw(0.1, weight_decay=0.5),
], ids=["adam", "nesterov", "adamw"])
def test_masked_freezes_leaves_bit_for_bit(factory):
    params, grads = make_problem()
    state, history = run_updates(optim.masked(factory(), MASK), params, grads)
    _, plain = run_updates(factory(), params, grads)
    for got, want in zip(history, plain, strict=True):
        np.testing.assert_array_equal(np.asarray(got["b"]), params["b"])
        # a few float32 ulps: XLA may fuse Adam's shared bias correction differently
        # when the frozen leaf's update is dropped
        np.testing.assert_allclose(np.asarray(got["w"]), np.asarray(want["w"]), rtol=1e-6)
    for field in ("m", "v"):  # the frozen leaf has no slots at all
        if hasattr(state, field):
            assert getattr(state, field)["b"] is None and getattr(state, field)["w"] is not None
    assert int(state.step) == N_STEPS


def test_masked_clipping_counts_only_trainable_leaves():
    opt = optim.masked(optim.clip_by_global_norm(optim.sgd(1.0), 1.0), MASK)
    grads = {"w": jnp.full((2, 3), 0.1), "b": jnp.full((3,), 100.0)}
    _, new = jax.jit(opt.update)(opt.init(jax.tree.map(jnp.zeros_like, grads)), grads)
    np.testing.assert_allclose(new["w"], -0.1, rtol=1e-7)  # norm 0.245 < 1: unclipped
    np.testing.assert_array_equal(new["b"], 0.0)


def test_current_lr_on_nested_wrappers():
    opt = optim.masked(optim.clip_by_value(optim.clip_by_global_norm(
        optim.rmsprop(schedules.constant(0.25)), 1.0), 0.5), MASK)
    params, grads = make_problem()
    state, _ = run_updates(opt, params, grads[:2])
    assert float(optim.current_lr(state)) == 0.25


# ---------------------------------------------------------------------------
# transformations: chex variants (jit / no jit), vmap over an ensemble


class OptimizerVariantsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.named_parameters(*[(c[0], c[1], c[2]) for c in CASES[1::3]])
    def test_three_steps_match_reference(self, name, hp):
        params, grads = make_problem(seed=1, n_steps=3)
        opt = getattr(optim, name)(**hp)
        _, history = run_updates(opt, params, grads, update=self.variant(opt.update))
        assert_matches_reference(history, np_reference(name, hp, params, grads))

    @chex.variants(with_jit=True, without_jit=True)
    def test_wrapped_update(self):
        opt = optim.masked(optim.clip_by_global_norm(optim.adamw(0.1), 1.0), MASK)
        params, grads = make_problem(seed=2, n_steps=2)
        state, history = run_updates(opt, params, grads, update=self.variant(opt.update))
        np.testing.assert_array_equal(np.asarray(history[-1]["b"]), params["b"])
        chex.assert_tree_all_finite(state)


VMAP_FACTORIES = {
    "sgd_schedule": lambda: optim.sgd(schedules.exponential_decay(0.1, 0.5, 2)),
    "nesterov": lambda: optim.momentum(0.1, nesterov=True),
    "adadelta": lambda: optim.adadelta(),
    "adamw": lambda: optim.adamw(0.05),
    "clip_adam": lambda: optim.clip_by_global_norm(optim.adam(0.1), 1.0),
    "masked_adam": lambda: optim.masked(optim.adam(0.1), MASK),
    "nadam": lambda: optim.nadam(0.05),
    "rmsprop_centered_momentum": lambda: optim.rmsprop(0.01, momentum=0.5, centered=True),
    "ema_lion": lambda: optim.ema(optim.lion(0.01, weight_decay=0.1), 0.9),
}


@pytest.mark.parametrize("name", VMAP_FACTORIES)
def test_vmap_over_an_ensemble_equals_a_loop(name):
    opt = VMAP_FACTORIES[name]()
    problems = [make_problem(seed=s, n_steps=3) for s in range(3)]
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    state = jax.vmap(opt.init)(stack([p for p, _ in problems]))
    update = jax.jit(jax.vmap(opt.update))
    for t in range(3):
        state, batched = update(state, stack([g[t] for _, g in problems]))
    assert state.step.shape == (3,)
    single = jax.jit(opt.update)
    for i, (params, grads) in enumerate(problems):
        _, history = run_updates(opt, params, grads, update=single)
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], batched), history[-1],
                                    rtol=1e-6, atol=1e-7)


def test_vmap_over_learning_rates():
    # a traced learning rate cannot be validated, but it works (hyperparameter sweeps)
    def first_step(lr):
        opt = optim.adam(lr)
        return opt.update(opt.init({"p": jnp.ones(2)}), {"p": jnp.ones(2)})[1]["p"]

    out = jax.vmap(first_step)(jnp.array([0.1, 0.2]))
    np.testing.assert_allclose(out, [[0.9, 0.9], [0.8, 0.8]], rtol=1e-6)


def test_grads_with_other_container_types():
    opt = optim.sgd(0.1)
    state = opt.init({"a": [jnp.ones(1), jnp.ones(1)]})
    with pytest.raises(ValueError, match=r"sgd.update: .*the container types differ"):
        opt.update(state, {"a": (jnp.ones(1), jnp.ones(1))})


def test_update_traces_once_under_jit():
    opt = optim.adam(schedules.cosine_decay(0.1, 10))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(state, grads):
        return opt.update(state, grads)

    params, grads = make_problem()
    state = opt.init(params)
    for g in grads:
        state, _ = step(state, g)


# ---------------------------------------------------------------------------
# convergence: every optimizer x (ill-conditioned quadratic, Rosenbrock)


def quadratic(p):  # curvatures 1 and 20, minimum at (1, -2)
    return 0.5 * ((p["x"] - 1.0) ** 2 + 20.0 * (p["y"] + 2.0) ** 2)


def rosenbrock(p):  # minimum at (1, 1); Hessian eigenvalues there ~0.4 and ~1002
    return (1.0 - p["x"]) ** 2 + 100.0 * (p["y"] - p["x"] ** 2) ** 2


OBJECTIVES = {"quadratic": (quadratic, (1.0, -2.0), 1e-3),
              "rosenbrock": (rosenbrock, (1.0, 1.0), 1e-2)}
CONVERGENCE = {  # learning rates picked per optimizer; 10_000 steps from (0, 0)
    "sgd": lambda: optim.sgd(1.5e-3),  # < 2/1002, the stability limit on Rosenbrock
    "momentum": lambda: optim.momentum(1e-3),
    "nesterov": lambda: optim.momentum(1e-3, nesterov=True),
    "adagrad": lambda: optim.adagrad(0.1),
    "adadelta": lambda: optim.adadelta(0.03),
    "rmsprop": lambda: optim.rmsprop(1e-3),
    "adam": lambda: optim.adam(1e-2),
    "adamw": lambda: optim.adamw(1e-2),
    "adam_amsgrad": lambda: optim.adam(1e-2, amsgrad=True),
    "nadam": lambda: optim.nadam(1e-2),
    "radam": lambda: optim.radam(1e-2),
    "adamax": lambda: optim.adamax(1e-2),
    "rmsprop_centered": lambda: optim.rmsprop(1e-3, momentum=0.5, centered=True),
    "lion": lambda: optim.lion(schedules.cosine_decay(3e-3, 10_000)),  # ±lr steps: anneal
}


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("name", CONVERGENCE)
def test_converges(name, objective):
    f, minimum, tol = OBJECTIVES[objective]
    opt = CONVERGENCE[name]()

    @jax.jit
    def train():
        state = opt.init({"x": jnp.float32(0.0), "y": jnp.float32(0.0)})
        body = lambda i, s: opt.update(s, jax.grad(f)(s.params))[0]
        return jax.lax.fori_loop(0, 10_000, body, state).params

    p = train()
    np.testing.assert_allclose([float(p["x"]), float(p["y"])], minimum, atol=tol)


# ---------------------------------------------------------------------------
# bad input: every message names the function and the value given

CONSTRUCTORS = list(_catalog.CONSTRUCTORS)  # the suite's one list of optimizers


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_negative_learning_rate(name):
    with pytest.raises(ValueError, match=rf"^{name}: learning_rate must be >= 0.*got -0\.5"):
        getattr(optim, name)(-0.5)


@pytest.mark.parametrize("name", CONSTRUCTORS)
def test_nan_learning_rate(name):
    with pytest.raises(ValueError, match=rf"^{name}: learning_rate must be finite, got nan"):
        getattr(optim, name)(float("nan"))


@pytest.mark.parametrize("bad", ["0.1", True, None, [0.1]])
def test_learning_rate_of_wrong_type(bad):
    with pytest.raises(TypeError, match=r"^adam: learning_rate must be a number or a schedule"):
        optim.adam(bad)


@pytest.mark.parametrize("name", ["adagrad", "adadelta", "rmsprop", "adam", "adamw", "nadam",
                                  "radam", "adamax"])
@pytest.mark.parametrize("eps", [0.0, -1e-8])
def test_eps_must_be_positive(name, eps):
    with pytest.raises(ValueError, match=rf"^{name}: eps must be > 0.*got {eps}"):
        getattr(optim, name)(eps=eps)


@pytest.mark.parametrize("name,kwargs,message", [
    ("adam", dict(b1=1.0), r"adam: b1 must be in \[0.0, 1.0\), got 1.0"),
    ("adam", dict(b2=1.5), r"adam: b2 must be in \[0.0, 1.0\), got 1.5"),
    ("adamw", dict(b1=-0.1), r"adamw: b1 must be in \[0.0, 1.0\), got -0.1"),
    ("adamw", dict(weight_decay=-0.01), r"adamw: weight_decay must be >= 0.0, got -0.01"),
    ("momentum", dict(learning_rate=0.1, beta=1.0), r"momentum: beta must be in .*got 1.0"),
    ("rmsprop", dict(decay=1.0), r"rmsprop: decay must be in \[0.0, 1.0\), got 1.0"),
    ("adadelta", dict(rho=2.0), r"adadelta: rho must be in \[0.0, 1.0\), got 2.0"),
    ("adagrad", dict(initial_accumulator=-1.0),
     r"adagrad: initial_accumulator must be >= 0.0, got -1.0"),
])
def test_hyperparameter_out_of_range(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(optim, name)(**kwargs)


def test_nesterov_must_be_bool():
    with pytest.raises(TypeError, match=r"momentum: nesterov must be a bool, got 'yes'"):
        optim.momentum(0.1, nesterov="yes")


@pytest.mark.parametrize("jit", [False, True])
def test_grads_with_different_keys(jit):
    opt = optim.adam()
    state = opt.init({"w": jnp.ones(2), "b": jnp.ones(())})
    update = jax.jit(opt.update) if jit else opt.update
    with pytest.raises(ValueError, match=r"adam.update: grads must have the same pytree "
                                         r"structure as params.*\['bias'\].*\['b'\]"):
        update(state, {"w": jnp.ones(2), "bias": jnp.ones(())})


def test_grads_with_a_missing_leaf():
    opt = optim.clip_by_global_norm(optim.sgd(0.1), 1.0)
    state = opt.init({"w": jnp.ones(2), "b": jnp.ones(())})
    with pytest.raises(ValueError, match=r"clip_by_global_norm\(sgd\).update: grads must have "
                                         r"the same pytree structure.*"
                                         r"grads lacks \['b'\], which params has"):
        opt.update(state, {"w": jnp.ones(2)})


@pytest.mark.parametrize("jit", [False, True])
def test_grads_with_a_different_leaf_shape(jit):
    opt = optim.momentum(0.1)
    state = opt.init({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    update = jax.jit(opt.update) if jit else opt.update
    with pytest.raises(ValueError, match=r"momentum.update: grads leaf \['w'\] has shape "
                                         r"\(3, 2\) but the parameter has shape \(2, 3\)"):
        update(state, {"w": jnp.ones((3, 2)), "b": jnp.ones(3)})


def test_schedule_returning_a_vector():
    opt = optim.sgd(lambda step: jnp.full((3,), 0.1))
    with pytest.raises(ValueError, match=r"sgd: the learning_rate schedule must return a "
                                         r"scalar, got shape \(3,\)"):
        opt.init({"w": jnp.ones(2)})


def test_integer_params():
    with pytest.raises(TypeError, match=r"adam.init: parameters must be floating-point arrays, "
                                        r"got dtype int32 at \['n'\]"):
        optim.adam().init({"n": jnp.ones(2, jnp.int32)})


def test_wrapper_arguments():
    with pytest.raises(ValueError, match=r"clip_by_global_norm: max_norm must be > 0.0, got 0.0"):
        optim.clip_by_global_norm(optim.sgd(0.1), 0.0)
    with pytest.raises(ValueError, match=r"clip_by_value: limit must be > 0.0, got -1.0"):
        optim.clip_by_value(optim.sgd(0.1), -1.0)
    with pytest.raises(TypeError, match=r"clip_by_value: expected a fnn.optim.Optimizer.*'adam'"):
        optim.clip_by_value("adam", 1.0)
    with pytest.raises(TypeError, match=r"masked: expected a fnn.optim.Optimizer"):
        optim.masked(optim.adam, MASK)


def test_masked_mask_errors():
    with pytest.raises(TypeError, match=r"masked: mask leaves must be Python bools.*1 at \['w'\]"):
        optim.masked(optim.adam(), {"w": 1, "b": False})
    opt = optim.masked(optim.adam(), {"w": True})
    with pytest.raises(ValueError, match=r"masked\(adam\).init: mask must have the same pytree "
                                         r"structure as params"):
        opt.init({"w": jnp.ones(2), "b": jnp.ones(())})


def test_current_lr_of_something_else():
    with pytest.raises(TypeError, match=r"current_lr: expected the state of a fnn.optim "
                                        r"optimizer.*got dict"):
        optim.current_lr({"lr": 0.1})


def test_public_face():
    assert fnn.optim is optim
    assert set(optim.__all__) == {
        "Optimizer", "current_lr", "set_lr_scale", "set_hyperparams", "hyperparams",
        "copy_hyperparams", "schedules", "sgd", "momentum", "adagrad", "adadelta", "rmsprop",
        "adam", "adamw", "nadam", "radam", "adamax", "lion", "clip_by_global_norm", "clip_by_value", "masked",
        "partition", "ema", "ema_params", "decay_mask", "global_norm", "clip_tree_by_global_norm"}
    opt = optim.sgd(0.1)
    assert isinstance(opt, optim.Optimizer) and opt._fields == ("init", "update")


# --- float64 parameters (jax_enable_x64) are updated with the exact learning rate ---------


def test_float64_params_use_the_learning_rate_unrounded():
    """0.1 is not a float32 number: rounding the rate moved float64 SGD steps by ~1e-9."""
    cases = [  # (learning_rate, rates of the first two updates in float64)
        (0.1, (0.1, 0.1)),
        (schedules.exponential_decay(0.1, 0.5, 10), (0.1, 0.1 * 0.5 ** 0.1)),
        (schedules.cosine_decay(0.3, 10), (0.3, 0.3 * 0.5 * (1 + np.cos(np.pi / 10)))),
    ]
    with jax.enable_x64(True):
        for lr, rates in cases:
            opt = optim.sgd(lr)
            state = opt.init({"w": jnp.zeros(1, jnp.float64)})
            for _ in rates:
                state, params = opt.update(state, {"w": jnp.ones(1, jnp.float64)})
            assert params["w"].dtype == jnp.float64
            assert float(params["w"][0]) == pytest.approx(-sum(rates), rel=1e-15, abs=0)
            assert state.lr.dtype == jnp.float32   # the recorded rate keeps its layout


def test_global_norm_of_float64_gradients_is_float64():
    from fnn.optim.wrappers import global_norm

    with jax.enable_x64(True):
        g = {"a": jnp.asarray([0.1, 0.2, 0.3], jnp.float64), "b": jnp.asarray([0.5], jnp.float64)}
        norm = global_norm(g)
        assert norm.dtype == jnp.float64
        assert float(norm) == pytest.approx(np.sqrt(0.01 + 0.04 + 0.09 + 0.25), rel=1e-15)
    half = global_norm({"w": jnp.full((1000,), 100.0, jnp.float16)})  # Σ g² = 1e7 > fp16 max
    assert half.dtype == jnp.float32 and float(half) == pytest.approx(np.sqrt(1e7), rel=1e-6)


def test_clipping_hyperparameters_may_be_traced():
    params, grads = {"w": jnp.ones(4)}, {"w": jnp.full((4,), 2.0)}   # ‖g‖ = 4

    def clipped(max_norm):
        opt = optim.clip_by_global_norm(optim.sgd(1.0), max_norm)
        return opt.update(opt.init(params), grads)[1]["w"]

    got = jax.vmap(clipped)(jnp.array([1.0, 2.0, 8.0]))
    chex.assert_trees_all_close(got[:, 0], jnp.array([1 - 0.5, 1 - 1.0, 1 - 2.0]), rtol=1e-6)


# ---------------------------------------------------------------------------
# leaves that are not floating-point arrays (checked at trace time, before shapes)


def test_init_with_a_non_numeric_leaf():
    with pytest.raises(TypeError, match=r"sgd\.init: parameters must be floating-point arrays, "
                                        r"got a str \('a'\) at \['w'\]"):
        optim.sgd(0.1).init({"w": "a"})


def test_grads_leaf_that_is_not_an_array():
    opt = optim.sgd(0.1)
    state = opt.init({"w": jnp.ones(2), "b": jnp.zeros(())})
    with pytest.raises(TypeError, match=r"sgd\.update: grads leaf \['w'\] must be a "
                                        r"floating-point array, got a str \('a'\)"):
        opt.update(state, {"w": "a", "b": 1.0})


@pytest.mark.parametrize("jit", [False, True])
def test_complex_grads_for_real_params(jit):
    opt = optim.adam()
    state = opt.init({"w": jnp.ones(2), "b": jnp.zeros(())})
    update = jax.jit(opt.update) if jit else opt.update
    with pytest.raises(TypeError, match=r"adam\.update: grads leaf \['w'\] has dtype complex64 "
                                        r"but the parameter has dtype float32; real parameters "
                                        r"need real gradients"):
        update(state, {"w": jnp.full(2, 1j, jnp.complex64), "b": jnp.zeros(())})


@pytest.mark.parametrize("dtype", [jnp.int32, jnp.bool_])
def test_integer_and_bool_grads(dtype):
    opt = optim.clip_by_global_norm(optim.sgd(0.1), 1.0)
    state = opt.init({"w": jnp.ones(2), "b": jnp.zeros(())})
    with pytest.raises(TypeError, match=rf"clip_by_global_norm\(sgd\)\.update: grads leaf "
                                        rf"\['b'\] has dtype {np.dtype(dtype)} but the parameter "
                                        rf"has dtype float32"):
        opt.update(state, {"w": jnp.ones(2), "b": jnp.ones((), dtype)})


def test_other_floating_grads_and_empty_params_still_work():
    opt = optim.sgd(0.5)
    state = opt.init({"w": jnp.ones(2), "b": jnp.zeros(())})
    _, params = opt.update(state, {"w": jnp.ones(2, jnp.bfloat16), "b": 1.0})
    assert params["w"].dtype == jnp.float32 and float(params["b"]) == -0.5
    np.testing.assert_array_equal(params["w"], [0.5, 0.5])
    for empty in ({}, None):  # a model without parameters: only the step advances
        state, params = opt.update(opt.init(empty), empty)
        assert params == empty and int(state.step) == 1


@pytest.mark.parametrize("factory", [optim.adam, optim.adamw])
def test_adam_bias_corrections_are_traced_once_per_update(factory):
    """1 − b^t depends on the step only: computed once per update, not once per leaf
    (ResNet-20's step would hold 59 copies; their compile time: see benchmarks/RESULTS.md,
    'Measurements quoted from docstrings')."""
    opt = factory(1e-3)
    params = {f"w{i}": jnp.ones((2,)) for i in range(5)}
    state = opt.init(params)
    jaxpr = jax.make_jaxpr(opt.update)(state, params)
    assert sum(e.primitive.name == "expm1" for e in jaxpr.eqns) == 2  # b1 and b2


# ---------------------------------------------------------------------------
# the learning-rate scale in the state: set_lr_scale(s) equals an optimizer built with lr·s

SCALE_CASES = [  # (constructor name, kwargs without the learning rate, learning rate)
    ("sgd", {}, 0.1), ("momentum", dict(nesterov=True), 0.1), ("adam", {}, 0.01),
    ("adamw", dict(weight_decay=0.1), 0.01), ("rmsprop", {}, 0.01), ("adagrad", {}, 0.1),
    ("adadelta", {}, 1.0),
]


@pytest.mark.parametrize("name,hp,lr", SCALE_CASES, ids=[c[0] for c in SCALE_CASES])
@pytest.mark.parametrize("scale", [0.5, 0.3])
def test_lr_scale_equals_a_scaled_learning_rate(name, hp, lr, scale):
    params, grads = make_problem()
    opt = getattr(optim, name)(lr, **hp)
    state, history = optim.set_lr_scale(opt.init(params), scale), []
    for g in grads:
        state, new_params = jax.jit(opt.update)(state, g)
        history.append(new_params)
    assert_matches_reference(history, np_reference(name, {"learning_rate": lr * scale, **hp},
                                                   params, grads))
    scaled = getattr(optim, name)(lr * scale, **hp)
    _, want = run_updates(scaled, params, grads)
    chex.assert_trees_all_close(history, want, rtol=1e-6, atol=1e-7)


def test_lr_scale_is_one_at_init_and_one_changes_nothing():
    opt = optim.adam(schedules.cosine_decay(0.1, 10))
    params, grads = make_problem()
    state = opt.init(params)
    assert state.lr_scale.dtype == jnp.float32 and state.lr_scale.shape == ()
    assert float(state.lr_scale) == 1.0
    a, _ = jax.jit(opt.update)(state, grads[0])
    b, _ = jax.jit(opt.update)(optim.set_lr_scale(state, 1.0), grads[0])
    chex.assert_trees_all_equal(a, b)


def test_lr_scale_with_a_schedule_and_current_lr():
    sched = schedules.exponential_decay(0.1, 0.5, 1)
    opt = optim.sgd(sched)
    state = optim.set_lr_scale(opt.init({"w": jnp.zeros(2)}), 0.25)
    for t in range(3):
        state, params = jax.jit(opt.update)(state, {"w": jnp.ones(2)})
        np.testing.assert_allclose(float(optim.current_lr(state)), 0.1 * 0.5**t * 0.25,
                                   rtol=1e-6)
    np.testing.assert_allclose(params["w"], -0.25 * 0.1 * (1 + 0.5 + 0.25), rtol=1e-6)
    assert float(state.lr_scale) == 0.25  # the update keeps the scale


@pytest.mark.parametrize("wrap", [
    lambda o: optim.masked(o, MASK),
    lambda o: optim.clip_by_global_norm(o, 1e9),
    lambda o: optim.clip_by_value(o, 1e9),
    lambda o: optim.masked(optim.clip_by_global_norm(o, 1e9), MASK),
], ids=["masked", "clip_norm", "clip_value", "masked_clip"])
def test_lr_scale_through_wrappers_under_jit(wrap):
    params, grads = make_problem()
    opt, scaled = wrap(optim.adamw(0.05)), wrap(optim.adamw(0.025))
    state = jax.jit(optim.set_lr_scale)(opt.init(params), 0.5)  # a traced scale
    update = jax.jit(opt.update)
    for g in grads:
        state, got = update(state, g)
    _, want = run_updates(scaled, params, grads)
    chex.assert_trees_all_close(got, want[-1], rtol=1e-6, atol=1e-7)
    assert float(state.lr_scale) == 0.5
    np.testing.assert_allclose(float(optim.current_lr(state)), 0.025, rtol=1e-7)


def test_lr_scale_survives_scan_and_can_change_inside_jit():
    opt = optim.momentum(0.1)
    params, grads = make_problem()
    stacked = jax.tree.map(lambda *g: jnp.stack(g), *grads)

    @jax.jit
    def run(state):
        def body(s, g):
            s, _ = opt.update(s, g)
            return optim.set_lr_scale(s, s.lr_scale * 0.5), s.lr
        return jax.lax.scan(body, optim.set_lr_scale(state, 2.0), stacked)

    state, lrs = run(opt.init(params))
    np.testing.assert_allclose(lrs, [0.2, 0.1, 0.05, 0.025], rtol=1e-6)
    assert float(state.lr_scale) == 2.0 * 0.5**N_STEPS
    p = {k: np.asarray(x, np.float64) for k, x in params.items()}
    v = {k: 0.0 for k in p}
    for t, g in enumerate(grads):  # heavy-ball momentum in float64, rate 0.1 · 2 · 0.5^t
        for k in p:
            v[k] = 0.9 * v[k] + g[k]
            p[k] = p[k] - 0.2 * 0.5**t * v[k]
    chex.assert_trees_all_close(state.params, p, rtol=1e-5, atol=1e-6)


def test_set_lr_scale_errors():
    state = optim.sgd(0.1).init({"w": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"^set_lr_scale: expected the state of a fnn.optim "
                                        r"optimizer.*got dict"):
        optim.set_lr_scale({"lr": 0.1}, 0.5)
    with pytest.raises(ValueError, match=r"^set_lr_scale: scale must be >= 0.0, got -1.0"):
        optim.set_lr_scale(state, -1.0)
    with pytest.raises(TypeError, match=r"^set_lr_scale: scale must be a number, got '2'"):
        optim.set_lr_scale(state, "2")
    with pytest.raises(ValueError, match=r"^set_lr_scale: scale must be a scalar, got shape "
                                         r"\(2,\)"):
        jax.jit(optim.set_lr_scale)(state, jnp.ones(2))


def test_a_misspelt_keyword_gets_pythons_own_error():
    """The hyperparameter tables (`fnn._checks.checked`) leave a call that does not fit the
    signature to Python, whose message names the constructor."""
    with pytest.raises(TypeError, match=r"adam\(\) got an unexpected keyword argument 'lr'"):
        optim.adam(lr=0.1)
    with pytest.raises(TypeError, match=r"masked\(\) missing 1 required positional argument"):
        optim.masked(optim.sgd(0.1))


# ---------------------------------------------------------------------------
# Lion (not in torch.optim) against its rule in float64, over 50 steps


def test_lion_equals_its_float64_rule_over_50_steps():
    hp = dict(learning_rate=0.01, b1=0.8, b2=0.95, weight_decay=0.5)
    params, grads = make_problem(seed=7, n_steps=50)
    want = np_reference("lion", hp, params, grads)
    stacked = jax.tree.map(lambda *g: jnp.stack(g), *grads)
    with jax.enable_x64(True):
        opt = optim.lion(**hp)
        p64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), params)
        g64 = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), stacked)
        got = jax.jit(lambda s, g: jax.lax.scan(opt.update, s, g)[1])(opt.init(p64), g64)
        for t in range(50):
            for k in want[t]:
                np.testing.assert_allclose(np.asarray(got[k][t]), want[t][k], rtol=1e-12)
    opt = optim.lion(**hp)
    _, eager = run_updates(opt, params, grads, update=opt.update)
    _, jitted = run_updates(opt, params, grads)
    scanned = jax.jit(lambda s, g: jax.lax.scan(opt.update, s, g)[1])(opt.init(params), stacked)
    for t in range(50):
        for k in want[t]:
            for history in (eager[t][k], jitted[t][k], scanned[k][t]):
                np.testing.assert_allclose(np.asarray(history), want[t][k], rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("make", [
    lambda lr: optim.nadam(lr), lambda lr: optim.radam(lr), lambda lr: optim.adamax(lr),
    lambda lr: optim.lion(lr, weight_decay=0.1), lambda lr: optim.adam(lr, amsgrad=True),
    lambda lr: optim.rmsprop(lr, momentum=0.9, centered=True, weight_decay=0.1),
], ids=["nadam", "radam", "adamax", "lion", "amsgrad", "rmsprop_all"])
def test_lr_scale_of_the_new_optimizers(make):
    params, grads = make_problem()
    opt = make(0.02)
    state = optim.set_lr_scale(opt.init(params), 0.5)
    for g in grads:
        state, got = jax.jit(opt.update)(state, g)
    _, want = run_updates(make(0.01), params, grads)
    chex.assert_trees_all_close(got, want[-1], rtol=1e-6, atol=1e-7)
