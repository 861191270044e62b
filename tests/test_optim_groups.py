"""fnn.optim.groups and fnn.optim.ema: `masked` without slots for frozen leaves,
`partition`, `decay_mask` and `adamw(mask=...)`, and the moving average of the params
(their PyTorch twins are in test_optim_torch.py)."""
import _catalog
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from fnn import optim

KEY = jax.random.key(0)


def problem(seed=0, n_steps=4):
    rng = np.random.default_rng(seed)
    params = {"w": rng.normal(size=(2, 3)).astype(np.float32),
              "b": rng.normal(size=(3,)).astype(np.float32),
              "s": rng.normal(size=(3,)).astype(np.float32)}
    grads = [{k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
             for _ in range(n_steps)]
    return params, grads


def run(opt, params, grads, state=None):
    update = jax.jit(opt.update)
    state = opt.init(params) if state is None else state
    history = []
    for g in grads:
        state, new = update(state, g)
        history.append(new)
    return state, history


def only(tree, keys):
    return {k: tree[k] for k in keys}


# ---------------------------------------------------------------------------
# masked: frozen leaves have no slots


def test_masked_keeps_no_slots_for_frozen_leaves():
    mask = {"w": True, "b": False, "s": False}
    params, grads = problem()
    masked, plain = optim.masked(optim.adam(0.1), mask), optim.adam(0.1)
    state = masked.init(params)
    assert (state.m["b"], state.m["s"], state.v["b"], state.v["s"]) == (None,) * 4
    size = lambda s: sum(x.size for x in jax.tree.leaves((s.m, s.v)))
    assert size(state) == 2 * 6 and size(plain.init(params)) == 2 * 12   # the state shrinks
    state, history = run(masked, params, grads, state)
    _, alone = run(plain, only(params, ["w"]), [only(g, ["w"]) for g in grads])
    for got, want in zip(history, alone, strict=True):   # as if the frozen leaves were absent
        chex.assert_trees_all_equal(got["w"], want["w"])
        np.testing.assert_array_equal(got["b"], params["b"])
        np.testing.assert_array_equal(got["s"], params["s"])
    assert set(state.params) == {"w", "b", "s"} and int(state.step) == len(grads)


def test_masked_inside_a_partition_and_nested_masks():
    params, grads = problem()
    opt = optim.partition({"x": optim.masked(optim.momentum(0.1), {"w": True, "b": False,
                                                                   "s": True}),
                           "y": optim.sgd(0.5)}, {"w": "x", "b": "x", "s": "y"})
    state, history = run(opt, params, grads)
    assert state.groups["x"].v == {"w": state.groups["x"].v["w"], "b": None, "s": None}
    _, want_w = run(optim.momentum(0.1), only(params, ["w"]), [only(g, ["w"]) for g in grads])
    chex.assert_trees_all_equal(history[-1]["w"], want_w[-1]["w"])
    np.testing.assert_array_equal(history[-1]["b"], params["b"])
    np.testing.assert_allclose(history[-1]["s"], params["s"] - 0.5 * sum(g["s"] for g in grads),
                               rtol=1e-6)


# ---------------------------------------------------------------------------
# partition


def test_partition_equals_each_optimizer_on_its_group():
    params, grads = problem()
    labels = {"w": "body", "b": "head", "s": "head"}
    opt = optim.partition({"body": optim.adamw(0.05, weight_decay=0.1),
                           "head": optim.momentum(0.1, nesterov=True)}, labels)
    state, history = run(opt, params, grads)
    _, body = run(optim.adamw(0.05, weight_decay=0.1), only(params, ["w"]),
                  [only(g, ["w"]) for g in grads])
    _, head = run(optim.momentum(0.1, nesterov=True), only(params, ["b", "s"]),
                  [only(g, ["b", "s"]) for g in grads])
    for got, w, h in zip(history, body, head, strict=True):
        chex.assert_trees_all_equal(got, {**w, **h})
    assert type(state).__name__ == "PartitionState" and set(state.groups) == {"body", "head"}
    assert state.groups["body"].params is None            # the params live once, in the state
    assert state.groups["body"].m == {"w": state.groups["body"].m["w"], "b": None, "s": None}
    assert int(state.step) == int(state.groups["head"].step) == len(grads)
    assert float(optim.current_lr(state)) == pytest.approx(0.05)   # the first group's
    assert float(optim.current_lr(state.groups["head"])) == pytest.approx(0.1)


def test_partition_labels_from_a_function_and_the_lr_scale():
    params, grads = problem()

    def labels(p):
        return jax.tree_util.tree_map_with_path(
            lambda path, x: "decay" if x.ndim >= 2 else "plain", p)

    make = lambda lr: optim.partition({"decay": optim.adamw(lr), "plain": optim.sgd(lr)}, labels)
    opt = make(0.1)
    state = optim.set_lr_scale(opt.init(params), 0.5)   # scales every group
    state, history = run(opt, params, grads, state)
    _, want = run(make(0.05), params, grads)
    chex.assert_trees_all_close(history, want, rtol=1e-6, atol=1e-7)
    assert float(optim.current_lr(state)) == pytest.approx(0.05)


def test_partition_under_vmap_equals_a_loop():
    opt = optim.partition({"a": optim.nadam(0.05), "b": optim.adagrad(0.1)},
                          {"w": "a", "b": "b", "s": "a"})
    problems = [problem(seed=s, n_steps=2) for s in range(3)]
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.stack(xs), *trees)
    state = jax.vmap(opt.init)(stack([p for p, _ in problems]))
    for t in range(2):
        state, batched = jax.jit(jax.vmap(opt.update))(state, stack([g[t] for _, g in problems]))
    for i, (params, grads) in enumerate(problems):
        _, history = run(opt, params, grads)
        chex.assert_trees_all_close(jax.tree.map(lambda x, i=i: x[i], batched), history[-1],
                                    rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make,error,message", [
    (lambda: optim.partition([optim.sgd(0.1)], {"w": "a"}), TypeError,
     r"^partition: optimizers must be a non-empty dict label -> Optimizer"),
    (lambda: optim.partition({}, {"w": "a"}), TypeError,
     r"^partition: optimizers must be a non-empty dict"),
    (lambda: optim.partition({1: optim.sgd(0.1)}, {"w": 1}), TypeError,
     r"^partition: optimizers labels must be strings, got 1"),
    (lambda: optim.partition({"a": "sgd"}, {"w": "a"}), TypeError,
     r"^partition: expected a fnn\.optim\.Optimizer .*got 'sgd'"),
    (lambda: optim.partition({"a": optim.sgd(0.1)}, {"w": 0}), TypeError,
     r"^partition: labels leaves must be group labels \(strings\), got 0 at \['w'\]"),
    (lambda: optim.partition({"a": optim.sgd(0.1)}, {"w": "b"}).init({"w": jnp.ones(2)}),
     ValueError, r"^partition\(a=sgd\)\.init: labels must name a group of optimizers \['a'\], "
                 r"got 'b' at \['w'\]"),
    (lambda: optim.partition({"a": optim.sgd(0.1)}, {"w": "a"}).init(
        {"w": jnp.ones(2), "b": jnp.ones(2)}), ValueError,
     r"^partition\(a=sgd\)\.init: labels must have the same pytree structure as params; "
     r"labels lacks \['b'\]"),
    (lambda: optim.partition({"a": optim.sgd(0.1)}, {"w": "a"}).update(
        optim.sgd(0.1).init({"w": jnp.ones(2)}), {"w": jnp.ones(2)}), TypeError,
     r"^partition\(a=sgd\)\.update: expected the state from partition\(a=sgd\)\.init "
     r"\(PartitionState with groups \['a'\]\), got SGDState"),
])
def test_partition_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


# ---------------------------------------------------------------------------
# decay_mask and adamw(mask=...)


def test_decay_mask_on_every_layer():
    """Weights (rank >= 2) decay; biases, norm scales and PReLU slopes do not."""
    decayed, kept = set(), set()
    for name, (make, shape) in _catalog.LAYERS.items():
        params = jax.eval_shape(lambda make=make, shape=shape: make().init(KEY, shape)[0])
        mask = optim.decay_mask(params)
        for (path, p), m in zip(jax.tree_util.tree_flatten_with_path(params)[0],
                                jax.tree.leaves(mask), strict=True):
            (decayed if m else kept).add(str(path[-1].key))
            assert m == (p.ndim >= 2), (name, path)
            assert isinstance(m, bool)
    assert decayed == {"w", "w_x", "w_h", "table", "w_q", "w_k", "w_v", "w_o"}
    assert kept == {"b", "bias", "scale", "alpha", "b_x", "b_h", "b_q", "b_k", "b_v", "b_o"}
    assert optim.decay_mask({"b": jnp.ones((2, 2)), "scale": jnp.ones((2, 2))}) == {
        "b": False, "scale": False}                      # by name, whatever the rank
    traced = jax.jit(lambda p: jnp.asarray(jax.tree.leaves(optim.decay_mask(p))))
    np.testing.assert_array_equal(traced({"w": jnp.ones((2, 2)), "b": jnp.ones(2)}), [False, True])


@pytest.mark.parametrize("mask", [{"w": True, "b": False, "s": False}, optim.decay_mask],
                         ids=["tree", "function"])
def test_adamw_mask_decays_only_the_masked_leaves(mask):
    params, grads = problem()
    state, history = run(optim.adamw(0.05, weight_decay=0.5, mask=mask), params, grads)
    _, decayed = run(optim.adamw(0.05, weight_decay=0.5), params, grads)
    _, plain = run(optim.adam(0.05), params, grads)
    chex.assert_trees_all_equal(history[-1]["w"], decayed[-1]["w"])
    chex.assert_trees_all_equal(only(history[-1], ["b", "s"]), only(plain[-1], ["b", "s"]))
    assert float(state.hyper["weight_decay"]) == 0.5


def test_adamw_mask_errors():
    with pytest.raises(TypeError, match=r"^adamw: mask leaves must be Python bools \(True = "
                                        r"decay\), got 1 at \['w'\]"):
        optim.adamw(mask={"w": 1})
    with pytest.raises(ValueError, match=r"^adamw\.init: mask must have the same pytree "
                                         r"structure as params"):
        optim.adamw(mask={"w": True}).init({"w": jnp.ones(2), "b": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"^adamw\.init: mask leaves must be Python bools .*"
                                        r"got 'yes' at \['w'\]"):
        optim.adamw(mask=lambda p: {"w": "yes"}).init({"w": jnp.ones(2)})


# ---------------------------------------------------------------------------
# ema


def test_ema_follows_its_rule_in_float64():
    params, grads = problem()
    decay = 0.8
    opt = optim.ema(optim.momentum(0.1), decay)
    state, history = run(opt, params, grads)
    p = {k: np.float64(v) for k, v in params.items()}
    v, average = {k: 0.0 for k in p}, dict(p)
    for g in grads:
        for k in p:
            v[k] = 0.9 * v[k] + g[k]
            p[k] = p[k] - 0.1 * v[k]
            average[k] = decay * average[k] + (1 - decay) * p[k]
    chex.assert_trees_all_close(optim.ema_params(state), average, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_close(history[-1], p, rtol=1e-6, atol=1e-7)
    assert state._fields == ("step", "lr", "lr_scale", "hyper", "params", "v", "ema")
    assert type(state).__name__ == "MomentumStateWithEMA"


def test_ema_starts_at_the_params_and_keeps_the_wrapped_state_usable():
    params, grads = problem()
    opt = optim.ema(optim.adam(0.1), 0.5)
    state = opt.init(params)
    chex.assert_trees_all_equal(optim.ema_params(state), jax.tree.map(jnp.asarray, params))
    state = optim.set_lr_scale(optim.set_hyperparams(state, b1=0.5), 0.5)
    state, history = run(opt, params, grads, state)
    _, want = run(optim.adam(0.05, b1=0.5), params, grads)
    chex.assert_trees_all_close(history, want, rtol=1e-6, atol=1e-7)
    assert float(optim.current_lr(state)) == pytest.approx(0.05)


def test_ema_of_a_partition():
    params, grads = problem()
    opt = optim.ema(optim.partition({"a": optim.sgd(0.1), "b": optim.adam(0.1)},
                                    {"w": "a", "b": "b", "s": "b"}), 0.5)
    state, history = run(opt, params, grads)
    assert state._fields[-2:] == ("groups", "ema")
    average = jax.tree.map(jnp.asarray, params)
    for h in history:
        average = jax.tree.map(lambda e, p: 0.5 * e + 0.5 * p, average, h)
    chex.assert_trees_all_close(optim.ema_params(state), average, rtol=1e-6)


def test_ema_errors():
    with pytest.raises(ValueError, match=r"^ema: decay must be in \[0\.0, 1\.0\), got 1\.0"):
        optim.ema(optim.sgd(0.1), 1.0)
    with pytest.raises(TypeError, match=r"^ema: expected a fnn\.optim\.Optimizer"):
        optim.ema("adam")
    opt = optim.ema(optim.sgd(0.1))
    with pytest.raises(TypeError, match=r"^ema\(sgd\)\.update: expected the state from "
                                        r"ema\(sgd\)\.init \(a state with an `ema` field\), "
                                        r"got SGDState"):
        opt.update(optim.sgd(0.1).init({"w": jnp.ones(2)}), {"w": jnp.ones(2)})
    with pytest.raises(TypeError, match=r"^ema_params: expected the state of a fnn\.optim\.ema "
                                        r"optimizer .*got SGDState"):
        optim.ema_params(optim.sgd(0.1).init({"w": jnp.ones(2)}))
