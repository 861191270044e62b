"""fnn.testing: check_layer passes every layer of the catalog (new entries included, read
at collection time), layers drawn by the hypothesis strategies, and fails, naming the
property, on layers broken on purpose; its own bad arguments."""
import _catalog
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import fnn
from fnn import layers as L
from fnn.testing import PROPERTIES, ContractError, check_layer, strategies


@pytest.mark.parametrize("name", sorted(_catalog.LAYERS))
def test_every_catalog_layer_keeps_the_contract(name):
    make, shape = _catalog.LAYERS[name]
    report = check_layer(make(), shape)
    assert report.passed == PROPERTIES
    assert report.output.shape == (3, *fnn.output_shape(make(), shape))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(strategies.layers())
def test_drawn_layers_keep_the_contract(case):
    assert check_layer(case.layer, case.input_shape).passed == PROPERTIES


@settings(max_examples=20, deadline=None)
@given(strategies.shapes(min_rank=2, max_rank=4, min_side=2, max_side=3))
def test_shapes_strategy_bounds(shape):
    assert 2 <= len(shape) <= 4 and all(2 <= s <= 3 for s in shape)


# ---------------------------------------------------------------------------
# layers broken on purpose, one property each


def _init_features(key, input_shape):
    del key
    return {"w": jnp.ones((input_shape[-1],))}, {}


def _times_w(params, x):
    """x · w over the last axis, broadcast explicitly (the suite raises on rank promotion)."""
    return x * params["w"].reshape((1,) * (x.ndim - 1) + (-1,))


def _scale(params, state, x, *, key=None, train=False):
    return _times_w(params, x), state


def _broken(**fields):
    base = dict(init=_init_features, apply=_scale, name="Broken")
    base.update(fields)
    return fnn.Layer(**base)


def _hidden_rng_init(key, input_shape):
    return {"w": jnp.asarray(np.random.default_rng().normal(size=(input_shape[-1],)),
                             jnp.float32)}, {}


def _differs_under_jit(params, state, x, *, key=None, train=False):
    traced = isinstance(x, jax.core.Tracer)
    return _times_w(params, x) + (1.0 if traced else 0.0), state


def _batch_dependent(params, state, x, *, key=None, train=False):
    return _times_w(params, x - jnp.mean(x, axis=0, keepdims=True)), state


def _flattens_the_batch(params, state, x, *, key=None, train=False):
    return (_times_w(params, x)).reshape(1, -1), state


def _needs_a_key(params, state, x, *, key=None, train=False):
    return _times_w(params, x) + jax.random.normal(key, x.shape), state


def _changes_state_in_eval(key, input_shape):
    return {"w": jnp.ones((input_shape[-1],))}, {"calls": jnp.zeros(())}


def _counts(params, state, x, *, key=None, train=False):
    return _times_w(params, x), {"calls": state["calls"] + 1}


def _half_output(params, state, x, *, key=None, train=False):
    return (_times_w(params, x)).astype(jnp.float16), state


def _sqrt_at_zero(params, state, x, *, key=None, train=False):
    return _times_w(params, jnp.sqrt(jnp.abs(x) * 0.0)), state


def _random_in_train(params, state, x, *, key=None, train=False):
    if train:
        return x * np.random.default_rng().normal(), state
    return _times_w(params, x), state


def _raises(params, state, x, *, key=None, train=False):
    raise ValueError("boom")


BROKEN = [
    ("init", _broken(init=_hidden_rng_init), r"two calls of init with the same key differ"),
    ("init", _broken(init=lambda key, shape: ({"w": [1.0, 2.0]}, {})),
     r"params\['w'\]\[0\] is 1\.0, not an array"),
    ("init", _broken(init=lambda key, shape: {"w": jnp.ones(2)}),
     r"init must return a \(params, state\) pair of dicts"),
    ("eval", _broken(apply=_needs_a_key), r"with train=False and no key raised"),
    ("eval", _broken(init=_changes_state_in_eval, apply=_counts),
     r"train=False must return the state unchanged: \['calls'\]"),
    ("eval", _broken(apply=_raises), r"raised ValueError: boom"),
    ("output_shape", _broken(apply=_flattens_the_batch),
     r"apply gave shape \(1, 12\) .* for a batch of 3; fnn\.output_shape says \(3, 4\)"),
    ("dtype", _broken(apply=_half_output),
     r"input float32 with params of dtypes \['float32'\] must give jnp\.result_type of them, "
     r"float32, got float16"),
    ("jit", _broken(apply=_differs_under_jit), r"eval mode under jax\.jit differs"),
    ("vmap", _broken(apply=_batch_dependent),
     r"an example's output depends on the others"),
    ("train", _broken(apply=_random_in_train), r"two train-mode calls with the same key differ"),
    ("grad", _broken(apply=_sqrt_at_zero),
     r"the gradient of sum\(output\) with respect to the input x has non-finite entries"),
]


@pytest.mark.parametrize("prop, layer, match", BROKEN,
                         ids=[f"{p}-{i}" for i, (p, _, _) in enumerate(BROKEN)])
def test_broken_layers_fail_naming_the_property(prop, layer, match):
    with pytest.raises(ContractError, match=rf"^check_layer\(Broken\): property '{prop}' "
                                            rf"failed: .*{match}") as info:
        check_layer(layer, (4,) if prop != "output_shape" else (2, 2))
    assert info.value.property == prop


def test_batch_norm_in_train_mode_is_checked_but_not_against_vmap():
    """BatchNorm's train mode normalises over the batch: vmap is compared in eval mode
    (running statistics) only, so it passes; its train output is still checked."""
    report = check_layer(L.BatchNorm(), (3,))
    assert "vmap" in report.passed and "train" in report.passed


def test_integer_layers_and_a_given_batch():
    x = jnp.asarray([[0, 9, 3], [4, 4, 1]], jnp.int32)
    report = check_layer(L.Embedding(10, 2), (3,), x=x)
    assert report.output.shape == (2, 3, 2)


BAD_INPUT = [
    (lambda: check_layer(L.Dense, (3,)), TypeError,
     r"^check_layer: expected a fnn\.Layer or a callable"),
    (lambda: check_layer(L.Dense(2), 3), TypeError, r"^check_layer: input_shape must be a tuple"),
    (lambda: check_layer(L.Dense(2), (3,), batch_size=1), ValueError,
     r"^check_layer: batch_size must be >= 2 \(vmap compares examples\), got 1"),
    (lambda: check_layer(L.Dense(2), (3,), batch_size=0), ValueError,
     r"^check_layer: batch_size must be a positive int, got 0"),
    (lambda: check_layer(L.Dense(2), (3,), rtol=-1.0), ValueError,
     r"^check_layer: rtol must be >= 0\.0, got -1\.0"),
    (lambda: check_layer(L.Dense(2), (3,), key=0), TypeError, r"^check_layer: key must be"),
    (lambda: check_layer(L.Dense(2), (3,), x=jnp.ones((2, 4))), ValueError,
     r"^check_layer: x must be a batch \(N, \*input_shape\) with N >= 2, i\.e\. \(N, 3\), got "
     r"an array of dtype float32 and shape \(2, 4\)"),
    (lambda: check_layer(L.Dense(2), (3,), x=[[1.0, 2.0, 3.0]]), TypeError,
     r"^check_layer: expected an array"),
    (lambda: check_layer(L.Dense(2), (3,), dtype="float33"), TypeError,
     r"^check_layer: dtype must be a dtype"),
    (lambda: check_layer(L.Dense(2), (3,), dtype=jnp.complex64), ValueError,
     r"^check_layer: cannot draw a batch of dtype complex64; pass x=\.\.\. yourself"),
]


@pytest.mark.parametrize("trigger, error, match", BAD_INPUT)
def test_bad_input(trigger, error, match):
    with pytest.raises(error, match=match):
        trigger()
