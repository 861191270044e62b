"""Precision policies (`fnn.precision`): the named policies, `pin`, and `apply_policy`'s
dtypes of params, activations, outputs and gradients, with values checked against
closed-form results (a weight that bfloat16 cannot hold) and against the float32
model within bfloat16's tolerance."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import fnn
from fnn import layers as L
from fnn import precision as P

F32, BF16, F16 = jnp.dtype("float32"), jnp.dtype("bfloat16"), jnp.dtype("float16")
W = 1.0 + 2.0**-10     # float32 holds it; bfloat16 (8 significant bits) rounds it to 1.0


def dtypes(tree):
    return jax.tree.map(lambda a: a.dtype, tree)


def test_named_policies():
    assert P.get("float32")[:3] == (F32, F32, F32)
    assert P.get("bfloat16")[:3] == (BF16, BF16, BF16)
    assert P.get("mixed_bfloat16")[:3] == (F32, BF16, F32)
    assert P.get("mixed_float16")[:3] == (F32, F16, F32)
    assert P.get("mixed_float16").loss_scale == P.loss_scale()
    assert all(P.get(n).loss_scale is None for n in ("float32", "bfloat16", "mixed_bfloat16"))
    assert P.get("float32").is_float32 and not P.get("mixed_bfloat16").is_float32
    custom = P.get(P.Policy("float32", jnp.bfloat16, np.float32))
    assert custom[:3] == (F32, BF16, F32) and custom.float32_layers == P.FLOAT32_LAYERS


def constant_dense(features=1, value=W):
    return L.Dense(features, w_init=lambda k, s: jnp.full(s, value, jnp.float32))


def test_compute_dtype_rounds_weights_closed_form():
    """x = 1, w = 1 + 2^-10: float32 computes 1 + 2^-10, bfloat16 computes exactly 1."""
    model = fnn.serial(constant_dense())
    params, state = model.init(jax.random.key(0), (1,))
    x = jnp.ones((2, 1))
    y32, _ = P.apply_policy(model, "float32").apply(params, state, x)
    ybf, _ = P.apply_policy(model, "mixed_bfloat16").apply(params, state, x)
    ypin, _ = P.apply_policy(fnn.serial(P.pin(constant_dense(), "float32")),
                             "mixed_bfloat16").apply(params, state, x)
    assert ybf.dtype == F32 and float(ybf[0, 0]) == 1.0
    assert float(y32[0, 0]) == W and float(ypin[0, 0]) == W
    yall, _ = P.apply_policy(model, "bfloat16").apply(params, state, x)
    assert yall.dtype == BF16


def test_activation_dtypes_and_pinned_layers():
    """Each layer's output dtype (`fnn.intermediates` of the rewritten model): compute
    dtype, but float32 for BatchNorm, LayerNorm and softmax; a user's pin too."""
    model = fnn.serial(L.Conv2D(4, 3), L.BatchNorm(), fnn.relu, L.Flatten(),
                       L.Dense(6), L.LayerNorm(), P.pin(L.Dense(5), "float32"),
                       L.Dense(3), fnn.softmax)
    params, state = model.init(jax.random.key(0), (6, 6, 2))
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 2))
    run = P.apply_policy(model, "mixed_bfloat16")
    acts = jax.jit(lambda p, x: fnn.intermediates(run, p, state, x, train=True))(params, x)
    want = {"0_Conv2D": BF16, "1_BatchNorm": F32, "2_relu": BF16, "3_Flatten": BF16,
            "4_Dense": BF16, "5_LayerNorm": F32, "6_Dense": F32, "7_Dense": BF16,
            "8_softmax": F32}
    assert {k: v.dtype for k, v in acts.items()} == want
    # no float32 layers: everything in bfloat16 (relu follows its input)
    bare = P.apply_policy(model, P.get("mixed_bfloat16")._replace(float32_layers=frozenset()))
    acts = jax.jit(lambda p, x: fnn.intermediates(bare, p, state, x))(params, x)
    assert acts["1_BatchNorm"].dtype == BF16 and acts["6_Dense"].dtype == F32
    y, new_state = jax.jit(lambda p, x: run.apply(p, state, x, train=True))(params, x)
    assert y.dtype == F32 and dtypes(new_state) == dtypes(state)
    y32, state32 = jax.jit(lambda p, x: model.apply(p, state, x, train=True))(params, x)
    chex.assert_trees_all_close(y, y32, atol=2e-2)
    chex.assert_trees_all_close(new_state, state32, rtol=2e-2, atol=2e-2)


def test_gradients_reach_params_in_param_dtype():
    model = fnn.serial(L.Conv2D(3, 3, padding="SAME"), L.BatchNorm(), fnn.relu,
                       fnn.residual(L.Conv2D(3, 3, padding="SAME")), L.Flatten(), L.Dense(2))
    params, state = model.init(jax.random.key(0), (5, 5, 1))
    x = jax.random.normal(jax.random.key(1), (3, 5, 5, 1))

    def loss(m):
        return lambda p: jnp.sum(m.apply(p, state, x, train=True)[0] ** 2)

    g16 = jax.jit(jax.grad(loss(P.apply_policy(model, "mixed_bfloat16"))))(params)
    g32 = jax.jit(jax.grad(loss(model)))(params)
    assert dtypes(g16) == dtypes(params)     # float32: the casts' transposes
    chex.assert_trees_all_close(g16, g32, rtol=5e-2, atol=5e-2 * max(
        float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(g32)))
    bf_params = P.cast_floating(params, jnp.bfloat16)
    gbf = jax.jit(jax.grad(loss(P.apply_policy(model, "bfloat16"))))(bf_params)
    assert set(jax.tree.leaves(dtypes(gbf))) == {BF16}


class ApplyTest(chex.TestCase):

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("mixed_bfloat16", "mixed_float16", "bfloat16")
    def test_policies_match_float32(self, name):
        model = fnn.serial(L.Dense(8), fnn.tanh, L.Dense(4), fnn.log_softmax)
        params, state = model.init(jax.random.key(0), (5,))
        x = jax.random.normal(jax.random.key(1), (6, 5))
        run = P.apply_policy(model, name)
        y = self.variant(lambda p, x: run.apply(p, state, x)[0])(params, x)
        assert y.dtype == P.get(name).output_dtype
        tol = 2e-2 if name != "mixed_float16" else 4e-3
        chex.assert_trees_all_close(y.astype(F32), model.apply(params, state, x)[0],
                                    atol=tol, rtol=tol)


def test_vmap_and_concat_axis():
    """concat's axis is recovered from the shapes (here 1 of (N, 2, 3) outputs); vmap."""
    branch = fnn.serial(L.Dense(3))
    model = fnn.concat(branch, fnn.serial(L.Dense(3), fnn.relu), axis=1)
    params, state = model.init(jax.random.key(0), (2, 4))
    x = jax.random.normal(jax.random.key(1), (3, 2, 4))
    run = P.apply_policy(model, "mixed_bfloat16")
    y = jax.jit(lambda p, x: run.apply(p, state, x)[0])(params, x)
    assert y.shape == (3, 4, 3)
    chex.assert_trees_all_close(y, jax.jit(lambda p, x: model.apply(p, state, x)[0])(params, x),
                                atol=3e-2)
    ys = jax.jit(jax.vmap(lambda xi: run.apply(params, state, xi)[0]))(x[:, None])
    chex.assert_trees_all_close(ys[:, 0], y, atol=1e-6)


def test_integer_inputs_stay_integer():
    model = fnn.serial(L.Embedding(10, 4), L.Flatten(), L.Dense(2))
    params, state = model.init(jax.random.key(0), (3,))
    ids = jnp.array([[1, 2, 9], [0, 0, 5]], jnp.int32)
    run = P.apply_policy(model, "mixed_bfloat16")
    acts = jax.eval_shape(lambda p: fnn.intermediates(run, p, state, ids), params)
    assert acts["0_Embedding"].dtype == BF16
    chex.assert_trees_all_close(jax.jit(lambda p: run.apply(p, state, ids)[0])(params),
                                jax.jit(lambda p: model.apply(p, state, ids)[0])(params),
                                atol=2e-2)


def all_eqns(jaxpr):
    for e in jaxpr.eqns:
        yield e
        for value in e.params.values():
            inner = getattr(value, "jaxpr", None)
            if inner is not None:
                yield from all_eqns(getattr(inner, "jaxpr", inner))


def test_lstm_gate_products_in_compute_dtype():
    """The LSTM's matrix products run in bfloat16, its carry in float32."""
    model = fnn.serial(L.LSTM(8), L.Dense(2))
    params, state = model.init(jax.random.key(0), (6, 3))
    x = jax.random.normal(jax.random.key(1), (2, 6, 3))
    run = P.apply_policy(model, "mixed_bfloat16")
    jaxpr = jax.make_jaxpr(lambda p: run.apply(p, state, x)[0])(params)
    eqns = list(all_eqns(jaxpr.jaxpr))
    dots = [e for e in eqns if e.primitive.name == "dot_general"]
    assert len(dots) == 3 and all(v.aval.dtype == BF16 for e in dots for v in e.invars)
    (scan,) = [e for e in eqns if e.primitive.name == "scan"]
    assert [v.aval.dtype for v in scan.outvars[:2]] == [F32, F32]   # the carry (h, c)
    chex.assert_trees_all_close(run.apply(params, state, x)[0],
                                model.apply(params, state, x)[0], atol=2e-2)


def test_apply_policy_is_memoised_and_float32_is_identity():
    model = fnn.serial(L.Dense(2))
    assert P.apply_policy(model, "float32") is model
    assert P.apply_policy(model, "mixed_bfloat16") is P.apply_policy(model, "mixed_bfloat16")
    pinned = P.pin(P.pin(L.Dense(2), "bfloat16"), "float32")
    assert pinned.apply.dtype == F32 and pinned.name == "Dense"


BAD_INPUT = [
    ("unknown name", lambda: P.get("fp8"), ValueError,
     r"fnn.precision.get: unknown precision policy 'fp8'; expected a fnn.precision.Policy "
     r"or one of \['float32', 'bfloat16', 'mixed_bfloat16', 'mixed_float16'\]"),
    ("not a name", lambda: P.get(16), ValueError, r"unknown precision policy 16"),
    ("integer compute", lambda: P.get(P.Policy("float32", "int32", "float32")), ValueError,
     r"fnn.precision.get: Policy.compute_dtype must be a floating dtype, got int32"),
    ("no dtype", lambda: P.get(P.Policy("float32", "half-ish", "float32")), TypeError,
     r"get: dtype must be a floating dtype such as jnp.bfloat16 or 'float32', got 'half-ish'"),
    ("bad loss scale", lambda: P.get(P.Policy("float32", "float16", "float32", 1024.0)),
     TypeError, r"Policy.loss_scale must be None or fnn.precision.loss_scale\(...\), got 1024"),
    ("float32_layers list", lambda: P.get(P.Policy("float32", "float16", "float32", None,
                                                   ["BatchNorm"])),
     TypeError, r"Policy.float32_layers must be a frozenset of layer names"),
    ("pin non-layer", lambda: P.pin(jnp.tanh, "float32"), TypeError,
     r"fnn.precision.pin: layer must be a fnn.Layer, got PjitFunction"),
    ("pin int dtype", lambda: P.pin(L.Dense(2), "int8"), ValueError,
     r"fnn.precision.pin: dtype must be a floating dtype, got int8"),
    ("pin no dtype", lambda: P.pin(L.Dense(2), "single-ish"), TypeError,
     r"pin: dtype must be a floating dtype such as 'float32' or jnp.bfloat16, got"),
    ("apply_policy non-layer", lambda: P.apply_policy([L.Dense(2)], "float32"), TypeError,
     r"fnn.precision.apply_policy: model must be a fnn.Layer, got list"),
    ("apply_policy unknown", lambda: P.apply_policy(L.Dense(2), "half"), ValueError,
     r"fnn.precision.apply_policy: unknown precision policy 'half'"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
