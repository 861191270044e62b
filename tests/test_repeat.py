"""fnn.repeat and fnn.remat: repeat equals the unrolled serial of the same copies (values,
gradients, BatchNorm state, dropout keys) under jit, vmap and grad; one copy compiled;
remat changes no value or gradient and puts a checkpoint in the jaxpr; bad input."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import layers as L
from fnn.repeat import unstack

N = 4


def mlp_block():
    return fnn.residual(fnn.serial(L.Dense(6), fnn.relu, L.Dense(6)))


def bn_block():
    return fnn.serial(L.Dense(6), L.BatchNorm(), L.Dropout(0.3), fnn.tanh)


def unrolled(block, stacked_params, stacked_state):
    """serial(block, ..., block) and its params/state, copy i holding row i of every leaf."""
    model = fnn.serial(*[block] * N)
    entry = [f"{i}_{block.name}" for i in range(N)]
    params = {e: p for e, p in zip(entry, unstack(stacked_params, N)) if p}
    state = {e: s for e, s in zip(entry, unstack(stacked_state, N)) if s}
    return model, params, state


def as_serial_tree(tree, name):
    return {f"{i}_{name}": t for i, t in enumerate(unstack(tree, N)) if t}


@pytest.fixture
def x():
    return jnp.asarray(np.random.default_rng(0).normal(size=(5, 6)), jnp.float32)


def test_init_stacks_each_copys_init_from_its_own_key(key):
    block = mlp_block()
    params, state = fnn.repeat(block, N).init(key, (6,))
    assert state == {}
    assert jax.tree.map(jnp.shape, params) == {"block": {
        "0_Dense": {"w": (N, 6, 6), "b": (N, 6)}, "2_Dense": {"w": (N, 6, 6), "b": (N, 6)}}}
    for k, p in zip(jax.random.split(key, N), unstack(params, N)):
        chex.assert_trees_all_close(p, block.init(k, (6,))[0], rtol=1e-6, atol=1e-7)
    copies = unstack(params, N)
    assert not np.allclose(copies[0]["block"]["0_Dense"]["w"], copies[1]["block"]["0_Dense"]["w"])


@pytest.mark.parametrize("remat", [False, True])
@pytest.mark.parametrize("transform", ["eager", "jit", "vmap"])
def test_values_and_grads_equal_the_unrolled_serial(key, x, remat, transform):
    block = mlp_block()
    layer = fnn.repeat(block, N, remat=remat)
    params, state = layer.init(key, (6,))
    model, u_params, u_state = unrolled(block, params, state)

    def loss(apply, p, s, x):
        if transform == "vmap":   # per example, as a batch of one
            y = jax.vmap(lambda xi: apply(p, s, xi[None])[0][0])(x)
        else:
            y = apply(p, s, x)[0]
        return jnp.sum(jnp.sin(y)), y

    run = jax.value_and_grad(loss, argnums=(1, 3), has_aux=True)
    if transform == "jit":
        run = jax.jit(run, static_argnums=0)
    (v, y), (gp, gx) = run(layer.apply, params, state, x)
    (v_u, y_u), (gp_u, gx_u) = run(model.apply, u_params, u_state, x)
    chex.assert_trees_all_close(y, y_u, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(v, v_u, rtol=1e-5, atol=1e-5)
    chex.assert_trees_all_close(gx, gx_u, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(as_serial_tree(gp, block.name), gp_u, rtol=1e-5, atol=1e-6)


def test_state_keys_and_train_mode_equal_the_unrolled_serial(key, x):
    """BatchNorm state stacked and updated per copy; copy i gets split(key, N)[i] (Dropout)."""
    block = bn_block()
    layer = fnn.repeat(block, N)
    params, state = layer.init(key, (6,))
    assert jax.tree.map(jnp.shape, state) == {"1_BatchNorm": {"mean": (N, 6), "var": (N, 6)}}
    model, u_params, u_state = unrolled(block, params, state)
    k = jax.random.key(11)
    step = jax.jit(lambda p, s, x, k: layer.apply(p, s, x, key=k, train=True))
    y, new_state = step(params, state, x, k)
    y_u, new_u = model.apply(u_params, u_state, x, key=k, train=True)
    chex.assert_trees_all_close(y, y_u, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(as_serial_tree(new_state, block.name), new_u, rtol=1e-5,
                                atol=1e-6)
    assert not np.allclose(new_state["1_BatchNorm"]["mean"], 0.0)
    assert float(jnp.mean(y == 0)) > 0.1    # dropout ran
    y_eval, same = layer.apply(params, new_state, x)   # eval: running statistics, no key
    chex.assert_trees_all_close(same, new_state)
    chex.assert_trees_all_close(y_eval, model.apply(u_params, new_u, x)[0], rtol=1e-5,
                                atol=1e-6)


def _count(jaxpr, name):
    """Equations of primitive `name` in `jaxpr` and its sub-jaxprs (scan bodies, ...)."""
    total = 0
    for eqn in jaxpr.eqns:
        total += eqn.primitive.name == name
        for v in eqn.params.values():
            inner = getattr(v, "jaxpr", v)
            if hasattr(inner, "eqns"):
                total += _count(inner, name)
    return total


@pytest.mark.parametrize("n", [2, 16])
def test_one_copy_is_traced_whatever_n(key, x, n):
    layer = fnn.repeat(mlp_block(), n)
    params, state = jax.eval_shape(lambda: layer.init(key, (6,)))
    closed = jax.make_jaxpr(lambda p, x: layer.apply(p, state, x)[0])(params, x)
    assert _count(closed.jaxpr, "scan") == 1
    assert _count(closed.jaxpr, "dot_general") == 2       # the block's two Dense layers


def test_remat_gives_identical_values_and_grads_and_a_checkpoint(key, x):
    """fnn.remat(block) against block, repeat(remat=True) against repeat(remat=False): the
    same loss, new state and gradients (train mode: BatchNorm and Dropout with a key)."""
    block = bn_block()
    k = jax.random.key(5)

    def loss(layer, p, st):
        y, s = layer.apply(p, st, x, key=k, train=True)
        return jnp.sum(y ** 2), s

    for layer, reference in ((fnn.remat(block), block),
                             (fnn.repeat(block, N, remat=True), fnn.repeat(block, N))):
        params, state = reference.init(key, (6,))
        results = [jax.value_and_grad(lambda p, m=m, st=state: loss(m, p, st), has_aux=True)(params)
                   for m in (layer, reference)]
        chex.assert_trees_all_close(*results, rtol=1e-6, atol=1e-6)
        text = str(jax.make_jaxpr(jax.grad(lambda p, m=layer, st=state: loss(m, p, st)[0]))(params))
        assert "checkpoint" in text or "remat" in text
        plain = str(jax.make_jaxpr(jax.grad(lambda p, m=reference, st=state: loss(m, p, st)[0]))(
            params))
        assert "checkpoint" not in plain and "remat" not in plain
    remat_block = fnn.remat(block)
    assert remat_block.name == block.name and remat_block.init is block.init


def test_half_input_is_promoted_like_the_first_copy_of_the_serial(key):
    block = mlp_block()
    layer = fnn.repeat(block, N)
    params, state = layer.init(key, (6,))
    x16 = jnp.ones((2, 6), jnp.bfloat16)
    y, _ = layer.apply(params, state, x16)
    model, u_params, _ = unrolled(block, params, state)
    y_u, _ = model.apply(u_params, {}, x16)
    assert y.dtype == y_u.dtype == jnp.float32
    chex.assert_trees_all_close(y, y_u, rtol=1e-5, atol=1e-6)


def test_summary_counts_n_times_the_block(key):
    block = mlp_block()
    rep = fnn.summary(fnn.serial(fnn.repeat(block, N), L.Dense(2)), (6,))
    ser = fnn.summary(fnn.serial(fnn.serial(*[block] * N), L.Dense(2)), (6,))
    assert rep.total_params == ser.total_params == N * 2 * (36 + 6) + 14
    assert rep.total_macs == ser.total_macs == N * 72 + 12
    assert rep.total_flops == ser.total_flops
    assert [r.path for r in rep.rows] == ["0_Repeat/4x/block/0_Dense", "0_Repeat/4x/block/1_relu",
                                          "0_Repeat/4x/block/2_Dense", "1_Dense"]
    assert rep.rows[0].params == N * 42 and rep.rows[0].macs == N * 36
    remat = fnn.summary(fnn.serial(fnn.remat(block), L.Dense(2)), (6,))
    assert [r.path for r in remat.rows] == ["0_Residual/block/0_Dense", "0_Residual/block/1_relu",
                                            "0_Residual/block/2_Dense", "1_Dense"]
    assert remat.total_macs == 72 + 12


def test_a_parameter_free_layer_and_a_callable_repeat(x):
    layer = fnn.repeat(jnp.tanh, 3)
    params, state = layer.init(None, (6,))
    assert params == {} and state == {}
    np.testing.assert_allclose(layer.apply({}, {}, x)[0], jnp.tanh(jnp.tanh(jnp.tanh(x))),
                               rtol=1e-6)


def _flip_dtype(x):
    return x.astype(jnp.float16 if x.dtype == jnp.float32 else jnp.float32)


BAD_INPUT = [
    (lambda: fnn.repeat(L.Dense(3), 0), ValueError, r"^repeat: n must be a positive int, got 0"),
    (lambda: fnn.repeat(L.Dense(3), 2.0), TypeError,
     r"^repeat: n must be a positive int, got 2\.0"),
    (lambda: fnn.repeat(L.Dense(3), 2, remat="yes"), TypeError,
     r"^repeat: remat must be True or False, got 'yes'"),
    (lambda: fnn.repeat([L.Dense(3)], 2), TypeError,
     r"^repeat: expected a fnn\.Layer or a callable .* fnn\.serial\(\*layers\)"),
    (lambda: fnn.repeat(L.Dense(3), 2).init(jax.random.key(0), (4,)), ValueError,
     r"^repeat: the layer must map its input shape to itself, since its copies are chained: "
     r"Dense maps \(4,\) to \(3,\)"),
    (lambda: fnn.repeat(L.Dense(3), 2).apply(L.Dense(3).init(jax.random.key(0), (3,))[0], {},
                                             jnp.ones((2, 3))), ValueError,
     r"^repeat\.apply: params leaf \['b'\] must be stacked on a leading axis of size n=2, "
     r"got shape \(3,\)"),
    (lambda: fnn.repeat(L.Dense(3), 2).apply(
        fnn.repeat(L.Dense(3), 2).init(jax.random.key(0), (3,))[0], {}, jnp.ones((2, 4))),
     ValueError, r"^Dense: expected input features \(last axis\) 3 \(from init\), got 4 in input "
                 r"of shape \(2, 4\)"),
    (lambda: fnn.repeat(L.Flatten(), 2).apply({}, {}, jnp.ones((2, 3, 4))), ValueError,
     r"^repeat\.apply: the layer must map its input shape to itself.*Flatten maps \(3, 4\) "
     r"to \(12,\)"),
    (lambda: fnn.repeat(_flip_dtype, 2).apply({}, {}, jnp.ones((2, 3))),
     ValueError, r"^repeat\.apply: the layer must map its input dtype to itself, since its copies "
                 r"are chained: _flip_dtype maps float16 to float32"),
    (lambda: fnn.repeat(L.Dense(3), 2).apply({}, {}, jnp.ones((2, 3)), lenghts=3), TypeError,
     r"^repeat\.apply: got unexpected keyword argument\(s\) \['lenghts'\]"),
    (lambda: fnn.repeat(L.Dense(3), 2).apply({}, {}, jnp.ones((2, 3)), train="no"), TypeError,
     r"^repeat\.apply: train must be a Python bool"),
    (lambda: fnn.remat(L.Dense(3)).apply({}, {}, jnp.ones((2, 3)), lenghts=3), TypeError,
     r"^remat\.apply: got unexpected keyword argument\(s\) \['lenghts'\]"),
    (lambda: fnn.remat(L.Dense), TypeError, r"^remat: expected a fnn\.Layer or a callable"),
]


@pytest.mark.parametrize("trigger, error, match", BAD_INPUT)
def test_bad_input(trigger, error, match):
    with pytest.raises(error, match=match):
        trigger()


def test_a_list_input_is_a_type_error(key):
    with pytest.raises(TypeError, match=r"^repeat\.apply: expected an array"):
        fnn.repeat(jnp.tanh, 2).apply({}, {}, [[1.0, 2.0]])
