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
from fnn.layers import BatchNorm, Conv2D, Dense, Flatten

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


def _ynn_convolutions(hlo: str) -> int:
    """How many YNNPACK fusions of a compiled module contain a convolution."""
    bodies, name = {}, None
    for line in hlo.splitlines():
        head = re.match(r"^(?:ENTRY )?%?([\w.\-]+) .*\{$", line)
        if head:
            name = head.group(1)
            bodies[name] = []
        elif name is not None:
            bodies[name].append(line)
    return sum("convolution(" in "\n".join(bodies.get(called, ()))
               for called in re.findall(r"calls=%?([\w.\-]+)[^\n]*__ynn_fusion", hlo))


def _hlo(jitted, *args) -> str:
    return jitted.lower(*args).compile().as_text()


def test_options_per_backend():
    if CPU:
        assert compiler.options() == {
            "xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_REDUCE"}
        assert compiler.init_options() == {"xla_backend_optimization_level": 1}
    else:
        assert compiler.options() is None and compiler.init_options() is None


@pytest.mark.parametrize("items", [(("xla_cpu_no_such_option", "1"),),
                                   (("xla_cpu_experimental_ynn_fusion_type", "NOT_A_TYPE"),)])
def test_an_option_this_jaxlib_rejects_falls_back_to_defaults(items):
    assert compiler._on_cpu(items) is None
    assert not compiler._accepted(items)


@pytest.mark.skipif(not CPU, reason="the options are for the CPU backend only")
def test_every_program_fnn_compiles_keeps_convolutions_off_ynnpack(key):
    x, y = _batch()
    ts = train.init_train_state(CNN, ADAM, key, SHAPE)
    raw = train.make_train_step(CNN, CE, ADAM, jit=False)
    if _ynn_convolutions(_hlo(jax.jit(raw), ts, x, y)) == 0:
        pytest.skip("this jaxlib's defaults put no convolution in a YNNPACK fusion")
    params, state = ts.params, ts.model_state
    member_params, member_state = ensemble.init_ensemble(CNN, jax.random.split(key, 2), SHAPE)
    mesh = fnn.distributed.make_mesh()
    programs = {
        "make_train_step": (train.make_train_step(CNN, CE, ADAM), (ts, x, y)),
        "make_fused_step": (fused.make_fused_step(raw, "unroll"), (ts, x[None], y[None])),
        "data-parallel step": (fnn.distributed.make_train_step(CNN, CE, ADAM, mesh).jitted,
                               (ts, x, y)),
        "evaluate": (train._eval_fn(CNN, CE), (params, state, x, y, jnp.ones(4, bool))),
        "predict": (train._predict_fn(CNN), (params, state, x)),
        "ensemble step": (ensemble.make_ensemble_step(CNN, CE, ADAM),
                          (jax.vmap(ADAM.init)(member_params), member_state, x, y)),
    }
    for name, (jitted, args) in programs.items():
        assert _ynn_convolutions(_hlo(jitted, *args)) == 0, name


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
