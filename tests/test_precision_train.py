"""Training under a precision policy: the dtypes of params, gradients and optimizer
state in the step; loss scaling's skipped steps inside the step; `fit`, `evaluate`,
`predict` and `fnn train` with `precision=`; a run resumed under another policy."""
from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import fnn
from fnn import cli, losses, optim
from fnn import layers as L
from fnn import precision as P
from fnn.train import evaluate, fit, init_train_state, make_train_step, predict

F32, BF16 = jnp.dtype("float32"), jnp.dtype("bfloat16")
LOSS = losses.softmax_cross_entropy


def small_cnn():
    return fnn.serial(L.Conv2D(4, 3, padding="SAME"), L.BatchNorm(), fnn.relu, L.Flatten(),
                      L.Dense(3))


def data(n=16, seed=0):
    k1, k2 = jax.random.split(jax.random.key(seed))
    x = jax.random.normal(k1, (n, 5, 5, 1))
    y = jax.random.randint(k2, (n,), 0, 3)
    return x, y


def spy(optimizer, seen: list):
    """`optimizer`, recording the dtypes of the gradients its update receives."""
    def update(state, grads):
        seen.append(jax.tree.map(lambda g: g.dtype, grads))
        return optimizer.update(state, grads)
    return optim.Optimizer(optimizer.init, update)


@pytest.mark.parametrize("name", ["float32", "mixed_bfloat16", "bfloat16", "mixed_float16"])
def test_step_dtypes_under_each_policy(name):
    policy, seen = P.get(name), []
    model, opt = small_cnn(), spy(optim.adam(1e-2), seen)
    ts = init_train_state(model, opt, jax.random.key(0), (5, 5, 1), precision=name)
    step = make_train_step(model, LOSS, opt, precision=name)
    x, y = data()
    ts, metrics = step(ts, x, y)
    params, state = ts.opt_state.params, ts.opt_state
    pd = policy.param_dtype
    assert set(jax.tree.leaves(jax.tree.map(lambda a: a.dtype, params))) == {pd}
    assert set(jax.tree.leaves(jax.tree.map(lambda a: a.dtype, (state.m, state.v)))) == {pd}
    assert set(jax.tree.leaves(seen[-1])) == {pd}        # gradients at the optimizer
    assert jax.tree.map(lambda a: a.dtype, ts.model_state) == {
        "1_BatchNorm": {"mean": F32, "var": F32}}
    assert metrics["loss"].dtype == F32
    assert hasattr(state, "loss_scale") == (policy.loss_scale is not None)
    # one step equals float32's within the compute dtype's tolerance
    ref = init_train_state(model, optim.adam(1e-2), jax.random.key(0), (5, 5, 1))
    ref, ref_metrics = make_train_step(model, LOSS, optim.adam(1e-2))(ref, x, y)
    np.testing.assert_allclose(metrics["loss"], ref_metrics["loss"], rtol=2e-2)
    chex.assert_trees_all_close(jax.tree.map(lambda a: a.astype(F32), params), ref.params,
                                atol=2e-2)


def test_float16_overflow_skips_the_step_bit_identically():
    """A scale of 2^40 overflows float16's gradients: the step is skipped (params, Adam's
    slots, the step count and BatchNorm's statistics unchanged) and the scale backs off
    until steps go through."""
    policy = P.Policy("float32", "float16", "float32", P.loss_scale(init_scale=2.0**40))
    model, opt = small_cnn(), optim.adam(1e-2)
    ts = init_train_state(model, opt, jax.random.key(0), (5, 5, 1), precision=policy)
    step = make_train_step(model, LOSS, opt, precision=policy)
    x, y = data()
    before = jax.device_get(ts)
    ts, metrics = step(ts, x, y)
    assert float(metrics["skipped"]) == 1.0
    after = jax.device_get(ts)
    for field in ("step", "params", "m", "v"):
        chex.assert_trees_all_equal(getattr(after.opt_state, field),
                                    getattr(before.opt_state, field))
    chex.assert_trees_all_equal(after.model_state, before.model_state)
    assert float(after.opt_state.loss_scale.scale) == 2.0**39
    skipped = 1
    for _ in range(30):
        ts, metrics = step(ts, x, y)
        skipped += int(metrics["skipped"])
        if not metrics["skipped"]:
            break
    assert int(ts.opt_state.step) == 1 and int(ts.opt_state.loss_scale.skipped) == skipped
    assert float(ts.opt_state.loss_scale.scale) == 2.0 ** (40 - skipped)
    chex.assert_tree_all_finite(ts.opt_state.params)


def test_fit_mixed_float16_counts_skipped_steps_and_evaluates():
    x, y = data(32)
    policy = P.Policy("float32", "float16", "float32", P.loss_scale(init_scale=2.0**24))
    ts, history = fit(small_cnn(), optim.adam(1e-2), LOSS, (x, y), epochs=3, batch_size=8,
                      key=jax.random.key(0), val_data=(x, y), precision=policy, progress=False)
    skipped = history["skipped_steps"]
    assert skipped[0] >= 1 and sum(skipped) < 12    # S = 2^24 overflows float16 at first
    assert float(ts.opt_state.loss_scale.scale) == 2.0 ** (24 - sum(skipped))
    assert int(ts.opt_state.loss_scale.skipped) == sum(skipped)
    assert int(ts.opt_state.step) == 12 - sum(skipped)
    assert set(history) == {"loss", "accuracy", "val_loss", "val_accuracy", "lr",
                            "skipped_steps"}
    assert history["loss"][-1] < history["loss"][0]
    mine = evaluate(small_cnn(), ts.params, ts.model_state, LOSS, x, y, precision="mixed_float16")
    ref = evaluate(small_cnn(), ts.params, ts.model_state, LOSS, x, y)
    assert mine["loss"] == pytest.approx(ref["loss"], rel=1e-2)
    out = predict(small_cnn(), ts.params, ts.model_state, x, precision="bfloat16")
    assert out.dtype == BF16
    chex.assert_trees_all_close(out.astype(F32), predict(small_cnn(), ts.params,
                                                         ts.model_state, x), atol=5e-2)


def test_resume_under_another_policy(tmp_path):
    """Checkpoints hold the float32 master params: a float32 run resumes under
    mixed_bfloat16 (and on), its history one list per epoch."""
    x, y = data(32)
    model, kw = small_cnn(), {"batch_size": 8, "key": jax.random.key(0), "progress": False,
                               "checkpoint_dir": str(tmp_path)}
    _, h1 = fit(model, optim.adam(1e-2), LOSS, (x, y), epochs=1, precision="float32", **kw)
    ts, h2 = fit(model, optim.adam(1e-2), LOSS, (x, y), epochs=2, precision="mixed_bfloat16",
                 **kw)
    assert h2["loss"][0] == h1["loss"][0] and len(h2["loss"]) == 2
    assert int(ts.epoch) == 2 and int(ts.opt_state.step) == 8
    assert {a.dtype for a in jax.tree.leaves(ts.params)} == {F32}
    ts, h3 = fit(model, optim.adam(1e-2), LOSS, (x, y), epochs=3, **kw)
    assert len(h3["loss"]) == 3 and int(ts.opt_state.step) == 12


def test_cli_precision_flag(capsys):
    args = cli.build_parser().parse_args(["train", "--precision", "mixed_bfloat16"])
    assert args.precision == "mixed_bfloat16"
    with pytest.raises(SystemExit) as e:
        cli.main(["train", "--precision", "fp8"])
    assert e.value.code == 2
    assert "argument --precision: invalid choice: 'fp8'" in capsys.readouterr().err


def _state_without_scale():
    model, opt = small_cnn(), optim.adam(1e-2)
    ts = init_train_state(model, opt, jax.random.key(0), (5, 5, 1))
    return make_train_step(model, LOSS, opt, precision="mixed_float16")(ts, *data())


BAD_INPUT = [
    ("step: unknown policy", lambda: make_train_step(small_cnn(), LOSS, optim.sgd(0.1),
                                                     precision="fp8"),
     ValueError, r"make_train_step: unknown precision policy 'fp8'"),
    ("init_train_state: unknown policy", lambda: init_train_state(
        small_cnn(), optim.sgd(0.1), jax.random.key(0), (5, 5, 1), precision="half"),
     ValueError, r"init_train_state: unknown precision policy 'half'"),
    ("fit: unknown policy", lambda: fit(small_cnn(), optim.sgd(0.1), LOSS, data(), epochs=1,
                                        batch_size=8, key=jax.random.key(0), precision=3),
     ValueError, r"fit: unknown precision policy 3"),
    ("evaluate: unknown policy", lambda: evaluate(small_cnn(), {}, {}, LOSS, *data(),
                                                  precision="f16"),
     ValueError, r"evaluate: unknown precision policy 'f16'"),
    ("predict: unknown policy", lambda: predict(small_cnn(), {}, {}, data()[0],
                                                precision="f16"),
     ValueError, r"predict: unknown precision policy 'f16'"),
    ("step: state without loss scale", _state_without_scale, ValueError,
     r"the policy scales the loss, but the train state's optimizer state \(AdamState\) holds "
     r"no loss scale; build it with init_train_state\(..., precision=the same policy\)"),
]


@pytest.mark.parametrize("trigger, exc, match", [c[1:] for c in BAD_INPUT],
                         ids=[c[0] for c in BAD_INPUT])
def test_bad_input(trigger, exc, match):
    with pytest.raises(exc, match=match):
        trigger()
