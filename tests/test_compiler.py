"""`fnn.compiler`: the XLA options fnn compiles its programs with.

On CPU, fnn keeps convolutions and matrix products off XLA's YNNPACK fusions
(1.0–1.9× faster steps, measured in benchmarks/RESULTS.md). The tests check
that every program fnn compiles carries the options (read back from the
compiled HLO), that an option the installed jaxlib does not know falls back to
XLA's defaults, and that the options change no values beyond float32 rounding.
"""
import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import compiler, ensemble, fused, losses, optim, train
from fnn.layers import LSTM, BatchNorm, Conv2D, Dense, Flatten
from fnn.train.evaluation import evaluation_program, prediction_program

CPU = jax.default_backend() == "cpu"
CE = losses.softmax_cross_entropy
ADAM = optim.adam(1e-2)
CNN = fnn.serial(Conv2D(32, 3), BatchNorm(), fnn.relu, Conv2D(32, 3, stride=2), fnn.relu,
                 Flatten(), Dense(3))
SHAPE = (8, 8, 32)     # 32 channels: XLA:CPU's defaults give these convolutions to YNNPACK


def _batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(rng.normal(size=(n, *SHAPE)).astype(np.float32)),
            jnp.asarray(rng.integers(0, 3, n).astype(np.int32)))


def _ynn_fusions_with(hlo: str, op: str = "convolution") -> int:
    """How many YNNPACK fusions of a compiled module contain an `op` instruction."""
    bodies, name = {}, None
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head:
            name = head.group(1)
            bodies[name] = []
        elif name is not None:
            bodies[name].append(line)
    return sum(f"{op}(" in "\n".join(bodies.get(called, ()))
               for called in re.findall(r"calls=%?([\w.\-]+)[^\n]*__ynn_fusion", hlo))


def _hlo(jitted, *args) -> str:
    return jitted.lower(*args).compile().as_text()


def test_options_per_backend():
    if CPU:
        assert compiler.options() == {
            "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE",
            "xla_cpu_copy_insertion_use_region_analysis": True}
        assert compiler.init_options() == {"xla_backend_optimization_level": 1}
    else:
        assert compiler.options() is None and compiler.init_options() is None


@pytest.mark.parametrize("items", [(("xla_cpu_no_such_option", "1"),),
                                   (("xla_cpu_experimental_ynn_fusion_type", "NOT_A_TYPE"),)])
def test_an_option_this_jaxlib_rejects_falls_back_to_defaults(items):
    assert compiler._on_cpu(items) is None
    assert not compiler._accepted(items)


@pytest.mark.skipif(not CPU, reason="the options are for the CPU backend only")
def test_an_option_this_jaxlib_rejects_is_left_out_and_the_others_kept():
    items = (("xla_cpu_no_such_option", "1"), ("xla_backend_optimization_level", 1))
    assert compiler._on_cpu(items) == {"xla_backend_optimization_level": 1}


@pytest.mark.skipif(not CPU, reason="the options are for the CPU backend only")
def test_every_program_fnn_compiles_keeps_convolutions_off_ynnpack(key):
    x, y = _batch()
    ts = train.init_train_state(CNN, ADAM, key, SHAPE)
    raw = train.make_train_step(CNN, CE, ADAM, jit=False)
    if _ynn_fusions_with(_hlo(jax.jit(raw), ts, x, y)) == 0:
        pytest.skip("this jaxlib's defaults put no convolution in a YNNPACK fusion")
    params, state = ts.params, ts.model_state
    member_params, member_state = ensemble.init_ensemble(CNN, jax.random.split(key, 2), SHAPE)
    mesh = fnn.distributed.make_mesh()
    programs = {
        "make_train_step": (train.make_train_step(CNN, CE, ADAM), (ts, x, y)),
        "make_fused_step": (fused.make_fused_step(raw, "unroll"), (ts, x[None], y[None])),
        "data-parallel step": (fnn.distributed.data_parallel(raw, mesh).jitted, (ts, x, y)),
        "evaluate": (evaluation_program(CNN, CE), (params, state, x, y, jnp.ones(4, bool))),
        "predict": (prediction_program(CNN), (params, state, x)),
        "ensemble step": (ensemble.make_ensemble_step(CNN, CE, ADAM),
                          (jax.vmap(ADAM.init)(member_params), member_state, x, y)),
    }
    for name, (jitted, args) in programs.items():
        assert _ynn_fusions_with(_hlo(jitted, *args)) == 0, name


@pytest.mark.skipif(not CPU, reason="the options are for the CPU backend only")
def test_a_step_without_convolutions_or_loops_keeps_xla_defaults(key):
    """`fused.step_options`: an MLP step compiles with XLA's defaults (its products on
    YNNPACK, 4-6 % faster), an LSTM step (a scan) with fnn's options."""
    rng = np.random.default_rng(2)
    cases = {"mlp": (fnn.models.mlp([32, 3]), (16,)),
             "lstm": (fnn.models.lstm_classifier(8, 3), (5, 4))}
    ynn_dots = {}
    for name, (model, shape) in cases.items():
        x = jnp.asarray(rng.normal(size=(8, *shape)).astype(np.float32))
        y = jnp.asarray(np.arange(8) % 3, jnp.int32)
        ts = train.init_train_state(model, ADAM, key, shape)
        default = _ynn_fusions_with(_hlo(jax.jit(train.make_train_step(
            model, CE, ADAM, jit=False)), ts, x, y), "dot")
        if default == 0:
            pytest.skip("this jaxlib's defaults put no matrix product in a YNNPACK fusion")
        ynn_dots[name] = _ynn_fusions_with(
            _hlo(train.make_train_step(model, CE, ADAM), ts, x, y), "dot")
    assert ynn_dots["mlp"] > 0 and ynn_dots["lstm"] == 0


def test_the_options_change_no_values(key):
    """fnn's step (its options) against the same step under XLA's defaults.

    Plain SGD: Adam would turn rounding noise in a zero gradient (the bias
    before BatchNorm) into steps of size lr."""
    sgd = optim.sgd(0.1)
    raw = train.make_train_step(CNN, CE, sgd, jit=False)
    steps = (train.make_train_step(CNN, CE, sgd), jax.jit(raw))
    states = [train.init_train_state(CNN, sgd, key, SHAPE) for _ in steps]
    for i in range(3):
        x, y = _batch(seed=i)
        out = [step(ts, x, y) for step, ts in zip(steps, states, strict=True)]
        states = [ts for ts, _ in out]
        np.testing.assert_allclose(out[0][1]["loss"], out[1][1]["loss"], rtol=1e-5)
    chex.assert_trees_all_close(states[0].params, states[1].params, rtol=1e-4, atol=1e-6)
    chex.assert_trees_all_close(states[0].model_state, states[1].model_state, rtol=1e-4, atol=1e-6)


@pytest.mark.skipif(not CPU, reason="the options are for the CPU backend only")
def test_the_options_change_no_values_in_a_loop(key):
    """An LSTM step (a `while` loop, where the copy-insertion option acts), under fnn's
    options and under XLA's defaults: the same losses and params, step after step,
    and the loop's compiled program has fewer copies."""
    model = fnn.serial(LSTM(8), Dense(3))
    raw = train.make_train_step(model, CE, ADAM, jit=False)
    steps = (train.make_train_step(model, CE, ADAM), jax.jit(raw))
    states = [train.init_train_state(model, ADAM, key, (5, 4)) for _ in steps]
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = jnp.asarray(rng.normal(size=(6, 5, 4)).astype(np.float32))
        y = jnp.asarray(rng.integers(0, 3, 6).astype(np.int32))
        out = [step(ts, x, y) for step, ts in zip(steps, states, strict=True)]
        states = [ts for ts, _ in out]
        np.testing.assert_allclose(out[0][1]["loss"], out[1][1]["loss"], rtol=1e-6)
    chex.assert_trees_all_close(states[0].params, states[1].params, rtol=1e-5, atol=1e-7)
    copies = [len(re.findall(r"= \S+ copy\(", _hlo(step, states[0], x, y))) for step in steps]
    assert copies[0] < copies[1], copies


def test_programs_built_with_options_compose_with_jit_scan_and_make_jaxpr(key):
    """JAX refuses `compiler_options` on a nested jit; fnn's programs still nest."""
    mlp = fnn.models.mlp([8, 3])
    x = jnp.asarray(np.random.default_rng(1).normal(size=(6, 4)).astype(np.float32))
    y = jnp.asarray(np.arange(6) % 3, jnp.int32)
    fresh = lambda: train.init_train_state(mlp, ADAM, key, (4,))
    step = train.make_train_step(mlp, CE, ADAM)

    top, top_metrics = step(fresh(), x, y)
    nested, nested_metrics = jax.jit(lambda ts: step(ts, x, y))(fresh())
    chex.assert_trees_all_close((nested, nested_metrics), (top, top_metrics), rtol=1e-5, atol=1e-7)

    def two_steps(ts):
        return jax.lax.scan(lambda c, _: step(c, x, y), ts, None, length=2)

    twice, _ = jax.jit(two_steps)(fresh())
    again, _ = step(step(fresh(), x, y)[0], x, y)
    chex.assert_trees_all_close(twice, again, rtol=1e-5, atol=1e-7)
    jaxpr = jax.make_jaxpr(lambda ts: step(ts, x, y))(fresh())
    assert len(jaxpr.out_avals) == len(jax.tree.leaves((top, top_metrics)))

    # initialisers (compiled with init_options) nest too, with the same values
    chex.assert_trees_all_equal(jax.jit(lambda k: fnn.init(mlp, k, (4,)))(key),
                                fnn.init(mlp, key, (4,)))
    chex.assert_trees_all_equal(jax.jit(lambda k: train.init_train_state(mlp, ADAM, k, (4,)))(key),
                                fresh())


def test_compiler_jit_uses_the_options_only_at_the_top_level():
    """An option no XLA knows fails the top-level compile; inside a trace it is not used."""
    f = compiler.jit(lambda v: 2.0 * v, {"fnn_no_such_option": 1})
    a = jnp.arange(3.0)
    with pytest.raises(jax.errors.JaxRuntimeError, match="fnn_no_such_option"):
        f(a)
    chex.assert_trees_all_equal(jax.jit(lambda v: f(v) + 1.0)(a), 2.0 * a + 1.0)
    chex.assert_trees_all_equal(jax.vmap(f)(a), 2.0 * a)
    chex.assert_trees_all_equal(jax.grad(lambda v: f(v).sum())(a), jnp.full(3, 2.0))
    g = compiler.jit(lambda v: 2.0 * v, None)          # no options: plain jax.jit
    chex.assert_trees_all_equal(g(a), 2.0 * a)


def test_compiler_jit_skips_the_trace_check_once_xla_defaults_are_chosen(monkeypatch):
    """When the options function chooses XLA's defaults, every later call goes straight
    to the plain jit (the trace-state check cost ~20 µs of an MLP step's dispatch); the
    result is the same at the top level and inside another trace."""
    calls = []
    real = jax.extend.core.get_opaque_trace_state
    monkeypatch.setattr(jax.extend.core, "get_opaque_trace_state",
                        lambda *a: calls.append(1) or real(*a))
    a = jnp.arange(3.0)
    defaults = compiler.jit(lambda v: 2.0 * v, lambda jaxpr: None)
    chex.assert_trees_all_equal(defaults(a), 2.0 * a)          # first call: chooses
    checked = len(calls)
    for _ in range(3):
        chex.assert_trees_all_equal(defaults(a), 2.0 * a)
    assert len(calls) == checked
    chex.assert_trees_all_equal(jax.jit(lambda v: defaults(v) + 1.0)(a), 2.0 * a + 1.0)
    with_options = compiler.jit(lambda v: 2.0 * v, lambda jaxpr: {"fnn_no_such_option": 1})
    with pytest.raises(jax.errors.JaxRuntimeError, match="fnn_no_such_option"):
        with_options(a)                                        # options: checked every call
    chex.assert_trees_all_equal(jax.jit(lambda v: with_options(v) + 1.0)(a), 2.0 * a + 1.0)


def _per_example_conv_step(model):
    """A DP-SGD-like program: per-example gradients of a small CNN, summed."""
    def loss_fn(params, x, y):
        return CE(model.apply(params, {}, x)[0], y)

    def step(params, x, y):
        grads = fnn.per_example_grads(loss_fn, params, x, y)
        return jax.tree.map(lambda g: g.sum(0), grads)
    return step


def test_step_options_rule_on_the_programs_it_claims(key):
    """`fused.step_options`: fnn's options for a CNN step and an LSTM step; XLA's
    defaults (None) for an MLP step and for per-example gradients through a convolution
    on XLA's kernel (grouped convolutions, which the options slow: benchmarks.dp_sgd)."""
    cnn = fnn.serial(fnn.layers.Conv2D(4, 3), fnn.tanh, fnn.layers.Flatten(),
                     fnn.layers.Dense(3))
    params, _ = cnn.init(key, (6, 6, 1))
    x = jnp.ones((4, 6, 6, 1))
    y = jnp.arange(4) % 3
    per_example = jax.make_jaxpr(_per_example_conv_step(cnn))(params, x, y)
    batch_grad = jax.make_jaxpr(jax.grad(lambda p: CE(cnn.apply(p, {}, x)[0], y)))(params)
    mlp = fnn.models.mlp([8, 3])
    mlp_params, _ = mlp.init(key, (5,))
    mlp_grad = jax.make_jaxpr(jax.grad(lambda p: CE(mlp.apply(p, {}, jnp.ones((4, 5)))[0], y)))(
        mlp_params)
    assert fnn.fused.step_options(mlp_grad) is None
    assert fnn.fused.step_options(batch_grad) == fnn.compiler.options()
    grouped = any(e.primitive.name == "conv_general_dilated" and e.params["feature_group_count"] > 1
                  for e in _all_eqns(per_example.jaxpr))
    # with oneDNN's primitives the per-example weight gradient is no grouped lax convolution
    assert fnn.fused.step_options(per_example) == (None if grouped else fnn.compiler.options())


def _all_eqns(jaxpr):
    from fnn._jaxpr import sub_jaxprs
    for eqn in jaxpr.eqns:
        yield eqn
        for value in eqn.params.values():
            for sub in sub_jaxprs(value):
                yield from _all_eqns(sub)
